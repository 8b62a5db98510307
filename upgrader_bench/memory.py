"""Peak memory: the Pre-Invoke hook (first and repeated call) and ``rolling-upgrade run``.

The hook runs as APT runs it (``sh -c LINE``) under ``/usr/bin/time`` inside a
lab node, while this process holds dpkg's frontend lock as an apt run would
(as :mod:`upgrader_bench.hook` does): the first call of a run decides (on an
active node it refuses, after reading the cluster), the repeated call reads
the cached verdict. GNU time's %M is the peak RSS of the hook's process tree.

``rolling-upgrade run`` is watched from the host: :class:`RunMemory` polls
VmHWM (the kernel's own peak) of the node's ``rolling-upgrade run`` (also
when the bench runs it through :mod:`upgrader_bench.trace`) and
``rolling-upgrade apply`` processes.

    python -m upgrader_bench.memory REPS     (inside a node: JSON on stdout)
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
import threading
from pathlib import Path
from typing import Any

from upgrader import runkey
from upgrader.guard import store
from upgrader_bench.hook import pre_invoke_line
from upgrader_lab import node
from upgrader_lab.layout import Lab
from upgrader.runner import Runner

POLL = 0.2
KINDS = ("run", "apply")


def _timed(runner: Runner, line: str) -> dict[str, float]:
    err = runner.call(["/usr/bin/time", "-f", "%e %M", "sh", "-c", line]).stderr.strip().splitlines()
    seconds, kib = err[-1].split()
    return {"seconds": float(seconds), "peak_rss_mib": int(kib) / 1024}


def hook_calls(reps: int) -> dict[str, list[dict[str, float]]]:
    """Inside a node: ``reps`` first calls and ``reps`` repeated calls, interleaved."""
    line = pre_invoke_line()
    runner = Runner(timeout=60)
    fd = os.open(runkey.FRONTEND_LOCK, os.O_RDWR | os.O_CREAT, 0o640)
    key = runkey.key_of(os.getpid()) or ""
    calls: dict[str, list[dict[str, float]]] = {"first": [], "repeat": []}
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        for _ in range(reps):
            shutil.rmtree(store.run_dir(key), ignore_errors=True)
            calls["first"].append(_timed(runner, line))
            store.write_verdict(key, store.ALLOWED, "benchmark")
            calls["repeat"].append(_timed(runner, line))
    finally:
        os.close(fd)
        shutil.rmtree(store.run_dir(key), ignore_errors=True)
    return calls


def hook_in(lab: Lab, node_name: str, reps: int) -> dict[str, list[dict[str, float]]]:
    out = node.runner(lab, node_name, timeout=60 + 30 * reps).run(
        [sys.executable, "-m", "upgrader_bench.memory", str(reps)], what=f"hook memory in {node_name}").stdout
    return json.loads(out)


class RunMemory:
    """Peak RSS (MiB) of the node's ``rolling-upgrade run`` / ``apply`` processes while in the ``with`` block."""

    def __init__(self, lab: Lab, node_name: str) -> None:
        pid = node.init_pid(lab, node_name)
        self.pidns = os.readlink(f"/proc/{pid}/ns/pid") if pid else ""
        self.peak: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _kind(self, proc: Path) -> str | None:
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if argv[1:3] == [b"-m", b"upgrader_bench.trace"] and b"--" in argv:  # the bench's traced run
                argv = [argv[0], b"/rolling-upgrade", *argv[argv.index(b"--") + 1:]]
            if len(argv) < 3 or not argv[1].endswith(b"/rolling-upgrade") or argv[2].decode() not in KINDS:
                return None
            return argv[2].decode() if os.readlink(proc / "ns/pid") == self.pidns else None
        except (OSError, UnicodeDecodeError):
            return None

    def _watch(self) -> None:
        while not self._stop.wait(POLL):
            for proc in Path("/proc").iterdir():
                kind = self._kind(proc) if proc.name.isdigit() else None
                if kind:
                    try:
                        hwm = next(line for line in (proc / "status").read_text().splitlines()
                                   if line.startswith("VmHWM:"))
                    except (OSError, StopIteration):
                        continue
                    self.peak[kind] = max(self.peak.get(kind, 0.0), int(hwm.split()[1]) / 1024)

    def __enter__(self) -> "RunMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


if __name__ == "__main__":
    print(json.dumps(hook_calls(int(sys.argv[1]))))
