"""How a rollout ends: its exit codes, a refusal before anything changed, a stop mid-run."""

from __future__ import annotations

from enum import IntEnum


class Outcome(IntEnum):
    """Exit codes of ``rolling-upgrade run`` and ``node``."""

    DONE = 0  # upgraded, or nothing to do
    FAILED_BACK = 1  # a check failed; failed back, the cluster is healthy
    USAGE = 2  # bad usage or configuration
    REFUSED = 3  # a safety check refused; nothing was changed
    NEEDS_PERSON = 4  # failed, and the cluster needs a person


class Refused(Exception):
    """Preflight said no; nothing was changed."""


class Stop(Exception):
    """The rollout stops here with ``code``."""

    def __init__(self, code: Outcome, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class Deferred(Exception):
    """This node is left for a later run, untouched (back online); the run goes on with the next one."""
