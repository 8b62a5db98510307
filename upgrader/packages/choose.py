"""Choosing what to take of a node's pending dist-upgrade: Origins-Pattern, Package-Blacklist, --security-only.

The grammar and the matching are unattended-upgrades' own (:mod:`upgrader.origins`, re-exported here);
:class:`Selection` applies them to a plan's :class:`~upgrader.packages.plan.Change` list. Pure, but for
:func:`selection_for`, which reads this machine's os-release for ``${distro_id}`` and ``${distro_codename}``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from upgrader.config import Config, ConfigError
from upgrader.origins import Origin, Pattern, allowed, blacklisted, blacklisted_by, local_distro, matches, parse_pattern
from upgrader.packages.plan import Change

__all__ = ["Origin", "Pattern", "Selection", "allowed", "blacklisted", "matches", "parse_pattern", "select",
           "selection_for"]


@dataclass(frozen=True)
class Selection:
    """What a run takes: changes from an allowed origin (no patterns: any), not blacklisted, and with
    ``security_only`` only those whose candidate is from a security archive. The default takes everything."""

    patterns: tuple[Pattern, ...] = ()
    blacklist: tuple[str, ...] = ()  # Python regular expressions, matched at the start of the package name
    security_only: bool = False

    def take(self, change: Change) -> str | None:
        """None when ``change`` is taken, else why not, in a few words.

        A removal (no candidate) is always taken: it has no origin, and it is in the plan only because
        the resolver needs it for what is taken; whether it still is, is the resolver's to say.
        """
        if change.candidate is None:
            return None
        regex = blacklisted_by(change.package, self.blacklist)
        if regex is not None:
            return f"blacklisted by {regex!r}"
        if not allowed(self.patterns, change.origins):
            unknown = "" if change.origins else " (its origin is unknown: planned by an older upgrader)"
            return f"origin not allowed by Origins-Pattern{unknown}"
        if self.security_only and not change.security:
            return "not a security update"
        return None


def select(changes: Iterable[Change], selection: Selection) -> tuple[list[Change], list[tuple[Change, str]]]:
    """``changes`` split into those taken and those skipped, each skipped one with its reason (in order)."""
    taken: list[Change] = []
    skipped: list[tuple[Change, str]] = []
    for change in changes:
        reason = selection.take(change)
        if reason is None:
            taken.append(change)
        else:
            skipped.append((change, reason))
    return taken, skipped


def selection_for(config: Config, security_only: bool = False,
                  distro: tuple[str, str] | None = None) -> Selection:
    """The :class:`Selection` of ``config``'s Origins-Pattern and Package-Blacklist (unattended-upgrades'
    where those are not set: :func:`upgrader.config.from_apt`), substituted with ``distro`` (``(distro_id,
    distro_codename)``, default this machine's, as ``lsb_release`` gives them)."""
    distro_id, codename = distro if distro is not None else local_distro()
    patterns = []
    for text in config.origins_pattern:
        try:
            patterns.append(parse_pattern(text, distro_id, codename))
        except ValueError as exc:
            raise ConfigError(f"Origins-Pattern: {exc}") from None
    return Selection(tuple(patterns), config.package_blacklist, security_only)
