"""The two ways a health check says no."""

from __future__ import annotations


class ProbeSpecError(ValueError):
    """A probe declared in the CIB is malformed (raised at preflight, one line)."""


class CheckFailed(Exception):
    """One attempt of a check failed; ``final`` means retrying cannot help."""

    def __init__(self, message: str, *, final: bool = False) -> None:
        super().__init__(message)
        self.final = final
