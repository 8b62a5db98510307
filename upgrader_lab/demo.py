"""make demo: the rolling upgrade of a real lab cluster, with live progress.

Brings the lab up, publishes version 2 of the lab package, runs
``rolling-upgrade run --yes`` inside a node and shows what every container
serves afterwards. Where a part of the product does not exist yet, it says
so and stops: it never fakes a result.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from upgrader_lab import lab as ops
from upgrader_lab import node, repo
from upgrader_lab.layout import DEFAULT_NAME, Lab, LabError
from upgrader_lab.project import PACKAGED_TOOL

console = Console(highlight=False)


def _step(text: str) -> None:
    console.rule(f"[bold]{text}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="leave the lab running (KEEP=1)")
    parser.add_argument("--deb", metavar="PATH", help="the built package every node installs (make demo builds it); "
                                                      "without it, this tree's tool (make install's way)")
    args = parser.parse_args(argv)
    name = DEFAULT_NAME
    lab_cli = str(Path(sys.executable).with_name("upgrader-lab"))
    deb = Path(args.deb) if args.deb else None
    tool = PACKAGED_TOOL if deb else shutil.which("rolling-upgrade", path=str(Path(sys.executable).parent))
    try:
        _step(f"1. A {args.nodes}-node Pacemaker cluster with LXC containers, on this machine")
        with console.status("bringing the lab up"):
            lab, report = ops.up(name, args.nodes, say=lambda m: console.print(f"  {m}"), deb=deb)
        console.print(f"  up in {report.total_seconds:.1f}s")
        subprocess.run([lab_cli, "status"], check=False, timeout=60)

        _step("2. A new version of the library every container runs on")
        published = repo.publish(lab.repo_dir, "2")
        ops.refresh_indexes(lab)
        console.print(f"  published {published.name}; every node sees it as a pending upgrade")

        _step("3. rolling-upgrade run --yes")
        missing = _missing_subcommand(lab, tool, "run")
        if missing:
            console.print(f"[yellow]  not available yet: {missing}[/]")
            console.print("  The lab, the repository and the cluster above are real; the rolling upgrade")
            console.print("  itself is built in issue 6 (the orchestrator). Nothing was upgraded.")
            return 1
        rc = subprocess.run([lab_cli, "exec", "node1", "--", tool, "run", "--yes"], timeout=1800).returncode
        _step("4. What every container serves now")
        subprocess.run([lab_cli, "status"], check=False, timeout=60)
        return rc
    except LabError as exc:
        console.print(f"[red]demo: {exc}[/]")
        return 2
    finally:
        if args.keep:
            console.print(f"lab kept (KEEP=1): '{lab_cli} status', 'make lab-down' when done")
        else:
            with console.status("tearing the lab down"):
                ops.down(name)
            console.print("lab torn down")


def _missing_subcommand(lab: Lab, tool: str | None, sub: str) -> str | None:
    if tool is None:
        return "the rolling-upgrade command is not installed"
    result = node.runner(lab, "node1").call([tool, sub, "--help"])
    return None if result.returncode == 0 else f"'rolling-upgrade {sub}' does not exist yet"


if __name__ == "__main__":
    sys.exit(main())
