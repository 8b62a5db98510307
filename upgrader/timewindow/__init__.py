"""Patch window maths: when automatic upgrades may run, and whether a node fits.

Configuration syntax (one APT list entry per window)::

    Rolling-Upgrade::Windows { "Mon-Fri 22:00-04:00 Europe/Berlin"; "Sat,Sun 01:00-06:00"; };
    Rolling-Upgrade::Blackout { "2026-12-24"; "2026-12-31"; };

A window ``DAYS HH:MM-HH:MM [ZONE]`` opens on each of DAYS (``Mon``..``Sun``,
lists ``Sat,Sun``, ranges ``Mon-Fri``, wrapping ``Fri-Mon``) at the first time
and closes at the second; an end not after the start is on the next day, so
``Fri 22:00-04:00`` runs from Friday 22:00 to Saturday 04:00. ZONE is an IANA
name, by default the system's zone. Overlapping or touching windows count as
one open stretch.

Blackout dates are dates in each window's zone. No window starts on one, and
a window that started the evening before closes at the blackout date's
midnight (the safe choice).

Daylight saving time: start and end are wall-clock readings; all durations are
real elapsed time; instants are returned in UTC. A boundary falls at the first
instant the wall clock reads that time or later: a reading that happens twice
(clocks go back) means its first occurrence, one that never happens (clocks
go forward) means the moment the clocks jump. So in Europe/Berlin a 01:00-04:00
window lasts 2h on 2026-03-29 and 4h on 2026-10-25, and a 02:00-03:00 window
does not open at all on 2026-03-29.
"""

from upgrader.timewindow.clock import local_zone
from upgrader.timewindow.estimate import expected_node_duration
from upgrader.timewindow.schedule import OpenWindow, fits, is_open, next_opening, time_left
from upgrader.timewindow.window import Window, WindowError, parse_blackout, parse_window

__all__ = [
    "OpenWindow",
    "Window",
    "WindowError",
    "expected_node_duration",
    "fits",
    "is_open",
    "local_zone",
    "next_opening",
    "parse_blackout",
    "parse_window",
    "time_left",
]
