"""Level 4 ("patched") on the real lab: no moved container maps a package file older than its node's.

The demo application maps its package's ``libfoo.so.1`` for as long as it
runs, as a process maps libssl. A container restarted on a fresh overlay of an
upgraded node maps the new one; a container whose own overlay holds a copy of
the old file (a copy-up), or that did not restart, still maps the old content.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.lab.helpers import TOOL, fresh_version, history, rolling, run_leftovers, standby_nodes
from upgrader_lab import lab as ops
from upgrader_lab import node
from upgrader_lab.layout import PACKAGE, Lab
from upgrader_lab.repo import LIBRARY_NAME
from upgrader.orchestrator import steering
from upgrader.pacemaker import lock
from upgrader.pacemaker.live import Cluster

pytestmark = pytest.mark.lab
LIBRARY = f"/usr/lib/{PACKAGE}/{LIBRARY_NAME}"
FAST = "/etc/apt/apt.conf.d/61upgrader-patched-test"


def check_patched(lab: Lab) -> tuple[int, list[dict]]:
    """``rolling-upgrade check --patched --json`` in node1: exit code and its level-4 rows."""
    result = node.runner(lab, "node1", timeout=120).call([TOOL, "check", "--patched", "--json"])
    doc = json.loads(result.stdout)
    return result.returncode, [r for r in doc["results"] if r["level"] == "patched"]


def even_out(lab: Lab) -> None:
    """Every node online, unquarantined, nothing of ours left, every node at the newest version."""
    cluster = Cluster(node.runner(lab, "node1", timeout=30))
    for n in lab.node_names:
        steering.clear_quarantine(cluster, n)
        cluster.set_standby(n, False)
    lock.force_unlock(cluster)
    ops.wait_serving(lab, 90)
    code, doc = rolling(lab, "run", "--yes")
    assert code == 0, doc


@pytest.fixture()
def evened(lab: Lab) -> Iterator[None]:
    node.runner(lab, "node1").run(["tee", FAST], input='Rolling-Upgrade::Health::Timeout "10";\n')
    try:
        yield
    finally:
        node.runner(lab, "node1").run(["rm", "-f", FAST])
        even_out(lab)


def test_a_rolling_upgrade_ends_with_every_container_on_the_patched_library(lab: Lab, evened: None) -> None:
    version = fresh_version(lab)
    code, doc = rolling(lab, "run", "--yes")
    assert code == 0, doc
    assert all(ops.installed_version(lab, n) == version for n in lab.node_names)
    code, rows = check_patched(lab)
    assert code == 0 and len(rows) == len(lab.app_names), rows
    assert all(r["ok"] and r["checked"] for r in rows), rows


def test_a_container_still_mapping_the_old_library_fails_level_4_and_the_run_fails_back(lab: Lab,
                                                                                         evened: None) -> None:
    ct = lab.container("app1")
    copy = f"/var/lib/lxc/{ct}/delta0{LIBRARY}"
    for n in lab.node_names:  # app1's own overlay on every node holds a copy of today's library
        node.runner(lab, n).run(["install", "-D", "-m", "0644", LIBRARY, copy])
    try:
        fresh_version(lab)
        code, doc = rolling(lab, "run", "--yes")
        assert code == 1, doc  # failed back
        assert "still runs old code: python3 (pid" in doc["error"] and f"maps old {LIBRARY}" in doc["error"], doc
        quarantined = [n["node"] for n in doc["nodes"] if n["result"] == "quarantined"]
        assert len(quarantined) == 1 and standby_nodes(lab) == quarantined, doc
        assert [x for x in run_leftovers(lab) if "quarantine" not in x] == []
    finally:
        for n in lab.node_names:
            node.runner(lab, n).run(["rm", "-f", copy])


def test_check_patched_lists_a_container_on_old_code_until_it_restarts(lab: Lab, evened: None) -> None:
    version = fresh_version(lab)
    placement = ops.view(lab).placement
    host = placement["app1"][0]
    there = [a for a in lab.app_names if placement[a] == (host,)]  # app1, and whatever else runs there
    # Upgraded under a running container (the guard overridden, as an operator in a hurry would):
    node.runner(lab, host, timeout=300).with_env(UPGRADER_GUARD="off").run(
        ["apt-get", "install", "-y", f"{PACKAGE}={version}"])
    code, rows = check_patched(lab)
    failed = [r for r in rows if not r["ok"]]
    assert code == 1 and [r["resource"] for r in failed] == there, rows
    assert all(f"maps old {LIBRARY}" in r["error"] for r in failed), failed
    inside = node.runner(lab, "node1", timeout=120)
    for app in there:
        inside.run(["crm_resource", "--restart", "--resource", app, "--timeout", "60s"])
    Cluster(inside).wait_settled(deadline=60)
    ops.wait_serving(lab, 60)
    code, rows = check_patched(lab)
    assert code == 0 and all(r["ok"] for r in rows), rows


HOLDER = """import mmap, os, sys, time
f = open(sys.argv[1], "rb")
m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
print("mapped", os.getpid(), flush=True)
time.sleep(600)
"""


def test_the_nodes_report_names_a_host_process_left_on_the_old_library(lab: Lab, evened: None) -> None:
    """A process of node2 itself (no Pacemaker resource) keeps the library mapped through the upgrade: the
    node's result, the report and the history name it, and nothing else fails."""
    import subprocess

    fresh_version(lab)
    holder = subprocess.Popen(node.exec_argv(lab, "node2", ["python3", "-c", HOLDER, LIBRARY]),
                              stdout=subprocess.PIPE, text=True, env=dict(node.NODE_ENV))
    inside_pid = ""
    try:
        assert holder.stdout is not None
        said, _, inside_pid = holder.stdout.readline().strip().partition(" ")
        assert said == "mapped" and inside_pid.isdigit(), said
        code, doc = rolling(lab, "run", "--yes")
        assert code == 0, doc
        left = {n["node"]: n["old_code"] for n in doc["nodes"]}
        assert [x for x in left["node2"] if x.startswith("python3 (pid ")], left
        assert not [x for n, got in left.items() if n != "node2" for x in got if x.startswith("python3")], left
        ends = [e for e in history(lab, doc["run"]) if (e["phase"], e["event"], e["node"]) == ("upgrade", "end", "node2")]
        assert ends and ends[0]["old_code"] == left["node2"], ends
    finally:  # the process we started, by the pid it has inside node2
        if inside_pid.isdigit():
            node.runner(lab, "node2").call(["kill", inside_pid])
        holder.wait(timeout=30)


def test_the_scans_init_pids_from_one_lxc_ls_are_each_running_containers_own(lab: Lab) -> None:
    """``rolling-upgrade patched`` reads every init pid and state from one ``lxc-ls --fancy``: on each node,
    those are lxc-info's pids of exactly the containers running there, and lxc-info's state of every
    container there, a stopped one's included (each node holds every container's definition)."""
    from upgrader.cli.patched import LXC_LS, lxc_listing

    seen = {}
    stopped = 0
    for n in lab.node_names:
        runner = node.runner(lab, n)
        out = runner.run(list(LXC_LS)).stdout
        states, inits = lxc_listing(out)
        running = runner.run(["lxc-ls", "--running", "-1"]).stdout.split()
        assert sorted(inits) == sorted(running), out
        for name, pid in inits.items():
            assert runner.run(["lxc-info", "-n", name, "-p", "-H"]).stdout.strip() == str(pid), (name, out)
        assert sorted(states) == sorted(runner.run(["lxc-ls", "-1"]).stdout.split()), out
        for name, state in states.items():
            assert runner.run(["lxc-info", "-n", name, "-s", "-H"]).stdout.strip() == state, (name, out)
        stopped += sum(1 for name in states if name not in inits)
        seen.update(inits)
    assert sorted(seen) == sorted(lab.container(a) for a in lab.app_names)
    assert stopped, "a stopped container's row was read somewhere (each runs on one node only)"
