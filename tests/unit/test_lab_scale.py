"""The lab at seed scale (issue 20), without a lab: the address plan, the monitors' load, the lab's waits,
memory per container from /proc, up's report, and the scale tests left out of 'make test' (the light
application: test_demo_app.py)."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import apt_pkg
import pytest

from upgrader.config import from_apt
from upgrader_lab import cli, cluster, layout, node, profiles
from upgrader_lab import lab as ops
from upgrader_lab.layout import NETWORKS, Lab, LabError, free_slice

TREE = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------- the address plan

def _addresses(lab: Lab) -> list[str]:
    return [*(lab.node_ip(n) for n in lab.node_names), *(lab.app_ip(a) for a in lab.app_names), lab.client_ip]


def test_a_lab_of_up_to_12_applications_keeps_its_slice() -> None:
    for slice_ in range(layout.SLICES):
        lab = Lab(name="x", slice=slice_, nodes=5, apps=12)
        assert not lab.wide and lab.prefixlen == 27 and list(lab.slices) == [slice_]
        base = NETWORKS[slice_ // 8].network_address + 32 * (slice_ % 8)
        assert lab.subnet == ipaddress.IPv4Network(f"{base}/27")
        assert lab.node_ip("node1") == str(base + 1) and lab.node_ip("node5") == str(base + 5)
        assert lab.app_ip("app1") == str(base + 11) and lab.app_ip("app12") == str(base + 22)
        assert lab.client_ip == str(base + 30)


@pytest.mark.parametrize("name, network", [("ulab", "198.51.100"), ("big", "203.0.113")])
def test_a_wide_lab_takes_a_whole_network(name: str, network: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(layout, "LAB_ROOT", tmp_path)
    lab = Lab(name=name, slice=free_slice(name, 120), nodes=5, apps=120)
    assert lab.wide and lab.prefixlen == 24 and lab.subnet == ipaddress.IPv4Network(f"{network}.0/24")
    assert list(lab.slices) == list(range(lab.slice, lab.slice + 8))
    assert [lab.node_ip(n) for n in lab.node_names] == [f"{network}.{i}" for i in range(1, 6)]
    assert lab.app_ip("app1") == f"{network}.11" and lab.app_ip("app120") == f"{network}.130"
    assert lab.client_ip == f"{network}.200"


@pytest.mark.parametrize("apps", [1, 3, 12, 13, 50, 119, 120])
def test_every_address_is_distinct_usable_and_in_the_documentation_ranges(apps: int) -> None:
    for first in ((0, 8) if apps > 12 else range(layout.SLICES)):
        lab = Lab(name="x", slice=first, nodes=5, apps=apps)
        found = [ipaddress.IPv4Address(a) for a in _addresses(lab)]
        assert len(set(found)) == len(found)
        assert all(a in lab.subnet and a not in (lab.subnet.network_address, lab.subnet.broadcast_address)
                   for a in found)
        assert any(lab.subnet.subnet_of(n) for n in NETWORKS)
        covered = [layout.slice_subnet(s) for s in lab.slices]
        assert all(any(a in c for c in covered) for a in found)  # within the slices the lab holds


def test_the_plan_refuses_what_does_not_fit() -> None:
    with pytest.raises(LabError, match=r"--apps 121 is out of range: a lab has 1 to 120 applications"):
        Lab(name="x", apps=121)
    with pytest.raises(LabError, match=r"--apps 13 does not fit profile seed: it has 1 to 12 applications"):
        Lab(name="x", nodes=2, apps=13, profile="seed")
    with pytest.raises(LabError, match=r"slice 3: a lab of more than 12 applications takes a whole /24, slice 0 or 8"):
        Lab(name="x", apps=13, slice=3)
    assert Lab(name="x", nodes=3, apps=120, profile="mixed").wide  # mixed: the default's groups, any number
    assert Lab(name="x", nodes=2, apps=12, profile="seed").prefixlen == 27


def _saved(tmp_path: Path, name: str, slice_: int, apps: int = 3) -> None:
    (tmp_path / name).mkdir()
    (tmp_path / name / "lab.json").write_text(json.dumps({"name": name, "slice": slice_, "nodes": 3, "apps": apps}))


def test_small_labs_take_free_slices_around_a_wide_one(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(layout, "LAB_ROOT", tmp_path)
    assert free_slice("one") == 1
    _saved(tmp_path, "big", 8, apps=120)  # a named wide lab: 203.0.113.0/24
    assert free_slice("one") == 1 and free_slice("ulab") == 0
    for i in range(1, 8):
        _saved(tmp_path, f"s{i}", i)
    with pytest.raises(LabError, match="all 16 lab address slices are taken"):
        free_slice("more")
    assert free_slice("big", 120) == 8  # its own lab.json does not stand in its way


def test_a_named_lab_beside_a_wide_default_lab_takes_the_other_network(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(layout, "LAB_ROOT", tmp_path)
    _saved(tmp_path, "ulab", 0, apps=120)
    assert free_slice("one") == 8
    assert free_slice("one", prefer=3) == 8  # its old slice lies in the wide lab's network now
    _saved(tmp_path, "two", 9)
    assert free_slice("one", prefer=9) == 8 and free_slice("one", prefer=12) == 12


def test_a_wide_lab_is_refused_in_one_line_where_another_lab_holds_addresses(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(layout, "LAB_ROOT", tmp_path)
    _saved(tmp_path, "t1", 9)
    with pytest.raises(LabError) as refused:
        free_slice("big", 120)
    assert str(refused.value) == ("--apps 120 takes all of 203.0.113.0/24, where lab t1 (203.0.113.32/27) holds "
                                  "addresses: 'upgrader-lab --name t1 down' first, or use at most 12 applications")
    _saved(tmp_path, "t2", 12)
    with pytest.raises(LabError, match=r"where labs t1 \(203.0.113.32/27\), t2 \(203.0.113.128/27\) hold"):
        free_slice("big", 13)
    assert free_slice("ulab", 120) == 0  # the default lab's wide network is 198.51.100.0/24: free
    _saved(tmp_path, "t3", 5)
    with pytest.raises(LabError, match=r"takes all of 198.51.100.0/24, where lab t3 \(198.51.100.160/27\)"):
        free_slice("ulab", 120)
    assert free_slice("ulab", 12) == 0


def test_two_labs_the_plan_lets_up_never_share_an_address(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(layout, "LAB_ROOT", tmp_path)
    labs = []
    for name, apps in (("ulab", 120), ("a", 3), ("b", 12), ("c", 1)):
        lab = Lab(name=name, slice=free_slice(name, apps), apps=apps)
        lab.save()
        labs.append(lab)
    with pytest.raises(LabError, match="takes all of 203.0.113.0/24"):
        free_slice("d", 120)
    for i, one in enumerate(labs):
        for other in labs[i + 1:]:
            assert not one.subnet.overlaps(other.subnet), (one, other)
            assert not set(one.slices) & set(other.slices)


def test_up_refuses_bad_sizes_before_changing_anything() -> None:
    for argv, message in ((["up", "--apps", "121"], "--apps 121 is out of range"),
                          (["up", "--profile", "seed", "--apps", "13"], "--apps 13 does not fit profile seed")):
        result = subprocess.run([sys.executable, "-m", "upgrader_lab.cli", "--name", "nolabs", *argv],
                                capture_output=True, text=True, timeout=60, cwd=TREE)
        assert result.returncode == 2 and message in " ".join(result.stderr.split()), result.stderr
    assert not (layout.LAB_ROOT / "nolabs").exists()


# ---------------------------------------------------------------- lighter in steady state

def test_the_monitor_interval_grows_with_the_applications_beyond_12() -> None:
    assert [cluster.monitor_interval(n) for n in (1, 3, 12, 13, 24, 60, 120)] == [5, 5, 5, 6, 10, 25, 50]
    small_rate = 2 * 12 / 5  # monitors a second of a 12-application lab (an IP and a container each)
    assert all(2 * n / cluster.monitor_interval(n) <= small_rate for n in range(1, 121))


def _ops(cib: ET.Element, rid: str) -> list[tuple[str | None, str | None, str | None]]:
    primitive = cib.find(f".//primitive[@id='{rid}']")
    assert primitive is not None
    return [(op.get("id"), op.get("name"), op.get("interval")) for op in primitive.iter("op")]


def test_a_small_lab_s_cib_is_today_s() -> None:
    cib = ET.fromstring(profiles.initial_cib(Lab(name="x", apps=12)))
    assert _ops(cib, "app12-ip") == [("app12-ip-monitor-5s", "monitor", "5s")]
    assert _ops(cib, "app1-ct")[-1] == ("app1-ct-monitor-5s", "monitor", "5s")
    assert cib.find(".//nvpair[@id='app1-ip-params-cidr_netmask']").get("value") == "27"


def test_a_wide_lab_s_cib_has_every_application_on_its_network_and_slower_monitors() -> None:
    lab = Lab(name="big", slice=8, apps=120)
    cib = ET.fromstring(profiles.initial_cib(lab))
    groups = cib.findall("configuration/resources/group")
    assert [g.get("id") for g in groups] == lab.app_names
    ips = {g.get("id"): g.find(".//nvpair[@name='ip']").get("value") for g in groups}
    assert ips["app1"] == "203.0.113.11" and ips["app120"] == "203.0.113.130" and len(set(ips.values())) == 120
    assert {n.get("value") for n in cib.iter("nvpair") if n.get("name") == "cidr_netmask"} == {"24"}
    assert {op.get("interval") for op in cib.iter("op") if op.get("name") == "monitor"} == {"50s"}
    probes = [n.get("value") for n in cib.iter("nvpair") if n.get("name") == cluster.PROBE_ATTRIBUTE]
    assert probes[119] == "http://203.0.113.130/health"
    assert "app.py 203.0.113.130 80\n" in profiles.container_config(lab, "app120")


def test_a_wide_lab_s_waits_grow_with_it(tmp_path: Path) -> None:
    assert node.lab_settings(Lab(name="x", apps=12)) == node.LAB_SETTINGS
    config = apt_pkg.Configuration()
    path = tmp_path / "60rolling-upgrade-lab"
    path.write_text(node.lab_settings(Lab(name="x", apps=120)))
    apt_pkg.read_config_file(config, str(path))
    read = from_apt(config)
    assert (read.settle_timeout, read.health_timeout, read.rejoin_timeout) == (600, 60, 240)
    assert read.origins_pattern == ("origin=upgrader-lab",)
    assert (ops.serve_timeout(Lab(name="x", apps=12)), ops.poll_interval(Lab(name="x", apps=12))) == (120, 0.3)
    assert (ops.serve_timeout(Lab(name="x", apps=120)), ops.poll_interval(Lab(name="x", apps=120))) == (600, 1.0)


# ---------------------------------------------------------------- memory per container, up's report

def _process(proc: Path, pid: int, cgroup: str, rss_kib: int | None) -> None:
    (proc / str(pid)).mkdir()
    (proc / str(pid) / "cgroup").write_text(cgroup)
    status = "Name:\tx\n" + (f"VmRSS:\t  {rss_kib} kB\n" if rss_kib is not None else "")
    (proc / str(pid) / "status").write_text(status)


def test_memory_per_container_sums_the_rss_of_its_cgroup_s_processes(tmp_path: Path) -> None:
    lab = Lab(name="t1", apps=3)
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "self").mkdir()
    _process(proc, 100, "0::/lxc.payload.t1-app1\n", 2048)  # init.lxc (cgroup v2)
    _process(proc, 101, "1:cpu:/\n0::/lxc.payload.t1-app1\n", 8192)  # the application
    _process(proc, 102, "4:memory:/process_api/x/lxc.payload.t1-app2-1/sub\n0::/\n", 1024)  # v1, LXC's -1
    _process(proc, 103, "0::/lxc.payload.t10-app1\n", 9999)  # another lab's
    _process(proc, 104, "0::/lxc.monitor.t1-app3\n", 3000)  # LXC's monitor: not the container
    _process(proc, 105, "0::/lxc.payload.t1-app9\n", 3000)  # not an application of this lab
    _process(proc, 106, "0::/lxc.payload.t1-app2\n", None)  # a zombie: no VmRSS
    (proc / "107").mkdir()  # gone while read
    assert ops.container_memory_mib(lab, proc) == {"app1": 10.0, "app2": 1.0}


def test_up_reports_containers_memory_and_time_and_keeps_it_for_status(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(layout, "LAB_ROOT", tmp_path)
    lab = Lab(name="x", apps=3)
    report = ops.UpReport(total_seconds=41.26, container_memory_mib={"app1": 12.0, "app2": 13.0, "app3": 11.5})
    assert report.summary() == "3 containers, 12.2 MiB each on average, up in 41.3 s"
    assert ops.UpReport(total_seconds=2).summary() == "0 containers, 0.0 MiB each on average, up in 2.0 s"
    assert ops.UpReport.load(lab) is None
    lab.state_dir.mkdir()
    report.save(lab)
    assert ops.UpReport.load(lab) == report
    assert cli.status_summary(lab, {"app1": 12.0, "app3": 11.0}, report) == (
        "2 of 3 containers running, 11.5 MiB each on average (23 MiB in all); up took 41.3 s")


# ---------------------------------------------------------------- the scale tests: only when asked for

def _collect(*args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                             "tests/lab/test_scale_lab.py", *args], capture_output=True, text=True, timeout=120,
                            cwd=TREE)
    return result.stdout


def test_the_scale_test_runs_only_when_asked_for() -> None:
    assert "1 deselected" in _collect() and "test_a_rolling_upgrade_of_120_applications" not in _collect()
    assert "test_scale_lab.py::test_a_rolling_upgrade_of_120_applications" in _collect("-m", "scale")
    makefile = (TREE / "Makefile").read_text()
    assert "\t$(BIN)/pytest -m scale $(PYTEST_ARGS)\n" in makefile
    assert "make test " in (TREE / ".ci/run").read_text() and "scale" not in (TREE / ".ci/run").read_text()


def test_a_nodes_root_shell_is_a_stock_debian_ones_not_the_hosts(tmp_path: Path) -> None:
    """bash reads ~/.bashrc for every command sshd runs: a node's is base-files' own (no developer's pyenv
    init making each remote session of a run 0.1 s slower), whatever the host's root has."""
    from upgrader_lab.node import _stock_root_shell

    (tmp_path / "root").mkdir()
    _stock_root_shell(tmp_path)
    for name in ("bashrc", "profile"):
        stock = Path("/usr/share/base-files") / f"dot.{name}"
        assert (tmp_path / "root" / f".{name}").read_bytes() == stock.read_bytes()


def test_serving_on_some_nodes_is_one_reading_placed_there_and_answering(monkeypatch: pytest.MonkeyPatch) -> None:
    """wait_serving(on=...): each poll's own reading decides; app1 answering while it still runs on node2, or
    placed nowhere for a moment (a recovery), is not done; done once every app is on the nodes asked, settled,
    and answers."""
    from upgrader_lab.client import Answer

    lab = Lab(name="x", slice=0, nodes=3, apps=2)
    readings = iter([
        {"app1": ("node2",), "app2": ("node1",)},  # still on the node that left
        {"app1": (), "app2": ("node1",)},  # a moment with no placement
        {"app1": ("node3",), "app2": ("node1",)},
    ])
    seen: list[dict[str, tuple[str, ...]]] = []

    def view(lab_: Lab, via: str | None = None) -> ops.View:
        placement = next(readings)
        seen.append(placement)
        return ops.View(frozenset(lab_.node_names), "node1", placement, True)

    class Client:
        def __init__(self, netns: str) -> None:
            pass

        def __enter__(self) -> "Client":
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def get_many(self, requests: list[tuple[str, str]]) -> list[Answer]:
            return [Answer(200, "1") for _ in requests]

    monkeypatch.setattr(ops, "view", view)
    monkeypatch.setattr(ops, "LabClient", Client)
    monkeypatch.setattr(ops, "poll_interval", lambda lab_: 0.01)
    assert ops.wait_serving(lab, 5, on=["node1", "node3"]) == {"app1": "1", "app2": "1"}
    assert len(seen) == 3 and seen[-1]["app1"] == ("node3",)
    readings = iter([{"app1": ("node2",), "app2": ("node1",)}] * 1000)
    with pytest.raises(LabError, match=r"on node1, node3; last seen: placement .*'app1': \('node2',\)"):
        ops.wait_serving(lab, 0.2, on=["node1", "node3"])
