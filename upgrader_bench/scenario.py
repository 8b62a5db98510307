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

from upgrader_bench import innode as innode_module
from upgrader_bench import trace
from upgrader_bench.memory import RunMemory
from upgrader_bench.prober import Prober
from upgrader_lab import lab as ops
from upgrader_lab import node, repo
from upgrader_lab.layout import Lab

TOOL = str(Path(sys.executable).parent / "rolling-upgrade")
VIA = "node1"  # where rolling-upgrade runs and the bare cluster operations are issued
TAIL = 1.0
HISTORY = "/var/lib/upgrader/history.jsonl"
TRACE = "/tmp/upgrader-bench-trace.json"  # in VIA


def settle_deadline(apps: int) -> float:
    """Seconds a bare move or a placement may take to settle in a lab of ``apps`` applications: innode's own
    default up to 24; a 120-application lab moves 40 resources at once (39-63 s measured), so 5 s each."""
    return max(innode_module.SETTLE_DEADLINE, 5.0 * apps)


def innode(lab: Lab, where: str, *argv: str, timeout: float = 300) -> dict[str, Any]:
    deadline = settle_deadline(lab.apps)
    wider = ["--deadline", f"{deadline:g}"] if deadline > innode_module.SETTLE_DEADLINE else []
    out = node.runner(lab, where, timeout=max(timeout, 2 * deadline + 60)).run(
        [sys.executable, "-m", "upgrader_bench.innode", *wider, *argv], what=f"{argv[0]} in {where}").stdout
    return json.loads(out)


def home(lab: Lab) -> None:
    innode(lab, VIA, "place", *(f"{app}={lab.node_names[i % lab.nodes]}" for i, app in enumerate(lab.app_names)))


@dataclass
class Versions:
    """Publishes a new version of the lab package and refreshes every node's indexes.

    ``postinst_sleep``: seconds the package's postinst sleeps, a stand-in for
    the dpkg time of a realistically sized upgrade (the lab's package itself
    installs in a fraction of a second). ``padding_bytes``: random bytes the
    package carries, so that its download takes a while from a slow mirror.
    """

    last: int = 1
    postinst_sleep: float = 0.0
    padding_bytes: int = 0

    def publish(self, lab: Lab) -> str:
        self.last += 1
        repo.publish(lab.repo_dir, str(self.last), postinst_sleep=self.postinst_sleep,
                     padding_bytes=self.padding_bytes)
        ops.refresh_indexes(lab)
        return str(self.last)


@dataclass
class Bare:
    """One node by hand: standby (the move) and a health check of what moved, dist-upgrade without hooks,
    standby off."""

    node: str
    settle: float
    dist_upgrade: float
    health: float  # the product's health check of the moved resources, right after the move settled
    outages: dict[str, list[float]] = field(default_factory=dict)  # moved application -> its outages


def bare_cycle(lab: Lab, prober: Prober, n: str) -> Bare:
    home(lab)
    with prober.moving(app for i, app in enumerate(lab.app_names) if lab.node_names[i % lab.nodes] == n):
        start = time.monotonic()
        moved = innode(lab, VIA, "move", n, "on", "--check")
        end = time.monotonic()
        time.sleep(TAIL)
    seen = prober.outages(start, end + TAIL)
    if not moved.get("health_ok", True):
        raise RuntimeError(f"the health check after a bare move of {n}'s resources failed: {moved['problems']}")
    upgraded = innode(lab, n, "dist-upgrade")
    innode(lab, VIA, "move", n, "off")
    return Bare(n, moved["seconds"], upgraded["seconds"], moved.get("health", 0.0),
                {app: seen[app] for app in moved["moved"] if app in seen})  # applications only (not a fencing device)


def ssh_round_trips(lab: Lab) -> list[float]:
    """The remote shell's round trip from VIA to each peer (``ssh NODE true``), three times each."""
    return [t for n in lab.node_names if n != VIA for t in innode(lab, VIA, "ssh", n)["seconds"]]


@dataclass
class Run:
    """One ``rolling-upgrade run`` and what the history and the prober say about it."""

    seconds: float
    move_steps: int
    upgrade_seconds: list[float]
    outages: dict[str, list[float]]
    peak_rss_mib: dict[str, float]
    steps: dict[str, float] = field(default_factory=dict)  # seconds per step of the run (upgrader_bench.trace)
    commands: dict[str, dict[str, float]] = field(default_factory=dict)  # count and seconds per command kind
    applies: list[dict[str, float]] = field(default_factory=list)  # per node: seconds as the run saw, in-process
    prober_outages: dict[str, list[float]] = field(default_factory=dict)  # run_watch: the coarse prober's view


def watched(doc: dict[str, Any]) -> dict[str, list[float]]:
    """Per application, the longest outage the run's own watch saw in each node's moves (its JSON's nodes)."""
    found: dict[str, list[float]] = {}
    for result in doc.get("nodes", []):
        for app, seconds in (result.get("outages") or {}).items():
            if float(seconds) > 0:  # 0.0: watched, no outage seen (the prober's figures hold outages only)
                found.setdefault(app, []).append(float(seconds))
    return found


def rolling_run(lab: Lab, prober: Prober, versions: Versions, *, run_watch: bool = False) -> Run:
    """``rolling-upgrade run --yes --json`` in VIA, through :mod:`upgrader_bench.trace` (which only notes times).

    The prober probes every application finely for the whole run (every node is drained: all of them
    move), unless ``run_watch``: then each application's outages are those the run's own outage watch saw
    (the same :class:`~upgrader.health.outage.Watch`, 20 ms, around each move, the moving applications
    only: the longest per node's moves, from the run's JSON), and the prober probes every application
    coarsely (finely once one fails), its view kept in :attr:`Run.prober_outages`. At 120 applications,
    probing all of them finely doubled a bare standby move's settle time and its outages (63 s -> 123 s,
    1.07 s -> 2.13 s median, measured): the run would be measured under three times a bare move's probing.
    """
    home(lab)
    versions.publish(lab)
    focus = () if run_watch else lab.app_names
    with RunMemory(lab, VIA) as memory, prober.moving(focus):
        start = time.monotonic()
        result = node.runner(lab, VIA, timeout=900).call(
            [sys.executable, "-m", "upgrader_bench.trace", TRACE, "--", "run", "--yes", "--json"])
        seconds = time.monotonic() - start
        time.sleep(TAIL)
    seen = prober.outages(start, start + seconds + TAIL)
    try:
        doc = json.loads(result.stdout)
    except ValueError:
        raise RuntimeError(f"rolling-upgrade run gave no JSON (exit {result.returncode}): {result.stderr[-500:]}")
    if result.returncode != 0:
        raise RuntimeError(f"rolling-upgrade run exited {result.returncode}: {json.dumps(doc)[-800:]}")
    text = node.runner(lab, VIA).run(["cat", HISTORY], what="reading the history").stdout
    events = [e for e in map(json.loads, text.splitlines()) if e.get("run") == doc["run"]]
    traced = json.loads(node.runner(lab, VIA).run(["cat", TRACE], what="reading the run's trace").stdout)
    return Run(seconds=seconds,
               move_steps=sum(1 for e in events if e["phase"] == "move" and e["event"] == "note"),
               upgrade_seconds=[e["seconds"] for e in events if e["phase"] == "upgrade" and e["event"] == "end"],
               outages=watched(doc) if run_watch else {app: o for app, o in seen.items() if o},
               prober_outages={app: o for app, o in seen.items() if o} if run_watch else {},
               peak_rss_mib=dict(memory.peak),
               steps=trace.breakdown(traced), commands=trace.commands(traced),
               applies=[{"seconds": e["seconds"], "in_process": e["inner_seconds"]} for e in traced["events"]
                        if e["kind"] == "span" and e["name"].startswith("upgrade") and "inner_seconds" in e])
