"""upgrader-lab: a real Pacemaker cluster with LXC containers on one machine."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from upgrader_lab import lab as ops
from upgrader_lab import node, repo
from upgrader_lab.client import LabClient
from upgrader_lab.layout import (DEFAULT_NAME, DEFAULT_PROFILE, MAX_APPS, MAX_NODES, MIN_NODES, PROFILE_NODES, SLICE_APPS,
                                 Lab, LabError, check_name, max_apps)
from upgrader.runner import CommandError

console = Console(stderr=True, highlight=False)


def _say(msg: str) -> None:
    console.print(f"[dim]lab:[/] {msg}")


def cmd_up(args: argparse.Namespace) -> int:
    lab, report = ops.up(args.name, args.nodes, args.apps, say=_say, profile=args.profile,
                         deb=Path(args.deb) if args.deb else None)
    mem = ", ".join(f"{n} {m:.0f} MiB" for n, m in report.node_memory_mib.items())
    console.print(f"[green]lab {lab.name} up[/]{_profile(lab.profile)}: {lab.nodes} nodes online with a DC after "
                  f"{report.formed_seconds:.1f}s, {lab.apps} applications serving after "
                  f"{report.serving_seconds:.1f}s; memory per node: {mem}")
    console.print(report.summary())
    return 0


def _profile(profile: str) -> str:
    """The profile in a heading, unless it is the default."""
    return "" if profile == DEFAULT_PROFILE else f" (profile {profile})"


def cmd_down(args: argparse.Namespace) -> int:
    for name in ops.all_labs() if args.all else [args.name]:
        removed = ops.down(name, say=_say if args.verbose else ops._quiet, keep=args.keep)
        console.print(f"lab {name} down: removed {len(removed)} item(s)" if removed
                      else f"lab {name}: nothing to tear down")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    lab = ops.require(args.name)
    nodes = Table(title=f"lab {lab.name}{_profile(lab.profile)}: nodes")
    for col in ("node", "address", "running", "link", f"{repo.PACKAGE}"):
        nodes.add_column(col)
    for n in lab.node_names:
        up = node.running(lab, n)
        nodes.add_row(n, lab.node_ip(n), "yes" if up else "[red]no[/]",
                      "up" if ops.network.link_is_up(lab.host_veth(n)) else "[red]down[/]",
                      (ops.installed_version(lab, n) or "-") if up else "-")
    Console(highlight=False).print(nodes)
    apps = Table(title=f"lab {lab.name}: applications")
    for col in ("app", "floating IP", "running on", "GET /version", "memory"):
        apps.add_column(col, justify="right" if col == "memory" else "left")
    try:
        placement = ops.view(lab).placement
    except (LabError, CommandError) as exc:
        placement = {}
        console.print(f"[yellow]cluster state unavailable:[/] {exc}")
    with LabClient(lab.client_netns) as client:
        answers = client.get_many([(lab.app_ip(a), "/version") for a in lab.app_names], timeout=1.0)
    memory = ops.container_memory_mib(lab)
    for app, answer in zip(lab.app_names, answers):
        apps.add_row(app, lab.app_ip(app), ", ".join(placement.get(app, ())) or "-",
                     answer.body if answer.ok else f"[red]{answer.error or answer.status}[/]",
                     f"{memory[app]:.1f} MiB" if app in memory else "-")
    Console(highlight=False).print(apps)
    Console(highlight=False).print(status_summary(lab, memory, ops.UpReport.load(lab)))
    return 0


def status_summary(lab: Lab, memory: dict[str, float], report: "ops.UpReport | None") -> str:
    """Containers running, their average resident memory, and how long the lab's up took."""
    average = sum(memory.values()) / len(memory) if memory else 0.0
    line = (f"{len(memory)} of {lab.apps} containers running, {average:.1f} MiB each on average "
            f"({sum(memory.values()):.0f} MiB in all)")
    return line + (f"; up took {report.total_seconds:.1f} s" if report else "")


def cmd_publish(args: argparse.Namespace) -> int:
    lab = ops.require(args.name)
    if args.slow_postinst < 0:
        raise LabError(f"--slow-postinst {args.slow_postinst:g}: give seconds, 0 or more")
    deb = repo.publish(lab.repo_dir, args.version, security=args.security, bad=args.bad,
                       broken_postinst=args.broken_postinst, postinst_sleep=args.slow_postinst,
                       reboot_required=args.reboot_required, ha_stack=args.ha_stack, padding_bytes=args.padding)
    refreshed = ops.refresh_indexes(lab)
    console.print(f"published {deb.name} to suite {'lab-security' if args.security else 'lab'}; "
                  f"apt-get update ran in {', '.join(refreshed) or 'no running node'}")
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    lab = ops.require(args.name)
    lab.check_node(args.node)
    argv = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not argv:
        raise LabError("exec needs a command: upgrader-lab exec NODE -- CMD...")
    full = node.exec_argv(lab, args.node, argv)
    env = dict(os.environ, **node.NODE_ENV)
    os.execvpe(full[0], full, env)
    return 127  # not reached


def cmd_fault(args: argparse.Namespace) -> int:
    lab = ops.require(args.name)
    action = {"kill": ops.power_cut, "boot": ops.boot, "cut": ops.cut, "heal": ops.heal}[args.cmd]
    action(lab, args.node)
    console.print(f"{args.cmd} {args.node}: done")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="upgrader-lab", description=__doc__)
    p.add_argument("--name", default=os.environ.get("UPGRADER_LAB", DEFAULT_NAME),
                   help=f"lab name (default {DEFAULT_NAME}, or $UPGRADER_LAB); labs with other names run side by side")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("up", help="bring the lab up and wait until every application serves")
    s.add_argument("--nodes", type=int, default=None,
                   help=f"{MIN_NODES} to {MAX_NODES} (default 3; profile seed: 2, mixed: 3 to {MAX_NODES})")
    s.add_argument("--apps", type=int, default=3,
                   help=f"applications, 1 to {MAX_APPS} (default 3; profile seed: up to {max_apps('seed')}); more "
                        f"than {SLICE_APPS} take a whole /24 of the lab's addresses")
    s.add_argument("--profile", default=DEFAULT_PROFILE, metavar="|".join(PROFILE_NODES),
                   help="the cluster's shape (default: groups of a floating IP and a container, no fencing; "
                        "seed: 2 nodes as with DRBD, fencing on; mixed: constraints, clones, fencing on)")
    s.add_argument("--deb", metavar="PATH", help="install this built package in every node (make deb) instead "
                                                "of this tree's tool")
    s.set_defaults(func=cmd_up)
    s = sub.add_parser("down", help="tear the lab down; idempotent, leaves nothing")
    s.add_argument("--keep", action="store_true", default=bool(os.environ.get("KEEP")),
                   help="keep the state directory (logs, upper dirs) for a post-mortem")
    s.add_argument("--all", action="store_true", help="every lab on this machine (CI's cleanup)")
    s.add_argument("-v", "--verbose", action="store_true")
    s.set_defaults(func=cmd_down)
    sub.add_parser("status", help="nodes, applications and package versions").set_defaults(func=cmd_status)
    s = sub.add_parser("publish", help="publish the lab package at exactly VERSION")
    s.add_argument("version")
    s.add_argument("--security", action="store_true", help="into the lab-security suite")
    s.add_argument("--bad", action="store_true", help="installs fine, but the application answers 500 on /health")
    s.add_argument("--broken-postinst", action="store_true", help="its postinst fails, so dpkg fails")
    s.add_argument("--slow-postinst", type=float, default=0, metavar="SECONDS", help="its postinst takes this long")
    s.add_argument("--reboot-required", action="store_true", help="its postinst asks for a reboot (/run/reboot-required)")
    s.add_argument("--ha-stack", action="store_true",
                   help=f"it depends on {repo.HA_PACKAGE} of the same version, a cluster-stack package")
    s.add_argument("--padding", type=int, default=0, metavar="BYTES",
                   help="it also ships this many random bytes (its archive about as large: a slow download)")
    s.set_defaults(func=cmd_publish)
    s = sub.add_parser("exec", help="run a command inside a node (exit code passed through)")
    s.add_argument("node")
    s.add_argument("command", nargs=argparse.REMAINDER)
    s.set_defaults(func=cmd_exec)
    for name, text in (("kill", "power cut"), ("boot", "power on and wait until it rejoins"),
                       ("cut", "take its link off the bridge"), ("heal", "put its link back")):
        s = sub.add_parser(name, help=text)
        s.add_argument("node")
        s.set_defaults(func=cmd_fault)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        check_name(args.name)
        if args.cmd != "exec":
            ops.preflight()
        return args.func(args)
    except (LabError, CommandError) as exc:
        console.print(f"[red]upgrader-lab: error:[/] {exc}")
        return 2
    except KeyboardInterrupt:
        console.print("[red]upgrader-lab: interrupted[/]")
        return 130


if __name__ == "__main__":
    sys.exit(main())
