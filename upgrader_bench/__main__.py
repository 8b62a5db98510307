"""``make bench``: what an operator pays for the safety, as ratios taken side by side in one run.

Brings up its own labs one after the other (bn3: 3 nodes and 3 applications,
bn2, bn5, bn12, bnseed, bnstage) and always takes them down, also on Ctrl-C or SIGTERM.
Prints the tables and writes bench/results.json.

    python -m upgrader_bench [--reps N] [--big-reps N] [--big-sleep S] [--growth-reps N] [--main-only] [--out FILE]
    python -m upgrader_bench --staging-only [--staging-reps N] [--staging-rate B] [--staging-padding B]
    python -m upgrader_bench --growth-only [--growth-apps-reps N] [--growth-apps 12,48,120] [--out FILE]
    python -m upgrader_bench --concurrency-only [--concurrency-reps N] [--concurrency-postinst S] [--out FILE]
    python -m upgrader_bench --automatic-only [--automatic-reps N] [--automatic-packages N] [--out FILE]
    python -m upgrader_bench --anatomy-only [--anatomy-apps N] [--anatomy-reps N] [--anatomy-keep DIR] [--out FILE]

--main-only keeps to the 3-node lab (health scaling on its 3 applications,
no growth labs, no staging lab): quicker, for profiling; ``make bench`` runs everything.
--staging-only: only drain-to-online per node with Rolling-Upgrade::Stage on and off, the lab's
repository served slowly (:mod:`upgrader_bench.staging`), as JSON on stdout.
--growth-only: only growth in applications (:mod:`upgrader_bench.growth`: 12, 48 and 120 on 3 nodes, a lab
each), its tables printed and ``growth_apps`` written into the results file, the rest of it kept; ``make
bench`` leaves it out (about 25 minutes) unless --growth-apps-in-bench, and keeps the file's earlier
``growth_apps`` (which carries its own measured_at).
--concurrency-only: only a 5-node run with Rolling-Upgrade::Concurrency 2 against 1 (:mod:`upgrader_bench.concurrency`),
as JSON on stdout and merged into the results file (concurrency_2_vs_1 and, with a postinst of
--concurrency-postinst seconds, concurrency_2_vs_1_realistic_size; every other key kept).
--automatic-only: only how long the automatic path keeps a node drained against the tool's node upgrade
(:mod:`upgrader_bench.automatic`, lab bnauto), as JSON on stdout and merged into the results file
(``automatic`` and ``automatic_vs_node_upgrade``; every other key kept).
--anatomy-only: only a bare standby move split from the cluster's own timings, per application
(:mod:`upgrader_bench.anatomy`, lab bnanat), as JSON on stdout and merged into the results file
(``move_anatomy``, keyed by the number of applications; every other key kept).
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
from typing import Any, Callable, NoReturn

from rich.console import Console

from upgrader_bench import growth as apps_growth
from upgrader_bench import report, staging, suite
from upgrader_bench.stats import Summary, fixed_cost_per_node, irreducible, paired_downtime, summarize
from upgrader_lab.layout import LabError
from upgrader.runner import CommandError

OUT = Path(__file__).resolve().parents[1] / "bench" / "results.json"
STAGING_LAB = "bnstage"
DEFINITIONS = [
    "outage: for one floating IP, the time from the last 200 before failed probes to the next 200 "
    "(20 Hz GET /version from the lab's client namespace, 0.25 s timeout); gaps without a failed probe are jitter",
    "downtime_vs_bare_standby: over every (repetition, application) pair, the application's longest outage during "
    "rolling-upgrade run over its outage when a bare 'crm_attribute --name standby --update on' of its node moved "
    "it in the same repetition (one node at a time, same lab, same starting placement); median, min and max of "
    "those paired ratios. downtime_per_repetition_ratio keeps the older form (per repetition, median over "
    "applications of the run's longest outage over the median bare outage)",
    "run_overhead: per repetition, the wall time of 'rolling-upgrade run --yes --json' (3 nodes, 1 package; "
    "measured from the host, the run started through upgrader_bench.trace, which only notes times) over its "
    "irreducible parts, measured in the same repetition: the bare 'apt-get dist-upgrade' of each node "
    "(upgrader's hook entries off, the machine's own kept; timed in the drained node) + for each move step the run made (history 'move' notes) one bare standby "
    "move's settle time (crm_attribute until the DC is idle, nothing in flight and the resources away, polled "
    "every 0.1 s) and one health check of the resources that move moved, right after it (the product's own "
    "check, all three levels with the lab's Health:: settings; level 2 goes through the remote shell as in the "
    "run); per repetition the medians of the three bare moves' settle and health times",
    "run_overhead_realistic_size: the same, in the same lab after the main repetitions, with a package whose "
    "postinst sleeps big_upgrade_postinst_s (a stand-in for the dpkg time of a real upgrade) in both the bare "
    "dist-upgrades and the run",
    "run_step_*: seconds of the run's main thread in each step (upgrader_bench.trace): waiting for the cluster to "
    "settle, health checks, the upgrade on each node as the run sees it (remote shell, interpreter, python-apt, "
    "dpkg with the guard's hooks), planning every node, lock heartbeats, history lines, and the rest",
    "apply_*: per node upgrade, seconds as the run saw it (remote shell + 'rolling-upgrade apply') and in-process "
    "in the node (python-apt's dist-upgrade with the guard's APT and dpkg hooks, 0.1 s steps)",
    "fixed_cost_per_node_s: per repetition of the 3-node lab, the run's wall time minus its irreducible parts "
    "(as in run_overhead), over the nodes; the median is the headline, target at most 0.8 s",
    "growth_apps: see its own definition (12, 48 and 120 applications on 3 nodes, python -m upgrader_bench "
    "--growth-only)",
    "hook_repeat_vs_crm_mon: per batch, the median repeated Pre-Invoke call (cached verdict, as APT runs it) over "
    "the median bare 'crm_mon --one-shot --output-as=xml', 7 interleaved pairs per batch (upgrader_bench.hook)",
    "health_50_vs_1: median check_health time with 50 probes over 1 probe, interleaved (upgrader_bench.health)",
    "floor: lxc-start until the container serves + lxc-stop of an unmanaged container of the lab's kind, in a node",
    "ssh_round_trip: the lab's Remote-Shell running 'true' on a peer, from node1",
    "peak RSS: VmHWM of the rolling-upgrade run / apply processes (polled), GNU time %M for the hook's process tree",
    "staging (lab bnstage, 3 nodes, 3 applications): the lab's repository served over HTTP at rate_bytes_per_s "
    "(every connection together) and the demo package padded with padding_bytes random bytes; per repetition one "
    "rolling-upgrade run with Rolling-Upgrade::Stage true and one with false, each of a fresh version, from the same "
    "placement. drain_to_online per node: its history 'drain' start to its 'node' end (after its fail over), on the "
    "run's clock (upgrader_bench.trace); drain_to_online_unstaged_vs_staged: per (repetition, node) the Stage-false "
    "time over the Stage-true time; stage_phase: the 'stage' start to the first 'stage' end record",
    "automatic (lab bnauto, 3 nodes, 3 applications; upgrader_bench.automatic): a set of 120 tiny packages "
    "(demo-pkg-001..) installed in every node, a fresh version of all of them per measurement, on node2. "
    "automatic_vs_node_upgrade: per repetition, node2's drained time in the nightly window with "
    "Rolling-Upgrade::Automatic \"window\" (drain start to node end, the window's trace in node1) over its drained "
    "time in 'rolling-upgrade node' (the same, its trace in node2); unattended_vs_node_upgrade: node2 put in "
    "standby by crm_attribute, then unattended-upgrade -v (MinimalSteps false, as shipped) and the finishing step, "
    "until node2 is out of standby with the lock free (host polls every 0.25 s), over the same denominator",
]


def _interrupted(signo: int, _frame: Any) -> NoReturn:
    raise KeyboardInterrupt(signal.Signals(signo).name)


def headline(main: suite.Main, health: dict[str, Any]) -> dict[str, Summary]:
    h50 = health["health_50_vs_1"]
    ratios = {"hook_repeat_vs_crm_mon": summarize(h["pre_invoke_repeat_ms"] / h["crm_mon_ms"] for h in main.hook),
              "downtime_vs_bare_standby": summarize(paired_downtime(main.bare, main.runs)),
              "run_overhead": summarize(overheads(main.bare, main.runs)),
              "health_50_vs_1": Summary(h50, h50, h50, health["repetitions"])}
    if main.big_runs:  # issue 20: run_overhead is judged where dpkg takes a realistic time
        ratios["run_overhead_realistic_size"] = summarize(overheads(main.big_bare, main.big_runs))
    return ratios


def per_repetition_downtime(bare: list[list[Any]], runs: list[Any]) -> list[float]:
    """The older form: per repetition, median over applications of run outages over the median bare outage."""
    found = []
    for cycle, run in zip(bare, runs):
        moved = [max(o) for b in cycle for o in b.outages.values() if o]
        found.append(statistics.median([max(o) for o in run.outages.values()]) / statistics.median(moved))
    return found


def overheads(bare: list[list[Any]], runs: list[Any]) -> list[float]:
    return [run.seconds / irreducible(b, run) for b, run in zip(bare, runs)]


def figures(main: suite.Main, health: dict[str, Any]) -> dict[str, dict[str, float | int]]:
    bare = [b for rep in main.bare for b in rep]
    runs = main.runs
    found = {
        "hook_pre_invoke_repeat_ms": [h["pre_invoke_repeat_ms"] for h in main.hook],
        "hook_crm_mon_ms": [h["crm_mon_ms"] for h in main.hook],
        "hook_first_call_s (GNU time, 10 ms steps)": [c["seconds"] for c in main.hook_calls["first"]],
        "hook_first_call_peak_rss_mib": [c["peak_rss_mib"] for c in main.hook_calls["first"]],
        "hook_repeat_peak_rss_mib": [c["peak_rss_mib"] for c in main.hook_calls["repeat"]],
        "downtime_per_repetition_ratio (older form)": per_repetition_downtime(main.bare, runs),
        "bare_standby_longest_outage_s": [max(o) for b in bare for o in b.outages.values() if o],
        "run_longest_outage_s": [max(o) for r in runs for o in r.outages.values()],
        "run_downtime_per_app_s (sum of outages)": [sum(o) for r in runs for o in r.outages.values()],
        "run_outages_per_app": [len(o) for r in runs for o in r.outages.values()],
        "floor_lxc_stop_plus_start_s": [a + b for a, b in zip(main.floor["start"], main.floor["stop"])],
        "floor_lxc_start_until_serving_s": main.floor["start"],
        "floor_lxc_stop_s": main.floor["stop"],
        "bare_move_settle_s": [b.settle for b in bare],
        "bare_move_health_check_s (all levels)": [b.health for b in bare],
        "bare_dist_upgrade_s": [b.dist_upgrade for b in bare],
        "ssh_round_trip_s": main.ssh,
        "run_upgrade_phase_s (history, per node)": [s for r in runs for s in r.upgrade_seconds],
        "apply_seen_by_run_s (per node)": [a["seconds"] for r in runs for a in r.applies],
        "apply_in_process_s (per node, 0.1 s steps)": [a["in_process"] for r in runs for a in r.applies],
        "run_wall_s": [r.seconds for r in runs],
        "run_irreducible_s": [irreducible(b, r) for b, r in zip(main.bare, runs)],
        "fixed_cost_per_node_s": fixed_cost_per_node(main.bare, runs),
        "run_move_steps": [r.move_steps for r in runs],
        **{f"run_step_{step}_s": [r.steps.get(step, 0.0) for r in runs] for step in (runs[0].steps if runs else {})},
        "run_peak_rss_mib": [r.peak_rss_mib.get("run", 0.0) for r in runs],
        "apply_peak_rss_mib (local node)": [r.peak_rss_mib.get("apply", 0.0) for r in runs],
    }
    if main.big_runs:
        big = [b for rep in main.big_bare for b in rep]
        found.update({
            "run_overhead_realistic_size": overheads(main.big_bare, main.big_runs),
            "big_upgrade_postinst_s": [main.big_sleep],
            "big_bare_dist_upgrade_s": [b.dist_upgrade for b in big],
            "big_apply_seen_by_run_s (per node)": [a["seconds"] for r in main.big_runs for a in r.applies],
            "big_run_wall_s": [r.seconds for r in main.big_runs],
            "big_run_irreducible_s": [irreducible(b, r) for b, r in zip(main.big_bare, main.big_runs)],
            "big_fixed_cost_per_node_s": fixed_cost_per_node(main.big_bare, main.big_runs),
        })
    doc = {name: summarize(values).as_dict() for name, values in found.items() if values}
    for n in (1, 50):
        doc[f"health_{n}_probes_s"] = dict(health[f"health_{n}_probes_seconds"], n=health["repetitions"])
    return doc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m upgrader_bench", description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=7, help="repetitions on the 3-node lab (at least 5, default 7)")
    p.add_argument("--growth-reps", type=int, default=3, help="rolling upgrades per growth lab (default 3)")
    p.add_argument("--big-reps", type=int, default=3,
                   help="repetitions with a realistically sized upgrade on the 3-node lab (default 3; 0: none)")
    p.add_argument("--big-sleep", type=float, default=10.0,
                   help="seconds the realistically sized upgrade's postinst takes (default 10)")
    p.add_argument("--main-only", action="store_true",
                   help="only the 3-node lab (no growth labs, no health scaling): for profiling")
    p.add_argument("--out", type=Path, default=OUT, help=f"results file (default {OUT})")
    p.add_argument("--patched-only", action="store_true",
                   help="only what level 4 (patched) costs at 12 and 120 applications, on this machine (JSON)")
    p.add_argument("--seed-only", action="store_true",
                   help="only the seed profile's downtime per move against a bare standby move (JSON on stdout)")
    p.add_argument("--staging-only", action="store_true",
                   help="only drain-to-online per node with Rolling-Upgrade::Stage on and off, the repository "
                        "served slowly (JSON on stdout)")
    p.add_argument("--staging-reps", type=int, default=1,
                   help="pairs of runs (Stage on, Stage off) in the staging scenario (default 1)")
    p.add_argument("--staging-rate", type=int, default=staging.RATE,
                   help=f"bytes/s the slow repository serves, every node together (default {staging.RATE})")
    p.add_argument("--staging-padding", type=int, default=staging.PADDING,
                   help=f"random bytes in the staged package (default {staging.PADDING})")
    apps_growth.add_arguments(p)
    p.add_argument("--concurrency-only", action="store_true",
                   help="only a 5-node rolling upgrade with Concurrency 2 against 1 (JSON on stdout, merged into --out)")
    p.add_argument("--concurrency-reps", type=int, default=2,
                   help="pairs of runs (Concurrency 1, Concurrency 2) in the concurrency scenario, at each "
                        "size (default 2)")
    p.add_argument("--concurrency-postinst", type=float, default=10.0,
                   help="seconds the package's postinst takes in the concurrency scenario's realistic size "
                        "(default 10; 0: the lab's size only)")
    add_automatic_options(p)
    p.add_argument("--anatomy-only", action="store_true",
                   help="only the anatomy of a bare standby move: each application's outage split from the "
                        "cluster's own timings (JSON on stdout, merged into --out as move_anatomy)")
    p.add_argument("--anatomy-apps", type=int, default=3,
                   help="applications in the anatomy's lab of 3 nodes (default 3)")
    p.add_argument("--anatomy-reps", type=int, default=2,
                   help="bare moves of every node in the anatomy scenario (default 2)")
    p.add_argument("--anatomy-keep", type=Path, default=None,
                   help="a directory for the first repetition's raw logs and probes, a file per move (what "
                        "tests/bench/capture_anatomy.py captures for the unit tests)")
    args = p.parse_args(argv)
    if args.automatic_only:
        return automatic_only(args)
    if args.anatomy_only:
        return anatomy_only(args)
    if args.reps < 5 or args.growth_reps < 1 or args.big_reps < 0 or args.big_sleep < 0:
        p.error("--reps must be at least 5, --growth-reps at least 1, --big-reps and --big-sleep at least 0")
    if args.growth_apps_reps < 1:
        p.error("--growth-apps-reps must be at least 1")
    if args.staging_reps < 1 or args.staging_padding < 0 or not (
            staging.slowrepo.MIN_RATE <= args.staging_rate <= staging.slowrepo.MAX_RATE):
        p.error(f"--staging-reps must be at least 1, --staging-padding at least 0, --staging-rate "
                f"{staging.slowrepo.MIN_RATE} to {staging.slowrepo.MAX_RATE}")
    out = Console()
    started = time.monotonic()
    signal.signal(signal.SIGTERM, _interrupted)

    def say(text: str) -> None:
        out.print(f"[dim]{time.monotonic() - started:6.0f}s[/] {text}")

    if args.patched_only:
        from upgrader_bench import patched

        print(json.dumps(patched.run(), indent=2))
        return 0
    if args.growth_only:
        return apps_growth.only(args, say, out)
    if args.seed_only:
        def seed_only() -> dict:
            with suite.lab_up("bnseed", 2, 2, say, profile="seed") as lab:
                return suite.seed_lab(lab, args.growth_reps, say)

        found, failed = one_scenario(seed_only)
        if failed is not None:
            return failed
        print(json.dumps(found, indent=2))
        return 0
    if args.concurrency_only:
        from upgrader_bench import concurrency

        if args.concurrency_reps < 1 or args.concurrency_postinst < 0:
            p.error("--concurrency-reps must be at least 1, --concurrency-postinst at least 0")
        def concurrency_only() -> dict:
            with suite.lab_up(concurrency.LAB, concurrency.NODES, concurrency.APPS, say) as lab:
                return concurrency.measure(lab, args.concurrency_reps, say, args.concurrency_postinst)

        found, failed = one_scenario(concurrency_only)
        if failed is not None:
            return failed
        concurrency.merge(args.out, found)
        print(json.dumps(found, indent=2))
        return 0
    if args.staging_only:
        def staging_only() -> dict:
            with suite.lab_up(STAGING_LAB, 3, 3, say) as lab:
                return suite.staging_lab(lab, args.staging_reps, say, args.staging_rate, args.staging_padding)

        found, failed = one_scenario(staging_only)
        if failed is not None:
            return failed
        print(json.dumps(found, indent=2))
        return 0
    try:
        with suite.lab_up("bn3", 3, 3, say) as lab:
            main_found = suite.main_lab(lab, args.reps, say, args.big_reps, args.big_sleep)
            growth = [suite.growth_entry(lab, main_found.runs)]
            if args.main_only:
                health = suite.health_lab(lab, 5, say)
        if not args.main_only:
            for name, nodes in (("bn2", 2), ("bn5", 5)):
                with suite.lab_up(name, nodes, 3, say) as lab:
                    growth.append(suite.growth_entry(lab, suite.growth_runs(lab, args.growth_reps, say)))
            with suite.lab_up("bn12", 3, 12, say) as lab:
                health = suite.health_lab(lab, 7, say)
                growth.append(suite.growth_entry(lab, suite.growth_runs(lab, args.growth_reps, say)))
        seed = staged = automatic_found = None
        if not args.main_only:
            with suite.lab_up("bnseed", 2, 2, say, profile="seed") as lab:
                seed = suite.seed_lab(lab, args.growth_reps, say)
            with suite.lab_up(STAGING_LAB, 3, 3, say) as lab:
                staged = suite.staging_lab(lab, args.staging_reps, say, args.staging_rate, args.staging_padding)
            automatic_found = automatic_lab(args, say)
        grown = apps_growth.measured_or_kept(args, say, out)
    except (LabError, CommandError, RuntimeError, ValueError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        print(f"benchmark interrupted ({exc or 'SIGINT'}); its labs are down", file=sys.stderr)
        return 130
    ratios = headline(main_found, health)
    doc = {"cpus": os.cpu_count(), "seconds": round(time.monotonic() - started, 1),
           "repetitions": {"main": args.reps, "realistic_size": args.big_reps, "growth": args.growth_reps,
                           "health": health["repetitions"]},
           **{k: round(s.median, 3) for k, s in ratios.items()},
           "fixed_cost_per_node_s": round(statistics.median(fixed_cost_per_node(main_found.bare, main_found.runs)), 3),
           "targets": {**report.TARGETS, **report.SECONDS_TARGETS},
           "ratios": {k: s.as_dict() for k, s in ratios.items()},
           "figures": figures(main_found, health), "growth": sorted(growth, key=lambda g: (g["apps"], g["nodes"])),
           "seed": seed, "staging": staged, "growth_apps": grown,
           "definitions": DEFINITIONS}
    if automatic_found and automatic_found.get("automatic_vs_node_upgrade"):
        doc["ratios"]["automatic_vs_node_upgrade"] = automatic_found["automatic_vs_node_upgrade"]
        doc["automatic_vs_node_upgrade"] = automatic_found["automatic_vs_node_upgrade"]["median"]
    doc["automatic"] = automatic_found
    doc["main_measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    report.render(doc, out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(merged(previous_results(args.out), doc, args.main_only), indent=2) + "\n")
    out.print(f"wrote {args.out}")
    return 0


def previous_results(path: Path) -> dict:
    """What ``path`` holds now (empty when missing or unreadable)."""
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def merged(previous: dict, doc: dict, main_only: bool) -> dict:
    """``doc`` written over ``previous``, whose keys ``doc`` does not have are kept (what the -only
    scenarios merged in: concurrency, the anatomy of a move, growth in applications). ``main_only``: what
    that run did not measure is kept too: a scenario it left out (None), the ratios, figures and growth
    entries of the other labs."""
    out = {**previous, **doc}
    if not main_only:
        return out
    for key, value in doc.items():
        old = previous.get(key)
        if value is None and old is not None:
            out[key] = old
        elif isinstance(value, dict) and isinstance(old, dict) and key in ("ratios", "figures", "targets"):
            out[key] = {**old, **value}
        elif key == "growth" and isinstance(old, list):
            fresh = {(g.get("apps"), g.get("nodes")) for g in value}
            kept = [g for g in old if isinstance(g, dict) and (g.get("apps"), g.get("nodes")) not in fresh]
            out[key] = sorted(kept + value, key=lambda g: (g.get("apps", 0), g.get("nodes", 0)))
    return out


AUTOMATIC_LAB = "bnauto"


def add_automatic_options(p: argparse.ArgumentParser) -> None:
    from upgrader_bench import automatic

    p.add_argument("--automatic-only", action="store_true",
                   help="only the automatic path's drained time against the tool's node upgrade of the same "
                        "package set (JSON on stdout, merged into --out)")
    p.add_argument("--automatic-reps", type=int, default=3,
                   help="repetitions of the automatic scenario (default 3)")
    p.add_argument("--automatic-packages", type=int, default=automatic.PACKAGES,
                   help=f"packages in the scenario's set (default {automatic.PACKAGES}; at least 100)")


def automatic_lab(args: argparse.Namespace, say: Any) -> dict[str, Any]:
    """The automatic scenario on a lab of its own (3 nodes, 3 applications)."""
    from upgrader_bench import automatic

    with suite.lab_up(AUTOMATIC_LAB, 3, 3, say) as lab:
        return {"nodes": lab.nodes, "apps": lab.apps,
                **automatic.measure(lab, args.automatic_reps, say, args.automatic_packages)}


def merge_automatic(path: Path, found: dict[str, Any]) -> None:
    """``found`` into the results file as ``automatic`` and the headline ``automatic_vs_node_upgrade``
    (with its ratio and target); every other key as it was."""
    doc = json.loads(path.read_text()) if path.exists() else {}
    doc["automatic"] = found
    ratio = found.get("automatic_vs_node_upgrade")
    if ratio:
        doc["automatic_vs_node_upgrade"] = ratio["median"]
        doc.setdefault("ratios", {})["automatic_vs_node_upgrade"] = ratio
        doc.setdefault("targets", dict(report.TARGETS))["automatic_vs_node_upgrade"] = \
            report.TARGETS["automatic_vs_node_upgrade"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")


def one_scenario(work: Callable[[], Any]) -> tuple[Any, int | None]:
    """What ``work`` (one "-only" scenario, its labs always taken down) measured and None, or None and the
    exit code, said in one line: 1 when a lab or a command failed, 130 when interrupted."""
    try:
        return work(), None
    except (LabError, CommandError, RuntimeError, ValueError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return None, 1
    except KeyboardInterrupt as exc:
        print(f"benchmark interrupted ({exc or 'SIGINT'}); its lab is down", file=sys.stderr)
        return None, 130


def scenario_console() -> tuple[Console, Callable[[str], None]]:
    """For one "-only" scenario: its console and ``say`` (each line with the seconds since now); SIGTERM
    interrupts it like Ctrl-C, so its lab is taken down."""
    started = time.monotonic()
    signal.signal(signal.SIGTERM, _interrupted)
    out = Console()

    def say(text: str) -> None:
        out.print(f"[dim]{time.monotonic() - started:6.0f}s[/] {text}")

    return out, say


def automatic_only(args: argparse.Namespace) -> int:
    if args.automatic_reps < 1 or args.automatic_packages < 100:
        print("--automatic-reps must be at least 1 and --automatic-packages at least 100 (a point update's size)",
              file=sys.stderr)
        return 2
    out, say = scenario_console()

    found, failed = one_scenario(lambda: automatic_lab(args, say))
    if failed is not None:
        return failed
    print(json.dumps(found, indent=2))
    merge_automatic(args.out, found)
    out.print(f"merged into {args.out}")
    return 0


ANATOMY_LAB = "bnanat"


def anatomy_only(args: argparse.Namespace) -> int:
    from rich.table import Table
    from rich.text import Text

    from upgrader_bench import anatomy

    if args.anatomy_reps < 1 or not 3 <= args.anatomy_apps <= 120:
        print("--anatomy-reps must be at least 1 and --anatomy-apps 3 to 120", file=sys.stderr)
        return 2
    out, say = scenario_console()

    def work() -> dict[str, Any]:
        with suite.lab_up(ANATOMY_LAB, 3, args.anatomy_apps, say) as lab:
            return anatomy.measure(lab, args.anatomy_reps, say, args.anatomy_keep)

    found, failed = one_scenario(work)
    if failed is not None:
        return failed
    print(json.dumps(found, indent=2))
    table = Table(title=f"a bare standby move, split per application ({found['apps']} applications on "
                        f"{found['nodes']} nodes, {found['reps']} moves of each node): median (min-max) s")
    table.add_column("part")
    table.add_column("seconds", justify="right")
    for what, value in anatomy.rows(found):
        table.add_row(Text(what), value)  # plain text: "ocf:heartbeat:lxc" is no emoji code
    out.print(table)
    doc = json.loads(args.out.read_text()) if args.out.exists() else {}
    doc.setdefault("move_anatomy", {})[str(found["apps"])] = found
    doc["definitions"] = [d for d in doc.get("definitions", []) if not d.startswith("move_anatomy ")] \
        + [DEFINITIONS_ANATOMY]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    out.print(f"merged into {args.out}")
    return 0


DEFINITIONS_ANATOMY = (
    "move_anatomy (python -m upgrader_bench --anatomy-only; upgrader_bench.anatomy), per number of applications: "
    "bare standby moves of each node (crm_attribute, nothing of the tool), each moved application's outage split "
    "from every node's Pacemaker detail log (DC's 'Initiating' lines, the executing node's 'Result of' lines, "
    "execd's execution times; one clock) and the prober's last answer before the outage and first after: "
    "dc_reaction (standby -> its first action initiated), agents (each stop and start's execution time), "
    "cluster_hops (first action initiated -> last result, less the agents), serving (container start done -> "
    "it answers); against the floor (lxc-stop + lxc-start until serving)")


if __name__ == "__main__":
    sys.exit(main())
