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
