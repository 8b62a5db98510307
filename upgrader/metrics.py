"""Prometheus metrics through node_exporter's textfile collector: ``rolling-upgrade.prom``, written atomically.

Written after every run (``run``, ``node``, the window, the APT hooks' finishing step) and by ``status``,
into ``Rolling-Upgrade::Metrics-Dir`` (Debian's prometheus-node-exporter reads
``/var/lib/prometheus/node-exporter``); nothing is written when that directory does not exist (no
node_exporter here). The text format is written directly (no client library): a few gauges.

- ``rolling_upgrade_last_run_timestamp_seconds{phase="start"|"end"}`` and ``rolling_upgrade_last_run_exit``;
- ``rolling_upgrade_last_run_node_result{node,result}`` (1 for the node's result) and
  ``rolling_upgrade_last_run_node_seconds{node}`` (its upgrade's duration);
- ``rolling_upgrade_last_run_node_old_code{node}`` (host services left on replaced code after its upgrade) and
  ``rolling_upgrade_last_run_node_reboot_required{node}``;
- ``rolling_upgrade_pending_upgrades{node,kind="all"|"security"}``: what the last run's preflight found pending
  on the node and its upgrade did not install (left out by the selection, held back, deferred, not reached);
- ``rolling_upgrade_last_run_longest_outage_seconds{resource}``: the longest outage the last run's outage watch
  saw per resource (:mod:`upgrader.health.outage`; its TCP connects during the moves);
- ``rolling_upgrade_node_quarantined{node}``;
- ``rolling_upgrade_lock_held`` and ``rolling_upgrade_lock_age_seconds``.

``status`` knows no run: it rewrites the cluster's part and keeps the last run's samples from the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Iterable

FILE = "rolling-upgrade.prom"
HELP = {
    "rolling_upgrade_last_run_timestamp_seconds": "start and end of the last run on this node (Unix time)",
    "rolling_upgrade_last_run_exit": "exit code of the last run (0 done, 1 failed back, 3 refused, 4 needs a person)",
    "rolling_upgrade_last_run_node_result": "the last run's result per node (1 for the result it had)",
    "rolling_upgrade_last_run_node_seconds": "how long the last run took per node",
    "rolling_upgrade_last_run_node_old_code": "host services the last run left on replaced code per node (restart them)",
    "rolling_upgrade_last_run_node_reboot_required": "1 when the node needs a reboot after the last run's upgrade",
    "rolling_upgrade_pending_upgrades": "upgrades the last run left pending per node (kind all, or security only)",
    "rolling_upgrade_last_run_longest_outage_seconds": "the longest outage the last run's checks saw per resource "
                                                       "(TCP connects to its probe address during each move)",
    "rolling_upgrade_node_quarantined": "1 when a run quarantined the node (rolling-upgrade unquarantine NODE)",
    "rolling_upgrade_lock_held": "1 when the cluster-wide upgrade lock is held",
    "rolling_upgrade_lock_age_seconds": "how long the upgrade lock has been held (0 when free)",
}
RUN_METRICS = tuple(name for name in HELP if name.startswith(("rolling_upgrade_last_run_", "rolling_upgrade_pending_")))


@dataclass
class Snapshot:
    """What the metrics say; ``run`` parts are None when no run is known (``status`` alone)."""

    nodes: list[str]
    quarantined: Iterable[str] = ()
    lock_age: float | None = None  # None: the lock is free
    run_start: datetime | None = None
    run_end: datetime | None = None
    run_exit: int | None = None
    results: dict[str, tuple[str, float]] = field(default_factory=dict)  # node -> (result, seconds)
    left: dict[str, tuple[int, bool]] = field(default_factory=dict)  # node -> (services on old code, reboot needed)
    pending: dict[str, tuple[int, int]] = field(default_factory=dict)  # node -> (pending upgrades, security ones)
    outages: dict[str, float] = field(default_factory=dict)  # resource -> its longest outage in the run (seconds)
    kept: dict[str, list[str]] = field(default_factory=dict)  # the last run's samples (metric -> rows), run unknown


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(s: Snapshot) -> str:
    """The exposition text (one HELP and TYPE per metric, then its samples)."""
    samples: dict[str, list[str]] = {name: [] for name in HELP}
    if s.run_start is not None:
        samples["rolling_upgrade_last_run_timestamp_seconds"].append(f'{{phase="start"}} {s.run_start.timestamp():.0f}')
    if s.run_end is not None:
        samples["rolling_upgrade_last_run_timestamp_seconds"].append(f'{{phase="end"}} {s.run_end.timestamp():.0f}')
    if s.run_exit is not None:
        samples["rolling_upgrade_last_run_exit"].append(f" {int(s.run_exit)}")
    for node, (result, seconds) in sorted(s.results.items()):
        samples["rolling_upgrade_last_run_node_result"].append(f'{{node="{_label(node)}",result="{_label(result)}"}} 1')
        samples["rolling_upgrade_last_run_node_seconds"].append(f'{{node="{_label(node)}"}} {seconds:g}')
    for node, (services, reboot) in sorted(s.left.items()):
        samples["rolling_upgrade_last_run_node_old_code"].append(f'{{node="{_label(node)}"}} {int(services)}')
        samples["rolling_upgrade_last_run_node_reboot_required"].append(f'{{node="{_label(node)}"}} {int(reboot)}')
    for node, (pending, security) in sorted(s.pending.items()):
        samples["rolling_upgrade_pending_upgrades"].append(f'{{node="{_label(node)}",kind="all"}} {int(pending)}')
        samples["rolling_upgrade_pending_upgrades"].append(f'{{node="{_label(node)}",kind="security"}} {int(security)}')
    for rid, seconds in sorted(s.outages.items()):
        samples["rolling_upgrade_last_run_longest_outage_seconds"].append(f'{{resource="{_label(rid)}"}} {seconds:.3f}')
    for name, rows in s.kept.items():
        if name in RUN_METRICS and not samples[name]:
            samples[name] = list(rows)
    quarantined = set(s.quarantined)
    for node in sorted(s.nodes):
        samples["rolling_upgrade_node_quarantined"].append(f'{{node="{_label(node)}"}} {int(node in quarantined)}')
    samples["rolling_upgrade_lock_held"].append(f" {int(s.lock_age is not None)}")
    samples["rolling_upgrade_lock_age_seconds"].append(f" {max(0.0, s.lock_age or 0.0):.0f}")
    lines = []
    for name, rows in samples.items():
        if not rows:
            continue
        lines += [f"# HELP {name} {HELP[name]}", f"# TYPE {name} gauge"]
        lines += [f"{name}{row}" for row in rows]
    return "\n".join(lines) + "\n"


def write(directory: Path, snapshot: Snapshot) -> Path | None:
    """``directory/rolling-upgrade.prom`` replaced at once (0644: node_exporter reads it); None when the
    directory does not exist. Raises OSError as writing does."""
    if not directory.is_dir():
        return None
    target = directory / FILE
    tmp = directory / f".{FILE}.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    try:
        os.fchmod(fd, 0o644)
        os.write(fd, render(snapshot).encode())
    finally:
        os.close(fd)
    os.replace(tmp, target)
    return target


def previous_run(directory: Path) -> dict[str, list[str]]:
    """The last run's samples in the file now (metric -> its rows after the name), to keep when no run is known."""
    try:
        text = (directory / FILE).read_text()
    except (OSError, UnicodeDecodeError):
        return {}
    kept: dict[str, list[str]] = {}
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in RUN_METRICS and not line.startswith("#"):
            kept.setdefault(name, []).append(line[len(name):])
    return kept


def record(cluster, directory: Path, *, run_start: datetime | None = None, run_end: datetime | None = None,
           run_exit: int | None = None, results: dict[str, tuple[str, float]] | None = None,
           left: dict[str, tuple[int, bool]] | None = None, pending: dict[str, tuple[int, int]] | None = None,
           outages: dict[str, float] | None = None) -> Path | None:
    """Read the cluster's part (nodes, quarantine, the lock) and write the file; never raises (metrics are
    news, never a reason to fail what wrote them): None when nothing was written. With no run given
    (``status``), the last run's samples already in the file are kept."""
    from upgrader.orchestrator import steering
    from upgrader.pacemaker import lock

    try:
        if not directory.is_dir():
            return None
        nodes = [n.name for n in cluster.state().nodes]
        info = lock.read(cluster)
        now = lock.utcnow()
        age = None if info is None else (now - info.started).total_seconds() if info.started else 0.0
        kept = previous_run(directory) if run_exit is None else {}
        return write(directory, Snapshot(nodes, steering.quarantined(cluster, nodes), age, run_start, run_end,
                                         run_exit, results or {}, left or {}, pending or {}, outages or {}, kept))
    except Exception:  # noqa: BLE001
        return None
