"""Auto-Standby's drain for an apt run: whatever fails after the node went into standby, it comes back online
and the lock is freed (on a CIB captured from the lab, through Pacemaker's own tools: CIB_file)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from upgrader.guard.auto import drain_for_apt
from upgrader.pacemaker import lock
from upgrader.pacemaker.live import Cluster
from upgrader.runner import Runner

CAPTURED = Path(__file__).parents[1] / "pacemaker" / "data" / "cib-all-online.xml"


@pytest.mark.parametrize("fault", ["settle", "heartbeat"])
def test_a_failure_after_the_standby_puts_the_node_back_and_frees_the_lock(tmp_path: Path, fault: str,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    cib = tmp_path / "cib.xml"
    shutil.copy(CAPTURED, cib)
    cluster = Cluster(Runner(env={"CIB_file": str(cib)}, timeout=30))
    def fails(*_: object, **__: object) -> None:
        raise (RuntimeError("boom") if fault == "settle" else lock.LockLost("the upgrade lock of run apt-1-2 is gone"))

    if fault == "settle":
        monkeypatch.setattr(cluster, "wait_settled", fails)
    else:  # the drain settled (the captured state stands for it), then the lock's heartbeat fails
        monkeypatch.setattr(cluster, "wait_settled", lambda *a, **k: cluster.state())
        monkeypatch.setattr(lock.UpgradeLock, "heartbeat", fails)
    decision = drain_for_apt(cluster, cluster.state(), "node2", "apt-1-2", ttl=600, settle_timeout=5)
    assert not decision.allowed and "it was put back online" in decision.reason, decision
    assert not cluster.state().node("node2").standby
    assert lock.read(cluster) is None
