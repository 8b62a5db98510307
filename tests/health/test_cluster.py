"""Level 1 as a pure function over small hand-built snapshots (crm_mon XML tests come from lab captures)."""

from __future__ import annotations

import threading

import pytest

from tests.health.level1 import Failure, Resource
from upgrader.health.cluster import Problem, Snapshot, SnapshotRounds, cluster_problem
from upgrader.health.errors import CheckFailed

GROUP = ("vip", "web1")
OLD = Failure("web1", "node1", "web1_monitor_5000")


def snap(*resources: Resource, failures: tuple[Failure, ...] = (), counts: dict | None = None) -> Snapshot:
    return Snapshot({r.id: r for r in resources}, failures, counts or {})


def started(rid: str, node: str = "node2", **kw: object) -> Resource:
    return Resource(rid, "Started", (node,), **kw)  # type: ignore[arg-type]


BASELINE = snap(started("vip", "node1"), started("web1", "node1"), failures=(OLD,), counts={("web1", "node1"): 1})


def test_all_started_on_expected_node() -> None:
    now = snap(started("vip"), started("web1"), started("other", "node1", failed=True),
               failures=(OLD, Failure("other", "node1", "other_start_0")), counts={("web1", "node1"): 1})
    assert cluster_problem(GROUP, "node2", now, BASELINE) is None  # old failure and other resources ignored


@pytest.mark.parametrize("web1, message", [
    (None, "web1 is not in the cluster status"),
    (Resource("web1", "Starting", ("node2",)), "web1 is Starting on node2, expected Started"),
    (started("web1", pending="Starting"), "web1 has a pending operation (Starting)"),
    (started("web1", "node1"), "web1 runs on node1, expected node2"),
    (Resource("web1", "Started", ("node1", "node2")), "web1 runs on node1, node2, expected node2"),
    (Resource("web1", "Stopped"), "web1 runs on no node, expected node2"),
    (started("web1", failed=True), "web1 is failed"),
])
def test_not_there_yet(web1: Resource | None, message: str) -> None:
    now = snap(started("vip"), *([web1] if web1 else []))
    assert cluster_problem(GROUP, "node2", now, BASELINE) == Problem(message, final=False)


def test_new_failure_is_final() -> None:
    new = Failure("web1", "node2", "web1_monitor_5000")
    now = snap(started("vip"), started("web1"), failures=(OLD, new))
    assert cluster_problem(GROUP, "node2", now, BASELINE) == Problem(
        "new failure of web1 on node2: web1_monitor_5000", final=True)


def test_fail_count_rise_is_final() -> None:
    now = snap(started("vip"), started("web1"), failures=(OLD,), counts={("web1", "node1"): 2})
    assert cluster_problem(GROUP, "node2", now, BASELINE) == Problem(
        "fail-count of web1 on node1 rose from 1 to 2", final=True)


def test_rounds_share_one_reading_and_retry_after_fetch_errors() -> None:
    calls: list[float] = []
    gate = threading.Barrier(10, timeout=5)

    def fetch(timeout: float) -> Snapshot:
        calls.append(timeout)
        if len(calls) == 2:
            raise RuntimeError("crm_mon exited 102")
        return snap(started("vip", str(len(calls))))

    rounds = SnapshotRounds(fetch)
    readers = [rounds.reader() for _ in range(10)]
    seen: list[Snapshot] = []

    def read(reader) -> None:  # type: ignore[no-untyped-def]
        gate.wait()
        seen.append(reader(1.0))

    threads = [threading.Thread(target=read, args=(r,)) for r in readers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=5)
    assert calls == [1.0] and len(seen) == 10 and all(s.resources["vip"].nodes == ("1",) for s in seen)
    with pytest.raises(CheckFailed, match="^cannot read the cluster status: crm_mon exited 102$"):
        readers[0](1.0)
    with pytest.raises(CheckFailed, match="crm_mon exited 102"):
        readers[1](1.0)  # same round: the error is shared, not fetched again
    assert len(calls) == 2
    assert readers[0](1.0).resources["vip"].nodes == ("3",)  # after an error, the next round fetches
    assert readers[1](1.0).resources["vip"].nodes == ("3",) and len(calls) == 3


def test_a_reading_the_caller_just_made_is_the_first_round_and_the_next_fetches() -> None:
    calls: list[float] = []

    def fetch(timeout: float) -> Snapshot:
        calls.append(timeout)
        return snap(started("vip", "fetched"))

    rounds = SnapshotRounds(fetch, first=snap(started("vip", "given")))
    one, two = rounds.reader(), rounds.reader()
    assert one(1.0).resources["vip"].nodes == ("given",) and two(1.0).resources["vip"].nodes == ("given",)
    assert calls == []  # the given reading served every reader's first round
    assert one(1.0).resources["vip"].nodes == ("fetched",) and calls == [1.0]
