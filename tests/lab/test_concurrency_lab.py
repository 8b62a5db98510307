"""Rolling-Upgrade::Concurrency 2 on a real 5-node cluster: two nodes drained and upgraded together.

A lab of five nodes of its own (about twice the bring-up of the 3-node lab, and a run of five nodes):
it is marked ``lab`` like the others; if ``make test`` grows too slow with it, run it alone with
``pytest -m lab tests/lab/test_concurrency_lab.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import private_lab
from tests.helpers import drained_together
from tests.lab.helpers import fresh_version, history, rolling, run_leftovers, standby_nodes, versions_served
from upgrader_lab import lab as ops
from upgrader_lab import node
from upgrader_lab.layout import Lab

pytestmark = pytest.mark.lab

SETTING = "/etc/apt/apt.conf.d/61upgrader-test-concurrency"


@pytest.fixture(scope="module")
def clab() -> Iterator[Lab]:
    with private_lab("c", nodes=5, apps=5) as the_lab:
        for n in the_lab.node_names:
            node.runner(the_lab, n).run(["tee", SETTING], input='Rolling-Upgrade::Concurrency "2";\n',
                                        what=f"writing {SETTING} in {n}")
        yield the_lab


def test_concurrency_two_upgrades_five_nodes_two_at_a_time(clab: Lab) -> None:
    version = fresh_version(clab)
    code, doc = rolling(clab, "run", "--yes", timeout=1200)
    assert code == 0, doc
    assert {n["node"]: n["result"] for n in doc["nodes"]} == {n: "ok" for n in clab.node_names}
    assert all(ops.installed_version(clab, n) == version for n in clab.node_names)
    assert versions_served(clab) == {a: version for a in clab.app_names}
    assert standby_nodes(clab) == []
    assert run_leftovers(clab) == []
    events = history(clab, doc["run"])
    groups = drained_together(events)
    assert any(len(g) == 2 for g in groups), groups  # two nodes drained together
    assert groups[-1] == ["node1"]  # the node running the run: alone and last
    assert sorted(n for g in groups for n in g) == sorted(clab.node_names)
    ends = [e for e in events if (e["phase"], e["event"]) == ("node", "end")]
    assert sorted(e["node"] for e in ends) == sorted(clab.node_names)  # one record per node
    assert all(e["result"] == "ok" for e in ends)
