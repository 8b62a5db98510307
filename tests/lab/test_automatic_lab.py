"""The automatic path's choice on a real cluster (a lab of its own: versions change, settings change).

With ``rolling-upgrade automatic window`` every node's APT reads ``APT::Periodic::Unattended-Upgrade "0"``
after Debian's 20auto-upgrades, so apt.systemd.daily (what apt-daily-upgrade.timer runs) starts no
unattended-upgrades; the nightly window upgrades every node with unattended-upgrades' origins (the lab's own
Rolling-Upgrade::Origins-Pattern cleared: the selection's default is u-u's), so a package from an origin
u-u does not allow stays. ``rolling-upgrade automatic unattended-upgrades`` restores u-u's daily run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.conftest import private_lab
from tests.lab.helpers import TOOL, rolling, run_leftovers
from upgrader_lab import lab as ops
from upgrader_lab import node, repo
from upgrader_lab.layout import Lab

pytestmark = pytest.mark.lab
CONF = "/etc/apt/apt.conf.d/60upgrader-test-automatic"
# u-u allows only the lab's security suite; Rolling-Upgrade::Origins-Pattern (set by the lab) is cleared, so the
# window takes what u-u would. Boot-Grace 0: the lab has just formed.
SETTINGS = ('#clear Rolling-Upgrade::Origins-Pattern;\n'
            'Rolling-Upgrade::Windows { "Mon-Sun 02:00-04:00 UTC"; };\n'
            'Rolling-Upgrade::Boot-Grace "0";\n'
            'Unattended-Upgrade::Origins-Pattern { "origin=upgrader-lab,codename=lab-security"; };\n'
            'APT::Periodic::Verbose "1";\n')  # apt.systemd.daily says what it runs and what not
INSIDE = "2026-03-02T02:05+00:00"
PERIODIC = "APT::Periodic::Unattended-Upgrade"
STAMP = "/var/lib/apt/periodic/upgrade-stamp"  # apt.systemd.daily runs u-u at most once a day by it
FILE = "/etc/apt/apt.conf.d/52rolling-upgrade-automatic"
AUTO_UPGRADES = "/etc/apt/apt.conf.d/20auto-upgrades"


@pytest.fixture(scope="module")
def alab() -> Iterator[Lab]:
    with private_lab("au", apps=2) as the_lab:
        for n in the_lab.node_names:
            node.runner(the_lab, n).run(["tee", CONF], input=SETTINGS)
            # Debian's 20auto-upgrades as debconf writes it, whatever this machine has (the node's own copy)
            node.runner(the_lab, n).run(["tee", AUTO_UPGRADES], input='APT::Periodic::Update-Package-Lists "1";\n'
                                                                      f'{PERIODIC} "1";\n')
        yield the_lab


def periodic(lab: Lab, n: str) -> str:
    out = node.runner(lab, n).run(["apt-config", "shell", "V", PERIODIC]).stdout
    return out.strip().removeprefix("V=").strip("'\"")


def daily_install(lab: Lab, n: str) -> str:
    """apt.systemd.daily install in ``n`` (what apt-daily-upgrade.service runs), its stamp gone first; stderr."""
    inside = node.runner(lab, n, timeout=600)
    inside.run(["rm", "-f", STAMP])
    got = inside.call(["/usr/lib/apt/apt.systemd.daily", "install"])
    return got.stderr


def test_the_window_choice_stands_unattended_upgrades_down_on_every_node(alab: Lab) -> None:
    assert {n: periodic(alab, n) for n in alab.node_names} == {n: "1" for n in alab.node_names}
    code, doc = rolling(alab, "automatic", "window")
    assert code == 0, doc
    assert sorted(doc["nodes"]) == alab.node_names
    assert all(d["changed"] and d["state"]["choice"] == "window" for d in doc["nodes"].values()), doc
    assert {n: periodic(alab, n) for n in alab.node_names} == {n: "0" for n in alab.node_names}
    text = node.runner(alab, "node2").run(["cat", FILE]).stdout
    assert 'Rolling-Upgrade::Automatic "window";' in text and f'{PERIODIC} "0";' in text
    code, doc = rolling(alab, "automatic", "window")  # again: nothing changes
    assert code == 0 and not any(d["changed"] for d in doc["nodes"].values()), doc
    status = json.loads(node.runner(alab, "node1").run([TOOL, "status", "--json"]).stdout)["automatic"]
    assert status["choice"] == "window" and not status["unattended_upgrades_runs"] and not status["problems"], status
    said = daily_install(alab, "node2")
    assert "unattended-upgrade (not run)" in said, said


def test_the_window_upgrades_every_node_with_unattended_upgrades_origins(alab: Lab) -> None:
    tools = repo.TOOLS_PACKAGE
    first = repo.publish_tools(alab.repo_dir, "1")
    for n in alab.node_names:  # installed as an image would have it: past the guard, by its own override
        node.runner(alab, n, timeout=120).run(["env", "UPGRADER_GUARD=off", "dpkg", "-i",
                                               f"{node.REPO_MOUNT}/{first.relative_to(alab.repo_dir)}"])
    repo.publish_tools(alab.repo_dir, "2")  # in the plain suite "lab": not an origin u-u allows here
    repo.publish(alab.repo_dir, "2", security=True)  # in "lab-security": allowed
    ops.refresh_indexes(alab)
    result = node.runner(alab, "node1", timeout=900).call([TOOL, "window", "--json", "--at", INSIDE])
    doc = json.loads(result.stdout)
    assert result.returncode == 0, doc
    assert {n["node"]: n["result"] for n in doc["nodes"]} == {n: "ok" for n in alab.node_names}, doc
    assert {n: (ops.installed_version(alab, n), ops.installed_version(alab, n, tools)) for n in alab.node_names} \
        == {n: ("2", "1") for n in alab.node_names}
    assert run_leftovers(alab) == []
    assert all(periodic(alab, n) == "0" for n in alab.node_names)  # a window run leaves the choice as it is


def test_switching_back_restores_unattended_upgrades(alab: Lab) -> None:
    code, doc = rolling(alab, "automatic", "unattended-upgrades")
    assert code == 0, doc
    assert {n: periodic(alab, n) for n in alab.node_names} == {n: "1" for n in alab.node_names}
    assert node.runner(alab, "node2").call(["test", "-e", FILE]).returncode == 1
    code, doc = rolling(alab, "automatic")
    assert code == 0 and all(d["state"]["choice"] == "unattended-upgrades" and d["state"]["unattended_upgrades_runs"]
                             for d in doc["nodes"].values()), doc
    # apt.systemd.daily runs unattended-upgrades again: on this active node the guard refuses it (Auto-Standby
    # is off), nothing changes, but it ran.
    said = daily_install(alab, "node2")
    assert "unattended-upgrade (not run)" not in said and "unattended-upgrade (" in said, said
    assert ops.installed_version(alab, "node2") == "2"


def test_the_window_is_refused_everywhere_when_one_node_has_no_window(alab: Lab) -> None:
    node.runner(alab, "node3").run(["tee", CONF], input=SETTINGS.replace(
        'Rolling-Upgrade::Windows { "Mon-Sun 02:00-04:00 UTC"; };\n', ""))
    try:
        result = node.runner(alab, "node1", timeout=120).call([TOOL, "automatic", "window"])
        assert result.returncode == 2, (result.stdout, result.stderr)
        assert "refused, nothing changed on any node: node3: Rolling-Upgrade::Windows has no entry" in result.stderr
        assert {n: periodic(alab, n) for n in alab.node_names} == {n: "1" for n in alab.node_names}
    finally:
        node.runner(alab, "node3").run(["tee", CONF], input=SETTINGS)
