"""The lab's application (upgrader_lab/demo_app.py): what it answers, and light enough for 120 containers on
2 CPUs: one thread, asleep until a connection comes, none of http.server's imports. It runs here on a unix
socket, in a process of its own: no network at all."""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from upgrader_lab import demo_app

TREE = Path(__file__).resolve().parents[2]


def test_the_application_answers_as_before() -> None:
    def parse(raw: bytes) -> tuple[str, dict[str, str], str]:
        head, body = raw.decode().split("\r\n\r\n", 1)
        status, *headers = head.split("\r\n")
        return status, dict(h.split(": ", 1) for h in headers), body

    status, headers, body = parse(demo_app.answer(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n", "7", False))
    assert (status, body) == ("HTTP/1.0 200 OK", "7\n")
    assert headers == {"Content-Type": "text/plain", "Content-Length": "2", "Connection": "close"}
    assert parse(demo_app.answer(b"GET /health HTTP/1.0\r\n\r\n", "7", False))[::2] == ("HTTP/1.0 200 OK", "ok\n")
    assert parse(demo_app.answer(b"GET /health HTTP/1.0\r\n\r\n", "7", True))[::2] == (
        "HTTP/1.0 500 Internal Server Error", "broken build\n")
    assert parse(demo_app.answer(b"GET /x?y HTTP/1.1\r\n\r\n", "7", False))[::2] == (
        "HTTP/1.0 404 Not Found", "not found: /x?y\n")
    assert parse(demo_app.answer(b"POST /version HTTP/1.1\r\n\r\n", "7", False))[0] == "HTTP/1.0 501 Not Implemented"
    assert parse(demo_app.answer(b"nonsense\r\n\r\n", "7", False))[0] == "HTTP/1.0 400 Bad Request"


def test_the_application_reads_its_version_and_maps_its_library(tmp_path: Path) -> None:
    (tmp_path / "VERSION").write_text("3\n")
    library = tmp_path / "libfoo.so.1"
    library.write_bytes(b"\x7fELF old code")
    assert demo_app.load(str(tmp_path), str(library)) == ("3", False)
    assert demo_app.MAPPED is not None and demo_app.MAPPED[:4] == b"\x7fELF"
    (tmp_path / "BROKEN").write_text("")
    assert demo_app.load(str(tmp_path), str(tmp_path / "none")) == ("3", True)


class _UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=5)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(self.unix_path)


SERVE = """
import socket, sys
sys.path.insert(0, sys.argv[1])
import demo_app
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind(sys.argv[2])
listener.listen(demo_app.BACKLOG)
print("ready", flush=True)
demo_app.serve(listener, "7", False, idle=float(sys.argv[3]))
"""


@pytest.fixture()
def served(tmp_path: Path):
    """The application's loop, in a process of its own, on a unix socket (no network at all)."""
    path = str(tmp_path / "app.sock")
    app = subprocess.Popen([sys.executable, "-I", "-S", "-c", SERVE, str(TREE / "upgrader_lab"), path, "1.0"],
                           stdout=subprocess.PIPE, text=True)
    try:
        assert app.stdout.readline() == "ready\n"
        yield path, app
    finally:
        app.kill()
        app.wait(timeout=10)


def _get(path: str, what: str) -> tuple[int, str]:
    conn = _UnixHTTP(path)
    try:
        conn.request("GET", what)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def test_the_application_serves_many_clients_at_once_and_idles_without_cpu(served) -> None:
    path, app = served
    assert _get(path, "/version") == (200, "7\n")
    assert _get(path, "/nope") == (404, "not found: /nope\n")
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # connects and sends nothing
    silent.connect(path)
    check = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # a TCP-style check: connects and leaves
    check.connect(path)
    check.close()
    partial = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # a request in pieces
    partial.connect(path)
    partial.sendall(b"GET /health HT")
    with ThreadPoolExecutor(max_workers=32) as pool:
        answers = list(pool.map(lambda i: _get(path, "/health"), range(200)))
    assert answers == [(200, "ok\n")] * 200  # the silent connection held nobody up
    partial.sendall(b"TP/1.1\r\nHost: x\r\n\r\n")
    assert partial.recv(4096).startswith(b"HTTP/1.0 200 OK")
    partial.close()
    half = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # a request line, then no more (as netcat sends it)
    half.connect(path)
    half.sendall(b"GET /version HTTP/1.0\r\n")
    half.shutdown(socket.SHUT_WR)
    half.settimeout(5)
    assert half.recv(4096).endswith(b"\r\n\r\n7\n")
    half.close()
    silent.settimeout(5)
    assert silent.recv(10) == b""  # closed after its idle second
    silent.close()
    ticks = _cpu_ticks(app.pid)
    time.sleep(1.5)
    assert _cpu_ticks(app.pid) - ticks <= 1  # idle: no timer, no polling
    memory = next(int(line.split()[1]) for line in Path(f"/proc/{app.pid}/status").read_text().splitlines()
                  if line.startswith("VmRSS:")) / 1024
    assert memory < 16, memory  # http.server's way took about 19 MiB


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def test_the_application_imports_nothing_heavy() -> None:
    code = "import sys; sys.path.insert(0, sys.argv[1]); import demo_app; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code, str(TREE / "upgrader_lab")],
                         capture_output=True, text=True, check=True, timeout=30).stdout.split()
    assert not {"http.server", "http.client", "email", "ssl", "threading", "pathlib"} & set(out)
