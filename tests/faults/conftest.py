"""The fault suite: a lab per module, the cluster restored after every scenario, and the summary table.

``make faults`` (and ``make test``) print, after the run, each scenario with
its outcome and what it lost or left on purpose, then one plain line:
``faults: N passed, M failed``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.conftest import lab_name
from tests.faults import lost
from tests.faults.restore import restore
from upgrader_lab import lab as ops
from upgrader_lab.layout import Lab


@pytest.fixture(scope="module")
def flab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    """The module's own lab (``LAB_SUFFIX`` names it; ``LAB_PROFILE``, default 3 nodes), always torn down."""
    name = lab_name(request.module.LAB_SUFFIX)
    profile = getattr(request.module, "LAB_PROFILE", "default")
    nodes = 2 if profile == "seed" else 3
    try:
        the_lab, _ = ops.up(name, nodes=nodes, apps=2 if profile == "seed" else 3, profile=profile)
        yield the_lab
    finally:
        ops.down(name)


@pytest.fixture()
def healthy(flab: Lab) -> Iterator[Lab]:
    """The lab, restored to a healthy cluster after the scenario (whatever it did)."""
    yield flab
    restore(flab)


@pytest.fixture()
def nothing_lost(request: pytest.FixtureRequest) -> Callable[..., lost.Verdict]:
    """``nothing_lost(lab, **expected)``: assert nothing was lost; the findings go to the summary."""
    def check(lab: Lab, **expected: Any) -> lost.Verdict:
        verdict = lost.inspect(lab, **expected)
        request.node.user_properties += [("lost", verdict.lost), ("notes", verdict.notes)]
        assert not verdict.lost, "lost: " + "; ".join(verdict.lost)
        return verdict
    return check


@dataclass
class Row:
    scenario: str
    outcome: str = "passed"
    seconds: float = 0.0
    lost: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


_ROWS: dict[str, Row] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    row = _ROWS.setdefault(report.nodeid, Row(report.nodeid.split("::", 1)[-1]))
    row.seconds += report.duration
    props = dict(report.user_properties)
    row.lost, row.notes = props.get("lost", row.lost), props.get("notes", row.notes)
    if report.failed:
        row.outcome = "failed" if report.when == "call" else f"error ({report.when})"
        if not row.lost and report.when == "call":
            row.lost = [str(report.longrepr).strip().splitlines()[-1][:200]]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _ROWS:
        return
    write = terminalreporter.write_line
    terminalreporter.section("fault scenarios")
    width = max(len(r.scenario) for r in _ROWS.values())
    write(f"{'scenario':<{width}}  {'outcome':<8} {'time':>6}  lost / left on purpose")
    for row in _ROWS.values():
        detail = "; ".join(row.lost) or ("nothing lost" + (f"; {'; '.join(row.notes)}" if row.notes else ""))
        write(f"{row.scenario:<{width}}  {row.outcome:<8} {row.seconds:5.0f}s  {detail}")
    passed = sum(r.outcome == "passed" for r in _ROWS.values())
    write(f"faults: {passed} passed, {len(_ROWS) - passed} failed")
