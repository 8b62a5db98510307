"""apply waits, bounded, for another package manager to let go of dpkg's lock (a real fcntl lock, on a temp file)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from upgrader.packages.run import wait_for_dpkg_lock

HOLD = """
import fcntl, sys, time
f = open(sys.argv[1], "w")
fcntl.lockf(f, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


class Said:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def waiting(self, text: str) -> None:
        self.lines.append(text)


def hold(path: Path, seconds: float) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    return holder


def test_a_free_lock_is_not_waited_for(tmp_path: Path) -> None:
    said = Said()
    assert wait_for_dpkg_lock(said, 5, (str(tmp_path / "lock-frontend"),)) is None  # missing: nobody holds it
    (tmp_path / "lock-frontend").touch()
    assert wait_for_dpkg_lock(said, 5, (str(tmp_path / "lock-frontend"),)) is None and said.lines == []


def test_a_lock_let_go_of_within_the_limit_is_waited_for_and_said(tmp_path: Path) -> None:
    path = tmp_path / "lock-frontend"
    holder = hold(path, 1.0)
    said, started = Said(), time.monotonic()
    try:
        assert wait_for_dpkg_lock(said, 20, (str(path),)) is None
    finally:
        holder.wait(10)
    assert 0.5 < time.monotonic() - started < 20
    assert len(said.lines) == 1 and said.lines[0].startswith("waiting up to 20s for ")
    assert f"(pid {holder.pid}) to let go of dpkg's lock" in said.lines[0]


def test_a_lock_held_past_the_limit_names_its_holder(tmp_path: Path) -> None:
    path = tmp_path / "lock-frontend"
    holder = hold(path, 30)
    try:
        assert wait_for_dpkg_lock(None, 0.6, (str(path),)) == holder.pid
    finally:
        holder.kill()
        holder.wait(10)


def test_dpkgs_own_lock_is_waited_for_when_its_frontend_is_gone(tmp_path: Path) -> None:
    """apt-get killed, its dpkg still ending: lock-frontend is free but dpkg's own lock is not. A repair
    (dpkg --configure -a) started then fails at once; the wait must cover both locks."""
    frontend, own = tmp_path / "lock-frontend", tmp_path / "lock"
    frontend.touch()
    holder = hold(own, 1.0)
    said = Said()
    try:
        assert wait_for_dpkg_lock(said, 20, (str(frontend), str(own))) is None
    finally:
        holder.wait(10)
    assert len(said.lines) == 1 and f"(pid {holder.pid})" in said.lines[0]
    holder = hold(own, 30)
    try:
        assert wait_for_dpkg_lock(None, 0.6, (str(frontend), str(own))) == holder.pid
    finally:
        holder.kill()
        holder.wait(10)


def test_python_apt_looks_at_the_dpkg_run_it_forked_often_enough_to_see_its_end_at_once() -> None:
    """Its default (a look every 0.1 s) kept a drained node waiting 0.05 s on average after dpkg ended."""
    import apt.progress.base as base

    from upgrader.packages import run

    install = run._progress_adapters(None)[1]
    assert isinstance(install, base.InstallProgress)
    assert install.select_timeout == run.INSTALL_POLL < base.InstallProgress.select_timeout
