"""rolling-upgrade.prom for node_exporter's textfile collector: its text, its atomic write, its reading of the cluster
(a CIB captured from the lab, through Pacemaker's own tools: CIB_file)."""

from __future__ import annotations

import re
import shutil
import stat
from datetime import datetime, timezone
from pathlib import Path

from upgrader import metrics
from upgrader.orchestrator import steering
from upgrader.pacemaker import lock
from upgrader.pacemaker.live import Cluster
from upgrader.runner import Runner

CAPTURED = Path(__file__).parents[1] / "pacemaker" / "data" / "cib-all-online.xml"
SAMPLE = re.compile(r'^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? -?[0-9.e+]+$')


def test_the_text_is_prometheus_exposition_format_with_one_help_and_type_per_metric() -> None:
    start, end = datetime(2026, 12, 1, 2, 0, tzinfo=timezone.utc), datetime(2026, 12, 1, 2, 9, tzinfo=timezone.utc)
    text = metrics.render(metrics.Snapshot(["node1", "node2"], ["node2"], 125.0, start, end, 1,
                                           {"node1": ("ok", 61.5), "node2": ("quarantined", 90.0)},
                                           {"node1": (2, True), "node2": (0, False)}, {"node1": (0, 0)},
                                           {"app1": 0.5}))
    lines = text.splitlines()
    assert all(SAMPLE.match(line) for line in lines if not line.startswith("#")), text
    assert f'rolling_upgrade_last_run_timestamp_seconds{{phase="start"}} {start.timestamp():.0f}' in lines
    assert 'rolling_upgrade_last_run_node_result{node="node2",result="quarantined"} 1' in lines
    assert 'rolling_upgrade_last_run_node_seconds{node="node1"} 61.5' in lines
    assert 'rolling_upgrade_node_quarantined{node="node2"} 1' in lines and 'rolling_upgrade_lock_held 1' in lines
    assert "rolling_upgrade_lock_age_seconds 125" in lines and "rolling_upgrade_last_run_exit 1" in lines
    assert 'rolling_upgrade_last_run_node_old_code{node="node1"} 2' in lines
    assert 'rolling_upgrade_last_run_node_reboot_required{node="node1"} 1' in lines
    names = [line.split()[2] for line in lines if line.startswith("# TYPE")]
    assert len(names) == len(set(names)) == len(metrics.HELP)
    quiet = metrics.render(metrics.Snapshot(["node1"]))  # status alone: no run known
    assert "last_run" not in quiet and "rolling_upgrade_lock_held 0" in quiet


def test_the_file_is_replaced_at_once_and_only_where_node_exporter_reads(tmp_path: Path) -> None:
    assert metrics.write(tmp_path / "missing", metrics.Snapshot(["node1"])) is None
    path = metrics.write(tmp_path, metrics.Snapshot(["node1"]))
    assert path == tmp_path / metrics.FILE and stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == [metrics.FILE]  # no temporary file left


def test_the_cluster_part_comes_from_the_cib(tmp_path: Path) -> None:
    cib = tmp_path / "cib.xml"
    shutil.copy(CAPTURED, cib)
    cluster = Cluster(Runner(env={"CIB_file": str(cib)}, timeout=30))
    steering.quarantine(cluster, "node3", "run-1", "2026-12-01T02:00:00Z")
    lock.UpgradeLock(cluster, "20261201T020000-node1-abcdef", "node1").acquire("upgrade")
    out = tmp_path / "textfile"
    out.mkdir()
    assert metrics.record(cluster, out, run_exit=0, results={"node1": ("ok", 3.0)}) == out / metrics.FILE
    text = (out / metrics.FILE).read_text()
    assert 'rolling_upgrade_node_quarantined{node="node3"} 1' in text
    assert 'rolling_upgrade_node_quarantined{node="node1"} 0' in text and "rolling_upgrade_lock_held 1" in text
    assert metrics.record(Cluster(Runner(prefix=["/nonexistent/tool"])), out) is None  # never raises


def test_pending_upgrades_per_node_and_the_longest_outage_per_resource() -> None:
    text = metrics.render(metrics.Snapshot(["node1", "node2"], pending={"node1": (0, 0), "node2": (5, 2)},
                                           outages={"app1": 0.4213, "app2": 0.0}))
    lines = text.splitlines()
    assert all(SAMPLE.match(line) for line in lines if not line.startswith("#")), text
    assert 'rolling_upgrade_pending_upgrades{node="node2",kind="all"} 5' in lines
    assert 'rolling_upgrade_pending_upgrades{node="node2",kind="security"} 2' in lines
    assert 'rolling_upgrade_pending_upgrades{node="node1",kind="all"} 0' in lines
    assert 'rolling_upgrade_last_run_longest_outage_seconds{resource="app1"} 0.421' in lines
    assert 'rolling_upgrade_last_run_longest_outage_seconds{resource="app2"} 0.000' in lines


def test_status_keeps_the_last_runs_samples(tmp_path: Path) -> None:
    """``status`` knows no run: rewriting the cluster's part must not drop what the last run said."""
    cib = tmp_path / "cib.xml"
    shutil.copy(CAPTURED, cib)
    cluster = Cluster(Runner(env={"CIB_file": str(cib)}, timeout=30))
    out = tmp_path / "textfile"
    out.mkdir()
    metrics.record(cluster, out, run_exit=0, results={"node1": ("ok", 3.0)}, pending={"node1": (1, 1)},
                   outages={"app1": 0.25})
    lock.UpgradeLock(cluster, "20261201T020000-node1-abcdef", "node1").acquire("upgrade")
    assert metrics.record(cluster, out) == out / metrics.FILE  # status
    lines = (out / metrics.FILE).read_text().splitlines()
    assert "rolling_upgrade_last_run_exit 0" in lines and "rolling_upgrade_lock_held 1" in lines
    assert 'rolling_upgrade_last_run_node_result{node="node1",result="ok"} 1' in lines
    assert 'rolling_upgrade_pending_upgrades{node="node1",kind="security"} 1' in lines
    assert 'rolling_upgrade_last_run_longest_outage_seconds{resource="app1"} 0.250' in lines
    assert sum(line == "# TYPE rolling_upgrade_last_run_exit gauge" for line in lines) == 1
