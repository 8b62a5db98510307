"""Rolling upgrades of the shapes real clusters have (issue 15), on the lab's profiles.

``mixed``: the default's groups plus a clone on every node, a resource allowed on two nodes, one
stopped by its target-role, one unmanaged, a group with stickiness INFINITY, a fencing device.
``seed``: the seed idea's two hosts: per application a promotable clone standing in for its DRBD
device, a Pacemaker-managed overlay Filesystem, the floating IP and the container, colocated with
the Promoted role and ordered after the promote; fencing on.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.conftest import private_lab
from tests.lab.helpers import (TOOL, fresh_version, history, rolling, run_leftovers, standby_nodes, versions_served)
from upgrader_lab import lab as ops
from upgrader_lab import node, profiles
from upgrader_lab.layout import Lab
from upgrader.pacemaker import lock, shapes
from upgrader.pacemaker.live import Cluster
from upgrader.pacemaker.state import ClusterState

pytestmark = pytest.mark.lab
AT = "2026-03-02T02:05+00:00"  # inside the window below
WINDOW = "/etc/apt/apt.conf.d/60upgrader-test-window"
UU_CONF = "/etc/apt/apt.conf.d/51upgrader-test-uu"


def state(lab: Lab, via: str = "node1") -> ClusterState:
    return Cluster(node.runner(lab, via, timeout=30)).state()


def every_node(lab: Lab) -> frozenset[str]:
    return frozenset(lab.node_names)


def standby_by_hand(lab: Lab, n: str, via: str = "node1") -> Cluster:
    """What an operator does first: ``n`` in standby, until nothing that moves runs there."""
    c = Cluster(node.runner(lab, via, timeout=30))
    c.set_standby(n, True)
    c.wait_settled(lambda s: [f"{r} still on {n}" for r in shapes.movable_on(s, n)], deadline=90)
    return c


@pytest.fixture(scope="module")
def mixed() -> Iterator[Lab]:
    with private_lab("x", nodes=3, apps=3, profile="mixed") as lab:
        yield lab


@pytest.fixture(scope="module")
def seed() -> Iterator[Lab]:
    with private_lab("e", nodes=2, apps=2, profile="seed") as lab:
        yield lab


def assert_mixed_whole(lab: Lab, version: str) -> None:
    s = state(lab)
    assert versions_served(lab) == {a: version for a in lab.app_names}
    assert s.running_on(profiles.CLONE) == every_node(lab), "the clone's instance came back on every node"
    assert s.running_on(profiles.FENCE_DEVICE), "the fencing device is Started"
    assert s.running_on(profiles.PINNED) <= set(profiles.PINNED_NODES) and s.running_on(profiles.PINNED)
    assert s.running_on(profiles.STICKY)
    assert not s.running_on(profiles.PARKED), "target-role Stopped: never started by us"
    legacy = s.members(profiles.UNMANAGED)
    assert legacy and not legacy[0].managed and s.running_on(profiles.UNMANAGED) == {profiles.UNMANAGED_NODE}
    assert standby_nodes(lab) == [] and run_leftovers(lab) == []
    assert lock.read(Cluster(node.runner(lab, "node1"))) is None


def test_mixed_a_rolling_upgrade_leaves_every_kind_of_resource_as_it_should_be(mixed: Lab) -> None:
    version = fresh_version(mixed)
    code, plan = rolling(mixed, "plan")
    assert code == 0, plan
    assert f"{profiles.UNMANAGED} is unmanaged (is-managed=false): left where it runs ({profiles.UNMANAGED_NODE}), " \
        "never started or stopped" in plan["notes"], plan["notes"]
    assert f"{profiles.PARKED} is stopped on purpose (target-role Stopped): not started" in plan["notes"]
    clone_lines = [m["text"] for m in plan["nodes"]["node2"]["moves"] if m["resource"] == profiles.CLONE]
    assert clone_lines == [f"{profiles.CLONE} stopped on node2 due to node availability"], plan["nodes"]["node2"]
    code, doc = rolling(mixed, "run", "--yes")
    assert code == 0, doc
    assert {n["node"]: n["result"] for n in doc["nodes"]} == {n: "ok" for n in mixed.node_names}
    assert_mixed_whole(mixed, version)
    # The unmanaged resource was never stopped: it ran through node1's upgrade where it was.
    events = history(mixed, doc["run"])
    assert not [e for e in events if e["phase"] == "move" for m in e["moves"] if m.startswith(profiles.UNMANAGED)]


def test_mixed_the_nightly_window_upgrades_the_whole_cluster(mixed: Lab) -> None:
    version = fresh_version(mixed)
    for n in mixed.node_names:
        node.runner(mixed, n).run(["tee", WINDOW], input='Rolling-Upgrade::Windows { "Mon-Sun 02:00-04:00 UTC"; };\n'
                                                         'Rolling-Upgrade::Boot-Grace "0";\n')
    try:
        code, doc = rolling(mixed, "window", "--at", AT)
    finally:
        for n in mixed.node_names:
            node.runner(mixed, n).run(["rm", "-f", WINDOW])
    assert code == 0, doc
    assert all(ops.installed_version(mixed, n) == version for n in mixed.node_names)
    assert_mixed_whole(mixed, version)


def test_mixed_a_standby_an_operator_set_is_kept_and_the_node_upgraded(mixed: Lab) -> None:
    version = fresh_version(mixed)
    c = standby_by_hand(mixed, "node3")
    try:
        code, doc = rolling(mixed, "run", "--yes")
        assert code == 0, doc
        assert ops.installed_version(mixed, "node3") == version
        assert standby_nodes(mixed) == ["node3"], "an operator's standby is not ours to undo"
        said = [e for e in history(mixed, doc["run"]) if e["phase"] == "fail-over" and e.get("node") == "node3"]
        assert said, "node3 went through the procedure"
    finally:
        c.set_standby("node3", False)
        c.wait_settled(None, deadline=60)
    assert_mixed_whole(mixed, version)


def test_mixed_with_fencing_a_power_cut_holders_lock_is_broken_once_it_is_fenced_and_expired(mixed: Lab) -> None:
    ttl = 30
    c1 = Cluster(node.runner(mixed, "node1", timeout=30))
    taken = lock.UpgradeLock(Cluster(node.runner(mixed, "node3")), "run-node3", "node3", ttl=ttl).acquire("upgrading")
    contender = lock.UpgradeLock(c1, "run-node1", "node1")
    ops.power_cut(mixed, "node3")
    try:
        c1.wait_settled(lambda s: [] if not s.node("node3").online and not s.node("node3").unclean
                        else ["node3 not fenced yet"], deadline=60)
        with pytest.raises(lock.LockHeld, match=r"\(stale: holder offline\)"):
            contender.acquire()  # fenced, but not expired yet
        time.sleep(max(0.0, (taken.expires - lock.utcnow()).total_seconds()) + 1)
        status = lock.inspect(c1)
        assert status.fencing and status.breakable, status
        assert contender.acquire("planning").holder == "node1"  # broken automatically: node3 is down for sure
        assert contender.release()
    finally:
        ops.boot(mixed, "node3")
    ops.wait_serving(mixed, 120)


def promoted_with_apps(lab: Lab, s: ClusterState) -> dict[str, tuple[frozenset[str], frozenset[str]]]:
    """Per app: where its DRBD stand-in is Promoted, and where the app runs (the same node, always)."""
    return {a: (shapes.promoted(s, profiles.drbd_clone(a)), s.running_on(a)) for a in lab.app_names}


def assert_seed_whole(lab: Lab, version: str) -> None:
    s = state(lab)
    assert versions_served(lab) == {a: version for a in lab.app_names}
    for app, (promoted, runs) in promoted_with_apps(lab, s).items():
        assert len(promoted) == 1 and promoted == runs, (app, promoted, runs)
    assert s.running_on(profiles.FENCE_DEVICE)
    assert standby_nodes(lab) == [] and run_leftovers(lab) == []


def test_seed_a_rolling_upgrade_of_the_two_hosts(seed: Lab) -> None:
    version = fresh_version(seed)
    code, doc = rolling(seed, "run", "--yes")
    assert code == 0, doc
    assert {n["node"]: n["result"] for n in doc["nodes"]} == {"node1": "ok", "node2": "ok"}
    assert all(ops.installed_version(seed, n) == version for n in seed.node_names)
    assert_seed_whole(seed, version)


def test_seed_a_bad_build_fails_back_with_the_promoted_role_on_old_packages(seed: Lab) -> None:
    good = ops.installed_version(seed, "node1")
    bad = fresh_version(seed, bad=True)
    code, doc = rolling(seed, "run", "--yes")
    assert code == 1, doc
    results = {n["node"]: n["result"] for n in doc["nodes"]}
    suspect = next(n for n, r in results.items() if r == "quarantined")
    old = next(n for n in seed.node_names if n != suspect)
    assert ops.installed_version(seed, suspect) == bad and ops.installed_version(seed, old) == good
    s = state(seed, via=old)
    for app, (promoted, runs) in promoted_with_apps(seed, s).items():
        assert promoted == runs == {old}, (app, promoted, runs)  # the Promoted role back on old packages
    assert versions_served(seed) == {a: good for a in seed.app_names}
    # Put it right: a good build, the quarantine cleared, the next run upgrades both.
    node.runner(seed, old).run([TOOL, "unquarantine", suspect])
    c = Cluster(node.runner(seed, old))
    c.set_standby(suspect, False)
    c.wait_settled(lambda s: [] if s.running_on(profiles.drbd_clone(seed.app_names[0])) == every_node(seed)
                   else ["the DRBD stand-ins not on both hosts yet"], deadline=90)
    version = fresh_version(seed)
    code, doc = rolling(seed, "run", "--yes")
    assert code == 0, doc
    assert_seed_whole(seed, version)


def test_seed_unattended_upgrades_on_a_standby_node_then_its_finishing_step(seed: Lab) -> None:
    version = fresh_version(seed)
    for n in seed.node_names:
        node.runner(seed, n).run(["tee", UU_CONF], input='Unattended-Upgrade::Origins-Pattern { "origin=upgrader-lab"; };\n'
                                                          'Rolling-Upgrade::Boot-Grace "0";\n')
    try:
        standby_by_hand(seed, "node2")
        seen = len(history(seed, via="node2"))
        got = node.runner(seed, "node2", timeout=600).call(["unattended-upgrade", "-v"])
        assert got.returncode == 0, got.stdout[-2000:] + got.stderr[-2000:]
        assert ops.installed_version(seed, "node2") == version
        finished = wait_for_record(seed, "node2", apt_ended, seen)
        assert finished["finish"].endswith("exit 0"), finished
        # Two hosts: node2 took the resources, node1 waits in standby for its own apt run (the seed idea).
        assert standby_nodes(seed, via="node2") == ["node1"]
        seen = len(history(seed, via="node1"))
        got = node.runner(seed, "node1", timeout=600).call(["unattended-upgrade", "-v"])
        assert got.returncode == 0, got.stdout[-2000:] + got.stderr[-2000:]
        assert wait_for_record(seed, "node1", apt_ended, seen)["finish"].endswith("exit 0")
    finally:
        for n in seed.node_names:
            node.runner(seed, n).run(["rm", "-f", UU_CONF])
    deadline = time.monotonic() + 120
    while standby_nodes(seed, via="node2") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert all(ops.installed_version(seed, n) == version for n in seed.node_names)
    assert_seed_whole(seed, version)


def test_seed_pacemakers_documented_procedure_under_the_guard(seed: Lab) -> None:
    """ClusterLabs' manual procedure, step by step: standby, stop the stack, upgrade, start the stack."""
    version = fresh_version(seed)
    c = standby_by_hand(seed, "node2")
    inside = node.runner(seed, "node2", timeout=300)
    inside.run([*node.POWER.split(), "stop"])
    seen = len(history(seed, via="node2"))
    got = inside.call(["apt-get", "dist-upgrade", "-y"])
    assert got.returncode == 0, got.stdout[-2000:] + got.stderr[-2000:]
    assert ops.installed_version(seed, "node2") == version
    held = lock.read(c)
    assert held is not None and held.holder == "node2", held  # taken through node1 for this apt run
    inside.run([*node.POWER.split(), "start"])
    finished = wait_for_record(seed, "node2", apt_ended, seen, timeout=300)
    assert finished["finish"].endswith("exit 0"), finished
    assert "node2" not in standby_nodes(seed)
    # The other host, the same way round, through the tool this time.
    code, doc = rolling(seed, "run", "--yes")
    assert code == 0, doc
    assert_seed_whole(seed, version)


def apt_ended(record: dict) -> bool:
    return record["phase"] == "apt" and record.get("source") == "apt-hooks"


def wait_for_record(lab: Lab, n: str, match, seen: int, timeout: float = 180) -> dict:
    """The last record of ``n``'s history after its first ``seen`` that ``match``es, once there is one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [h for h in history(lab, via=n)[seen:] if match(h)]
        if found:
            return found[-1]
        time.sleep(0.5)
    raise AssertionError(f"no such history record on {n} within {timeout}s: {history(lab, via=n)[-3:]}")


def test_mixed_a_drain_that_would_stop_a_resource_is_refused_before_anything_changes(mixed: Lab) -> None:
    fresh_version(mixed)
    c = standby_by_hand(mixed, "node2")  # an operator's: now the pinned resource can run on node1 alone
    try:
        before = c.runner.run(["cibadmin", "--query", "--xpath", "/cib", "--no-children"]).stdout
        code, doc = rolling(mixed, "run", "--yes", "--nodes", "node1")
        assert code == 3, doc
        assert doc["refused"].startswith("refused: a standby of node1 would take down what it should move: "
                                         f"{profiles.PINNED} would be stopped, not moved"), doc
        assert c.runner.run(["cibadmin", "--query", "--xpath", "/cib", "--no-children"]).stdout == before
        assert state(mixed).running_on(profiles.PINNED) == {"node1"}
    finally:
        c.set_standby("node2", False)
        c.wait_settled(None, deadline=60)


FRAGILE = "fragile"  # can run on node1 and node2; its start fails on node2 (crm_simulate cannot know that)


def test_mixed_a_drain_that_took_something_down_anyway_is_undone_at_once(mixed: Lab) -> None:
    c = Cluster(node.runner(mixed, "node1", timeout=30))
    # Created stopped, its constraints in place, then started: it must never try node2 before the run does.
    primitive = (f'<primitive id="{FRAGILE}" class="ocf" provider="pacemaker" type="Dummy"><instance_attributes '
                 f'id="{FRAGILE}-ia"><nvpair id="{FRAGILE}-fail" name="fail_start_on" value="node2"/>'
                 f'</instance_attributes><meta_attributes id="{FRAGILE}-meta"><nvpair id="{FRAGILE}-role" '
                 f'name="target-role" value="Stopped"/></meta_attributes><operations><op id="{FRAGILE}-monitor" '
                 'name="monitor" interval="10s"/></operations></primitive>')
    constraints = [f'<rsc_location id="{FRAGILE}-not-node3" rsc="{FRAGILE}" node="node3" score="-INFINITY"/>',
                   f'<rsc_location id="{FRAGILE}-on-node1" rsc="{FRAGILE}" node="node1" score="100"/>']
    c.runner.run(["cibadmin", "--create", "--scope", "resources", f"--xml-text={primitive}"])
    for xml in constraints:
        c.runner.run(["cibadmin", "--create", "--scope", "constraints", f"--xml-text={xml}"])
    try:
        c.runner.run(["crm_resource", "--resource", FRAGILE, "--meta", "--set-parameter", "target-role",
                      "--parameter-value", "Started"])
        c.wait_settled(lambda s: [] if s.running_on(FRAGILE) == {"node1"} and not s.failures
                       else [f"{FRAGILE} not on node1, or failures: {s.failures}"], deadline=60)
        before = ops.installed_version(mixed, "node1")
        fresh_version(mixed)
        code, doc = rolling(mixed, "run", "--yes", "--nodes", "node1")
        assert code == 1, doc.get("error")  # the whole doc's repr is cut short, hiding why
        assert doc["error"] == (f"the drain of node1 took down what it should have moved ({FRAGILE} runs nowhere (it "
                                "ran on node1)); node1 is back online and all of it runs again; nothing was upgraded"), doc
        assert ops.installed_version(mixed, "node1") == before
        s = state(mixed)
        assert s.running_on(FRAGILE) == {"node1"} and not s.node("node1").standby
        assert run_leftovers(mixed) == [] and lock.read(c) is None
    finally:
        c.runner.run(["crm_resource", "--resource", FRAGILE, "--meta", "--set-parameter", "target-role",
                      "--parameter-value", "Stopped"])
        c.wait_settled(lambda s: [f"{FRAGILE} still runs"] if s.running_on(FRAGILE) else [], deadline=60)
        for xml in constraints:
            c.runner.run(["cibadmin", "--delete", "--scope", "constraints", f"--xml-text={xml}"])
        c.runner.run(["cibadmin", "--delete", "--scope", "resources", f'--xml-text=<primitive id="{FRAGILE}"/>'])
        c.runner.run(["crm_resource", "--cleanup"])
        c.wait_settled(None, deadline=60)
