"""Whether an apt run's lock is still anyone's: the apt run, its finisher or its finishing step, with real processes."""

from __future__ import annotations

import os
import time
import subprocess
import sys
from pathlib import Path

from upgrader import runkey
from upgrader.cli import main
from upgrader.guard import store
from upgrader.pacemaker.lock import LockInfo, run_alive


def dead_key() -> str:
    """The key of a process that has ended (its pid is not reused this quickly)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    key = runkey.key_of(child.pid)
    child.wait()
    assert key and not runkey.alive(key)
    return key


def test_an_apt_run_is_running_then_finishing_while_its_finisher_lives_then_ended(tmp_path: Path) -> None:
    root = str(tmp_path)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        key = runkey.key_of(live.pid)
        assert key and runkey.apt_run_state(key, root) == runkey.RUNNING
    finally:
        live.kill()
        live.wait()
    assert runkey.apt_run_state(key, root) == runkey.ENDED

    ended = dead_key()
    go_r, go_w = os.pipe()
    done_r, done_w = os.pipe()
    child = os.fork()
    if child == 0:  # the finisher: records itself, then lives until told
        os.close(go_r)
        store.record_step(ended, runkey.FINISHER_KEY, root)
        os.write(go_w, b"x")
        os.read(done_r, 1)
        os._exit(0)
    try:
        os.read(go_r, 1)
        assert runkey.apt_run_state(ended, root) == runkey.FINISHING
        recorded = Path(store.run_dir(ended, root), runkey.FINISHER_KEY)
        assert recorded.stat().st_mode & 0o777 == 0o600
        recorded.chmod(0o666)  # a record anyone could have written is no record
        assert runkey.apt_run_state(ended, root) == runkey.ENDED
        recorded.chmod(0o600)
        assert runkey.apt_run_state(ended, root) == runkey.FINISHING
    finally:
        os.write(done_w, b"x")
        os.waitpid(child, 0)
    assert runkey.apt_run_state(ended, root) == runkey.ENDED


def test_a_lock_of_an_ended_apt_run_is_dead_unless_kept_for_a_person() -> None:
    ended = f"apt-{dead_key()}"
    assert not run_alive(LockInfo("node2", ended, 4711, "apt-allowed", None, None, None))
    assert run_alive(LockInfo("node2", ended, 4711, "dpkg-failed", None, None, None))
    live = f"apt-{runkey.key_of(os.getpid())}"
    assert run_alive(LockInfo("node2", live, 4711, "apt-allowed", None, None, None))


def test_run_state_answers_for_apt_run_ids_only(capsys) -> None:
    assert main(["run-state", f"apt-{dead_key()}"]) == 0
    assert capsys.readouterr().out.strip() == "ended"
    assert main(["run-state", f"apt-{runkey.key_of(os.getpid())}"]) == 0
    assert capsys.readouterr().out.strip() == "running"
    assert main(["run-state", "20261201T120000-node1-abcdef"]) == 2
    assert "not an apt run's id" in capsys.readouterr().err


def test_a_killed_apt_run_not_yet_reaped_has_ended() -> None:
    """apt-get killed whose parent never reaped it (a zombie) keeps its pid and start time: it has still ended."""
    child = os.fork()
    if child == 0:
        os._exit(0)
    try:
        key = runkey.key_of(child)
        deadline = 100
        while Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z" and deadline:
            deadline -= 1
            time.sleep(0.05)
        assert key and runkey.key_of(child) == key  # still listed, same start time
        assert not runkey.alive(key) and runkey.apt_run_state(key, "/nonexistent") == runkey.ENDED
    finally:
        os.waitpid(child, 0)


def test_a_finisher_can_be_recorded_by_its_parent_before_it_runs(tmp_path: Path) -> None:
    """spawn() records the waiter's key from the forking process, before Post-Invoke returns to apt."""
    root = str(tmp_path)
    ended = dead_key()
    waiter = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        store.record_step(ended, runkey.FINISHER_KEY, root, pid=waiter.pid)
        assert runkey.apt_run_state(ended, root) == runkey.FINISHING
    finally:
        waiter.kill()
        waiter.wait()
    assert runkey.apt_run_state(ended, root) == runkey.ENDED
