#!/usr/bin/env python3
"""An origin for benches/load/stream.sh: every GET is answered with one HTML page of TOTAL_MB
megabytes (MiB), generated on the fly (nothing on disk, nothing held in memory beyond one chunk)
and sent with a Content-Length. The page carries the demo's third-party snippets at its start and
end, so the proxy really rewrites it.

usage: stream_origin.py REPO_DIR PORT TOTAL_MB
"""

import http.server
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_pages import BLOCK, demo_snippets  # noqa: E402

CHUNK = 64 * 1024


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 (http.server's naming)
        snips = self.server.snips
        head = (
            '<!doctype html><html><head><meta charset="utf-8"><title>Big</title>\n'
            + snips["ANALYTICS"]
            + "</head><body>\n"
        ).encode()
        tail = (snips["YOUTUBE"] + snips["ZENDESK"] + "</body></html>\n").encode()
        total = self.server.total
        middle = total - len(head) - len(tail)
        block = BLOCK.encode()
        chunk = block * (CHUNK // len(block))
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(total))
        self.end_headers()
        try:
            self.wfile.write(head)
            self.wfile.flush()
            left = middle
            while left > 0:
                piece = chunk if left >= len(chunk) else b" " * left
                self.wfile.write(piece)
                left -= len(piece)
            self.wfile.write(tail)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    repo, port, total_mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    srv.snips = demo_snippets(repo)
    srv.total = total_mb * 1024 * 1024
    srv.serve_forever()


if __name__ == "__main__":
    main()
