"""The built Debian package on a real cluster: what an operator installs is what runs.

Every node of this lab installs the .deb (``dpkg -i``, its dependencies the machine's own Debian
packages) instead of this tree's tool. The guard, ``run``, the finishing step after an apt run and
the window run from /usr/sbin and /usr/lib/upgrader; purging the package leaves apt working.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import lab_name
from tests.lab.helpers import fresh_version, history, rolling, run_leftovers
from upgrader_lab import lab as ops
from upgrader_lab import node
from upgrader_lab.layout import PACKAGE, Lab
from upgrader_lab.project import PACKAGED_TOOL
from upgrader.pacemaker import lock
from upgrader.pacemaker.live import Cluster, drained

pytestmark = pytest.mark.lab
HOOKS = "/etc/apt/apt.conf.d/20rolling-upgrade-hooks"


@pytest.fixture(scope="module")
def dlab(deb: Path) -> Iterator[Lab]:
    name = lab_name("d")
    try:
        the_lab, _ = ops.up(name, nodes=3, apps=2, deb=deb)
        yield the_lab
    finally:
        ops.down(name)


def tool(lab: Lab, n: str, *argv: str) -> tuple[int, dict]:
    return rolling(lab, *argv, via=n, tool=PACKAGED_TOOL)


def test_every_node_runs_the_package_not_this_tree(dlab: Lab) -> None:
    for n in dlab.node_names:
        inside = node.runner(dlab, n)
        assert inside.run(["dpkg-query", "-W", "-f=${Status}", "upgrader"]).stdout == "install ok installed"
        owner = inside.run(["dpkg-query", "-S", PACKAGED_TOOL]).stdout
        assert owner.startswith("upgrader:"), owner
        where = inside.run(["/usr/bin/python3", "-c", "import upgrader; print(upgrader.__file__)"]).stdout.strip()
        assert where == "/usr/lib/python3/dist-packages/upgrader/__init__.py", where
        assert "/usr/lib/upgrader/rolling-upgrade-hook" in inside.run(["cat", HOOKS]).stdout


def test_the_packaged_guard_run_and_window(dlab: Lab) -> None:
    version = fresh_version(dlab)
    active = sorted(ops.view(dlab).placement[dlab.app_names[0]])[0]
    refused = node.runner(dlab, active, timeout=300).call(["apt-get", "dist-upgrade", "-y"])
    assert refused.returncode == 100 and f"refused: {active} is active" in refused.stderr, refused
    code, doc = tool(dlab, "node1", "window", "--check")  # planned on every node by the packaged command
    assert code == 0 and doc["errors"] == {} and set(doc["changes"]) == set(dlab.node_names), doc
    code, doc = tool(dlab, "node1", "run", "--yes")
    assert code == 0, doc
    assert all(ops.installed_version(dlab, n) == version for n in dlab.node_names)
    assert run_leftovers(dlab) == [] and lock.read(Cluster(node.runner(dlab, "node1"))) is None
    assert [e for e in history(dlab, doc["run"]) if (e["phase"], e["event"]) == ("run", "end")]


def test_an_apt_run_on_a_standby_node_is_finished_by_the_packaged_command(dlab: Lab) -> None:
    version = fresh_version(dlab)
    cluster = Cluster(node.runner(dlab, "node1", timeout=30))
    cluster.set_standby("node2", True)
    cluster.wait_settled(drained("node2", tuple(dlab.app_names)), deadline=90)
    got = node.runner(dlab, "node2", timeout=300).call(["apt-get", "dist-upgrade", "-y"])
    assert got.returncode == 0, got.stderr
    assert ops.installed_version(dlab, "node2") == version
    deadline = time.monotonic() + 120  # the finishing step (/usr/sbin/rolling-upgrade node --finish)

    def finished() -> list[dict]:
        return [h for h in history(dlab, via="node2") if h["phase"] == "apt" and h["node"] == "node2"]

    # The waiter writes its history line once the finishing step has exited, after the step brought node2
    # back and released the lock: waited for with them (CI once read the history in between).
    while cluster.state().node("node2").standby or lock.read(cluster) is not None or not finished():
        assert time.monotonic() < deadline, "the finishing step did not bring node2 back and record it"
        time.sleep(1)
    records = finished()
    assert records[-1]["finish"].endswith("exit 0"), records


def test_purging_the_package_on_an_active_node_leaves_apt_working(dlab: Lab) -> None:
    active = sorted(ops.view(dlab).placement[dlab.app_names[0]])[0]
    inside = node.runner(dlab, active, timeout=300)
    purged = inside.call(["apt-get", "purge", "-y", "upgrader"])
    assert purged.returncode == 0, purged.stdout[-2000:] + purged.stderr[-2000:]
    assert inside.call(["test", "-e", HOOKS]).returncode != 0  # a purged conffile
    assert inside.call(["test", "-e", PACKAGED_TOOL]).returncode != 0
    again = inside.call(["apt-get", "install", "-y", "--reinstall", PACKAGE])
    assert again.returncode == 0, again.stderr  # no guard any more: apt works as on any Debian machine
    assert inside.run(["dpkg", "--audit"]).stdout.strip() == ""
    assert lock.read(Cluster(node.runner(dlab, "node1"))) is None
