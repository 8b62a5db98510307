"""``rolling-upgrade apply``: this node's dist-upgrade, reported as JSON lines to the orchestrator.

The orchestrator runs it on the drained node (locally or through the remote
shell) with UPGRADER_RUN_ID set, so the APT guard recognises the run that
holds the lock. Progress lines while it works, one result line at the end.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time
from dataclasses import asdict
from typing import Any

from upgrader.packages.run import upgrade_node, wait_for_dpkg_lock
from upgrader.runner import DPKG_AUDIT_TIMEOUT, REBOOT_COMMAND_TIMEOUT, Runner
from upgrader.runs import RUN_ID_ENV


def _emit(**event: Any) -> None:
    """One JSON line; if whoever reads us is gone, carry on silently: dpkg must never stop half-way."""
    try:
        sys.stdout.write(json.dumps(event, default=str) + "\n")
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


class JsonProgress:
    """:class:`upgrader.packages.run.Progress` as JSON lines."""

    def download(self, done_bytes: int, total_bytes: int, done_items: int, total_items: int) -> None:
        percent = 100.0 * done_bytes / total_bytes if total_bytes else 0.0
        _emit(event="progress", stage="download", percent=round(percent, 1),
              text=f"downloading {done_items}/{total_items} files")

    def install(self, package: str, percent: float, status: str) -> None:
        _emit(event="progress", stage="install", percent=round(percent, 1), text=status or package)

    def error(self, package: str, message: str) -> None:
        _emit(event="progress", stage="error", text=f"{package}: {message.strip()}")

    def waiting(self, text: str) -> None:
        _emit(event="progress", stage="wait", text=text)


GO_TIMEOUT = 60.0  # how long apply waits for the orchestrator's go after saying it is ready
# After the orchestrator's ``wait`` (it started apply ahead of the node's drain, so that the interpreter and
# python-apt load meanwhile): its go comes once the node is drained and its moves checked.
WAIT_TIMEOUT = 600.0  # as upgrader.orchestrator.remote.WAIT_LIMIT


def _wait_for_go(timeout: float = GO_TIMEOUT, waited: float = WAIT_TIMEOUT) -> str | None:
    """Say ``ready``, then read the orchestrator's ``go`` (after any number of ``wait``, each answered
    ``waiting`` and giving it ``waited`` seconds more): None once it came, else why it did not."""
    _emit(event="ready", pid=os.getpid())
    deadline = time.monotonic() + timeout
    got = b""
    while True:
        while b"\n" not in got:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([sys.stdin], [], [], left)[0]:
                return f"no go from the orchestrator within {timeout:g}s"
            chunk = os.read(sys.stdin.fileno(), 64)
            if not chunk:
                return "the orchestrator's connection ended before its go"
            got += chunk
        line, got = got.split(b"\n", 1)
        if line.strip() == b"go":
            return None
        if line.strip() != b"wait":
            return f"the orchestrator said {line.strip()!r}, not go"
        _emit(event="waiting")  # each wait answered: the orchestrator's proof that this session still carries
        timeout, deadline = waited, time.monotonic() + waited


def apply(handshake: bool = True, set_digest: str | None = None) -> int:
    """This node's dist-upgrade as JSON lines (to exactly the staged set ``set_digest`` when given);
    with ``handshake``, only after the orchestrator's go."""
    from upgrader.packages import pkgset

    # A lost controller (its ssh session dropped, the run killed) must not interrupt dpkg.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        frozen = pkgset.load(set_digest) if set_digest else None
    except pkgset.SetError as exc:
        _emit(event="result", ok=False, result="unavailable", error=f"{exc}; nothing was changed", changes=[])
        return 1
    if handshake:
        from upgrader.guard.ahead import preload

        preload()  # before the go: the orchestrator may have started us ahead of the node's drain
        why = _wait_for_go()
        if why:
            _emit(event="result", ok=False, result="no-go", error=f"{why}; nothing was changed", changes=[])
            return 1
    report = upgrade_node(JsonProgress(), run_id=os.environ.get(RUN_ID_ENV) or None, pkgset=frozen)
    _emit(event="result", ok=report.ok, result=report.result, error=None if report.ok else report.message,
          changes=[asdict(c) for c in report.changes], reboot_required=bool(report.reboot),
          reboot=report.reboot, stale_processes=report.stale, services=report.services,
          seconds=round(report.seconds, 1))
    return 0 if report.ok else 1


def stage(download: bool = True) -> int:
    """``rolling-upgrade stage --events``: the run's package set as JSON on stdin, kept here under its
    digest, its archives downloaded (nothing installed); progress as JSON lines, then one result line.
    ``download`` false (``--no-download``): kept and checked (it can be marked here), nothing downloaded."""
    from upgrader.packages import pkgset
    from upgrader.packages.run import stage_node

    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        frozen = pkgset.PackageSet.from_document(json.loads(sys.stdin.read(MAX_SET_BYTES)))
        pkgset.save(frozen)
    except (ValueError, OSError) as exc:  # SetError is a ValueError
        _emit(event="result", ok=False, result="unavailable", error=f"the run's package set is unusable here: "
                                                                    f"{exc}", changes=[])
        return 1
    report = stage_node(frozen, JsonProgress(), download=download)
    ok = report.result in ("staged", "nothing")
    _emit(event="result", ok=ok, result=report.result, error=None if ok else report.message,
          changes=[asdict(c) for c in report.changes], seconds=round(report.seconds, 1))
    return 0 if ok else 1


MAX_SET_BYTES = 16 << 20  # a package set on stdin, at most (a full release upgrade is ~2,000 packages, ~200 KB)


def dpkg_state(wait: float) -> int:
    """Wait (bounded) until no package manager runs here, then say whether dpkg is clean.

    Exit 0 clean, 1 not clean (``dpkg --audit`` lists packages), 124 still busy after ``wait`` seconds.
    """
    holder = wait_for_dpkg_lock(None, wait)
    if holder:
        print(f"a package manager (pid {holder}) still holds the dpkg lock after {wait:g}s")
        return 124
    audit = Runner(timeout=DPKG_AUDIT_TIMEOUT).call(["dpkg", "--audit"])
    if audit.returncode != 0 or audit.stdout.strip():
        print(audit.stdout.strip() or audit.stderr.strip())
        return 1
    print("clean")
    return 0


def apt_run_state(run_id: str) -> int:
    """``rolling-upgrade run-state apt-KEY``: print running, finishing or ended (exit 0); 2 for another id."""
    from upgrader import runkey
    from upgrader.runs import APT_RUN_PREFIX

    key = run_id.removeprefix(APT_RUN_PREFIX)
    pid, _, started = key.partition("-")
    if not run_id.startswith(APT_RUN_PREFIX) or not pid.isdigit() or not started.isdigit():
        print(f"rolling-upgrade: {run_id!r} is not an apt run's id (apt-PID-STARTTIME)", file=sys.stderr)
        return 2
    print(runkey.apt_run_state(key))
    return 0


def stack_command(action: str, run_id: str | None, by: str, pid: int) -> int:
    """``rolling-upgrade stack stop|start|reboot`` on this node: 0 done, 1 failed (one line on stderr)."""
    from upgrader.config import load
    from upgrader.hastack import control, marker

    config = load()
    try:
        if action == "stop":
            if not run_id:
                print("rolling-upgrade stack stop: --run-id is required (the run that stops the stack)", file=sys.stderr)
                return 2
            print(control.stop(config, marker.Stopped(run_id, by, pid), timeout=config.settle_timeout))
        elif action == "start":
            print(control.start(config, run_id, timeout=config.settle_timeout))
        else:
            # A lost session must not stop the reboot half-way.
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            marker.REBOOT_PENDING.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            marker.REBOOT_PENDING.write_text(f"{run_id or '-'}\n")  # in /run: the reboot takes it away
            result = Runner(timeout=REBOOT_COMMAND_TIMEOUT).call(list(config.reboot_command))
            if result.returncode != 0:
                why = result.last_words
                raise control.StackError(f"Reboot-Command ({' '.join(config.reboot_command)}) failed: {why}")
            print(f"rebooting (run {run_id or '-'})")
    except control.StackError as exc:
        print(f"rolling-upgrade stack {action}: {exc}", file=sys.stderr)
        return 1
    return 0
