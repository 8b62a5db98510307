"""What level 4 ("patched") costs at 12 and 120 applications: ``python -m upgrader_bench --patched-only``.

Each application is a container of two processes (its init and a Python application mapping a shared
library, as the lab's), here real processes on this machine. A rolling upgrade's level 4 scans every moved
container of a node in one ``rolling-upgrade patched --container NAME...`` on that node (one interpreter
start, one scan grouped by container); ``check --patched`` does the same. Measured in one run, so that the
ratios hold on a noisy machine:

- ``scan_s``: one in-process scan of all the applications' processes (every package's md5sums index read);
- ``per_container_s``: a scan per container, as level 4 made them before the grouped scan (the index read
  each time);
- ``grouped_s``: one scan grouped by container, as a node's level 4 makes it now (the index read once);
- ``command_s``: one ``rolling-upgrade patched`` start on this host, the interpreter and imports included
  (it asks lxc-info about a container that does not exist, so it scans nothing);
- ``level4_120_vs_12``: per_container_s at 120 applications over 12 (linear is 10.0x);
  ``grouped_120_vs_12`` the same for grouped_s, and ``grouped_vs_per_container`` at 120.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

from upgrader.packages.patched import stale_mappings, stale_mappings_of
from upgrader_bench.stats import summarize

APP = ("import ctypes, ctypes.util, sys, time\n"
       "ctypes.CDLL(ctypes.util.find_library('z'))\n"
       "print('up', flush=True)\n"
       "time.sleep(600)\n")
INIT = "import time; print('up', flush=True); time.sleep(600)"


def _spawn(n: int) -> list[subprocess.Popen]:
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
             for _ in range(n) for code in (INIT, APP)]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "up"
    return procs


def _time(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def measure(apps: int, reps: int, tool: str) -> dict:
    procs = _spawn(apps)
    try:
        pids = [p.pid for p in procs]
        containers = [pids[i:i + 2] for i in range(0, len(pids), 2)]
        stale = stale_mappings(pids)
        scan = [_time(lambda: stale_mappings(pids)) for _ in range(reps)]
        per = [_time(lambda: [stale_mappings(c) for c in containers]) for _ in range(reps)]
        groups = {f"app{i}": c for i, c in enumerate(containers)}
        grouped = [_time(lambda: stale_mappings_of(groups)) for _ in range(reps)]
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
    command = [_time(lambda: subprocess.run([tool, "patched", "--container", "no-such-container", "--json"],
                                            capture_output=True, timeout=60)) for _ in range(reps)]
    return {"apps": apps, "processes": len(pids), "stale_found": len(stale),
            "scan_s": summarize(scan).as_dict(), "per_container_s": summarize(per).as_dict(),
            "grouped_s": summarize(grouped).as_dict(),
            "command_s": summarize(command).as_dict()}


def run(reps: int = 5) -> dict:
    tool = str(Path(sys.executable).with_name("rolling-upgrade"))
    small, big = measure(12, reps, tool), measure(120, reps, tool)
    ratio = big["per_container_s"]["median"] / small["per_container_s"]["median"]
    per_app = statistics.median([big["per_container_s"]["median"] / 120, small["per_container_s"]["median"] / 12])
    grouped = big["grouped_s"]["median"] / small["grouped_s"]["median"]
    return {"12": small, "120": big, "level4_120_vs_12": round(ratio, 2), "per_app_scan_s": round(per_app, 4),
            "grouped_120_vs_12": round(grouped, 2),
            "grouped_vs_per_container": round(big["grouped_s"]["median"] / big["per_container_s"]["median"], 3)}
