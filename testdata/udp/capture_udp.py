#!/usr/bin/env python3
"""Records UDP datagrams with their arrival times.

Usage: capture_udp.py PORT OUTFILE MAX_DATAGRAMS TIMEOUT_S

Binds 127.0.0.1:PORT and writes every datagram it receives, in arrival
order, to OUTFILE in this format (all integers little-endian):

  magic  b"TANDEMUDP1"            10 bytes, once
  then per datagram:
    arrival_us  u64   microseconds since the first datagram arrived
    length      u32   datagram length in bytes
    payload     length bytes, verbatim

It stops after MAX_DATAGRAMS datagrams or TIMEOUT_S seconds, whichever
comes first.
"""
import socket, struct, sys, time

port, out, maxn, timeout = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind(("127.0.0.1", port))
s.settimeout(timeout)
deadline = time.monotonic() + timeout
first = None
n = 0
with open(out, "wb") as f:
    f.write(b"TANDEMUDP1")
    while n < maxn and time.monotonic() < deadline:
        try:
            d = s.recv(65536)
        except socket.timeout:
            break
        now = time.monotonic_ns() // 1000
        if first is None:
            first = now
        f.write(struct.pack("<QI", now - first, len(d)))
        f.write(d)
        n += 1
print("captured %d datagrams" % n, file=sys.stderr)
