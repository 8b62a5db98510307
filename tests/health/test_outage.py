"""The outage watch against real listeners on 127.0.0.1: stopped and restarted to make a measured gap."""

from __future__ import annotations

import socket
import statistics
import time

import pytest

from upgrader.health import outage
from upgrader.health.outage import FINE, Watch, address, outages

# The measured span against the gap the test made: each end is known to one FINE period plus the probe loop's
# scheduling jitter, which a loaded 2-CPU CI stretches (a run saw 0.040 s over the gap in a full suite).
TOLERANCE = 2 * FINE + 0.06


def listener(port: int = 0, backlog: int = 128) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(backlog)
    return s


def fill(port: int) -> list[socket.socket]:
    """Connections that fill a backlog-0 listener's accept queue (never accepted): from then on its SYNs are
    dropped, as an address that left answers nothing."""
    stuck = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        stuck.append(s)
    time.sleep(0.05)
    return stuck


def failures(w: Watch, key: str) -> list[float]:
    return [t for samples in w.samples(key).values() for t, ok in samples if not ok]


def test_a_stopped_and_restarted_listener_is_measured_within_tolerance_at_a_20_ms_resolution() -> None:
    up = listener()
    port = up.getsockname()[1]
    with Watch({"app": [("127.0.0.1", port)]}) as w:
        time.sleep(0.3)
        up.close()  # connects refused from here
        stopped = time.monotonic()
        time.sleep(0.4)
        up = listener(port)
        gap = time.monotonic() - stopped
        time.sleep(0.3)
    up.close()
    assert w.error is None
    longest = w.longest()["app"]
    assert abs(longest - gap) <= TOLERANCE, (longest, gap)
    assert longest >= gap - 0.005  # a span between successes bounds the outage from above
    sent = sorted(failures(w, "app"))
    assert len(sent) >= 0.4 / FINE * 0.7
    assert statistics.median(b - a for a, b in zip(sent, sent[1:])) <= FINE + 0.003  # the resolution


def test_an_address_that_answers_nothing_costs_resolution_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A full accept queue drops SYNs, as an address that left answers nothing: each probe waits its whole
    timeout, yet probes go on every FINE seconds, so the outage's end is seen within one period."""
    monkeypatch.setattr(outage, "TIMEOUT", 0.3)
    up = listener()
    port = up.getsockname()[1]
    with Watch({"app": [("127.0.0.1", port)]}) as w:
        time.sleep(0.3)
        silent = time.monotonic()
        up.close()
        full = listener(port, backlog=0)
        stuck = fill(port)
        time.sleep(0.5)
        for s in stuck:
            s.close()
        full.close()
        up = listener(port)
        gap = time.monotonic() - silent
        time.sleep(0.4)
    up.close()
    longest = w.longest()["app"]
    assert abs(longest - gap) <= TOLERANCE, (longest, gap)  # not the 0.3 s timeout longer
    timed_out = failures(w, "app")
    assert len(timed_out) >= 0.5 / FINE * 0.7  # probes overlapped while each waited


def test_no_outage_is_zero_and_a_recovered_address_is_probed_coarsely_after_its_grace() -> None:
    up = listener()
    port = up.getsockname()[1]
    with Watch({"steady": [("127.0.0.1", port)]}) as w:
        time.sleep(0.5)
    assert w.longest() == {"steady": 0.0}
    samples = w.samples("steady")[("127.0.0.1", port)]
    assert samples and all(ok for _, ok in samples)
    # A run of successes is kept as its two ends once settled: memory follows outages, not time.
    assert len(samples) <= 0.5 / FINE + 2

    with Watch({"moved": [("127.0.0.1", port)]}) as w:
        time.sleep(0.1)
        up.close()
        time.sleep(0.1)
        up = listener(port)
        back = time.monotonic()
        time.sleep(outage.GRACE + 1.0)
    up.close()
    late = [t for s in w.samples("moved").values() for t, _ in s if t > back + outage.GRACE + 0.05]
    assert late and len(late) <= 1.0 / outage.COARSE + 2  # coarse: not 50 probes a second any more
    assert 0.1 - TOLERANCE <= w.longest()["moved"] <= 0.1 + 2 * TOLERANCE


def test_names_not_in_focus_are_probed_coarsely_until_they_fail() -> None:
    up = listener()
    port = up.getsockname()[1]
    w = Watch({"a": [("127.0.0.1", port)], "b": [("127.0.0.1", port)]}, fine=["a"], cool=False)
    with w:
        time.sleep(1.0)
    up.close()
    count = {k: sum(1 for s in w.samples(k).values() for t, _ in s) for k in ("a", "b")}
    assert count["b"] <= 1.0 / outage.COARSE + 2 < count["a"]
    w.focus(["b"])
    assert all(t.hot for t in w._targets)


def test_the_watch_stops_within_its_bound_and_closes_every_probe() -> None:
    full = listener(backlog=0)  # a full accept queue on 127.0.0.1: SYNs dropped, nothing answers
    port = full.getsockname()[1]
    stuck = fill(port)
    try:
        w = Watch({"gone": [("127.0.0.1", port)]}).start()
        time.sleep(0.3)
        begun = time.monotonic()
        w.stop()
        assert time.monotonic() - begun < outage.STOP_WAIT
    finally:
        for s in stuck:
            s.close()
        full.close()
    assert w.error is None
    assert w.ended is not None and w.started is not None
    assert w.longest()["gone"] == pytest.approx(w.ended - w.started, abs=0.05)  # down throughout: the whole watch


def test_outages_between_successes() -> None:
    samples = [(0.0, True), (0.02, True), (0.04, False), (0.06, False), (0.08, True), (0.1, True), (0.12, False)]
    assert outages(samples, 0.0, 0.2) == [pytest.approx(0.06), pytest.approx(0.1)]  # the last goes on to the end
    assert outages([(0.0, False), (0.3, True)], 0.0, 1.0) == [0.3]  # down at the start: from the start
    assert outages([(0.0, False), (0.3, True)], 0.0, 1.0, from_start=False) == []  # the benchmarks' rule
    assert outages([(0.0, True), (0.5, True)], 0.0, 1.0) == []  # a late probe is not an outage
    assert outages(list(reversed(samples)), 0.05, 0.2) == [pytest.approx(0.06), pytest.approx(0.1)]  # anchored


def test_only_ip_literals_are_watched() -> None:
    assert address("198.51.100.7", 80) == ("198.51.100.7", 80)
    assert address("2001:db8::1", 443) == ("2001:db8::1", 443)
    assert address("app.example", 80) is None
