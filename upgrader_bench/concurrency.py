"""Rolling-Upgrade::Concurrency 2 against 1: the wall time of a 5-node rolling upgrade, side by side.

One lab of five nodes and five applications (:data:`LAB`). Each repetition
runs two rolling upgrades from the same placement (every application back
home first), each of a fresh version of the same package, with the same
checks (the lab's Health:: settings): ``Rolling-Upgrade::Concurrency "1"``
and ``"2"``, the order alternating between repetitions. The setting is
written into every node's apt.conf.d for its run (:data:`SETTING`) and
removed after. ``concurrency_2_vs_1``: per repetition the N=2 run's wall time
(from the host) over the N=1 run's; the median over repetitions, target
:data:`TARGET`. Each run must end with every node ok, and the N=2 run must
have drained two nodes together (its history), or the scenario fails.

The same pairs are then run at a realistic upgrade size (``realistic_size``,
``concurrency_2_vs_1_realistic_size``): the package's postinst sleeps
:data:`REALISTIC_POSTINST` seconds, as the main bench's realistic size does
for ``run_overhead``. The lab's own package installs in a fraction of a
second, so at the lab's size a step is nearly all moves, settles and checks,
which a batch does once for its nodes but not in half the time; the part a
batch runs in parallel, dpkg, is the one a real upgrade spends its time in.

    python -m upgrader_bench --concurrency-only [--concurrency-reps N] [--concurrency-postinst S]
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from upgrader_bench.scenario import HISTORY, TOOL, VIA, Versions, home
from upgrader_bench.stats import summarize
from upgrader_lab import node
from upgrader_lab.layout import Lab

LAB, NODES, APPS = "bnconc", 5, 5
TARGET = 0.65  # concurrency_2_vs_1 at most this
REALISTIC_POSTINST = 10.0  # seconds dpkg's postinst takes per node at the realistic size (as --big-sleep)
SETTING = "/etc/apt/apt.conf.d/61upgrader-bench-concurrency"  # in every node, for one run
Say = Callable[[str], None]


@dataclass
class ConcurrentRun:
    concurrency: int
    seconds: float  # the run's wall time, from the host
    drains: list[list[str]] = field(default_factory=list)  # the nodes of each drain, in order
    upgrade_seconds: dict[str, float] = field(default_factory=dict)  # per node, as the run saw it


def set_concurrency(lab: Lab, value: int | None) -> None:
    """Rolling-Upgrade::Concurrency in every node (None: the setting file removed)."""
    for n in lab.node_names:
        inside = node.runner(lab, n)
        if value is None:
            inside.run(["rm", "-f", SETTING], what=f"removing {SETTING} in {n}")
        else:
            inside.run(["tee", SETTING], input=f'// upgrader_bench: the concurrency scenario\n'
                       f'Rolling-Upgrade::Concurrency "{value}";\n', what=f"writing {SETTING} in {n}")


def drains(events: list[dict[str, Any]]) -> list[list[str]]:
    """The nodes of each drain: drain starts with no upgrade or fail over started in between."""
    groups: list[list[str]] = []
    last = None
    for e in events:
        if (e.get("phase"), e.get("event")) == ("drain", "start"):
            if last != "drain":
                groups.append([])
            groups[-1].append(e["node"])
        if e.get("event") == "start" and e.get("phase") in ("drain", "upgrade", "fail-over"):
            last = e["phase"]
    return groups


def concurrent_run(lab: Lab, versions: Versions, concurrency: int) -> ConcurrentRun:
    """A fresh version rolled out with Concurrency ``concurrency`` (``rolling-upgrade run --yes --json`` in VIA)."""
    set_concurrency(lab, concurrency)
    try:
        home(lab)
        versions.publish(lab)
        start = time.monotonic()
        result = node.runner(lab, VIA, timeout=1800).call([TOOL, "run", "--yes", "--json"])
        seconds = time.monotonic() - start
    finally:
        set_concurrency(lab, None)
    try:
        doc = json.loads(result.stdout)
    except ValueError:
        raise RuntimeError(f"rolling-upgrade run gave no JSON (exit {result.returncode}): {result.stderr[-500:]}")
    if result.returncode != 0:
        raise RuntimeError(f"rolling-upgrade run (Concurrency {concurrency}) exited {result.returncode}: "
                           f"{json.dumps(doc)[-800:]}")
    if sorted(n["node"] for n in doc["nodes"] if n["result"] == "ok") != sorted(lab.node_names):
        raise RuntimeError(f"not every node is ok after the run (Concurrency {concurrency}): {doc['nodes']}")
    text = node.runner(lab, VIA).run(["cat", HISTORY], what="reading the history").stdout
    events = [e for e in map(json.loads, text.splitlines()) if e.get("run") == doc["run"]]
    found = drains(events)
    if concurrency > 1 and not any(len(g) > 1 for g in found):
        raise RuntimeError(f"Concurrency {concurrency} drained no two nodes together: {found} (see the run's "
                           "'plan' lines for why)")
    return ConcurrentRun(concurrency, round(seconds, 3), found,
                         {e["node"]: e["seconds"] for e in events if (e["phase"], e["event"]) == ("upgrade", "end")})


def measure(lab: Lab, reps: int, say: Say, postinst: float = REALISTIC_POSTINST) -> dict[str, Any]:
    """``reps`` pairs at the lab's size, then ``reps`` pairs with a postinst of ``postinst`` seconds (0: not)."""
    versions = Versions()
    found = summary(pairs(lab, versions, reps, say, "lab size"))
    if postinst > 0:
        versions.postinst_sleep = postinst
        found["realistic_size"] = summary(pairs(lab, versions, reps, say, f"a postinst of {postinst:g}s"))
        found["realistic_size"]["postinst_s"] = postinst
    return found


def pairs(lab: Lab, versions: Versions, reps: int, say: Say, size: str) -> list[ConcurrentRun]:
    """``reps`` pairs of runs, Concurrency 1 and 2, the order alternating."""
    runs: list[ConcurrentRun] = []
    for i in range(reps):
        for n in ((1, 2) if i % 2 == 0 else (2, 1)):
            say(f"concurrency {i + 1}/{reps} ({size}): rolling-upgrade run with Rolling-Upgrade::Concurrency {n}")
            runs.append(concurrent_run(lab, versions, n))
    return runs


def summary(runs: list[ConcurrentRun]) -> dict[str, Any]:
    one = [r for r in runs if r.concurrency == 1]
    two = [r for r in runs if r.concurrency == 2]
    ratios = [b.seconds / a.seconds for a, b in zip(one, two)]
    ratio = summarize(ratios)
    return {"nodes": NODES, "apps": APPS, "repetitions": len(ratios), "target": TARGET,
            "concurrency_2_vs_1": ratio.as_dict(), "met": ratio.median <= TARGET,
            "run_wall_concurrency_1_s": summarize(r.seconds for r in one).as_dict(),
            "run_wall_concurrency_2_s": summarize(r.seconds for r in two).as_dict(),
            "drains_concurrency_2": [r.drains for r in two],
            "upgrade_s (per node, as the run saw it)": {
                str(n): summarize(values).as_dict() for n, values in
                ((1, [v for r in one for v in r.upgrade_seconds.values()]),
                 (2, [v for r in two for v in r.upgrade_seconds.values()])) if values},
            "definition": " ".join(__doc__.split("\n\n")[1:3]).replace("\n", " ")}


def merge(out: Path, found: dict[str, Any]) -> dict[str, Any]:
    """``found`` into the results file (``concurrency_2_vs_1``: its median; ``concurrency``: the rest), every
    other key kept as it is."""
    try:
        doc = json.loads(out.read_text())
    except (FileNotFoundError, ValueError):
        doc = {}
    doc["concurrency_2_vs_1"] = found["concurrency_2_vs_1"]["median"]
    if "realistic_size" in found:
        doc["concurrency_2_vs_1_realistic_size"] = found["realistic_size"]["concurrency_2_vs_1"]["median"]
    doc["concurrency"] = found
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    return doc
