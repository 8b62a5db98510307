"""Wall-clock readings to real instants, and the system's time zone."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, time, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

LOCALTIME = Path("/etc/localtime")


def local_zone(localtime: Path = LOCALTIME) -> tzinfo:
    """The system's time zone: ``$TZ`` if it names a zone, else ``/etc/localtime``, else UTC."""
    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    target = os.path.realpath(localtime)
    if "/zoneinfo/" in target:
        try:
            return ZoneInfo(target.split("/zoneinfo/", 1)[1])
        except (ZoneInfoNotFoundError, ValueError):
            pass
    try:
        with open(localtime, "rb") as tzfile:
            return ZoneInfo.from_file(tzfile, key="localtime")
    except (OSError, ValueError):
        return UTC


def wall(at: datetime, zone: tzinfo) -> datetime:
    """What the wall clock in ``zone`` reads at the instant ``at`` (naive)."""
    # Via UTC: astimezone() to the zone ``at`` already has would change nothing.
    return at.astimezone(UTC).astimezone(zone).replace(tzinfo=None)


def instant(day: date, clock: time, zone: tzinfo) -> datetime:
    """The first instant (in UTC) at which the wall clock in ``zone`` reads ``day clock`` or later.

    A reading that happens twice (clocks go back) gives its first occurrence; a
    reading that never happens (clocks go forward) gives the end of the gap.
    """
    reading = datetime.combine(day, clock)
    earlier = reading.replace(tzinfo=zone, fold=0)
    if wall(earlier, zone) == reading:
        return earlier.astimezone(UTC)
    # In a gap: before it the clock reads less, after it more; find its end.
    low = int(reading.replace(tzinfo=zone, fold=1).timestamp())
    high = int(earlier.timestamp())
    if low > high:
        low, high = high, low
    while high - low > 1:
        middle = (low + high) // 2
        if wall(datetime.fromtimestamp(middle, UTC), zone) >= reading:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)

