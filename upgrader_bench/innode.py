"""Bare cluster and package operations, timed inside a lab node (``python -m upgrader_bench.innode ...``).

What an operator would do by hand, with no guard and no checks, timed
in-process (interpreter start-up is not counted); each prints one JSON
object:

    move NODE on|off [--check] [--members]
                           crm_attribute standby, until the cluster is settled
                           (DC idle, nothing in flight, NODE's resources elsewhere);
                           --check: then the product's own health check of the
                           moved resources where they landed (all three levels,
                           the lab's Health:: settings), timed on its own;
                           --members: each moved resource's primitives and agents;
                           wall_start: the epoch time just before the standby
    place RID=NODE ...     put resources where they are wanted (crm_resource --move,
                           settled, --clear); not a measurement, the setup of one
    dist-upgrade           apt-get dist-upgrade on this node with upgrader's APT and
                           dpkg hooks switched off, the machine's own hooks kept
                           (the node must be drained)
    ssh NODE               the remote shell's round trip to NODE (Remote-Shell + true),
                           three times
    check-all REPS         the product's whole health check (what 'rolling-upgrade check'
                           runs: every resource where it runs, all levels, the lab's
                           Health:: settings), REPS times after one warm-up, timed in-process;
                           each followed by the reads no check can do without, timed
                           alike (floor_seconds): the CIB's resources and crm_mon, and
                           at once on each node whose containers it checked, lxc-ls
                           of their states and PIDs (Pacemaker's and LXC's own cost)

A leading ``--deadline S`` sets how long a move or a placement may take to
settle (default :data:`SETTLE_DEADLINE`; a lab of 120 applications moves 40 at once).
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from time import monotonic, time
from typing import Any, Callable, Sequence

from upgrader import config as configuration
from upgrader.cli.patched import LXC_LS
from upgrader.health import live as health
from upgrader.health.report import Level
from upgrader.pacemaker import shapes
from upgrader.pacemaker.live import Cluster, drained
from upgrader.runner import Runner

SETTLE_DEADLINE = 120.0
POLL = 0.1
HOOK_LISTS = ("DPkg::Pre-Invoke", "DPkg::Post-Invoke", "DPkg::Pre-Install-Pkgs")
OURS = "ROLLING_UPGRADE_HOOK"  # the first word of each of upgrader's entries (apt.conf.d/20rolling-upgrade-hooks)
DPKG_SNIPPET = Path("/etc/dpkg/dpkg.cfg.d/rolling-upgrade")
DPKG_ASIDE = DPKG_SNIPPET.with_name(".rolling-upgrade.bench-aside")  # dpkg skips names with a dot


def move(cluster: Cluster, node: str, on: bool, check: bool = False, members: bool = False) -> dict[str, Any]:
    state, baseline = health.read_state(cluster)
    resources = shapes.movable_on(state, node)  # what a standby moves: not the clones' instances
    wall, started = time(), monotonic()
    cluster.set_standby(node, on)
    after = cluster.wait_settled(drained(node, resources) if on else None, deadline=SETTLE_DEADLINE, interval=POLL)
    doc: dict[str, Any] = {"seconds": monotonic() - started, "moved": list(resources) if on else [],
                           "wall_start": wall}
    if members:
        doc["members"] = {rid: [(r.id, r.agent) for r in state.members(rid)] for rid in doc["moved"]}
    if check and on and resources:
        cfg = configuration.load()
        landed = {rid: sorted(after.running_on(rid))[0] for rid in resources}
        checked = monotonic()
        report = health.verify_moved(cluster, landed, baseline, health.defaults_from(cfg), cfg)
        doc.update(health=monotonic() - checked, health_ok=report.ok, problems=[str(p) for p in report.problems()])
    return doc


def ssh(node: str, times: int = 3) -> dict[str, Any]:
    remote = Runner(prefix=configuration.load().remote_command(node), timeout=30, remote=True)
    return {"seconds": [remote.run(["true"], what=f"the remote shell to {node}").seconds for _ in range(times)]}


def place(cluster: Cluster, wanted: dict[str, str]) -> dict[str, Any]:
    started = monotonic()
    state = cluster.state()
    moving = [rid for rid, n in wanted.items() if n not in state.running_on(rid)]
    try:
        for rid in moving:
            cluster.runner.run(["crm_resource", "--resource", rid, "--move", "--node", wanted[rid]],
                               what=f"moving {rid} to {wanted[rid]}")
        cluster.wait_settled(wanted, deadline=SETTLE_DEADLINE)
    finally:
        for rid in moving:
            cluster.runner.run(["crm_resource", "--resource", rid, "--clear"], what=f"clearing the move of {rid}")
    cluster.wait_settled(wanted, deadline=SETTLE_DEADLINE)
    return {"seconds": monotonic() - started, "moved": moving}


def without_our_hooks(settings: Any = None) -> str:
    """APT settings that drop upgrader's hook entries and keep the machine's own (debconf's, packagekit's...).

    ``settings``: an ``apt_pkg.Configuration`` (default: this machine's, as apt-get reads it).
    """
    if settings is None:
        import apt_pkg

        apt_pkg.init_config()
        settings = apt_pkg.config
    lines = []
    for key in HOOK_LISTS:
        kept = [v for v in settings.value_list(key) if OURS not in v]
        if any('"' in v for v in kept):
            raise RuntimeError(f"an entry of {key} holds a double quote; it cannot be written back: {kept}")
        lines.append(f"#clear {key};")
        if kept:
            entries = " ".join('"' + v + '";' for v in kept)
            lines.append(f"{key} {{ {entries} }};")
    return "\n".join(lines) + "\n"


def dist_upgrade() -> dict[str, Any]:
    conf = Path("/tmp/upgrader-bench-no-hooks.conf")
    conf.write_text(without_our_hooks())
    DPKG_SNIPPET.rename(DPKG_ASIDE)
    try:
        result = Runner(timeout=300, env={"DEBIAN_FRONTEND": "noninteractive"}).run(
            ["apt-get", "-c", str(conf), "dist-upgrade", "-y", "-q"], what="bare apt-get dist-upgrade")
    finally:
        DPKG_ASIDE.rename(DPKG_SNIPPET)
    return {"seconds": result.seconds}


def check_all(cluster: Cluster, reps: int) -> dict[str, Any]:
    """``reps`` timed runs of the whole check (declarations read, then every resource where it runs), after one
    warm-up run (the remote shell's shared connections opened); each followed by :func:`floor_reads` on the
    nodes whose containers it checked, interleaved so that both see the same machine."""
    cfg = configuration.load()
    defaults = health.defaults_from(cfg)
    runner_for = health.node_runners(cluster, cfg)
    runs, floors = [], []
    for i in range(reps + 1):
        started = monotonic()
        report = health.check_cluster(cluster, health.read_declarations(cluster), defaults, cfg)
        runs.append((monotonic() - started, report))
        nodes = sorted({r.node for r in report.results if r.level is Level.CONTAINER})
        floor = floor_reads(cluster, runner_for, nodes)
        if i:
            floors.append(floor)
    return {"seconds": [s for s, _ in runs[1:]], "floor_seconds": floors, "ok": all(r.ok for _, r in runs[1:]),
            "resources": len({r.resource for r in runs[-1][1].results}),
            "problems": sorted({str(p) for _, r in runs[1:] for p in r.problems()})}


LXC_STATES = list(LXC_LS)  # what a node's patched scan asks LXC (level 2 alone asks NAME,STATE)


def floor_reads(cluster: Cluster, runner_for: Callable[[str], Runner], nodes: Sequence[str]) -> float:
    """Seconds for the external reads a whole check cannot do without, each as the check makes it: the CIB's
    resources then crm_mon, and meanwhile, at once on each of ``nodes``, LXC's states and PIDs (locally or
    over the remote shell). Commands only: no parsing, no thread of the check's own."""
    started = monotonic()
    with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
        states = [pool.submit(runner_for(n).run, LXC_STATES, timeout=30, what=f"lxc-ls on {n}") for n in nodes]
        cluster.runner.run(["cibadmin", "--query", "--scope", "resources"], timeout=30, what="the CIB's resources")
        cluster.runner.run(["crm_mon", "--one-shot", "--inactive", "--output-as=xml"], timeout=30, what="crm_mon")
        for f in states:
            f.result()
    return monotonic() - started


def main(argv: list[str]) -> int:
    global SETTLE_DEADLINE
    if argv[:1] == ["--deadline"]:
        SETTLE_DEADLINE, argv = float(argv[1]), argv[2:]
    cluster = Cluster(Runner(timeout=30))
    command, args = argv[0], argv[1:]
    if command == "move":
        doc = move(cluster, args[0], args[1] == "on", "--check" in args[2:], "--members" in args[2:])
    elif command == "ssh":
        doc = ssh(args[0])
    elif command == "place":
        doc = place(cluster, dict(a.split("=", 1) for a in args))
    elif command == "dist-upgrade":
        doc = dist_upgrade()
    elif command == "check-all":
        doc = check_all(cluster, int(args[0]))
    else:
        print(f"unknown command {command!r}; see the module's docstring", file=sys.stderr)
        return 2
    print(json.dumps(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
