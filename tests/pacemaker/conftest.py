"""Captured lab output (data/, written by capture.py) and offline CIB copies."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable

import pytest

from upgrader.pacemaker.live import Cluster
from upgrader.pacemaker.state import ClusterState, parse_crm_mon
from upgrader.runner import Runner

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def situations() -> dict[str, Any]:
    """The facts capture.py recorded with each situation."""
    return json.loads((DATA / "situations.json").read_text())


@pytest.fixture(scope="session")
def mon() -> Callable[[str], ClusterState]:
    """A captured crm_mon XML, parsed: ``mon("all-online")``."""
    return lambda situation: parse_crm_mon((DATA / f"crm_mon-{situation}.xml").read_text())


@pytest.fixture
def offline(tmp_path: Path) -> Callable[[str], Cluster]:
    """A Cluster on a private copy of a captured CIB (``CIB_file``): real tools, no cluster."""

    def make(name: str) -> Cluster:
        copy = tmp_path / f"cib-{name}.xml"
        shutil.copy(DATA / f"cib-{name}.xml", copy)
        return Cluster(Runner(env={"CIB_file": str(copy)}, timeout=30))

    return make
