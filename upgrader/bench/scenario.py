"""The measured scenarios on a lab, from the host: a bare standby cycle and a rolling upgrade.

Before each measurement the applications are put back home (app i on node
i, round-robin), so every repetition starts from the same placement. The
prober runs throughout; a measurement's outages are those that begin or go
on between its start and :data:`TAIL` seconds after it returns.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from upgrader.bench import health
from upgrader.bench.memory import RunMemory
from upgrader.bench.prober import Prober
from upgrader.lab import lab as ops
from upgrader.lab import node, repo
from upgrader.lab.layout import Lab

TOOL = str(Path(sys.executable).parent / "rolling-upgrade")
VIA = "node1"  # where rolling-upgrade runs and the bare cluster operations are issued
TAIL = 1.0
HISTORY = "/var/lib/upgrader/history.jsonl"


def innode(lab: Lab, where: str, *argv: str, timeout: float = 300) -> dict[str, Any]:
    out = node.runner(lab, where, timeout=timeout).run(
        [sys.executable, "-m", "upgrader.bench.innode", *argv], what=f"{argv[0]} in {where}").stdout
    return json.loads(out)


def home(lab: Lab) -> None:
    innode(lab, VIA, "place", *(f"{app}={lab.node_names[i % lab.nodes]}" for i, app in enumerate(lab.app_names)))


@dataclass
class Versions:
    """Publishes a new version of the lab package and refreshes every node's indexes."""

    last: int = 1

    def publish(self, lab: Lab) -> str:
        self.last += 1
        repo.publish(lab.repo_dir, str(self.last))
        ops.refresh_indexes(lab)
        return str(self.last)


@dataclass
class Bare:
    """One node by hand: standby (the move), dist-upgrade without hooks, standby off."""

    node: str
    settle: float
    dist_upgrade: float
    outages: dict[str, list[float]] = field(default_factory=dict)  # moved application -> its outages


def bare_cycle(lab: Lab, prober: Prober, n: str) -> Bare:
    home(lab)
    start = time.monotonic()
    moved = innode(lab, VIA, "move", n, "on")
    time.sleep(TAIL)
    seen = prober.outages(start, time.monotonic())
    upgraded = innode(lab, n, "dist-upgrade")
    innode(lab, VIA, "move", n, "off")
    return Bare(n, moved["seconds"], upgraded["seconds"], {app: seen[app] for app in moved["moved"]})


@dataclass
class Run:
    """One ``rolling-upgrade run`` and what the history and the prober say about it."""

    seconds: float
    move_steps: int
    upgrade_seconds: list[float]
    outages: dict[str, list[float]]
    peak_rss_mib: dict[str, float]
    health_check: float  # one check of every application (levels 1 and 3), timed separately after the run


def rolling_run(lab: Lab, prober: Prober, versions: Versions) -> Run:
    home(lab)
    versions.publish(lab)
    with RunMemory(lab, VIA) as memory:
        start = time.monotonic()
        result = node.runner(lab, VIA, timeout=900).call([TOOL, "run", "--yes", "--json"])
        seconds = time.monotonic() - start
    time.sleep(TAIL)
    seen = prober.outages(start, time.monotonic())
    try:
        doc = json.loads(result.stdout)
    except ValueError:
        raise RuntimeError(f"rolling-upgrade run gave no JSON (exit {result.returncode}): {result.stderr[-500:]}")
    if result.returncode != 0:
        raise RuntimeError(f"rolling-upgrade run exited {result.returncode}: {json.dumps(doc)[-800:]}")
    text = node.runner(lab, VIA).run(["cat", HISTORY], what="reading the history").stdout
    events = [e for e in map(json.loads, text.splitlines()) if e.get("run") == doc["run"]]
    return Run(seconds=seconds,
               move_steps=sum(1 for e in events if e["phase"] == "move" and e["event"] == "note"),
               upgrade_seconds=[e["seconds"] for e in events if e["phase"] == "upgrade" and e["event"] == "end"],
               outages={app: o for app, o in seen.items() if o}, peak_rss_mib=dict(memory.peak),
               health_check=health_check(lab))


def health_check(lab: Lab) -> float:
    """Seconds of one check_health of every application, one probe each (after a warm-up check)."""
    out = node.runner(lab, VIA, timeout=120).run(
        [sys.executable, "-m", "upgrader.bench.health", "inner", str(lab.apps), str(lab.apps)],
        what="a bare health check").stdout
    runs = json.loads(out)
    if not all(r["ok"] for r in runs):
        raise RuntimeError(f"the applications are not healthy: {runs[-1]['problems']}")
    return runs[-1]["seconds"]
