"""Bad input to upgrader-lab: one clear line, exit 2, nothing changed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from upgrader_lab import cluster, fence_lab, layout, powerswitch, profiles
from upgrader_lab.layout import DEFAULT_PROFILE, LAB_ROOT, Lab, LabError, default_nodes, free_slice
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


# ---------------------------------------------------------------- profiles (issue 15)

@pytest.mark.parametrize("argv, message", [
    (["up", "--profile", "nope"], "profile 'nope' is unknown: use one of default, seed, mixed"),
    (["up", "--profile", "seed", "--nodes", "3"], "--nodes 3 does not fit profile seed: it has 2 nodes"),
    (["up", "--profile", "mixed", "--nodes", "2"], "--nodes 2 does not fit profile mixed: it has 3 to 5 nodes"),
])
def test_bad_profiles_are_one_line_and_change_nothing(argv: list[str], message: str) -> None:
    before = state()
    result = run(*argv)
    assert result.returncode == 2
    assert message in " ".join(result.stderr.split())
    assert len(result.stderr.strip().splitlines()) <= 2
    assert state() == before


def test_profile_is_saved_and_an_old_lab_json_reads_as_the_default(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(layout, "LAB_ROOT", tmp_path)
    Lab(name="seedy", nodes=2, profile="seed").save()
    assert json.loads((tmp_path / "seedy/lab.json").read_text())["profile"] == "seed"
    assert Lab.load("seedy") == Lab(name="seedy", nodes=2, profile="seed")
    (tmp_path / "old").mkdir()
    (tmp_path / "old/lab.json").write_text('{"name": "old", "slice": 2, "nodes": 3, "apps": 3}\n')
    old = Lab.load("old")
    assert old is not None and old.profile == DEFAULT_PROFILE and not old.fenced


def test_profiles_choose_their_node_count() -> None:
    assert [default_nodes(p) for p in ("default", "seed", "mixed")] == [3, 2, 3]


def test_the_default_profile_has_no_fencing_and_the_others_have_the_lab_device() -> None:
    default = ET.fromstring(profiles.initial_cib(Lab(name="x")))
    assert _option(default, "stonith-enabled") == "false"
    assert default.find(".//primitive[@class='stonith']") is None
    assert profiles.initial_cib(Lab(name="x")) == cluster.initial_cib(Lab(name="x"))
    for lab in (Lab(name="x", nodes=2, profile="seed"), Lab(name="x", nodes=4, profile="mixed")):
        cib = ET.fromstring(profiles.initial_cib(lab))
        assert (_option(cib, "stonith-enabled"), _option(cib, "stonith-action")) == ("true", "off")
        device = cib.find(".//primitive[@id='fence-lab']")
        assert device is not None and (device.get("class"), device.get("type")) == ("stonith", "fence_lab")
        params = {p.get("name"): p.get("value") for p in device.iter("nvpair")}
        assert params["pcmk_host_list"] == " ".join(lab.node_names)
        # two nodes: a network cut is a fence race, and fencing node1 waits, so node1 wins it
        assert params.get("pcmk_delay_base") == ("node1:5s;node2:0s" if lab.nodes == 2 else None)


def test_seed_runs_each_application_with_its_promoted_instance() -> None:
    lab = Lab(name="x", nodes=2, apps=2, profile="seed")
    cib = ET.fromstring(profiles.initial_cib(lab))
    for app in lab.app_names:
        clone = cib.find(f".//clone[@id='{app}-drbd-clone']")
        meta = {p.get("name"): p.get("value") for p in clone.find("meta_attributes")}
        assert (meta["promotable"], meta["promoted-max"], meta["clone-max"]) == ("true", "1", "2")
        assert clone.find("primitive").get("type") == "Stateful"
        group = cib.find(f".//group[@id='{app}']")
        assert [p.get("type") for p in group.findall("primitive")] == ["Filesystem", "IPaddr2", "lxc"]
        fs = {p.get("name"): p.get("value") for p in group.find("primitive").iter("nvpair")}
        ct = lab.container(app)
        assert fs["fstype"] == "overlay" and fs["directory"] == f"/var/lib/lxc/{ct}/rootfs"
        assert fs["options"] == (f"lowerdir=/var/lib/lxc/host/rootfs,upperdir=/var/lib/lxc/{ct}/delta0,"
                                 f"workdir=/var/lib/lxc/{ct}/work")
        colocation = cib.find(f".//rsc_colocation[@rsc='{app}']")
        assert (colocation.get("with-rsc"), colocation.get("with-rsc-role")) == (f"{app}-drbd-clone", "Promoted")
        order = cib.find(f".//rsc_order[@then='{app}']")
        assert (order.get("first"), order.get("first-action")) == (f"{app}-drbd-clone", "promote")
        assert f"lxc.rootfs.path = dir:/var/lib/lxc/{ct}/rootfs\n" in profiles.container_config(lab, app)


def test_mixed_has_its_clone_pinned_stopped_unmanaged_and_sticky_resources() -> None:
    lab = Lab(name="x", nodes=4, profile="mixed")
    cib = ET.fromstring(profiles.initial_cib(lab))
    assert [g.get("id") for g in cib.iter("group")][:3] == lab.app_names
    assert cib.find(".//clone[@id='ping-clone']/primitive").get("type") == "Dummy"
    banned = {(c.get("rsc"), c.get("node"), c.get("score")) for c in cib.iter("rsc_location")}
    assert banned == {("pinned", "node3", "-INFINITY"), ("pinned", "node4", "-INFINITY")}
    metas = {m.get("id"): {p.get("name"): p.get("value") for p in m} for m in cib.iter("meta_attributes")}
    assert metas["parked-meta"] == {"target-role": "Stopped"}
    assert metas["legacy-meta"] == {"is-managed": "false"}
    assert metas["sticky-meta"] == {"resource-stickiness": "INFINITY"}


def _option(cib: ET.Element, name: str) -> str | None:
    found = cib.find(f".//cluster_property_set/nvpair[@name='{name}']")
    return found.get("value") if found is not None else None


def test_fence_lab_reads_the_fence_agent_api() -> None:
    assert fence_lab.parse_stdin("# from the fencer\naction=off\nplug=node2\nnodename=node1\n\n") == {
        "action": "off", "port": "node2", "nodename": "node1"}
    assert fence_lab.parse_argv(["-o", "status", "-n", "node3"]) == {"action": "status", "port": "node3"}
    assert fence_lab.parse_argv(["--action=reboot", "--plug=node1"]) == {"action": "reboot", "port": "node1"}
    assert fence_lab.SOCKET == f"{layout.POWER_MOUNT}/{powerswitch.SOCKET}"
    meta = ET.fromstring(fence_lab.METADATA.split("?>", 1)[1])
    assert {a.get("name") for a in meta.iter("action")} == set(fence_lab.ACTIONS)
    assert {p.get("name") for p in meta.iter("parameter")} >= {"action", "port", "plug"}


def test_fence_lab_talks_to_the_power_controller(tmp_path: Path, monkeypatch, capsys) -> None:
    """Against the real controller for a lab with no node running: off and status answer 'off'."""
    monkeypatch.setattr(layout, "LAB_ROOT", tmp_path)
    lab = Lab(name="nolaby", nodes=3, slice=15)
    lab.power_dir.mkdir(parents=True)
    server = powerswitch.make_server(lab)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        _ask_the_controller(str(powerswitch.socket_path(lab)), tmp_path, capsys)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _ask_the_controller(sock: str, tmp_path: Path, capsys) -> None:
    assert fence_lab.main(["-o", "monitor", "-s", sock]) == 0
    assert fence_lab.main(["-o", "list", "-s", sock]) == 0
    assert capsys.readouterr().out == "node1,node1\nnode2,node2\nnode3,node3\n"
    assert fence_lab.main(["-o", "status", "-n", "node2", "-s", sock]) == 2  # off
    assert fence_lab.main(["-o", "off", "-n", "node2", "-s", sock]) == 0  # off already: success
    assert fence_lab.main(["-o", "off", "-n", "node9", "-s", sock]) == 1
    assert "unknown node 'node9'" in capsys.readouterr().err
    assert fence_lab.main(["-o", "off", "-s", sock]) == 1  # no port
    assert fence_lab.main(["-o", "off", "-n", "node2", "-s", str(tmp_path / "none.sock")]) == 1
    assert "power controller at" in capsys.readouterr().err


def test_the_controller_refuses_what_it_does_not_know() -> None:
    controller = powerswitch.Controller(Lab(name="nolaby", nodes=2))
    assert controller.handle({"action": "list"}) == {"ok": True, "nodes": ["node1", "node2"]}
    assert not controller.handle({"action": "explode", "node": "node1"})["ok"]
    assert not controller.handle(["off"])["ok"]
    assert not controller.handle({"action": "on", "node": "../node1"})["ok"]
