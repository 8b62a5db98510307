"""Pure text for the terminal: a node's pending (or applied) changes in a few lines, text from outside escaped.

A real point update changes a hundred packages or more: tables, prompts and
progress lines say how many, how many are security updates, and name only
the few that matter (the cluster stack's packages, packages a running process
maps); ``--json`` and the history keep every change.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping, Sequence

from rich.markup import escape

from upgrader.packages.plan import is_ha_stack

FEW = 3  # this many changes or fewer: each one is named with its versions
NAMES = 5  # names listed before "(+N more)"
# The colour span the orchestrator's own callers put at the start of a step's text ("[red]...[/]: ...").
_OWN_SPAN = re.compile(r"\[(red|yellow)\](.*?)\[/\]", re.DOTALL)
# The upgrade step's text: "pkg 1 -> 2, other - -> 3 in 12.3s" (one item per change).
_UPGRADED = re.compile(r"(?P<items>\S+ \S+ -> \S+(?:, \S+ \S+ -> \S+)*) in (?P<seconds>\d+(?:\.\d+)?s)")


def _get(change: Any, name: str) -> Any:
    """A change's field, whether it is a dataclass (the plan's, the run's) or its dict (history, NodeResult)."""
    return change.get(name) if isinstance(change, Mapping) else getattr(change, name, None)


def version_text(change: Any) -> str:
    """``libc6 2.36-9+deb12u9 -> 2.36-9+deb12u10`` (``-`` for a new package, ``removed`` for a removal)."""
    return f"{_get(change, 'package')} {_get(change, 'installed') or '-'} -> {_get(change, 'candidate') or 'removed'}"


def names(packages: Sequence[str], limit: int = NAMES) -> str:
    """``a, b, c, d, e (+3 more)``."""
    shown = ", ".join(packages[:limit])
    return shown + (f" (+{len(packages) - limit} more)" if len(packages) > limit else "")


def counts(changes: Sequence[Any]) -> str:
    """``135 packages, 12 security`` (and how many are new or removed, when any are)."""
    parts = [f"{len(changes)} package{'s' if len(changes) != 1 else ''}"]
    for label, n in (("security", sum(bool(_get(c, "security")) for c in changes)),
                     ("new", sum(_get(c, "installed") is None for c in changes)),
                     ("removed", sum(_get(c, "candidate") is None for c in changes))):
        if n:
            parts.append(f"{n} {label}")
    return ", ".join(parts)


def summary_lines(changes: Sequence[Any]) -> list[str]:
    """How many packages (security, new, removed); the HA stack's; the others a running process maps.

    ``["135 packages, 12 security", "in use: libc6, libssl3, ... (+20 more)"]``, security updates
    named first; with
    :data:`FEW` changes or fewer, the first line names each with its versions.
    """
    if not changes:
        return ["up to date"]
    head = counts(changes)
    if len(changes) <= FEW:
        head += ": " + ", ".join(version_text(c) for c in changes)
    lines = [head]
    stack = _security_first([c for c in changes if _get(c, "ha_stack")])
    used = _security_first([c for c in changes if _get(c, "in_use") and not _get(c, "ha_stack")])
    if stack:
        lines.append(f"HA stack: {names(stack)}")
    if used:
        lines.append(f"in use: {names(used)}")
    return lines


def _security_first(changes: Iterable[Any]) -> list[str]:
    """The packages' names, security updates first, each part in the order given."""
    listed = list(changes)
    return [_get(c, "package") for c in listed if _get(c, "security")] + [
        _get(c, "package") for c in listed if not _get(c, "security")]


def summary(changes: Sequence[Any]) -> str:
    """:func:`summary_lines` on one line, parts separated by ``; ``."""
    return "; ".join(summary_lines(changes))


def cell(lines: Iterable[str]) -> str:
    """Lines of outside text for one table cell, escaped for rich."""
    return "\n".join(escape(line) for line in lines)


def step_text(phase: str, text: str) -> str:
    """A progress step's text as rich markup: escaped, whatever it quotes.

    The upgrade step's list of every package becomes a count (the names of the
    cluster stack's packages kept); a leading ``[red]...[/]`` or
    ``[yellow]...[/]`` span, as the orchestrator writes some steps, keeps its
    colour and its content is escaped like the rest.
    """
    if phase == "upgrade":
        text = _shorter_upgrade(text)
    own = _OWN_SPAN.match(text)
    if own is None:
        return escape(text)
    return f"[{own[1]}]{escape(own[2])}[/]{escape(text[own.end():])}"


def _shorter_upgrade(text: str) -> str:
    """``135 packages upgraded in 80.1s; HA stack: corosync, pacemaker`` for a list of more than FEW."""
    found = _UPGRADED.fullmatch(text)
    if found is None:
        return text
    items = found["items"].split(", ")
    if len(items) <= FEW:
        return text
    stack = [item.split(" ", 1)[0] for item in items if is_ha_stack(item.split(" ", 1)[0])]
    return f"{len(items)} packages upgraded in {found['seconds']}" + (f"; HA stack: {names(stack)}" if stack else "")
