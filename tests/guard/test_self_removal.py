"""The guard lets through an apt or dpkg run whose only change is the removal of upgrader itself.

dpkg's Pre-Invoke runs the hook before the package is removed: judged like any other run, the
removal would be refused on an active node and upgrader could never be removed there.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pytest

from upgrader.guard import hook, pkgs, record, selfremove, store

KEY = "4242-77"
HEAD = "VERSION 3\nAPT::Architecture=amd64\n\n"
REMOVE_US = HEAD + "upgrader 0.1.0 all none > - - none **REMOVE**\n"
REMOVE_US_AND_MORE = REMOVE_US + "demo-libfoo 1 amd64 none < 2 all none /srv/repo/pool/lab/demo-libfoo_2_all.deb\n"
ACTIVE = "refused: node1 is active (runs app1); put it in standby or run rolling-upgrade"


@pytest.fixture()
def guard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """The hook's state under tmp_path; the frontend's command line and the cluster's verdict are the test's."""
    run = str(tmp_path / "run/upgrader")
    monkeypatch.setattr(store, "RUN_DIR", run)
    monkeypatch.setattr(store, "RUNS", run + "/runs")
    monkeypatch.setattr(store, "REFUSAL", run + "/refusal")
    monkeypatch.setattr(store, "EVENTS", str(tmp_path / "hooks.jsonl"))
    monkeypatch.setattr(hook.runkey, "run_key", lambda: KEY)
    for name in ("UPGRADER_GUARD", "UPGRADER_RUN_ID", "DPKG_FRONTEND_LOCKED", "DPKG_HOOK_ACTION"):
        monkeypatch.delenv(name, raising=False)
    seen: dict = {"argv": [], "asked": 0, "verdict": (store.REFUSED, ACTIVE)}
    monkeypatch.setattr(selfremove, "command_line", lambda pid: seen["argv"] if pid == 4242 else [])

    def decide_run(key: str, env_run_id: str) -> tuple[str, str]:
        seen["asked"] += 1
        store.write_verdict(key, *seen["verdict"])
        return seen["verdict"]

    monkeypatch.setattr(record, "decide_run", decide_run)
    return seen


def stage(name: str, stdin: str = "") -> int:
    old = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        return hook.main([name])
    finally:
        sys.stdin = old


@pytest.mark.parametrize("argv", [["apt-get", "purge", "-y", "upgrader"], ["apt", "remove", "upgrader"],
                                  ["/usr/bin/apt-get", "-y", "remove", "--purge", "upgrader:all"]])
def test_apt_removing_only_upgrader_on_an_active_node_passes_without_asking_the_cluster(guard: dict,
                                                                                          argv: list[str]) -> None:
    guard["argv"] = argv
    assert stage("pre-invoke") == 0
    assert store.read_verdict(KEY)[0] == store.DEFERRED
    assert stage("pre-install-pkgs", REMOVE_US) == 0
    assert store.read_verdict(KEY) == (store.SELF_REMOVAL, selfremove.REASON)
    # dpkg under apt reads the verdict: it goes on and removes the package (the hook with it)
    with pytest.MonkeyPatch.context() as m:
        m.setenv("DPKG_FRONTEND_LOCKED", "1")
        assert stage("dpkg-pre-invoke") == 0
    assert guard["asked"] == 0  # no cluster query, no lock taken: nothing to give back
    assert not Path(store.REFUSAL).exists()


def test_an_apt_run_naming_upgrader_that_changes_more_is_judged_before_dpkg_runs(guard: dict,
                                                                                capsys: pytest.CaptureFixture) -> None:
    guard["argv"] = ["apt-get", "install", "demo-libfoo", "upgrader-"]
    assert stage("pre-invoke") == 0
    assert stage("pre-install-pkgs", REMOVE_US_AND_MORE) == hook.EXIT_REFUSED
    assert guard["asked"] == 1 and ACTIVE in capsys.readouterr().err
    assert store.read_verdict(KEY) == (store.REFUSED, ACTIVE)
    assert ACTIVE in Path(store.REFUSAL).read_text()
    with pytest.MonkeyPatch.context() as m:  # had apt gone on, dpkg would refuse too
        m.setenv("DPKG_FRONTEND_LOCKED", "1")
        assert stage("dpkg-pre-invoke") == hook.EXIT_REFUSED


def test_a_run_naming_upgrader_on_a_drained_node_is_allowed_and_captured_as_usual(guard: dict) -> None:
    guard["argv"] = ["apt-get", "install", "upgrader", "demo-libfoo"]
    guard["verdict"] = (store.ALLOWED, "node1 is in standby and drained; upgrade lock held by run apt-4242-77")
    assert stage("pre-invoke") == 0
    assert stage("pre-install-pkgs", REMOVE_US_AND_MORE) == 0
    assert store.read_verdict(KEY)[0] == store.ALLOWED and guard["asked"] == 1
    assert [c.name for c in record.captured(KEY)] == ["upgrader", "demo-libfoo"]


def test_runs_that_do_not_name_upgrader_are_judged_in_pre_invoke_as_before(guard: dict,
                                                                          capsys: pytest.CaptureFixture) -> None:
    guard["argv"] = ["/usr/bin/python3", "/usr/bin/unattended-upgrade"]
    assert stage("pre-invoke") == hook.EXIT_REFUSED
    assert guard["asked"] == 1 and ACTIVE in capsys.readouterr().err


def test_a_deferred_run_whose_pre_install_pkgs_never_decided_is_refused_by_dpkg(guard: dict,
                                                                               capsys: pytest.CaptureFixture) -> None:
    guard["argv"] = ["apt-get", "purge", "upgrader"]
    assert stage("pre-invoke") == 0
    with pytest.MonkeyPatch.context() as m:
        m.setenv("DPKG_FRONTEND_LOCKED", "1")
        assert stage("dpkg-pre-invoke") == hook.EXIT_REFUSED
    assert "Pre-Install-Pkgs hook did not decide it" in capsys.readouterr().err


@pytest.mark.parametrize("argv, action, passes", [
    (["dpkg", "-r", "upgrader"], "remove", True),
    (["dpkg", "--purge", "upgrader:all"], "purge", True),
    (["dpkg", "-P", "--force-depends", "upgrader"], "purge", True),
    (["dpkg", "-r", "upgrader", "demo-libfoo"], "remove", False),
    (["dpkg", "-r", "-a"], "remove", False),
    (["dpkg", "--root", "/srv/other", "-r", "upgrader"], "remove", False),
    (["dpkg", "-i", "upgrader_0.1.0_all.deb"], "install", False),
])
def test_dpkg_run_directly_passes_only_for_upgraders_own_removal(guard: dict, argv: list[str], action: str,
                                                                passes: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    guard["argv"] = argv
    monkeypatch.setenv("DPKG_HOOK_ACTION", action)
    assert stage("dpkg-pre-invoke") == (0 if passes else hook.EXIT_REFUSED)
    assert guard["asked"] == (0 if passes else 1)
    assert store.read_verdict(KEY)[0] == (store.SELF_REMOVAL if passes else store.REFUSED)


def test_the_rule_itself() -> None:
    assert selfremove.names_us(["apt-get", "purge", "upgrader"])
    assert selfremove.names_us(["apt-get", "install", "upgrader=0.2.0", "upgrader/bookworm"])
    assert not selfremove.names_us(["apt-get", "purge", "upgrader-tools", "rolling-upgrader"])
    assert not selfremove.names_us(["upgrader", "dist-upgrade"])  # argv[0] is the program
    assert not selfremove.names_us([])
    remove = pkgs.parse(REMOVE_US)
    assert selfremove.only_removes_us(remove)
    assert not selfremove.only_removes_us(pkgs.parse(REMOVE_US_AND_MORE))
    assert not selfremove.only_removes_us(pkgs.parse(HEAD + "upgrader 0.1.0 all none < 0.2.0 all none /x.deb\n"))
    assert not selfremove.only_removes_us([])
    assert selfremove.command_line(-1) == []
    assert selfremove.command_line(os.getpid())[0].endswith(("python", "python3", "pytest")) or \
        "pytest" in " ".join(selfremove.command_line(os.getpid()))
