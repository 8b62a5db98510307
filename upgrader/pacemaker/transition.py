"""What a transition does to each resource, in an operator's words.

Pure: the moves of :func:`~upgrader.pacemaker.simulate.parse_transition_summary`
and the cluster's state (which primitive belongs to which group or clone)
become one :class:`Action` per resource and action, a group's members and a
clone's instances (``db:1``) folded into the group or clone::

    app1 node1 -> node2
    probe-clone stopped on node1 due to node availability
    db-clone promoted on node2
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from upgrader.pacemaker.simulate import Move
from upgrader.pacemaker.state import ClusterState

# crm_simulate's action words (Pacemaker 2.1), as an operator says what happened to the resource
_DONE = {"start": "started", "stop": "stopped", "restart": "restarted", "recover": "recovered",
         "promote": "promoted", "demote": "demoted", "re-promote": "re-promoted", "reload": "reloaded"}
_PROMOTED = frozenset({"Promoted", "Master"})


@dataclass(frozen=True)
class Action:
    """What happens to one resource (group, clone or primitive): ``members`` are the summary's ids for it.

    ``source`` is where it runs now, ``dest`` where it will (the same node for an action in place,
    None for a start's source or a stop's destination). ``role`` is the role a stopped, started
    or moved Promoted instance had or gets.
    """

    resource: str
    action: str  # crm_simulate's word, lower case: move, migrate, start, stop, promote, demote, ...
    source: str | None
    dest: str | None
    members: tuple[str, ...]
    reason: str | None
    blocked: bool
    role: str | None = None

    def text(self) -> str:
        """One line: ``app1 node2 -> node1``, ``db-clone promoted on node1``, ``probe-clone stopped on node2``."""
        if self.action in ("move", "migrate"):
            where = f"{self.source or '?'} -> {self.dest or '?'}"
            where += " (live migration)" if self.action == "migrate" else ""
        else:
            node = self.source if self.action == "stop" else self.dest or self.source
            where = f"{_DONE.get(self.action, self.action)} on {node or '?'}"
        role = f" (was {self.role})" if self.role and self.action == "stop" else f" ({self.role})" if self.role else ""
        reason = f" due to {self.reason}" if self.reason else ""
        return f"{self.resource} {where}{role}{reason}" + (" (blocked)" if self.blocked else "")

    def document(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {"resource": self.resource, "action": self.action, "from": self.source, "to": self.dest,
                "members": list(self.members), "role": self.role, "reason": self.reason, "blocked": self.blocked,
                "text": self.text()}


def actions(moves: Iterable[Move], state: ClusterState) -> tuple[Action, ...]:
    """The moves, one :class:`Action` per resource and what happens to it, in the summary's order."""
    folded: dict[tuple[Any, ...], list[Move]] = {}
    for m in moves:
        key = (top_level(state, m.resource), m.action, m.source, m.dest, _role(m), m.blocked)
        folded.setdefault(key, []).append(m)
    return tuple(
        Action(resource=rid, action=action.lower(), source=source, dest=dest, members=tuple(m.resource for m in ms),
               reason=next((m.reason for m in ms if m.reason), None), blocked=blocked, role=role)
        for (rid, action, source, dest, role, blocked), ms in folded.items()
    )


def top_level(state: ClusterState, rid: str) -> str:
    """The group or clone a primitive or clone instance (``db:1``) belongs to; itself when it is top-level
    (or unknown to ``state``)."""
    base = rid.split(":", 1)[0]
    found = next((r for r in state.resources if r.id in (rid, base)), None)
    if found is None:
        return base
    return found.clone or (found.group.split(":", 1)[0] if found.group else None) or found.id


def _role(m: Move) -> str | None:
    """The Promoted role of an instance that stops, starts or moves (promote/demote say it already)."""
    if m.action in ("Promote", "Demote", "Re-promote"):
        return None
    role = m.to_role or m.from_role
    return role if role in _PROMOTED else None
