"""Cluster faults during a run: a peer power-cut, a node cut off, pacemakerd frozen, two runs, a dead lock holder."""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET

import pytest

from tests.faults.restore import TEST_SETTINGS
from tests.lab.helpers import TOOL, fresh_version, history, rolling, start_run, wait_for_phase
from upgrader_lab import lab as ops
from upgrader_lab import node
from upgrader_lab.layout import Lab
from upgrader.pacemaker import lock
from upgrader.pacemaker.live import Cluster

pytestmark = pytest.mark.lab
LAB_SUFFIX = "fc"


def cluster(lab: Lab, via: str = "node1") -> Cluster:
    return Cluster(node.runner(lab, via, timeout=30))


def epoch(lab: Lab, via: str = "node1") -> tuple[str, str]:
    """The CIB configuration's version: it changes with every change to the configuration."""
    root = ET.fromstring(node.runner(lab, via).run(["cibadmin", "--query", "--xpath", "/cib", "--no-children"]).stdout)
    return root.get("admin_epoch", ""), root.get("epoch", "")


def wait_offline(lab: Lab, gone: str, via: str) -> None:
    cluster(lab, via).wait_settled(lambda s: [] if not s.node(gone).online else [f"{gone} still online"], deadline=60)


def ended(run, timeout: float = 600) -> tuple[int, dict]:
    out, err = run.communicate(timeout=timeout)
    try:
        return run.returncode, json.loads(out)
    except ValueError:
        raise AssertionError(f"no JSON (exit {run.returncode}): {out[-2000:]} {err[-2000:]}") from None


def stop_reason(lab: Lab, run_id: str, via: str = "node1") -> str:
    return " ".join(e["reason"] for e in history(lab, run_id, via=via) if e["phase"] == "run" and e.get("reason"))


def test_peer_that_took_the_resources_power_cut_while_this_node_upgrades(healthy: Lab, nothing_lost) -> None:
    fresh_version(healthy)
    seen = len(history(healthy))
    run = start_run(healthy)
    entry = wait_for_phase(healthy, run, seen, "upgrade")
    moves = [m for e in history(healthy, entry["run"]) if e["phase"] == "move" for m in e["moves"]]
    took = moves[0].split(" -> ")[1] if moves else "node3"
    victim = took if took != "node1" else "node3"  # node1 runs the tool: cut the peer that holds resources
    ops.power_cut(healthy, victim)
    code, doc = ended(run)
    assert code == 4, doc
    assert f"nodes offline: {victim}; stopped before draining" in stop_reason(healthy, entry["run"])
    assert {n["node"]: n["result"] for n in doc["nodes"]}[entry["node"]] == "ok"  # the upgrading node finished
    ops.boot(healthy, victim)
    nothing_lost(healthy, run=entry["run"], told=[("upgrade", "end"), ("run", "note"), ("run", "end")])


def test_node_cut_off_the_network_during_its_drain(healthy: Lab, nothing_lost) -> None:
    version = fresh_version(healthy)
    seen = len(history(healthy))
    run = start_run(healthy)
    entry = wait_for_phase(healthy, run, seen, "drain")
    ops.cut(healthy, entry["node"])
    code, doc = ended(run)
    assert code == 4, doc
    # Either the cluster saw the node leave before its upgrade began, or the remote shell could not reach it
    # (corosync's token timeout decides which comes first): nothing ran there, it is put back online either way.
    # "Nothing ran there" is apply's handshake (no go was ever sent), whatever words ssh used.
    reason = stop_reason(healthy, entry["run"])
    n = entry["node"]
    assert f"nodes offline: {n}; stopped after draining {n} (put back online, not upgraded)" in reason \
        or (f"the upgrade of {n} failed before dpkg ran: could not reach {n} to upgrade it (" in reason
            and "nothing ran there" in reason and f"nothing was changed there, {n} is back online" in reason), reason
    ops.heal(healthy, entry["node"])
    ops.wait_formed(healthy, 90)
    assert ops.installed_version(healthy, entry["node"]) != version
    nothing_lost(healthy, run=entry["run"], told=[("drain", "start"), ("run", "note"), ("run", "end")])


def test_frozen_pacemakerd_on_the_local_node_is_a_bounded_refusal(healthy: Lab, nothing_lost) -> None:
    fresh_version(healthy)
    before = epoch(healthy)
    inside = node.runner(healthy, "node1")
    pid = inside.run(["pidof", "pacemakerd"]).stdout.split()[0]
    inside.run(["kill", "-STOP", pid])
    try:
        started = time.monotonic()
        result = node.runner(healthy, "node1", timeout=120).call([TOOL, "run", "--yes", "--json"])
        took = time.monotonic() - started
    finally:
        inside.run(["kill", "-CONT", pid])
    doc = json.loads(result.stdout)
    assert result.returncode == 3, doc
    assert doc["refused"].startswith("refused: the cluster cannot be read safely: crm_mon (cluster status) did not "
                                     "answer within"), doc
    assert took < 60, f"took {took:.0f}s"
    assert epoch(healthy) == before  # nothing was changed blindly
    nothing_lost(healthy)


def test_two_runs_at_once_on_two_nodes_one_runs_the_other_is_refused(healthy: Lab, nothing_lost) -> None:
    version = fresh_version(healthy)
    runs = {n: start_run(healthy, n) for n in ("node1", "node2")}
    results = {n: ended(r) for n, r in runs.items()}
    codes = sorted(code for code, _ in results.values())
    assert codes == [0, 3], results
    winner = next(n for n, (code, _) in results.items() if code == 0)
    loser_doc = next(doc for code, doc in results.values() if code == 3)
    assert f"the upgrade lock is held: holder {winner}" in loser_doc["refused"], loser_doc
    assert all(ops.installed_version(healthy, n) == version for n in healthy.node_names)
    nothing_lost(healthy, via=winner, run=results[winner][1]["run"], told=[("run", "start"), ("run", "end")])


def test_lock_holder_dies_then_another_node_wants_to_upgrade(healthy: Lab, nothing_lost) -> None:
    version = fresh_version(healthy)
    ttl = 20
    node.runner(healthy, "node2").run(["tee", TEST_SETTINGS], input=f'Rolling-Upgrade::Lock-Expiry "{ttl}";\n')
    seen = len(history(healthy, via="node2"))
    run = start_run(healthy, "node2")
    entry = wait_for_phase(healthy, run, seen, "upgrade", via="node2")
    ops.power_cut(healthy, "node2")
    run.wait(timeout=30)
    wait_offline(healthy, "node2", via="node3")
    code, doc = rolling(healthy, "run", "--yes", via="node3")
    assert code == 3 and doc["refused"].startswith(
        f"refused: the upgrade lock is held: holder node2, run {entry['run']}"), doc
    assert "(stale: holder offline)" in doc["refused"], doc
    held = lock.inspect(cluster(healthy, "node3"))
    assert held is not None and held.stale and not held.breakable
    time.sleep(max(0.0, (held.info.expires - lock.utcnow()).total_seconds()) + 1)
    shown = json.loads(node.runner(healthy, "node3").run([TOOL, "status", "--json"]).stdout)["lock"]
    # Fencing off (the default lab): expired and offline is still no proof that node2 is down.
    assert (shown["holder"], shown["holder_state"], shown["expired"], shown["breakable"]) == ("node2", "offline", True, False)
    ops.boot(healthy, "node2")
    # The holder is back, its run dead and expired: others are still refused, naming it ...
    code, doc = rolling(healthy, "run", "--yes", via="node3")
    assert code == 3 and "holder node2" in doc["refused"] and "(stale: expired)" in doc["refused"], doc
    # ... and the holder's own next run rolls the dead one back and finishes the upgrade.
    code, doc = rolling(healthy, "run", "--yes", via="node2")
    assert code == 0 and doc["recovered"][0].startswith(f"found run {entry['run']} interrupted"), doc
    assert all(ops.installed_version(healthy, n) == version for n in healthy.node_names)
    nothing_lost(healthy, via="node2", run=entry["run"], history_on="node2", told=[("upgrade", "start"),
                                                                                   ("recovered", "note")])
