#!/usr/bin/env python3
"""Raw TCP capture server for HTTP ingest clients (e.g. ffmpeg -f hls -method PUT).

Usage:
    capture_server.py PORT LOGFILE [--challenge md5|sha256-md5|md5-sha256]
                                   [--final-status N] [--delay-final SECONDS]

Listens on 127.0.0.1:PORT. Every request is logged as one JSON object per
line in LOGFILE, including the raw request head bytes verbatim ("raw_head",
latin-1 decoded). The file is rewritten after every request and kept sorted
by (conn, req_on_conn): connections are numbered in accept order, which is
the order in which the client opened them. "seq" is the order in which the
request heads were parsed by this server (may differ slightly from the
client's order because each connection is served by its own thread).

* Request without Authorization: reply
      HTTP/1.1 401 Unauthorized
      WWW-Authenticate: Digest realm="tandem", qop="auth", algorithm=MD5, nonce="<fresh hex>", opaque="x"
      WWW-Authenticate: Basic realm="tandem"
      Content-Length: 0
      Connection: close
  without reading the body and without sending 100 Continue, then close.
  Just before closing, the number of body bytes the client had already sent
  is recorded with MSG_PEEK (nothing is consumed).
  --challenge sha256-md5  : two Digest headers, algorithm=SHA-256 first, MD5 second
  --challenge md5-sha256  : two Digest headers, algorithm=MD5 first, SHA-256 second
* Request with Authorization: send "HTTP/1.1 100 Continue" if the request
  has Expect: 100-continue, read the body (Content-Length or chunked; chunk
  size lines are recorded), reply --final-status (default 201) with
  Content-Length: 0 after an optional --delay-final, and honour
  Connection: close / keep-alive.
"""
import argparse
import json
import secrets
import socket
import threading
import time

STATUS_TEXT = {201: "Created", 200: "OK", 204: "No Content", 403: "Forbidden",
               404: "Not Found", 500: "Internal Server Error"}


class Closed(Exception):
    pass


class Reader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise Closed()
        self.buf += data

    def read_until(self, marker):
        while True:
            i = self.buf.find(marker)
            if i >= 0:
                out = self.buf[: i + len(marker)]
                self.buf = self.buf[i + len(marker):]
                return out
            self._fill()

    def read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out = self.buf[:n]
        self.buf = self.buf[n:]
        return out


class Log:
    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.records = []
        self.seq = 0
        open(path, "w").close()

    def next_seq(self):
        with self.lock:
            self.seq += 1
            return self.seq

    def add(self, rec):
        with self.lock:
            self.records.append(rec)
            self.records.sort(key=lambda r: (r["conn"], r["req_on_conn"]))
            with open(self.path, "w") as f:
                for r in self.records:
                    f.write(json.dumps(r) + "\n")


def challenge_headers(mode):
    def digest(alg):
        return ('WWW-Authenticate: Digest realm="tandem", qop="auth", algorithm=%s, '
                'nonce="%s", opaque="x"' % (alg, secrets.token_hex(16)))
    if mode == "sha256-md5":
        hs = [digest("SHA-256"), digest("MD5")]
    elif mode == "md5-sha256":
        hs = [digest("MD5"), digest("SHA-256")]
    else:
        hs = [digest("MD5")]
    hs.append('WWW-Authenticate: Basic realm="tandem"')
    return hs


def send(conn, data, rec):
    try:
        conn.sendall(data)
        return True
    except OSError as e:
        rec.setdefault("send_errors", []).append(repr(e))
        return False


def handle(conn, conn_id, peer, log, args):
    r = Reader(conn)
    req_on_conn = 0
    rec = None
    try:
        while True:
            rec = None
            try:
                head = r.read_until(b"\r\n\r\n")
            except Closed:
                return
            req_on_conn += 1
            seq = log.next_seq()
            t = time.time()
            lines = head[:-4].split(b"\r\n")
            parts = lines[0].decode("latin-1").split(" ")
            method, path, version = (parts + ["", "", ""])[:3]
            headers = []
            for line in lines[1:]:
                name, _, value = line.decode("latin-1").partition(":")
                headers.append([name, value.strip()])
            hmap = {}
            for k, v in headers:
                hmap.setdefault(k.lower(), v)
            rec = {
                "conn": conn_id,
                "req_on_conn": req_on_conn,
                "seq": seq,
                "time": round(t, 3),
                "peer_port": peer[1],
                "raw_head": head.decode("latin-1"),
                "method": method,
                "path": path,
                "version": version,
                "headers": headers,
            }
            if "authorization" not in hmap:
                resp = ("HTTP/1.1 401 Unauthorized\r\n" + "\r\n".join(challenge_headers(args.challenge)) +
                        "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                send(conn, resp.encode(), rec)
                # The body is not read. Record (without consuming) how many
                # body bytes the client had pushed anyway.
                time.sleep(0.3)
                pending = len(r.buf)
                try:
                    pending += len(conn.recv(1 << 20, socket.MSG_PEEK | socket.MSG_DONTWAIT))
                except OSError:
                    pass
                rec.update({
                    "response_status": 401,
                    "response_head": resp,
                    "body_read": False,
                    "body_bytes_pending_unread_at_close": pending,
                })
                log.add(rec)
                try:
                    conn.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                time.sleep(0.2)
                return
            sent_continue = False
            if hmap.get("expect", "").lower() == "100-continue":
                sent_continue = send(conn, b"HTTP/1.1 100 Continue\r\n\r\n", rec)
            body = b""
            chunk_sizes = None
            chunk_size_lines = None
            trailers = None
            if "chunked" in hmap.get("transfer-encoding", "").lower():
                chunk_sizes, chunk_size_lines = [], []
                while True:
                    line = r.read_until(b"\r\n")
                    chunk_size_lines.append(line[:-2].decode("latin-1"))
                    size = int(line[:-2].split(b";")[0].strip(), 16)
                    chunk_sizes.append(size)
                    if size == 0:
                        trailers = []
                        while True:
                            tl = r.read_until(b"\r\n")
                            if tl == b"\r\n":
                                break
                            trailers.append(tl[:-2].decode("latin-1"))
                        break
                    body += r.read_exact(size)
                    r.read_exact(2)
            elif "content-length" in hmap:
                body = r.read_exact(int(hmap["content-length"]))
            body_done = time.time()
            connection = hmap.get("connection", "").lower()
            close = connection == "close" or (version == "HTTP/1.0" and connection != "keep-alive")
            if args.delay_final:
                time.sleep(args.delay_final)
            status = args.final_status
            resp = "HTTP/1.1 %d %s\r\nContent-Length: 0\r\n" % (status, STATUS_TEXT.get(status, "Status"))
            resp += "Connection: close\r\n\r\n" if close else "Connection: keep-alive\r\n\r\n"
            # Did the client already close its side, or already send bytes of
            # a next request, before the final response went out?
            peer_closed_before_response = False
            bytes_after_body_before_response = len(r.buf)
            try:
                peek = conn.recv(1 << 20, socket.MSG_PEEK | socket.MSG_DONTWAIT)
                if peek == b"":
                    peer_closed_before_response = True
                bytes_after_body_before_response += len(peek)
            except OSError:
                pass
            send(conn, resp.encode(), rec)
            rec.update({
                "response_status": status,
                "sent_100_continue": sent_continue,
                "body_read": True,
                "body_length": len(body),
                "body_done_time": round(body_done, 3),
                "chunked": chunk_sizes is not None,
                "chunk_sizes": chunk_sizes,
                "chunk_size_lines": chunk_size_lines,
                "trailers": trailers,
                "body_text": body.decode("utf-8", "replace") if ".m3u8" in path else None,
                "peer_closed_before_response": peer_closed_before_response,
                "bytes_after_body_before_response": bytes_after_body_before_response,
                "response_head": resp,
            })
            log.add(rec)
            if close:
                return
    except Exception as e:  # keep serving other connections
        # A request whose head was seen is always logged.
        if rec is not None and "response_status" not in rec:
            rec["error"] = "connection closed mid-request" if isinstance(e, Closed) else repr(e)
            log.add(rec)
    finally:
        conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("logfile")
    ap.add_argument("--challenge", choices=["md5", "sha256-md5", "md5-sha256"], default="md5")
    ap.add_argument("--final-status", type=int, default=201)
    ap.add_argument("--delay-final", type=float, default=0.0)
    args = ap.parse_args()
    log = Log(args.logfile)
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", args.port))
    srv.listen(64)
    conn_id = 0
    while True:
        conn, peer = srv.accept()
        conn_id += 1  # connections numbered in accept order
        threading.Thread(target=handle, args=(conn, conn_id, peer, log, args), daemon=True).start()


if __name__ == "__main__":
    main()
