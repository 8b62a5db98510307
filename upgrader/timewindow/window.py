"""Patch windows and blackout dates, and their configuration syntax."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, time, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from upgrader.timewindow.clock import local_zone

DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_DAY_NUMBERS = {name.lower(): number for number, name in enumerate(DAY_NAMES)}
_CLOCK = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
EXAMPLE = "'Mon-Fri 22:00-04:00 Europe/Berlin'"


class WindowError(ValueError):
    """A window or blackout entry that does not parse; the message quotes it and says what to do."""


@dataclass(frozen=True)
class Window:
    """Opens on each of ``days`` (0 = Monday) at ``start`` and closes at ``end``.

    Both are wall-clock times in ``zone``; an ``end`` not after ``start`` is on
    the next day (the window crosses midnight).
    """

    days: frozenset[int]
    start: time
    end: time
    zone: tzinfo

    @property
    def crosses_midnight(self) -> bool:
        return self.end <= self.start

    def __str__(self) -> str:
        days = ",".join(DAY_NAMES[day] for day in sorted(self.days))
        return f"{days} {self.start:%H:%M}-{self.end:%H:%M} {self.zone}"


def parse_window(text: str, default_zone: tzinfo | None = None) -> Window:
    """Parse ``DAYS HH:MM-HH:MM [ZONE]``, e.g. ``Mon-Fri 22:00-04:00 Europe/Berlin``.

    DAYS: ``Mon``..``Sun`` (any case), comma-separated, ranges like ``Mon-Fri``
    or ``Fri-Mon``; they are the days the window starts on. ZONE: an IANA
    name; without one, ``default_zone`` or else the system's zone.
    """
    fields = text.split()
    if len(fields) not in (2, 3):
        raise WindowError(f"{text!r} is not a window (use DAYS HH:MM-HH:MM [ZONE], e.g. {EXAMPLE})")
    days = _days(fields[0], text)
    start, end = _clocks(fields[1], text)
    zone = _zone(fields[2], text) if len(fields) == 3 else default_zone or local_zone()
    return Window(days, start, end, zone)


def parse_blackout(text: str) -> date:
    """Parse a blackout date, ``YYYY-MM-DD``."""
    value = text.strip()
    if _DATE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise WindowError(f"{text!r} is not a date (use YYYY-MM-DD, e.g. 2026-12-24)")


def _days(field: str, text: str) -> frozenset[int]:
    days: set[int] = set()
    for item in field.split(","):
        first, _, last = item.partition("-")
        begin, stop = _day(first, text), _day(last or first, text)
        days.update((begin + step) % 7 for step in range((stop - begin) % 7 + 1))
    return frozenset(days)


def _day(name: str, text: str) -> int:
    try:
        return _DAY_NUMBERS[name.lower()]
    except KeyError:
        raise WindowError(
            f"{name!r} is not a day in {text!r} (use Mon, Tue, Wed, Thu, Fri, Sat, Sun; ranges like Mon-Fri)"
        ) from None


def _clocks(field: str, text: str) -> tuple[time, time]:
    first, dash, last = field.partition("-")
    if not dash:
        raise WindowError(f"{field!r} is not a time range in {text!r} (use HH:MM-HH:MM, e.g. 22:00-04:00)")
    start, end = _clock(first, text), _clock(last, text)
    if start == end:
        raise WindowError(f"{field!r} starts and ends at the same time in {text!r} (a window lasts under 24h)")
    return start, end


def _clock(field: str, text: str) -> time:
    match = _CLOCK.fullmatch(field)
    if not match:
        raise WindowError(f"{field!r} is not a time in {text!r} (use HH:MM, 00:00 to 23:59)")
    return time(int(match[1]), int(match[2]))


def _zone(name: str, text: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise WindowError(
            f"{name!r} is not a time zone in {text!r} (use a name from /usr/share/zoneinfo, e.g. Europe/Berlin)"
        ) from None
