"""Shared fixtures: the real lab, brought up once per session and always torn down."""

from __future__ import annotations

import http.server
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.packaging.build import deb  # noqa: F401 - the session's built package, a fixture for lab tests too
from upgrader_lab import lab as ops
from upgrader_lab.client import LabClient
from upgrader_lab.layout import DEFAULT_PROFILE, Lab


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``scale`` (a lab of 120 applications, most of an hour) run only when a ``-m`` expression
    names that marker (``make test-scale`` runs ``-m scale``); ``make test`` and a plain pytest leave them out."""
    if "scale" in (config.getoption("markexpr", "") or ""):
        return
    left_out = [item for item in items if item.get_closest_marker("scale")]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if not item.get_closest_marker("scale")]


def lab_name(suffix: str = "") -> str:
    """A name of our own, so parallel test runs never share a lab."""
    return f"t{os.getpid() % 100000}{suffix}"[:8]


@contextmanager
def private_lab(suffix: str = "", nodes: int | None = None, apps: int = 3,
                profile: str = DEFAULT_PROFILE) -> Iterator[Lab]:
    """A lab of this test run's own, always torn down (``nodes`` None: the profile's usual count, 3 by default)."""
    name = lab_name(suffix)
    try:
        the_lab, _ = ops.up(name, nodes=nodes, apps=apps, profile=profile)
        yield the_lab
    finally:
        ops.down(name)


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """A 3-node lab with 3 applications at version 1 (session-wide)."""
    with private_lab() as the_lab:
        yield the_lab


@pytest.fixture()
def client(lab: Lab) -> Iterator[LabClient]:
    with LabClient(lab.client_netns) as c:
        yield c


@pytest.fixture()
def webhook_server() -> Iterator[tuple[str, list[dict]]]:
    """An HTTP server on 127.0.0.1: /hook records POSTs, /moved redirects elsewhere."""
    got: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append({"path": self.path, "type": self.headers["Content-Type"], "doc": json.loads(body)})
            if self.path == "/moved":
                self.send_response(307)
                self.send_header("Location", "/hook")
            else:
                self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", got
    finally:
        httpd.shutdown()
        httpd.server_close()
