"""Drain-to-online per node with and without staging, at a package whose download takes seconds.

The lab's repository is served slowly for the whole scenario
(:func:`upgrader_lab.slowrepo.serving`: ``rate`` bytes/s over HTTP from the
lab's client namespace, every connection together, as a mirror's uplink) and
the demo package carries ``padding`` random bytes, so one node's download
takes about padding / rate seconds (nodes that download at once share the
rate). Each repetition runs two rolling upgrades, each of a fresh version,
from the same placement: ``Rolling-Upgrade::Stage "true"`` (every node
downloads the set before the first drain) and ``"false"`` (each node
downloads at its turn, drained); the order alternates between repetitions.
The setting is written into every node's apt.conf.d for its run
(:data:`SETTING`) and removed after.

Per node, drain-to-online runs from its ``drain`` start record to its
``node`` end record, written once its fail over (and the check of what moved
back onto it) is done: the history has no fail-over end of its own. Both are
taken on the run's own clock by :mod:`upgrader_bench.trace`, not from the
history's whole seconds. The staging phase's wall time runs from the
``stage`` start record to the first ``stage`` end record (those are written
once every node is done).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from upgrader_bench import trace
from upgrader_bench.scenario import HISTORY, TRACE, VIA, Versions, home
from upgrader_bench.stats import summarize
from upgrader_lab import node, slowrepo
from upgrader_lab.layout import Lab

RATE = 1 << 20  # bytes/s: 1 MiB/s
PADDING = 4 << 20  # bytes: a download of about 4 s for one node at RATE
SETTING = "/etc/apt/apt.conf.d/61upgrader-bench-stage"  # in every node, for one run
Say = Callable[[str], None]


def setting(stage: bool) -> str:
    return f'// upgrader_bench: the staging scenario\nRolling-Upgrade::Stage "{"true" if stage else "false"}";\n'


def drain_to_online(records: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Per node: from its first ``drain`` start to its ``node`` end (``records`` as :func:`trace.records`)."""
    started: dict[str, float] = {}
    found: dict[str, float] = {}
    for r in records:
        n = r.get("node")
        if not n:
            continue
        if (r["phase"], r["event"]) == ("drain", "start"):
            started.setdefault(n, r["at"])
        elif (r["phase"], r["event"]) == ("node", "end") and n in started and n not in found:
            found[n] = round(r["at"] - started[n], 4)
    return found


def stage_phase(records: Iterable[Mapping[str, Any]]) -> float:
    """Seconds from the run's ``stage`` start to the first ``stage`` end after it."""
    start = None
    for r in records:
        if (r["phase"], r["event"]) == ("stage", "start") and r.get("node") is None and start is None:
            start = r["at"]
        elif (r["phase"], r["event"]) == ("stage", "end") and start is not None:
            return round(r["at"] - start, 4)
    raise ValueError("the run recorded no staging phase (no stage start, or no node's stage end after it)")


@dataclass
class StagedRun:
    """One ``rolling-upgrade run`` with Stage on or off; seconds throughout."""

    stage: bool
    seconds: float  # the run's wall time, from the host
    stage_seconds: float  # the staging phase's wall time (stage_phase)
    drain_to_online: dict[str, float]  # per node
    upgrade_seconds: dict[str, float] = field(default_factory=dict)  # per node: its upgrade as the run saw it
    staged_seconds: dict[str, float] = field(default_factory=dict)  # per node: its stage step (download or check)
    archives: list[float] = field(default_factory=list)  # seconds of each archive the slow repository served


def set_stage(lab: Lab, stage: bool | None) -> None:
    """Rolling-Upgrade::Stage in every node (None: the setting file removed)."""
    for n in lab.node_names:
        inside = node.runner(lab, n)
        if stage is None:
            inside.run(["rm", "-f", SETTING], what=f"removing {SETTING} in {n}")
        else:
            inside.run(["tee", SETTING], input=setting(stage), what=f"writing {SETTING} in {n}")


def _log_size(lab: Lab) -> int:
    try:
        return slowrepo.log_path(lab).stat().st_size
    except FileNotFoundError:
        return 0


def staged_run(lab: Lab, versions: Versions, stage: bool) -> StagedRun:
    """A fresh version rolled out with Stage ``stage`` (run through :mod:`upgrader_bench.trace` in VIA)."""
    set_stage(lab, stage)
    try:
        home(lab)
        versions.publish(lab)
        logged = _log_size(lab)
        start = time.monotonic()
        result = node.runner(lab, VIA, timeout=900).call(
            [sys.executable, "-m", "upgrader_bench.trace", TRACE, "--", "run", "--yes", "--json"])
        seconds = time.monotonic() - start
    finally:
        set_stage(lab, None)
    try:
        doc = json.loads(result.stdout)
    except ValueError:
        raise RuntimeError(f"rolling-upgrade run gave no JSON (exit {result.returncode}): {result.stderr[-500:]}")
    if result.returncode != 0:
        raise RuntimeError(f"rolling-upgrade run (Stage {stage}) exited {result.returncode}: {json.dumps(doc)[-800:]}")
    text = node.runner(lab, VIA).run(["cat", HISTORY], what="reading the history").stdout
    events = [e for e in map(json.loads, text.splitlines()) if e.get("run") == doc["run"]]
    note = next((e for e in events if (e["phase"], e["event"]) == ("stage", "note")), None)
    if note is None or note.get("download") is not stage:
        raise RuntimeError(f"Rolling-Upgrade::Stage {str(stage).lower()} did not reach the run (its stage note: "
                           f"{note})")
    traced = json.loads(node.runner(lab, VIA).run(["cat", TRACE], what="reading the run's trace").stdout)
    records = trace.records(traced)
    drained = drain_to_online(records)
    if sorted(drained) != sorted(lab.node_names):
        raise RuntimeError(f"the run drained and brought back {sorted(drained)}, not every node")
    served = slowrepo.served(slowrepo.log_path(lab).read_bytes()[logged:].decode(errors="replace"))
    archives = [s.seconds for s in served if s.archive and s.status == 200 and s.bytes >= versions.padding_bytes]
    if not archives:
        raise RuntimeError(f"the slow repository served no archive of the package during the run (see "
                           f"{slowrepo.log_path(lab)}): the nodes did not download through it")
    return StagedRun(stage=stage, seconds=round(seconds, 3), stage_seconds=stage_phase(records),
                     drain_to_online=drained,
                     upgrade_seconds={e["node"]: e["seconds"] for e in events
                                      if (e["phase"], e["event"]) == ("upgrade", "end")},
                     staged_seconds={e["node"]: e["seconds"] for e in events
                                     if (e["phase"], e["event"]) == ("stage", "end")},
                     archives=archives)


def measure(lab: Lab, reps: int, say: Say, rate: int = RATE, padding: int = PADDING) -> dict[str, Any]:
    """``reps`` pairs of runs (Stage on and off, alternating which goes first) on the slowly served repository."""
    versions = Versions(padding_bytes=padding)
    runs: list[StagedRun] = []
    say(f"staging: the repository served at {rate} bytes/s, a package of {padding} bytes of padding")
    with slowrepo.serving(lab, rate):
        for i in range(reps):
            for stage in ((True, False) if i % 2 == 0 else (False, True)):
                say(f"staging {i + 1}/{reps}: rolling-upgrade run with Rolling-Upgrade::Stage "
                    f"{str(stage).lower()}")
                runs.append(staged_run(lab, versions, stage))
    return summary(runs, rate, padding)


def _values(runs: list[StagedRun], pick: Callable[[StagedRun], Iterable[float]]) -> list[float]:
    return [v for r in runs for v in pick(r)]


def summary(runs: list[StagedRun], rate: int, padding: int) -> dict[str, Any]:
    """The scenario's results: per node and overall, Stage on against Stage off, paired per repetition."""
    on = [r for r in runs if r.stage]
    off = [r for r in runs if not r.stage]
    nodes = sorted({n for r in runs for n in r.drain_to_online})
    ratios = [b.drain_to_online[n] / a.drain_to_online[n] for a, b in zip(on, off) for n in nodes
              if a.drain_to_online.get(n) and n in b.drain_to_online]
    found = {
        "drain_to_online_staged_s (per node)": _values(on, lambda r: r.drain_to_online.values()),
        "drain_to_online_unstaged_s (per node)": _values(off, lambda r: r.drain_to_online.values()),
        "stage_phase_staged_s (every node downloads)": [r.stage_seconds for r in on],
        "stage_phase_unstaged_s (the set kept and checked, no download)": [r.stage_seconds for r in off],
        "upgrade_staged_s (per node, as the run saw it)": _values(on, lambda r: r.upgrade_seconds.values()),
        "upgrade_unstaged_s (per node, as the run saw it)": _values(off, lambda r: r.upgrade_seconds.values()),
        "archive_download_staged_s (per archive, server side)": _values(on, lambda r: r.archives),
        "archive_download_unstaged_s (per archive, server side)": _values(off, lambda r: r.archives),
        "run_wall_staged_s": [r.seconds for r in on],
        "run_wall_unstaged_s": [r.seconds for r in off],
    }
    return {
        "nodes": len(nodes), "repetitions": min(len(on), len(off)), "rate_bytes_per_s": rate,
        "padding_bytes": padding,
        "drain_to_online_unstaged_vs_staged": summarize(ratios).as_dict() if ratios else None,
        "per_node": {n: {"staged_s": [r.drain_to_online[n] for r in on if n in r.drain_to_online],
                         "unstaged_s": [r.drain_to_online[n] for r in off if n in r.drain_to_online]}
                     for n in nodes},
        "figures": {name: summarize(values).as_dict() for name, values in found.items() if values},
    }
