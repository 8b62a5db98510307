"""Debian's prometheus-node-exporter in a lab node serves the run's metrics with the values of the run.

The package is never installed on this machine: ``make node-exporter-deb`` fetches its .deb with
``apt-get download`` into .cache/debs/ (git ignores it), and this test unpacks it with ``dpkg -x`` into
a directory of node1 (a node's root is an overlay of this machine's with its own upper layer: what is
written there stays in node1). ``dpkg -x`` rather than ``dpkg -i``: the package's maintainer scripts
would add a system user and try to start its service in the node; unpacked, node_exporter is one
static program started by this test alone, with the textfile collector only, on node1's lab address,
and stopped by its PID (start-stop-daemon's pidfile in node1) at the end, also on failure.

node1 runs ``rolling-upgrade run`` with Metrics-Dir pointed at the node's own textfile directory; the
metrics are scraped from node2 (the lab's bridge: the host has no address on it), and compared with
the run's ``--json``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import private_lab
from tests.lab.helpers import rolling
from upgrader_lab import lab as ops
from upgrader_lab import node, repo
from upgrader_lab.layout import Lab

pytestmark = pytest.mark.lab

DEBS = Path(__file__).resolve().parents[2] / ".cache" / "debs"
UNPACKED = "/var/tmp/upgrader-node-exporter"  # in node1
TEXTFILE = "/var/tmp/upgrader-node-exporter-textfile"  # in node1: its Metrics-Dir
SETTINGS = "/etc/apt/apt.conf.d/61upgrader-metrics-test"  # in node1
PIDFILE = "/run/upgrader-node-exporter.pid"  # in node1
PORT = 9100
SAMPLE = re.compile(r'^(?P<name>[a-z_]+)(\{(?P<labels>[^}]*)\})? (?P<value>\S+)$')
LABEL = re.compile(r'([a-z_]+)="((?:[^"\\]|\\.)*)"')


def node_exporter_deb() -> Path:
    found = sorted(DEBS.glob("prometheus-node-exporter_*.deb"))
    if not found:
        pytest.fail(f"no prometheus-node-exporter .deb in {DEBS}: run 'make node-exporter-deb' (apt-get download)")
    return found[-1]


@pytest.fixture(scope="module")
def mlab() -> Iterator[Lab]:
    with private_lab("m") as the_lab:
        yield the_lab


@pytest.fixture()
def node_exporter(mlab: Lab) -> Iterator[str]:
    """node_exporter running in node1 with the textfile collector on Metrics-Dir; its /metrics URL."""
    deb = node_exporter_deb()
    in1 = node.runner(mlab, "node1", timeout=60)
    in1.run(["test", "-r", str(deb)], what="finding the .deb from inside node1")
    in1.run(["mkdir", "-p", UNPACKED, TEXTFILE])
    in1.run(["dpkg", "-x", str(deb), UNPACKED], what="unpacking prometheus-node-exporter in node1")
    in1.run(["tee", SETTINGS], input=f'Rolling-Upgrade::Metrics-Dir "{TEXTFILE}";\n')
    address = f"{mlab.node_ip('node1')}:{PORT}"
    in1.run(["start-stop-daemon", "--start", "--background", "--make-pidfile", "--pidfile", PIDFILE,
             "--exec", f"{UNPACKED}/usr/bin/prometheus-node-exporter", "--",
             f"--web.listen-address={address}", f"--collector.textfile.directory={TEXTFILE}",
             "--collector.disable-defaults", "--collector.textfile"], what="starting node_exporter in node1")
    try:
        yield f"http://{address}/metrics"
    finally:
        in1.call(["start-stop-daemon", "--stop", "--pidfile", PIDFILE, "--remove-pidfile", "--retry", "TERM/5/KILL/5"])
        in1.call(["rm", "-f", SETTINGS])


def scrape(lab: Lab, url: str, via: str = "node2") -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The samples of ``url`` (name, labels) -> value, fetched from inside ``via`` (bounded: 10 s)."""
    got = node.runner(lab, via, timeout=30).run(
        ["python3", "-c", "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], "
         "timeout=10).read().decode())", url], what=f"scraping {url} from {via}").stdout
    found = {}
    for line in got.splitlines():
        m = SAMPLE.match(line)
        if m and not line.startswith("#"):
            found[(m["name"], frozenset(LABEL.findall(m["labels"] or "")))] = float(m["value"])
    return found


def value(samples: dict, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    assert key in samples, (name, labels, sorted(k for k in samples if k[0] == name))
    return samples[key]


def test_node_exporter_serves_the_runs_metrics(mlab: Lab, node_exporter: str) -> None:
    repo.publish(mlab.repo_dir, "2", security=True)
    ops.refresh_indexes(mlab)
    code, doc = rolling(mlab, "run", "--yes")
    assert code == 0, doc
    samples = scrape(mlab, node_exporter)
    assert value(samples, "node_textfile_scrape_error") == 0  # node_exporter read our file
    assert value(samples, "rolling_upgrade_last_run_exit") == doc["exit"] == 0
    assert value(samples, "rolling_upgrade_lock_held") == 0 and value(samples, "rolling_upgrade_lock_age_seconds") == 0
    for n in doc["nodes"]:
        assert value(samples, "rolling_upgrade_last_run_node_result", node=n["node"], result=n["result"]) == 1
        assert value(samples, "rolling_upgrade_last_run_node_seconds", node=n["node"]) == pytest.approx(n["seconds"])
        assert n["result"] == "ok" and n["upgraded"] is True
        assert value(samples, "rolling_upgrade_pending_upgrades", node=n["node"], kind="all") == 0
        assert value(samples, "rolling_upgrade_pending_upgrades", node=n["node"], kind="security") == 0
        assert value(samples, "rolling_upgrade_node_quarantined", node=n["node"]) == 0
    # The longest outage per resource: present for every application that moved, and the run's own figure.
    longest: dict[str, float] = {}
    for n in doc["nodes"]:
        for rid, seconds in n["outages"].items():
            longest[rid] = max(seconds, longest.get(rid, 0.0))
    assert set(longest) == set(mlab.app_names), doc["nodes"]  # every application moved, and was watched
    assert any(seconds > 0 for seconds in longest.values())  # a container restarted: its clients saw it
    for rid, seconds in longest.items():
        assert value(samples, "rolling_upgrade_last_run_longest_outage_seconds", resource=rid) == pytest.approx(
            seconds, abs=0.0005)
