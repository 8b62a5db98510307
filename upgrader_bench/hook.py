"""Benchmark: the repeated Pre-Invoke call against a bare ``crm_mon --one-shot --output-as=xml``.

Run on a cluster node (``python -m upgrader_bench.hook``, JSON on stdout)
or from the host into a lab node with :func:`bench_hook`. This process
holds dpkg's frontend lock as an apt run would and has an ``allowed``
verdict cached for its run, then runs the installed Pre-Invoke entry
exactly as APT does (``sh -c LINE``) and crm_mon, interleaved; the figures
are medians. apt cannot run on the node meanwhile.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import statistics
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from upgrader import runkey
from upgrader.guard import store
from upgrader.runner import Runner

if TYPE_CHECKING:
    from upgrader_lab.layout import Lab

SNIPPET = Path("/etc/apt/apt.conf.d/20rolling-upgrade-hooks")
CRM_MON = ["crm_mon", "--one-shot", "--output-as=xml"]


def pre_invoke_line(snippet: Path = SNIPPET) -> str:
    """The installed DPkg::Pre-Invoke entry of the guard."""
    import apt_pkg

    conf = apt_pkg.Configuration()
    apt_pkg.read_config_file(conf, str(snippet))
    lines = [v for v in conf.value_list("DPkg::Pre-Invoke") if "rolling-upgrade-hook" in v]
    if not lines:
        raise SystemExit(f"{snippet} registers no rolling-upgrade-hook Pre-Invoke entry; run 'make install' first")
    return lines[0]


def measure(runs: int = 7) -> dict[str, float | int]:
    """Median seconds of the cached Pre-Invoke call and of crm_mon, ``runs`` each, interleaved."""
    line = pre_invoke_line()
    runner = Runner(timeout=30)
    fd = os.open(runkey.FRONTEND_LOCK, os.O_RDWR | os.O_CREAT, 0o640)
    key = runkey.key_of(os.getpid()) or ""
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        store.write_verdict(key, store.ALLOWED, "benchmark")
        hook, mon = [], []
        for _ in range(runs):
            mon.append(runner.run(CRM_MON, what="crm_mon").seconds)
            hook.append(runner.run(["sh", "-c", line], what="the Pre-Invoke hook").seconds)
    finally:
        os.close(fd)
        shutil.rmtree(store.run_dir(key), ignore_errors=True)
    h, m = statistics.median(hook), statistics.median(mon)
    return {"runs": runs, "pre_invoke_repeat_ms": round(h * 1000, 2), "crm_mon_ms": round(m * 1000, 2),
            "ratio": round(h / m, 2), "target_ratio": 1.5}


def bench_hook(lab: Lab, node_name: str, runs: int = 7) -> dict[str, float | int]:
    """:func:`measure` inside a lab node."""
    from upgrader_lab import node

    out = node.runner(lab, node_name, timeout=120).run(
        [sys.executable, "-m", "upgrader_bench.hook", str(runs)], what=f"hook benchmark in {node_name}").stdout
    return json.loads(out)


if __name__ == "__main__":
    print(json.dumps(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 7)))
