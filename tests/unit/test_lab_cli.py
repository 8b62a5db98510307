"""Bad input to upgrader-lab: one clear line, exit 2, nothing changed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from upgrader_lab.layout import LAB_ROOT, Lab, LabError, free_slice
from upgrader_lab.repo import check_version

LAB = [sys.executable, "-m", "upgrader_lab.cli"]


def run(*argv: str, env: dict | None = None, user: str | None = None) -> subprocess.CompletedProcess:
    cmd = [*LAB, *argv]
    if user:
        cmd = ["setpriv", f"--reuid={user}", "--regid=nogroup", "--clear-groups", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                          env=env, cwd=Path(__file__).parents[2])


def state() -> tuple[list[str], list[str]]:
    """Labs on the machine and their namespaces (other labs may be busy meanwhile)."""
    labs = sorted(p.name for p in LAB_ROOT.iterdir()) if LAB_ROOT.exists() else []
    netns = sorted(p.name for p in Path("/run/netns").glob("*")) if Path("/run/netns").exists() else []
    return labs, [n for n in netns if n.split("-")[0] in ("ulab", "nolabx")]


@pytest.mark.parametrize("argv, message", [
    (["up", "--nodes", "9"], "--nodes 9 is out of range: a lab has 2 to 5 nodes"),
    (["up", "--apps", "0"], "--apps 0 is out of range"),
    (["--name", "Bad_Name", "status"], "lab name 'Bad_Name' is invalid"),
    (["--name", "nolabx", "kill", "node1"], "lab nolabx is not up"),
    (["--name", "nolabx", "publish", "2"], "lab nolabx is not up"),
])
def test_bad_input_is_one_line_and_changes_nothing(argv: list[str], message: str) -> None:
    before = state()
    result = run(*argv)
    assert result.returncode == 2
    text = " ".join(result.stderr.split())
    assert message in text
    assert len(result.stderr.strip().splitlines()) <= 2  # one line, maybe wrapped by the terminal width
    assert state() == before


def test_non_root_is_refused() -> None:
    result = run("up", user="nobody")
    assert result.returncode == 2
    assert "the lab needs root" in " ".join(result.stderr.split())


def test_missing_programs_are_named() -> None:
    env = dict(os.environ, PATH="/nonexistent")
    result = run("up", env=env)
    assert result.returncode == 2
    text = " ".join(result.stderr.split())
    assert "missing programs: corosync, pacemakerd" in text and "make deps" in text


@pytest.mark.parametrize("version", ["", "v2", "2 3", "2;rm", "-1", "1_2"])
def test_unpublishable_versions_are_refused(version: str) -> None:
    with pytest.raises(LabError, match="is not a Debian version string"):
        check_version(version)


@pytest.mark.parametrize("version", ["1", "2", "1.1", "2.0-1", "1:2.3~rc1-4"])
def test_debian_versions_are_accepted(version: str) -> None:
    assert check_version(version) == version


def test_unknown_node_is_named() -> None:
    lab = Lab(name="x", nodes=3)
    with pytest.raises(LabError, match=r"unknown node 'node7': lab x has node1, node2, node3"):
        lab.check_node("node7")


def test_addresses_stay_in_the_documentation_ranges() -> None:
    first = Lab(name="ulab", slice=0, nodes=5, apps=12)
    assert first.node_ip("node1") == "198.51.100.1"
    assert first.app_ip("app12") == "198.51.100.22"
    assert first.client_ip == "198.51.100.30"
    last = Lab(name="z", slice=15, nodes=5, apps=12)
    assert last.node_ip("node5") == "203.0.113.229"
    assert last.client_ip == "203.0.113.254"


def test_interface_names_fit_the_kernel_limit() -> None:
    lab = Lab(name="abcdefgh", nodes=5)
    names = [lab.bridge, lab.host_veth("client"), *(lab.host_veth(n) for n in lab.node_names)]
    assert all(len(n) <= 15 for n in names)
    assert len(set(names)) == len(names)


def test_default_lab_takes_slice_zero_and_named_labs_another() -> None:
    assert free_slice("ulab") == 0
    assert free_slice("other") != 0
