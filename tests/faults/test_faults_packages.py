"""Package faults: the repository gone at download time, the node's disk full while dpkg unpacks, an apt
run killed holding the lock, a quarantined node's apt run, the history's file system full mid-run.

dpkg failing in a postinst (``--broken-postinst``) is covered by
tests/lab/test_rollout.py::test_broken_postinst_keeps_the_node_in_standby.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from tests.lab.helpers import HISTORY, TOOL, fresh_version, history, rolling, start_run, versions_served, wait_for_phase
from upgrader_lab import lab as ops
from upgrader_lab import node
from upgrader_lab.layout import PACKAGE, Lab
from upgrader.orchestrator import steering
from upgrader.pacemaker import lock
from upgrader.pacemaker.live import Cluster, drained

pytestmark = pytest.mark.lab
LAB_SUFFIX = "fp"
SHARE = f"/usr/share/{PACKAGE}"
FILL_LAST_PAGE = """import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
try:
    while True:
        os.write(fd, b"\\n")
except OSError:
    pass
"""


def test_repository_gone_at_download_refuses_at_staging_with_nothing_drained(healthy: Lab, nothing_lost) -> None:
    """Every node stages the run's package set before the first drain: a mirror gone at download time
    refuses the run there, with no node drained and no package changed."""
    version = fresh_version(healthy)  # every node's index lists it ...
    pool, gone = healthy.repo_dir / "pool", healthy.repo_dir / "pool.gone"
    pool.rename(gone)  # ... but the files are gone, as when a mirror breaks mid-sync
    try:
        before = versions_served(healthy)
        code, doc = rolling(healthy, "run", "--yes")
    finally:
        gone.rename(pool)
    assert code == 3, doc
    assert doc["refused"].startswith("refused: staging the run's package set failed, nothing was drained"), doc
    assert "downloading failed" in doc["refused"], doc
    assert all(ops.installed_version(healthy, n) != version for n in healthy.node_names)
    assert versions_served(healthy) == before
    nothing_lost(healthy, run=doc["run"], told=[("stage", "note"), ("run", "end")])


def test_disk_full_while_dpkg_unpacks_quarantines_that_node_only(healthy: Lab, nothing_lost) -> None:
    fresh_version(healthy)
    victim = "node2"  # the first node a run from node1 upgrades
    inside = node.runner(healthy, victim)
    # A tiny file system over the package's directory, its files copied in, then filled to the last block.
    inside.run(["cp", "-a", SHARE, "/tmp/share-copy"])
    inside.run(["mount", "-t", "tmpfs", "-o", "size=64k", "fault-full", SHARE])
    try:
        inside.run(["cp", "-a", "/tmp/share-copy/.", SHARE])
        inside.call(["dd", "if=/dev/zero", f"of={SHARE}/.filler", "bs=4k"])
        before = versions_served(healthy)
        code, doc = rolling(healthy, "run", "--yes")
        assert code == 4, doc
        failed = [n for n in doc["nodes"] if n["result"] == "failed"]
        assert [n["node"] for n in failed] == [victim], doc
        assert "No space left on device" in failed[0]["error"], doc
        assert versions_served(healthy) == before  # the peers are untouched
        nothing_lost(healthy, quarantined=[victim], run=doc["run"], told=[("upgrade", "end"), ("quarantine", "note")])
    finally:
        inside.run(["umount", SHARE])
    assert node.runner(healthy, victim).run(["dpkg", "--audit"]).stdout.strip() == ""  # dpkg undid the unpack


def test_an_apt_run_killed_holding_the_lock_is_finished_by_the_next_run(healthy: Lab, nothing_lost) -> None:
    """apt-get, dpkg and its postinst killed at once on a standby node: its lock is an ended run's, asked
    there; the next run from another node repairs dpkg, brings the node back and upgrades the rest."""
    version = fresh_version(healthy, postinst_sleep=8)
    victim = "node2"
    cluster = Cluster(node.runner(healthy, "node1", timeout=30))
    cluster.set_standby(victim, True)
    cluster.wait_settled(drained(victim, tuple(healthy.app_names)), deadline=90)
    # No pty: apt-get, dpkg and the maintainer script stay in the process group we start, all killed at once.
    apt = subprocess.Popen(node.exec_argv(healthy, victim, ["apt-get", "-o", "Dpkg::Use-Pty=0", "dist-upgrade", "-y"]),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(node.NODE_ENV),
                           start_new_session=True)
    inside = node.runner(healthy, victim)
    try:
        deadline = time.monotonic() + 120
        while inside.call(["dpkg-query", "-W", "-f=${Status}", PACKAGE]).stdout.split()[-1:] != ["half-configured"]:
            assert apt.poll() is None and time.monotonic() < deadline, "the apt run never reached its postinst"
            time.sleep(0.2)
    finally:
        os.killpg(apt.pid, signal.SIGKILL)
        apt.wait(timeout=30)
    held = lock.read(cluster)
    assert held is not None and held.run_id.startswith("apt-") and held.holder == victim, held
    assert inside.run(["dpkg", "--audit"]).stdout.strip()  # dpkg was interrupted half-way
    said = inside.call([TOOL, "run-state", held.run_id])
    assert said.stdout.strip() == "ended", (said, inside.call(["ps", "-eo", "pid,pgid,stat,args"]).stdout)
    code, doc = rolling(healthy, "run", "--yes")
    assert code == 0, (doc.get("refused"), doc.get("recovered"), doc)
    assert any(f"found apt run {held.run_id} on {victim} ended without its finishing step" in line
               for line in doc["recovered"]), doc
    assert all(ops.installed_version(healthy, n) == version for n in healthy.node_names)
    assert inside.run(["dpkg", "--audit"]).stdout.strip() == ""
    nothing_lost(healthy, run=doc["run"])


def test_a_quarantined_nodes_apt_run_is_refused_naming_the_quarantine(healthy: Lab, nothing_lost) -> None:
    version = fresh_version(healthy)
    victim = "node3"
    cluster = Cluster(node.runner(healthy, "node1", timeout=30))
    cluster.set_standby(victim, True)
    cluster.wait_settled(drained(victim, tuple(healthy.app_names)), deadline=90)
    steering.quarantine(cluster, victim, "fault-test", "2026-12-01T00:00:00Z")
    try:
        got = node.runner(healthy, victim, timeout=300).call(["apt-get", "dist-upgrade", "-y"])
        assert got.returncode != 0, got
        said = got.stdout + got.stderr
        assert "quarantined" in said and f"rolling-upgrade unquarantine {victim}" in said, said
        assert ops.installed_version(healthy, victim) != version
        assert lock.read(cluster) is None
    finally:
        steering.clear_quarantine(cluster, victim)
        cluster.set_standby(victim, False)
    nothing_lost(healthy)


def test_var_full_mid_run_stops_in_one_line_with_the_lock_released(healthy: Lab, nothing_lost) -> None:
    """The history's file system fills up while the first node upgrades: the run stops at its next write
    with a result and one line naming it, that node quarantined, the lock released (not a traceback)."""
    fresh_version(healthy, postinst_sleep=3)
    inside = node.runner(healthy, "node1")
    inside.run(["mkdir", "-p", "/var/lib/upgrader", "/tmp/history-copy"])
    inside.run(["cp", "-a", "/var/lib/upgrader/.", "/tmp/history-copy"])
    inside.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "fault-var-full", "/var/lib/upgrader"])
    try:
        inside.run(["cp", "-a", "/tmp/history-copy/.", "/var/lib/upgrader"])
        seen = len(history(healthy))
        run = start_run(healthy)
        victim = wait_for_phase(healthy, run, seen, "upgrade")["node"]
        inside.call(["dd", "if=/dev/zero", "of=/var/lib/upgrader/.filler", "bs=4k"])
        # The history file's last page may still have room: fill it with blank lines (which readers skip).
        inside.run(["python3", "-c", FILL_LAST_PAGE, HISTORY])
        out, err = run.communicate(timeout=600)
        assert run.returncode == 4, (out, err)
        doc = json.loads(out)
        assert "No space left on device" in (doc["error"] or ""), doc
        assert "Traceback" not in err, err
        # The victim's packages changed and it was not verified: it stays in standby, quarantined, as after
        # any unforeseen error once dpkg ran; the others are untouched
        results = {n["node"]: n["result"] for n in doc["nodes"]}
        assert results == {n: "quarantined" if n == victim else "pending" for n in healthy.node_names}, doc
        nothing_lost(healthy, quarantined=[victim])
    finally:
        inside.call(["umount", "/var/lib/upgrader"])
        inside.call(["rm", "-rf", "/tmp/history-copy"])
