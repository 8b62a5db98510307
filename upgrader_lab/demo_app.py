"""The lab application: shipped inside the demo-libfoo package, run in each container.

``python3 app.py ADDRESS PORT`` serves ``GET /version`` (the package version
this container saw when it started, i.e. the version its root had at its
last start) and ``GET /health`` (200 ``ok``; 500 when the package is a
``--bad`` build), 404 naming the path otherwise. It maps the package's
``libfoo.so.1`` for as long as it runs, as a process maps its libraries.
Standard library only: it runs on the container's root.

Light, so that a lab runs 120 of them on 2 CPUs: one process, one thread,
an event loop over non-blocking sockets (``selectors``) that sleeps until a
connection comes (no timer, no polling: an idle container costs no CPU),
and none of ``http.server``'s imports (``email``, ``http.client``, ``ssl``:
about 9 MiB of resident memory less, about 10 MiB in all). HTTP/1.0 as
``http.server`` answers by default: one request per connection, then close.
A connection that sends no complete request within :data:`IDLE_SECONDS` is
closed (a TCP check connects and leaves).
"""

import mmap
import os
import selectors
import socket
import sys
import time

SHARE = "/usr/share/demo-libfoo"
LIBRARY = "/usr/lib/demo-libfoo/libfoo.so.1"
BACKLOG = 128  # many probes at once must not overflow the backlog
MAX_REQUEST = 8192  # request line and headers; a longer request is answered 431
IDLE_SECONDS = 10.0
MAPPED = None  # the library's mapping, kept
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 431: "Request Header Fields Too Large",
           500: "Internal Server Error", 501: "Not Implemented"}


def load(share: str = SHARE, library: str = LIBRARY) -> tuple:
    """The version and whether this is a ``--bad`` build; maps ``library`` for as long as the process runs."""
    global MAPPED
    if os.path.exists(library):  # mapped for as long as the application runs, as a process maps its libraries
        with open(library, "rb") as lib:
            MAPPED = mmap.mmap(lib.fileno(), 0, prot=mmap.PROT_READ)
    with open(os.path.join(share, "VERSION")) as f:
        version = f.read().strip()
    return version, os.path.exists(os.path.join(share, "BROKEN"))


def answer(request: bytes, version: str, broken: bool) -> bytes:
    """The whole response to ``request`` (its request line and headers)."""
    parts = request.split(b"\n", 1)[0].split()
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
        code, text = 400, "bad request"
    elif parts[0] != b"GET":
        code, text = 501, f"unsupported method: {parts[0].decode('latin-1')}"
    else:
        path = parts[1].decode("latin-1")
        if path == "/version":
            code, text = 200, version
        elif path == "/health":
            code, text = (500, "broken build") if broken else (200, "ok")
        else:
            code, text = 404, f"not found: {path}"
    return response(code, text)


def response(code: int, text: str) -> bytes:
    body = (text + "\n").encode()
    head = (f"HTTP/1.0 {code} {REASONS[code]}\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode() + body


def complete(buffer: bytes) -> bool:
    return b"\r\n\r\n" in buffer or b"\n\n" in buffer


def serve(listener: socket.socket, version: str, broken: bool, idle: float = IDLE_SECONDS) -> None:
    """Answer connections on ``listener`` forever (until the process is ended)."""
    listener.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    waiting: dict = {}  # connection -> (its request so far, when it is closed unanswered)
    while True:
        # Sleep until something comes; with a connection open, at most until the first one's deadline.
        timeout = max(0.0, min(d for _, d in waiting.values()) - time.monotonic()) if waiting else None
        for key, _ in selector.select(timeout):
            if key.fileobj is listener:
                _accept(listener, selector, waiting, idle)
            else:
                _read(key.fileobj, selector, waiting, version, broken)
        now = time.monotonic()
        for conn in [c for c, (_, deadline) in waiting.items() if deadline <= now]:
            _close(conn, selector, waiting)


def _accept(listener: socket.socket, selector: selectors.BaseSelector, waiting: dict, idle: float) -> None:
    while True:
        try:
            conn, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # e.g. a connection reset before it was accepted, out of descriptors
            return
        conn.setblocking(False)
        selector.register(conn, selectors.EVENT_READ)
        waiting[conn] = (b"", time.monotonic() + idle)


def _read(conn: socket.socket, selector: selectors.BaseSelector, waiting: dict, version: str, broken: bool) -> None:
    try:
        chunk = conn.recv(4096)
    except (BlockingIOError, InterruptedError):
        return
    except OSError:
        chunk = b""
    buffer, deadline = waiting[conn]
    buffer += chunk
    # Answered: a request whose headers are complete, or whose request line came before the client stopped
    # sending (as http.server answers it); closed unanswered: a client that left sending nothing (a TCP check).
    done = complete(buffer) or (not chunk and b"\n" in buffer)
    if not chunk and not done:
        _close(conn, selector, waiting)
        return
    if done or len(buffer) > MAX_REQUEST:
        reply = answer(buffer, version, broken) if done else response(431, "request too long")
        try:
            conn.setblocking(True)
            conn.settimeout(2.0)
            conn.sendall(reply)  # a few hundred bytes: the socket's buffer takes them at once
        except OSError:
            pass
        _close(conn, selector, waiting)
    else:
        waiting[conn] = (buffer, deadline)


def _close(conn: socket.socket, selector: selectors.BaseSelector, waiting: dict) -> None:
    waiting.pop(conn, None)
    try:
        selector.unregister(conn)
    except (KeyError, ValueError):
        pass
    conn.close()


def listen(address: str, port: int) -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((address, port))
    listener.listen(BACKLOG)
    return listener


if __name__ == "__main__":
    VERSION, BROKEN = load()
    serve(listen(sys.argv[1], int(sys.argv[2])), VERSION, BROKEN)
