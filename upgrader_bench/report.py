"""The results document (``bench/results.json``) and its table."""

from __future__ import annotations

import statistics
from typing import Any, Mapping

from rich.console import Console
from rich.table import Table

from upgrader_bench import growth as apps_growth
from upgrader_bench.stats import Summary, verdict

TARGETS = {"hook_repeat_vs_crm_mon": 1.5, "downtime_vs_bare_standby": 1.1, "run_overhead": 1.2,
           "run_overhead_realistic_size": 1.1, "health_50_vs_1": 2.0, "automatic_vs_node_upgrade": 1.5}
LABELS = {
    "hook_repeat_vs_crm_mon": "repeated Pre-Invoke call / bare crm_mon",
    "downtime_vs_bare_standby": "longest outage per app: rolling-upgrade run / bare standby move",
    "run_overhead": "3-node run wall time / its irreducible parts",
    "run_overhead_realistic_size": "the same with a 10 s dpkg run per node (issue 20's judge)",
    "health_50_vs_1": "health check, 50 probes / 1 probe",
    "automatic_vs_node_upgrade": "drained time: the automatic path (Automatic \"window\") / rolling-upgrade node",
}
# Headline figures in seconds (not ratios): at most the target. In results.json's "targets" with the ratios'.
SECONDS_TARGETS = {"fixed_cost_per_node_s": 0.8}
SECONDS_LABELS = {"fixed_cost_per_node_s": "3-node run: (wall - irreducible parts) / nodes"}


def ratio_rows(ratios: Mapping[str, Summary]) -> list[tuple[str, str, str, str, str, str]]:
    """(key, median, min-max, n, target, verdict) per headline ratio, in :data:`TARGETS` order."""
    return [(key, f"{s.median:.2f}x", f"{s.min:.2f}-{s.max:.2f}", str(s.n), f"<= {TARGETS[key]:g}x",
             verdict(s.median, TARGETS[key])) for key in TARGETS if (s := ratios.get(key)) is not None]


def seconds_rows(figures: Mapping[str, Mapping[str, float]]) -> list[tuple[str, str, str, str, str, str]]:
    """(key, median, min-max, n, target, verdict) per headline figure in seconds found in ``figures``."""
    return [(key, f"{s['median']:.2f} s", f"{s['min']:.2f}-{s['max']:.2f}", str(s["n"]), f"<= {target:g} s",
             verdict(s["median"], target)) for key, target in SECONDS_TARGETS.items() if (s := figures.get(key))]


def render(doc: Mapping[str, Any], out: Console) -> None:
    """Headline ratios, then the absolute figures behind them, then growth."""
    table = Table(title=f"upgrader benchmarks ({doc['cpus']} CPUs, make bench took {doc['seconds'] / 60:.1f} min)")
    for col in ("ratio (median)", "median", "min-max", "n", "target", "verdict"):
        table.add_column(col, justify="left" if col == "ratio (median)" else "right")
    ratios = {k: Summary(**v) for k, v in doc["ratios"].items()}
    for key, *cells in ratio_rows(ratios):
        colour = "green" if cells[-1] == "met" else "red"
        table.add_row(f"{key}\n[dim]{LABELS[key]}[/]", *cells[:-1], f"[{colour}]{cells[-1]}[/]")
    for key, *cells in seconds_rows(doc["figures"]):
        colour = "green" if cells[-1] == "met" else "red"
        table.add_row(f"{key}\n[dim]{SECONDS_LABELS[key]}[/]", *cells[:-1], f"[{colour}]{cells[-1]}[/]")
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
    if doc.get("staging"):
        out.print(staging_table(doc["staging"]))
    if doc.get("growth_apps"):
        out.print(f"[dim]growth in applications, measured {doc['growth_apps']['measured_at']}:[/]")
        for t in apps_growth.tables(doc["growth_apps"]):
            out.print(t)
    for line in doc["definitions"]:
        out.print(f"[dim]- {line}[/]")


def _cell(s: Mapping[str, float], digits: int = 2) -> str:
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


def staging_rows(found: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """(what, Stage true, Stage false, false / true) rows: each node's drain-to-online (median over the
    repetitions), then the staging phase and the run's wall time."""
    rows = []
    for n, times in found["per_node"].items():
        on, off = _median(times["staged_s"]), _median(times["unstaged_s"])
        rows.append((f"{n}: drain to online s", _num(on), _num(off), _times(off, on)))
    figures = found["figures"]

    def pair(label: str, on: str, off: str) -> None:
        a, b = figures.get(on, {}).get("median"), figures.get(off, {}).get("median")
        rows.append((label, _num(a), _num(b), _times(b, a)))

    pair("staging phase s (wall)", "stage_phase_staged_s (every node downloads)",
         "stage_phase_unstaged_s (the set kept and checked, no download)")
    pair("each node's upgrade s (median)", "upgrade_staged_s (per node, as the run saw it)",
         "upgrade_unstaged_s (per node, as the run saw it)")
    pair("one archive's download s (server side)", "archive_download_staged_s (per archive, server side)",
         "archive_download_unstaged_s (per archive, server side)")
    pair("run s (wall)", "run_wall_staged_s", "run_wall_unstaged_s")
    return rows


def staging_table(found: Mapping[str, Any]) -> Table:
    ratio = found.get("drain_to_online_unstaged_vs_staged")
    said = (f"; drain to online, Stage false / true: {ratio['median']:.2f}x ({ratio['min']:.2f}-{ratio['max']:.2f}, "
            f"{ratio['n']} pairs)" if ratio else "")
    table = Table(title=f"staging: {found['padding_bytes'] / 2**20:.1f} MiB package, repository at "
                        f"{found['rate_bytes_per_s'] / 2**20:.2f} MiB/s, {found['repetitions']} repetition(s){said}")
    for col in ("", "Stage true", "Stage false", "false / true"):
        table.add_column(col, justify="left" if not col else "right")
    for row in staging_rows(found):
        table.add_row(*row)
    return table


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _times(numerator: float | None, denominator: float | None) -> str:
    return "-" if numerator is None or not denominator else f"{numerator / denominator:.2f}x"
