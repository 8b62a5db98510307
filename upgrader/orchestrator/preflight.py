"""Preflight: every reason not to start, before anything changes, and the order the nodes go in.

Nothing here writes to the cluster: the lock is read, the nodes are asked for
their plans (after a bounded ``apt-get update`` with Rolling-Upgrade::Update),
what the selection takes is kept (:mod:`upgrader.packages.choose`), a
cluster-stack upgrade is checked against Pacemaker's own rules (crm_verify,
versions: :mod:`upgrader.pacemaker.stack_check`), and each node's standby is
simulated (crm_simulate).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Iterable, Mapping, Sequence

from upgrader.orchestrator import steering
from upgrader.orchestrator.context import RunContext
from upgrader.orchestrator.moves import placement, refuse_stops
from upgrader.orchestrator.outcome import Refused
from upgrader.orchestrator.remote import NodePlan
from upgrader.packages.choose import Selection, select
from upgrader.packages.plan import Change
from upgrader.pacemaker import holds, shapes
from upgrader.pacemaker.holds import Hold
from upgrader.pacemaker.stack_check import stack_upgrade_problems
from upgrader.pacemaker.lock import inspect as lock_status
from upgrader.pacemaker.lock import utcnow
from upgrader.pacemaker.state import ClusterState
from upgrader.runs import WAITING


def check(run: RunContext, only: list[str] | None) -> dict[str, NodePlan]:
    """Every reason not to start, before anything changes (:class:`Refused`); the plans, in upgrade order."""
    state = run.cluster.state()  # one crm_mon for the preflight's facts and the plans' order
    facts = run.cluster.preflight(state)
    problems = facts.problems()
    held = lock_status(run.cluster)
    if held is not None and not held.breakable:  # said first: an offline holder is also an offline node
        problems.insert(0, f"the upgrade lock is held: {held.describe(utcnow())}")
    run.all_nodes = [n.name for n in state.nodes]
    unknown = [n for n in only or [] if n not in run.all_nodes]
    if unknown:
        raise Refused(f"refused: unknown node(s) {', '.join(unknown)}: the cluster has {', '.join(run.all_nodes)}")
    quarantined = steering.quarantined(run.cluster, run.all_nodes)
    wanted = [n for n in order(state, run.nodes.local) if (not only or n in only)]
    for n in wanted:
        if n in quarantined:
            problems.append(f"{n} is quarantined ({quarantined[n]}); after fixing it, clear it with "
                            f"'rolling-upgrade unquarantine {n}'")
    try:
        run.checks.preflight()
    except Exception as exc:  # a malformed probe: one line naming resource and attribute
        problems.append(str(exc))
    problems += [f"{rid} is a bundle: rolling upgrades of nodes running bundles are not supported yet"
                 for rid in shapes.bundles(state)]
    if problems:
        raise Refused("refused: " + "; ".join(problems))
    if run.config.update:
        failed = refresh_indexes(run, wanted)
        if failed:
            raise Refused("refused: " + "; ".join(failed) + "; nothing was changed")
    # What the selection takes, less a build held back cluster-wide (a node that missed a sync still offers it).
    plans = chosen(run.plan_all(wanted), run.selection, holds.read(run.cluster))
    errors = [p.error for p in plans.values() if p.error]
    if errors:
        raise Refused("refused: " + "; ".join(e for e in errors if e))
    run.planned = {n: (*p.changes, *(c for c, _ in p.skipped)) for n, p in plans.items()}  # the metrics' pending
    for n, p in plans.items():
        if p.skipped:
            run.report.step(n, "plan", f"left out by the selection: {skipped_text(p.skipped)}")
    if any(p.ha_stack for p in plans.values()):  # Pacemaker's own rules for a rolling upgrade of its stack
        problems += stack_upgrade_problems(run.cluster, state, candidate_pacemaker(plans.values()))
    to_drain = [n for n in wanted if plans[n].changes and not state.node(n).standby]
    for n, down in zip(to_drain, predict_all(run, state, to_drain)):
        problems += [f"a standby of {n} would take down what it should move: {d}" for d in down]
    if problems:
        raise Refused("refused: " + "; ".join(problems) + "; nothing was changed")
    online = [n for n in run.all_nodes if n not in quarantined]
    if len(online) < 2:
        raise Refused("refused: a rolling upgrade needs at least two nodes that can run resources")
    run.placed = placement(state)
    run.kept_in_standby = {n.name for n in state.nodes if n.standby and n.name not in quarantined
                           and run.cluster.get_attribute(n.name, WAITING) is None}
    return plans


def chosen(plans: Mapping[str, NodePlan], selection: Selection, held: Iterable[Hold] = ()) -> dict[str, NodePlan]:
    """Each plan with only what the selection takes (Origins-Pattern, Package-Blacklist, --security-only)
    and no version ``held`` back (a build that failed its checks)."""
    kept_off = {(h.package, h.version): h for h in held}
    found = {}
    for n, p in plans.items():
        taken, skipped = select(p.changes, selection)
        for c in list(taken):
            hold = kept_off.get((c.package, c.candidate or ""))
            if hold is not None:
                taken.remove(c)
                skipped.append((c, f"held back: it failed in run {hold.run_id} on {hold.node}"))
        found[n] = replace(p, changes=tuple(taken), skipped=tuple(skipped)) if skipped else p
    return found


def skipped_text(skipped: Sequence[tuple[Change, str]], show: int = 3) -> str:
    """``3 packages: linux-image-amd64 (blacklisted by 'linux-'), ...``."""
    shown = ", ".join(f"{c.package} ({why})" for c, why in skipped[:show])
    return f"{len(skipped)} package(s): {shown}{' ...' if len(skipped) > show else ''}"


def newest(plans: Mapping[str, NodePlan]) -> dict[str, str]:
    """Every candidate the nodes offer, taken or left out (what ends a hold on an older build)."""
    return {c.package: c.candidate for p in plans.values() for c in (*p.changes, *(c for c, _ in p.skipped))
            if c.candidate}


def candidate_pacemaker(plans: Iterable[NodePlan]) -> str | None:
    """The Pacemaker version the run installs: pacemaker's candidate, else one of its libraries' or tools'."""
    candidates = {c.package: c.candidate for p in plans for c in p.changes if c.candidate}
    return next((candidates[name] for name in PACEMAKER_PACKAGES if name in candidates), None)


PACEMAKER_PACKAGES = ("pacemaker", "pacemaker-cli-utils", "libpacemaker1", "pacemaker-common")  # Debian's names


def refresh_indexes(run: RunContext, nodes: list[str]) -> list[str]:
    """``apt-get update`` on every node, in parallel, bounded by Update-Timeout (Rolling-Upgrade::Update);
    one line per node where it failed."""
    def update(node: str) -> str | None:
        got = run.nodes.runner(node, timeout=run.config.update_timeout).call(["apt-get", "update", "-q"])
        return None if got.returncode == 0 else f"apt-get update failed on {node} ({got.last_words})"

    run.report.step(None, "plan", f"refreshing the package indexes on {', '.join(nodes)} (Rolling-Upgrade::Update)")
    with ThreadPoolExecutor(max_workers=len(nodes) or 1) as pool:
        return [line for line in pool.map(update, nodes) if line]


def predict_all(run: RunContext, state: ClusterState, nodes: list[str]) -> list[list[str]]:
    """For each node, what its standby would take down now (crm_simulate, in parallel)."""
    with ThreadPoolExecutor(max_workers=len(nodes) or 1) as pool:
        return list(pool.map(lambda n: refuse_stops(run, state, n), nodes))


def order(state: ClusterState, local: str) -> list[str]:
    """The node we run on (``local``) last (even in standby), standby nodes first, the rest by name; with no
    standby node, one other node that runs nothing goes first (its peers' resources then move once, onto it).

    Only one: a node that runs nothing is not verified until resources move onto it, and the next
    drain does that, before a second node is touched. The node we run on is never moved up: it
    may reboot itself (Reboot), which ends this run.
    """
    ranked = sorted(state.nodes, key=lambda n: (1 if n.name == local else 0, 0 if n.standby else 1, n.name))
    if ranked and not ranked[0].standby:
        empty = next((n for n in ranked if not n.resources_running and n.name != local), None)
        if empty is not None:
            ranked.remove(empty)
            ranked.insert(0, empty)
    return [n.name for n in ranked]
