"""What the guard's rule answers for one apt run, and the lock phase an apt run holds."""

from __future__ import annotations

from dataclasses import dataclass

LOCK_PHASE = "apt-upgrade"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    node: str = ""
    via: str = ""  # the peer that was asked, when this node's cluster stack is stopped
