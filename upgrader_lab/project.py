"""The project installed in a lab node, hooks active, as ``make install`` would do it on a cluster node."""

from __future__ import annotations

import sys

from upgrader_lab import node
from upgrader_lab.layout import Lab


def install_project(lab: Lab, n: str) -> None:
    """Install the APT/dpkg guard in node ``n`` with this interpreter (the venv's; nodes see it at the same path)."""
    node.runner(lab, n, timeout=60).run([sys.executable, "-m", "upgrader.guard.install"],
                                        what=f"installing upgrader's hooks in {n}")
