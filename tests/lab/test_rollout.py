"""The rolling upgrade on a real cluster: success, a bad build failed back, a broken postinst."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.conftest import private_lab
from tests.lab.helpers import TOOL, history, rolling, run_leftovers, standby_nodes, versions_served
from upgrader_lab import lab as ops
from upgrader_lab import node, repo
from upgrader_lab.layout import Lab

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def rlab() -> Iterator[Lab]:
    """A lab of its own: these tests upgrade, break and quarantine nodes."""
    with private_lab("r") as the_lab:
        yield the_lab


def test_full_rolling_upgrade_to_version_2(rlab: Lab) -> None:
    repo.publish(rlab.repo_dir, "2")
    ops.refresh_indexes(rlab)
    code, doc = rolling(rlab, "run", "--yes")
    assert code == 0, doc
    assert {n["node"]: n["result"] for n in doc["nodes"]} == {n: "ok" for n in rlab.node_names}
    assert all(ops.installed_version(rlab, n) == "2" for n in rlab.node_names)
    assert versions_served(rlab) == {a: "2" for a in rlab.app_names}
    assert standby_nodes(rlab) == []
    assert run_leftovers(rlab) == []  # no constraint, node attribute or lock of ours is left
    # The drained resources spread over the patched nodes instead of piling onto the first of them.
    placement = ops.view(rlab).placement
    per_node = {n: sum(placement[a] == (n,) for a in rlab.app_names) for n in rlab.node_names}
    assert max(per_node.values()) < len(rlab.app_names), (per_node, doc["nodes"])
    events = history(rlab, doc["run"])
    ends = [e for e in events if e["phase"] == "node" and e["event"] == "end"]
    assert sorted(e["node"] for e in ends) == rlab.node_names and all(e["result"] == "ok" for e in ends)
    assert events[-1]["phase"] == "run" and events[-1]["event"] == "end"
    # Each node's apply decided the guard's verdict itself (upgrader.guard.ahead), before dpkg started: the
    # hook's first Pre-Invoke of that apt run only read it.
    for n in rlab.node_names:
        lines = node.runner(rlab, n).run(["cat", "/var/log/upgrader/hooks.jsonl"]).stdout.splitlines()
        seen = [json.loads(line) for line in lines if line.strip()]
        key = next(e["run"] for e in reversed(seen) if e["event"] == "allowed-ahead")
        mine = [(e["stage"], e["event"]) for e in seen if e["run"] == key]
        assert mine.index(("pre-invoke", "allowed-ahead")) < mine.index(("pre-invoke", "cached-allowed")), mine
        assert ("pre-invoke", "allowed") not in mine, mine


def test_bad_build_fails_back_and_quarantines(rlab: Lab) -> None:
    repo.publish(rlab.repo_dir, "3", bad=True)
    ops.refresh_indexes(rlab)
    code, doc = rolling(rlab, "run", "--yes")
    assert code == 1, doc
    quarantined = [n for n in doc["nodes"] if n["result"] == "quarantined"]
    assert len(quarantined) == 1, doc  # caught on the first node the build reached
    bad = quarantined[0]["node"]
    assert "health check failed" in json.dumps(doc) and "application" in quarantined[0]["error"]
    assert versions_served(rlab) == {a: "2" for a in rlab.app_names}  # every app on the old build again
    assert standby_nodes(rlab) == [bad]
    assert [x for x in run_leftovers(rlab) if not x.startswith("rolling-upgrade-quarantine")] == []
    assert any(x.startswith("rolling-upgrade-quarantine") for x in run_leftovers(rlab))
    # The next run respects the quarantine and changes nothing.
    code, doc = rolling(rlab, "run", "--yes")
    assert code == 3 and "quarantined" in doc["refused"], doc


def test_broken_postinst_keeps_the_node_in_standby(rlab: Lab) -> None:
    # Clear the previous test's quarantine, as an operator would after fixing the build.
    for n in rlab.node_names:
        node.runner(rlab, "node1").run([TOOL, "unquarantine", n])
        node.runner(rlab, "node1").run(["crm_attribute", "--node", n, "--name", "standby", "--update", "off"])
    ops.wait_serving(rlab, 120)
    repo.publish(rlab.repo_dir, "4", broken_postinst=True)
    ops.refresh_indexes(rlab)
    before = versions_served(rlab)
    code, doc = rolling(rlab, "run", "--yes")
    assert code == 4, doc
    failed = [n for n in doc["nodes"] if n["result"] == "failed"]
    assert len(failed) == 1 and "upgrade of" in failed[0]["error"]
    assert standby_nodes(rlab) == [failed[0]["node"]]
    assert versions_served(rlab) == before  # the peers are untouched
