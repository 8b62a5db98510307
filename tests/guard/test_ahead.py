"""The guard's verdict decided in rolling-upgrade's own apply (upgrader.guard.ahead): when, and when not."""

from __future__ import annotations

import os
import threading

import pytest

from upgrader import runkey
from upgrader.guard import ahead, record, store

RUN = "20261201T020000-node1-abcdef"


@pytest.fixture
def guard(monkeypatch: pytest.MonkeyPatch) -> dict[str, list]:
    """decide_run, the cached verdict and the event log, recorded instead of /run and the cluster."""
    seen: dict[str, list] = {"decided": [], "events": [], "threads": []}
    cached: dict[str, tuple[str, str]] = {}

    def decide_run(key: str, run_id: str) -> tuple[str, str]:
        seen["decided"].append((key, run_id))
        seen["threads"].append(threading.current_thread().name)
        cached[key] = (store.ALLOWED, "node2 is in standby and drained")
        return cached[key]

    monkeypatch.delenv("UPGRADER_GUARD", raising=False)
    monkeypatch.setattr(record, "decide_run", decide_run)
    monkeypatch.setattr(store, "read_verdict", lambda key, root="": cached.get(key))
    monkeypatch.setattr(store, "event", lambda key, stage, what, detail="", root="": seen["events"].append(
        (key, stage, what)))
    seen["cached"] = cached  # type: ignore[assignment]
    return seen


def test_the_verdict_is_decided_in_a_thread_for_this_process_s_run(guard: dict[str, list]) -> None:
    got = ahead.Ahead(RUN).wait()
    key = runkey.key_of(os.getpid())
    assert got == (store.ALLOWED, "node2 is in standby and drained")
    assert guard["decided"] == [(key, RUN)] and guard["threads"] == ["guard-ahead"]
    assert guard["events"] == [(key, "pre-invoke", "allowed-ahead")]
    assert store.read_verdict(key) == got  # what the hook's first Pre-Invoke then reads


@pytest.mark.parametrize("switch", ["off", "OFF", "maybe"])
def test_an_override_or_a_wrong_switch_is_left_to_the_hook(guard: dict[str, list], monkeypatch: pytest.MonkeyPatch,
                                                          switch: str) -> None:
    monkeypatch.setenv("UPGRADER_GUARD", switch)
    assert ahead.Ahead(RUN).wait() is None and guard["decided"] == [] and guard["events"] == []


def test_a_verdict_already_cached_is_not_decided_again(guard: dict[str, list]) -> None:
    guard["cached"][runkey.key_of(os.getpid())] = (store.REFUSED, "refused: earlier")  # type: ignore[index]
    assert ahead.Ahead(RUN).wait() is None and guard["decided"] == []


def test_a_failure_here_leaves_the_decision_to_the_hook(guard: dict[str, list],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(key: str, run_id: str) -> tuple[str, str]:
        raise RuntimeError("no cluster")

    monkeypatch.setattr(record, "decide_run", broken)
    assert ahead.Ahead(RUN).wait() is None and guard["events"] == []


def test_a_decision_that_takes_too_long_is_not_waited_for_beyond_the_bound(
        guard: dict[str, list], monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    def slow(key: str, run_id: str) -> tuple[str, str]:
        release.wait(10)
        return store.ALLOWED, "late"

    monkeypatch.setattr(record, "decide_run", slow)
    try:
        assert ahead.Ahead(RUN).wait(limit=0.05) is None  # the hook decides then
    finally:
        release.set()


def test_a_question_asked_beside_another_gives_its_answer_or_its_error_where_it_is_wanted() -> None:
    """The guard asks crm_mon beside crm_node, the lock beside the quarantine mark (upgrader.guard.decide.Asked)."""
    from upgrader.guard.decide import Asked
    from upgrader.runner import CommandError, Result

    asked_in: list[str] = []

    def state() -> str:
        asked_in.append(threading.current_thread().name)
        return "the state"

    assert Asked(state).result() == "the state" and asked_in == ["guard-ask"]
    def not_connected() -> str:
        raise CommandError(Result(("crm_mon",), 102, "", "Connection refused", 0.0), what="crm_mon")

    broken = Asked(not_connected)
    with pytest.raises(CommandError) as raised:
        broken.result()
    assert raised.value.returncode == 102  # as crm_mon said it, for decide's not-connected branch
    Asked(lambda: 1 / 0)  # never wanted: its error is raised nowhere
