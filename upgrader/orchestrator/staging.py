"""Freeze the run's package set, then stage it on every node before the first drain.

:func:`freeze` (in the preflight) turns every node's plan into one set
(:mod:`upgrader.packages.pkgset`); a node whose mirror lags is deferred. With
the lock held and nothing drained yet, :func:`stage` has every node keep the
set and download its archives, in parallel, with progress: a node that lacks
a version of the set is deferred, and a repository that fails refuses the
whole run with nothing drained. Each node's upgrade then installs exactly the
staged set (``apply --set DIGEST``), from its own archive cache.

With ``Rolling-Upgrade::Stage "false"`` every node still keeps the set and
checks that it can reach it (a node that cannot is deferred as before), but
downloads nothing: each node's upgrade downloads its archives at its turn,
while it is drained.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from typing import Mapping

from upgrader.orchestrator.context import NodeResult, Result, RunContext
from upgrader.orchestrator.outcome import Refused
from upgrader.orchestrator.remote import NodePlan, StageResult
from upgrader.packages import pkgset
from upgrader.packages.plan import Change
from upgrader.packages.summary import summary


def freeze(run: RunContext, plans: Mapping[str, NodePlan], resumed: str = "") -> dict[str, str]:
    """The run's set from the plans (``run.package_set``); the nodes left out, with why (their mirror lags).

    ``resumed``: the digest of an interrupted run's set, which this run goes on with when this node still
    has it (what the nodes newly offer waits for a later run)."""
    pending = {n: p.changes for n, p in plans.items() if p.changes}
    run.package_set, lagging = pkgset.from_plans(pending)
    if resumed and resumed != run.package_set.digest:
        try:
            kept = pkgset.load(resumed)
        except pkgset.SetError as exc:
            run.report.step(None, "plan", f"the interrupted run's package set is not used: {exc}")
            return lagging
        run.package_set = kept
        lagging = pkgset.lagging(kept, pending)
        run.report.step(None, "plan", f"going on with the interrupted run's package set: {kept.summary()}")
    return lagging


def defer(run: RunContext, node: str, reason: str) -> None:
    """``node`` is left for a later run, untouched, with ``reason`` (recorded, reported)."""
    result = run.results.setdefault(node, NodeResult(node))
    result.result, result.error = Result.DEFERRED, reason
    run.history.record(run.run_id, node, "node", "deferred", reason=reason)
    run.report.step(node, "defer", f"deferred: {reason}")


def stage(run: RunContext, order: list[str]) -> dict[str, tuple[Change, ...]]:
    """Every node of ``order`` keeps the set and downloads its archives (in parallel); per node not deferred,
    what it will install (none: the set has nothing for it).

    With Stage off (``run.config.stage`` false) the nodes keep and check the set but download nothing.
    :class:`Refused` (nothing drained, the lock released by the caller) when a node's download fails.
    """
    frozen = run.package_set
    download = run.config.stage
    try:  # kept here too, whether this node upgrades or not: a run that goes on after this one uses it
        pkgset.save(frozen)
    except OSError as exc:
        run.report.step(None, "stage", f"the package set is not kept on this node ({exc}); a run after an "
                        "interruption plans a new one")
    run.phase(None, "stage")
    run.history.record(run.run_id, None, "stage", "note", download=download, **frozen.document())
    limit = run.config.apply_limit(len(frozen))

    def one(node: str) -> StageResult:
        return run.nodes.stage(node, frozen, lambda e: run.report.progress(node, e), timeout=limit,
                               download=download)

    with run.heartbeats("stage"), ThreadPoolExecutor(max_workers=len(order) or 1) as pool:
        staged = dict(zip(order, pool.map(one, order)))
    failed = [s for s in staged.values() if not s.ok and s.result != "unavailable"]
    if failed:
        raise Refused("refused: staging the run's package set failed, nothing was drained: " + "; ".join(
            f"{s.node}: {s.error or s.result}" for s in failed))
    ready: dict[str, tuple[Change, ...]] = {}
    for node in order:
        got = staged[node]
        run.history.record(run.run_id, node, "stage", "end", result=got.result, error=got.error,
                           seconds=round(got.seconds, 1), changes=[asdict(c) for c in got.changes])
        if got.result == "unavailable":
            defer(run, node, got.error or "the run's set cannot be installed there")
            continue
        run.results[node].changes = [asdict(c) for c in got.changes]
        if got.result == "nothing":
            run.results[node].result = Result.UP_TO_DATE
        else:
            run.report.step(node, "stage", f"{summary(got.changes)} downloaded in {got.seconds:.1f}s" if download
                            else f"{summary(got.changes)} kept, to download at its turn (Stage is off)")
        ready[node] = got.changes if got.result == "staged" else ()
    return ready
