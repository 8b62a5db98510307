"""The one runner: hard time limits, and what exit code 127 means."""

from __future__ import annotations

import os
import signal
import time

from upgrader.runner import TIMED_OUT, CommandError, CommandMissing, Runner

import pytest


def test_a_timeout_is_a_hard_limit_even_when_a_grandchild_keeps_the_output_open(tmp_path) -> None:
    started = time.monotonic()
    # The grandchild leaves the process group (setsid) and keeps stdout open for 30 s; it says its pid on stderr
    # first, so that the test ends it (it is ours), by pid.
    pidfile = tmp_path / "grandchild.pid"
    result = Runner(timeout=1).call(["sh", "-c", f"setsid sh -c 'echo $$ > {pidfile}; exec sleep 30' & "
                                     "echo started; sleep 30"])
    took = time.monotonic() - started
    try:
        assert result.returncode == TIMED_OUT
        assert took < 6, took  # 1 s, then at most the grace to read what was left
    finally:
        if pidfile.exists():
            try:
                os.kill(int(pidfile.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_a_missing_program_is_not_installed_but_a_program_exiting_127_is_not_missing() -> None:
    with pytest.raises(CommandMissing, match="is not installed"):
        Runner().run(["/nonexistent/tool", "x"])
    with pytest.raises(CommandError) as caught:
        Runner().run(["sh", "-c", "exit 127"])
    assert not isinstance(caught.value, CommandMissing)
    assert not Runner().call(["sh", "-c", "exit 127"]).missing
    assert Runner(prefix=["sh", "-c", 'exec "$0" "$@"']).call(["/nonexistent/tool"]).missing  # the prefix could not run it


def _end(pidfile) -> None:
    if pidfile.exists() and pidfile.read_text().strip():
        try:
            os.kill(int(pidfile.read_text()), signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_streamed_command_is_bounded_too_when_a_grandchild_keeps_its_stdout(tmp_path) -> None:
    """The apply's stream: its timeout holds, and a command that ended is not waited for past the grace."""
    pidfile = tmp_path / "grandchild.pid"
    spawn = f"setsid sh -c 'echo $$ > {pidfile}; exec sleep 30' & echo started"
    seen: list[str] = []
    started = time.monotonic()
    try:
        result = Runner(timeout=1).stream(["sh", "-c", spawn + "; sleep 30"], seen.append)
        took = time.monotonic() - started
        assert result.returncode == TIMED_OUT and seen == ["started"] and took < 5, (result, took)
    finally:
        _end(pidfile)
    pidfile.unlink(missing_ok=True)
    seen.clear()
    started = time.monotonic()
    try:
        result = Runner(timeout=30).stream(["sh", "-c", spawn + "; echo done; exit 3"], seen.append)
        took = time.monotonic() - started
        assert result.returncode == 3 and seen == ["started", "done"] and took < 5, (result, took)
    finally:
        _end(pidfile)


def test_a_streamed_line_without_a_newline_at_the_end_is_still_handed_over() -> None:
    seen: list[str] = []
    result = Runner(timeout=10).stream(["printf", "one\\ntwo"], seen.append)
    assert result.returncode == 0 and seen == ["one", "two"] and result.stdout == "one\ntwo"


def test_work_in_a_child_answers_times_out_or_says_what_it_raised() -> None:
    import time as clock

    from upgrader.bounded import WorkFailed, call_in_child

    assert call_in_child(lambda: b"answer", 5) == b"answer"
    started = clock.monotonic()
    assert call_in_child(lambda: clock.sleep(30) or b"late", 0.5) is None
    assert clock.monotonic() - started < 3

    def broken() -> bytes:
        raise ValueError("no such host")

    with pytest.raises(WorkFailed, match="^ValueError: no such host$"):  # not reported as a timeout
        call_in_child(broken, 5)


def test_a_streamed_commands_channel_writes_from_another_thread_and_moves_its_bound() -> None:
    """What an apply started ahead of its node's drain is given: a go sent later, its bound counted from then."""
    import threading

    channels: list = []
    seen: list[str] = []

    def later() -> None:
        deadline = time.monotonic() + 10
        while not channels and time.monotonic() < deadline:
            time.sleep(0.01)
        assert channels[0].send("hello\n")
        channels[0].rebound(0.5)

    talker = threading.Thread(target=later)
    talker.start()
    result = Runner(timeout=30).stream(["sh", "-c", "read w; echo got $w; sleep 30"], seen.append, replies=True,
                                       talk=channels.append)
    talker.join()
    assert seen == ["got hello"] and result.returncode == TIMED_OUT and result.seconds < 10
    assert not channels[0].send("late\n")  # the command is gone: nothing written, no error
