"""Level 4 ("patched") in the engine: one scan per moved lxc container, on its node; old code is final.

The scan's own logic is tested on real processes in tests/packages/test_patched.py; here the node's
answer is the JSON ``rolling-upgrade patched --container NAME --json`` prints (argv recorded).
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Sequence

import pytest

from tests.health.test_engine import BASELINE, FAST, LXC_LS, lxc_group, lxc_ls_answer, started_on
from upgrader.health import HealthDefaults, Level, Target, check_health, health_spec
from upgrader.health.errors import CheckFailed
from upgrader.health.patched import NOT_RUNNING, check_patched, stale_lines
from upgrader.health.spec import ContainerSpec
from upgrader.runner import Result, Runner

TOOL = "/usr/sbin/rolling-upgrade"
OLD = "python3 (pid 41) maps old /usr/lib/demo-libfoo/libfoo.so.1"


class NodeAnswers(Runner):
    """lxc-info says RUNNING; ``patched`` answers ``stale`` for each container (argv recorded, nothing run)."""

    def __init__(self, node: str, calls: list[tuple[str, ...]], stale: dict[str, list[str]],
                 code: int | None = None, states: dict[str, str] | None = None) -> None:
        super().__init__(prefix=("ssh", node, "--"))
        self.calls, self.stale, self.code = calls, stale, code
        self.states = states  # each container's "state" in the scan's answer (None: none, as an older tool)

    def call(self, argv: Sequence[str], *, timeout: float | None = None, **_: object) -> Result:
        full = tuple(self.prefix) + tuple(argv)
        self.calls.append(full)
        if tuple(argv) == LXC_LS:
            return Result(full, 0, lxc_ls_answer("app-c"), "", 0.0)
        if "patched" not in argv:  # the check command inside the container
            return Result(full, 0, "", "", 0.0)
        names = [argv[i + 1] for i, a in enumerate(argv) if a == "--container"]
        running = self.code != NOT_RUNNING  # as the tool says it: exit 3, each named container "running": false
        doc = {"containers": {n: {"running": running, "processes": 3, "stale": self.stale.get(n, [])} for n in names}}
        for n in names if self.states is not None else ():
            doc["containers"][n]["state"] = self.states.get(n, "")
        code = self.code if self.code is not None else (1 if any(self.stale.get(n) for n in names) else 0)
        return Result(full, code, json.dumps(doc), "", 0.0)


def run(stale: dict[str, list[str]], defaults: HealthDefaults) -> tuple[object, list[tuple[str, ...]]]:
    calls: list[tuple[str, ...]] = []
    spec = health_spec(lxc_group("app"))
    report = check_health([Target(spec, "node2")], snapshot=lambda t: started_on("node2", "app-vip", "app-ct"),
                          baseline=BASELINE, runner_for=lambda node: NodeAnswers(node, calls, stale), defaults=defaults)
    return report, calls


def test_level_4_scans_each_moved_container_on_its_node_when_on() -> None:
    report, calls = run({}, replace(FAST, patched_tool=TOOL))
    assert report.ok, report.problems()
    assert [(r.level, r.target) for r in report.results if r.level == Level.PATCHED] == [(Level.PATCHED, "app-c")]
    assert ("ssh", "node2", "--", TOOL, "patched", "--container", "app-c", "--json") in calls


def test_level_2_reads_the_states_in_the_scan_and_its_own_lxc_ls_only_when_the_scan_gives_none() -> None:
    spec = health_spec(lxc_group("app"))

    def check(states: dict[str, str] | None) -> tuple[object, list[tuple[str, ...]]]:
        calls: list[tuple[str, ...]] = []
        report = check_health([Target(spec, "node2")], snapshot=lambda t: started_on("node2", "app-vip", "app-ct"),
                              baseline=BASELINE, runner_for=lambda node: NodeAnswers(node, calls, {}, states=states),
                              defaults=replace(FAST, patched_tool=TOOL))
        return report, calls

    report, calls = check({"app-c": "RUNNING"})
    assert report.ok, report.problems()
    assert sum(1 for c in calls if "patched" in c) == 1 and not [c for c in calls if c[3:] == LXC_LS], calls
    report, calls = check(None)  # an older tool on the node: its scan says no state
    assert report.ok and [c for c in calls if c[3:] == LXC_LS], calls
    report, calls = check({"app-c": "STOPPED"})
    level2 = [r for r in report.results if r.level == Level.CONTAINER]
    assert [(r.ok, r.error) for r in level2] == [(False, "container app-c is STOPPED")]
    assert not [c for c in calls if c[3:] == LXC_LS], "the scan's state stands: no second opinion"


@pytest.mark.parametrize("scan", ["fails", "hangs"])
def test_a_scan_that_cannot_tell_leaves_level_2_to_its_own_lxc_ls_for_the_rest_of_the_check(scan: str) -> None:
    """Level 4 fails on its own error; level 2 is not blamed for it: it asks lxc-ls (at once when the failed
    scan left it time, else at its next attempt, naming the scan) and passes, one scan a round at most."""
    from upgrader.runner import CommandTimeout

    class Broken(NodeAnswers):
        def call(self, argv: Sequence[str], *, timeout: float | None = None, **kw: object) -> Result:
            if "patched" not in argv:
                return super().call(argv, timeout=timeout, **kw)
            self.calls.append(tuple(self.prefix) + tuple(argv))
            if scan == "fails":
                return Result(tuple(argv), 2, "", "rolling-upgrade patched: lxc-ls: cannot list", 0.0)
            time.sleep(timeout or 0)
            raise CommandTimeout(Result(tuple(argv), -9, "", "", timeout or 0), timeout or 0, "the patched scan")

    calls: list[tuple[str, ...]] = []
    spec = health_spec(lxc_group("app"))
    report = check_health([Target(spec, "node2")], snapshot=lambda t: started_on("node2", "app-vip", "app-ct"),
                          baseline=BASELINE, runner_for=lambda node: Broken(node, calls, {}, states={"app-c": "RUNNING"}),
                          defaults=replace(FAST, patched_tool=TOOL, deadline=2.0, attempt_timeout=0.5))
    got = {r.level: r for r in report.results}
    assert got[Level.CONTAINER].ok, got[Level.CONTAINER]
    assert not got[Level.PATCHED].ok and ("cannot list" if scan == "fails" else "did not answer") in \
        (got[Level.PATCHED].error or "")
    assert got[Level.CONTAINER].attempts == (1 if scan == "fails" else 2), got[Level.CONTAINER]
    assert [c for c in calls if c[3:] == LXC_LS], calls


def test_level_4_is_off_without_a_tool() -> None:
    report, calls = run({"app-c": [OLD]}, FAST)
    assert report.ok and not [r for r in report.results if r.level == Level.PATCHED]
    assert not [c for c in calls if "patched" in c]


def test_old_code_fails_at_once_naming_the_process_and_the_file() -> None:
    report, _ = run({"app-c": [OLD]}, replace(FAST, patched_tool=TOOL))
    failed = [r for r in report.results if not r.ok]
    assert [(r.level, r.attempts) for r in failed] == [(Level.PATCHED, 1)]  # final: not retried
    assert failed[0].error == f"container app-c still runs old code: {OLD}"


def test_many_old_processes_are_named_up_to_three_then_counted() -> None:
    many = [f"python3 (pid {n}) maps old /usr/lib/x.so" for n in range(5)]
    with pytest.raises(CheckFailed, match=r"pid 2\) maps old /usr/lib/x.so and 2 more process\(es\)$") as caught:
        check_patched(NodeAnswers("node2", [], {"app-c": many}), TOOL, ContainerSpec("app-ct", "app-c"), 1.0)
    assert caught.value.final


def test_a_container_not_running_yet_is_retried_and_unreadable_output_is_final() -> None:
    with pytest.raises(CheckFailed, match="is not running") as caught:
        check_patched(NodeAnswers("node2", [], {}, code=NOT_RUNNING), TOOL, ContainerSpec("app-ct", "app-c"), 1.0)
    assert not caught.value.final
    with pytest.raises(CheckFailed, match="unreadable output") as caught:
        stale_lines("not json", "app-c")
    assert caught.value.final


def test_the_containers_of_one_node_share_one_scan_and_one_state_reading_a_round() -> None:
    """At a hundred containers on a node, one remote shell per container and level saturated it (the
    120-application lab): every check of a node reads one lxc-ls and one patched scan a round."""
    calls: list[tuple[str, ...]] = []
    targets = [Target(health_spec(lxc_group(f"app{i}")), "node2") for i in range(1, 31)]
    ids = [rid for i in range(1, 31) for rid in (f"app{i}-vip", f"app{i}-ct")]

    class Many(NodeAnswers):
        def call(self, argv: Sequence[str], *, timeout: float | None = None, **_: object) -> Result:
            if tuple(argv) == LXC_LS:
                self.calls.append(tuple(self.prefix) + tuple(argv))
                return Result(tuple(argv), 0, lxc_ls_answer(*(f"app{i}-c" for i in range(1, 31))), "", 0.0)
            return super().call(argv, timeout=timeout)

    report = check_health(targets, snapshot=lambda t: started_on("node2", *ids), baseline=BASELINE,
                          runner_for=lambda node: Many(node, calls, {"app7-c": [OLD]}),
                          defaults=replace(FAST, patched_tool=TOOL))
    assert [r.resource for r in report.results if not r.ok] == ["app7"], report.problems()
    scans = [c for c in calls if "patched" in c]
    assert len(scans) == 1 and sum(a == "--container" for a in scans[0]) == 30, scans
    assert len([c for c in calls if c[3:] == LXC_LS]) == 1
