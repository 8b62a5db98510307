"""Exactly one scheduler: cron's entries stand down where systemd runs the package's enabled units."""

from __future__ import annotations

from pathlib import Path

from upgrader.cli import _scheduled
from upgrader.runner import Runner
from upgrader.scheduler import systemd_runs


def answering(code: int) -> Runner:
    """A runner whose systemctl answers ``code`` (a real shell standing in for systemctl, argv kept)."""
    return Runner(prefix=["sh", "-c", f"exit {code}", "systemctl"], timeout=10)


def test_systemd_runs_the_window_only_where_it_is_process_1_and_the_timer_is_enabled(tmp_path: Path) -> None:
    running = tmp_path / "run/systemd/system"
    assert systemd_runs("window", running, answering(0)) is None  # no systemd: cron runs it
    running.mkdir(parents=True)
    assert systemd_runs("window", running, answering(0)) == "rolling-upgrade-window.timer"
    assert systemd_runs("resume", running, answering(0)) == "rolling-upgrade-resume.service"
    assert systemd_runs("window", running, answering(1)) is None  # the timer disabled (or not installed)


def test_without_systemd_a_cron_entry_runs_the_command_itself() -> None:
    """This machine has no systemd as process 1: --from-cron changes nothing, the command runs."""
    assert not Path("/run/systemd/system").is_dir()
    assert _scheduled("window", True, lambda: 42) == 42 and _scheduled("resume", False, lambda: 7) == 7
