"""The journal: a run's start and end, each phase, refusals and failures, with fields to find them by.

Every event has ``RUN_ID``, ``NODE`` and ``PHASE`` (when it has one) and a
``MESSAGE_ID`` per kind of event (:data:`KINDS`), so that ``journalctl
RUN_ID=...`` shows one run across the APT hooks, the command and the
window, and ``journalctl MESSAGE_ID=...`` one kind of event across runs.

Where journald runs (its socket :data:`SOCKET` exists), the event is sent in
journald's native protocol (the same datagram ``sd_journal_sendv`` and
python3-systemd send: ``FIELD=value`` lines), spoken here with the standard
library only, because it must be cheap and bounded: the APT hooks start
without site-packages, and a stuck journald must not stall apt (a blocking
send under python3-systemd holds the interpreter; this one gives up after
:data:`~upgrader.runner.JOURNAL_TIMEOUT`). Elsewhere, or when the send
fails, the event goes to the system log (a datagram to /dev/log, as
``logger`` sends; ``logger`` itself when that socket takes no datagrams)
with its fields in the text (``[run=ID node=N phase=P event=KIND]``).
A socket whose send timed out (its daemon stuck) is not tried again for
:data:`STUCK_BACKOFF` seconds, and no ``logger`` is started for a stuck
/dev/log (it would wait on the same daemon): a run records dozens of
events, and each must not wait its timeout again. Nothing here raises.
"""

from __future__ import annotations

import os
import socket
import stat
import struct
import sys
import time
from typing import Any, Mapping

SOCKET = "/run/systemd/journal/socket"
DEVLOG = "/dev/log"  # the system log's socket, where there is no journald
IDENTIFIER = "rolling-upgrade"
STUCK_BACKOFF = 60.0  # seconds a socket whose send timed out is left alone (its daemon is stuck)
MAX_MESSAGE = 16384  # characters of MESSAGE sent (a datagram has a size limit; the log file keeps it all)

# kind -> (MESSAGE_ID, what it says). Fixed: a MESSAGE_ID is what a person's journalctl filter and a log
# shipper's rule are written against; never change one, add a kind instead.
KINDS: dict[str, tuple[str, str]] = {
    "run-start": ("83ae278c1a8a40fd8bf1ab21257036ef", "a rolling upgrade took the upgrade lock and starts"),
    "run-end": ("261a619e1a7b4e23b3eb6fbca296a60c", "a run (run, node, node --finish, window) ended: "
                "EXIT_CODE, OUTCOME"),
    "phase-start": ("701068c6ef6f42a196289d6a5449932c", "a phase begins: PHASE drain, upgrade, fail-over, "
                    "verify, stack-stop, stack-start, reboot, stage, or node (a node's work)"),
    "phase-end": ("a167948c623c41969880ce031379e7bf", "a phase ended well: RESULT (a node's work, its "
                  "upgrade, its staging, the run's clean-up)"),
    "refusal": ("19a0d50af7fa4f6d9fbd7ffd9fbaa745", "refused, nothing changed: a preflight check, the lock "
                "held, the APT guard"),
    "failure": ("ae075967ff6e4e5a9a379299f315ae81", "a failure: a fail back, a quarantine, a failed "
                "upgrade, a stop that needs a person, an unexpected error"),
    "window": ("cde3b95de78243f8b1ba7726f996a8b2", "the nightly window's decisions: closed, waiting, "
               "a node deferred, its summary"),
    "apt": ("8ce86ad934b64beaada1fba49c093b0f", "the APT hooks: an apt run allowed, its end and its "
            "finishing step"),
    "note": ("eb81f27aa3bd405ca47eadade182dd1b", "anything else a run records: resources moved, builds "
             "held, a node deferred, an interrupted run rolled back"),
}
LEVELS = {"emerg": 0, "alert": 1, "crit": 2, "err": 3, "error": 3, "warning": 4, "warn": 4, "notice": 5,
          "info": 6, "debug": 7}
LEVEL_NAMES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
FACILITIES = {"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "cron": 9, "authpriv": 10,
              **{f"local{i}": 16 + i for i in range(8)}}
# Where the caller is not: CODE_FILE/LINE/FUNC name the first frame outside these (the choke points).
_PLUMBING = ("upgrader/journal.py", "upgrader/syslog.py", "upgrader/history.py")
BAD_ENDS = ("failed", "quarantined", "dpkg-failed", "unknown")


def level(priority: str | int) -> int:
    """``user.warning``, ``warning`` or 4 -> 4; anything unknown is ``notice`` (5)."""
    if isinstance(priority, int):
        return min(7, max(0, priority))
    return LEVELS.get(str(priority).rsplit(".", 1)[-1].lower(), 5)


def facility(priority: str | int) -> str:
    """``auth.warning`` -> ``auth``; ``user`` unless a known facility is named."""
    name = priority.rsplit(".", 1)[0].lower() if isinstance(priority, str) and "." in priority else "user"
    return name if name in FACILITIES else "user"


def fields(kind: str, message: str, *, run_id: str | None = None, node: str | None = None,
           phase: str | None = None, priority: str | int = "notice", identifier: str = IDENTIFIER,
           code: tuple[str, int, str] | None = None, extra: Mapping[str, Any] | None = None) -> list[tuple[str, str]]:
    """The event's journal fields, in order (an unknown kind is a ``note``; empty values are left out)."""
    message_id = KINDS.get(kind, KINDS["note"])[0]
    found = [("MESSAGE", message[:MAX_MESSAGE]), ("PRIORITY", str(level(priority))),
             ("SYSLOG_FACILITY", str(FACILITIES[facility(priority)])),
             ("SYSLOG_IDENTIFIER", identifier), ("MESSAGE_ID", message_id), ("UPGRADER_EVENT", kind)]
    found += [(k, str(v)) for k, v in (("RUN_ID", run_id), ("NODE", node), ("PHASE", phase)) if v]
    if code:
        found += [("CODE_FILE", code[0]), ("CODE_LINE", str(code[1])), ("CODE_FUNC", code[2])]
    for key, value in (extra or {}).items():
        name = key.upper()
        if value is not None and value != "" and name.replace("_", "").isalnum() and name[0].isalpha() and name.isascii():
            found.append((name, str(value)))
    return found


def encode(found: list[tuple[str, str]]) -> bytes:
    """journald's native protocol: ``FIELD=value\\n``; a value with a newline as ``FIELD\\n``, its length
    (64-bit little endian), the value and ``\\n``."""
    out = bytearray()
    for key, value in found:
        data = value.encode("utf-8", "replace")
        if b"\n" in data:
            out += key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += key.encode() + b"=" + data + b"\n"
    return bytes(out)


def text(message: str, *, run_id: str | None = None, node: str | None = None, phase: str | None = None,
         kind: str = "note") -> str:
    """The line for the system log where there is no journald: the message and its fields readable, on one
    line (a control character, say a newline in an environment variable, never starts a forged line)."""
    said = " ".join(f"{k}={v}" for k, v in (("run", run_id), ("node", node), ("phase", phase)) if v)
    line = f"{message} [{said + ' ' if said else ''}event={kind}]"
    return "".join(ch if ch.isprintable() else " " for ch in line)


def running(path: str | None = None) -> bool:
    """Whether journald's native socket is there (a socket, not a leftover file)."""
    try:
        return stat.S_ISSOCK(os.stat(path or SOCKET).st_mode)
    except OSError:
        return False


_stuck: dict[str, float] = {}  # socket path -> when it may be tried again (its last send timed out)


def stuck(path: str) -> bool:
    """Whether a send to ``path`` timed out less than :data:`STUCK_BACKOFF` seconds ago."""
    return time.monotonic() < _stuck.get(path, 0.0)


def _datagram(data: bytes, path: str) -> None:
    """One datagram to ``path`` within JOURNAL_TIMEOUT; a timeout marks the socket stuck (:func:`stuck`)."""
    from upgrader.runner import JOURNAL_TIMEOUT

    if stuck(path):
        raise TimeoutError(f"{path} timed out less than {STUCK_BACKOFF:g}s ago")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.settimeout(JOURNAL_TIMEOUT)
            s.sendto(data, path)
    except TimeoutError:
        _stuck[path] = time.monotonic() + STUCK_BACKOFF
        raise
    _stuck.pop(path, None)


def send(found: list[tuple[str, str]], path: str | None = None) -> bool:
    """One datagram to journald; False (never an exception) when it could not be sent in time."""
    try:
        _datagram(encode(found), path or SOCKET)
        return True
    except (OSError, ValueError):
        return False


def event(kind: str, message: str, *, run_id: str | None = None, node: str | None = None,
          phase: str | None = None, priority: str | int = "notice", identifier: str = IDENTIFIER,
          **extra: Any) -> str:
    """Say one event: to the journal where journald runs, else to the system log; where it went
    (``journal``, ``syslog``, or ``""`` when neither took it). Never raises, never waits long."""
    try:
        if running():
            found = fields(kind, message, run_id=run_id, node=node, phase=phase, priority=priority,
                           identifier=identifier, code=caller(), extra=extra)
            if send(found):
                return "journal"
        return "syslog" if logger(text(message, run_id=run_id, node=node, phase=phase, kind=kind),
                                  priority, identifier) else ""
    except Exception:  # noqa: BLE001 - a log line must never stop what it logs
        return ""


def logger(line: str, priority: str | int = "notice", identifier: str = IDENTIFIER, path: str | None = None) -> bool:
    """One line to the system log: a datagram to its socket (:data:`DEVLOG`, what ``logger`` sends, without
    a process per line: a run records dozens), else through ``logger`` itself (a stream socket, say);
    bounded, and a missing log daemon is ignored."""
    from upgrader.runner import LOGGER_TIMEOUT, Runner

    pri = FACILITIES[facility(priority)] * 8 + level(priority)
    datagram = f"<{pri}>{identifier}[{os.getpid()}]: {line[:MAX_MESSAGE]}".encode("utf-8", "replace")
    try:
        _datagram(datagram, path or DEVLOG)
        return True
    except FileNotFoundError:  # no log daemon here: logger would find none either
        return False
    except TimeoutError:  # its daemon is stuck: logger would wait on it too
        return False
    except (OSError, ValueError):
        pass
    where = f"{facility(priority)}.{LEVEL_NAMES[level(priority)]}"
    done = Runner(timeout=LOGGER_TIMEOUT).call(["logger", "-t", identifier, "-p", where, "--", line])
    return done.returncode == 0


def caller() -> tuple[str, int, str] | None:
    """File, line and function of the first frame outside the journal's own choke points."""
    try:
        frame = sys._getframe(1)
    except ValueError:
        return None
    while frame is not None and frame.f_code.co_filename.endswith(_PLUMBING):
        frame = frame.f_back
    return (frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name) if frame else None


def of_record(run_id: str, node: str | None, phase: str, event_name: str,
              data: Mapping[str, Any]) -> tuple[str, str, str, dict[str, Any]] | None:
    """A history record (:meth:`upgrader.history.History.record`) as a journal event: (kind, priority,
    message, extra fields), or None for the records their writers say themselves (the window's end, an
    apt run's end: through :func:`upgrader.syslog.syslog`)."""
    if phase in ("window", "apt"):
        return None
    who = f"{node}: " if node else ""
    result = data.get("result")
    if (phase, event_name) == ("run", "start"):
        return "run-start", "notice", f"run {run_id} started on {data.get('holder') or '?'}", {}
    if (phase, event_name) == ("run", "end"):
        nodes = data.get("nodes") or {}
        said = ", ".join(f"{n} {r}" for n, r in nodes.items()) or "no node"
        return "phase-end", "notice", f"run {run_id}: cleaned up, lock released ({said})", {}
    if phase == "run" and event_name == "note":
        why = data.get("reason") or data.get("error") or result or "stopped"
        return "failure", "err", f"{who}run {run_id} stopped: {why}", {"RESULT": result}
    if phase == "quarantine":
        return "failure", "err", f"{who}quarantined: standby, its resources on the other nodes", {}
    if event_name == "start":
        kind = "failure" if phase == "fail-back" else "phase-start"
        extra = {"PACKAGES": len(data["changes"])} if isinstance(data.get("changes"), list) else {}
        return kind, "err" if kind == "failure" else "info", f"{who}{phase} begins", extra
    if event_name == "end":
        bad = data.get("ok") is False or result in BAD_ENDS or bool(data.get("error"))
        outcome = result or ("ok" if data.get("ok") is not False else "failed")
        why = data.get("error") or "; ".join(map(str, data.get("problems") or []))
        seconds = data.get("seconds")
        message = f"{who}{phase} ended: {outcome}" + (f" in {seconds}s" if seconds is not None else "") + (
            f": {why}" if why else "")
        return ("failure" if bad else "phase-end"), "err" if bad else "info", message, {
            "RESULT": outcome, "SECONDS": seconds}
    if event_name == "deferred":
        return "note", "notice", f"{who}deferred: {data.get('reason')}", {"RESULT": "deferred"}
    said = "; ".join(f"{k} {v}" for k, v in data.items() if k in ("moves", "actions", "reason", "download"))
    return "note", "info", f"{who}{phase}{': ' + said if said else ''}", {}


def record(run_id: str, node: str | None, phase: str, event_name: str, data: Mapping[str, Any]) -> str:
    """Say a history record in the journal (:func:`of_record`); never raises."""
    try:
        found = of_record(run_id, node, phase, event_name, data)
        if found is None:
            return ""
        kind, priority, message, extra = found
        return event(kind, message, run_id=run_id, node=node, phase=phase, priority=priority, **extra)
    except Exception:  # noqa: BLE001 - the history's own write goes on whatever the journal did
        return ""


def run_end(run_id: str, code: int, outcome: str, *, refused: str | None = None, error: str | None = None,
            source: str = "run", node: str | None = None) -> str:
    """A run's end with its exit code; a refusal is said first as its own event."""
    if refused:
        event("refusal", refused, run_id=run_id, node=node, priority="warning", phase="preflight")
    line = f"run {run_id} ({source}) ended: {outcome.replace('_', ' ')} (exit {int(code)})" + (
        f": {error}" if error else "")
    return event("run-end", line, run_id=run_id, node=node, priority="notice" if int(code) in (0, 3) else "err",
                 EXIT_CODE=int(code), OUTCOME=outcome, SOURCE=source)
