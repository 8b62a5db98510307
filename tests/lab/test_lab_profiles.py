"""Lab profiles on real clusters: the seed's DRBD-like shape, the mixed one, and fencing that really cuts power."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import lab_name, private_lab
from upgrader_lab import lab as ops
from upgrader_lab import node, powerswitch, profiles
from upgrader_lab.layout import Lab, LabError
from upgrader.pacemaker.state import ClusterState, parse_crm_mon

pytestmark = pytest.mark.lab

FENCED_WITHIN = 60.0  # cut -> noticed (about 8 s) -> fenced; and a fence request's own bound


def crm_mon(lab: Lab, via: str) -> ClusterState:
    out = node.runner(lab, via, timeout=20).run(["crm_mon", "--one-shot", "--inactive", "--output-as=xml"]).stdout
    return parse_crm_mon(out)


def promoted_on(state: ClusterState, clone: str) -> list[str]:
    return sorted(n for r in state.members(clone) if r.running and r.role in ("Promoted", "Master") for n in r.nodes)


def gone(pid: int) -> bool:
    """Process 1 of a node is gone (a zombie counts: its whole PID namespace is dead)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def wait_until(what: str, timeout: float, done) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out after {timeout:g}s waiting for {what}"
        time.sleep(0.3)


def offline_and_clean(state: ClusterState, target: str) -> bool:
    """Offline and not unclean: the cluster knows it is down (fenced), not merely lost."""
    found = state.node(target)
    return found is not None and not found.online and not found.unclean


def assert_fencing_common(lab: Lab, state: ClusterState) -> None:
    assert state.summary.stonith_enabled is True
    (device,) = state.members(profiles.FENCE_DEVICE)
    assert device.running and device.role == "Started" and device.agent == "stonith:fence_lab"
    assert powerswitch.pid(lab) is not None


def assert_fenced(lab: Lab, target: str, pid: int, survivors: list[str]) -> None:
    """``target``'s process 1 gone, every survivor sees it offline (cleanly: fenced), the apps serve on survivors."""
    wait_until(f"{target}'s process 1 ({pid}) to be gone", FENCED_WITHIN, lambda: gone(pid))
    assert not node.running(lab, target)
    for s in survivors:
        assert node.running(lab, s), f"{s} was fenced too"
        wait_until(f"{s} to see {target} offline and clean", FENCED_WITHIN,
                   lambda s=s: offline_and_clean(crm_mon(lab, s), target))
    # One reading each poll: every app on a survivor, settled, answering (CI once saw app1 placed nowhere on a
    # second look, just after it had served: a recovery right after a start is the cluster's to make).
    answers = ops.wait_serving(lab, 90, on=survivors)
    assert set(answers.values()) == {"1"}, answers


# ---------------------------------------------------------------- seed

def test_seed_profile_shape_and_fencing() -> None:
    with private_lab("p", profile="seed") as lab:
        assert (lab.nodes, lab.profile) == (2, "seed")
        assert Lab.load(lab.name) == lab  # the profile is in lab.json
        assert set(ops.wait_serving(lab, 60).values()) == {"1"}
        state = crm_mon(lab, "node1")
        assert_fencing_common(lab, state)
        assert_seed_shape(lab, state)
        fence_by_stonith_admin(lab, state)
        fence_race_by_a_cut(lab)
    assert leftovers(lab.name) == []


def assert_seed_shape(lab: Lab, state: ClusterState) -> None:
    """Each app runs where its clone is Promoted (the other node Unpromoted), on its mounted overlay root."""
    for app in lab.app_names:
        clone = profiles.drbd_clone(app)
        (where,) = state.running_on(app)
        assert promoted_on(state, clone) == [where], (app, state.members(clone))
        assert {r.role for r in state.members(clone)} == {"Promoted", "Unpromoted"}
        assert state.running_on(clone) == set(lab.node_names)
        mounts = node.runner(lab, where).run(["cat", "/proc/mounts"]).stdout.splitlines()
        ct = lab.container(app)
        (line,) = [m for m in mounts if m.split()[1] == profiles.rootfs(lab, app)]
        assert line.split()[2] == "overlay" and "lowerdir=/var/lib/lxc/host/rootfs" in line
        assert f"upperdir=/var/lib/lxc/{ct}/delta0" in line
        assert "RUNNING" in node.runner(lab, where).run(["lxc-info", "-n", ct, "-s"]).stdout


def fence_by_stonith_admin(lab: Lab, state: ClusterState) -> None:
    """``stonith_admin --fence`` (an "off") from the survivor: it returns once the target's power is off."""
    (target,) = state.running_on("app1")
    (survivor,) = [n for n in lab.node_names if n != target]
    pid = node.init_pid(lab, target)
    assert pid is not None
    node.runner(lab, survivor, timeout=90).run(["stonith_admin", "--fence", target, "--timeout", "60"])
    assert gone(pid), "stonith_admin reported success while the target's process 1 still ran"
    assert_fenced(lab, target, pid, [survivor])
    after = crm_mon(lab, survivor)
    assert all(promoted_on(after, profiles.drbd_clone(a)) == [survivor] for a in lab.app_names)
    ops.boot(lab, target)  # "off" leaves the node off: the lab boots it back
    ops.wait_serving(lab, 90)


def fence_race_by_a_cut(lab: Lab) -> None:
    """Cut node2 off: both sides can reach the power switch, and node1 wins the race every time."""
    pid = node.init_pid(lab, "node2")
    assert pid is not None
    ops.cut(lab, "node2")
    assert_fenced(lab, "node2", pid, ["node1"])


# ---------------------------------------------------------------- mixed

def test_mixed_profile_shape_and_fencing() -> None:
    with private_lab("q", profile="mixed") as lab:
        assert (lab.nodes, lab.profile) == (3, "mixed")
        assert set(ops.wait_serving(lab, 60).values()) == {"1"}
        state = crm_mon(lab, "node1")
        assert_fencing_common(lab, state)
        assert_mixed_shape(lab, state)
        (target,) = state.running_on("app1")
        survivors = [n for n in lab.node_names if n != target]
        pid = node.init_pid(lab, target)
        assert pid is not None
        ops.cut(lab, target)  # the quorate survivors fence it, with "off"
        assert_fenced(lab, target, pid, survivors)
        after = crm_mon(lab, survivors[0])
        assert after.running_on(profiles.CLONE) == set(survivors)
    assert leftovers(lab.name) == []


def assert_mixed_shape(lab: Lab, state: ClusterState) -> None:
    assert all(state.running_on(app) for app in lab.app_names)
    assert state.running_on(profiles.CLONE) == set(lab.node_names)
    assert len(state.running_on(profiles.PINNED)) == 1
    assert state.running_on(profiles.PINNED) <= set(profiles.PINNED_NODES)
    (parked,) = state.members(profiles.PARKED)
    assert (parked.role, parked.active, parked.target_role) == ("Stopped", False, "Stopped")
    (legacy,) = state.members(profiles.UNMANAGED)
    assert legacy.running and not legacy.managed and legacy.nodes == (profiles.UNMANAGED_NODE,)
    assert len(state.running_on(profiles.STICKY)) == 1
    stickiness = node.runner(lab, "node1").run(["crm_resource", "--resource", profiles.STICKY, "--meta",
                                                "--get-parameter", "resource-stickiness"]).stdout.strip()
    assert stickiness == "INFINITY"
    assert not state.failures, state.failures


# ---------------------------------------------------------------- nothing left

def test_an_up_failing_half_way_leaves_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cluster never forms: 'up' tears down what it started, the power controller too."""
    name = lab_name("f")

    def never(lab: Lab, timeout: float, nodes: list[str] | None = None) -> None:
        assert powerswitch.pid(lab) is not None and all(node.running(lab, n) for n in lab.node_names)
        raise LabError("the cluster did not form (on purpose)")

    monkeypatch.setattr(ops, "wait_formed", never)
    try:
        with pytest.raises(LabError, match="on purpose"):
            ops.up(name, profile="seed")
        assert leftovers(name, state=False) == []  # down(keep=True): only the state directory stays
    finally:
        ops.down(name)
    assert leftovers(name) == []


def leftovers(name: str, state: bool = True) -> list[str]:
    """Read with the system's own tools: processes (nodes, the power controller), mounts, netns, links, cgroups."""
    ps = subprocess.run(["ps", "-eo", "pid,stat,args"], capture_output=True, text=True, timeout=10).stdout
    found = [line for line in ps.splitlines() if f"--lab {name}" in line and " Z" not in line
             and ("node_init" in line or "powerswitch" in line)]
    found += [line for line in Path("/proc/mounts").read_text().splitlines() if f"/upgrader-lab/{name}/" in line]
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10).stdout
    found += [line for line in netns.splitlines() if line.startswith(f"{name}-")]
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, timeout=10).stdout
    found += [line for line in links.splitlines() if f" {name}-" in line]
    found += [str(p) for p in Path("/sys/fs/cgroup").glob(f"*/lxc.*.{name}-*")]
    if state and Path("/var/lib/upgrader-lab", name).exists():
        found.append(f"/var/lib/upgrader-lab/{name}")
    return found
