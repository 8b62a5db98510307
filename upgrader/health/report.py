"""The outcome of a health-check run: typed rows, a rich table, JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Iterable

from rich.console import Console
from rich.markup import escape
from rich.table import Table


class Level(str, Enum):
    CLUSTER = "cluster"
    CONTAINER = "container"
    APPLICATION = "application"
    PATCHED = "patched"


@dataclass(frozen=True)
class CheckResult:
    """One check of one resource. ``checked`` False: a level that could not be checked (see note)."""

    resource: str
    node: str
    level: Level
    target: str  # what was checked: the primitives, a container, a probe URL
    ok: bool
    attempts: int = 0
    seconds: float = 0.0
    error: str | None = None  # the last attempt's error
    note: str | None = None
    checked: bool = True


@dataclass(frozen=True)
class HealthReport:
    results: tuple[CheckResult, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if not r.ok]

    def of(self, resources: Iterable[str]) -> HealthReport:
        """The rows of ``resources`` alone (a share of a check made for more), with the whole check's time."""
        wanted = set(resources)
        return HealthReport(tuple(r for r in self.results if r.resource in wanted), self.seconds)

    def problems(self) -> list[str]:
        """One sentence per failed check, for logs and for the fail-back decision."""
        return [
            f"{r.resource} on {r.node}: {r.level.value} check {r.target} failed after "
            f"{r.attempts} attempt{'s' if r.attempts != 1 else ''} in {r.seconds:.1f}s: {r.error}"
            for r in self.failures
        ]

    def to_json(self) -> str:
        rows = [dict(asdict(r), level=r.level.value, seconds=round(r.seconds, 3)) for r in self.results]
        return json.dumps({"ok": self.ok, "seconds": round(self.seconds, 3), "results": rows}, indent=2)

    def table(self) -> Table:
        """One row per check; what came from the CIB or a probe (ids, targets, errors) printed as it is."""
        table = Table(title=f"Health checks: {'all passed' if self.ok else 'FAILED'} ({self.seconds:.1f}s)")
        for column in ("Resource", "Node", "Level", "Target", "Result", "Attempts", "Seconds", "Detail"):
            table.add_column(column, justify="right" if column in ("Attempts", "Seconds") else "left")
        for r in self.results:
            result = "[green]ok[/]" if r.ok and r.checked else "[yellow]not checked[/]" if r.ok else "[bold red]FAILED[/]"
            table.add_row(escape(r.resource), escape(r.node), r.level.value, escape(r.target), result,
                          str(r.attempts), f"{r.seconds:.2f}", escape(r.error or r.note or ""))
        return table

    def render(self, console: Console | None = None) -> None:
        (console or Console()).print(self.table())
