"""``rolling-upgrade check [--json | --nagios]``: every health check of every running resource, now.

Exit codes: 0 every check passed; 1 a check failed (or the cluster could not
be asked); 2 a malformed declaration in the CIB or a bad setting (one line
each on stderr, nothing checked).

``--nagios`` speaks the monitoring plugin protocol instead: one line with
perfdata and exit 0 OK, 1 WARNING (a node quarantined, the upgrade lock
stale), 2 CRITICAL (a check failed), 3 UNKNOWN (the cluster, a setting or a
declaration could not be read).
"""

from __future__ import annotations

import sys

from rich.console import Console

from upgrader.config import ConfigError, load
from upgrader.orchestrator import steering
from upgrader.pacemaker import lock
from upgrader.pacemaker.live import Cluster
from upgrader.health.live import check_cluster, defaults_from, read_declarations

EXIT_HEALTHY, EXIT_UNHEALTHY, EXIT_REFUSED = 0, 1, 2


def check(cluster: Cluster, as_json: bool, out: Console, *, patched: bool = False, nagios: bool = False) -> int:
    """Run the checks; print a table (or JSON, or a monitoring plugin's line); return the exit code."""
    if nagios:
        return nagios_check(cluster, patched)
    try:
        config = load()
    except ConfigError as exc:
        print(f"rolling-upgrade: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    found = read_declarations(cluster)
    if found.problems:
        for problem in found.problems.values():
            print(f"rolling-upgrade: refused: {problem}", file=sys.stderr)
        return EXIT_REFUSED
    report = check_cluster(cluster, found, defaults_from(config, patched=patched), config)
    if as_json:
        out.print_json(report.to_json())
    else:
        report.render(out)
    return EXIT_HEALTHY if report.ok else EXIT_UNHEALTHY


NAGIOS_OK, NAGIOS_WARNING, NAGIOS_CRITICAL, NAGIOS_UNKNOWN = 0, 1, 2, 3
NAGIOS_NAMES = ("OK", "WARNING", "CRITICAL", "UNKNOWN")


def nagios_check(cluster: Cluster, patched: bool = False) -> int:
    """One line, ``UPGRADER STATE - summary | perfdata``, and the plugin's exit code."""
    try:
        config = load()
        found = read_declarations(cluster)
        if found.problems:
            return _nagios(NAGIOS_UNKNOWN, "; ".join(found.problems.values()), {})
        report = check_cluster(cluster, found, defaults_from(config, patched=patched), config)
        state = cluster.state()
        quarantined = steering.quarantined(cluster, [n.name for n in state.nodes])
        held = lock.inspect(cluster)
    except Exception as exc:  # noqa: BLE001 - a monitoring plugin says UNKNOWN, never a traceback
        return _nagios(NAGIOS_UNKNOWN, f"{type(exc).__name__}: {exc}", {})
    return _nagios(*nagios_verdict(report, sorted(quarantined), held))


def nagios_verdict(report, quarantined: list[str], held: lock.LockStatus | None) -> tuple[int, str, dict]:
    """The plugin's state, its summary and its perfdata from the checks, the quarantined nodes and the lock."""
    failed = [r for r in report.results if not r.ok]
    perf = {"checks": len(report.results), "failed": len(failed), "quarantined": len(quarantined),
            "lock_held": int(held is not None), "seconds": f"{report.seconds:.2f}s"}
    if failed:
        first = failed[0]
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        return (NAGIOS_CRITICAL, f"{first.resource} on {first.node}: {first.level.value} check failed: "
                f"{first.error}{more}", perf)
    warnings = [f"{n} quarantined" for n in quarantined]
    if held is not None and held.stale:
        warnings.append(f"the upgrade lock is stale ({held.why_stale}; holder {held.info.holder})")
    if warnings:
        return NAGIOS_WARNING, "; ".join(warnings), perf
    return NAGIOS_OK, f"{len(report.results)} checks passed", perf


def _nagios(code: int, text: str, perf: dict) -> int:
    line = f"UPGRADER {NAGIOS_NAMES[code]} - {' '.join(text.split())}"
    data = " ".join(f"{k}={v}" for k, v in perf.items())
    print(f"{line} | {data}" if data else line)
    return code
