"""``check --nagios``: the monitoring plugin protocol (one line with perfdata; 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from upgrader.cli.check import (NAGIOS_CRITICAL, NAGIOS_OK, NAGIOS_UNKNOWN, NAGIOS_WARNING, _nagios, nagios_check,
                                nagios_verdict)
from upgrader.health.report import CheckResult, HealthReport, Level
from upgrader.pacemaker import lock
from upgrader.pacemaker.live import Cluster
from upgrader.runner import Runner

NOW = datetime(2026, 12, 1, 3, 0, tzinfo=timezone.utc)


def report(*failed: str) -> HealthReport:
    rows = [CheckResult("app1", "node2", Level.CLUSTER, "app1-ip, app1-ct", ok=True),
            CheckResult("app2", "node3", Level.APPLICATION, "http://198.51.100.12/health", ok=not failed,
                        error=failed[0] if failed else None)]
    return HealthReport(tuple(rows), 0.42)


def held(holder_state: str, expired: bool) -> lock.LockStatus:
    info = lock.LockInfo("node1", "20261201T020000-node1-abcdef", 4711, "upgrade", NOW - timedelta(hours=1),
                         NOW - timedelta(minutes=20), NOW - timedelta(minutes=5) if expired else NOW + timedelta(minutes=5))
    return lock.LockStatus(info=info, holder_state=holder_state, expired=expired, fencing=True)


def test_healthy_is_ok_with_perfdata(capsys: pytest.CaptureFixture[str]) -> None:
    code = _nagios(*nagios_verdict(report(), [], None))
    assert code == NAGIOS_OK
    assert capsys.readouterr().out == ("UPGRADER OK - 2 checks passed | checks=2 failed=0 quarantined=0 lock_held=0 "
                                       "seconds=0.42s\n")


def test_a_failed_check_is_critical_naming_it_even_with_a_quarantine() -> None:
    code, text, perf = nagios_verdict(report("HTTP 500"), ["node3"], None)
    assert code == NAGIOS_CRITICAL and text == "app2 on node3: application check failed: HTTP 500"
    assert perf["failed"] == 1 and perf["quarantined"] == 1


def test_a_quarantine_or_a_stale_lock_is_a_warning_a_live_lock_is_not() -> None:
    assert nagios_verdict(report(), ["node3"], None)[:2] == (NAGIOS_WARNING, "node3 quarantined")
    code, text, _ = nagios_verdict(report(), [], held("offline", expired=True))
    assert code == NAGIOS_WARNING and "the upgrade lock is stale (holder offline and expired; holder node1)" == text
    code, _, perf = nagios_verdict(report(), [], held("online", expired=False))  # a run at work: fine
    assert code == NAGIOS_OK and perf["lock_held"] == 1


def test_a_cluster_that_cannot_be_read_is_unknown_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = nagios_check(Cluster(Runner(prefix=["/nonexistent/pacemaker-tools"], timeout=5)))
    out = capsys.readouterr().out
    assert code == NAGIOS_UNKNOWN and out.startswith("UPGRADER UNKNOWN - ") and out.count("\n") == 1, out
