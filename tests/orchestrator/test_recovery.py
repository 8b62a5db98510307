"""What a run that finds a dead run's lock says about where it stopped."""

from __future__ import annotations

from pathlib import Path

from upgrader.history import History
from upgrader.orchestrator.recovery import interrupted_in, last_node_record
from upgrader.pacemaker import lock

RUN = "20261202T070000-node1-abcdef"


def dead_lock(phase: str) -> lock.LockInfo:
    now = lock.utcnow()
    return lock.LockInfo(holder="node1", run_id=RUN, pid=4242, phase=phase, started=now, heartbeat=now,
                         expires=now)


def said(history: History, info: lock.LockInfo) -> str:
    entries = history.entries(RUN)
    return interrupted_in(entries, last_node_record(entries), info)


def test_the_phase_said_is_the_histories_not_the_locks_which_is_not_rewritten_at_each_phase(tmp_path: Path) -> None:
    history = History(tmp_path / "history.jsonl")
    history.record(RUN, None, "run", "start")
    assert said(history, dead_lock("acquired")) == "acquired"  # nothing else to go by
    history.record(RUN, None, "stage", "start")
    assert said(history, dead_lock("acquired")) == "stage"
    for phase in ("drain", "upgrade"):
        history.record(RUN, "node2", phase, "start")
    history.record(RUN, "node2", "upgrade", "end", seconds=1.0)
    # the lock was last written at the drain (fresh: the upgrade only checked it): the history knows better
    assert said(history, dead_lock("drain")) == "upgrade"
    history.record(RUN, "node2", "verify", "start")
    assert said(history, dead_lock("drain")) == "verify"
