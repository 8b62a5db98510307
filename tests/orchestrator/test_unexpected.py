"""An error nobody foresaw, at every phase of a node, in a run and in the APT hooks' finishing step:
never a traceback with a node drained. It ends like a failed check: the node back online when its
packages were untouched, in standby and quarantined when they may have changed; one line; exit 4."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import pytest

from tests.helpers import AheadNoted, write_node_attributes

from upgrader.config import Config
from upgrader.history import History
from upgrader.orchestrator.context import NodeResult
from upgrader.orchestrator.outcome import Outcome, Stop
from upgrader.orchestrator.procedure import Rollout
from upgrader.orchestrator.remote import NodePlan
from upgrader.packages.plan import Change
from upgrader.runs import QUARANTINE
from upgrader.pacemaker.state import parse_crm_mon

DATA = Path(__file__).parents[1] / "pacemaker" / "data"
STATE = parse_crm_mon((DATA / "crm_mon-all-online.xml").read_text())  # captured: 3 nodes online, quorate


class FakeCluster:
    """What the steps ask of the cluster, recorded; the state is the captured one."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.marks: dict[tuple[str, str], str] = {}

    def state(self, timeout: float | None = None):
        return STATE

    def set_standby(self, node: str, on: bool) -> None:
        self.calls.append(("standby", node, on))

    def set_attribute(self, node: str, name: str, value: str, lifetime: str = "forever") -> None:
        self.calls.append(("attribute", node, name))
        self.marks[(node, name)] = value

    def get_attribute(self, node: str, name: str, lifetime: str = "forever") -> str | None:
        return self.marks.get((node, name))

    def set_node_attributes(self, values: Mapping[str, Mapping[str, str]]) -> None:
        write_node_attributes(self, values)

    def delete_node_attributes(self, nodes: Any, name: str) -> None:
        for node in nodes:
            self.marks.pop((node, name), None)

    def wait_settled(self, expect: object = None, *, deadline: float, interval: float | None = None, first=None):
        self.calls.append(("settled",))
        return STATE


class Quiet:
    def step(self, node, phase, text) -> None: ...

    def progress(self, node, event) -> None: ...


class FreshLock:
    def heartbeat(self, phase: str | None = None, *, before_move: bool = False) -> None: ...


class FakeNodes(AheadNoted):
    local = "node1"


def rollout(tmp_path: Path) -> tuple[Rollout, FakeCluster]:
    cluster = FakeCluster()
    r = Rollout(cluster, FakeNodes(), checks=None, config=Config(settle_timeout=5),  # type: ignore[arg-type]
                history=History(tmp_path / "history.jsonl"), report=Quiet(), run_id="20261201T000000-node1-abcdef")
    r.lock = FreshLock()  # type: ignore[assignment]
    r.results = {"node2": NodeResult("node2")}
    return r, cluster


def boom(*_: object, **__: object) -> Any:
    raise RuntimeError("boom [/etc/app.conf]")


PLAN = NodePlan("node2", (Change("demo-libfoo", "1", "2"),))


@pytest.mark.parametrize("phase", ["drain", "upgrade", "fail_over"])
def test_an_unexpected_error_at_any_phase_of_a_node_ends_like_a_failed_check(tmp_path: Path, phase: str) -> None:
    r, cluster = rollout(tmp_path)
    moved = type("Drained", (), {"moved": {}, "instances": ()})()

    def drained(node: str, now: Any = None) -> Any:
        cluster.set_standby(node, True)
        return moved

    r.drain = boom if phase == "drain" else drained  # type: ignore[method-assign]
    r.upgrade = boom if phase == "upgrade" else (lambda node, stack=False, packages=0: type("A", (), {"changes": ()})())  # type: ignore[method-assign]
    r.fail_over = boom  # type: ignore[method-assign]  # reached only when the phases before it passed
    with pytest.raises(Stop) as caught:
        r.upgrade_one("node2", PLAN)
    stop = caught.value
    assert stop.code == Outcome.NEEDS_PERSON
    said = str(stop)
    assert said.startswith("an unexpected error (RuntimeError: boom [/etc/app.conf]) while upgrading node2; ")
    if phase == "drain":  # its packages untouched: back online
        assert said.endswith("node2 is back online, not upgraded")
        assert ("standby", "node2", False) in cluster.calls
        assert r.results["node2"].result == "failed"
    else:  # dpkg may have run: standby, quarantined
        assert said.endswith("node2 is in standby and quarantined (its packages may have changed)")
        assert cluster.calls[-3:] == [("standby", "node2", True), ("attribute", "node2", QUARANTINE), ("settled",)]
        assert r.results["node2"].result == "quarantined"
    assert r.results["node2"].error == said
    records = [line for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert any('"error": "an unexpected error (RuntimeError: boom [/etc/app.conf])"' in line for line in records)
    assert '"event": "end"' in records[-1] and '"result": "' in records[-1]  # the node's end line is written


def test_an_unexpected_error_in_the_finishing_step_quarantines_this_node_and_releases_the_lock(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from upgrader.orchestrator import finishing, steering

    r, cluster = rollout(tmp_path)
    released: list[bool] = []
    r.lock = type("L", (), {"acquire": lambda self, phase, **k: None, "heartbeat": lambda self, *a, **k: None,  # type: ignore[assignment]
                            "release": lambda self: released.append(True)})()
    r.plan_all = lambda nodes: {n: NodePlan(n) for n in nodes}  # type: ignore[method-assign]
    r.all_nodes = [n.name for n in STATE.nodes]
    r.mark_patched = lambda node: r.patched.add(node)  # type: ignore[method-assign]
    monkeypatch.setattr(steering, "clean_up", lambda cluster, nodes: [])
    code = finishing.finish(r, boom)
    assert code == Outcome.NEEDS_PERSON and released == [True]
    assert r.results["node1"].result == "quarantined"
    assert r.stop_reason and r.stop_reason.startswith("an unexpected error (RuntimeError: boom [/etc/app.conf]) "
                                                      "while upgrading node1; node1 is in standby and quarantined")


def test_the_finishing_step_of_a_quarantined_node_is_refused_naming_the_quarantine(tmp_path: Path) -> None:
    from upgrader.orchestrator import finishing
    from upgrader.orchestrator.outcome import Refused

    r, cluster = rollout(tmp_path)
    cluster.marks[("node1", QUARANTINE)] = "run 20261130T000000-node2-aaaaaa at 2026-11-30T00:10:00Z"
    with pytest.raises(Refused) as caught:
        finishing.finish(r, boom)
    assert str(caught.value) == ("refused: node1 is quarantined (run 20261130T000000-node2-aaaaaa at "
                                 "2026-11-30T00:10:00Z); it stays in standby: fix it, then clear it with "
                                 "'rolling-upgrade unquarantine node1'")
    assert cluster.calls == []  # nothing changed


def test_a_history_that_cannot_be_written_still_puts_the_drained_node_back(tmp_path: Path) -> None:
    from upgrader.history import HistoryError

    r, cluster = rollout(tmp_path)

    class FullDisk:
        def record(self, *args: object, **kwargs: object) -> None:
            raise HistoryError("cannot write the history: No space left on device")

    def drained(node: str, now: Any = None) -> Any:
        cluster.set_standby(node, True)
        r.history = FullDisk()  # type: ignore[assignment]  # /var fills up right after the drain
        raise HistoryError("cannot write the history: No space left on device")

    r.drain = drained  # type: ignore[method-assign]
    with pytest.raises(Stop) as caught:
        r.upgrade_one("node2", PLAN)
    assert str(caught.value).endswith("node2 is back online, not upgraded")
    assert cluster.calls[-2:] == [("standby", "node2", False), ("settled",)]


def test_the_lock_is_kept_fresh_during_a_long_upgrade_and_a_lost_lock_is_said_after_it(tmp_path: Path) -> None:
    import time

    from upgrader.pacemaker.lock import LockLost

    r, _cluster = rollout(tmp_path)
    beats: list[str | None] = []

    class Lock:
        def heartbeat(self, phase: str | None = None, *, before_move: bool = False) -> None:
            beats.append(phase)
            if len(beats) == 3:
                raise LockLost("the upgrade lock of run x on node1 is gone (broken with unlock --force, or stale)")

    r.lock = Lock()  # type: ignore[assignment]
    with pytest.raises(LockLost, match="is gone"):
        with r.heartbeats("upgrade", every=0.05):
            time.sleep(0.4)  # dpkg at work, saying nothing
    assert beats == ["upgrade", "upgrade", "upgrade"]  # it stopped beating once the lock was lost
    beats.clear()
    with r.heartbeats("upgrade", every=0.05):
        time.sleep(0.12)
    assert len(beats) >= 1


def test_an_unexpected_error_in_the_nightly_window_ends_like_a_failed_check(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The window's run is the same procedure: an error nobody foresaw there puts the node back and says so."""
    from datetime import datetime, timezone

    from upgrader.nightly import window
    from upgrader.orchestrator import staging, steering
    from upgrader.orchestrator.recovery import Recovered
    from upgrader.timewindow import parse_window

    r, cluster = rollout(tmp_path)
    released: list[bool] = []
    r.lock = type("L", (), {"acquire": lambda self, phase, **k: None, "heartbeat": lambda self, *a, **k: None,  # type: ignore[assignment]
                            "release": lambda self: released.append(True)})()
    r.preflight = lambda only: {"node2": PLAN}  # type: ignore[method-assign]
    r.catch_up = lambda node, now=None: None  # type: ignore[method-assign]

    def drained_then_boom(node: str, now: Any = None) -> Any:
        cluster.set_standby(node, True)
        raise RuntimeError("boom [/etc/app.conf]")

    r.drain = drained_then_boom  # type: ignore[method-assign]
    monkeypatch.setattr(staging, "stage", lambda run, order: {n: PLAN.changes for n in order})  # staged already
    monkeypatch.setattr(window.start, "rollout", lambda cluster, report: r)
    monkeypatch.setattr(window, "recover", lambda *a: Recovered())
    monkeypatch.setattr(window, "wait_for_lock", lambda *a: None)
    monkeypatch.setattr(window, "LOG_FILE", str(tmp_path / "window.log"))
    monkeypatch.setattr(steering, "clean_up", lambda cluster, nodes: [])
    cfg = Config(windows=(parse_window("Mon-Sun 02:00-04:00 UTC"),), boot_grace=0,
                 history_file=tmp_path / "history.jsonl")
    code, doc, line = window.run_window(cluster, cfg, datetime(2026, 3, 2, 2, 5, tzinfo=timezone.utc), True)
    assert code == Outcome.NEEDS_PERSON and released == [True]
    assert ("standby", "node2", False) in cluster.calls  # back online, not upgraded
    node2 = next(n for n in doc["nodes"] if n["node"] == "node2")
    assert node2["result"] == "failed" and node2["error"].startswith(
        "an unexpected error (RuntimeError: boom [/etc/app.conf]) while upgrading node2; node2 is back online")


def test_a_history_full_at_the_runs_end_still_releases_the_lock_and_says_so(tmp_path: Path) -> None:
    from upgrader.history import HistoryError

    r, _ = rollout(tmp_path)
    released: list[bool] = []
    said: list[str] = []

    class Lock(FreshLock):
        def release(self) -> bool:
            released.append(True)
            return True

    class FullAtTheEnd(History):
        def record(self, run_id: str, node: str | None, phase: str, event: str, **data: Any) -> None:
            if event == "end":
                raise HistoryError("cannot write the history file: No space left on device")
            super().record(run_id, node, phase, event, **data)

    class Said(Quiet):
        def step(self, node, phase, text) -> None:
            said.append(text)

    r.lock, r.history, r.report = Lock(), FullAtTheEnd(tmp_path / "history.jsonl"), Said()  # type: ignore[assignment]
    with r.locked():
        pass
    assert released == [True]
    assert said[-1] == "the run's end is not recorded: cannot write the history file: No space left on device"
