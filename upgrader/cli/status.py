"""``rolling-upgrade status`` and ``rolling-upgrade unlock``: what they do and print.

``status`` also shows the builds held back on every node since a fail back (``holds`` in its JSON) and
this node's automatic upgrade path (``automatic``: unattended-upgrades or the nightly window).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import Any, Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from upgrader.cli import automatic
from upgrader.cli.holds import status_lines
from upgrader.orchestrator.outcome import Outcome, Refused
from upgrader.pacemaker import holds, lock
from upgrader.pacemaker.holds import Hold, HoldError
from upgrader.pacemaker.live import Cluster
from upgrader.pacemaker.state import ClusterState
from upgrader.runner import CommandError

EXIT_OK = Outcome.DONE


def status(cluster: Cluster, as_json: bool, out: Console) -> int:
    """Nodes, resources and where they run, and the upgrade lock."""
    state = cluster.state()
    now = lock.utcnow()
    info = lock.read(cluster)
    held = None if info is None else lock.LockStatus.judge(info, state, now)
    gone = info is not None and not lock.run_alive(info) and info.holder == _local_or_none(cluster)
    held_back, unreadable = _holds(cluster)
    _metrics(cluster)
    if as_json:
        doc = status_document(state, held, now, held_back)
        if doc["lock"] is not None:
            doc["lock"]["interrupted"] = gone
            if gone and info is not None:
                doc["lock"]["interrupted_in"] = interrupted_phase(info)
        if unreadable:
            doc["holds_error"] = unreadable
        doc["automatic"] = automatic.status_document()
        out.file.write(json.dumps(doc, indent=2) + "\n")
    else:
        _print_status(out, state, held, now)
        if gone and info is not None:
            out.print(f"[red]interrupted:[/] the run that holds the lock is gone (pid {info.pid}, phase "
                      f"{escape(interrupted_phase(info))}); the next 'rolling-upgrade run' on {escape(info.holder)} rolls it back "
                      "and goes on")
        for line in status_lines(held_back):
            out.print(f"[yellow]hold:[/] {escape(line)}")
        if unreadable:
            out.print(f"[red]holds:[/] {escape(unreadable)}")
        for line in automatic.status_lines():
            out.print(("[yellow]" if line.startswith("problem:") else "") + escape(line)
                      + ("[/]" if line.startswith("problem:") else ""))
    return EXIT_OK


def interrupted_phase(info: lock.LockInfo) -> str:
    """The phase a dead run of this node was in, from its history as recovery says it (the lock is not
    rewritten at every phase); the lock's phase where the history cannot be read."""
    from upgrader import config
    from upgrader.history import History, HistoryError
    from upgrader.orchestrator import recovery

    try:
        entries = History(config.load().history_file).entries(info.run_id)
    except (config.ConfigError, HistoryError):
        return info.phase
    return recovery.interrupted_in(entries, recovery.last_node_record(entries), info)


def _holds(cluster: Cluster) -> tuple[list[Hold], str | None]:
    """The builds held back on every node, or why they cannot be read (status still shows the rest)."""
    try:
        return holds.read(cluster), None
    except (HoldError, CommandError) as exc:
        return [], str(exc)


def _metrics(cluster: Cluster) -> None:
    """The metrics file refreshed (nodes, quarantine, the lock), when node_exporter's directory exists."""
    from upgrader import config, metrics

    try:
        directory = config.load().metrics_dir
    except config.ConfigError:
        return
    metrics.record(cluster, directory)


def _local_or_none(cluster: Cluster) -> str | None:
    """This node's name, None where it cannot be known (e.g. status of a CIB file)."""
    try:
        return cluster.local_node()
    except CommandError:
        return None


def unlock(cluster: Cluster, force: bool, out: Console) -> int:
    """Release our node's lock; with ``force``, break anyone's and say whose."""
    now = lock.utcnow()
    if force:
        broken = lock.force_unlock(cluster)
        out.print("no upgrade lock was held" if broken is None
                  else f"broke the upgrade lock: {escape(_describe(cluster, broken, now))}")
        return EXIT_OK
    held = lock.inspect(cluster, now)
    if held is None:
        out.print("no upgrade lock is held")
        return EXIT_OK
    local = cluster.local_node()
    if held.info.holder != local:
        raise Refused(
            f"refused: the upgrade lock belongs to {held.info.holder or '?'}, not {local} ({held.describe(now)}); "
            "release it there, or break it with 'rolling-upgrade unlock --force'"
        )
    lock.remove(cluster, held.info)
    out.print(f"released the upgrade lock: {escape(held.describe(now))}")
    return EXIT_OK


def status_document(state: ClusterState, held: lock.LockStatus | None, now: datetime,
                    held_back: Sequence[Hold] = ()) -> dict[str, Any]:
    """The status as plain data (``status --json``); ``holds``: the builds held back on every node."""
    s = state.summary
    return {
        "cluster": {
            "dc": s.dc, "quorum": s.quorum, "stack": s.stack,
            "stonith_enabled": s.stonith_enabled, "maintenance_mode": s.maintenance_mode,
        },
        "nodes": [asdict(n) for n in state.nodes],
        "resources": [
            {"id": rid, "running_on": sorted(state.running_on(rid)),
             "members": [dict(asdict(r), pending=r.pending or None) for r in state.members(rid)]}  # null: none
            for rid in state.top_level_ids()
        ],
        "failures": [dict(asdict(f), resource=f.resource) for f in state.failures],
        "bans": [dict(asdict(b), from_cli=b.from_cli) for b in state.bans],
        "lock": None if held is None else _lock_document(held, now),
        "holds": [h.document() for h in held_back],
    }


def _lock_document(held: lock.LockStatus, now: datetime) -> dict[str, Any]:
    i = held.info
    return {
        "holder": i.holder, "run_id": i.run_id, "pid": i.pid, "phase": i.phase, "package_set": i.package_set or None,
        "started": lock.iso(i.started), "heartbeat": lock.iso(i.heartbeat), "expires": lock.iso(i.expires),
        "age_seconds": int((now - i.started).total_seconds()) if i.started else None,
        "holder_state": held.holder_state, "expired": held.expired,
        "stale": held.stale, "breakable": held.breakable,
    }


def _print_status(out: Console, state: ClusterState, held: lock.LockStatus | None, now: datetime) -> None:
    s = state.summary
    out.print(f"DC {escape(s.dc or 'none')}, quorum {'yes' if s.quorum else '[red]no[/]'}, fencing {'on' if s.stonith_enabled else 'off'}"
              + (", [yellow]maintenance-mode on[/]" if s.maintenance_mode else ""))
    nodes = Table(title="nodes")
    for col in ("node", "state", "DC", "resources"):
        nodes.add_column(col)
    for n in state.nodes:
        flags = [f for f, on in (("standby", n.standby), ("maintenance", n.maintenance), ("unclean", n.unclean), ("pending", n.pending)) if on]
        text = ("online" if n.online else "[red]offline[/]") + "".join(f", [yellow]{f}[/]" for f in flags)
        nodes.add_row(escape(n.name), text, "yes" if n.is_dc else "", str(n.resources_running))
    out.print(nodes)
    resources = Table(title="resources")
    for col in ("resource", "running on", "members"):
        resources.add_column(col)
    for rid in state.top_level_ids():
        members = state.members(rid)
        roles = ", ".join(
            escape(f"{r.id} {r.pending or r.role}{' ' + ','.join(r.nodes) if r.nodes else ''}")
            + (" [red]failed[/]" if r.failed else "") + ("" if r.managed else " unmanaged")
            for r in members
        )
        resources.add_row(escape(rid), escape(", ".join(sorted(state.running_on(rid)))) or "[red]nowhere[/]", roles)
    out.print(resources)
    for f in state.failures:
        out.print("[red]failed action[/] " + escape(f"{f.op_key} on {f.node}: {f.exitstatus} {f.exitreason}".rstrip()))
    for b in state.bans:
        out.print("[yellow]ban[/] " + escape(f"{b.id}: {b.resource} kept off {b.node}")
                  + (" (left by crm_resource)" if b.from_cli else ""))
    if held is None:
        out.print("upgrade lock: free")
        return
    i = held.info
    table = Table(title="upgrade lock")
    for col in ("holder", "run", "pid", "phase", "age", "heartbeat", "state"):
        table.add_column(col)
    state_text = f"[red]stale[/]: {escape(held.why_stale or '')}" if held.stale else "held"
    table.add_row(*(escape(str(v)) for v in (i.holder, i.run_id, i.pid or "?", i.phase, lock.ago(i.started, now),
                                             lock.ago(i.heartbeat, now))), state_text)
    out.print(table)


def _describe(cluster: Cluster, info: lock.LockInfo, now: datetime) -> str:
    return lock.LockStatus.judge(info, cluster.state(), now).describe(now)
