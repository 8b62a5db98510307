"""Growth in applications: 12, 48 and 120 on 3 nodes (issue 20), ``python -m upgrader_bench --growth-only``.

Per size one lab of its own (``bng12``, ``bng48``, ``bng120``; the two larger take the whole named-lab /24,
203.0.113.0/24, so no other lab may hold a slice of it), up, measured, always down. Per repetition, in that
lab, as the main bench does on its 3 applications (:mod:`upgrader_bench.scenario`):

- a bare standby cycle of each node (standby until settled, the product's health check of what moved, a bare
  dist-upgrade without upgrader's hooks, standby off), the prober running: each application's outage when a
  bare standby of its node moved it, and the irreducible parts;
- the product's whole health check of every resource (``innode check-all``: what ``rolling-upgrade check``
  runs, timed in-process, :data:`CHECKS` runs after a warm-up), each followed by the reads no check can do
  without, timed alike (the CIB's resources and crm_mon, and at once on each node LXC's states and PIDs):
  Pacemaker's and LXC's own cost at that size, and the check's own part (check minus those reads, paired);
- ``rolling-upgrade plan --json`` in node1, its wall time (:data:`PLANS` runs), against a fresh version;
- ``rolling-upgrade run --yes --json`` of another fresh version. Each application's outages in the run are
  those the run's own outage watch saw (the product's :class:`~upgrader.health.outage.Watch`, 20 ms, around
  each move, the moving applications only), while the prober probes every application coarsely (finely
  once one fails: ``run_prober_longest_outage_s``, a cross-check). The run is thus probed as much as a
  bare move is (its moving applications finely), not three times as much: at 120 applications the prober's
  fine probing of all of them doubled a bare move's settle time and its outages (63 s -> 123 s, 1.07 s ->
  2.13 s median), which the first 120-application figures (2.56x) had measured.

A run's irreducible parts are those of the main bench (:func:`upgrader_bench.stats.irreducible`): each node's
bare dist-upgrade, plus per move step the median bare standby move's settle and health-check time. Its own
cost is wall minus irreducible, and the fixed cost per node that over the nodes. The bare settle time at 40
resources per node is Pacemaker's own transition for 40 simultaneous moves: the irreducible parts show it.

Ratios (:data:`TARGETS`), between the smallest and the largest size measured (12 and 120 by default): the
longest outage per application in the run over its bare standby move, paired per (repetition, application),
at the largest size; own cost largest / smallest; one whole health check largest / smallest, and its own
part alike; ``plan``'s wall time at the largest size, in seconds. The sizes are separate labs brought up one
after the other, so the ratios across sizes are not interleaved as the main bench's are: read them with the
absolute figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping, Sequence

from rich.console import Console
from rich.table import Table

from upgrader_bench import suite
from upgrader_bench.prober import Prober
from upgrader_bench.scenario import TOOL, VIA, Bare, Run, Versions, bare_cycle, home, innode, rolling_run
from upgrader_bench.stats import irreducible, paired_downtime, summarize
from upgrader_lab import node
from upgrader_lab.layout import Lab, LabError
from upgrader.runner import CommandError

SIZES = (12, 48, 120)
NODES = 3
CHECKS = 5  # whole health checks per repetition, after a warm-up
PLANS = 3  # rolling-upgrade plan runs per repetition
Say = Callable[[str], None]

# key -> (target, unit, strict): a value meets its target when at most it ("x": a ratio, "s": seconds);
# strict: when below it.
TARGETS: dict[str, tuple[float, str, bool]] = {
    "downtime_vs_bare_standby": (1.1, "x", False),
    "own_cost_vs_smallest": (2.0, "x", False),
    "health_vs_smallest": (2.0, "x", False),
    "health_own_vs_smallest": (2.0, "x", False),
    "plan_s": (3.0, "s", True),
}
LABELS = {
    "downtime_vs_bare_standby": "longest outage per app at {big}: run / bare standby move (paired)",
    "own_cost_vs_smallest": "the run's own cost (wall - irreducible), {big} / {small} applications",
    "health_vs_smallest": "one health check of every resource, {big} / {small} applications",
    "health_own_vs_smallest": "the check's own part (minus Pacemaker's and LXC's reads, paired), {big} / {small}",
    "plan_s": "rolling-upgrade plan's wall time at {big} applications",
}


DEFINITION = (
    "growth_apps: per size (applications on 3 nodes, a lab each, brought up one after the other) and repetition: "
    "a bare standby cycle of each node as in run_overhead, the product's whole health check of every resource "
    "(what 'rolling-upgrade check' runs, in-process, after a warm-up), 'rolling-upgrade plan --json' in node1 "
    "(wall time from the host) against a fresh version, then 'rolling-upgrade run --yes --json' of another; "
    "own_cost_s: run wall minus its irreducible parts (as run_overhead's); fixed_cost_per_node_s: that over the "
    "nodes; downtime_vs_bare_standby: per (repetition, application) its longest outage in the run over its outage "
    "in the bare standby move of its node; ratios: downtime_vs_bare_standby at the largest size, own cost and one "
    "whole health check at the largest size over the smallest (separate labs, not interleaved), its own part "
    "(each check minus the reads of Pacemaker and LXC timed right after it: the CIB's resources, crm_mon, and "
    "at once on each node lxc-ls of the containers' states and PIDs) alike, plan_s at the largest size")


def lab_name(apps: int) -> str:
    return f"bng{apps}"


def _summary(values: Iterable[float]) -> dict[str, float | int] | None:
    got = list(values)
    return summarize(got).as_dict() if got else None


def size_entry(apps: int, nodes: int, bare: Sequence[Sequence[Bare]], runs: Sequence[Run],
               checks: Sequence[Mapping[str, Any]], plans: Sequence[float]) -> dict[str, Any]:
    """One size's figures: ``bare`` per repetition one Bare per node, ``runs`` one Run per repetition,
    ``checks`` per repetition innode's check-all document, ``plans`` every plan's wall time."""
    walls = [r.seconds for r in runs]
    floor = [irreducible(b, r) for b, r in zip(bare, runs)]
    own = [w - f for w, f in zip(walls, floor)]
    flat = [b for rep in bare for b in rep]
    steps = sorted({s for r in runs for s in r.steps})
    return {
        "apps": apps, "nodes": nodes, "repetitions": len(runs),
        "run_wall_s": _summary(walls),
        "run_irreducible_s": _summary(floor),
        "own_cost_s": _summary(own),
        "fixed_cost_per_node_s": _summary(o / nodes for o in own),
        "run_move_steps": _summary(r.move_steps for r in runs),
        "bare_dist_upgrade_s": _summary(b.dist_upgrade for b in flat),
        "bare_move_settle_s": _summary(b.settle for b in flat),
        "bare_move_health_check_s": _summary(b.health for b in flat),
        "bare_move_resources": _summary(len(b.outages) for b in flat),
        "run_longest_outage_s": _summary(max(o) for r in runs for o in r.outages.values() if o),
        "run_prober_longest_outage_s": _summary(max(o) for r in runs for o in r.prober_outages.values() if o),
        "bare_standby_longest_outage_s": _summary(max(o) for b in flat for o in b.outages.values() if o),
        "downtime_vs_bare_standby": _summary(paired_downtime([list(b) for b in bare], list(runs))),
        "health_check_all_s": _summary(s for c in checks for s in c["seconds"]),
        "health_check_resources": max((c["resources"] for c in checks), default=0),
        "health_floor_s": _summary(s for c in checks for s in c.get("floor_seconds", ())),
        "health_own_s": _summary(s - f for c in checks for s, f in zip(c["seconds"], c.get("floor_seconds", ()))),
        "plan_s": _summary(plans),
        "run_steps_s": {s: round(statistics.median(r.steps.get(s, 0.0) for r in runs), 3) for s in steps},
    }


def _median(entry: Mapping[str, Any] | None, key: str) -> float | None:
    got = (entry or {}).get(key)
    return got["median"] if got else None


def ratios(sizes: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The growth targets, from the smallest and the largest size in ``sizes`` (keyed by the size as text).

    Each: value (None when a figure is missing, or a denominator or the own cost compared is not positive:
    a run that beat its own irreducible parts measured the noise, not the figure), target, unit, verdict
    ("met", "MISSED" or "not measured"), the sizes compared, and the label."""
    if not sizes:
        return {}
    small, big = (str(n) for n in (min(map(int, sizes)), max(map(int, sizes))))
    s, b = sizes[small], sizes[big]

    def over(key: str) -> float | None:
        num, den = _median(b, key), _median(s, key)
        return None if num is None or den is None or den <= 0 or num <= 0 or small == big else num / den

    values = {"downtime_vs_bare_standby": _median(b, "downtime_vs_bare_standby"),
              "own_cost_vs_smallest": over("own_cost_s"),
              "health_vs_smallest": over("health_check_all_s"),
              "health_own_vs_smallest": over("health_own_s"),
              "plan_s": _median(b, "plan_s")}
    found = {}
    for key, value in values.items():
        target, unit, strict = TARGETS[key]
        found[key] = {"value": None if value is None else round(value, 3), "target": target, "unit": unit,
                      "verdict": verdict(value, target, strict), "small": int(small), "big": int(big),
                      "label": LABELS[key].format(small=small, big=big)}
    return found


def verdict(value: float | None, target: float, strict: bool = False) -> str:
    if value is None:
        return "not measured"
    return "met" if (value < target if strict else value <= target) else "MISSED"


def document(sizes: Mapping[str, Mapping[str, Any]], reps: int, seconds: float) -> dict[str, Any]:
    """``growth_apps`` in results.json."""
    return {"nodes": NODES, "repetitions": reps, "seconds": round(seconds, 1),
            "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "sizes": {k: sizes[k] for k in sorted(sizes, key=int)}, "ratios": ratios(sizes),
            "definition": DEFINITION}


def _cell(s: Mapping[str, float] | None, digits: int = 2) -> str:
    if not s:
        return "-"
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


SIZE_COLUMNS = (("run wall s", "run_wall_s"), ("irreducible s", "run_irreducible_s"), ("own cost s", "own_cost_s"),
                ("fixed cost per node s", "fixed_cost_per_node_s"), ("run move steps", "run_move_steps"),
                ("bare dist-upgrade s (per node)", "bare_dist_upgrade_s"),
                ("bare standby move settle s", "bare_move_settle_s"),
                ("bare move health check s", "bare_move_health_check_s"),
                ("resources a bare move moved", "bare_move_resources"),
                ("longest outage run s", "run_longest_outage_s"),
                ("longest outage bare s", "bare_standby_longest_outage_s"),
                ("outage run / bare (paired)", "downtime_vs_bare_standby"),
                ("health check all s", "health_check_all_s"),
                ("its reads of Pacemaker and LXC s", "health_floor_s"), ("its own part s", "health_own_s"),
                ("plan s", "plan_s"))


COUNTS = {"run_move_steps", "bare_move_resources"}


def size_rows(doc: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """One row per figure (resources checked, then :data:`SIZE_COLUMNS`), one column per size: median (min-max)."""
    entries = list(doc["sizes"].values())
    return [("resources checked", *(str(e.get("health_check_resources", "-")) for e in entries)),
            *((label, *(_cell(e.get(key), 0 if key in COUNTS else 2) for e in entries))
              for label, key in SIZE_COLUMNS)]


def ratio_rows(doc: Mapping[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(key, label, value, target, verdict) per growth target, in :data:`TARGETS` order."""
    rows = []
    for key in TARGETS:
        r = doc["ratios"].get(key)
        if r is None:
            continue
        unit = r["unit"]
        value = "-" if r["value"] is None else f"{r['value']:.2f}{unit if unit == 'x' else ' s'}"
        target = f"{'<' if TARGETS[key][2] else '<='} {r['target']:g}{unit if unit == 'x' else ' s'}"
        rows.append((key, r["label"], value, target, r["verdict"]))
    return rows


def tables(doc: Mapping[str, Any]) -> list[Table]:
    sizes = Table(title=f"growth in applications: {doc['nodes']} nodes, {doc['repetitions']} repetition(s) per "
                        f"size (median, min-max), {doc['seconds'] / 60:.1f} min")
    sizes.add_column("applications", justify="left")
    for key in doc["sizes"]:
        sizes.add_column(key, justify="right")
    for row in size_rows(doc):
        sizes.add_row(*row)
    targets = Table(title="growth targets")
    for col in ("figure", "value", "target", "verdict"):
        targets.add_column(col, justify="left" if col == "figure" else "right")
    for key, label, value, target, said in ratio_rows(doc):
        colour = {"met": "green", "MISSED": "red"}.get(said, "yellow")
        targets.add_row(f"{key}\n[dim]{label}[/]", value, target, f"[{colour}]{said}[/]")
    return [sizes, targets]


def plan_times(lab: Lab, reps: int) -> list[float]:
    """``rolling-upgrade plan --json`` in VIA, ``reps`` times, each its wall time (from the host)."""
    times = []
    for _ in range(reps):
        started = time.monotonic()
        node.runner(lab, VIA, timeout=300).run([TOOL, "plan", "--json"], what=f"rolling-upgrade plan in {VIA}")
        times.append(time.monotonic() - started)
    return times


def measure_size(lab: Lab, reps: int, say: Say) -> dict[str, Any]:
    """Every repetition on ``lab``: bare cycles, whole health checks, plans, then a rolling upgrade."""
    versions = Versions()
    bare: list[list[Bare]] = []
    runs: list[Run] = []
    checks: list[dict[str, Any]] = []
    plans: list[float] = []
    with Prober(lab) as prober:
        for i in range(reps):
            tag = f"{lab.apps} applications, repetition {i + 1}/{reps}"
            say(f"{tag}: bare standby cycle of each node")
            versions.publish(lab)
            bare.append([bare_cycle(lab, prober, n) for n in lab.node_names])
            say(f"{tag}: {CHECKS} whole health checks, {PLANS} plans")
            home(lab)
            check = innode(lab, VIA, "check-all", str(CHECKS), timeout=600)
            if not check["ok"]:
                raise RuntimeError(f"the whole health check failed at {lab.apps} applications: "
                                   f"{check['problems'][:5]}")
            checks.append(check)
            versions.publish(lab)
            plans += plan_times(lab, PLANS)
            say(f"{tag}: rolling-upgrade run")
            runs.append(rolling_run(lab, prober, versions, run_watch=True))
    return size_entry(lab.apps, lab.nodes, bare, runs, checks, plans)


def measure(sizes: Sequence[int], reps: int, say: Say) -> dict[str, Any]:
    """One lab per size, one after the other (each always taken down): ``growth_apps``."""
    started = time.monotonic()
    found: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}
    for apps in sizes:
        try:
            with suite.lab_up(lab_name(apps), NODES, apps, say) as lab:
                found[str(apps)] = measure_size(lab, reps, say)
        except (LabError, CommandError, RuntimeError, ValueError) as exc:  # the sizes measured so far are kept
            failed[str(apps)] = str(exc)
            say(f"{apps} applications: not measured: {exc}")
    if not found:
        raise RuntimeError("no size could be measured: " + "; ".join(f"{k}: {v}" for k, v in failed.items()))
    doc = document(found, reps, time.monotonic() - started)
    if failed:
        doc["failed"] = failed  # the ratios then compare the sizes that were measured, and say which
    return doc


# The command line's part (python -m upgrader_bench --growth-only, --growth-apps-in-bench).

def measured_or_kept(args: argparse.Namespace, say: Say, out: Console) -> dict[str, Any] | None:
    """Growth in applications (--growth-only, or --growth-apps-in-bench): measured; else the results file's
    earlier ``growth_apps``, kept as it was (None when it has none)."""
    if not (args.growth_only or args.growth_apps_in_bench):
        try:
            return json.loads(args.out.read_text()).get("growth_apps")
        except (OSError, ValueError, AttributeError):
            return None
    found = measure(args.growth_apps, args.growth_apps_reps, say)
    for table in tables(found):
        out.print(table)
    return found


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--growth-only", action="store_true",
                   help="only growth in applications (12, 48, 120 on 3 nodes, a lab each; about 25 minutes): "
                        "its tables, and growth_apps written into the results file, the rest kept")
    p.add_argument("--growth-apps-in-bench", action="store_true",
                   help="make the full bench measure growth in applications too (else it keeps the results "
                        "file's earlier growth_apps)")
    p.add_argument("--growth-apps-reps", type=int, default=1,
                   help="repetitions per size in growth in applications (default 1)")
    p.add_argument("--growth-apps", type=_sizes, default=SIZES,
                   help="the sizes, comma-separated (default 12,48,120; the ratios compare the smallest and the "
                        "largest)")


def _sizes(text: str) -> tuple[int, ...]:
    sizes = tuple(sorted({int(t) for t in text.split(",") if t.strip()}))
    if not sizes or sizes[0] < 1 or sizes[-1] > 120:
        raise argparse.ArgumentTypeError("sizes from 1 to 120 applications, comma-separated")
    return sizes


def only(args: argparse.Namespace, say: Say, out: Console) -> int:
    """--growth-only: growth_apps measured and written into the results file, whatever else it holds kept."""
    try:
        found = measured_or_kept(args, say, out)
    except (LabError, CommandError, RuntimeError, ValueError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        print(f"benchmark interrupted ({exc or 'SIGINT'}); its lab is down", file=sys.stderr)
        return 130
    try:
        doc = json.loads(args.out.read_text())
    except (OSError, ValueError):
        doc = {}
    doc["growth_apps"] = found
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    out.print(f"wrote growth_apps into {args.out}")
    return 0
