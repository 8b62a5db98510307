"""Put a fault lab back to a healthy, unlocked cluster between scenarios (instead of rebuilding it)."""

from __future__ import annotations

import sys
from pathlib import Path

from upgrader_lab import lab as ops
from upgrader_lab import network, node
from upgrader_lab.layout import Lab
from upgrader.orchestrator import steering
from upgrader.pacemaker import holds, lock
from upgrader.pacemaker.live import Cluster

TEST_SETTINGS = "/etc/apt/apt.conf.d/61upgrader-fault"  # settings a scenario writes; always removed here
TOOL = str(Path(sys.executable).parent / "rolling-upgrade")
DPKG_WAIT = 100.0  # seconds a package manager left running by a scenario (a lost apply) may still take
FORM = 90.0
SERVE = 120.0


def restore(lab: Lab) -> None:
    """Every node powered, linked and online; no lock, mark, hold, constraint or failure; every application
    serving."""
    for n in lab.node_names:
        if node.running(lab, n):
            network.set_link(lab.host_veth(n), up=True)
        else:  # powered off (a power cut, or fenced): a boot brings a fresh link with it
            ops.boot(lab, n, timeout=FORM)
    ops.wait_formed(lab, FORM)
    for n in lab.node_names:
        inside = node.runner(lab, n, timeout=120)
        inside.run(["rm", "-f", TEST_SETTINGS])
        # A scenario may leave a package manager still at work (an apply that lost its controller): let it end.
        busy = inside.call([TOOL, "dpkg-state", "--wait", str(DPKG_WAIT)])
        if busy.returncode == 124:
            raise AssertionError(f"restore: {n}: {busy.stdout.strip()}")
        # A scenario may leave dpkg half done: repair it as an operator would (guard off: we own it). Only
        # then: a dpkg run on a node fires the guard's hooks, whose finishing step would start a run of its own.
        if inside.run(["dpkg", "--audit"]).stdout.strip():
            inside.with_env(UPGRADER_GUARD="off").run(["dpkg", "--configure", "-a"])
    cluster = Cluster(node.runner(lab, "node1", timeout=30))
    lock.force_unlock(cluster)
    for n in lab.node_names:
        steering.clear_quarantine(cluster, n)
        cluster.set_standby(n, False)
    steering.clean_up(cluster, lab.node_names)  # every node online now: their waiting marks go too
    holds.clear(cluster)  # what a fail back held back, and every node's pins of it
    for n in lab.node_names:
        node.runner(lab, n, timeout=60).run([TOOL, "holds", "--sync"])
    cluster.runner.run(["crm_resource", "--cleanup"])
    cluster.wait_settled(deadline=FORM)
    ops.wait_serving(lab, SERVE)
