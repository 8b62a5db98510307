"""The upgrade lock with Pacemaker's real cibadmin on copies of captured CIBs."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Callable

import pytest

from upgrader.pacemaker import lock
from upgrader.pacemaker.live import Cluster
from upgrader.pacemaker.names import BadValue
from upgrader.pacemaker.state import ClusterState

Offline = Callable[[str], Cluster]


def at(offset: float) -> lock.Clock:
    moment = lock.utcnow() + timedelta(seconds=offset)
    return lambda: moment


def cib_ids(cluster: Cluster) -> Counter[str]:
    config = ET.fromstring(cluster.runner.run(["cibadmin", "--query", "--scope", "configuration"]).stdout)
    return Counter(el.get("id") for el in config.iter() if el.get("id"))


def test_acquire_reenter_heartbeat_release(offline: Offline) -> None:
    cluster = offline("all-online")
    mine = lock.UpgradeLock(cluster, "run-1", "node1", ttl=60)
    taken = mine.acquire("planning")
    assert lock.read(cluster) == taken and taken.pid and taken.expires - taken.started == timedelta(seconds=60)
    again = mine.acquire("upgrading")
    assert (again.phase, again.started) == ("upgrading", taken.started)
    assert mine.heartbeat("verifying").phase == "verifying"
    assert mine.release() and lock.read(cluster) is None
    assert not mine.release()


def test_a_heartbeat_before_a_move_leaves_a_fresh_lock_unwritten_but_checks_it(offline: Offline) -> None:
    cluster = offline("all-online")
    now = [datetime(2026, 11, 22, 2, 0, tzinfo=timezone.utc)]
    mine = lock.UpgradeLock(cluster, "run-1", "node1", ttl=600, clock=lambda: now[0])
    mine.acquire("upgrade")
    now[0] += timedelta(seconds=30)
    assert mine.heartbeat("drain", before_move=True).phase == "upgrade"  # fresh: not rewritten
    now[0] += timedelta(seconds=31)
    written = mine.heartbeat("drain", before_move=True)  # older than a minute: written
    assert (written.phase, written.heartbeat) == ("drain", now[0])
    lock.remove(cluster, written)
    with pytest.raises(lock.LockLost):
        mine.heartbeat("fail-over", before_move=True)  # gone: said so even when no write was due


def test_a_runs_phases_leave_a_fresh_lock_unwritten_and_a_stale_one_gets_the_phase(
        offline: Offline, tmp_path) -> None:
    """Each crm_config write costs the DC's controller a second: while the lock is fresh, a run's phases
    (stage, drain, verify, upgrade, the moves) only check that it is still ours; once its last write is a
    minute old, the next phase writes it, with that phase."""
    from upgrader.config import Config
    from upgrader.history import History
    from upgrader.orchestrator.context import RunContext

    class Local:
        local = "node1"

    class Quiet:
        def step(self, *args) -> None: ...

        def progress(self, *args) -> None: ...

    cluster = offline("all-online")
    run = RunContext(cluster, Local(), None, Config(), History(tmp_path / "history.jsonl"), Quiet(),  # type: ignore[arg-type]
                     "20261202T060000-node1-abcdef")
    now = [datetime(2026, 12, 2, 6, 0, tzinfo=timezone.utc)]
    run.lock.clock = lambda: now[0]
    run.lock.acquire()
    for phase in ("stage", "drain", "upgrade", "fail-over", "verify", "fail-back"):
        now[0] += timedelta(seconds=5)
        run.phase("node2", phase)
        assert lock.read(cluster).phase == "acquired", phase  # fresh: checked, not written
    now[0] += timedelta(seconds=31)
    run.phase("node3", "upgrade")
    assert (lock.read(cluster).phase, lock.read(cluster).heartbeat) == ("upgrade", now[0])


def test_nvpair_ids_are_unique_in_the_cib(offline: Offline) -> None:
    cluster = offline("all-online")
    lock.UpgradeLock(cluster, "run-1", "node1").acquire()
    ours = [i for i in cib_ids(cluster) if i.startswith(lock.LOCK_ID)]
    assert len(ours) == 8 and all(count == 1 for count in cib_ids(cluster).values())


def test_another_run_is_refused_and_cannot_release_or_refresh(offline: Offline) -> None:
    cluster = offline("all-online")
    lock.UpgradeLock(cluster, "run-1", "node1").acquire("upgrading")
    other = lock.UpgradeLock(cluster, "run-2", "node2")
    with pytest.raises(lock.LockHeld, match="holder node1, run run-1, .*phase upgrading") as err:
        other.acquire()
    assert not err.value.status.stale
    assert not other.release()
    with pytest.raises(lock.LockLost):
        other.heartbeat()
    assert lock.read(cluster).run_id == "run-1"


def test_same_run_id_on_another_node_is_not_reentrant(offline: Offline) -> None:
    cluster = offline("all-online")
    lock.UpgradeLock(cluster, "run-1", "node1").acquire()
    with pytest.raises(lock.LockHeld):
        lock.UpgradeLock(cluster, "run-1", "node2").acquire()


def test_offline_holder_not_yet_expired_is_stale_but_kept(offline: Offline) -> None:
    cluster = offline("node3-offline")
    lock.UpgradeLock(cluster, "run-3", "node3", ttl=60).acquire("upgrading")
    with pytest.raises(lock.LockHeld, match=r"\(stale: holder offline\)") as err:
        lock.UpgradeLock(cluster, "run-1", "node1", clock=at(30)).acquire()
    assert err.value.status.stale and not err.value.status.breakable
    assert lock.read(cluster).run_id == "run-3"


def test_offline_and_expired_holder_without_fencing_is_broken_only_by_hand(offline: Offline) -> None:
    cluster = offline("node3-offline")  # the lab's default: stonith-enabled=false
    lock.UpgradeLock(cluster, "run-3", "node3", ttl=60).acquire("upgrading")
    status = lock.inspect(cluster, now=lock.utcnow() + timedelta(seconds=61))
    assert status.stale and not status.breakable and status.only_by_hand
    with pytest.raises(lock.LockHeld, match=r"\(stale: holder offline and expired; not broken automatically: fencing "
                                            r"is off, so node3 may still run; once you know it is down, "
                                            r"'rolling-upgrade unlock --force'\)"):
        lock.UpgradeLock(cluster, "run-1", "node1", clock=at(61)).acquire()
    assert lock.read(cluster).run_id == "run-3"
    assert lock.force_unlock(cluster).run_id == "run-3" and lock.read(cluster) is None


def test_online_holder_expired_is_stale_but_kept(offline: Offline) -> None:
    cluster = offline("node3-offline")
    lock.UpgradeLock(cluster, "run-2", "node2", ttl=60).acquire()
    with pytest.raises(lock.LockHeld, match=r"\(stale: expired\)"):
        lock.UpgradeLock(cluster, "run-1", "node1", clock=at(3600)).acquire()
    assert lock.read(cluster).run_id == "run-2"


def test_force_unlock_says_what_it_broke_and_the_owner_notices(offline: Offline) -> None:
    cluster = offline("all-online")
    owner = lock.UpgradeLock(cluster, "run-1", "node1")
    taken = owner.acquire("upgrading")
    assert lock.force_unlock(cluster) == taken
    assert lock.read(cluster) is None and lock.force_unlock(cluster) is None
    with pytest.raises(lock.LockLost, match="run-1 on node1 is gone"):
        owner.heartbeat()


def test_hostile_values_never_reach_the_cib(offline: Offline) -> None:
    cluster = offline("all-online")
    before = cluster.runner.run(["cibadmin", "--query"]).stdout
    with pytest.raises(BadValue, match="invalid run id"):
        lock.UpgradeLock(cluster, "x' or '1'='1", "node1")
    with pytest.raises(BadValue, match="invalid node name"):
        lock.UpgradeLock(cluster, "run-1", 'node1"/><nvpair id="x')
    with pytest.raises(BadValue, match="invalid phase"):
        lock.UpgradeLock(cluster, "run-1", "node1").acquire("Up<grading>")
    assert cluster.runner.run(["cibadmin", "--query"]).stdout == before


def test_judging_the_holder_against_the_cluster(mon: Callable[[str], ClusterState]) -> None:
    state = mon("node3-offline")
    unclean = replace(state, nodes=tuple(replace(n, unclean=True) if n.name == "node3" else n for n in state.nodes))
    past = lock.utcnow() - timedelta(hours=1)
    now = lock.utcnow()
    held = lock.LockInfo("node3", "run-3", 42, "upgrading", past, past, past + timedelta(minutes=15))
    judged = {
        "offline": lock.LockStatus.judge(held, state, now),
        "unclean": lock.LockStatus.judge(held, unclean, now),
        "unknown": lock.LockStatus.judge(replace(held, holder="node9"), state, now),
        "online": lock.LockStatus.judge(replace(held, holder="node1"), state, now),
    }
    assert {k: (s.holder_state, s.stale, s.breakable) for k, s in judged.items()} == {
        "offline": ("offline", True, False),  # fencing off (the captured lab): nothing proves it is down
        "unclean": ("unclean", True, False),  # may still run until fenced: never broken automatically
        "unknown": ("unknown", True, False),
        "online": ("online", True, False),
    }
    fenced = replace(state, summary=replace(state.summary, stonith_enabled=True))
    assert lock.LockStatus.judge(held, fenced, now).breakable  # fencing on: offline means down
    assert lock.LockStatus.judge(replace(held, holder="node9"), fenced, now).breakable
    assert not lock.LockStatus.judge(held, replace(unclean, summary=fenced.summary), now).breakable
    assert judged["unclean"].describe(now).endswith("taken 60m ago, heartbeat 60m ago (stale: holder unclean and expired)")
    fresh = replace(held, expires=now + timedelta(minutes=5))
    assert lock.LockStatus.judge(fresh, state, now).breakable is False


@pytest.mark.parametrize("pid", ["²", "12a", "-3", ""])
def test_a_lock_pid_that_is_not_ascii_digits_reads_as_unknown(pid: str) -> None:
    text = (f'<cluster_property_set id="rolling-upgrade-lock"><nvpair id="a" name="holder" value="node1"/>'
            f'<nvpair id="b" name="pid" value="{pid}"/></cluster_property_set>')
    assert lock.LockInfo.from_xml(text).pid is None


def test_the_lock_records_the_digest_of_the_runs_package_set(offline: Offline) -> None:
    cluster = offline("all-online")
    taken = lock.UpgradeLock(cluster, "run-1", "node1").acquire("preflight", package_set="0123456789abcdef")
    assert taken.package_set == "0123456789abcdef"
    assert lock.read(cluster).package_set == "0123456789abcdef"
    assert lock.UpgradeLock(cluster, "run-1", "node1").heartbeat("stage").package_set == "0123456789abcdef"
    assert lock.inspect(cluster).describe(lock.utcnow()).endswith(", package set 0123456789abcdef")
    assert lock.UpgradeLock(cluster, "run-1", "node1").release()
    with pytest.raises(ValueError, match="not a package set's digest"):
        lock.UpgradeLock(cluster, "run-2", "node1").acquire("preflight", package_set="'] | //x")
    assert lock.read(cluster) is None
