"""``status`` of a run that died holding the lock says the phase it died in, from the history (as recovery does).

The lock is no longer rewritten at every phase, so its own phase may be a step behind ("drain" for a run killed
in its upgrade); the history has every phase.
"""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path

import pytest
from rich.console import Console

from upgrader import config
from upgrader.cli import status as status_command
from upgrader.config import Config
from upgrader.history import History
from upgrader.pacemaker import lock
from upgrader.pacemaker.state import ClusterState, parse_crm_mon

DATA = Path(__file__).parents[1] / "pacemaker" / "data"


class Stub:
    """A cluster answering from a captured crm_mon; this node is node1, which holds the lock."""

    def __init__(self) -> None:
        self.captured: ClusterState = parse_crm_mon((DATA / "crm_mon-failed-action.xml").read_text())

    def state(self, timeout: float | None = None) -> ClusterState:
        return self.captured

    def local_node(self) -> str:
        return "node1"


@pytest.fixture
def dead_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> History:
    now = lock.utcnow()
    info = lock.LockInfo(holder="node1", run_id="run-1", pid=999999, phase="drain", started=now,
                         heartbeat=now, expires=now + timedelta(minutes=5))
    monkeypatch.setattr(lock, "read", lambda cluster: info)
    monkeypatch.setattr(lock, "run_alive", lambda held: False)
    monkeypatch.setattr(status_command.holds, "read", lambda cluster: [])
    history = History(tmp_path / "history.jsonl")
    monkeypatch.setattr(config, "load", lambda *a, **k: Config(history_file=history.path, metrics_dir=tmp_path / "none"))
    return history


def status_of(as_json: bool) -> str:
    out = Console(file=io.StringIO(), width=300)
    assert status_command.status(Stub(), as_json, out) == 0  # type: ignore[arg-type]
    assert isinstance(out.file, io.StringIO)
    return out.file.getvalue()


def test_an_interrupted_run_is_said_in_the_phase_of_its_history(dead_run: History) -> None:
    dead_run.record("run-1", None, "run", "start")
    dead_run.record("run-1", "node2", "node", "start")
    dead_run.record("run-1", "node2", "drain", "end")
    dead_run.record("run-1", "node2", "upgrade", "start")
    text = status_of(False)
    assert "the run that holds the lock is gone (pid 999999, phase upgrade)" in text, text
    doc = json.loads(status_of(True))
    assert doc["lock"]["interrupted"] is True and doc["lock"]["interrupted_in"] == "upgrade", doc["lock"]


def test_without_a_history_the_lock_s_phase_is_said(dead_run: History) -> None:
    assert not dead_run.path.exists()
    assert "(pid 999999, phase drain)" in status_of(False)
    assert json.loads(status_of(True))["lock"]["interrupted_in"] == "drain"
