"""Real HTTP servers on 127.0.0.1 (ephemeral ports), always shut down."""

from __future__ import annotations

import socket
import sys
import ssl
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterator

import pytest


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # 50 simultaneous connects must not overflow the backlog

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):  # a client that gave up
            super().handle_error(request, client_address)


@contextmanager
def _serve(answer: Callable[[int], tuple[int, bytes]], delay: float = 0.0,
          tls: ssl.SSLContext | None = None) -> Iterator[tuple[int, list[str]]]:
    """Serve GETs: ``answer(n)`` gives (status, body) for the n-th request (from 1).

    Yields the port and the list of paths requested. A ``delay`` is waited on
    an event set at shutdown, so a slow handler never outlives the test.
    """
    released = threading.Event()
    paths: list[str] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with lock:
                paths.append(self.path)
                n = len(paths)
            released.wait(delay)
            status, body = answer(n)
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = _Server(("127.0.0.1", 0), Handler)
    if tls:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], paths
    finally:
        released.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port bound on 127.0.0.1 but not listening: connecting is refused, and nobody else can take it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


@pytest.fixture
def serve() -> Callable[..., object]:
    """``with serve(answer, delay=0, tls=None) as (port, paths)``: see :func:`_serve`."""
    return _serve
