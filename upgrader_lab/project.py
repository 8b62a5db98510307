"""The project installed in a lab node, hooks active: as ``make install`` would do it, or the Debian package."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from upgrader_lab import node
from upgrader_lab.layout import Lab, LabError

PACKAGED_TOOL = "/usr/sbin/rolling-upgrade"  # where the package puts the command


def install_project(lab: Lab, n: str) -> None:
    """Install the APT/dpkg guard in node ``n`` with this interpreter (the venv's; nodes see it at the same path)."""
    node.runner(lab, n, timeout=60).run([sys.executable, "-m", "upgrader.guard.install"],
                                        what=f"installing upgrader's hooks in {n}")


def stage_deb(lab: Lab, deb: Path) -> str:
    """Put the built package where every node sees it (the lab's repository mount); its path in a node."""
    from upgrader_lab.node import REPO_MOUNT

    if not deb.is_file() or not deb.name.endswith("_all.deb"):
        raise LabError(f"--deb {deb}: not a built package (make deb builds dist/upgrader_VERSION_all.deb)")
    target = lab.repo_dir / "deb"
    target.mkdir(exist_ok=True)
    shutil.copy(deb, target / deb.name)
    return f"{REPO_MOUNT}/deb/{deb.name}"


def install_deb(lab: Lab, n: str, inside: str) -> None:
    """Install the Debian package in node ``n`` with dpkg, as an operator's ``apt install ./upgrader_*.deb``
    would (its dependencies are the host's Debian packages, which every node sees)."""
    node.runner(lab, n, timeout=120).run(["dpkg", "-i", inside], what=f"installing {inside} in {n}")
