"""Remembering a bad build for the whole cluster: holds placed at a fail back, synced onto every node, ended.

After a fail back, every package version a suspect node upgraded or installed
in the run is held (:func:`hold_back`): recorded in the CIB
(:mod:`upgrader.pacemaker.holds`), then every node writes its APT pin from
it (``rolling-upgrade holds --sync``, :func:`sync_everywhere`). apt,
unattended-upgrades and later runs then skip that build and keep taking every
other fix. A hold ends with ``rolling-upgrade release-hold``, or when a newer
version of its package appears (:func:`release_expired`, for the preflight).
None of this may turn a fail back into a crash: :func:`hold_back` and the syncs
never raise; what failed is reported in one line each.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

from upgrader.packages.holds import UNCHANGED, expired
from upgrader.packages.summary import names as listed
from upgrader.pacemaker import holds as store
from upgrader.pacemaker.holds import RELEASE, Hold
from upgrader.runner import HOLDS_SYNC_TIMEOUT

if TYPE_CHECKING:
    from upgrader.orchestrator.context import NodeResult, RunContext
    from upgrader.orchestrator.remote import Nodes
    from upgrader.pacemaker.live import Cluster

SYNC = ("holds", "--sync")  # the tool's arguments for one node's sync
NAMED = 3  # this many held packages or fewer: the release command is spelled out with each one


def holds_for(results: Mapping[str, NodeResult], suspects: Iterable[str], run_id: str,
              since: str) -> tuple[list[Hold], list[str]]:
    """The holds for what the ``suspects`` upgraded or installed in this run (their candidate versions),
    one per package version; and one line per change that cannot be held (a bad name or version)."""
    found: dict[tuple[str, str], Hold] = {}
    refused = []
    for node in sorted(set(suspects)):
        result = results.get(node)
        for change in result.changes if result is not None else []:
            package, candidate = change.get("package"), change.get("candidate")
            if not candidate or candidate == change.get("installed"):
                continue  # removed, or not changed: nothing to keep off the nodes
            try:
                found.setdefault((package, candidate), Hold(package, candidate, run_id, node, since))
            except ValueError as exc:
                refused.append(f"not held: {exc}")
    return sorted(found.values(), key=lambda h: (h.package, h.version)), refused


def held_line(holds: Sequence[Hold]) -> str:
    """``held back on every node: demo-app 3; release with rolling-upgrade release-hold demo-app``."""
    packages = sorted({h.package for h in holds})
    how = (f"{RELEASE} {' '.join(packages)}" if len(packages) <= NAMED
           else f"{RELEASE} PACKAGE... or --all ('rolling-upgrade holds' lists them)")
    return f"held back on every node: {listed([h.text() for h in holds])}; release with {how}"


def hold_back(run: RunContext, node: str, suspects: Iterable[str]) -> None:
    """The fail back's holds: what the suspects installed in this run, recorded in the CIB and the
    history, said in a step line, synced onto every node. Never raises: a failure is one step line."""
    try:
        holds, refused = holds_for(run.results, suspects, run.run_id, _now())
        for line in refused:
            run.report.step(node, "hold", line)
        if not holds:
            return
        store.add(run.cluster, holds)
        for suspect in sorted({h.node for h in holds}):
            try:
                run.history.record(run.run_id, suspect, "hold", "note",
                                   holds=[h.document() for h in holds if h.node == suspect])
            except Exception as exc:  # noqa: BLE001 - a full /var: the holds stand, said
                run.report.step(node, "hold", f"the holds are not in the history: {exc}")
        run.report.step(node, "hold", held_line(holds))
        everywhere = run.all_nodes or [n.name for n in run.cluster.state().nodes]
        for news, line in _sync(run.nodes, everywhere):
            if news:
                run.report.step(node, "hold", line)
    except Exception as exc:  # noqa: BLE001 - the fail back goes on: it is already a stop
        run.report.step(node, "hold", f"could not hold back the failed build on every node "
                        f"({type(exc).__name__}: {exc}); the suspect node stays quarantined; keep that build off "
                        "the other nodes by hand (an APT pin, apt_preferences(5))")


def sync_everywhere(nodes: Nodes, all_nodes: Sequence[str]) -> list[str]:
    """``rolling-upgrade holds --sync`` on every node at once; one line per node, what it changed or why
    it could not be reached. Never raises."""
    return [line for _, line in _sync(nodes, all_nodes)]


def release_expired(cluster: Cluster, nodes: Nodes, all_nodes: Sequence[str], newest: Mapping[str, str],
                    pins: Mapping[str, frozenset[Hold] | None] | None = None) -> list[str]:
    """End the holds a newer version of their package supersedes (``newest``: package -> a candidate or
    installed version seen), then sync every node whose pins differ from the CIB's holds (also one that
    missed an earlier sync; ``pins``: per node, what its plan said its pin file pins, None or absent:
    unknown, synced); the lines to report: what was released, the nodes whose pins changed or that could
    not be reached. Never raises."""
    lines, held = [], None
    try:
        held = store.read(cluster)
        gone = expired(held, newest)
        for h in store.remove_holds(cluster, gone) if gone else []:
            lines.append(f"released the hold on {h.text()} (failed on {h.node} in run {h.run_id}): "
                         f"{newest[h.package]} is newer")
        if gone:
            held = store.read(cluster)
    except Exception as exc:  # noqa: BLE001 - the preflight goes on; the pins stay as they are
        lines.append(f"the holds could not be checked for newer versions ({type(exc).__name__}: {exc}); "
                     "they stay; see 'rolling-upgrade holds'")
        held = None
    wanted = frozenset(held) if held is not None else None
    behind = [n for n in all_nodes if wanted is None or (pins or {}).get(n) != wanted]
    return lines + [line for news, line in _sync(nodes, behind) if news]


def _sync(nodes: Nodes, all_nodes: Sequence[str]) -> list[tuple[bool, str]]:
    """Each node's sync, in parallel: (news: it changed something or failed, its line)."""
    def one(node: str) -> tuple[bool, str]:
        hint = f"run 'rolling-upgrade holds --sync' on {node} once it answers"
        try:
            result = nodes.runner(node, timeout=HOLDS_SYNC_TIMEOUT).call([nodes.tool, *SYNC])
        except Exception as exc:  # noqa: BLE001 - one node's trouble is its line, never the caller's
            return True, f"{node}: holds not synced ({type(exc).__name__}: {exc}); {hint}"
        said = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
        if result.returncode != 0 or not said:
            return True, f"{node}: holds not synced ({result.last_words}); {hint}"
        return not said.startswith(UNCHANGED), f"{node}: {said}"

    if not all_nodes:
        return []
    with ThreadPoolExecutor(max_workers=len(all_nodes)) as pool:
        return list(pool.map(one, all_nodes))


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

