"""What fits into an open patch window: pure functions of durations."""

from __future__ import annotations

import random
from datetime import timedelta


def human(span: timedelta) -> str:
    """``1h05m``, ``12m``, ``40s``: a duration as a person reads it."""
    seconds = max(0, int(span.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m" if minutes and not secs else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def defer_reason(node: str, expected: timedelta, left: timedelta, basis: str) -> str | None:
    """Why ``node`` must not start with ``left`` in the window and ``expected`` needed; None when it fits."""
    if left <= timedelta(0):
        return f"{node} not started: the patch window has closed"
    if left < expected:
        return (f"{node} not started: it is expected to take {human(expected)} ({basis}) and the patch window "
                f"has {human(left)} left")
    return None


def schedule(order: list[str], expected: timedelta, left: timedelta,
             soak: timedelta = timedelta(0)) -> tuple[list[str], list[str]]:
    """The nodes of ``order`` that would start before the window closes, and those deferred.

    Each node is assumed to take ``expected``, with ``soak`` between nodes; a
    node starts only if ``expected`` still fits, and once one does not, none
    after it does.
    """
    start, runs = timedelta(0), []
    for i, node in enumerate(order):
        if i:
            start += soak
        if left - start < expected:
            return runs, order[i:]
        runs.append(node)
        start += expected
    return runs, []


def random_delay(maximum: int, left: timedelta, expected: timedelta, rng: random.Random | None = None) -> int:
    """Seconds to sleep before starting: uniform in ``[0, maximum]``, never eating into the first node's time."""
    room = int((left - expected).total_seconds())
    bound = max(0, min(maximum, room))
    return (rng or random.SystemRandom()).randint(0, bound) if bound else 0
