"""The lab application: shipped inside the demo-libfoo package, run in each container.

``python3 app.py ADDRESS PORT`` serves ``GET /version`` (the package version
this container saw when it started, i.e. the version its root had at its
last start) and ``GET /health`` (200 ``ok``; 500 when the package is a
``--bad`` build), 404 naming the path otherwise. It maps the package's
``libfoo.so.1`` for as long as it runs, as a process maps its libraries.
Standard library only: it runs on the container's root.
"""

import mmap
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SHARE = Path("/usr/share/demo-libfoo")
LIBRARY = Path("/usr/lib/demo-libfoo/libfoo.so.1")
if LIBRARY.exists():  # mapped for as long as the application runs, as a process maps its libraries
    with LIBRARY.open("rb") as _lib:
        MAPPED = mmap.mmap(_lib.fileno(), 0, prot=mmap.PROT_READ)
VERSION = (SHARE / "VERSION").read_text().strip()
BROKEN = (SHARE / "BROKEN").exists()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/version":
            self._answer(200, VERSION)
        elif self.path == "/health":
            self._answer(500, "broken build") if BROKEN else self._answer(200, "ok")
        else:
            self._answer(404, f"not found: {self.path}")

    def _answer(self, code: int, text: str) -> None:
        body = (text + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.request_queue_size = 128  # many probes at once must not overflow the backlog
    ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), Handler).serve_forever()
