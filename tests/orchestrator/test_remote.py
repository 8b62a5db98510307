"""Nodes.apply when the remote shell gives no result: real processes stand in for ssh and for apply.

Whether anything ran on the node is decided by the handshake (apply says ``ready`` and touches
nothing until it reads ``go``), never by the remote shell's wording.
"""

from __future__ import annotations

import json
import time
import subprocess
import sys
from pathlib import Path

import pytest

from upgrader.config import Config
from upgrader.orchestrator.remote import Nodes

RUN_ID = "20261122T000000-node1-abcdef"
PROJECT = str(Path(__file__).resolve().parents[2])
READY = "echo '{\"event\": \"ready\"}'"


def nodes_with_shell(*shell: str) -> Nodes:
    return Nodes(Config(remote_shell=(*shell, "{node}")), local="node1", tool="/nonexistent/rolling-upgrade")


def test_a_shell_that_drops_after_go_says_contact_was_lost_and_dpkg_may_still_run() -> None:
    events: list[dict] = []
    script = f"{READY}; read go; [ \"$go\" = go ] || exit 9; echo 'Connection to node2 closed by remote host.' >&2; exit 255"
    result = nodes_with_shell("sh", "-c", script).apply("node2", RUN_ID, events.append)
    assert not result.ok and result.touched and events == []
    assert result.error == ("lost contact with node2 during its upgrade (the remote shell ended: Connection to node2 "
                            "closed by remote host.); dpkg may still be running there")


@pytest.mark.parametrize("said", ["ssh: connect to host node2 port 22: Connection timed out",
                                  "kex_exchange_identification: read: Connection reset by peer",
                                  "Connection to node2 closed by remote host."])
def test_a_shell_that_ends_before_apply_said_ready_leaves_the_node_untouched_whatever_its_words(said: str) -> None:
    result = nodes_with_shell("sh", "-c", f"echo '{said}' >&2; exit 255").apply("node2", RUN_ID, lambda e: None)
    assert not result.ok and not result.touched
    assert result.error == f"could not reach node2 to upgrade it ({said}); nothing ran there"


@pytest.mark.parametrize("code", [1, 3])
def test_any_other_end_after_go_without_a_result_is_said_as_such(code: int) -> None:
    script = f"{READY}; read go; echo 'apply crashed' >&2; exit {code}"
    result = nodes_with_shell("sh", "-c", script).apply("node2", RUN_ID, lambda e: None)
    assert not result.ok and result.touched
    assert result.error == "the upgrade on node2 ended without a result: apply crashed"


def test_an_end_before_ready_that_is_not_the_remote_shell_is_untouched_too() -> None:
    result = nodes_with_shell("sh", "-c", "echo 'ImportError: no module' >&2; exit 1").apply(
        "node2", RUN_ID, lambda e: None)
    assert not result.ok and not result.touched
    assert result.error == "the upgrade on node2 did not start (ImportError: no module); nothing ran there"


def _apply_child(stdin: str) -> tuple[int, list[dict], str]:
    """The real handshake of ``apply`` in a child process, fed ``stdin`` (its upgrade replaced by an exit)."""
    code = ("import sys; from upgrader.cli import apply as a; "
            "a.upgrade_node = lambda *x, **k: sys.exit('touched'); sys.exit(a.apply(handshake=True))")
    proc = subprocess.run([sys.executable, "-c", code], input=stdin, capture_output=True, text=True, timeout=30,
                          cwd=PROJECT)
    return proc.returncode, [json.loads(line) for line in proc.stdout.splitlines()], proc.stderr


def test_apply_touches_nothing_when_its_go_never_comes() -> None:
    code, events, stderr = _apply_child("")
    assert code == 1 and "touched" not in stderr
    assert [e["event"] for e in events] == ["ready", "result"]
    assert events[1]["result"] == "no-go" and not events[1]["ok"]
    assert events[1]["error"] == "the orchestrator's connection ended before its go; nothing was changed"


def test_apply_goes_on_only_after_go() -> None:
    code, events, stderr = _apply_child("go\n")
    assert [e["event"] for e in events] == ["ready"]
    assert "touched" in stderr  # it went on to the upgrade (stubbed here to end the child)


def test_a_nodes_plan_says_its_pins_and_the_run_reads_them_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """``plan --local --json`` on a node with a pin file (written by the sync's own code), read back by Nodes.plan
    through a remote shell: the same holds; an unreadable pin file says null, read back as unknown."""
    from upgrader.cli import plan as plan_cli
    from upgrader.packages import holds as local
    from upgrader.packages.plan import Plan
    from upgrader.pacemaker.holds import Hold

    pinned = {Hold("demo-app", "3", RUN_ID, "node2", "2026-12-01T02:10:00Z"),
              Hold("libfoo1", "1.2-1", RUN_ID, "node2", "2026-12-01T02:10:00Z")}
    pins = tmp_path / "rolling-upgrade-holds"
    local.write_local(pinned, pins)
    monkeypatch.setattr(plan_cli, "local_plan", lambda: Plan("node2", ()))
    monkeypatch.setattr(local, "read_local", lambda: local.parse_preferences(pins.read_text(), str(pins)))
    for said in ("good", "unreadable"):
        if said == "unreadable":
            pins.write_text("Package: not one of ours\n")
        assert plan_cli.plan_json() == 0
        out = tmp_path / f"plan-{said}.json"
        out.write_text(capsys.readouterr().out)
        plan = nodes_with_shell("sh", "-c", f"cat {out}").plan("node2")
        assert plan.error is None
        assert plan.pins == (frozenset(pinned) if said == "good" else None)


def _heard(path: Path, words: list[str], limit: float = 10.0) -> list[str]:
    """The lines the fake apply wrote to ``path`` (what it read from us), once they are ``words`` (bounded)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        got = path.read_text().split() if path.exists() else []
        if got == words:
            return got
        time.sleep(0.02)
    return path.read_text().split() if path.exists() else []


WAITING = "echo '{\"event\": \"waiting\"}'"


def _listening(tmp_path: Path, after: str = "echo '{\"event\": \"result\", \"ok\": true, \"result\": \"ok\"}'",
               answers: bool = True) -> str:
    """A fake apply: ready, then each line it reads appended to tmp_path/heard, each wait answered waiting
    (as apply does; not when ``answers`` is false: a session that no longer carries), until go (then ``after``)."""
    heard = tmp_path / "heard"
    answer = f"{WAITING}; " if answers else ""
    return (f"{READY}; while read w; do echo \"$w\" >> {heard}; [ \"$w\" = wait ] && {{ {answer}continue; }}; "
            f"[ \"$w\" = go ] || exit 1; {after}; exit 0; done; exit 1")


def test_an_apply_started_ahead_waits_and_gets_its_go_only_from_apply(tmp_path: Path) -> None:
    progress = "echo '{\"event\": \"progress\", \"text\": \"installing\"}'"
    result_line = "echo '{\"event\": \"result\", \"ok\": true, \"result\": \"ok\"}'"
    nodes = nodes_with_shell("sh", "-c", _listening(tmp_path, after=f"{progress}; {result_line}"))
    nodes.prepare_apply("node2", RUN_ID, set_digest="0123456789abcdef")
    assert _heard(tmp_path / "heard", ["wait"]) == ["wait"]  # told to wait: the node still drains
    time.sleep(0.2)
    assert (tmp_path / "heard").read_text().split() == ["wait"]  # and nothing more until the go
    seen: list[dict] = []
    result = nodes.apply("node2", RUN_ID, seen.append, set_digest="0123456789abcdef")
    assert result.ok and result.touched
    assert seen == [{"event": "progress", "text": "installing"}]  # its progress reaches the upgrade's caller
    assert (tmp_path / "heard").read_text().split() == ["wait", "wait", "go"]  # the go after a wait answered


def test_an_apply_started_ahead_and_not_used_is_told_no(tmp_path: Path) -> None:
    nodes = nodes_with_shell("sh", "-c", _listening(tmp_path))
    nodes.prepare_apply("node2", RUN_ID)
    assert _heard(tmp_path / "heard", ["wait"]) == ["wait"]
    nodes.drop_prepared("node2")
    assert (tmp_path / "heard").read_text().split() == ["wait", "no"]
    nodes.drop_prepared("node2")  # once only; nothing left to drop


def test_a_go_that_comes_before_the_ready_is_given_at_the_ready(tmp_path: Path) -> None:
    nodes = nodes_with_shell("sh", "-c", "sleep 0.5; " + _listening(tmp_path))
    nodes.prepare_apply("node2", RUN_ID)
    result = nodes.apply("node2", RUN_ID, lambda e: None)  # at once: the fake is not ready yet
    assert result.ok and (tmp_path / "heard").read_text().split() == ["go"]


def test_an_apply_started_ahead_that_ended_before_its_go_is_started_afresh(tmp_path: Path) -> None:
    """Its shell dropped while the node drained: our go never reached it, so nothing ran there, and the
    upgrade starts a new apply; an apply for another package set is not used either."""
    from upgrader.orchestrator import remote

    tries = tmp_path / "tries"
    script = (f"echo x >> {tries}; [ $(wc -l < {tries}) -gt 1 ] || {{ echo 'Connection to node2 closed.' >&2; "
              f"exit 255; }}; " + _listening(tmp_path))
    nodes = nodes_with_shell("sh", "-c", script)
    nodes.prepare_apply("node2", RUN_ID)
    deadline = time.monotonic() + 10
    while not tries.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)
    started = time.monotonic()
    result = nodes.apply("node2", RUN_ID, lambda e: None)
    assert result.ok and len(tries.read_text().split()) == 2
    assert time.monotonic() - started < remote.PULSE_LIMIT  # its end was seen at once, not waited out
    assert (tmp_path / "heard").read_text().split() == ["go"]
    (tmp_path / "other").mkdir()
    other = nodes_with_shell("sh", "-c", _listening(tmp_path / "other"))
    other.prepare_apply("node2", RUN_ID, set_digest="aaaaaaaaaaaaaaaa")
    assert _heard(tmp_path / "other" / "heard", ["wait"]) == ["wait"]
    assert other.apply("node2", RUN_ID, lambda e: None, set_digest="bbbbbbbbbbbbbbbb").ok
    assert (tmp_path / "other" / "heard").read_text().split() == ["wait", "no", "go"]  # dropped; a new one went


def test_an_apply_started_ahead_is_bounded_from_its_go_by_the_upgrade_s_own_limit(tmp_path: Path) -> None:
    nodes = nodes_with_shell("sh", "-c", _listening(tmp_path, after="sleep 30"))
    nodes.prepare_apply("node2", RUN_ID, timeout=1)
    assert _heard(tmp_path / "heard", ["wait"]) == ["wait"]
    time.sleep(1.5)  # longer than the upgrade's limit: the wait does not count against it
    started = time.monotonic()
    result = nodes.apply("node2", RUN_ID, lambda e: None, timeout=1)
    assert not result.ok and result.touched and time.monotonic() - started < 10
    assert result.error and result.error.startswith("the upgrade on node2 ended without a result")


@pytest.mark.parametrize("stdin, touched, error", [
    ("wait\ngo\n", True, None),
    ("wait\nwait\ngo\n", True, None),
    ("wait\n", False, "the orchestrator's connection ended before its go; nothing was changed"),
    ("wait\nno\n", False, "the orchestrator said b'no', not go; nothing was changed"),
])
def test_apply_waits_as_told_and_goes_on_only_after_go(stdin: str, touched: bool, error: str | None) -> None:
    code, events, stderr = _apply_child(stdin)
    assert ("touched" in stderr) == touched
    assert [e["event"] for e in events].count("waiting") == stdin.split().count("wait")  # each wait answered
    if error:
        assert code == 1 and events[-1]["result"] == "no-go" and events[-1]["error"] == error


def test_a_session_that_no_longer_carries_gets_no_go_and_a_fresh_apply_says_what_it_finds(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The node cut off during its drain: the wait sent before the go goes unanswered, so no go is sent
    over that session (nothing ran there) and the upgrade starts a fresh apply, which cannot connect."""
    from upgrader.orchestrator import remote

    monkeypatch.setattr(remote, "PULSE_LIMIT", 0.5)
    tries = tmp_path / "tries"
    script = (f"echo x >> {tries}; [ $(wc -l < {tries}) -lt 2 ] || {{ echo 'ssh: connect to host node2 port 22: "
              f"No route to host' >&2; exit 255; }}; " + _listening(tmp_path, answers=False))
    nodes = nodes_with_shell("sh", "-c", script)
    nodes.prepare_apply("node2", RUN_ID)
    assert _heard(tmp_path / "heard", ["wait"]) == ["wait"]
    result = nodes.apply("node2", RUN_ID, lambda e: None)
    assert (tmp_path / "heard").read_text().split() == ["wait", "wait"]  # never a go
    assert not result.ok and not result.touched and len(tries.read_text().split()) == 2
    assert result.error == ("could not reach node2 to upgrade it (ssh: connect to host node2 port 22: No route to "
                            "host); nothing ran there")
