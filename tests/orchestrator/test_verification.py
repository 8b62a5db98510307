"""What a bad check after a move blames: the patched nodes a check failed on, not every patched destination."""

from __future__ import annotations

from types import SimpleNamespace

from upgrader.health.report import CheckResult, HealthReport, Level
from upgrader.orchestrator import verification
from upgrader.orchestrator.context import NodeResult
from upgrader.orchestrator.moves import Move


class History:
    def __init__(self) -> None:
        self.records: list[tuple] = []

    def record(self, *args, **kwargs) -> None:
        self.records.append((args, kwargs))


def run_with(results: tuple[CheckResult, ...]) -> SimpleNamespace:
    checks = SimpleNamespace(verify=lambda moved, before, first=None: HealthReport(results, 0.1))
    return SimpleNamespace(checks=checks, results={"node1": NodeResult("node1")}, history=History(), run_id="r1")


def row(resource: str, node: str, ok: bool) -> CheckResult:
    return CheckResult(resource, node, Level.APPLICATION, "http://198.51.100.11/health", ok=ok,
                       error=None if ok else "HTTP 500")


def test_only_the_patched_node_a_check_failed_on_is_blamed() -> None:
    move = Move(before=None, moved={"app1": "node2", "app2": "node3"}, suspects={"node2", "node3"})  # type: ignore[arg-type]
    found = verification.problems(run_with((row("app1", "node2", False), row("app2", "node3", True))), "node1", move)
    assert found is not None and "app1 on node2" in found
    assert move.suspects == {"node2"}


def test_a_failure_on_no_patched_node_still_blames_the_patched_destinations() -> None:
    move = Move(before=None, moved={"app1": "node3", "app2": "node2"}, suspects={"node2"})  # type: ignore[arg-type]
    found = verification.problems(run_with((row("app1", "node3", False), row("app2", "node2", True))), "node1", move)
    assert found is not None and move.suspects == {"node2"}


def test_healthy_moves_blame_nobody() -> None:
    move = Move(before=None, moved={"app1": "node2"}, suspects={"node2"})  # type: ignore[arg-type]
    assert verification.problems(run_with((row("app1", "node2", True),)), "node1", move) is None
    assert move.suspects == {"node2"}
