"""What standby does to each kind of resource: Pacemaker's resource model, read from a ClusterState.

A drain (standby) moves what runs once (a primitive or a group) to another
node; a clone's instance on the node stops there and the other instances stay
(a promotable clone promotes another instance if its Promoted one stopped);
an unmanaged resource stays where it runs, untouched. Pure functions.
"""

from __future__ import annotations

from typing import Collection, Mapping

from upgrader.pacemaker.simulate import Move
from upgrader.pacemaker.state import ClusterState, Resource


def top_level(r: Resource) -> str:
    """The id a member belongs to at the top: its clone or bundle, its group, or itself."""
    return r.clone or (r.group.split(":", 1)[0] if r.group else None) or r.id


def _active_on(state: ClusterState, node: str) -> dict[str, list[Resource]]:
    found: dict[str, list[Resource]] = {}
    for r in state.resources:
        if node in r.nodes and (r.active or r.busy):
            found.setdefault(top_level(r), []).append(r)
    return found


def movable_on(state: ClusterState, node: str) -> tuple[str, ...]:
    """Groups and primitives (fencing devices too) that run on ``node`` and that a standby moves away."""
    return tuple(rid for rid, members in _active_on(state, node).items()
                 if state.collection(rid) is None and all(r.managed for r in members))


def instances_on(state: ClusterState, node: str) -> tuple[str, ...]:
    """Clones (and bundles) with an instance on ``node``: a standby stops that instance."""
    return tuple(rid for rid, members in _active_on(state, node).items()
                 if state.collection(rid) is not None and all(r.managed for r in members))


def unmanaged_on(state: ClusterState, node: str) -> tuple[str, ...]:
    """Resources with an unmanaged member running on ``node``: Pacemaker (and we) leave them where they are."""
    return tuple(rid for rid, members in _active_on(state, node).items() if not all(r.managed for r in members))


def promoted(state: ClusterState, rid: str) -> frozenset[str]:
    """Nodes where the promotable clone ``rid`` has a Promoted instance running."""
    return frozenset(n for r in state.members(rid) if r.running and r.role in ("Promoted", "Master") for n in r.nodes)


def bundles(state: ClusterState) -> tuple[str, ...]:
    return tuple(c.id for c in state.collections if c.kind == "bundle")


def stops_instead_of_moving(state: ClusterState, node: str, predicted: tuple[Move, ...]) -> list[str]:
    """What a standby of ``node`` would take down (one line each), from crm_simulate's prediction.

    Exempt: a clone instance that stops on the drained node itself (standby does that by design).
    """
    return stops_instead_of_moving_any(state, (node,), predicted)


def stops_instead_of_moving_any(state: ClusterState, nodes: Collection[str], predicted: tuple[Move, ...]) -> list[str]:
    """What a standby of all ``nodes`` at once would take down, as :func:`stops_instead_of_moving` (exempt:
    clone instances that stop on one of the drained nodes)."""
    found: dict[str, str] = {}
    for move in predicted:
        if move.action != "Stop":
            continue
        base = move.resource.split(":", 1)[0]
        member = next((r for r in state.resources if r.id == base), None)
        top = top_level(member) if member else base
        if state.collection(top) is not None and move.source in nodes:
            continue
        found.setdefault(top, f"{top} would be stopped, not moved ({move.reason or 'no other node can run it'})")
    return list(found.values())


def taken_down(before: ClusterState, after: ClusterState, node: str, moved: tuple[str, ...],
               clones: tuple[str, ...]) -> list[str]:
    """What a settled drain of ``node`` took down instead of moving (one line each; empty when nothing).

    Its own resources (``moved``) must run somewhere, and so must every resource on the other nodes (a
    colocation or an ordering can take one down there too); a clone keeps its instances elsewhere
    (``clones``: those with an instance on ``node``, whose instance there stops by design; any other
    clone keeps them all) and as many Promoted instances as before.
    """
    return taken_down_together(before, after, {node: moved}, {node: clones})


def taken_down_together(before: ClusterState, after: ClusterState, moved: Mapping[str, tuple[str, ...]],
                        clones: Mapping[str, tuple[str, ...]]) -> list[str]:
    """What a settled drain of several nodes at once took down, as :func:`taken_down` (``moved`` and
    ``clones`` per drained node): a clone's instances on the drained nodes stop by design, no others.

    Clones are checked in the order given for one node (the cluster's), sorted for several.
    """
    gone = set(moved)
    together = " and ".join(sorted(gone))
    lost = [f"{rid} runs nowhere (it ran on {n})" for n, rids in moved.items() for rid in rids
            if not _running_on(after, rid)]
    ours = {rid for rids in moved.values() for rid in rids}
    for other in (n.name for n in before.nodes if n.name not in gone):
        lost += [f"{rid} runs nowhere (it ran on {other}; the drain of {together} took it down)"
                 for rid in movable_on(before, other) if rid not in ours and not _running_on(after, rid)]
    theirs = list(*clones.values()) if len(clones) == 1 else sorted({r for rids in clones.values() for r in rids})
    elsewhere = {rid for n in before.nodes if n.name not in gone for rid in instances_on(before, n.name)}
    for rid in (*theirs, *sorted(elsewhere - set(theirs))):
        lost_on = (before.running_on(rid) - gone) - _running_on(after, rid)
        if lost_on:
            lost.append(f"{rid} stopped on {', '.join(sorted(lost_on))} too")
        had, has = promoted(before, rid), promoted(after, rid) if after.members(rid) else set()
        if len(has) < len(had):
            lost.append(f"{rid} has {len(has)} Promoted instance(s), it had {len(had)}")
    return list(dict.fromkeys(lost))


def _running_on(state: ClusterState, rid: str) -> frozenset[str]:
    """Where ``rid`` runs; nowhere when it is gone from the cluster altogether (deleted meanwhile)."""
    return state.running_on(rid) if state.members(rid) else frozenset()


def left_alone(state: ClusterState) -> list[str]:
    """What no run starts, stops or moves, one line each: unmanaged resources, those stopped on purpose, bundles."""
    lines = []
    for rid in state.top_level_ids():
        members = state.members(rid)
        where = sorted({n for r in members if r.active for n in r.nodes})
        if state.collection(rid) is not None and state.collection(rid).kind == "bundle":
            lines.append(f"{rid} is a bundle: a run refuses until bundles are supported")
        elif not all(r.managed for r in members):
            lines.append(f"{rid} is unmanaged (is-managed=false): left where it runs"
                         f"{' (' + ', '.join(where) + ')' if where else ''}, never started or stopped")
        elif members and all((r.target_role or "").lower() == "stopped" for r in members):
            lines.append(f"{rid} is stopped on purpose (target-role Stopped): not started")
    return lines
