"""The physical floor of a move: one container's own ``lxc-stop`` + ``lxc-start`` (until it serves), in a node.

A container of the lab's kind (an overlay of the node's root, the demo
application) that Pacemaker does not manage, serving on the node's own
address, port 8080. Each cycle: ``lxc-start -d`` until ``GET /version``
answers 200, then ``lxc-stop``; one warm-up cycle is dropped. The container
is removed afterwards; its cgroups carry the lab's prefix, so ``down``
removes anything left.

    python -m upgrader_bench.floor NAME IP CONFIG REPS    (inside a node: JSON on stdout)
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import sys
import time
from pathlib import Path

from upgrader_lab import cluster, node
from upgrader_lab.layout import Lab
from upgrader_lab.node import CONTAINER_OPAQUE
from upgrader.runner import Runner

PORT = 8080
SERVE_DEADLINE = 10.0


def _serving(ip: str) -> bool:
    conn = http.client.HTTPConnection(ip, PORT, timeout=0.2)
    try:
        conn.request("GET", "/version")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def cycles(name: str, ip: str, config: str, reps: int) -> dict[str, list[float]]:
    """Inside a node: ``reps`` timed start/stop cycles of container ``name`` after one warm-up."""
    base = Path("/var/lib/lxc") / name
    for rel in CONTAINER_OPAQUE:
        (base / "delta0" / rel).mkdir(parents=True, exist_ok=True)
        os.setxattr(base / "delta0" / rel, "trusted.overlay.opaque", b"y")
    (base / "config").write_text(config)
    run = Runner(timeout=30)
    times: dict[str, list[float]] = {"start": [], "stop": []}
    try:
        for _ in range(reps + 1):
            started = time.monotonic()
            run.run(["lxc-start", "-n", name, "-d"], what=f"lxc-start {name}")
            while not _serving(ip):
                if time.monotonic() - started > SERVE_DEADLINE:
                    raise RuntimeError(f"container {name} did not serve within {SERVE_DEADLINE:g}s")
                time.sleep(0.01)
            times["start"].append(time.monotonic() - started)
            times["stop"].append(run.run(["lxc-stop", "-n", name], what=f"lxc-stop {name}").seconds)
    finally:
        run.call(["lxc-stop", "-n", name, "--kill"])
        shutil.rmtree(base, ignore_errors=True)
    return {k: v[1:] for k, v in times.items()}


def measure(lab: Lab, node_name: str, reps: int) -> dict[str, list[float]]:
    """:func:`cycles` in ``node_name`` with a copy of app1's container configuration."""
    name, ip = f"{lab.name}-floor", lab.node_ip(node_name)
    config = (cluster.container_config(lab, "app1").replace(lab.container("app1"), name)
              .replace(f"{lab.app_ip('app1')} 80", f"{ip} {PORT}").replace("uts.name = app1", "uts.name = floor"))
    out = node.runner(lab, node_name, timeout=60 + 30 * reps).run(
        [sys.executable, "-m", "upgrader_bench.floor", name, ip, config, str(reps)],
        what=f"container floor in {node_name}").stdout
    return json.loads(out)


if __name__ == "__main__":
    print(json.dumps(cycles(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))))
