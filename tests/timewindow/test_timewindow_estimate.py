"""The expected node duration learned from history."""

from datetime import timedelta

import pytest

from upgrader.timewindow import expected_node_duration


def test_no_history_gives_the_configured_default() -> None:
    assert expected_node_duration([], 1800) == timedelta(seconds=1800)


def test_longest_recent_upgrade_times_safety_factor() -> None:
    # The 5000s run is older than the last five and no longer counts.
    past = [5000, 100, 400, 300, 200, 250]
    assert expected_node_duration(past, 1800) == timedelta(seconds=600)
    assert expected_node_duration(past, 1800, samples=6, factor=2) == timedelta(seconds=10000)


def test_short_history_uses_what_there_is() -> None:
    assert expected_node_duration([120], 1800) == timedelta(seconds=180)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_nonsense_durations_are_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="is not a duration in seconds"):
        expected_node_duration([100, bad], 1800)
