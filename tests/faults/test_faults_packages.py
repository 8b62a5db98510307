"""Package faults: the repository gone at download time, the node's disk full while dpkg unpacks.

dpkg failing in a postinst (``--broken-postinst``) is covered by
tests/lab/test_rollout.py::test_broken_postinst_keeps_the_node_in_standby.
"""

from __future__ import annotations

import pytest

from tests.lab.helpers import fresh_version, rolling, versions_served
from upgrader_lab import lab as ops
from upgrader_lab import node
from upgrader_lab.layout import PACKAGE, Lab

pytestmark = pytest.mark.lab
LAB_SUFFIX = "fp"
SHARE = f"/usr/share/{PACKAGE}"


def test_repository_gone_at_download_leaves_the_node_unchanged_and_online(healthy: Lab, nothing_lost) -> None:
    version = fresh_version(healthy)  # every node's index lists it ...
    pool, gone = healthy.repo_dir / "pool", healthy.repo_dir / "pool.gone"
    pool.rename(gone)  # ... but the files are gone, as when a mirror breaks mid-sync
    try:
        before = versions_served(healthy)
        code, doc = rolling(healthy, "run", "--yes")
    finally:
        gone.rename(pool)
    assert code == 4, doc
    failed = [n for n in doc["nodes"] if n["result"] == "failed"]
    assert len(failed) == 1 and "failed before dpkg ran" in failed[0]["error"], doc
    assert all(ops.installed_version(healthy, n) != version for n in healthy.node_names)
    assert versions_served(healthy) == before
    nothing_lost(healthy, run=doc["run"], told=[("upgrade", "end"), ("run", "note"), ("run", "end")])


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
