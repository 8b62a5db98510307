"""The results document (``bench/results.json``) and its table."""

from __future__ import annotations

from typing import Any, Mapping

from rich.console import Console
from rich.table import Table

from upgrader_bench.stats import Summary, verdict

TARGETS = {"hook_repeat_vs_crm_mon": 1.5, "downtime_vs_bare_standby": 1.1, "run_overhead": 1.2,
           "health_50_vs_1": 2.0}
LABELS = {
    "hook_repeat_vs_crm_mon": "repeated Pre-Invoke call / bare crm_mon",
    "downtime_vs_bare_standby": "longest outage per app: rolling-upgrade run / bare standby move",
    "run_overhead": "3-node run wall time / its irreducible parts",
    "health_50_vs_1": "health check, 50 probes / 1 probe",
}


def ratio_rows(ratios: Mapping[str, Summary]) -> list[tuple[str, str, str, str, str, str]]:
    """(key, median, min-max, n, target, verdict) per headline ratio, in :data:`TARGETS` order."""
    return [(key, f"{s.median:.2f}x", f"{s.min:.2f}-{s.max:.2f}", str(s.n), f"<= {TARGETS[key]:g}x",
             verdict(s.median, TARGETS[key])) for key in TARGETS if (s := ratios.get(key)) is not None]


def render(doc: Mapping[str, Any], out: Console) -> None:
    """Headline ratios, then the absolute figures behind them, then growth."""
    table = Table(title=f"upgrader benchmarks ({doc['cpus']} CPUs, make bench took {doc['seconds'] / 60:.1f} min)")
    for col in ("ratio (median)", "median", "min-max", "n", "target", "verdict"):
        table.add_column(col, justify="left" if col == "ratio (median)" else "right")
    ratios = {k: Summary(**v) for k, v in doc["ratios"].items()}
    for key, *cells in ratio_rows(ratios):
        colour = "green" if cells[-1] == "met" else "red"
        table.add_row(f"{key}\n[dim]{LABELS[key]}[/]", *cells[:-1], f"[{colour}]{cells[-1]}[/]")
    out.print(table)
    figures = Table(title="absolute figures (median, min-max, n)")
    for col in ("figure", "median", "min-max", "n"):
        figures.add_column(col, justify="left" if col == "figure" else "right")
    for name, s in doc["figures"].items():
        figures.add_row(name, f"{s['median']:.3f}", f"{s['min']:.3f}-{s['max']:.3f}", str(s["n"]))
    out.print(figures)
    growth = Table(title="growth: rolling-upgrade run (median, min-max)")
    for col in ("nodes", "apps", "runs", "run s", "longest outage per app s", "downtime per app s (sum)",
                "move steps"):
        growth.add_column(col, justify="right")
    for g in doc["growth"]:
        growth.add_row(str(g["nodes"]), str(g["apps"]), str(g["run_seconds"]["n"]), _cell(g["run_seconds"]),
                       _cell(g["longest_outage_seconds"]), _cell(g["downtime_per_app_seconds"]),
                       _cell(g["move_steps"], 0))
    out.print(growth)
    for line in doc["definitions"]:
        out.print(f"[dim]- {line}[/]")


def _cell(s: Mapping[str, float], digits: int = 2) -> str:
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"
