"""The speed-ups the benchmarks measure, pinned without a cluster: settle polling, the CLI's fast start, the trace."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import pytest

from upgrader import cli
from upgrader_bench import trace
from upgrader.pacemaker import live
from upgrader.pacemaker.live import Cluster, NotSettled
from upgrader.runner import Runner


class Polled(Cluster):
    """A cluster whose settled_problems answers from a script: (seconds the poll takes, problems)."""

    def __init__(self, script: list[tuple[float, list[str]]]) -> None:
        super().__init__(Runner(timeout=5))
        self.script = script
        self.starts: list[float] = []

    def settled_problems(self, check: Any = None, timeout: float | None = None,
                         now: Any = None) -> tuple[Any, list[str]]:
        self.starts.append(time.monotonic())
        took, problems = self.script.pop(0) if self.script else (0.0, [])
        time.sleep(took)
        return "state", problems


def test_a_slow_poll_is_followed_at_once_and_polls_start_at_a_fixed_rate() -> None:
    c = Polled([(0.6, ["DC busy"]), (0.0, ["in flight"]), (0.0, ["in flight"]), (0.0, [])])
    started = time.monotonic()
    assert c.wait_settled(deadline=10) == "state"
    gaps = [b - a for a, b in zip(c.starts, c.starts[1:])]
    assert gaps[0] == pytest.approx(0.6, abs=0.1)  # no pause after the slow one
    assert all(g == pytest.approx(live.SETTLE_POLL, abs=0.08) for g in gaps[1:])
    assert time.monotonic() - started < 0.6 + 3 * live.SETTLE_POLL + 0.3


def test_polls_slow_down_after_the_fast_period(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live, "SETTLE_POLL_FAST_FOR", 0.25)
    c = Polled([(0.0, ["x"])] * 100)
    with pytest.raises(NotSettled):
        c.wait_settled(deadline=1.6)
    gaps = [b - a for a, b in zip(c.starts, c.starts[1:])]
    assert gaps[0] == pytest.approx(live.SETTLE_POLL, abs=0.08)
    assert gaps[-2] == pytest.approx(live.SETTLE_POLL_LATE, abs=0.08)


def test_the_wait_ends_at_its_deadline_with_a_last_poll_there_saying_what_it_saw() -> None:
    c = Polled([(0.0, ["app1 runs on node2, expected node1"])] * 100)
    started = time.monotonic()
    with pytest.raises(NotSettled, match="after 1s .*last seen: app1 runs on node2, expected node1"):
        c.wait_settled({"app1": "node1"}, deadline=1.0)
    assert 1.0 <= time.monotonic() - started < 1.5
    assert c.starts[-1] - started == pytest.approx(1.0, abs=0.1)


def test_only_the_exact_internal_command_lines_take_the_fast_path() -> None:
    assert cli._internal(["apply", "--events"]) is not None
    assert cli._internal(["plan", "--json", "--local"]) is not None
    assert cli._internal(["plan", "--local", "--json"]) is not None
    for argv in (["apply", "--help"], ["plan", "--local"], ["plan", "--json"], ["run", "--yes"], [], ["status"]):
        assert cli._internal(argv) is None, argv


def test_the_health_checks_patched_scan_takes_the_fast_path_only_as_the_check_spells_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import upgrader.cli.patched as scan

    seen: list[tuple[list[str], bool]] = []
    monkeypatch.setattr(scan, "patched", lambda names, as_json: seen.append((names, as_json)) or 0)
    one = cli._internal(["patched", "--container", "app1", "--json"])
    two = cli._internal(["patched", "--container", "app1", "--container", "web.2", "--json"])
    assert one is not None and two is not None
    assert (one(), two()) == (0, 0)
    assert seen == [(["app1"], True), (["app1", "web.2"], True)]
    for argv in (["patched", "--json"], ["patched", "--container", "app1"], ["patched", "--container", "-x", "--json"],
                 ["patched", "--container", "a;b", "--json"], ["patched", "--container", "app1", "app2", "--json"],
                 ["patched", "--json", "--container", "app1"], ["patched", "--container", "app1", "--json", "--x"]):
        assert cli._internal(argv) is None, argv


def test_the_fast_path_does_not_load_rich_or_the_orchestrator() -> None:
    code = ("import sys; from upgrader import cli; cli._internal(['apply', '--events']); "
            "cli._internal(['plan', '--local', '--json']); cli._internal(['patched', '--container', 'a', '--json']); "
            "print(sorted(m for m in ('rich', 'upgrader.orchestrator.procedure', 'upgrader.health.engine') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_the_node_local_side_of_holds_does_not_load_the_cluster_side() -> None:
    """plan --local and apply read the pins through upgrader.packages.holds: not Cluster, tenacity, asyncio."""
    code = ("import sys; import upgrader.packages.holds, upgrader.cli.apply, upgrader.cli.plan; "
            "print(sorted(m for m in ('tenacity', 'asyncio', 'upgrader.pacemaker.live', 'rich') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_trace_names_commands_and_splits_the_main_thread() -> None:
    assert trace.kind_of(["ssh", "-o", "BatchMode=yes", "node2", "env", "'X=1'", "/v/bin/rolling-upgrade", "apply"]) \
        == "ssh rolling-upgrade apply"
    assert trace.kind_of(["ssh", "-o", "BatchMode=yes", "node3", "lxc-info", "-n", "app"]) == "ssh lxc-info"
    assert trace.kind_of(["cibadmin", "--modify", "--xpath=x"]) == "cibadmin modify"
    assert trace.kind_of(["crm_attribute", "--node", "n", "--query"]) == "crm_attribute query"
    doc = {"seconds": 10.0, "events": [
        {"kind": "span", "name": "settle", "seconds": 3.0, "thread": "MainThread"},
        {"kind": "span", "name": "settle", "seconds": 9.0, "thread": "health_0"},
        {"kind": "span", "name": "health check", "seconds": 1.5, "thread": "MainThread"},
        {"kind": "command", "name": "crm_mon", "seconds": 0.5, "thread": "MainThread"},
    ]}
    steps = trace.breakdown(doc)
    assert steps["settle"] == 3.0 and steps["health check"] == 1.5 and steps[trace.REST] == 5.5
    assert trace.commands(doc) == {"crm_mon": {"count": 1, "seconds": 0.5}}
