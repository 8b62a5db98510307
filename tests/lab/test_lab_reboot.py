"""A lab started from a project tree under /tmp still sees that tree in every node after a node's reboot.

A node's reboot gives it a fresh /tmp and /run; the tree (and its venv) that the lab binds into
every node at its own path must come back with the boot, wherever the clone lives (CI may clone
under /tmp).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import lab_name
from upgrader_lab import node
from upgrader_lab.layout import Lab

pytestmark = pytest.mark.lab
PROJECT = Path(__file__).resolve().parents[2]


def lab_cli(tree: Path, name: str, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``upgrader-lab`` as the copy under /tmp runs it (its own modules, so its own tree is the one bound)."""
    return subprocess.run([sys.executable, "-m", "upgrader_lab.cli", "--name", name, *argv], cwd=tree,
                          env=dict(os.environ, PYTHONPATH=str(tree)), capture_output=True, text=True, timeout=timeout)


def sees(lab: Lab, n: str, path: Path) -> str:
    """What node ``n`` reads at ``path`` ('' when it is not there)."""
    result = node.runner(lab, n).call(["cat", str(path)])
    return result.stdout if result.returncode == 0 else ""


def test_a_tree_under_tmp_is_still_bound_in_a_node_after_its_reboot() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="upgrader-clone-", dir="/tmp"))
    tree = scratch / "upgrader"
    shutil.copytree(PROJECT, tree, ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__", ".pytest_cache"))
    marker = tree / "setup.cfg"
    name = lab_name("b")
    try:
        up = lab_cli(tree, name, "up", "--nodes", "2", "--apps", "1")
        assert up.returncode == 0, up.stdout + up.stderr
        lab = Lab.load(name)
        assert lab is not None
        assert sees(lab, "node2", marker) == marker.read_text()
        log = lab.node_dir("node2") / "init.log"
        node.runner(lab, "node2").run(["touch", "/tmp/.lab-reboot-probe"])
        # The copy's own modules: the venv's path names the tree it was made in, which the nodes do not see here.
        node.runner(lab, "node2").with_env(PYTHONPATH=str(tree)).run([sys.executable, "-m", "upgrader_lab.power",
                                                                     "reboot"])
        deadline = time.monotonic() + 90
        while "init: rebooted" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "init: rebooted" in log.read_text(), log.read_text()[-2000:]
        # The reboot really gave the node a fresh /tmp: what was there is gone, the tree is back.
        assert node.runner(lab, "node2").call(["test", "-e", "/tmp/.lab-reboot-probe"]).returncode == 1
        assert sees(lab, "node2", marker) == marker.read_text()
        assert sees(lab, "node1", marker) == marker.read_text()  # the peer, not rebooted, sees it as before
    finally:
        down = lab_cli(tree, name, "down")
        shutil.rmtree(scratch, ignore_errors=True)
        assert down.returncode == 0, down.stdout + down.stderr
