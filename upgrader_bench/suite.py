"""The labs of ``make bench`` and what is measured on each, interleaved repetition by repetition."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable

from upgrader_bench import floor, health, memory, staging
from upgrader_bench.prober import Prober
from upgrader_bench.scenario import Bare, Run, Versions, bare_cycle, rolling_run, ssh_round_trips
from upgrader_bench.stats import paired_downtime, summarize
from upgrader_bench.hook import bench_hook
from upgrader_lab import lab as ops
from upgrader_lab.layout import Lab

Say = Callable[[str], None]
HOOK_RUNS = 7  # crm_mon / Pre-Invoke pairs per bench_hook batch


@contextmanager
def lab_up(name: str, nodes: int, apps: int, say: Say, profile: str = "default") -> Iterator[Lab]:
    say(f"lab {name}: {nodes} nodes, {apps} applications" + (f", profile {profile}" if profile != "default" else ""))
    try:
        yield ops.up(name, nodes=nodes, apps=apps, profile=profile)[0]
    finally:
        ops.down(name)


@dataclass
class Main:
    """The 3-node, 3-application lab: every headline figure but health scaling."""

    hook: list[dict[str, Any]] = field(default_factory=list)
    hook_calls: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    floor: dict[str, list[float]] = field(default_factory=dict)
    bare: list[list[Bare]] = field(default_factory=list)  # per repetition, one per node
    runs: list[Run] = field(default_factory=list)
    ssh: list[float] = field(default_factory=list)  # the remote shell's round trips, every repetition
    big_bare: list[list[Bare]] = field(default_factory=list)  # the same, with a realistically sized upgrade
    big_runs: list[Run] = field(default_factory=list)
    big_sleep: float = 0.0


def main_lab(lab: Lab, reps: int, say: Say, big_reps: int = 0, big_sleep: float = 0.0) -> Main:
    found = Main(big_sleep=big_sleep)
    say(f"hook: {reps} batches of {HOOK_RUNS} interleaved crm_mon / Pre-Invoke pairs")
    found.hook = [bench_hook(lab, "node1", HOOK_RUNS) for _ in range(reps)]
    found.hook_calls = memory.hook_in(lab, "node1", reps)
    say("physical floor: lxc-start/lxc-stop cycles")
    found.floor = floor.measure(lab, "node2", reps)
    versions = Versions()
    with Prober(lab) as prober:
        for i in range(reps):
            say(f"repetition {i + 1}/{reps}: bare standby cycle of each node, then rolling-upgrade run")
            found.ssh += ssh_round_trips(lab)
            versions.publish(lab)
            found.bare.append([bare_cycle(lab, prober, n) for n in lab.node_names])
            found.runs.append(rolling_run(lab, prober, versions))
        versions.postinst_sleep = big_sleep
        for i in range(big_reps):
            say(f"realistic size {i + 1}/{big_reps}: the same with a postinst that takes {big_sleep:g}s")
            versions.publish(lab)
            found.big_bare.append([bare_cycle(lab, prober, n) for n in lab.node_names])
            found.big_runs.append(rolling_run(lab, prober, versions))
    return found


def growth_runs(lab: Lab, reps: int, say: Say) -> list[Run]:
    versions = Versions()
    runs = []
    with Prober(lab) as prober:
        for i in range(reps):
            say(f"{lab.nodes} nodes, {lab.apps} applications: rolling-upgrade run {i + 1}/{reps}")
            runs.append(rolling_run(lab, prober, versions))
    return runs


def growth_entry(lab: Lab, runs: list[Run]) -> dict[str, Any]:
    return {"nodes": lab.nodes, "apps": lab.apps,
            "run_seconds": summarize(r.seconds for r in runs).as_dict(),
            "longest_outage_seconds": summarize(max(o) for r in runs for o in r.outages.values()).as_dict(),
            "downtime_per_app_seconds": summarize(sum(o) for r in runs for o in r.outages.values()).as_dict(),
            "move_steps": summarize(r.move_steps for r in runs).as_dict()}


def health_lab(lab: Lab, reps: int, say: Say) -> dict[str, Any]:
    say(f"health check scaling: {reps} interleaved 1-probe / 50-probe checks")
    return health.measure(lab, reps)


def seed_lab(lab: Lab, reps: int, say: Say) -> dict[str, Any]:
    """The seed's two hosts: per repetition a bare standby cycle of each host, then rolling-upgrade run."""
    versions = Versions()
    bare: list[list[Bare]] = []
    runs: list[Run] = []
    with Prober(lab) as prober:
        for i in range(reps):
            say(f"seed {i + 1}/{reps}: bare standby cycle of each host, then rolling-upgrade run")
            versions.publish(lab)
            bare.append([bare_cycle(lab, prober, n) for n in lab.node_names])
            runs.append(rolling_run(lab, prober, versions))
    return {"profile": "seed", "nodes": lab.nodes, "apps": lab.apps, "repetitions": reps,
            "downtime_vs_bare_standby": summarize(paired_downtime(bare, runs)).as_dict(),
            "longest_outage_seconds": summarize(max(o) for r in runs for o in r.outages.values()).as_dict(),
            "bare_outage_seconds": summarize(max(o) for b in bare for cycle in b for o in cycle.outages.values()
                                             if o).as_dict(),
            "run_seconds": summarize(r.seconds for r in runs).as_dict()}


def staging_lab(lab: Lab, reps: int, say: Say, rate: int = staging.RATE,
                padding: int = staging.PADDING) -> dict[str, Any]:
    """Drain-to-online per node with Rolling-Upgrade::Stage on and off, the repository served slowly."""
    return {"nodes": lab.nodes, "apps": lab.apps, **staging.measure(lab, reps, say, rate, padding)}
