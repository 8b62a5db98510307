"""The Pacemaker adapter and the upgrade lock on a real lab cluster."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Iterator

import pytest

from upgrader_lab import lab as ops
from upgrader_lab import node
from upgrader_lab.client import LabClient
from upgrader_lab.layout import Lab
from upgrader.pacemaker import lock
from upgrader.pacemaker.live import Check, Cluster, drained, in_flight
from upgrader.pacemaker.state import ClusterState
from upgrader.runner import CommandTimeout

pytestmark = pytest.mark.lab
CLI = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "rolling-upgrade")


def cluster(lab: Lab, via: str, timeout: float = 30) -> Cluster:
    """The adapter, running its commands inside node ``via``."""
    return Cluster(node.runner(lab, via, timeout=timeout))


def answering(lab: Lab, client: LabClient) -> Check:
    """A check that every application answers GET /version on its floating IP."""

    def check(_state: ClusterState) -> list[str]:
        answers = client.get_many([(lab.app_ip(a), "/version") for a in lab.app_names], timeout=1.0)
        return [f"{a} does not answer ({g.error or g.status})" for a, g in zip(lab.app_names, answers) if not g.ok]

    return check


@pytest.fixture(autouse=True)
def free_lock(lab: Lab) -> Iterator[None]:
    """Each test starts and ends with no upgrade lock, whatever the previous one left."""
    lock.force_unlock(cluster(lab, "node1"))
    yield
    lock.force_unlock(cluster(lab, "node1"))


def test_standby_moves_the_apps_and_settled_waits_until_they_answer(lab: Lab, client: LabClient) -> None:
    c = cluster(lab, "node1")
    apps = tuple(lab.app_names)
    before = c.wait_settled(answering(lab, client), deadline=60)
    target = sorted(before.running_on("app1"))[0]
    predicted = {m.resource: m.dest for m in c.predict_standby(target) if m.action == "Move"}

    started = time.monotonic()
    c.set_standby(target, True)
    seen: list[list[str]] = []

    def moved_and_answering(state: ClusterState) -> list[str]:
        seen.append(drained(target, apps)(state) + answering(lab, client)(state))
        return seen[-1]

    after = c.wait_settled(moved_and_answering, deadline=60)
    moved_in = time.monotonic() - started
    answers = client.get_many([(lab.app_ip(a), "/version") for a in apps], timeout=1.0)
    assert all(a.ok for a in answers), answers
    assert in_flight(after) == [] and after.node(target).standby
    assert seen[-1] == [] and any(seen[:-1]), f"settled waited through {len(seen)} looks: {seen}"
    for app in apps:
        if target in before.running_on(app):
            assert {predicted[r.id] for r in before.members(app)} == set(after.running_on(app))

    c.set_standby(target, False)
    back = c.wait_settled(answering(lab, client), deadline=60)
    assert not back.node(target).standby and back.node(target).online
    print(f"standby of {target}: moved and answering after {moved_in:.1f}s ({len(seen)} looks)")


def test_twelve_concurrent_acquisitions_have_exactly_one_winner(lab: Lab) -> None:
    nodes = lab.node_names
    clusters = [cluster(lab, nodes[i % len(nodes)]) for i in range(12)]
    rounds: list[float] = []
    for round_ in range(20):
        began = time.monotonic()
        start = threading.Barrier(12)
        won: list[lock.UpgradeLock] = []
        errors: list[BaseException] = []

        def contend(i: int) -> None:
            mine = lock.UpgradeLock(clusters[i], f"round{round_}-{i}", nodes[i % len(nodes)], ttl=120)
            start.wait()
            try:
                mine.acquire()
                won.append(mine)
            except lock.LockHeld:
                pass
            except BaseException as exc:  # reported below, with the round
                errors.append(exc)

        threads = [threading.Thread(target=contend, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors and len(won) == 1, f"round {round_}: {len(won)} winners, errors {errors}"
        assert lock.read(clusters[0]).run_id == won[0].run_id
        assert won[0].release() and lock.read(clusters[0]) is None
        rounds.append(time.monotonic() - began)
    print(f"20 rounds of 12 contenders: one winner each; a round took {min(rounds):.2f}-{max(rounds):.2f}s")


def test_power_cut_holder_is_stale_and_with_fencing_off_broken_only_by_hand(lab: Lab) -> None:
    # The holder is the DC: the harder case, where the survivors first keep asking a dead DC.
    victim = cluster(lab, "node1").wait_settled(deadline=30).summary.dc
    survivor = next(n for n in lab.node_names if n != victim)
    ttl = 25
    taken = lock.UpgradeLock(cluster(lab, victim), f"run-{victim}", victim, ttl=ttl).acquire("upgrading")
    c = cluster(lab, survivor)
    contender = lock.UpgradeLock(c, f"run-{survivor}", survivor)
    ops.power_cut(lab, victim)
    try:
        c.wait_settled(lambda s: [] if not s.node(victim).online else [f"{victim} still online"], deadline=30)
        status = lock.inspect(c)
        assert status.info == taken and status.stale and not status.breakable
        with pytest.raises(lock.LockHeld, match=rf"holder {victim}, run run-{victim}, .*phase upgrading.*\(stale: holder offline\)"):
            contender.acquire()
        shown = json.loads(c.runner.run([CLI, "status", "--json"]).stdout)["lock"]
        assert (shown["holder"], shown["phase"], shown["holder_state"], shown["stale"], shown["breakable"]) == (
            victim, "upgrading", "offline", True, False)
        remaining = (taken.expires - lock.utcnow()).total_seconds()
        assert remaining > 0, "detecting the power cut took longer than the lock's ttl"
        print(f"power cut of DC {victim}: lock stale, kept for {remaining:.0f}s more until it expired, then "
              "refused (fencing off), broken by hand")
        time.sleep(remaining + 1)
        status = lock.inspect(c)
        assert status.stale and status.expired and not status.breakable  # the lab fences nothing
        with pytest.raises(lock.LockHeld, match=rf"not broken automatically: fencing is off, so {victim} may still "
                                                r"run; once you know it is down, 'rolling-upgrade unlock --force'"):
            contender.acquire()
        assert lock.force_unlock(c) == taken
        assert contender.acquire("planning").holder == survivor
        assert contender.release()
    finally:
        ops.boot(lab, victim)


def test_unlock_by_a_non_owner_refuses_and_changes_nothing(lab: Lab) -> None:
    c2 = cluster(lab, "node2")
    owner = lock.UpgradeLock(c2, "run-node2", "node2")
    owner.acquire("upgrading")
    query = ["cibadmin", "--query", f"--xpath=//cluster_property_set[@id='{lock.LOCK_ID}']"]
    before = c2.runner.run(query).stdout
    refused = cluster(lab, "node1").runner.call([CLI, "unlock"])
    assert refused.returncode == 3
    assert refused.stderr.count("\n") == 1 and refused.stderr.startswith("refused: the upgrade lock belongs to node2, not node1")
    assert c2.runner.run(query).stdout == before
    released = c2.runner.call([CLI, "unlock"])
    assert released.returncode == 0 and released.stdout.startswith("released the upgrade lock: holder node2, run run-node2")
    assert lock.read(c2) is None


def test_frozen_pacemakerd_is_a_clear_timeout_not_a_hang(lab: Lab) -> None:
    inside = cluster(lab, "node2", timeout=5)
    pid = inside.runner.run(["pidof", "pacemakerd"]).stdout.split()[0]
    inside.runner.run(["kill", "-STOP", pid])
    try:
        started = time.monotonic()
        with pytest.raises(CommandTimeout, match=r"crm_mon \(cluster status\) did not answer within 5s"):
            inside.state()
        took = time.monotonic() - started
        assert took < 7
        print(f"crm_mon with pacemakerd stopped: CommandTimeout after {took:.2f}s")
    finally:
        inside.runner.run(["kill", "-CONT", pid])
    assert inside.wait_settled(deadline=30).node("node2").online


def test_heartbeat_keeps_a_lock_alive_past_its_first_expiry(lab: Lab) -> None:
    c1 = cluster(lab, "node1")
    mine = lock.UpgradeLock(c1, "run-hb", "node1", ttl=4)
    first = mine.acquire()
    time.sleep(2)
    refreshed = mine.heartbeat("upgrading")
    assert refreshed.expires - first.expires >= timedelta(seconds=2)
    assert not lock.inspect(c1).stale
    assert mine.release()
