"""``rolling-upgrade plan``: every node's pending changes, the order, and the moves Pacemaker would make.

``plan --local`` is this node's part alone (no cluster needed); the whole
plan asks every node for it. Its JSON (:meth:`Plan.document`) has per change
``package``, ``installed``, ``candidate``, ``security``, ``ha_stack``, ``in_use`` (a running
process maps one of its files), ``origins`` (the candidate's, each a dict of its Release
fields) and ``action``. Tables and prompts summarize a node's changes
(:mod:`upgrader.cli.render`); ``--json`` lists every one.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from upgrader.packages.plan import Plan, local_plan

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from upgrader.orchestrator.remote import NodePlan
    from upgrader.pacemaker.live import Cluster
    from upgrader.pacemaker.state import ClusterState
    from upgrader.pacemaker.transition import Action

SHOW_ALL = 10  # a plan of this many changes or fewer lists each one; a longer one the few that matter


def plan_command(as_json: bool, out: Console) -> int:
    """Print this node's plan (exit code 0)."""
    if as_json:
        return plan_json()
    render(local_plan(), out)
    return 0


def plan_json() -> int:
    """``plan --local --json``: the plan as indented JSON on stdout, without loading rich (run on every node);
    with ``pins``, the holds this node's pin file pins now (null when it is unreadable), so that a run syncs
    only the nodes whose pins differ from the CIB's."""
    from upgrader.packages import holds

    doc = local_plan().document()
    try:
        doc["pins"] = [h.document() for h in holds.read_local()]
    except holds.HoldError:
        doc["pins"] = None
    print(json.dumps(doc, indent=2))
    return 0


def render(plan: Plan, out: Console) -> None:
    """A table of the node's changes that matter (all of them when there are few); security, HA stack and
    in-use marked; the number of the others, which ``--json`` lists."""
    from rich.markup import escape
    from rich.table import Table

    from upgrader.cli.render import counts

    if not plan.changes:
        out.print(escape(f"{plan.node}: up to date, nothing to upgrade"))
        return
    shown = plan.changes if len(plan.changes) <= SHOW_ALL else tuple(c for c in plan.changes if c.ha_stack or c.in_use)
    table = Table(title=escape(f"{plan.node}: {counts(plan.changes)}"), caption=_hidden(plan, len(shown)))
    for col in ("package", "installed", "candidate", "security", "HA stack", "in use"):
        table.add_column(col)
    for c in shown:
        table.add_row(escape(c.package), escape(c.installed) if c.installed else "[green]new[/]",
                      escape(c.candidate) if c.candidate else "[red]removed[/]", "[red]yes[/]" if c.security else "",
                      "[yellow]yes[/]" if c.ha_stack else "", "yes" if c.in_use else "")
    out.print(table)
    if plan.ha_stack:
        out.print(f"[yellow]HA stack in the set[/] ({escape(', '.join(c.package for c in plan.ha_stack))}): "
                  "rolling-upgrade run stops the cluster stack on this node around the upgrade")


def _hidden(plan: Plan, shown: int) -> str | None:
    """The table's caption: how many changes it leaves out, and where they are listed."""
    from upgrader.cli.render import counts

    hidden = [c for c in plan.changes if not (c.ha_stack or c.in_use)] if shown < len(plan.changes) else []
    if not hidden:
        return None
    return (f"and {counts(hidden)}, neither HA stack nor in use: 'rolling-upgrade plan --local --json' lists "
            "every change")


def plan(cluster: Cluster, out: Console, *, as_json: bool) -> int:
    """Every node's plan, in the order a run would take them (exit code 0)."""
    from rich.markup import escape

    from upgrader import config as configuration
    from upgrader.cli import automatic
    from upgrader.orchestrator import preflight
    from upgrader.orchestrator.outcome import Outcome
    from upgrader.orchestrator.remote import Nodes
    from upgrader.packages import pkgset
    from upgrader.packages.choose import selection_for
    from upgrader.pacemaker import holds
    from upgrader.pacemaker.transition import actions

    cfg = configuration.load()
    nodes = Nodes(cfg, cluster.local_node())
    state = cluster.state()
    order = preflight.order(state, nodes.local)
    with ThreadPoolExecutor(max_workers=len(order) or 1) as pool:  # every node asked at once, as a run's preflight
        asked = dict(zip(order, pool.map(nodes.plan, order)))
        plans = preflight.chosen(asked, selection_for(cfg), holds.read(cluster))
        pending = [n for n in order if plans[n].changes]
        moves = {n: actions(predicted, state) for n, predicted in zip(pending, pool.map(cluster.predict_standby,
                                                                                         pending))}
    frozen, lagging = pkgset.from_plans({n: p.changes for n, p in plans.items() if p.changes})
    notes = plan_notes(cluster, state) + [f"{n} waits for a later run: {why}" for n, why in lagging.items()]
    notes += automatic.status_lines()  # this node's path; 'rolling-upgrade automatic' shows every node's
    notes += [f"{n}: left out by the selection: {preflight.skipped_text(p.skipped)}" for n, p in plans.items()
              if p.skipped]
    if as_json:
        print(json.dumps(plan_document(plans, moves) | {"set": frozen.document(), "deferred": lagging,
                                                        "notes": notes, "automatic": automatic.status_document()},
                         indent=2))
    else:
        out.print(plan_table(plans, moves))
        if frozen:
            out.print(escape(f"the run's package set: {frozen.summary()}; every node installs exactly these "
                             "versions, downloaded before the first drain"))
        for line in notes:
            out.print(f"[yellow]note:[/] {escape(line)}")
    return Outcome.DONE


def plan_notes(cluster: Cluster, state: ClusterState) -> list[str]:
    """What a run leaves as it is: resources it never touches, nodes it keeps in standby or refuses, builds
    held back on every node."""
    from upgrader.cli.holds import status_lines
    from upgrader.orchestrator import steering
    from upgrader.pacemaker import holds
    from upgrader.pacemaker.shapes import left_alone
    from upgrader.runs import WAITING

    nodes = [n.name for n in state.nodes]
    quarantined = steering.quarantined(cluster, nodes)
    notes = left_alone(state)
    for n in state.nodes:
        if n.name in quarantined:
            notes.append(f"{n.name} is quarantined ({quarantined[n.name]}): a run refuses until "
                         f"'rolling-upgrade unquarantine {n.name}'")
        elif n.standby and cluster.get_attribute(n.name, WAITING) is None:
            notes.append(f"{n.name} is in standby (an operator's): it is upgraded and left in standby")
    try:
        notes += status_lines(holds.read(cluster))  # the pins keep them out of every node's changes above
    except holds.HoldError as exc:
        notes.append(f"the held-back builds cannot be read: {exc}")
    return notes


def plan_document(plans: dict[str, NodePlan], moves: Mapping[str, Sequence[Action]]) -> dict[str, Any]:
    """``plan --json``: the order, and per node its error, every change and the moves its standby makes."""
    return {"order": [n for n, p in plans.items() if p.changes],
            "nodes": {n: _plan_doc(p) | {"moves": [a.document() for a in moves.get(n, ())]} for n, p in plans.items()}}


def plan_table(plans: dict[str, NodePlan], moves: Mapping[str, Sequence[Action]]) -> Table:
    """One row per node, in the run's order: its changes summarized, the moves its standby makes."""
    from rich.markup import escape
    from rich.table import Table

    from upgrader.cli.render import cell, summary_lines

    table = Table(title="rolling-upgrade plan")
    for col in ("#", "node", "changes", "security", "HA stack", "moves on standby (crm_simulate)"):
        table.add_column(col)
    upgrading = [n for n, p in plans.items() if p.changes]
    for n, p in plans.items():
        changes = escape(p.error) if p.error else cell(summary_lines(p.changes))
        table.add_row(str(upgrading.index(n) + 1) if p.changes else "-", escape(n), changes,
                      str(p.security) if p.changes else "",
                      "yes" if p.ha_stack else "", cell(a.text() for a in moves.get(n, ())))
    return table


def _plan_doc(p: NodePlan) -> dict[str, Any]:
    return {"error": p.error, "changes": [asdict(c) for c in p.changes],
            "skipped": [asdict(c) | {"reason": why} for c, why in p.skipped]}
