"""The one way upgrader runs an external command.

Every call goes through :class:`Runner`: an argument list (never a shell), a
timeout on every call, output captured, and exit codes given the meaning
Pacemaker's tools document (``crm_exit_t``). Errors name the command and why
it failed, so a refusal at 3 a.m. reads as a sentence, not a traceback.
"""

from __future__ import annotations

import os
import select
import shlex
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping, Sequence

# Pacemaker's exit codes (include/crm/common/results.h, crm_exit_t).
EXIT_MEANINGS: dict[int, str] = {
    0: "ok",
    1: "error",
    2: "invalid parameter",
    3: "unimplemented feature",
    4: "insufficient privileges",
    5: "not installed",
    6: "not configured",
    7: "not running",
    64: "usage error",
    65: "data error",
    66: "no input",
    69: "service unavailable",
    70: "internal software bug",
    71: "system error",
    73: "cannot create file",
    76: "protocol error",
    77: "permission denied",
    78: "configuration error (e.g. schema validation failed)",
    100: "fatal error",
    101: "panic",
    102: "not connected to the cluster",
    103: "cluster software too old",
    104: "digest mismatch",
    105: "no such object",
    106: "quorum required",
    107: "operation not safe",
    108: "object already exists",
    109: "more than one object matched",
    110: "object expired",
    111: "object not yet in effect",
    112: "could not determine status",
    113: "not satisfied",
    124: "timed out",
}

CONFIG_INVALID = 78  # crm_verify: the configuration has errors (Pacemaker 2.1: or only warnings)
NOT_CONNECTED = 102
NO_SUCH_OBJECT = 105
ALREADY_EXISTS = 108
TIMED_OUT = 124

# How long each external command may take, in seconds (its Runner's timeout), in one table. Bounds that
# are settings are not here: Settle-Timeout (stack stop/start), Apply-Timeout, Hooks::Query-Timeout,
# Hooks::Finish-Wait, Health::Timeout (capped per attempt by health.live.ATTEMPT_TIMEOUT), Rejoin-Timeout.
DEFAULT_TIMEOUT = 30.0  # any command given no bound of its own (crm_mon, cibadmin, crm_attribute, crm_resource, ...)
SIMULATE_TIMEOUT = 120.0  # crm_simulate --run on a copy of the CIB: the scheduler alone, no daemon asked, so no
# frozen daemon to bound; its time grows with resources and constraints (0.11 s at 120 applications on 3 nodes, 2
# CPUs; 13 s with --simulate, and three of those at once took over 30 s): a wide bound, never cut by a busy node
DC_QUERY_TIMEOUT = 5.0  # crmadmin --status: the DC's controller state, while waiting for the cluster to settle
LOGGER_TIMEOUT = 5  # logger: one line to the system log
JOURNAL_TIMEOUT = 1.0  # one datagram to journald's socket (not a command: a stuck journald must not stall apt)
REBOOT_PROBE_TIMEOUT = 15  # one look for /run/upgrader/reboot-pending on a node coming back from its reboot
LXC_TIMEOUT = 10  # lxc-ls, lxc-info on a node (rolling-upgrade patched)
RUN_STATE_TIMEOUT = 30  # rolling-upgrade run-state on the node holding an apt run's lock
LOCK_MARK_TIMEOUT = 30  # the APT hooks' finishing step marking a failed upgrade's lock dpkg-failed
NODE_TIMEOUT = 60  # a command on a node (orchestrator.remote.Nodes.runner) given no bound of its own
VERIFY_TIMEOUT = 60.0  # crm_verify --live-check: the live CIB, before a run that upgrades the cluster stack
HOLDS_SYNC_TIMEOUT = 60  # rolling-upgrade holds --sync on a node: its cibadmin (DEFAULT_TIMEOUT) and the pin file write
REPORT_MARGIN = 60  # on top of a wait a command on a node does itself (Settle-Timeout, dpkg-state --wait)
DPKG_QUERY_TIMEOUT = 60  # dpkg-query -W: the versions an apt run left (the APT hooks' record)
SENDMAIL_TIMEOUT = 60.0  # sendmail -t: the run's report mail
DPKG_AUDIT_TIMEOUT = 120  # dpkg --audit (rolling-upgrade dpkg-state)
REBOOT_COMMAND_TIMEOUT = 120  # Reboot-Command on the node (rolling-upgrade stack reboot)
REBOOT_ASK_TIMEOUT = 120  # rolling-upgrade stack reboot, asked of a node by the orchestrator
PLAN_TIMEOUT = 180  # rolling-upgrade plan --local --json on a node (python-apt opens its cache)
DPKG_WAIT = 600.0  # an interrupted upgrade still ending on its node (dpkg-state --wait), then dpkg --configure -a
DPKG_RECHECK_WAIT = 60  # dpkg-state --wait once that dpkg --configure -a ran


@dataclass(frozen=True)
class Result:
    """What a finished command left behind."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    missing: bool = False  # the program itself was not found (an exit code of 127 alone does not say so)

    @property
    def meaning(self) -> str:
        return EXIT_MEANINGS.get(self.returncode, f"exit code {self.returncode}")

    @property
    def last_words(self) -> str:
        """Its stderr's last line, or the exit code's meaning: why it failed, in one line."""
        return _last_line(self.stderr) or self.meaning


class CommandError(Exception):
    """A command failed: says which one, its exit code's meaning and its last words."""

    def __init__(self, result: Result, what: str | None = None) -> None:
        self.result = result
        self.returncode = result.returncode
        detail = _last_line(result.stderr) or _last_line(result.stdout)
        text = f"{what or _short(result.argv)} failed: {result.meaning}"
        if detail:
            text += f" ({detail})"
        super().__init__(text)


class CommandTimeout(CommandError):
    """A command ran past its timeout and was killed."""

    def __init__(self, result: Result, timeout: float, what: str | None = None) -> None:
        super().__init__(result, what)
        self.timeout = timeout
        self.args = (f"{what or _short(result.argv)} did not answer within {timeout:g}s and was killed",)


class CommandMissing(CommandError):
    """The program is not installed."""

    def __init__(self, result: Result) -> None:
        super().__init__(result)
        self.args = (f"{result.argv[0]} is not installed (needed for: {_short(result.argv)})",)


@dataclass
class Runner:
    """Runs commands with a timeout and no shell.

    ``env`` is added to the caller's environment (e.g. ``{"CIB_file": path}``
    to point Pacemaker's tools at a copy of the CIB); ``prefix`` is put in
    front of every argv (e.g. a remote shell or ``nsenter``). ``remote``: the
    prefix is a remote shell that joins the words after it into one command
    line for a shell on the other side (as ssh does), so each word is quoted
    for that shell: a value never becomes shell syntax there.
    """

    env: Mapping[str, str] = field(default_factory=dict)
    prefix: Sequence[str] = ()
    timeout: float = DEFAULT_TIMEOUT
    remote: bool = False

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        input: str | None = None,
        ok: Sequence[int] = (0,),
        what: str | None = None,
        cwd: str | os.PathLike | None = None,
    ) -> Result:
        """Run ``argv``; raise :class:`CommandError` unless its exit code is in ``ok``."""
        result = self.call(argv, timeout=timeout, input=input, cwd=cwd)
        if result.returncode == TIMED_OUT and TIMED_OUT not in ok:
            raise CommandTimeout(result, timeout or self.timeout, what)
        if result.returncode not in ok:
            if result.missing:
                raise CommandMissing(result)
            raise CommandError(result, what)
        return result

    def call(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        input: str | None = None,
        cwd: str | os.PathLike | None = None,
    ) -> Result:
        """Run ``argv`` and return its result whatever the exit code.

        A timeout is reported as exit code 124, a missing program as 127.
        """
        full = self._full(argv)
        limit = timeout if timeout is not None else self.timeout
        env = dict(os.environ, **self.env) if self.env else None
        started = time.monotonic()
        try:
            # A session of its own, so a timeout kills the whole process group
            # (nsenter's child, a remote shell's child), not just the leader.
            proc = subprocess.Popen(
                full,
                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            return Result(full, 127, "", str(exc), time.monotonic() - started, missing=True)
        try:
            out, err = proc.communicate(input, timeout=limit)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            out, err = _leftover_output(proc)
            return Result(full, TIMED_OUT, out, err, time.monotonic() - started)
        except BaseException:
            _kill_group(proc)
            proc.wait()
            raise
        # Through a prefix (nsenter, a remote shell) 127 is the prefix's own "could not execute it";
        # a command run directly that exits 127 says nothing about being installed.
        return Result(full, proc.returncode, out, err, time.monotonic() - started,
                      missing=proc.returncode == 127 and bool(self.prefix))

    def stream(
        self,
        argv: Sequence[str],
        on_line: Callable[[str], str | None],
        *,
        timeout: float | None = None,
        replies: bool = False,
        input: str | None = None,
        talk: Callable[[Channel], None] | None = None,
    ) -> Result:
        """Run ``argv``, handing each stdout line to ``on_line`` as it comes.

        The whole command is bounded by ``timeout`` (exit code 124 when it is
        reached, the process group killed); stderr is kept for the result.
        With ``replies``, the command's stdin is a pipe, and whatever text
        ``on_line`` returns for a line is written to it at once (a handshake).
        A hard limit: once the command ended (or was killed), what is left in
        its stdout is read for at most :data:`KILLED_GRACE` seconds, even when
        a grandchild that left the process group (setsid) keeps it open.
        ``input`` (without ``replies``) is written to its stdin, which is then closed.
        ``talk`` (with ``replies``) is handed, once the command started, a :class:`Channel` to write to its
        stdin from any thread and to bound it anew from then on.
        """
        full = self._full(argv)
        limit = timeout if timeout is not None else self.timeout
        env = dict(os.environ, **self.env) if self.env else None
        started = time.monotonic()
        try:
            proc = subprocess.Popen(full, stdin=subprocess.PIPE if replies or input is not None else subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, env=env, start_new_session=True)
        except FileNotFoundError as exc:
            return Result(full, 127, "", str(exc), time.monotonic() - started, missing=True)
        err: list[str] = []
        reader = threading.Thread(target=lambda: err.append(proc.stderr.read() if proc.stderr else ""), daemon=True)
        reader.start()
        if input is not None and not replies and proc.stdin is not None:
            threading.Thread(target=_feed, args=(proc.stdin, input), daemon=True).start()
        writing = threading.Lock()
        bound = [started + limit]

        def send(text: str) -> bool:
            with writing:
                return proc.stdin is not None and _send(proc.stdin, text)

        if talk is not None and replies:
            talk(Channel(send, lambda seconds: bound.__setitem__(0, time.monotonic() + seconds),
                         lambda: bound.__setitem__(0, 0.0)))
        lines: list[str] = []
        timed_out = False
        try:
            assert proc.stdout is not None
            for line in _lines_until(proc, lambda: bound[0]):
                if line is None:  # the deadline: the group killed, what is left read for the grace
                    timed_out = True
                    continue
                lines.append(line)
                reply = on_line(line.rstrip("\n"))
                if reply is not None:
                    send(reply)
            try:
                proc.wait(timeout=KILLED_GRACE)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                proc.wait()
        except BaseException:
            _kill_group(proc)
            proc.wait()
            raise
        finally:
            reader.join(timeout=STDERR_GRACE)
            with writing:  # a send from another thread sees it closed, never half-closed
                for pipe in (proc.stdin, proc.stdout):
                    if pipe is not None:
                        try:
                            pipe.close()
                        except OSError:
                            pass
        seconds = time.monotonic() - started
        code = TIMED_OUT if timed_out and proc.returncode < 0 else proc.returncode
        return Result(full, code, "".join(lines), "".join(err), seconds)

    def with_env(self, **env: str) -> "Runner":
        """A runner like this one with more environment variables."""
        return Runner(env={**self.env, **env}, prefix=self.prefix, timeout=self.timeout, remote=self.remote)

    def _full(self, argv: Sequence[str]) -> tuple[str, ...]:
        words = tuple(str(a) for a in argv)
        return tuple(self.prefix) + (tuple(shlex.quote(w) for w in words) if self.remote else words)


KILLED_GRACE = 2.0  # after a timeout's kill, how long the output left in the pipes is still read
POLL = 0.2  # seconds between looks at whether a streamed command ended
STDERR_GRACE = 0.5  # a streamed command's stderr, read after its stdout ended (a grandchild may still hold it)


def _leftover_output(proc: subprocess.Popen) -> tuple[str, str]:
    """What a killed command left in its pipes, read for at most KILLED_GRACE seconds.

    A grandchild that left the process group (setsid) may hold the pipes open
    for ever: the timeout stays a hard limit, its output is then given up.
    """
    try:
        out, err = proc.communicate(timeout=KILLED_GRACE)
        return out or "", err or ""
    except subprocess.TimeoutExpired:
        for pipe in (proc.stdout, proc.stderr, proc.stdin):
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:
                    pass
        try:
            proc.wait(timeout=KILLED_GRACE)
        except subprocess.TimeoutExpired:
            pass
        return "", ""


def _lines_until(proc: subprocess.Popen, deadline: Callable[[], float]) -> Iterator[str | None]:
    """``proc``'s stdout lines (newline kept) as they come; at ``deadline()`` (asked at every look: a
    channel may move it) its group is killed and None yielded once. Ends at end of file, or
    :data:`KILLED_GRACE` after the process ended or was killed."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    pending = b""
    ended_at: float | None = None
    while True:
        now = time.monotonic()
        deadline_now = deadline()
        if ended_at is None and now >= deadline_now:
            _kill_group(proc)
            ended_at = now
            yield None
        elif ended_at is None and proc.poll() is not None:
            ended_at = now  # exited: its output is all written, unless a grandchild holds the pipe
        if ended_at is not None and now >= ended_at + KILLED_GRACE:
            break
        wait = min(POLL, (ended_at + KILLED_GRACE if ended_at is not None else deadline_now) - now)
        if not select.select([fd], [], [], max(0.0, wait))[0]:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        pending += chunk
        *whole, pending = pending.split(b"\n")
        for line in whole:
            yield line.decode(errors="replace") + "\n"
    if pending:
        yield pending.decode(errors="replace")


def _feed(stdin, text: str) -> None:
    """All of ``text`` to a child's stdin, then EOF; a child that ended first just misses it."""
    try:
        stdin.write(text)
        stdin.close()
    except (OSError, ValueError):
        pass


@dataclass(frozen=True)
class Channel:
    """A streamed command, for another thread: ``send(text)`` to its stdin, True when written (False: the
    command is gone); ``rebound(seconds)``: its whole bound ends that many seconds from now instead;
    ``end()``: its process group killed now (the stream then ends as at its bound)."""

    send: Callable[[str], bool]
    rebound: Callable[[float], None]
    end: Callable[[], None]


def _send(stdin, text: str) -> bool:
    """Write a reply to a command's stdin, True when written; a command that is gone simply does not get it."""
    try:
        stdin.write(text)
        stdin.flush()
    except (BrokenPipeError, OSError, ValueError):
        return False
    return True


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, 9)
    except ProcessLookupError:
        pass


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def _short(argv: Sequence[str]) -> str:
    shown = " ".join(argv)
    return shown if len(shown) <= 160 else shown[:157] + "..."
