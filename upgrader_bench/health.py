"""Health-check scaling: checking 50 application probes against checking 1 (target: at most 2x).

Each run is the engine's :func:`~upgrader.health.check_health` on the lab's
applications as they run now, with level 1 (one crm_mon per poll round) and
level 3; level 2 is left out so the figure is about probes, not ssh. One
probe: app1's ``/health``. Fifty: the applications' ``/health`` probes
repeated round-robin (5 or 4 each over twelve applications, in the lab this
brings up). The lab application's HTTP server listens with Python's default
backlog of 5: more simultaneous connects to one application (17 each over
three) overflow it, the kernel drops SYNs and TCP retries after 1 s, which
the figure then shows (``TcpExtListenOverflows`` in the node). The runs happen
inside a lab node, where the floating IPs are reachable, interleaved
1, 50, 1, 50, ... after one warm-up pair; timed in-process, so interpreter
start-up is not counted.

    python -m upgrader_bench.health [--name LAB] [--reps N]

Without ``--name`` it brings up a lab of its own and always takes it down.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import replace
from time import monotonic
from typing import Any, Mapping

from rich.console import Console
from rich.table import Table

from upgrader.health import HealthDefaults, HealthSpec, Snapshot, Target, check_health
from upgrader.health.live import read_declarations, read_state
from upgrader_lab import lab as ops
from upgrader_lab import node
from upgrader_lab.layout import Lab, LabError
from upgrader.pacemaker.live import Cluster
from upgrader.runner import CommandError, Runner

COUNTS = (1, 50)
DEFAULTS = HealthDefaults(deadline=10.0, attempt_timeout=5.0, interval=0.2)
OWN_LAB = "hbench"
OWN_APPS = 12


def targets(specs: Mapping[str, HealthSpec], placed: Mapping[str, str], probes: int) -> list[Target]:
    """``probes`` application probes spread round-robin over the resources, without level 2."""
    ids = [rid for rid, spec in specs.items() if spec.probes]
    share = {rid: probes // len(ids) + (i < probes % len(ids)) for i, rid in enumerate(ids)}
    return [Target(replace(specs[rid], containers=(), container_note=None, probes=(specs[rid].probes[0],) * share[rid]),
                   placed[rid]) for rid in ids if share[rid]]


def inner(sequence: list[int]) -> list[dict[str, Any]]:
    """Run inside a lab node: one timed check_health per entry of ``sequence`` (a probe count)."""
    cluster = Cluster(Runner())
    specs = read_declarations(cluster).specs
    state, _ = read_state(cluster)
    placed = {rid: sorted(state.running_on(rid))[0] for rid in specs}
    runs = []
    for probes in sequence:
        chosen = targets(specs, placed, probes)
        started = monotonic()
        report = check_health(chosen, snapshot=lambda t: read_state(cluster, t)[1], baseline=Snapshot(),
                              runner_for=lambda _node: cluster.runner, defaults=DEFAULTS)
        runs.append({"probes": probes, "seconds": monotonic() - started, "ok": report.ok,
                     "problems": report.problems()})
    return runs


def measure(lab: Lab, reps: int = 7, via: str = "node1") -> dict[str, Any]:
    """Median, min and max of ``reps`` interleaved runs of each probe count, and the ratio of medians."""
    if reps < 5:
        raise ValueError(f"reps must be at least 5, not {reps}")
    sequence = [n for _ in range(reps + 1) for n in COUNTS]
    result = node.runner(lab, via, timeout=60 + 10 * len(sequence)).run(
        [sys.executable, "-m", "upgrader_bench.health", "inner", *map(str, sequence)], what=f"health benchmark in {via}")
    runs = json.loads(result.stdout)[len(COUNTS):]  # the first pair warms up
    bad = [r for r in runs if not r["ok"]]
    if bad:
        raise RuntimeError(f"a benchmark run failed its checks: {bad[0]['problems']}")
    figures: dict[str, Any] = {"repetitions": reps, "applications": lab.apps,
                               "max_probes_per_application": -(-max(COUNTS) // lab.apps)}
    for n in COUNTS:
        times = [r["seconds"] for r in runs if r["probes"] == n]
        figures[f"health_{n}_probes_seconds"] = {"median": statistics.median(times), "min": min(times),
                                                  "max": max(times)}
    figures["health_50_vs_1"] = (figures["health_50_probes_seconds"]["median"]
                                 / figures["health_1_probes_seconds"]["median"])
    return figures


def render(figures: Mapping[str, Any], out: Console) -> None:
    table = Table(title=f"Health-check scaling: {figures['applications']} applications, "
                        f"{figures['repetitions']} interleaved runs each")
    for column in ("probes", "median s", "min s", "max s"):
        table.add_column(column, justify="right")
    for n in COUNTS:
        f = figures[f"health_{n}_probes_seconds"]
        table.add_row(str(n), f"{f['median']:.3f}", f"{f['min']:.3f}", f"{f['max']:.3f}")
    out.print(table)
    out.print(f"health_50_vs_1 = {figures['health_50_vs_1']:.2f}x (target: at most 2x)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m upgrader_bench.health", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="mode")
    run_inner = sub.add_parser("inner", help="(inside a lab node) time check_health for each probe count given")
    run_inner.add_argument("counts", nargs="+", type=int)
    p.add_argument("--name", help="an existing lab to use (default: bring up one of its own)")
    p.add_argument("--reps", type=int, default=7, help="runs of each probe count (at least 5, default 7)")
    args = p.parse_args(argv)
    if args.mode == "inner":
        print(json.dumps(inner(args.counts)))
        return 0
    out = Console()
    try:
        if args.name:
            figures = measure(ops.require(args.name), args.reps)
        else:
            try:
                figures = measure(ops.up(OWN_LAB, nodes=3, apps=OWN_APPS)[0], args.reps)
            finally:
                ops.down(OWN_LAB)
    except (LabError, CommandError, RuntimeError, ValueError) as exc:
        print(f"health benchmark: {exc}", file=sys.stderr)
        return 1
    render(figures, out)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
