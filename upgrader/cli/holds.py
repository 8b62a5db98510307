"""``rolling-upgrade holds``, ``holds --sync`` and ``release-hold``: the builds held back on every node.

A fail back holds back what the failed node installed (:mod:`upgrader.orchestrator.holding`): the CIB
records it, every node pins it off (``/etc/apt/preferences.d/rolling-upgrade-holds``). ``holds`` lists the
holds; ``holds --sync`` (internal: a run starts it on every node) writes this node's pin file from the CIB
and prints what changed, in one line; ``release-hold PACKAGE... | --all`` ends holds and syncs every node.
A newer version of a held package ends its hold at a run's preflight.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from upgrader.packages import holds as local
from upgrader.pacemaker import holds as store
from upgrader.pacemaker import names
from upgrader.pacemaker.holds import RELEASE, Hold, HoldError

if TYPE_CHECKING:
    from rich.console import Console

    from upgrader.pacemaker.live import Cluster

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


def sync(cluster: Cluster | None = None, path: Path = local.PATH) -> int:
    """This node's pin file made to pin exactly the CIB's holds; one line on stdout saying what changed.

    Exit 1, the pins left as they are, when the CIB cannot be read here (a line on stderr says why).
    Loads neither rich nor the orchestrator: every node runs it at every fail back and release.
    """
    from upgrader.runner import CommandError

    if cluster is None:
        from upgrader.pacemaker.live import Cluster
        from upgrader.runner import Runner

        cluster = Cluster(Runner())
    try:
        wanted = store.read(cluster)
    except (HoldError, CommandError) as exc:
        print(f"rolling-upgrade holds --sync: {exc}; the pins of this node stay as they are", file=sys.stderr)
        return EXIT_ERROR
    note = ""
    try:
        before = local.read_local(path)
    except HoldError as exc:
        before, note = [], f" (replaced: {exc})"
    try:
        local.write_local(wanted, path)
    except HoldError as exc:
        print(f"rolling-upgrade holds --sync: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(local.changes(before, wanted) + note)
    return EXIT_OK


def holds_command(cluster: Cluster, as_json: bool, out: Console) -> int:
    """The holds the CIB records: package, version, the run that failed back from it, the node, since."""
    from rich.markup import escape
    from rich.table import Table

    held = store.read(cluster)
    if as_json:
        out.file.write(json.dumps({"holds": [h.document() for h in held]}, indent=2) + "\n")
        return EXIT_OK
    if not held:
        out.print("no build is held back")
        return EXIT_OK
    table = Table(title="held back on every node")
    for col in ("package", "version", "run", "node", "since"):
        table.add_column(col)
    for h in held:
        table.add_row(*(escape(v) for v in (h.package, h.version, h.run_id, h.node, h.since)))
    out.print(table)
    out.print(escape(f"release with '{RELEASE} PACKAGE...' (or --all); a newer version of a package ends its "
                     "hold at a run's preflight"))
    return EXIT_OK


def release(cluster: Cluster, packages: Sequence[str], everything: bool, out: Console) -> int:
    """End the holds of ``packages`` (or all of them) in the CIB, then sync every node; say what was done.

    A package that is not held is a one-line error (exit 2), nothing changed.
    """
    from rich.markup import escape

    if everything == bool(packages):
        print(f"rolling-upgrade: release-hold takes PACKAGE... or --all, not {'both' if everything else 'neither'}; "
              "'rolling-upgrade holds' lists the holds", file=sys.stderr)
        return EXIT_USAGE
    removed: list[Hold] | None
    if everything:
        removed = store.clear(cluster)
    else:
        wanted = [names.package_name(p) for p in packages]
        held = store.read(cluster)
        unknown = sorted(set(wanted) - {h.package for h in held})
        if unknown:
            listed = ", ".join(sorted({h.package for h in held})) or "none"
            print(f"rolling-upgrade: {', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not held back "
                  f"(held: {listed}); nothing was changed", file=sys.stderr)
            return EXIT_USAGE
        removed = store.remove(cluster, wanted)
    if removed is None:
        out.print("released every hold (the CIB's entries were unreadable)")
    elif not removed:
        out.print("no build was held back; nothing to release")
    for h in removed or []:
        out.print(escape(f"released {h.text()} (held since {h.since}: run {h.run_id} failed back from it on {h.node})"))
    for line in _sync_everywhere(cluster):
        out.print(escape(line))
    return EXIT_OK


def _sync_everywhere(cluster: Cluster) -> list[str]:
    """Every node's pins made to match the CIB now; one line per node (never raises)."""
    from upgrader import config as configuration
    from upgrader.orchestrator.holding import sync_everywhere
    from upgrader.orchestrator.remote import Nodes

    try:
        nodes = Nodes(configuration.load(), cluster.local_node())
        everywhere = [n.name for n in cluster.state().nodes]
    except Exception as exc:  # noqa: BLE001 - the CIB is changed: say how to bring the pins along
        return [f"the nodes' pins were not synced ({type(exc).__name__}: {exc}); run 'rolling-upgrade holds --sync' "
                "on each node"]
    return sync_everywhere(nodes, everywhere)


def status_lines(held: Sequence[Hold], limit: int = 5) -> list[str]:
    """``status`` and ``plan``: one line per hold (the first ``limit``), then how many more."""
    lines = [f"held back on every node: {h.text()} (run {h.run_id} failed back from it on {h.node} at {h.since}); "
             f"'{RELEASE} {h.package}' ends it" for h in held[:limit]]
    if len(held) > limit:
        lines.append(f"and {len(held) - limit} more held back: 'rolling-upgrade holds' lists them")
    return lines
