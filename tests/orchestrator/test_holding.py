"""A fail back holds back, on every node, what the suspect node installed in the run; never a crash.

The procedure runs with the fakes of test_unexpected (the captured crm_mon, standby and settling recorded),
except that the cluster's commands go to Pacemaker's real tools on a copy of a captured CIB (CIB_file): the
fail back's constraints and the holds are written there for real. The nodes' syncs are scripted answers.
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.orchestrator.test_unexpected import STATE, FakeCluster
from tests.helpers import AheadNoted
from upgrader.config import Config
from upgrader.health.report import CheckResult, HealthReport, Level
from upgrader.history import History
from upgrader.orchestrator import holding
from upgrader.orchestrator.context import NodeResult
from upgrader.orchestrator.moves import Move
from upgrader.orchestrator.outcome import Outcome, Stop
from upgrader.orchestrator.procedure import Rollout
from upgrader.pacemaker import holds as store
from upgrader.pacemaker.holds import Hold
from upgrader.pacemaker.live import NotSettled
from upgrader.runner import Result, Runner

DATA = Path(__file__).parents[1] / "pacemaker" / "data"
RUN = "20261201T020000-node1-abcdef"
SINCE = "2026-12-01T02:10:00Z"
CHANGES = [{"package": "demo-app", "installed": "2", "candidate": "3"},
           {"package": "demo-libfoo", "installed": None, "candidate": "1.1-1"},  # newly installed
           {"package": "old-tool", "installed": "0.9", "candidate": None},  # removed: nothing to hold
           {"package": "same", "installed": "1", "candidate": "1"}]


class CibCluster(FakeCluster):
    """The fakes' cluster, its cibadmin on a copy of a captured CIB."""

    def __init__(self, cib: Path) -> None:
        super().__init__()
        self.runner = Runner(env={"CIB_file": str(cib)}, timeout=30)


class Answers(Runner):
    """One node's remote shell: ``holds --sync`` answers ``said`` (or the remote shell's own 255)."""

    def __init__(self, said: str | None, calls: list[tuple[str, tuple[str, ...]]], node: str) -> None:
        super().__init__()
        self.said, self.calls, self.node = said, calls, node

    def call(self, argv, *, timeout=None, input=None, cwd=None):  # type: ignore[override]
        self.calls.append((self.node, tuple(argv)))
        if self.said is None:
            return Result(tuple(argv), 255, "", f"ssh: connect to host {self.node} port 22: No route to host", 1.0)
        return Result(tuple(argv), 0, self.said + "\n", "", 0.2)


class Nodes(AheadNoted):
    local, tool = "node1", "/usr/sbin/rolling-upgrade"

    def __init__(self, answers: dict[str, str | None]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, tuple[str, ...]]] = []
        self.timeouts: list[float] = []
        self.threads: set[str] = set()

    def runner(self, node: str, timeout: float = 60) -> Runner:
        self.timeouts.append(timeout)
        self.threads.add(threading.current_thread().name)
        if node not in self.answers:
            raise RuntimeError(f"no remote shell for {node}")
        return Answers(self.answers[node], self.calls, node)


class Steps:
    def __init__(self) -> None:
        self.lines: list[tuple[str | None, str, str]] = []

    def step(self, node, phase, text) -> None:
        self.lines.append((node, phase, text))

    def progress(self, node, event) -> None: ...


class FreshLock:
    def heartbeat(self, phase: str | None = None, *, before_move: bool = False) -> None: ...


def healthy(moved: Any, before: Any, first: Any = None) -> HealthReport:
    return HealthReport(tuple(CheckResult(rid, where, Level.APPLICATION, "probe", ok=True) for rid, where in moved.items()),
                        0.1)


def rollout(tmp_path: Path, nodes: Nodes) -> tuple[Rollout, CibCluster, Steps]:
    cib = tmp_path / "cib.xml"
    shutil.copy(DATA / "cib-all-online.xml", cib)
    cluster, steps = CibCluster(cib), Steps()
    checks = SimpleNamespace(baseline=lambda state=None: (state or STATE, None), verify=healthy, addresses=lambda rids: {})
    r = Rollout(cluster, nodes, checks, Config(settle_timeout=5),  # type: ignore[arg-type]
                History(tmp_path / "history.jsonl"), steps, RUN)
    r.lock = FreshLock()  # type: ignore[assignment]
    r.all_nodes = ["node1", "node2", "node3"]
    r.results = {n: NodeResult(n) for n in r.all_nodes}
    r.results["node2"].changes = list(CHANGES)
    return r, cluster, steps


def failed_back(r: Rollout) -> Stop:
    move = Move(before=(STATE, None), moved={"app1": "node2"}, suspects={"node2"})  # type: ignore[arg-type]
    return r.fail_back("node2", move, "app1 on node2: application: HTTP 500")


def test_a_fail_back_holds_what_the_suspect_installed_on_every_node(tmp_path: Path) -> None:
    nodes = Nodes({"node1": "unchanged (2 holds)", "node2": "pinned demo-app 3, demo-libfoo 1.1-1", "node3": None})
    r, cluster, steps = rollout(tmp_path, nodes)
    stop = failed_back(r)
    assert stop.code == Outcome.FAILED_BACK and "node2 in standby and quarantined" in str(stop)
    held = store.read(cluster)
    assert [(h.package, h.version, h.run_id, h.node) for h in held] == [
        ("demo-app", "3", RUN, "node2"), ("demo-libfoo", "1.1-1", RUN, "node2")]
    said = [text for _, phase, text in steps.lines if phase == "hold"]
    assert said == [
        "held back on every node: demo-app 3, demo-libfoo 1.1-1; release with rolling-upgrade release-hold "
        "demo-app demo-libfoo",
        "node2: pinned demo-app 3, demo-libfoo 1.1-1",  # the unchanged node1 is not news
        "node3: holds not synced (ssh: connect to host node3 port 22: No route to host); run 'rolling-upgrade "
        "holds --sync' on node3 once it answers"]
    assert sorted(n for n, argv in nodes.calls) == ["node1", "node2", "node3"]
    assert {argv for _, argv in nodes.calls} == {("/usr/sbin/rolling-upgrade", "holds", "--sync")}
    assert set(nodes.timeouts) == {holding.HOLDS_SYNC_TIMEOUT}
    records = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    hold = [e for e in records if e["phase"] == "hold"]
    assert len(hold) == 1 and hold[0]["node"] == "node2" and hold[0]["event"] == "note"
    assert [h["package"] for h in hold[0]["holds"]] == ["demo-app", "demo-libfoo"]
    # the order of things: quarantined and the resources back before the holds are written and synced
    assert ("standby", "node2", True) in cluster.calls
    assert [e["phase"] for e in records].index("quarantine") < [e["phase"] for e in records].index("hold")


def test_holds_that_cannot_be_written_are_said_and_the_fail_back_goes_on(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    nodes = Nodes({"node1": "unchanged (0 holds)"})
    r, cluster, steps = rollout(tmp_path, nodes)

    def gone(cluster: Any, holds: Any) -> list[Hold]:
        raise store.HoldError("the CIB's holds (rolling-upgrade-holds) appeared and vanished 3 times while writing")

    monkeypatch.setattr(store, "add", gone)
    stop = failed_back(r)
    assert stop.code == Outcome.FAILED_BACK
    said = [text for _, phase, text in steps.lines if phase == "hold"]
    assert len(said) == 1 and said[0].startswith("could not hold back the failed build on every node (HoldError: ")
    assert nodes.calls == []  # nothing recorded: nothing to sync


def test_a_node_list_that_cannot_be_synced_at_all_is_said_not_raised(tmp_path: Path) -> None:
    nodes = Nodes({})  # every runner() raises
    r, cluster, steps = rollout(tmp_path, nodes)
    assert failed_back(r).code == Outcome.FAILED_BACK
    said = [text for _, phase, text in steps.lines if phase == "hold"]
    assert said[1:] == [f"{n}: holds not synced (RuntimeError: no remote shell for {n}); run 'rolling-upgrade "
                        f"holds --sync' on {n} once it answers" for n in ("node1", "node2", "node3")]
    assert len(store.read(cluster)) == 2  # the record stands: the next sync brings it


def test_a_fail_back_that_fails_still_holds_the_build_back(tmp_path: Path) -> None:
    nodes = Nodes({"node1": "pinned demo-app 3", "node2": "pinned demo-app 3", "node3": "pinned demo-app 3"})
    r, cluster, steps = rollout(tmp_path, nodes)

    def stuck(expect: object = None, *, deadline: float, interval: float | None = None) -> Any:
        raise NotSettled("cluster not settled after 5s")

    cluster.wait_settled = stuck  # type: ignore[method-assign]
    with pytest.raises(NotSettled):
        failed_back(r)
    assert [h.package for h in store.read(cluster)] == ["demo-app", "demo-libfoo"]


def test_holds_for_takes_the_candidates_of_the_suspects_only() -> None:
    results = {"node2": NodeResult("node2", changes=list(CHANGES)),
               "node3": NodeResult("node3", changes=[{"package": "demo-app", "installed": "2", "candidate": "3"},
                                                     {"package": "Bad_Name", "installed": "1", "candidate": "2"}]),
               "node1": NodeResult("node1", changes=[{"package": "other", "installed": "1", "candidate": "2"}])}
    held, refused = holding.holds_for(results, {"node3", "node2"}, RUN, SINCE)
    assert [(h.package, h.version, h.node) for h in held] == [("demo-app", "3", "node2"), ("demo-libfoo", "1.1-1", "node2")]
    assert refused == ["not held: invalid package name 'Bad_Name': Debian package names are lower-case letters, "
                       "digits and + . - (at least 2, starting with a letter or digit), optionally :ARCH"]
    assert holding.holds_for(results, set(), RUN, SINCE) == ([], [])


def test_the_step_line_names_the_release_command_or_the_listing() -> None:
    few = [Hold("demo-app", "3", RUN, "node2", SINCE)]
    assert holding.held_line(few) == ("held back on every node: demo-app 3; release with rolling-upgrade "
                                      "release-hold demo-app")
    many = [Hold(f"lib{i}", "1", RUN, "node2", SINCE) for i in range(7)]
    assert holding.held_line(many) == ("held back on every node: lib0 1, lib1 1, lib2 1, lib3 1, lib4 1 (+2 more); "
                                       "release with rolling-upgrade release-hold PACKAGE... or --all "
                                       "('rolling-upgrade holds' lists them)")


def test_sync_everywhere_asks_every_node_at_once_and_never_raises() -> None:
    nodes = Nodes({"node1": "unchanged (1 hold)", "node2": None})
    lines = holding.sync_everywhere(nodes, ["node1", "node2", "node3"])  # type: ignore[arg-type]
    assert lines[0] == "node1: unchanged (1 hold)"
    assert lines[1].startswith("node2: holds not synced (ssh: connect to host node2")
    assert lines[2].startswith("node3: holds not synced (RuntimeError: no remote shell for node3)")
    assert holding.sync_everywhere(nodes, []) == []  # type: ignore[arg-type]


def test_release_expired_ends_the_holds_a_newer_version_supersedes(tmp_path: Path) -> None:
    cib = tmp_path / "cib.xml"
    shutil.copy(DATA / "cib-all-online.xml", cib)
    cluster = CibCluster(cib)
    demo, lib = Hold("demo-app", "3", RUN, "node2", SINCE), Hold("libstdc++6", "12.2.0-14", RUN, "node2", SINCE)
    store.add(cluster, [demo, lib])  # type: ignore[arg-type]
    nodes = Nodes({"node1": "unpinned demo-app 3", "node2": "unchanged (1 hold)", "node3": "unpinned demo-app 3"})
    lines = holding.release_expired(cluster, nodes, ["node1", "node2", "node3"],  # type: ignore[arg-type]
                                    {"demo-app": "4", "libstdc++6": "12.2.0-14"})
    assert lines == [f"released the hold on demo-app 3 (failed on node2 in run {RUN}): 4 is newer",
                     "node1: unpinned demo-app 3", "node3: unpinned demo-app 3"]
    assert store.read(cluster) == [lib]  # type: ignore[arg-type]
    nodes = Nodes({"node1": "unchanged (1 hold)", "node2": "unchanged (1 hold)", "node3": "unchanged (1 hold)"})
    assert holding.release_expired(cluster, nodes, ["node1", "node2", "node3"], {}) == []  # type: ignore[arg-type]


def test_release_expired_syncs_only_the_nodes_whose_pins_differ_from_the_cibs_holds(tmp_path: Path) -> None:
    """Each node's plan says what its pin file pins: a node already pinning exactly the CIB's holds is not
    asked again (a remote call per node and run saved); one pinning something else, one that could not say
    (None) and one its plan did not reach are synced; after a release the comparison is with what is left."""
    cib = tmp_path / "cib.xml"
    shutil.copy(DATA / "cib-all-online.xml", cib)
    cluster = CibCluster(cib)
    demo, lib = Hold("demo-app", "3", RUN, "node2", SINCE), Hold("libstdc++6", "12.2.0-14", RUN, "node2", SINCE)
    store.add(cluster, [demo, lib])  # type: ignore[arg-type]
    everyone = ["node1", "node2", "node3", "node4"]
    nodes = Nodes({n: "pinned demo-app 3" for n in everyone})
    both = frozenset({demo, lib})
    lines = holding.release_expired(cluster, nodes, everyone, {}, {"node1": both, "node2": frozenset({lib}),  # type: ignore[arg-type]
                                                                   "node3": None})
    assert [n for n, _ in nodes.calls] == ["node2", "node3", "node4"]
    assert lines == ["node2: pinned demo-app 3", "node3: pinned demo-app 3", "node4: pinned demo-app 3"]
    nodes = Nodes({n: "unpinned demo-app 3" for n in everyone})
    holding.release_expired(cluster, nodes, everyone, {"demo-app": "4"},  # type: ignore[arg-type]
                            {n: both for n in everyone} | {"node4": frozenset({lib})})
    assert [n for n, _ in nodes.calls] == ["node1", "node2", "node3"]  # demo-app 3 released: node4 is right
    nodes = Nodes({n: "unchanged (1 hold)" for n in everyone})
    assert holding.release_expired(cluster, nodes, everyone, {}, {n: frozenset({lib}) for n in everyone}) == []  # type: ignore[arg-type]
    assert nodes.calls == []


def test_a_nodes_plan_says_its_pins_and_anything_unreadable_is_unknown() -> None:
    from upgrader.orchestrator.remote import pins_of

    hold = Hold("demo-app", "3", RUN, "node2", SINCE)
    assert pins_of({"pins": [hold.document()]}) == frozenset({hold})
    assert pins_of({"pins": []}) == frozenset()
    assert pins_of({"pins": None}) is None  # the pin file unreadable there
    assert pins_of({}) is None  # an older tool's plan
    assert pins_of({"pins": [{**hold.document(), "version": "not a version!"}]}) is None


def test_release_expired_says_a_cib_it_cannot_read_and_still_syncs(tmp_path: Path) -> None:
    (tmp_path / "cib.xml").write_text("not a CIB\n")

    class Broken:
        runner = Runner(env={"CIB_file": str(tmp_path / "cib.xml")}, timeout=10)

    nodes = Nodes({"node1": "unchanged (0 holds)"})
    lines = holding.release_expired(Broken(), nodes, ["node1"], {"demo-app": "4"})  # type: ignore[arg-type]
    assert len(lines) == 1 and lines[0].startswith("the holds could not be checked for newer versions (")
    assert nodes.calls == [("node1", ("/usr/sbin/rolling-upgrade", "holds", "--sync"))]


def test_the_finishing_step_knows_what_its_apt_run_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The APT hooks' record of the apt run (its result.json, as record_result writes it) gives the changes
    that a fail back in the finishing step holds back."""
    from upgrader.guard import store as guard_store
    from upgrader.orchestrator.finishing import apt_changes

    monkeypatch.setattr(guard_store, "RUNS", str(tmp_path / "runs"))
    (tmp_path / "runs" / "4242-1795352739").mkdir(parents=True)
    (tmp_path / "runs" / "4242-1795352739" / "result.json").write_text(json.dumps({
        "key": "4242-1795352739", "result": "ok", "changes": [
            {"package": "demo-app", "old": "2", "new": "3", "action": "unpack", "now": "3", "status": "ii"},
            {"package": "old-tool", "old": "0.9", "new": None, "action": "remove", "now": None, "status": None},
            {"package": "demo-libfoo", "old": None, "new": "1.1-1", "action": "unpack", "now": "1.1-1",
             "status": "ii"}]}))
    assert apt_changes("apt-4242-1795352739") == [
        {"package": "demo-app", "installed": "2", "candidate": "3"},
        {"package": "old-tool", "installed": "0.9", "candidate": None},
        {"package": "demo-libfoo", "installed": None, "candidate": "1.1-1"}]
    assert apt_changes("apt-1-2") == []  # no record
    assert apt_changes(RUN) == []  # a rolling upgrade's own run knows its changes
