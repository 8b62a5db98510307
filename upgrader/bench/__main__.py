"""``make bench``: what an operator pays for the safety, as ratios taken side by side in one run.

Brings up its own labs one after the other (bn3: 3 nodes and 3 applications,
bn2, bn5, bn12) and always takes them down, also on Ctrl-C or SIGTERM.
Prints the tables and writes bench/results.json.

    python -m upgrader.bench [--reps N] [--growth-reps N] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console

from upgrader.bench import report, suite
from upgrader.bench.stats import Summary, summarize
from upgrader.lab.layout import LabError
from upgrader.runner import CommandError

OUT = Path(__file__).resolve().parents[2] / "bench" / "results.json"
DEFINITIONS = [
    "outage: for one floating IP, the time from the last 200 before failed probes to the next 200 "
    "(20 Hz GET /version from the lab's client namespace, 0.25 s timeout); gaps without a failed probe are jitter",
    "downtime_vs_bare_standby: per repetition, the median over applications of their longest outage during "
    "rolling-upgrade run, over the median longest outage of the same applications moved by a bare "
    "'crm_attribute --name standby --update on' of their node (one node at a time, same lab, same placement)",
    "run_overhead: per repetition, the wall time of 'rolling-upgrade run --yes --json' (3 nodes, 1 package) over "
    "its irreducible parts: the bare 'apt-get dist-upgrade' of each node (hooks off, timed in the drained node) "
    "+ for each move step the run made (history 'move' notes) one bare standby move's settle time (crm_attribute "
    "until DC idle and nothing in flight, polled at 0.1 s) and one health check of every application "
    "(check_health, one /health probe each, levels 1 and 3)",
    "hook_repeat_vs_crm_mon: per batch, the median repeated Pre-Invoke call (cached verdict, as APT runs it) over "
    "the median bare 'crm_mon --one-shot --output-as=xml', 7 interleaved pairs per batch (upgrader.guard.bench)",
    "health_50_vs_1: median check_health time with 50 probes over 1 probe, interleaved (upgrader.bench.health)",
    "floor: lxc-start until the container serves + lxc-stop of an unmanaged container of the lab's kind, in a node",
    "peak RSS: VmHWM of the rolling-upgrade run / apply processes (polled), GNU time %M for the hook's process tree",
]


def _interrupted(signo: int, _frame: Any) -> NoReturn:
    raise KeyboardInterrupt(signal.Signals(signo).name)


def headline(main: suite.Main, health: dict[str, Any]) -> dict[str, Summary]:
    def med(values: list[float]) -> float:
        return statistics.median(values)

    downtime, overhead = [], []
    for bare, run in zip(main.bare, main.runs):
        moved = [max(o) for b in bare for o in b.outages.values() if o]
        downtime.append(med([max(o) for o in run.outages.values()]) / med(moved))
        settle = med([b.settle for b in bare])
        overhead.append(run.seconds / irreducible(bare, run, settle))
    h50 = health["health_50_vs_1"]
    return {"hook_repeat_vs_crm_mon": summarize(h["pre_invoke_repeat_ms"] / h["crm_mon_ms"] for h in main.hook),
            "downtime_vs_bare_standby": summarize(downtime), "run_overhead": summarize(overhead),
            "health_50_vs_1": Summary(h50, h50, h50, health["repetitions"])}


def irreducible(bare: list[Any], run: Any, settle: float) -> float:
    return sum(b.dist_upgrade for b in bare) + run.move_steps * (settle + run.health_check)


def figures(main: suite.Main, health: dict[str, Any]) -> dict[str, dict[str, float | int]]:
    bare = [b for rep in main.bare for b in rep]
    runs = main.runs
    found = {
        "hook_pre_invoke_repeat_ms": [h["pre_invoke_repeat_ms"] for h in main.hook],
        "hook_crm_mon_ms": [h["crm_mon_ms"] for h in main.hook],
        "hook_first_call_s (GNU time, 10 ms steps)": [c["seconds"] for c in main.hook_calls["first"]],
        "hook_first_call_peak_rss_mib": [c["peak_rss_mib"] for c in main.hook_calls["first"]],
        "hook_repeat_peak_rss_mib": [c["peak_rss_mib"] for c in main.hook_calls["repeat"]],
        "bare_standby_longest_outage_s": [max(o) for b in bare for o in b.outages.values() if o],
        "run_longest_outage_s": [max(o) for r in runs for o in r.outages.values()],
        "run_downtime_per_app_s (sum of outages)": [sum(o) for r in runs for o in r.outages.values()],
        "run_outages_per_app": [len(o) for r in runs for o in r.outages.values()],
        "floor_lxc_stop_plus_start_s": [a + b for a, b in zip(main.floor["start"], main.floor["stop"])],
        "floor_lxc_start_until_serving_s": main.floor["start"],
        "floor_lxc_stop_s": main.floor["stop"],
        "bare_move_settle_s": [b.settle for b in bare],
        "bare_dist_upgrade_s": [b.dist_upgrade for b in bare],
        "run_upgrade_phase_s (history, per node)": [s for r in runs for s in r.upgrade_seconds],
        "bare_health_check_all_apps_s": [r.health_check for r in runs],
        "run_wall_s": [r.seconds for r in runs],
        "run_irreducible_s": [irreducible(b, r, statistics.median(x.settle for x in b))
                              for b, r in zip(main.bare, runs)],
        "run_move_steps": [r.move_steps for r in runs],
        "run_peak_rss_mib": [r.peak_rss_mib.get("run", 0.0) for r in runs],
        "apply_peak_rss_mib (local node)": [r.peak_rss_mib.get("apply", 0.0) for r in runs],
    }
    doc = {name: summarize(values).as_dict() for name, values in found.items() if values}
    for n in (1, 50):
        doc[f"health_{n}_probes_s"] = dict(health[f"health_{n}_probes_seconds"], n=health["repetitions"])
    return doc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m upgrader.bench", description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=5, help="repetitions on the 3-node lab (at least 5, default 5)")
    p.add_argument("--growth-reps", type=int, default=3, help="rolling upgrades per growth lab (default 3)")
    p.add_argument("--out", type=Path, default=OUT, help=f"results file (default {OUT})")
    args = p.parse_args(argv)
    if args.reps < 5 or args.growth_reps < 1:
        p.error("--reps must be at least 5 and --growth-reps at least 1")
    out = Console()
    started = time.monotonic()
    signal.signal(signal.SIGTERM, _interrupted)

    def say(text: str) -> None:
        out.print(f"[dim]{time.monotonic() - started:6.0f}s[/] {text}")

    try:
        with suite.lab_up("bn3", 3, 3, say) as lab:
            main_found = suite.main_lab(lab, args.reps, say)
            growth = [suite.growth_entry(lab, main_found.runs)]
        for name, nodes in (("bn2", 2), ("bn5", 5)):
            with suite.lab_up(name, nodes, 3, say) as lab:
                growth.append(suite.growth_entry(lab, suite.growth_runs(lab, args.growth_reps, say)))
        with suite.lab_up("bn12", 3, 12, say) as lab:
            health = suite.health_lab(lab, 7, say)
            growth.append(suite.growth_entry(lab, suite.growth_runs(lab, args.growth_reps, say)))
    except (LabError, CommandError, RuntimeError, ValueError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        print(f"benchmark interrupted ({exc or 'SIGINT'}); its labs are down", file=sys.stderr)
        return 130
    ratios = headline(main_found, health)
    doc = {"cpus": os.cpu_count(), "seconds": round(time.monotonic() - started, 1),
           "repetitions": {"main": args.reps, "growth": args.growth_reps, "health": health["repetitions"]},
           **{k: round(s.median, 3) for k, s in ratios.items()},
           "targets": report.TARGETS, "ratios": {k: s.as_dict() for k, s in ratios.items()},
           "figures": figures(main_found, health), "growth": sorted(growth, key=lambda g: (g["apps"], g["nodes"])),
           "definitions": DEFINITIONS}
    report.render(doc, out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    out.print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
