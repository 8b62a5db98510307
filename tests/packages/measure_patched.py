"""How long level 4's scan takes: N real processes (python, each with zlib loaded), scanned against this host's dpkg.

    PYTHONPATH=. /work/main/.venv/bin/python tests/packages/measure_patched.py [N]

Read-only (``/proc`` and ``/var/lib/dpkg/info``); the children are this script's own and are terminated at the end.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from upgrader.packages.patched import stale_mappings
from upgrader.packages.plan import DPKG_INFO

LOAD = "import ctypes, sys; ctypes.CDLL('libz.so.1'); print('ready', flush=True); sys.stdin.read()"


def main(count: int) -> None:
    children = []
    try:
        for _ in range(count):
            children.append(subprocess.Popen([sys.executable, "-c", LOAD], stdin=subprocess.PIPE,
                                             stdout=subprocess.PIPE, text=True))
        for child in children:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        pids = [c.pid for c in children]
        # No fast path: a host root where no file is (as an overlay whose device is not the host's): every
        # mapped package file is hashed, once per scan.
        nowhere = Path(tempfile.mkdtemp())
        for label, packages in (("every package", None), ("2 packages (libc6, zlib1g)", ["libc6", "zlib1g"])):
            for fast, root in (("inode fast path", Path("/")), ("content only", nowhere)):
                started = time.perf_counter()
                found = stale_mappings(pids, host_root=root, packages=packages, dpkg_info=DPKG_INFO)
                print(f"{count} processes, {label}, {fast}: {time.perf_counter() - started:.3f}s, {len(found)} stale")
        nowhere.rmdir()
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.wait(timeout=10)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50)
