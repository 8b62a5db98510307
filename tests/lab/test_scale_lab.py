"""The lab at seed scale: a rolling upgrade of 120 applications on 3 nodes (issue 20).

Left out of ``make test`` (marker ``scale``, see tests/conftest.py); ``make test-scale`` runs it. The
lab is wide: it takes a whole /24 (203.0.113.0/24 for a named lab), so no other lab may hold a slice of it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import private_lab
from tests.lab.helpers import fresh_version, rolling, run_leftovers, standby_nodes, versions_served
from upgrader_lab import lab as ops
from upgrader_lab.layout import Lab

pytestmark = [pytest.mark.lab, pytest.mark.scale]

APPS = 120


@pytest.fixture(scope="module")
def slab() -> Iterator[Lab]:
    with private_lab("sc", apps=APPS) as the_lab:
        yield the_lab


def test_a_rolling_upgrade_of_120_applications(slab: Lab) -> None:
    assert slab.wide and slab.prefixlen == 24 and len(slab.app_names) == APPS
    memory = ops.container_memory_mib(slab)
    assert len(memory) == APPS, memory  # every container found in its cgroup
    version = fresh_version(slab)
    code, doc = rolling(slab, "run", "--yes", timeout=3600)
    assert code == 0, doc
    assert {n["node"]: n["result"] for n in doc["nodes"]} == {n: "ok" for n in slab.node_names}
    assert all(ops.installed_version(slab, n) == version for n in slab.node_names)
    assert versions_served(slab) == {a: version for a in slab.app_names}
    assert standby_nodes(slab) == []
    assert run_leftovers(slab) == []
