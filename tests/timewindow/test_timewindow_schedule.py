"""When windows are open: midnight, weekdays, several windows, blackout, DST."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from upgrader.timewindow import fits, is_open, next_opening, parse_window, time_left
from upgrader.timewindow.clock import instant
from upgrader.timewindow.schedule import LOOKAHEAD

BERLIN = ZoneInfo("Europe/Berlin")
H = timedelta(hours=1)


def berlin(*args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=BERLIN, fold=fold)


def windows(*entries: str):
    return [parse_window(entry, default_zone=BERLIN) for entry in entries]


# 2026-11-20 is a Friday.
WEEKNIGHTS = windows("Mon-Fri 22:00-04:00")


@pytest.mark.parametrize(
    "at, left",
    [
        (berlin(2026, 11, 20, 22, 0), 6 * H),  # opens on the minute
        (berlin(2026, 11, 20, 23, 0), 5 * H),
        (berlin(2026, 11, 21, 3, 0), 1 * H),  # Friday's window runs into Saturday
        (berlin(2026, 11, 21, 4, 0), None),  # and closes at 04:00 sharp
        (berlin(2026, 11, 21, 22, 30), None),  # no window starts on Saturday
        (berlin(2026, 11, 23, 1, 0), None),  # nor on Sunday
        (berlin(2026, 11, 23, 21, 59), None),
        (berlin(2026, 11, 24, 0, 30), 3.5 * H),  # Monday's window, after midnight
    ],
)
def test_midnight_crossing_and_weekdays(at: datetime, left: timedelta | None) -> None:
    current = is_open(WEEKNIGHTS, (), at)
    assert (current.left if current else None) == left
    assert time_left(WEEKNIGHTS, (), at) == (left or timedelta(0))


def test_open_window_reports_its_bounds_in_utc() -> None:
    current = is_open(WEEKNIGHTS, (), berlin(2026, 11, 21, 1, 0))
    assert current.start == datetime(2026, 11, 20, 21, 0, tzinfo=UTC)
    assert current.end == datetime(2026, 11, 21, 3, 0, tzinfo=UTC)
    assert current.windows == tuple(WEEKNIGHTS)


def test_instant_in_another_zone_is_compared_by_real_time() -> None:
    # 02:00 UTC on Saturday is 03:00 in Berlin: inside Friday's window.
    assert time_left(WEEKNIGHTS, (), datetime(2026, 11, 21, 2, 0, tzinfo=UTC)) == H


def test_several_windows_in_several_zones() -> None:
    both = windows("Sat,Sun 01:00-06:00", "Mon 01:00-02:00 America/New_York")
    assert is_open(both, (), berlin(2026, 11, 22, 5, 0)).windows == (both[0],)
    new_york_monday = datetime(2026, 11, 23, 1, 30, tzinfo=ZoneInfo("America/New_York"))
    assert is_open(both, (), new_york_monday).windows == (both[1],)
    assert is_open(both, (), berlin(2026, 11, 23, 1, 30)) is None  # Monday in Berlin: neither


def test_overlapping_and_touching_windows_are_one_stretch() -> None:
    chain = windows("Mon 20:00-22:00", "Mon 22:00-02:00", "Tue 01:00-05:00")
    current = is_open(chain, (), berlin(2026, 11, 23, 21, 0))
    assert current.left == 8 * H
    assert current.windows == tuple(chain)


def test_endless_chain_is_followed_only_a_week_ahead() -> None:
    always = windows("Mon-Sun 00:00-23:00", "Mon-Sun 22:00-01:00")
    left = time_left(always, (), berlin(2026, 11, 23, 12, 0))
    assert LOOKAHEAD <= left <= LOOKAHEAD + 24 * H
    assert next_opening(always, (), berlin(2026, 11, 23, 12, 0), horizon=timedelta(days=30)) is None


BLACKOUT = {date(2026, 12, 24)}
NIGHTLY = windows("Mon-Sun 22:00-04:00")


@pytest.mark.parametrize(
    "at, left",
    [
        (berlin(2026, 12, 23, 23, 0), 1 * H),  # started the night before: stops at midnight
        (berlin(2026, 12, 24, 0, 30), None),
        (berlin(2026, 12, 24, 22, 30), None),  # none starts on the blackout date
        (berlin(2026, 12, 25, 1, 0), None),
        (berlin(2026, 12, 25, 22, 30), 5.5 * H),
    ],
)
def test_blackout(at: datetime, left: timedelta | None) -> None:
    current = is_open(NIGHTLY, BLACKOUT, at)
    assert (current.left if current else None) == left


def test_blackout_date_is_taken_in_the_windows_zone() -> None:
    tokyo = [parse_window("Mon-Sun 01:00-03:00 Asia/Tokyo")]
    at = datetime(2026, 12, 23, 16, 30, tzinfo=UTC)  # 24 Dec 01:30 in Tokyo
    assert is_open(tokyo, (), at) is not None
    assert is_open(tokyo, BLACKOUT, at) is None


def test_fits_compares_time_left_with_expected_duration() -> None:
    at = berlin(2026, 11, 21, 2, 0)  # 2h left
    assert fits(WEEKNIGHTS, (), at, 2 * H)
    assert not fits(WEEKNIGHTS, (), at, 2 * H + timedelta(seconds=1))
    assert not fits(WEEKNIGHTS, (), berlin(2026, 11, 21, 12, 0), timedelta(0))  # closed


def test_next_opening() -> None:
    following = next_opening(WEEKNIGHTS, (), berlin(2026, 11, 21, 12, 0))  # Saturday noon
    assert following.start == berlin(2026, 11, 23, 22, 0)  # Monday evening
    assert following.left == 6 * H
    # While one is open, the next is the one after it.
    assert next_opening(WEEKNIGHTS, (), berlin(2026, 11, 23, 23, 0)).start == berlin(2026, 11, 24, 22, 0)


def test_next_opening_skips_blackout_and_gives_up_past_horizon() -> None:
    assert next_opening(NIGHTLY, BLACKOUT, berlin(2026, 12, 24, 12, 0)).start == berlin(2026, 12, 25, 22, 0)
    assert next_opening([], (), berlin(2026, 12, 24, 12, 0)) is None
    sundays = windows("Sun 01:00-02:00")
    assert next_opening(sundays, (), berlin(2026, 11, 23, 12, 0), horizon=timedelta(days=3)) is None


def test_naive_instant_is_refused() -> None:
    with pytest.raises(ValueError, match="has no time zone"):
        is_open(WEEKNIGHTS, (), datetime(2026, 11, 21, 1, 0))


# Europe/Berlin: 2026-03-29 02:00 CET -> 03:00 CEST; 2026-10-25 03:00 CEST -> 02:00 CET.
def test_instant_of_skipped_and_repeated_readings() -> None:
    assert instant(date(2026, 3, 29), time(2, 30), BERLIN) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert instant(date(2026, 10, 25), time(2, 30), BERLIN) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert instant(date(2026, 10, 25), time(3, 0), BERLIN) == datetime(2026, 10, 25, 2, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "entry, day, start_utc, length",
    [
        ("Sun 01:00-04:00", date(2026, 3, 29), datetime(2026, 3, 29, 0, 0, tzinfo=UTC), 2 * H),
        ("Sun 01:00-04:00", date(2026, 10, 25), datetime(2026, 10, 24, 23, 0, tzinfo=UTC), 4 * H),
        ("Sun 01:00-04:00", date(2026, 11, 1), datetime(2026, 11, 1, 0, 0, tzinfo=UTC), 3 * H),
        ("Sun 02:30-05:00", date(2026, 3, 29), datetime(2026, 3, 29, 1, 0, tzinfo=UTC), 2 * H),  # opens at the jump
        ("Sun 02:30-03:00", date(2026, 10, 25), datetime(2026, 10, 25, 0, 30, tzinfo=UTC), 1.5 * H),  # first 02:30
        ("Sun 00:00-02:30", date(2026, 10, 25), datetime(2026, 10, 24, 22, 0, tzinfo=UTC), 2.5 * H),  # ends at first 02:30
        ("Sat 22:00-04:00", date(2026, 10, 24), datetime(2026, 10, 24, 20, 0, tzinfo=UTC), 7 * H),
        ("Sat 22:00-04:00", date(2026, 3, 28), datetime(2026, 3, 28, 21, 0, tzinfo=UTC), 5 * H),
    ],
)
def test_dst_nights_have_their_real_length(entry: str, day: date, start_utc: datetime, length: timedelta) -> None:
    opening = next_opening(windows(entry), (), datetime.combine(day, time(0), BERLIN) - 3 * H)
    assert (opening.start, opening.end - opening.start) == (start_utc, length)


def test_time_left_across_fall_back_counts_real_time() -> None:
    # 01:30 CEST to 04:00 CET is 3.5h, though the wall clock moves 2.5h.
    at = berlin(2026, 10, 25, 1, 30)
    assert time_left(windows("Sun 01:00-04:00"), (), at) == 3.5 * H
    # The second 02:30 (CET) is 1.5h before the end.
    assert time_left(windows("Sun 01:00-04:00"), (), berlin(2026, 10, 25, 2, 30, fold=1)) == 1.5 * H


def test_window_inside_the_skipped_hour_does_not_open() -> None:
    skipped = windows("Sun 02:00-03:00")
    assert is_open(skipped, (), berlin(2026, 3, 29, 3, 0)) is None
    assert next_opening(skipped, (), berlin(2026, 3, 28, 12, 0)).start == berlin(2026, 4, 5, 2, 0)
