"""Level 3 against real servers on 127.0.0.1."""

from __future__ import annotations

import ssl
from pathlib import Path
from time import monotonic

import pytest

from upgrader.health.errors import CheckFailed
from upgrader.health.probes import run_probe
from upgrader.health.spec import parse_probe
from upgrader.runner import Runner


def probe(url: str, timeout: float = 2.0) -> None:
    run_probe(parse_probe(url), timeout)


def test_http_200_with_body_match(serve) -> None:
    with serve(lambda n: (200, b"status: ok\n")) as (port, paths):
        probe(f"http://127.0.0.1:{port}/health?x=1#body=^status:%20ok$")
    assert paths == ["/health?x=1"]


def test_http_expected_other_status(serve) -> None:
    with serve(lambda n: (204, b"")) as (port, _):
        probe(f"http://127.0.0.1:{port}/#status=204")
        with pytest.raises(CheckFailed, match="^HTTP status 204 No Content, expected 200$"):
            probe(f"http://127.0.0.1:{port}/")


def test_http_500(serve) -> None:
    with serve(lambda n: (500, b"boom")) as (port, _):
        with pytest.raises(CheckFailed, match="^HTTP status 500 Internal Server Error, expected 200$"):
            probe(f"http://127.0.0.1:{port}/")


def test_body_mismatch(serve) -> None:
    with serve(lambda n: (200, b"starting")) as (port, _):
        with pytest.raises(CheckFailed, match="body does not match 'ready'"):
            probe(f"http://127.0.0.1:{port}/#body=ready")


def test_closed_port(serve, closed_port: int) -> None:
    for url in (f"http://127.0.0.1:{closed_port}/", f"tcp://127.0.0.1:{closed_port}"):
        with pytest.raises(CheckFailed, match="^connection refused$"):
            probe(url)


def test_tcp_open(serve) -> None:
    with serve(lambda n: (200, b"")) as (port, paths):
        probe(f"tcp://127.0.0.1:{port}")
    assert paths == []  # connected and closed, no request


def test_slow_server_hits_the_attempt_timeout(serve) -> None:
    with serve(lambda n: (200, b"ok"), delay=5.0) as (port, _):
        started = monotonic()
        with pytest.raises(CheckFailed, match="^no answer within 0.3s$"):
            probe(f"http://127.0.0.1:{port}/", timeout=0.3)
        assert 0.3 <= monotonic() - started < 0.6


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    d: Path = tmp_path_factory.mktemp("tls")
    Runner(timeout=30).run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                            "-subj", "/CN=127.0.0.1", "-keyout", d / "key.pem", "-out", d / "cert.pem"],
                           what="openssl req (test certificate)")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(d / "cert.pem", d / "key.pem")
    return ctx


def test_https_verify(serve, self_signed: ssl.SSLContext) -> None:
    with serve(lambda n: (200, b"ok"), tls=self_signed) as (port, paths):
        with pytest.raises(CheckFailed, match="CERTIFICATE_VERIFY_FAILED"):
            probe(f"https://127.0.0.1:{port}/")
        probe(f"https://127.0.0.1:{port}/tls#verify=no&body=ok")
    assert paths == ["/tls"]


def test_a_catastrophic_body_regex_keeps_the_deadline_and_starves_no_other_thread(serve) -> None:
    import threading

    ticks: list[float] = []
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.is_set():
            ticks.append(monotonic())
            stop.wait(0.05)

    beat = threading.Thread(target=heartbeat)
    with serve(lambda n: (200, b"a" * 40 + b"!")) as (port, _):
        beat.start()
        started = monotonic()
        try:
            with pytest.raises(CheckFailed, match=r"did not finish matching within .*catastrophic"):
                probe(f"http://127.0.0.1:{port}/#body=(a|aa|aaa)%2B$", timeout=1.0)
        finally:
            took = monotonic() - started
            stop.set()
            beat.join()
    assert took < 3.0, took  # 1 s and a kill: the unbounded search would take hours
    gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    assert len(ticks) >= 10 and max(gaps) < 1.0, gaps  # the heartbeat thread kept running meanwhile
