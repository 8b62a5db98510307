"""A node's pending (or applied) changes in a few words: how many, how many security, the few that matter.

A real point update changes a hundred packages or more: tables, prompts,
progress lines and the run's steps say how many, how many are security
updates, and name only the few that matter (the cluster stack's packages,
packages a running process maps); ``--json`` and the history keep every change.
Pure text, no markup.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

FEW = 3  # this many changes or fewer: each one is named with its versions
NAMES = 5  # names listed before "(+N more)"


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
