"""The health checks on a live cluster: the CIB's declarations, crm_mon, runners per node.

Every command goes through the :class:`~upgrader.pacemaker.live.Cluster`'s
runner (locally, or with its prefix). Level 2 runs on the node where the
container runs: directly when that is the local node (``crm_node -n``),
otherwise through the configured remote shell (``Rolling-Upgrade::Remote-Shell``).

Entry points for the orchestrator: :func:`validate_probes` at preflight,
:func:`read_baseline` before a move, :func:`verify_moved` after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Callable, Mapping

from upgrader.config import Config, node_runner, tool_path
from upgrader.pacemaker.live import Cluster
from upgrader.pacemaker.state import ClusterState
from upgrader.runner import Runner
from upgrader.health.cib import CibResources, parse_resources
from upgrader.health.cluster import ClusterSnapshot, Snapshot
from upgrader.health.engine import HealthDefaults, Target, check_health
from upgrader.health.errors import ProbeSpecError
from upgrader.health.report import CheckResult, HealthReport, Level
from upgrader.health.snapshot import snapshot_of
from upgrader.health.spec import CHECK_CMD_ATTR, HealthSpec, health_spec

ATTEMPT_TIMEOUT = 5.0  # seconds for one probe, one lxc command, one crm_mon reading


@dataclass(frozen=True)
class Declarations:
    """The health declarations of every group and ungrouped primitive in the CIB."""

    specs: Mapping[str, HealthSpec]  # by resource id, in CIB order
    problems: Mapping[str, str]  # resource id -> one line naming it, the attribute and the fault
    skipped: tuple[str, ...] = ()  # clones and bundles (not checked)


def read_declarations(cluster: Cluster, timeout: float | None = None,
                      allowed: tuple[str, ...] | None = None) -> Declarations:
    """Read the CIB's resources (one cibadmin call) and parse every declaration.

    ``allowed``: the programs a check command may name (``Rolling-Upgrade::Health::Commands``
    of this node's configuration when not given).
    """
    result = cluster.runner.run(["cibadmin", "--query", "--scope", "resources"], timeout=timeout,
                                what="reading the resources from the CIB")
    return declarations(parse_resources(result.stdout), allowed_commands() if allowed is None else allowed)


def allowed_commands() -> tuple[str, ...]:
    """Health::Commands of this node's own (root-owned) configuration; none when it cannot be read."""
    from upgrader.config import ConfigError, load

    try:
        return load().health_commands
    except ConfigError:
        return ()


def declarations(cib: CibResources, allowed: tuple[str, ...] = ()) -> Declarations:
    """Every declaration parsed; a check command whose program ``allowed`` does not list is a problem.

    A write to the CIB alone (a meta attribute) must never be enough to run a new program as root.
    """
    specs: dict[str, HealthSpec] = {}
    problems: dict[str, str] = {}
    for resource in cib.resources:
        try:
            spec = health_spec(resource)
        except ProbeSpecError as exc:
            problems[resource.id] = str(exc)
            continue
        refused = [c for c in spec.containers if c.command and c.command[0] not in allowed]
        if refused:
            problems[resource.id] = "; ".join(
                f"{resource.id}: container {c.name}: meta attribute {CHECK_CMD_ATTR} runs {c.command[0]!r}, which "
                f"Rolling-Upgrade::Health::Commands does not allow (list it there, on every node, to allow it)"
                for c in refused)
            continue
        specs[resource.id] = spec
    return Declarations(specs, problems, cib.skipped)


def validate_probes(cluster: Cluster) -> list[str]:
    """Preflight: one line per malformed declaration, empty when all are good. Only reads the CIB."""
    return list(read_declarations(cluster).problems.values())


def read_state(cluster: Cluster, timeout: float | None = None) -> tuple[ClusterState, Snapshot]:
    """One crm_mon call (``crm_mon --one-shot --inactive``): the cluster state and the level-1 snapshot.

    The fail-counts come parsed with the state (``<node_history>`` of the same output).
    """
    state = cluster.state(timeout)
    return state, snapshot_of(state)


def read_baseline(cluster: Cluster, timeout: float | None = None) -> Snapshot:
    """The level-1 reading to take before a move and hand to :func:`verify_moved`."""
    return read_state(cluster, timeout)[1]


def defaults_from(config: Config, patched: bool | None = None) -> HealthDefaults:
    """Health::Timeout is each check's deadline, Health::Retries its extra attempts, Health::Interval the pause;
    level 4 as Health::Patched says unless ``patched`` is given."""
    deadline = float(config.health_timeout)
    level4 = config.health_patched if patched is None else patched
    return HealthDefaults(deadline=deadline, attempt_timeout=min(ATTEMPT_TIMEOUT, deadline),
                          interval=float(config.health_interval), retries=config.health_retries,
                          patched_tool=tool_path() if level4 else None)


def node_runners(cluster: Cluster, config: Config) -> Callable[[str], Runner]:
    """``runner_for(node)``: the cluster's runner on the local node, the remote shell elsewhere."""
    base = cluster.runner
    local = cache(cluster.local_node)

    def runner_for(node: str) -> Runner:
        return node_runner(config, node, local(), base)

    return runner_for


def verify_moved(cluster: Cluster, moved: Mapping[str, str], baseline: ClusterSnapshot,
                 defaults: HealthDefaults, config: Config = Config(),
                 first: ClusterSnapshot | None = None) -> HealthReport:
    """All three levels for each moved resource (group or primitive id -> the node it must run on).

    ``baseline`` comes from :func:`read_baseline` before the move; ``first``, a reading made just now (the
    settled state the move was seen in), is the level-1 checks' first (a crm_mon less). Raises
    ProbeSpecError for a malformed declaration of a moved resource (preflight
    should have refused it) and KeyError for an id the CIB does not define.
    """
    found = read_declarations(cluster)
    for rid in moved:
        if rid in found.problems:
            raise ProbeSpecError(found.problems[rid])
        if rid not in found.specs:
            raise KeyError(f"no group or ungrouped primitive called {rid!r} in the CIB")
    return check_health([Target(found.specs[rid], node) for rid, node in moved.items()],
                        snapshot=lambda t: read_state(cluster, t)[1], baseline=baseline,
                        runner_for=node_runners(cluster, config), defaults=defaults, first=first)


def check_cluster(cluster: Cluster, found: Declarations, defaults: HealthDefaults,
                  config: Config = Config()) -> HealthReport:
    """Every level of every group and ungrouped primitive, where it runs now.

    Failures and fail-counts already recorded count against a resource (the
    baseline is empty): they need a ``crm_resource --cleanup``. A resource
    that runs nowhere fails unless it is stopped on purpose (target-role Stopped).
    """
    state, now = read_state(cluster, defaults.attempt_timeout)
    targets: list[Target] = []
    extra: list[CheckResult] = []
    for rid, spec in found.specs.items():
        members = state.members(rid)
        nodes = list(dict.fromkeys(n for r in members for n in r.nodes))
        if nodes:
            targets.append(Target(spec, nodes[0]))
        elif members and all((r.target_role or "").lower() == "stopped" for r in members):
            extra.append(_row(rid, "stopped on purpose (target-role Stopped): not checked"))
        else:
            extra.append(CheckResult(rid, "-", Level.CLUSTER, ", ".join(spec.primitives), ok=False,
                                     error=f"{rid} runs on no node"))
    extra += [_collection_row(state, rid) for rid in found.skipped]
    report = check_health(targets, snapshot=lambda t: read_state(cluster, t)[1], baseline=Snapshot(),
                          runner_for=node_runners(cluster, config), defaults=defaults, first=now)
    return HealthReport(report.results + tuple(extra), report.seconds)


def _collection_row(state: ClusterState, rid: str) -> CheckResult:
    """A clone's instances where they run (a promotable one's Promoted too); a bundle is not checked yet."""
    kind = state.collection(rid)
    if kind is None or kind.kind != "clone":
        return _row(rid, "bundle: not checked")
    members = state.members(rid)
    running = sorted({n for r in members if r.running for n in r.nodes})
    promoted = sorted({n for r in members if r.running and r.role in ("Promoted", "Master") for n in r.nodes})
    where = f"Started on {', '.join(running)}" + (f"; Promoted on {', '.join(promoted) or 'no node'}"
                                                    if kind.promotable else "")
    failed = [f"{r.id} failed on {','.join(r.nodes) or '?'}" for r in members if r.failed]
    if not running and all((r.target_role or "").lower() == "stopped" for r in members):
        return _row(rid, "stopped on purpose (target-role Stopped): not checked")
    if not running or failed or (kind.promotable and not promoted):
        why = "; ".join(failed) or (f"{rid} runs on no node" if not running else f"{rid} has no Promoted instance")
        return CheckResult(rid, ", ".join(running) or "-", Level.CLUSTER, "clone", ok=False, error=why)
    return CheckResult(rid, ", ".join(running), Level.CLUSTER, "clone", ok=True, note=where)


def _row(rid: str, note: str) -> CheckResult:
    return CheckResult(rid, "-", Level.CLUSTER, "-", ok=True, note=note, checked=False)
