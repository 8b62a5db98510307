"""``rolling-upgrade patched``: on this node, which running containers map package files older than installed.

Node-local (the level-4 check and ``check --patched`` run it on each node):
the processes of each container (its init's pid namespace) are scanned by
:func:`upgrader.packages.patched.stale_mappings_of`, in one
scan for them all. Exit 0: none on old code;
1: some are; 3: a container named is not running; 2: lxc could not be asked
(lxc-ls failing, each container named is asked alone with lxc-info: 2 only when that fails too).

Each named container's entry also carries its lxc ``state`` from that same lxc-ls (``""``: lxc-ls lists
no such container here), so the health check's level 2 reads it from this scan instead of a second
lxc-ls a round; no ``state`` when lxc-ls could not list (level 2 then asks lxc itself).
"""

from __future__ import annotations

import json
import sys
import time

from upgrader.runner import LXC_TIMEOUT, CommandError, Runner

NOT_RUNNING = 3


def patched(containers: list[str], as_json: bool) -> int:
    from upgrader.packages.patched import namespace_members, report_lines, stale_mappings_of
    from upgrader.packages.sumcache import CACHE

    started = time.monotonic()
    runner = Runner(timeout=LXC_TIMEOUT)
    try:
        states, inits = listed(runner)
    except CommandError as exc:
        if not containers:  # every running container: only lxc-ls can name them
            print(f"rolling-upgrade patched: {exc}", file=sys.stderr)
            return 2
        states, inits, listing = None, {}, exc  # the named ones: lxc-info asks each alone (said once it has answered)
    else:
        listing = None
    names = containers or sorted(inits)
    for name in names:
        if name in inits or (states is not None and states.get(name, "STOPPED") == "STOPPED"):
            continue  # running, or lxc-ls says it is stopped or no container of this node: not running
        try:  # lxc-ls gave no pid for it (a state in between) or could not list: lxc-info asked alone
            pid = init_pid(runner, name, strict=listing is not None)
        except CommandError as exc:
            print(f"rolling-upgrade patched: {listing}; and {exc}", file=sys.stderr)
            return 2
        if pid is not None:
            inits[name] = pid
    if listing is not None:
        print(f"rolling-upgrade patched: {listing}; each container named was asked alone with lxc-info",
              file=sys.stderr)
    members = namespace_members(inits[n] for n in names if n in inits)  # one pass over /proc for them all
    groups = {n: members[inits[n]] for n in names if n in inits and inits[n] in members}
    stale = stale_mappings_of(groups, cache=CACHE)  # one md5sums reading (kept), each mapped object hashed once
    found: dict[str, dict] = {}
    missing = []
    for name in names:
        if name not in groups:
            missing.append(name)
            found[name] = {"running": False, "stale": []}
        else:
            found[name] = {"running": True, "processes": len(groups[name]), "stale": report_lines(stale[name])}
        if states is not None:
            found[name]["state"] = states.get(name, "")
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


LXC_LS = ("lxc-ls", "--fancy", "--fancy-format", "NAME,STATE,PID")


def listed(runner: Runner) -> tuple[dict[str, str], dict[str, int]]:
    """Every lxc container of this node and its state, and each running one's init pid, in one command
    (``lxc-ls --fancy --fancy-format NAME,STATE,PID``)."""
    return lxc_listing(runner.run(list(LXC_LS), what="listing the containers").stdout)


def lxc_listing(output: str) -> tuple[dict[str, str], dict[str, int]]:
    """``({name: state}, {name: init pid})`` from ``lxc-ls --fancy --fancy-format NAME,STATE,PID`` output
    (a header line first); a row without a numeric pid has no init (not running, or a state in between)."""
    rows = [line.split() for line in output.splitlines()[1:]]
    states = {row[0]: row[1] for row in rows if len(row) >= 2}
    return states, {row[0]: int(row[2]) for row in rows if len(row) >= 3 and row[2].isdigit()}


def init_pid(runner: Runner, name: str, strict: bool = False) -> int | None:
    """The container's init pid on this node (``lxc-info -p -H``), None when it is not running.
    ``strict``: an lxc-info that fails raises :class:`CommandError` (lxc-ls could not list either, so a
    failure is not "not running")."""
    result = runner.call(["lxc-info", "-n", name, "-p", "-H"])
    if strict and result.returncode != 0 and "doesn't exist" not in result.stderr:  # no such container: not running
        raise CommandError(result, f"asking lxc-info about {name}")
    text = result.stdout.strip()
    return int(text) if result.returncode == 0 and text.isdigit() else None
