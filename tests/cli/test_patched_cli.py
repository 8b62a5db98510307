"""``rolling-upgrade patched``'s reading of lxc-ls: each running container's init pid in one command, and
lxc-info alone for each named container when lxc-ls cannot list."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from upgrader.cli.patched import NOT_RUNNING, lxc_listing, patched


def test_lxc_ls_states_and_pids_are_read_and_a_row_without_a_pid_has_no_init() -> None:
    # The shape of lxc 5.0's lxc-ls --fancy output (a header, padded columns; tests/lab/test_patched_lab.py
    # checks this parser against the real one on every lab node, a stopped container's row included).
    out = "NAME   STATE   PID   \napp1   RUNNING 41236 \napp10  STOPPED -     \napp2   RUNNING 41530 \n"
    assert lxc_listing(out) == ({"app1": "RUNNING", "app10": "STOPPED", "app2": "RUNNING"},
                                {"app1": 41236, "app2": 41530})
    assert lxc_listing("") == ({}, {})


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The scan's md5sums cache in the test's directory, not this host's /run/upgrader."""
    monkeypatch.setattr("upgrader.packages.sumcache.CACHE", tmp_path / "run" / "patched-md5sums.json")


def _tools(bin_dir: Path, info: str) -> None:
    """An lxc-ls that cannot list (as when lxc's state directory is unreadable), an lxc-info from ``info``."""
    bin_dir.mkdir()
    for name, body in (("lxc-ls", 'echo "lxc-ls: cannot list containers" >&2; exit 1'), ("lxc-info", info)):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)


@pytest.fixture
def init_in_own_namespace() -> Iterator[int]:
    """A real process as a container's init: pid 1 of a pid namespace of its own (its host pid given)."""
    if os.geteuid() != 0:
        pytest.skip("a pid namespace of its own needs root (make test runs as root)")
    leader = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", "sleep", "60"])
    children: list[str] = []
    try:
        for _ in range(100):
            children = Path(f"/proc/{leader.pid}/task/{leader.pid}/children").read_text().split()
            if children:
                break
            time.sleep(0.05)
        assert children, "unshare started no child"
        yield int(children[0])
    finally:
        for pid in children:  # pid 1 of the namespace: ended with it, and by its pid in case
            try:
                os.kill(int(pid), 9)
            except ProcessLookupError:
                pass
        leader.kill()
        leader.wait(timeout=10)


def test_lxc_ls_failing_the_named_containers_are_asked_alone_with_lxc_info(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        init_in_own_namespace: int) -> None:
    _tools(tmp_path / "bin", f'[ "$2" = app1 ] && {{ echo {init_in_own_namespace}; exit 0; }}\n'
                             'echo "$2 doesn\'t exist" >&2; exit 1')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    assert patched(["app1", "app9"], as_json=True) == NOT_RUNNING  # app9 is not on this node
    said = capsys.readouterr()
    found = json.loads(said.out)["containers"]
    assert said.err.splitlines() == ["rolling-upgrade patched: listing the containers failed: error "
                                     "(lxc-ls: cannot list containers); each container named was asked alone "
                                     "with lxc-info"], said.err
    assert found["app1"]["running"] and found["app1"]["processes"] == 1 and found["app1"]["stale"] == []
    assert found["app9"] == {"running": False, "stale": []}
    assert "state" not in found["app1"], "no state when lxc-ls could not list: level 2 asks lxc itself"
    assert patched(["app1"], as_json=True) == 0


def test_lxc_ls_and_lxc_info_both_failing_is_exit_2_naming_both(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _tools(tmp_path / "bin", 'echo "lxc-info: failed to get state" >&2; exit 1')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    assert patched(["app1"], as_json=False) == 2
    err = capsys.readouterr().err
    assert "cannot list containers" in err and "failed to get state" in err and "app1" in err
    assert len(err.splitlines()) == 1 and err.count("cannot list containers") == 1, "one line, each error once"
    assert patched([], as_json=False) == 2  # every running container: only lxc-ls can name them


def test_each_named_containers_state_comes_from_the_same_lxc_ls(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        init_in_own_namespace: int) -> None:
    """One lxc-ls gives the inits and every named container's state (level 2 reads it from the scan);
    a container it does not list has the state "" (as level 2's own lxc-ls reading would say)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    rows = f"NAME STATE PID\napp1 RUNNING {init_in_own_namespace}\napp2 STOPPED -\napp4 STARTING -\n"
    asked = tmp_path / "lxc-info.asked"
    (bin_dir / "lxc-ls").write_text(f"#!/bin/sh\nprintf '{rows}'\n")
    (bin_dir / "lxc-info").write_text(f"#!/bin/sh\necho \"$2\" >> {asked}\nexit 1\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    assert patched(["app1", "app2", "app3", "app4"], as_json=True) == NOT_RUNNING
    said = capsys.readouterr()
    found = json.loads(said.out)["containers"]
    assert (found["app1"]["running"], found["app1"]["state"], found["app1"]["processes"]) == (True, "RUNNING", 1)
    assert found["app2"] == {"running": False, "stale": [], "state": "STOPPED"}
    assert found["app3"] == {"running": False, "stale": [], "state": ""}
    assert found["app4"] == {"running": False, "stale": [], "state": "STARTING"}
    assert said.err == ""
    # lxc-info only for the one in between (no pid yet): not for a stopped one, nor one lxc-ls does not know
    assert asked.read_text().split() == ["app4"]
