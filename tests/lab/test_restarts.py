"""Restarting a drained node on a real cluster: its cluster stack around an upgrade of the stack, and reboots.

The lab's nodes play systemd for these (upgrader_lab.power: their process 1
stops and starts corosync and pacemakerd, or reboots the node: every process
ended, /run and /tmp fresh, the stack started again).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import private_lab
from tests.lab.helpers import (TOOL, history, rolling, run_leftovers, standby_nodes, start_run,
                               versions_served, wait_for_phase)
from upgrader_lab import lab as ops
from upgrader_lab import node, repo
from upgrader_lab.layout import PACKAGE, Lab
from upgrader.pacemaker import lock
from upgrader.pacemaker.live import Cluster

pytestmark = pytest.mark.lab

REBOOT_ON = "/etc/apt/apt.conf.d/61rolling-upgrade-reboot"
STOP_FAILS = "/etc/apt/apt.conf.d/61rolling-upgrade-stop-fails"


@pytest.fixture(scope="module")
def slab() -> Iterator[Lab]:
    """A lab of its own: these tests stop stacks and reboot nodes."""
    with private_lab("s") as the_lab:
        yield the_lab


def inside(lab: Lab, n: str, *argv: str) -> subprocess.CompletedProcess:
    result = node.runner(lab, n, timeout=60).call(list(argv))
    return subprocess.CompletedProcess(argv, result.returncode, result.stdout, result.stderr)


def boots(lab: Lab, n: str) -> int:
    """How often the node's process 1 rebooted it (its log says so each time)."""
    return (lab.node_dir(n) / "init.log").read_text().count("init: rebooted")


def host_policy() -> str | None:
    path = Path("/usr/sbin/policy-rc.d")
    return path.read_text() if path.exists() else None


def test_an_upgrade_of_the_cluster_stack_runs_with_the_stack_stopped_on_each_node(slab: Lab) -> None:
    repo.publish(slab.repo_dir, "2", ha_stack=True)
    ops.refresh_indexes(slab)
    code, doc = rolling(slab, "run", "--yes")  # from node1: its own stack goes down last, the cluster asked on a peer
    assert code == 0, doc
    assert {n["node"]: n["result"] for n in doc["nodes"]} == {n: "ok" for n in slab.node_names}
    for n in slab.node_names:
        # What the stack package's postinst saw: no corosync/pacemakerd running, our policy-rc.d in place,
        # and it forbade starting pacemaker (invoke-rc.d pacemaker start then does nothing).
        log = inside(slab, n, "cat", repo.HA_LOG).stdout
        assert log.strip() == "configure 2: stack=none policy=rolling-upgrade pacemaker-start=101", (n, log)
        assert ops.installed_version(slab, n) == "2"
        assert inside(slab, n, "dpkg-query", "-W", "-f=${Version}", repo.HA_PACKAGE).stdout == "2"
        # Afterwards: the machine's own policy-rc.d back as it was, no marker, the stack running.
        policy = inside(slab, n, "cat", "/usr/sbin/policy-rc.d")
        assert (policy.stdout if policy.returncode == 0 else None) == host_policy(), n
        assert inside(slab, n, "test", "-e", "/run/upgrader/stack-stopped").returncode == 1
        assert inside(slab, n, "pidof", "corosync", "pacemakerd").returncode == 0
    events = history(slab, doc["run"])
    for n in slab.node_names:
        phases = [e["phase"] for e in events if e.get("node") == n and e["event"] == "start"]
        assert phases[phases.index("stack-stop"):][:2] == ["stack-stop", "stack-start"], phases
    assert standby_nodes(slab) == [] and run_leftovers(slab) == []
    assert versions_served(slab) == {a: "2" for a in slab.app_names}


def test_a_node_that_asks_for_a_reboot_is_rebooted_and_the_one_running_the_run_resumes_at_boot(slab: Lab) -> None:
    for n in slab.node_names:
        node.runner(slab, n).run(["sh", "-c", f"echo 'Rolling-Upgrade::Reboot \"true\";' > {REBOOT_ON}"])
    try:
        before = {n: boots(slab, n) for n in slab.node_names}
        repo.publish(slab.repo_dir, "3", reboot_required=True)
        ops.refresh_indexes(slab)
        run = start_run(slab, "node1")
        out, err = run.communicate(timeout=600)
        # node1 runs the rollout and goes last: its reboot ends the run's process; the lock keeps the run.
        assert run.returncode != 0, (out, err)
        deadline = time.monotonic() + 60  # the run ends as node1's reboot begins; wait for its end
        while boots(slab, "node1") == before["node1"] and time.monotonic() < deadline:
            time.sleep(0.2)
        said = json.loads(out) if out.strip().startswith("{") else {}
        why = [said.get("error")] + [f"{x['node']}: {x['result']} {x['error']}" for x in said.get("nodes", [])]
        assert {n: boots(slab, n) - before[n] for n in slab.node_names} == {n: 1 for n in slab.node_names}, (why, err)
        ops.wait_formed(slab, 120)
        held = lock.read(Cluster(node.runner(slab, "node2")))
        assert held is not None and held.holder == "node1" and held.phase == "reboot", held
        assert standby_nodes(slab, via="node2") == ["node1"]
        # What cron's @reboot entry runs at node1's boot.
        resumed = node.runner(slab, "node1", timeout=300).call([TOOL, "resume"])
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert "node1: back online (it was in phase reboot)" in resumed.stdout, resumed.stdout
        assert standby_nodes(slab) == [] and run_leftovers(slab) == []
        for n in slab.node_names:
            assert ops.installed_version(slab, n) == "3"
            assert inside(slab, n, "test", "-e", "/run/reboot-required").returncode == 1  # gone with the reboot
        assert versions_served(slab) == {a: "3" for a in slab.app_names}
        events = [e for e in history(slab) if e.get("phase") == "reboot" and e["event"] == "start"]
        assert sorted(e["node"] for e in events[-3:]) == slab.node_names
        # Nothing left to resume: a second resume says so and changes nothing.
        again = node.runner(slab, "node1", timeout=300).call([TOOL, "resume"])
        assert again.returncode == 0 and "nothing to resume" in again.stdout, again.stdout + again.stderr
    finally:
        for n in slab.node_names:
            node.runner(slab, n).call(["rm", "-f", REBOOT_ON])


@pytest.mark.parametrize("victim", ["node2", "node1"])  # a peer's stack, then the stack of the node running the run
def test_a_run_killed_while_a_stack_is_stopped_is_rolled_forward_by_the_next_run(slab: Lab, victim: str) -> None:
    version = fresh(slab, ha_stack=True, postinst_sleep=6)
    seen = len(history(slab))
    run = start_run(slab, "node1", "--nodes", victim)
    entry = wait_for_phase(slab, run, seen, "stack-stop", timeout=300)
    assert entry["node"] == victim
    deadline = time.monotonic() + 60  # the stack is down and dpkg runs (its postinst sleeps): kill the run now
    while inside(slab, victim, "pidof", "dpkg").returncode != 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert inside(slab, victim, "pidof", "corosync").returncode == 1
    held = lock.read(Cluster(node.runner(slab, "node3")))  # node1's own stack may be the one down
    assert held is not None and held.pid
    node.runner(slab, "node1").run(["kill", "-KILL", str(held.pid)])
    run.wait(timeout=60)
    assert inside(slab, victim, "test", "-e", "/run/upgrader/stack-stopped").returncode == 0
    # Meanwhile a person's apt run there is refused, naming the run that stopped the stack.
    assert inside(slab, victim, TOOL, "dpkg-state", "--wait", "60").returncode == 0
    person = node.runner(slab, victim, timeout=120).call(["apt-get", "install", "-y", "--reinstall", "demo-libfoo"])
    assert person.returncode == 100 and f"stopped by rolling-upgrade run {entry['run']}" in person.stderr, person
    code, doc = rolling(slab, "run", "--yes")
    assert code == 0, doc
    recovered = "\n".join(doc["recovered"])
    assert f"found run {entry['run']} interrupted" in recovered, recovered
    assert all(ops.installed_version(slab, n) == version for n in slab.node_names)
    for n in slab.node_names:
        assert inside(slab, n, "test", "-e", "/run/upgrader/stack-stopped").returncode == 1
        assert inside(slab, n, "pidof", "corosync", "pacemakerd").returncode == 0
        policy = inside(slab, n, "cat", "/usr/sbin/policy-rc.d")
        assert (policy.stdout if policy.returncode == 0 else None) == host_policy(), n
    assert standby_nodes(slab) == [] and run_leftovers(slab) == []
    assert versions_served(slab) == {a: version for a in slab.app_names}


def fresh(lab: Lab, **build: object) -> str:
    taken = {d.name.split("_")[1] for d in lab.repo_dir.glob("**/*.deb")}
    version = next(str(v) for v in range(2, 1000) if str(v) not in taken)
    repo.publish(lab.repo_dir, version, **build)  # type: ignore[arg-type]
    ops.refresh_indexes(lab)
    return version


def test_a_stack_that_will_not_stop_stops_the_run_before_dpkg_with_the_node_back_online(slab: Lab) -> None:
    version = fresh(slab, ha_stack=True)
    before = ops.installed_version(slab, "node2")
    served = versions_served(slab)
    failing = "sh -c 'echo pacemaker.service: stop job failed >&2; exit 1'"
    inside2 = node.runner(slab, "node2")
    inside2.run(["tee", STOP_FAILS], input=f'Rolling-Upgrade::Stack::Stop "{failing}";\n')
    try:
        code, doc = rolling(slab, "run", "--yes", "--nodes", "node2")
    finally:
        inside2.run(["rm", "-f", STOP_FAILS])
    assert code == 4, doc
    error = {n["node"]: n for n in doc["nodes"]}["node2"]["error"]
    assert error.startswith("stopping the cluster stack on node2 failed: ") and "stop job failed" in error, error
    assert error.endswith("nothing was upgraded, its stack was started again and node2 is back online"), error
    # Nothing was upgraded; the stack runs; no marker, the machine's own policy-rc.d; nothing of the run is left.
    assert ops.installed_version(slab, "node2") == before != version
    assert inside(slab, "node2", "pidof", "corosync", "pacemakerd").returncode == 0
    assert inside(slab, "node2", "test", "-e", "/run/upgrader/stack-stopped").returncode == 1
    policy = inside(slab, "node2", "cat", "/usr/sbin/policy-rc.d")
    assert (policy.stdout if policy.returncode == 0 else None) == host_policy()
    assert lock.read(Cluster(node.runner(slab, "node1"))) is None
    assert standby_nodes(slab) == [] and run_leftovers(slab) == []
    assert versions_served(slab) == served


STACK_SCAN = """import json
from pathlib import Path
from upgrader.packages.after import is_stack_process, mapped_files
from upgrader.packages.patched import stale_mappings
pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and is_stack_process(p)]
print(json.dumps({"pids": len(pids), "mapped": sorted(mapped_files(only=is_stack_process)),
                  "stale": [str(s) for s in stale_mappings(pids)]}))
"""


def stack_scan(lab: Lab, n: str) -> dict:
    """In node ``n``: how many stack daemons run, what they map, and which of them map an old file."""
    got = node.runner(lab, n, timeout=60).run([sys.executable, "-c", STACK_SCAN])
    return json.loads(got.stdout)


def test_a_library_the_running_stack_maps_is_upgraded_with_the_stack_restarted(slab: Lab) -> None:
    """demo-libfoo is no cluster-stack package by name, but corosync and every pacemaker daemon load its
    library: its upgrade stops the stack around dpkg, and no stack process is left on the old file."""
    library = f"/usr/lib/{PACKAGE}/{repo.LIBRARY_NAME}"
    for n in slab.node_names:  # read at every stack start (upgrader_lab.node_init.STACK_PRELOAD)
        node.runner(slab, n).run(["install", "-D", "-m", "0644", "/dev/stdin", "/etc/upgrader-lab/stack-preload"],
                                 input=library + "\n")
    fresh(slab, ha_stack=True)  # an upgrade of the stack itself: every node's stack restarts, now loading it
    code, doc = rolling(slab, "run", "--yes")
    assert code == 0, doc
    for n in slab.node_names:
        scan = stack_scan(slab, n)
        assert scan["pids"] >= 7 and library in scan["mapped"] and scan["stale"] == [], (n, scan)
    version = fresh(slab)  # demo-libfoo alone
    for n in slab.node_names:
        plan = json.loads(node.runner(slab, n, timeout=180).run([TOOL, "plan", "--local", "--json"]).stdout)
        assert plan["ha_stack"] == [PACKAGE], (n, plan)
    code, doc = rolling(slab, "run", "--yes")
    assert code == 0, doc
    for n in slab.node_names:
        assert ops.installed_version(slab, n) == version
        scan = stack_scan(slab, n)
        assert library in scan["mapped"] and scan["stale"] == [], (n, scan)
