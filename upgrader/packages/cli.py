"""This node's pending dist-upgrade on screen or as JSON: the local part of ``rolling-upgrade plan``.

The orchestrator owns the ``plan`` subcommand (every node, the order, the
moves); for its ``plan --local`` it calls :func:`plan_command`, whose JSON
(:meth:`Plan.document`) has per change ``package``, ``installed``,
``candidate``, ``security``, ``ha_stack`` and ``action``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from upgrader.packages.plan import Plan, local_plan

if TYPE_CHECKING:
    from rich.console import Console


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
