"""What Pacemaker would do: the "Transition Summary" of ``crm_simulate --run`` (``-S`` prints the same one).

Pure parsing of crm_simulate's text output, lines such as::

    * Move       app1-ip     ( node1 -> node2 )
    * Stop       d:0         (          node1 )  due to node availability
    * Start      app1-ct     ( node1 )  due to no quorum (blocked)
    * Promote    db:0        ( Unpromoted -> Promoted node2 )
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from upgrader.pacemaker.state import ParseError

_ROLES = frozenset({"Stopped", "Started", "Promoted", "Unpromoted", "Master", "Slave", "Unknown"})
_LINE = re.compile(r"\*\s+(?P<action>[A-Z][\w-]*)\s+(?P<rsc>\S+)\s+\(\s*(?P<details>[^)]*?)\s*\)(?P<rest>.*)")


class SimulateParseError(ParseError):
    """crm_simulate's output has no transition summary we can read."""


@dataclass(frozen=True)
class Move:
    """One action of the transition summary.

    ``source`` is where the resource runs now, ``dest`` where it will run
    (either is None for a start or a stop); both are the same node for an
    action in place (restart, recover, promote). ``from_role``/``to_role``
    are the roles the line names before and after the arrow ("Promoted
    node1": ``from_role`` Promoted), None where it names none.
    """

    action: str
    resource: str
    source: str | None
    dest: str | None
    reason: str | None
    blocked: bool
    from_role: str | None = None
    to_role: str | None = None

    @property
    def relocates(self) -> bool:
        """The resource ends up on another node (or on none)."""
        return self.source != self.dest


def parse_transition_summary(text: str) -> tuple[Move, ...]:
    """The actions listed under "Transition Summary:" (none when it is empty)."""
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Transition Summary:")
    except StopIteration:
        raise SimulateParseError("crm_simulate output has no 'Transition Summary:' section (was it run with --run or -S?)") from None
    moves = []
    for line in lines[start + 1 :]:
        stripped = line.strip()
        if not stripped:
            continue
        if not line.startswith(" "):
            break
        match = _LINE.fullmatch(stripped)
        if not match:
            raise SimulateParseError(f"unexpected line in crm_simulate's transition summary: {stripped!r}")
        moves.append(_move(match))
    return tuple(moves)


def _move(match: re.Match[str]) -> Move:
    action = match["action"]
    left, arrow, right = match["details"].partition("->")
    source = _node(left.split(), last=True)
    dest = _node(right.split(), last=False) if arrow else None
    if not arrow:  # one node: a start, a stop, or something in place
        if action == "Start":
            source, dest = None, source
        elif action != "Stop":
            dest = source
    elif source is None and action != "Start":  # "Unpromoted -> Promoted node2": in place
        source = dest
    rest = match["rest"].strip()
    blocked = rest.endswith("blocked")
    rest = rest.removesuffix("(blocked)").strip()
    reason = rest.removeprefix("due to").strip() if rest.startswith("due to") else None
    return Move(action=action, resource=match["rsc"], source=source, dest=dest, reason=reason or None,
                blocked=blocked, from_role=_role(left.split()), to_role=_role(right.split()))


def _role(words: list[str]) -> str | None:
    return next((w for w in words if w in _ROLES), None)


def _node(words: list[str], *, last: bool) -> str | None:
    nodes = [w for w in words if w not in _ROLES]
    if not nodes:
        return None
    return nodes[-1] if last else nodes[0]
