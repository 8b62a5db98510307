"""Pure parts of the guard and the package planner: no cluster, no apt run."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from upgrader import runkey
from upgrader.guard import pkgs, store
from upgrader.guard.decide import judge
from upgrader.guard.install import install, uninstall, wrapper
from upgrader.packages.after import _release_key, stale_processes
from upgrader.packages.plan import is_ha_stack, is_security
from upgrader.pacemaker.state import parse_crm_mon
from upgrader.runner import Runner

DATA = Path(__file__).parents[1] / "pacemaker" / "data"
V3 = """VERSION 3
APT::Architecture=amd64
DPkg::Tools::Options::X::Version=3

demo-libfoo 1 amd64 none < 2 all none /srv/repo/pool/lab/demo-libfoo_2_all.deb
newpkg - - none < 1.0 amd64 same /srv/repo/pool/lab/newpkg_1.0_amd64.deb
oldpkg 3.1 amd64 none > - - none **REMOVE**
demo-libfoo 1 amd64 none < 2 all none **CONFIGURE**
"""


def test_pre_install_pkgs_v3_lines_become_changes() -> None:
    changes = pkgs.parse(V3)
    assert [(c.name, c.old, c.new, c.action) for c in changes] == [
        ("demo-libfoo", "1", "2", "unpack"), ("newpkg", None, "1.0", "unpack"),
        ("oldpkg", "3.1", None, "remove"), ("demo-libfoo", "1", "2", "configure")]
    merged = pkgs.merge(changes)
    assert [(c.name, c.old, c.new, c.action) for c in merged] == [
        ("demo-libfoo", "1", "2", "unpack"), ("newpkg", None, "1.0", "unpack"), ("oldpkg", "3.1", None, "remove")]
    assert all(pkgs.PackageAction.from_tsv(c.tsv()) == c for c in changes)


@pytest.mark.parametrize("text, says", [
    ("demo-libfoo 1 < 2 /x.deb\n", "not 'VERSION 3'"),
    ("VERSION 3\nA=b\n", "no blank line"),
    ("VERSION 3\n\ndemo-libfoo 1 < 2 /x.deb\n", "5 fields, not 9"),
])
def test_other_protocols_are_refused_with_a_hint(text: str, says: str) -> None:
    with pytest.raises(pkgs.ProtocolError, match=says):
        pkgs.parse(text)


def test_run_key_names_the_frontend_lock_holder_and_its_start_time(tmp_path: Path) -> None:
    path = tmp_path / "lock-frontend"
    path.touch()
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    child = os.fork()
    if child == 0:
        fd = os.open(path, os.O_RDWR)
        fcntl.lockf(fd, fcntl.LOCK_EX)
        os.write(ready_w, b"x")
        os.read(done_r, 1)
        os._exit(0)
    try:
        os.read(ready_r, 1)
        assert runkey.lock_holder(str(path)) == child
        key = runkey.key_of(child)
        assert key == f"{child}-{runkey.start_time(child)}" and runkey.alive(key)
    finally:
        os.write(done_w, b"x")
        os.waitpid(child, 0)
    assert runkey.lock_holder(str(path)) is None
    assert not runkey.alive(key)
    assert runkey.lock_holder(str(tmp_path / "missing")) is None


def test_verdict_is_cached_per_run_and_a_refusal_is_left_for_the_caller(tmp_path: Path) -> None:
    root = str(tmp_path)
    assert store.read_verdict("10-5", root) is None
    store.write_verdict("10-5", store.ALLOWED, "node1 drained", root)
    store.write_verdict("11-7", store.REFUSED, "refused: node1 is active (runs app1)", root)
    assert store.read_verdict("10-5", root) == ("allowed", "node1 drained")
    assert store.refusal_for("11-7", root) == "refused: node1 is active (runs app1)"
    assert store.refusal_for("10-5", root) is None
    assert (tmp_path / "run/upgrader/refusal").read_text() == "11-7\trefused: node1 is active (runs app1)\n"
    assert store.claim("10-5", "finisher", root) and not store.claim("10-5", "finisher", root)
    store.event("10-5", "pre-invoke", "cached-allowed", 'say "hi"', root)
    assert '"detail": "say \\"hi\\""' in (tmp_path / "var/log/upgrader/hooks.jsonl").read_text()


def test_judge_allows_only_a_drained_standby_node_in_a_quorate_cluster() -> None:
    standby = parse_crm_mon((DATA / "crm_mon-standby-node1.xml").read_text())
    online = parse_crm_mon((DATA / "crm_mon-all-online.xml").read_text())
    assert judge(standby, "node1") is None
    refusal = judge(online, "node1")
    assert refusal is not None and refusal.startswith("refused: node1 is active (runs ")
    assert refusal.endswith("; put it in standby or run rolling-upgrade")
    assert "is not a node of this cluster" in (judge(online, "node9") or "")


@pytest.mark.parametrize("name, ha", [
    ("pacemaker", True), ("pacemaker-cli-utils", True), ("corosync", True), ("libqb100", True),
    ("libknet1", True), ("resource-agents", True), ("crmsh", True), ("pcs", True), ("libcrmcommon34", True),
    ("libcorosync-common4", True), ("libpe-status28", True), ("demo-libfoo", False), ("libc6", False),
    ("openssl", False), ("lxc", False), ("pcscd", False), ("sbd", True), ("libcfg7", True),
])
def test_ha_stack_classification(name: str, ha: bool) -> None:
    assert is_ha_stack(name) is ha


def test_security_comes_from_the_candidate_archive() -> None:
    assert is_security(["bookworm-security"]) and is_security(["lab", "lab-security"])
    assert not is_security(["bookworm", "bookworm-updates"]) and not is_security([])


def test_install_writes_snippets_and_a_wrapper_that_skips_a_removed_tool(tmp_path: Path) -> None:
    written = install(tmp_path, python="/nonexistent/python3")
    assert (tmp_path / "etc/apt/apt.conf.d/20rolling-upgrade-hooks").exists()
    assert (tmp_path / "etc/dpkg/dpkg.cfg.d/rolling-upgrade").exists()
    hook = tmp_path / "usr/local/lib/upgrader/rolling-upgrade-hook"
    assert hook in written and os.access(hook, os.X_OK)
    assert Runner(timeout=10).call([str(hook), "pre-invoke"]).returncode == 0  # interpreter gone: exit 0
    assert "-sSE" in wrapper("/venv/bin/python3", Path("/src"))
    assert (tmp_path / "etc/cron.d/rolling-upgrade").exists()
    assert (tmp_path / "etc/logrotate.d/upgrader").exists()
    assert (tmp_path / "usr/local/sbin/rolling-upgrade").readlink() == Path("/nonexistent/rolling-upgrade")
    assert len(uninstall(tmp_path)) == len(written) and not hook.exists()


def test_kernel_releases_sort_by_number_and_stale_scan_runs() -> None:
    assert max(["6.1.0-9-amd64", "6.1.0-27-amd64"], key=_release_key) == "6.1.0-27-amd64"
    assert all(p.files for p in stale_processes())


def test_the_peers_are_corosyncs_nodelist_and_this_node_is_the_one_named_like_the_host() -> None:
    from upgrader.guard.peer import nodelist, this_node
    from upgrader_lab.cluster import corosync_conf
    from upgrader_lab.layout import Lab

    text = corosync_conf(Lab(name="peer", nodes=3))  # what the lab writes into every node, as production has it
    assert nodelist(text) == ["node1", "node2", "node3"]
    assert this_node(nodelist(text), "node2") == "node2"
    assert this_node(nodelist(text), "node2.example.org") == "node2"
    assert this_node(nodelist(text), "other") is None


def test_an_apt_run_on_a_quarantined_node_in_standby_is_refused_naming_the_quarantine() -> None:
    from upgrader.guard.decide import decide
    from upgrader.runs import QUARANTINE
    from upgrader.pacemaker.state import parse_crm_mon

    state = parse_crm_mon((DATA / "crm_mon-standby-node1.xml").read_text())  # captured: node1 drained
    assert state.node("node1").standby

    class Quarantined:
        def local_node(self) -> str:
            return "node1"

        def state(self, timeout: float | None = None):
            return state

        def get_attribute(self, node: str, name: str, lifetime: str = "forever") -> str | None:
            return "run 20261130T000000-node2-aaaaaa at 2026-11-30T00:10:00Z" if name == QUARANTINE else None

    decision = decide(Quarantined(), "apt-123-456", 600, from_orchestrator=False)  # type: ignore[arg-type]
    assert not decision.allowed
    assert decision.reason == ("refused: node1 is quarantined (run 20261130T000000-node2-aaaaaa at "
                               "2026-11-30T00:10:00Z): a run found it unhealthy after its upgrade; fix it, then "
                               "clear it with 'rolling-upgrade unquarantine node1'")


def test_state_files_are_private_whatever_the_umask_and_a_planted_verdict_is_no_verdict(tmp_path: Path) -> None:
    root = str(tmp_path)
    old = os.umask(0)
    try:
        store.write_verdict("1-2", store.REFUSED, "refused: a test", root=root)
    finally:
        os.umask(old)
    run = Path(store.run_dir("1-2", root))
    assert {oct(p.stat().st_mode & 0o777) for p in (run, run.parent, Path(root + store.RUN_DIR))} == {"0o700"}
    assert oct((run / "verdict").stat().st_mode & 0o777) == "0o600"
    assert store.read_verdict("1-2", root) == (store.REFUSED, "refused: a test")
    # Another owner's verdict, one others may write, or a symlink is no verdict: the guard decides again.
    (run / "verdict").chmod(0o666)
    assert store.read_verdict("1-2", root) is None
    (run / "verdict").chmod(0o600)
    os.chown(run / "verdict", 65534, 65534)
    assert store.read_verdict("1-2", root) is None
    planted = tmp_path / "planted"
    planted.write_text("allowed\tplanted\n")
    (run / "verdict").unlink()
    (run / "verdict").symlink_to(planted)
    assert store.read_verdict("1-2", root) is None
    # A run directory another user could write is refused before anything is written into it.
    run.chmod(0o777)
    with pytest.raises(PermissionError, match="is not upgrader's own directory"):
        store.write_verdict("1-2", store.ALLOWED, "x", root=root)


def test_the_event_log_never_stops_a_hook(tmp_path: Path) -> None:
    (tmp_path / "var").write_text("a file where the log's directory should be")
    store.event("1-2", "pre-invoke", "allowed", root=str(tmp_path))  # no exception: the line is lost, no more


def test_the_logs_upgrader_writes_are_not_for_every_local_user(tmp_path: Path) -> None:
    from upgrader.syslog import note

    old = os.umask(0)
    try:
        note("run x: allowed", root=str(tmp_path), log_file="/var/log/upgrader/window.log")
    finally:
        os.umask(old)
    written = tmp_path / "var/log/upgrader/window.log"
    assert written.read_text().endswith("run x: allowed\n")
    assert oct(written.stat().st_mode & 0o777) == "0o640"


def test_the_finishing_step_is_the_venvs_command_else_the_packages(tmp_path: Path) -> None:
    from upgrader.guard.finish import PACKAGED_COMMAND, finish_command

    venv = tmp_path / "bin"
    venv.mkdir()
    (venv / "python3").touch()
    assert finish_command(str(venv / "python3")) == [PACKAGED_COMMAND, "node", "--finish"]
    assert PACKAGED_COMMAND == "/usr/sbin/rolling-upgrade"
    (venv / "rolling-upgrade").touch()
    assert finish_command(str(venv / "python3")) == [str(venv / "rolling-upgrade"), "node", "--finish"]


def test_a_failed_apt_run_with_the_stack_stopped_marks_its_lock_through_a_peer(monkeypatch: pytest.MonkeyPatch) -> None:
    """dpkg failed while this node's stack was stopped (the guard asked a peer): the local cluster cannot
    answer, so the lock's dpkg-failed mark goes through a peer, as the guard's own questions did."""
    from upgrader.guard import finish, peer
    from upgrader.pacemaker import lock
    from upgrader.runner import CommandError, Result

    marked: list[tuple[str, str]] = []

    class Lock:
        def __init__(self, cluster: object, run_id: str, node: str) -> None:
            self.where = getattr(cluster, "name", "local")

        def heartbeat(self, phase: str) -> None:
            if self.where == "local":  # the stack is stopped here
                raise CommandError(Result(("cibadmin",), 102, "", "Could not connect to the CIB", 0.1))
            marked.append((self.where, phase))

    class PeerCluster:
        name = "node1"

    monkeypatch.setattr(lock, "UpgradeLock", Lock)
    monkeypatch.setattr(peer, "ask_a_peer", lambda conf, timeout: type("P", (), {"cluster": PeerCluster(),
                                                                                 "name": "node1"})())
    finish._mark_failed({"run_id": "apt-12-34", "node": "node2", "via": "node1"}, conf=None)
    assert marked == [("node1", "dpkg-failed")]
    marked.clear()
    finish._mark_failed({"run_id": "apt-12-34", "node": "node2"}, conf=None)  # stack not stopped: no peer asked
    assert marked == []
