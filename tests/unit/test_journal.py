"""The journal: its fields and MESSAGE_IDs, the native protocol on a real datagram socket, the fallback to
the system log, and that saying an event never raises."""

from __future__ import annotations

import re
import os
import socket
import struct
import time
from pathlib import Path
from typing import Iterator

import pytest

from upgrader import journal, syslog
from upgrader.history import History


def parse(datagram: bytes) -> dict[str, str]:
    """journald's side of the native protocol (what journald-native.c accepts), to read what was sent."""
    found: dict[str, str] = {}
    rest = datagram
    while rest:
        line, sep, after = rest.partition(b"\n")
        assert sep, f"an unterminated field: {rest!r}"
        if b"=" in line:
            key, _, value = line.partition(b"=")
            rest = after
        else:
            key, (size,) = line, struct.unpack("<Q", after[:8])
            value, end = after[8:8 + size], after[8 + size:8 + size + 1]
            assert end == b"\n", "a binary field not closed by a newline"
            rest = after[8 + size + 1:]
        found[key.decode()] = value.decode()
    return found


@pytest.fixture()
def journald(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A datagram socket bound where the journal module looks for journald's."""
    path = tmp_path / "socket"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(path))
    listener.settimeout(5)
    monkeypatch.setattr(journal, "SOCKET", str(path))
    yield listener
    listener.close()


@pytest.fixture()
def no_logger(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str | int, str]]:
    """The system log's fallback, kept here instead of run (no line goes to this machine's syslog)."""
    lines: list[tuple[str, str | int, str]] = []

    def keep(line: str, priority: str | int = "notice", identifier: str = journal.IDENTIFIER) -> bool:
        lines.append((line, priority, identifier))
        return True

    monkeypatch.setattr(journal, "logger", keep)
    return lines


def test_every_kind_has_its_own_fixed_32_hex_message_id() -> None:
    ids = [message_id for message_id, _ in journal.KINDS.values()]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == len(ids)
    assert {"run-start", "run-end", "phase-start", "phase-end", "refusal", "failure", "window", "apt"} <= set(journal.KINDS)


def test_the_fields_name_the_run_node_phase_and_kind() -> None:
    found = dict(journal.fields("phase-start", "node2: drain begins", run_id="20260101T000000-node1-abcdef",
                                node="node2", phase="drain", priority="user.info", code=("/x.py", 7, "drain"),
                                extra={"packages": 3, "seconds": None}))
    assert found == {
        "MESSAGE": "node2: drain begins", "PRIORITY": "6", "SYSLOG_FACILITY": "1", "SYSLOG_IDENTIFIER": "rolling-upgrade",
        "MESSAGE_ID": journal.KINDS["phase-start"][0], "UPGRADER_EVENT": "phase-start",
        "RUN_ID": "20260101T000000-node1-abcdef", "NODE": "node2", "PHASE": "drain",
        "CODE_FILE": "/x.py", "CODE_LINE": "7", "CODE_FUNC": "drain", "PACKAGES": "3"}


def test_fields_without_a_run_or_node_leave_them_out_and_an_unknown_kind_is_a_note() -> None:
    found = dict(journal.fields("no-such-kind", "hello", priority="auth.warning", extra={"bad name": 1, "_X": 2}))
    assert found["MESSAGE_ID"] == journal.KINDS["note"][0]
    assert (found["PRIORITY"], found["SYSLOG_FACILITY"]) == ("4", "4")
    assert not {"RUN_ID", "NODE", "PHASE", "BAD NAME", "_X"} & set(found)


@pytest.mark.parametrize(("priority", "level"), [("user.err", 3), ("warning", 4), ("user.notice", 5), (6, 6),
                                                  ("nonsense", 5), (99, 7)])
def test_priorities_are_syslog_levels(priority: str | int, level: int) -> None:
    assert journal.level(priority) == level


def test_a_value_with_a_newline_is_sent_with_its_length() -> None:
    data = journal.encode([("MESSAGE", "two\nlines"), ("NODE", "node1")])
    assert data == b"MESSAGE\n" + struct.pack("<Q", 9) + b"two\nlines\nNODE=node1\n"
    assert parse(data) == {"MESSAGE": "two\nlines", "NODE": "node1"}


def test_an_event_goes_to_journald_as_one_datagram_with_its_fields(journald: socket.socket, no_logger: list) -> None:
    where = journal.event("failure", "node2: quarantined", run_id="r1", node="node2", phase="quarantine",
                          priority="user.err", RESULT="quarantined")
    assert where == "journal" and no_logger == []
    got = parse(journald.recv(65536))
    assert (got["MESSAGE"], got["RUN_ID"], got["NODE"], got["PHASE"], got["PRIORITY"], got["RESULT"]) == (
        "node2: quarantined", "r1", "node2", "quarantine", "3", "quarantined")
    assert got["MESSAGE_ID"] == journal.KINDS["failure"][0]
    assert got["CODE_FILE"] == __file__ and got["CODE_FUNC"] == "test_an_event_goes_to_journald_as_one_datagram_with_its_fields"


def test_a_history_record_is_said_with_the_caller_of_the_history_as_its_code(journald: socket.socket,
                                                                              tmp_path: Path) -> None:
    History(tmp_path / "h.jsonl").record("r1", "node3", "upgrade", "start")
    got = parse(journald.recv(65536))
    assert (got["MESSAGE_ID"], got["PHASE"], got["NODE"], got["RUN_ID"]) == (
        journal.KINDS["phase-start"][0], "upgrade", "node3", "r1")
    assert got["CODE_FILE"] == __file__  # not history.py: the frame that recorded it


def test_without_journald_the_system_log_gets_the_fields_in_its_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     no_logger: list) -> None:
    monkeypatch.setattr(journal, "SOCKET", str(tmp_path / "none"))
    assert journal.event("refusal", "refused: node2 is quarantined", run_id="r1", phase="preflight",
                         priority="user.warning") == "syslog"
    assert no_logger == [("refused: node2 is quarantined [run=r1 phase=preflight event=refusal]", "user.warning",
                          "rolling-upgrade")]


def test_a_plain_file_where_the_socket_should_be_is_no_journald(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               no_logger: list) -> None:
    (tmp_path / "socket").write_text("")
    monkeypatch.setattr(journal, "SOCKET", str(tmp_path / "socket"))
    assert journal.event("note", "x") == "syslog" and len(no_logger) == 1


def test_a_socket_nobody_listens_on_falls_back_to_the_system_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 no_logger: list) -> None:
    path = tmp_path / "socket"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dead.bind(str(path))
    dead.close()  # the socket file stays, journald is gone: the send is refused
    monkeypatch.setattr(journal, "SOCKET", str(path))
    assert journal.event("run-start", "run r1 started", run_id="r1") == "syslog"
    assert no_logger[0][0] == "run r1 started [run=r1 event=run-start]"


def test_a_journald_that_does_not_read_never_holds_the_caller(journald: socket.socket, monkeypatch: pytest.MonkeyPatch,
                                                              no_logger: list) -> None:
    from upgrader import runner

    monkeypatch.setattr(runner, "JOURNAL_TIMEOUT", 0.1)
    said: list[str] = []
    started = time.monotonic()
    while "syslog" not in said and len(said) < 2000:  # more than its queue holds, never read
        said.append(journal.event("note", "x" * 4000))
    assert said[0] == "journal" and said[-1] == "syslog"  # the send gave up in time: the line went to syslog
    assert time.monotonic() - started < 10


def test_a_stuck_journald_costs_its_timeout_once_not_on_every_event(journald: socket.socket,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   no_logger: list) -> None:
    """A run records dozens of events: once a send timed out, journald is left alone for STUCK_BACKOFF
    seconds (the lines go to the system log at once), then tried again."""
    from upgrader import runner

    monkeypatch.setattr(runner, "JOURNAL_TIMEOUT", 0.2)
    said: list[str] = []
    while "syslog" not in said and len(said) < 2000:  # fill its queue, never read
        said.append(journal.event("note", "x" * 4000))
    started = time.monotonic()
    assert [journal.event("note", "y") for _ in range(20)] == ["syslog"] * 20
    assert time.monotonic() - started < 0.2  # not 20 timeouts
    while True:  # journald reads again: it is tried again once the backoff is over
        try:
            journald.setblocking(False)
            journald.recv(65536)
        except BlockingIOError:
            break
    journal._stuck[journal.SOCKET] = time.monotonic() - 1  # the backoff is over
    assert journal.event("note", "z") == "journal"


def test_a_stuck_log_socket_starts_no_logger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from upgrader import runner

    monkeypatch.setattr(runner, "JOURNAL_TIMEOUT", 0.1)
    monkeypatch.setattr(journal, "SOCKET", str(tmp_path / "none"))
    monkeypatch.setattr(journal, "DEVLOG", str(tmp_path / "log"))
    started: list[object] = []
    monkeypatch.setattr(runner.Runner, "call", lambda self, argv, **kw: started.append(argv))
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as daemon:  # bound, never read: stuck
        daemon.bind(str(tmp_path / "log"))
        said = [journal.event("note", "x" * 4000) for _ in range(300)]
    assert said[0] == "syslog" and said[-1] == ""
    assert started == []  # logger would wait on the same stuck socket


def test_nothing_raises_when_the_fallback_fails_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(journal, "SOCKET", str(tmp_path / "none"))

    def broken(*args: object, **kw: object) -> bool:
        raise OSError("no logger")

    monkeypatch.setattr(journal, "logger", broken)
    assert journal.event("failure", "x", run_id="r1") == ""
    monkeypatch.setattr(journal, "of_record", broken)
    assert journal.record("r1", None, "run", "start", {}) == ""


def test_a_missing_logger_program_is_no_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(journal, "SOCKET", str(tmp_path / "none"))
    (tmp_path / "devlog").write_text("")  # a log socket that takes no datagram: logger's turn
    monkeypatch.setattr(journal, "DEVLOG", str(tmp_path / "devlog"))
    monkeypatch.setenv("PATH", str(tmp_path))  # no logger here
    assert journal.event("note", "x") == ""
    monkeypatch.setattr(journal, "DEVLOG", str(tmp_path / "gone"))  # no log daemon at all
    assert journal.event("note", "x") == ""


def test_without_journald_a_line_is_one_datagram_to_the_log_socket_no_process(tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """What logger sends (``<PRI>TAG[PID]: line``), sent here: a run records dozens of lines."""
    monkeypatch.setattr(journal, "SOCKET", str(tmp_path / "none"))
    monkeypatch.setattr(journal, "DEVLOG", str(tmp_path / "log"))
    monkeypatch.setenv("PATH", str(tmp_path))  # a logger process would fail: none is needed
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as daemon:
        daemon.bind(str(tmp_path / "log"))
        daemon.settimeout(5)
        assert journal.event("failure", "node2: quarantined", run_id="r1", node="node2", priority="err") == "syslog"
        got = daemon.recv(65536).decode()
    assert got == f"<11>rolling-upgrade[{os.getpid()}]: node2: quarantined [run=r1 node=node2 event=failure]"


@pytest.mark.parametrize(("record", "kind", "phase"), [
    (("r1", None, "run", "start", {"holder": "node1"}), "run-start", "run"),
    (("r1", None, "run", "end", {"nodes": {"node1": "ok"}}), "phase-end", "run"),
    (("r1", "node2", "drain", "start", {}), "phase-start", "drain"),
    (("r1", "node2", "node", "start", {"changes": [{}, {}]}), "phase-start", "node"),
    (("r1", "node2", "fail-back", "start", {}), "failure", "fail-back"),
    (("r1", "node2", "upgrade", "end", {"ok": True, "error": None, "seconds": 4.2}), "phase-end", "upgrade"),
    (("r1", "node2", "upgrade", "end", {"ok": False, "error": "dpkg failed"}), "failure", "upgrade"),
    (("r1", "node2", "node", "end", {"result": "quarantined", "error": "bad check"}), "failure", "node"),
    (("r1", "node2", "verify", "end", {"ok": False, "problems": ["app1 down"]}), "failure", "verify"),
    (("r1", "node2", "quarantine", "note", {}), "failure", "quarantine"),
    (("r1", "node2", "run", "note", {"error": "an unexpected error (KeyError: 'x')"}), "failure", "run"),
    (("r1", None, "run", "note", {"result": "stopped", "reason": "SIGTERM"}), "failure", "run"),
    (("r1", "node3", "node", "deferred", {"reason": "the window closes"}), "note", "node"),
    (("r1", "node2", "move", "note", {"moves": ["app1 -> node3"]}), "note", "move"),
])
def test_history_records_become_events_of_their_kind(record: tuple, kind: str, phase: str,
                                                    journald: socket.socket) -> None:
    assert journal.record(*record) == "journal"
    got = parse(journald.recv(65536))
    assert (got["MESSAGE_ID"], got["PHASE"], got["RUN_ID"], got.get("NODE")) == (
        journal.KINDS[kind][0], phase, "r1", record[1])
    assert int(got["PRIORITY"]) == 3 if kind == "failure" else int(got["PRIORITY"]) >= 5


def test_the_windows_and_the_apt_runs_ends_are_left_to_their_writers() -> None:
    """Both say them through syslog.syslog with their own kind: one event each, not two."""
    assert journal.of_record("r1", None, "window", "end", {"result": "done"}) is None
    assert journal.of_record("apt-1-2", "node1", "apt", "end", {"result": "ok"}) is None


def test_a_failed_upgrade_says_why(journald: socket.socket) -> None:
    journal.record("r1", "node2", "upgrade", "end", {"ok": False, "error": "dpkg: error processing app", "seconds": 3.0})
    got = parse(journald.recv(65536))
    assert got["MESSAGE"] == "node2: upgrade ended: failed in 3.0s: dpkg: error processing app"
    assert (got["RESULT"], got["SECONDS"], got["PRIORITY"]) == ("failed", "3.0", "3")


def test_a_refused_run_says_its_refusal_then_its_end_with_the_exit_code(journald: socket.socket) -> None:
    journal.run_end("r1", 3, "refused", refused="refused: node2 is quarantined", source="run", node="node1")
    refusal, end = parse(journald.recv(65536)), parse(journald.recv(65536))
    assert (refusal["MESSAGE_ID"], refusal["MESSAGE"], refusal["RUN_ID"]) == (
        journal.KINDS["refusal"][0], "refused: node2 is quarantined", "r1")
    assert (end["MESSAGE_ID"], end["EXIT_CODE"], end["OUTCOME"], end["SOURCE"], end["NODE"]) == (
        journal.KINDS["run-end"][0], "3", "refused", "run", "node1")


def test_syslog_lines_carry_their_kind_and_still_reach_the_log_file(journald: socket.socket, tmp_path: Path) -> None:
    syslog.syslog("run 5-6: refused: node2 is quarantined", "user.warning", root=str(tmp_path), kind="refusal",
                  run_id="apt-5-6", node="node1", phase="pre-invoke")
    got = parse(journald.recv(65536))
    assert (got["MESSAGE_ID"], got["RUN_ID"], got["NODE"], got["PHASE"], got["PRIORITY"]) == (
        journal.KINDS["refusal"][0], "apt-5-6", "node1", "pre-invoke", "4")
    assert "refused: node2 is quarantined" in (tmp_path / syslog.HOOKS_LOG.lstrip("/")).read_text()


def test_the_history_is_said_even_when_it_cannot_be_written(journald: socket.socket, tmp_path: Path) -> None:
    from upgrader.history import HistoryError

    (tmp_path / "not-a-dir").write_text("")
    with pytest.raises(HistoryError):
        History(tmp_path / "not-a-dir" / "h.jsonl").record("r1", None, "run", "start", holder="node1")
    assert parse(journald.recv(65536))["MESSAGE"] == "run r1 started on node1"


def test_the_readme_lists_every_message_id_with_its_kind() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for kind, (message_id, _) in journal.KINDS.items():
        assert f"| `{message_id}` | {kind} |" in readme, kind


def test_a_system_log_line_is_one_line_whatever_its_fields_carry() -> None:
    line = journal.text("refused\nFeb  1 00:00:00 node1 sshd: forged", run_id="apt-1\nforged", kind="refusal")
    assert "\n" not in line and line == "refused Feb  1 00:00:00 node1 sshd: forged [run=apt-1 forged event=refusal]"
