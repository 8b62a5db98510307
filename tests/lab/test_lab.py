"""The lab itself: a real cluster, real containers, a real APT repository."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import lab_name
from upgrader_lab import lab as ops
from upgrader_lab import node, repo
from upgrader_lab.client import LabClient
from upgrader_lab.layout import Lab
from upgrader.pacemaker.live import Cluster, drained

pytestmark = pytest.mark.lab


def crm(lab: Lab, n: str, *argv: str) -> str:
    return node.runner(lab, n).run(list(argv)).stdout


def test_every_node_online_with_a_dc(lab: Lab) -> None:
    for n in lab.node_names:
        v = ops.view(lab, n)
        assert v.online == set(lab.node_names)
        assert v.dc in lab.node_names


def test_every_application_answers_version_1_on_its_floating_ip(lab: Lab, client: LabClient) -> None:
    for app in lab.app_names:
        answer = client.get(lab.app_ip(app), "/version")
        assert (answer.status, answer.body) == (200, "1"), app
        assert client.get(lab.app_ip(app), "/health").status == 200


def test_each_app_container_runs_on_its_node(lab: Lab) -> None:
    placement = ops.view(lab).placement
    for app in lab.app_names:
        (where,) = placement[app]
        state = crm(lab, where, "lxc-info", "-n", lab.container(app), "-s")
        assert "RUNNING" in state


def test_standby_moves_applications_and_they_answer_again(lab: Lab, client: LabClient) -> None:
    before = ops.view(lab).placement
    target = before["app1"][0]
    moved = [a for a, nodes in before.items() if target in nodes]
    crm(lab, target, "crm_attribute", "--node", target, "--name", "standby", "--update", "on")
    try:
        # The apps may still answer from target before the move starts: wait for the cluster to have moved them.
        Cluster(node.runner(lab, target, timeout=30)).wait_settled(drained(target, tuple(moved)), deadline=60)
        # moved off target and answering, in one reading (a second look could meet a recovery in between)
        answers = ops.wait_serving(lab, 60, on=[n for n in lab.node_names if n != target])
        assert set(answers.values()) == {"1"}, answers
        assert all(client.get(lab.app_ip(a), "/version").body == "1" for a in lab.app_names)
    finally:
        crm(lab, target, "crm_attribute", "--node", target, "--name", "standby", "--update", "off")
    ops.wait_serving(lab, 60)


def test_publish_is_visible_to_apt_in_a_node(lab: Lab) -> None:
    repo.publish(lab.repo_dir, "1.1")
    refreshed = ops.refresh_indexes(lab)
    assert refreshed == lab.node_names
    sim = crm(lab, "node2", "apt-get", "-s", "dist-upgrade")
    assert "Inst demo-libfoo [1] (1.1 upgrader-lab:lab" in sim
    # Simulated only: every node still has version 1, and the host's dpkg is untouched.
    assert all(ops.installed_version(lab, n) == "1" for n in lab.node_names)
    host = subprocess.run(["dpkg-query", "-W", repo.PACKAGE], capture_output=True, text=True)
    assert host.returncode != 0


def test_publish_security_lands_in_the_security_suite(lab: Lab) -> None:
    repo.publish(lab.repo_dir, "1.2", security=True)
    ops.refresh_indexes(lab)
    policy = crm(lab, "node1", "apt-cache", "policy", repo.PACKAGE)
    assert "Candidate: 1.2" in policy
    assert "lab-security/main" in policy
    assert repo.published(lab.repo_dir)["lab-security"] == "1.2"


def _leftovers(name: str) -> list[str]:
    """Checked with the system's own tools, independently of the lab's code."""
    found = []
    ps = subprocess.run(["ps", "-eo", "pid,stat,args"], capture_output=True, text=True).stdout
    found += [line for line in ps.splitlines()
              if f"--lab {name} " in line and "node_init" in line and " Z" not in line]
    mounts = Path("/proc/mounts").read_text()
    found += [line for line in mounts.splitlines() if f"/upgrader-lab/{name}/" in line]
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found += [line for line in netns.splitlines() if line.startswith(f"{name}-")]
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    found += [line for line in links.splitlines() if f" {name}-" in line]
    found += [str(p) for p in Path("/sys/fs/cgroup").glob(f"*/lxc.*.{name}-*")]
    if Path("/var/lib/upgrader-lab", name).exists():
        found.append(f"/var/lib/upgrader-lab/{name}")
    return found


def test_power_cut_boot_and_down_leave_nothing() -> None:
    name = lab_name("x")
    try:
        small, _ = ops.up(name, nodes=2, apps=1)
        where = ops.view(small).placement["app1"][0]
        other = next(n for n in small.node_names if n != where)
        ops.power_cut(small, where)
        assert not node.running(small, where)
        answers = ops.wait_serving(small, 60, on=[other])
        assert answers == {"app1": "1"}
        ops.boot(small, where)
        assert ops.view(small, other).online == set(small.node_names)
        ops.cut(small, other)
        ops.heal(small, other)
        assert _leftovers(name)  # while up, the checker does see the lab
    finally:
        ops.down(name)
    assert _leftovers(name) == []
    assert ops.down(name) == []  # idempotent: a second down finds nothing


def test_down_cleans_up_after_an_interrupted_up() -> None:
    name = lab_name("i")
    broken = Lab(name=name, nodes=2, apps=1, slice=ops.free_slice(name))
    try:
        broken.save()
        repo.index(broken.repo_dir)
        ops.network.create_bridge(broken)
        for n in broken.node_names:
            node.prepare(broken, n, b"k" * 256)
            node.power_on(broken, n, hold=True)  # held: no cluster stack, like an 'up' cut short
        (broken.node_dir("node1") / "init.pid").unlink()  # and a PID file lost on the way
        assert _leftovers(name)
    finally:
        ops.down(name)
    assert _leftovers(name) == []
