"""Level 3: the probes a client would do (TCP connect, HTTP(S) GET), stdlib only."""

from __future__ import annotations

import http.client
import re
import socket
import ssl
from functools import cache
from time import monotonic

from upgrader.bounded import call_in_child
from upgrader.health.errors import CheckFailed
from upgrader.health.spec import ProbeSpec

MAX_BODY = 64 * 1024  # body= is searched in the first 64 KiB
USER_AGENT = "upgrader-health"


def run_probe(probe: ProbeSpec, timeout: float) -> None:
    """One attempt at ``probe``, all of it within ``timeout`` seconds; raise CheckFailed."""
    deadline = monotonic() + timeout
    try:
        if probe.scheme == "tcp":
            socket.create_connection((probe.host, probe.port), timeout=timeout).close()
        else:
            _http(probe, timeout, deadline)
    except (OSError, http.client.HTTPException) as exc:
        raise CheckFailed(_describe(exc, timeout)) from None


def _http(probe: ProbeSpec, timeout: float, deadline: float) -> None:
    if probe.scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            probe.host, probe.port, timeout=timeout, context=_tls(probe.verify))
    else:
        conn = http.client.HTTPConnection(probe.host, probe.port, timeout=timeout)
    try:
        conn.request("GET", probe.path, headers={"User-Agent": USER_AGENT, "Connection": "close"})
        _tighten(conn, deadline)
        resp = conn.getresponse()
        if resp.status != probe.status:
            raise CheckFailed(f"HTTP status {resp.status} {resp.reason}, expected {probe.status}")
        if probe.body and not _matches(probe, _body(conn, resp, deadline), deadline):
            raise CheckFailed(f"HTTP {resp.status} but body does not match {probe.body.pattern!r}")
    finally:
        conn.close()


def _matches(probe: ProbeSpec, body: str, deadline: float) -> bool:
    """body= searched within what is left of the deadline, in a child process killed at it: the engine's
    wall-clock limit holds whatever the regular expression does, and no thread of ours waits on it."""
    assert probe.body is not None
    left = max(0.01, deadline - monotonic())
    found = search_bounded(probe.body, body, left)
    if found is None:
        raise CheckFailed(f"body={probe.body.pattern!r} did not finish matching within {left:.1f}s "
                          "(a catastrophic regular expression? simplify it)", final=True)
    return found


def search_bounded(pattern: re.Pattern[str], text: str, limit: float) -> bool | None:
    """Whether ``pattern`` is found in ``text``; None when the search did not end within ``limit`` seconds."""
    answer = call_in_child(lambda: b"1" if pattern.search(text) else b"0", limit)
    return None if answer is None else answer == b"1"


def _body(conn: http.client.HTTPConnection, resp: http.client.HTTPResponse, deadline: float) -> str:
    data = b""
    while len(data) < MAX_BODY:
        _tighten(conn, deadline)
        chunk = resp.read1(MAX_BODY - len(data))
        if not chunk:
            break
        data += chunk
    return data.decode("utf-8", "replace")


def _tighten(conn: http.client.HTTPConnection, deadline: float) -> None:
    """Shrink the socket timeout to what is left, so the whole GET keeps its deadline."""
    left = deadline - monotonic()
    if left <= 0:
        raise TimeoutError("timed out")
    if conn.sock is not None:
        conn.sock.settimeout(left)


@cache
def _tls(verify: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:.2g}s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
