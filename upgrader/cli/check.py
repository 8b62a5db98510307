"""``rolling-upgrade check [--json]``: every health check of every running resource, now.

Exit codes: 0 every check passed; 1 a check failed (or the cluster could not
be asked); 2 a malformed declaration in the CIB or a bad setting (one line
each on stderr, nothing checked).
"""

from __future__ import annotations

import sys

from rich.console import Console

from upgrader.config import ConfigError, load
from upgrader.pacemaker.live import Cluster
from upgrader.health.live import check_cluster, defaults_from, read_declarations

EXIT_HEALTHY, EXIT_UNHEALTHY, EXIT_REFUSED = 0, 1, 2


def check(cluster: Cluster, as_json: bool, out: Console, *, patched: bool = False) -> int:
    """Run the checks; print a table (or JSON); return the exit code."""
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
