#!/usr/bin/env python3
"""Raw TCP capture server for Smooth Streaming pushes (ffmpeg -f ismv over HTTP).

Usage: smooth_capture.py PORT OUTDIR [--silent]

Listens on 127.0.0.1:PORT, one thread per connection, no HTTP library. For
every connection N (accept order) it writes:
  OUTDIR/connN.raw    every byte received, verbatim (head + chunked framing)
  OUTDIR/connN.head   the request head of each request, verbatim
  OUTDIR/connN.body   the de-chunked body (or Content-Length body)
  OUTDIR/connN.json   facts: timing of the head, of the first body byte and of
                      the end of the body, chunk sizes, what was answered
It answers as IIS does: "HTTP/1.1 100 Continue" when the request carries
Expect: 100-continue (right after the head), and "HTTP/1.1 200 OK" with
Content-Length: 0 once the body has ended. With --silent it answers
nothing at all (to see whether the client waits for an answer).
"""
import json, socket, sys, threading, time, os

def handle(conn, n, outdir, silent):
    raw = open(os.path.join(outdir, "conn%d.raw" % n), "wb")
    buf = b""
    facts = {"conn": n, "accepted": time.time(), "requests": []}
    def fill():
        nonlocal buf
        d = conn.recv(65536)
        if not d:
            raise EOFError
        raw.write(d); raw.flush()
        buf += d
    def until(m):
        nonlocal buf
        while m not in buf:
            fill()
        i = buf.index(m) + len(m)
        out, buf = buf[:i], buf[i:]
        return out
    def exact(k):
        nonlocal buf
        while len(buf) < k:
            fill()
        out, buf = buf[:k], buf[k:]
        return out
    try:
        while True:
            try:
                head = until(b"\r\n\r\n")
            except EOFError:
                break
            req = {"head": head.decode("latin-1"), "head_time": time.time()}
            facts["requests"].append(req)
            with open(os.path.join(outdir, "conn%d.head" % n), "ab") as f:
                f.write(head)
            h = {}
            for line in head[:-4].split(b"\r\n")[1:]:
                k, _, v = line.decode("latin-1").partition(":")
                h.setdefault(k.strip().lower(), v.strip())
            req["bytes_buffered_after_head"] = len(buf)
            if h.get("expect", "").lower() == "100-continue" and not silent:
                conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                req["sent_100_continue"] = True
            body = open(os.path.join(outdir, "conn%d.body" % n), "ab")
            sizes = []
            total = 0
            try:
                if "chunked" in h.get("transfer-encoding", "").lower():
                    while True:
                        line = until(b"\r\n")
                        size = int(line[:-2].split(b";")[0], 16)
                        if not sizes:
                            req["first_chunk_time"] = time.time()
                        sizes.append(size)
                        if size == 0:
                            while until(b"\r\n") != b"\r\n":
                                pass
                            break
                        body.write(exact(size)); body.flush(); total += size
                        exact(2)
                elif "content-length" in h:
                    d = exact(int(h["content-length"])); body.write(d); total = len(d)
            except EOFError:
                req["eof_mid_body"] = True
                req["body_bytes"] = total
                req["chunk_sizes"] = sizes
                break
            req["body_done_time"] = time.time()
            req["body_bytes"] = total
            req["chunk_sizes"] = sizes
            if not silent:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                req["answered"] = 200
            if h.get("connection", "").lower() == "close":
                break
    finally:
        facts["closed"] = time.time()
        with open(os.path.join(outdir, "conn%d.json" % n), "w") as f:
            json.dump(facts, f, indent=1)
        conn.close(); raw.close()

def main():
    port, outdir = int(sys.argv[1]), sys.argv[2]
    silent = "--silent" in sys.argv[3:]
    os.makedirs(outdir, exist_ok=True)
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port)); s.listen(16)
    n = 0
    while True:
        c, _ = s.accept(); n += 1
        threading.Thread(target=handle, args=(c, n, outdir, silent), daemon=True).start()

main()
