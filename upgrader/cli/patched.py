"""``rolling-upgrade patched``: on this node, which running containers map package files older than installed.

Node-local (the level-4 check and ``check --patched`` run it on each node):
the processes of each container (its init's pid namespace) are scanned by
:func:`upgrader.packages.patched.stale_mappings`. Exit 0: none on old code;
1: some are; 3: a container named is not running; 2: lxc could not be asked.
"""

from __future__ import annotations

import json
import sys
import time

from upgrader.runner import LXC_TIMEOUT, CommandError, Runner

NOT_RUNNING = 3


def patched(containers: list[str], as_json: bool) -> int:
    from upgrader.packages.patched import container_pids, report_lines, stale_mappings

    started = time.monotonic()
    runner = Runner(timeout=LXC_TIMEOUT)
    try:
        names = containers or running_containers(runner)
    except CommandError as exc:
        print(f"rolling-upgrade patched: {exc}", file=sys.stderr)
        return 2
    found: dict[str, dict] = {}
    missing = []
    for name in names:
        init = init_pid(runner, name)
        if init is None:
            missing.append(name)
            found[name] = {"running": False, "stale": []}
            continue
        try:
            pids = container_pids(init)
        except OSError:
            missing.append(name)
            found[name] = {"running": False, "stale": []}
            continue
        stale = stale_mappings(pids)
        found[name] = {"running": True, "processes": len(pids), "stale": report_lines(stale)}
    if as_json:
        print(json.dumps({"containers": found, "seconds": round(time.monotonic() - started, 3)}, indent=2))
    else:
        for name, got in found.items():
            if not got["running"]:
                print(f"{name}: not running")
            elif got["stale"]:
                print(f"{name}: still runs old code: " + "; ".join(got["stale"]))
            else:
                print(f"{name}: every process runs the installed code ({got['processes']} process(es))")
    if missing and containers:
        return NOT_RUNNING
    return 1 if any(got["stale"] for got in found.values()) else 0


def running_containers(runner: Runner) -> list[str]:
    """The running lxc containers of this node (``lxc-ls --running``)."""
    out = runner.run(["lxc-ls", "--running", "-1"], what="listing the running containers").stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def init_pid(runner: Runner, name: str) -> int | None:
    """The container's init pid on this node (``lxc-info -p -H``), None when it is not running."""
    result = runner.call(["lxc-info", "-n", name, "-p", "-H"])
    text = result.stdout.strip()
    return int(text) if result.returncode == 0 and text.isdigit() else None
