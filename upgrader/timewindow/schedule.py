"""When patch windows are open: pure functions of windows, blackout dates and an instant."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from upgrader.timewindow.clock import instant
from upgrader.timewindow.window import Window

Stretch = tuple[datetime, datetime, tuple[Window, ...]]

#: How far ahead :func:`is_open` follows windows that chain into each other.
LOOKAHEAD = timedelta(days=7)
#: How far ahead :func:`next_opening` looks.
HORIZON = timedelta(days=366)


@dataclass(frozen=True)
class OpenWindow:
    """A stretch during which some window is open: ``[start, end)``, instants in UTC.

    Overlapping or touching windows are one stretch. ``left`` is the real time
    from the instant asked about to ``end`` (for :func:`next_opening`: from
    ``start``). ``windows`` are the configured windows making up the stretch.
    """

    start: datetime
    end: datetime
    left: timedelta
    windows: tuple[Window, ...]


def is_open(windows: Iterable[Window], blackout: Collection[date], at: datetime) -> OpenWindow | None:
    """The open stretch containing ``at`` (an aware datetime), or None when every window is closed.

    Its end is followed at most :data:`LOOKAHEAD` ahead, so ``left`` may
    understate a longer stretch, never overstate one.
    """
    moment = _utc(at)
    for start, end, members in _stretches(windows, blackout, moment, moment + LOOKAHEAD):
        if start <= moment < end:
            return OpenWindow(start, end, end - moment, members)
    return None


def time_left(windows: Iterable[Window], blackout: Collection[date], at: datetime) -> timedelta:
    """Real time from ``at`` until the open stretch ends; zero when closed."""
    current = is_open(windows, blackout, at)
    return current.left if current else timedelta(0)


def fits(windows: Iterable[Window], blackout: Collection[date], at: datetime, expected: timedelta) -> bool:
    """Whether a window is open at ``at`` and stays open for at least ``expected``."""
    current = is_open(windows, blackout, at)
    return current is not None and current.left >= expected


def next_opening(
    windows: Iterable[Window], blackout: Collection[date], at: datetime, horizon: timedelta = HORIZON
) -> OpenWindow | None:
    """The next stretch that opens after ``at`` (one open at ``at`` does not count), or None within ``horizon``."""
    moment = _utc(at)
    for start, end, members in _stretches(windows, blackout, moment, moment + horizon):
        if start > moment:
            return OpenWindow(start, end, end - start, members)
    return None


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{at.isoformat()} has no time zone (pass an aware datetime)")
    return at.astimezone(UTC)


def _stretches(
    windows: Iterable[Window], blackout: Collection[date], since: datetime, until: datetime
) -> list[Stretch]:
    """Openings starting between two days before ``since`` and ``until``, merged where they overlap or touch."""
    dates = set(blackout)
    openings = sorted(
        (opening for window in windows for opening in _openings(window, dates, since, until)),
        key=lambda opening: opening[0],
    )
    merged: list[Stretch] = []
    for start, end, window in openings:
        if merged and start <= merged[-1][1]:
            first, last, members = merged[-1]
            if window not in members:
                members += (window,)
            merged[-1] = (first, max(last, end), members)
        else:
            merged.append((start, end, (window,)))
    return merged


def _openings(
    window: Window, blackout: set[date], since: datetime, until: datetime
) -> Iterator[tuple[datetime, datetime, Window]]:
    """The window's real openings on the days (in its zone) from two days before ``since`` to ``until``.

    No opening starts on a blackout date; one running into a blackout date
    closes at its midnight. An opening of no real length (inside the hour
    clocks skip) does not happen.
    """
    day = since.astimezone(window.zone).date() - timedelta(days=2)
    last = until.astimezone(window.zone).date()
    while day <= last:
        if day.weekday() in window.days and day not in blackout:
            start = instant(day, window.start, window.zone)
            end_day = day + timedelta(days=1) if window.crosses_midnight else day
            end = instant(end_day, window.end, window.zone)
            if window.crosses_midnight and end_day in blackout:
                end = instant(end_day, time(0), window.zone)
            if start < end:
                yield start, end, window
        day += timedelta(days=1)
