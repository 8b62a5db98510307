"""Text from the cluster, the configuration, a probe or a node is printed as it is: brackets never parse as markup.

Each command's output goes to a ``Console(file=io.StringIO(), width=200)``; the text must appear literally
and nothing may raise (rich reads ``[/etc/app.conf]`` or ``^[/a-z]+$`` as a closing tag and fails).
"""

from __future__ import annotations

import builtins
import io
import sys
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console

from upgrader.cli import check as check_command
from upgrader.cli import plan as plan_command
from upgrader.cli import run as run_command
from upgrader.cli import status as status_command
from upgrader.cli.progress import ConsoleReport
from upgrader.config import Config
from upgrader.health.live import Declarations
from upgrader.health.report import CheckResult, HealthReport, Level
from upgrader.orchestrator.context import NodeResult, Result
from upgrader.orchestrator.outcome import Outcome
from upgrader.orchestrator.remote import NodePlan
from upgrader.packages.plan import Change
from upgrader.pacemaker import lock
from upgrader.pacemaker.state import ClusterState, parse_crm_mon

DATA = Path(__file__).parents[1] / "pacemaker" / "data"
REASON = "config [/etc/app.conf] missing"
REGEX = "body does not match ^[/a-z]+$"


def console() -> Console:
    return Console(file=io.StringIO(), width=200)


def printed(out: Console) -> str:
    assert isinstance(out.file, io.StringIO)
    return out.file.getvalue()


class Stub:
    """A cluster that answers from a captured crm_mon whose failure's exit reason has brackets."""

    def __init__(self) -> None:
        xml = (DATA / "crm_mon-failed-action.xml").read_text()
        assert 'exitreason=""' in xml
        self.captured: ClusterState = parse_crm_mon(xml.replace('exitreason=""', f'exitreason="{REASON}"', 1))

    def state(self, timeout: float | None = None) -> ClusterState:
        return self.captured

    def local_node(self) -> str:
        return "node2"


def test_status_prints_an_exit_reason_and_a_lock_with_brackets(monkeypatch: pytest.MonkeyPatch) -> None:
    now = lock.utcnow()
    held = lock.LockInfo(holder="node1", run_id="run-[7]", pid=None, phase="verify [/a-z]", started=now,
                         heartbeat=now, expires=now + timedelta(minutes=5))
    monkeypatch.setattr(lock, "read", lambda cluster: held)
    monkeypatch.setattr(status_command.holds, "read", lambda cluster: [])  # no CIB behind the stub
    out = console()
    assert status_command.status(Stub(), False, out) == 0  # type: ignore[arg-type]
    text = printed(out)
    assert f"failed action app3-ct_monitor_5000 on node3: error {REASON}" in text
    assert "run-[7]" in text and "verify [/a-z]" in text


def test_run_final_report_with_a_regex_in_its_checks_and_stop_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    result = NodeResult("node2", Result.FAILED, changes=[Change("demo-libfoo", "1", "2[x]").__dict__],
                        moves=["app1 node2 -> node1"], checks=[f"app1 on node1: {REGEX}"], seconds=12.0,
                        error=f"health check failed after the move: {REGEX}")
    r = SimpleNamespace(run_id="run-[1]", results={"node2": result}, stop_reason=result.error, recovered=[])
    out = console()
    run_command._finish(out, r, False, Outcome.FAILED_BACK, None)  # type: ignore[arg-type]
    text = printed(out)
    assert f"app1 on node1: {REGEX}" in text and "demo-libfoo 1 -> 2[x]" in text
    assert text.rstrip().endswith("run run-[1]: failed back (exit 1)")


def test_progress_steps_and_apt_lines_with_brackets() -> None:
    out = console()
    report = ConsoleReport(out)
    report.step("node2", "verify", f"app1 on node2: {REGEX}")
    report.step("node2", "reboot", "could not reboot node2: ssh: [/dev/tty] gone; its upgrade stands")
    report.progress("node2", {"event": "progress", "stage": "error", "text": f"libfoo: {REASON}"})
    text = printed(out)
    assert f"node2 verify app1 on node2: {REGEX}" in text
    assert "node2 reboot could not reboot node2: ssh: [/dev/tty] gone; its upgrade stands" in text
    assert f"node2 apt libfoo: {REASON}" in text


def test_plan_table_and_local_plan_with_brackets() -> None:
    plans = {"node1": NodePlan("node1", (Change("demo-libfoo", "1", "2", security=True),)),
             "node3": NodePlan("node3", error=f"planning on node3 failed: E: {REASON}")}
    out = console()
    out.print(plan_command.plan_table(plans, {}))
    assert f"planning on node3 failed: E: {REASON}" in printed(out)


def test_the_confirmation_prompt_shows_its_question_literally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(builtins, "input", lambda *a: "n")
    out = console()
    confirm = run_command._confirm_on_terminal(out)
    plans = {"node1": NodePlan("node1", (Change("demo-libfoo", "1", "2[x]", security=True),))}
    assert confirm(plans, ["node1"]) is False
    assert printed(out) == ("  node1: 1 package, 1 security: demo-libfoo 1 -> 2[x]\n"
                            "Upgrade 1 node(s) in this order: node1? [y/N] ")


def test_check_prints_a_probe_error_and_target_with_brackets(monkeypatch: pytest.MonkeyPatch) -> None:
    report = HealthReport((
        CheckResult("app1", "node1", Level.APPLICATION, "http://[::1]:8080/", ok=False, attempts=3, seconds=1.5,
                    error=REGEX),
        CheckResult("app2", "node2", Level.CONTAINER, "app2 [lxc]", ok=True, attempts=1, note=REASON),
    ), seconds=1.5)
    monkeypatch.setattr(check_command, "load", lambda: Config())
    monkeypatch.setattr(check_command, "read_declarations", lambda cluster: Declarations({}, {}))
    monkeypatch.setattr(check_command, "check_cluster", lambda *args: report)
    out = console()
    assert check_command.check(Stub(), False, out) == check_command.EXIT_UNHEALTHY  # type: ignore[arg-type]
    text = printed(out)
    assert "http://[::1]:8080/" in text and REGEX in text and "app2 [lxc]" in text and REASON in text
