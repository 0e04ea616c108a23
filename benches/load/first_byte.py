#!/usr/bin/env python3
"""One GET over a plain socket, timed to the first response byte (what curl calls
time_starttransfer) and to the first body byte (what a browser can start parsing), reading only
the first MiB of the body; says whether MARKER occurs in it (the page was rewritten).

usage: first_byte.py PORT PATH MARKER [HEADER ...]
prints: first_byte_ms first_body_byte_ms marker_seen(0|1)
"""

import socket
import sys
import time

PROBE = 1024 * 1024


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    port, path, marker = int(sys.argv[1]), sys.argv[2], sys.argv[3].encode()
    extra = "".join(h + "\r\n" for h in sys.argv[4:])
    req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}Connection: close\r\n\r\n"
    t0 = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(req.encode())
    buf = b""
    t_first = t_body = None
    while True:
        data = s.recv(65536)
        if not data:
            break
        now = time.perf_counter() - t0
        if t_first is None:
            t_first = now
        buf += data
        head_end = buf.find(b"\r\n\r\n")
        if head_end >= 0 and t_body is None and len(buf) > head_end + 4:
            t_body = now
        if head_end >= 0 and len(buf) - head_end >= PROBE:
            break
    s.close()
    head_end = buf.find(b"\r\n\r\n")
    if t_first is None or t_body is None or head_end < 0:
        sys.exit("first_byte.py: no response body")
    if not buf.startswith(b"HTTP/1.1 200"):
        sys.exit(f"first_byte.py: {buf.splitlines()[0]!r}")
    seen = 1 if marker in buf[head_end:] else 0
    print(f"{t_first * 1000:.3f} {t_body * 1000:.3f} {seen}")


if __name__ == "__main__":
    main()
