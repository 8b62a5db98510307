"""``rolling-upgrade plan``: every node's pending changes, the order, and the moves Pacemaker would make.

``plan --local`` is this node's part alone (no cluster needed); the whole
plan asks every node for it. Its JSON (:meth:`Plan.document`) has per change
``package``, ``installed``, ``candidate``, ``security``, ``ha_stack`` and ``action``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from upgrader.packages.plan import Plan, local_plan

if TYPE_CHECKING:
    from rich.console import Console

    from upgrader.orchestrator.remote import NodePlan
    from upgrader.pacemaker.live import Cluster


def plan_command(as_json: bool, out: Console) -> int:
    """Print this node's plan (exit code 0)."""
    if as_json:
        return plan_json()
    render(local_plan(), out)
    return 0


def plan_json() -> int:
    """``plan --local --json``: the plan as indented JSON on stdout, without loading rich (run on every node)."""
    print(json.dumps(local_plan().document(), indent=2))
    return 0


def render(plan: Plan, out: Console) -> None:
    """A table of the node's changes; security updates and HA-stack packages marked."""
    from rich.table import Table

    if not plan.changes:
        out.print(f"{plan.node}: up to date, nothing to upgrade")
        return
    table = Table(title=f"{plan.node}: {len(plan.changes)} changes, {len(plan.security)} security")
    for col in ("package", "installed", "candidate", "security", "HA stack"):
        table.add_column(col)
    for c in plan.changes:
        table.add_row(c.package, c.installed or "[green]new[/]", c.candidate or "[red]removed[/]",
                      "[red]yes[/]" if c.security else "", "[yellow]yes[/]" if c.ha_stack else "")
    out.print(table)
    if plan.ha_stack:
        out.print(f"[yellow]HA stack in the set[/] ({', '.join(c.package for c in plan.ha_stack)}): "
                  "rolling-upgrade run stops the cluster stack on this node around the upgrade")


def plan(cluster: Cluster, out: Console, *, as_json: bool) -> int:
    """Every node's plan, in the order a run would take them (exit code 0)."""
    from rich.table import Table

    from upgrader import config as configuration
    from upgrader.cli.progress import ConsoleReport
    from upgrader.history import History
    from upgrader.orchestrator.outcome import Outcome
    from upgrader.orchestrator.procedure import Rollout
    from upgrader.orchestrator.remote import Nodes
    from upgrader.orchestrator.start import default_checks

    cfg = configuration.load()
    nodes = Nodes(cfg, cluster.local_node())
    r = Rollout(cluster, nodes, default_checks(cluster, cfg), cfg, History(cfg.history_file),
                ConsoleReport(out, quiet=True), "plan")
    state = cluster.state()
    order = r.order(state)
    plans = {n: nodes.plan(n) for n in order}
    moves = {n: [str(m) for m in cluster.predict_standby(n)] for n in order if plans[n].changes}
    if as_json:
        print(json.dumps({"order": [n for n in order if plans[n].changes],
                          "nodes": {n: _plan_doc(p) | {"moves": moves.get(n, [])} for n, p in plans.items()}},
                         indent=2))
        return Outcome.DONE
    table = Table(title="rolling-upgrade plan")
    for col in ("#", "node", "changes", "security", "HA stack", "moves on standby (crm_simulate)"):
        table.add_column(col)
    for i, (n, p) in enumerate(plans.items(), start=1):
        changes = p.error or "\n".join(f"{c.package} {c.installed or '-'} -> {c.candidate}" for c in p.changes) or "up to date"
        table.add_row(str(i) if p.changes else "-", n, changes, str(p.security) if p.changes else "",
                      "yes" if p.ha_stack else "", "\n".join(moves.get(n, [])))
    out.print(table)
    return Outcome.DONE


def _plan_doc(p: NodePlan) -> dict[str, Any]:
    return {"error": p.error, "changes": [c.__dict__ for c in p.changes]}
