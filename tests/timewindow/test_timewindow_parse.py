"""Parsing windows and blackout dates, and finding the system's zone."""

from datetime import date, time
from zoneinfo import ZoneInfo

import pytest

from upgrader.timewindow import WindowError, local_zone, parse_blackout, parse_window

BERLIN = ZoneInfo("Europe/Berlin")


def test_full_entry() -> None:
    window = parse_window("Mon-Fri 22:00-04:00 Europe/Berlin")
    assert window.days == frozenset({0, 1, 2, 3, 4})
    assert (window.start, window.end) == (time(22), time(4))
    assert window.zone == BERLIN
    assert window.crosses_midnight
    assert str(window) == "Mon,Tue,Wed,Thu,Fri 22:00-04:00 Europe/Berlin"


@pytest.mark.parametrize(
    "days, expected",
    [
        ("Sat,Sun", {5, 6}),
        ("sun", {6}),
        ("Fri-Mon", {4, 5, 6, 0}),
        ("Mon,Wed-Thu", {0, 2, 3}),
        ("Mon-Sun", set(range(7))),
    ],
)
def test_days(days: str, expected: set[int]) -> None:
    assert parse_window(f"{days} 01:00-06:00 UTC").days == expected


def test_same_day_window_does_not_cross_midnight() -> None:
    assert not parse_window("Sat 01:00-06:00 UTC").crosses_midnight
    assert parse_window("Sat 22:00-00:00 UTC").crosses_midnight


def test_zone_defaults_to_given_zone_then_system_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_window("Mon 01:00-02:00", default_zone=BERLIN).zone == BERLIN
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    assert parse_window("Mon 01:00-02:00").zone == ZoneInfo("Asia/Tokyo")


def test_local_zone_follows_etc_localtime(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv("TZ", raising=False)
    link = tmp_path / "localtime"
    link.symlink_to("/usr/share/zoneinfo/America/New_York")
    assert local_zone(link) == ZoneInfo("America/New_York")
    assert str(local_zone(tmp_path / "missing")) == "UTC"


@pytest.mark.parametrize(
    "entry, message",
    [
        ("Mon-Fri", "'Mon-Fri' is not a window (use DAYS HH:MM-HH:MM [ZONE], e.g. 'Mon-Fri 22:00-04:00 Europe/Berlin')"),
        ("Mon 01:00-02:00 UTC extra", "'Mon 01:00-02:00 UTC extra' is not a window (use DAYS HH:MM-HH:MM [ZONE], e.g. 'Mon-Fri 22:00-04:00 Europe/Berlin')"),
        ("Mon-Fry 22:00-04:00", "'Fry' is not a day in 'Mon-Fry 22:00-04:00' (use Mon, Tue, Wed, Thu, Fri, Sat, Sun; ranges like Mon-Fri)"),
        ("Mon,,Tue 22:00-04:00", "'' is not a day in 'Mon,,Tue 22:00-04:00' (use Mon, Tue, Wed, Thu, Fri, Sat, Sun; ranges like Mon-Fri)"),
        ("Mon 22:00", "'22:00' is not a time range in 'Mon 22:00' (use HH:MM-HH:MM, e.g. 22:00-04:00)"),
        ("Mon 25:00-04:00", "'25:00' is not a time in 'Mon 25:00-04:00' (use HH:MM, 00:00 to 23:59)"),
        ("Mon 22:00-24:00", "'24:00' is not a time in 'Mon 22:00-24:00' (use HH:MM, 00:00 to 23:59)"),
        ("Mon 2200-0400", "'2200' is not a time in 'Mon 2200-0400' (use HH:MM, 00:00 to 23:59)"),
        ("Mon 02:00-02:00", "'02:00-02:00' starts and ends at the same time in 'Mon 02:00-02:00' (a window lasts under 24h)"),
        ("Mon 01:00-02:00 Mars/Base", "'Mars/Base' is not a time zone in 'Mon 01:00-02:00 Mars/Base' (use a name from /usr/share/zoneinfo, e.g. Europe/Berlin)"),
        ("Mon 01:00-02:00 ../etc", "'../etc' is not a time zone in 'Mon 01:00-02:00 ../etc' (use a name from /usr/share/zoneinfo, e.g. Europe/Berlin)"),
    ],
)
def test_window_errors(entry: str, message: str) -> None:
    with pytest.raises(WindowError) as caught:
        parse_window(entry, default_zone=BERLIN)
    assert str(caught.value) == message


def test_blackout_date() -> None:
    assert parse_blackout(" 2026-12-24 ") == date(2026, 12, 24)


@pytest.mark.parametrize("entry", ["2026-12-32", "24.12.2026", "20261224", "2026-W52-4", ""])
def test_blackout_errors(entry: str) -> None:
    with pytest.raises(WindowError) as caught:
        parse_blackout(entry)
    assert str(caught.value) == f"{entry!r} is not a date (use YYYY-MM-DD, e.g. 2026-12-24)"
