"""Health checks run after every move, before the rollout goes on.

Three levels, all run for every moved resource, in parallel, each check
retried (tenacity) within its own deadline (:class:`HealthDefaults`):

1. cluster: every primitive of the resource is Started on the expected node,
   on that node only, not failed, no pending operation, and no failure or
   fail-count rise since the move (compared with a reading taken before it).
   One ``snapshot(timeout)`` call (one crm_mon) per poll round serves all
   level-1 checks. A new failure fails at once: waiting cannot clear it.
2. container: for each ``ocf:heartbeat:lxc`` primitive, ``lxc-info -n NAME -s``
   says RUNNING on that node, then the check command, if declared, exits 0 in
   ``lxc-attach -n NAME -- CMD...``. NAME is the primitive's ``container``
   parameter. Other container agents (docker, podman, VirtualDomain, ...) and
   resources without an lxc primitive are not checked at this level; the
   report says so ("container level not checked: agent ocf:heartbeat:docker").
3. application: the declared probes, as a client would do them.

Declarations are CIB meta attributes, so they travel with the configuration:

``rolling-upgrade-probe``
    One or more probe URLs separated by whitespace::

        tcp://HOST:PORT                       TCP connect succeeds
        http://HOST[:PORT]/PATH[?QUERY]       GET answers 200
        https://HOST[:PORT]/PATH[?QUERY]      same over TLS (certificate verified)

    Expectations go in the fragment, ``&``-separated, values percent-encoded
    (write ``%26`` for ``&``, ``%23`` for ``#``, ``%20`` for a space, ``%25``
    for ``%``; ``+`` stays ``+``)::

        status=CODE    expected HTTP status (default 200)
        body=REGEX     Python regex searched in the first 64 KiB of the body
        verify=no      https only: do not verify the certificate (default yes)

    e.g. ``http://198.51.100.11/health#status=200&body=^ok`` or
    ``tcp://198.51.100.11:5432 https://198.51.100.11/#verify=no``.
    A resource without probes gets levels 1 and 2; the report says
    "no application probe declared".

``rolling-upgrade-check-cmd``
    A command run inside the container, split with :func:`shlex.split` (never
    a shell), e.g. ``/usr/bin/test -s /srv/web/index.html``. Runs on lxc
    primitives only.

On a group, both attributes may sit on the group or on its primitives: probes
from all of them count; a primitive's check command wins over the group's.
:func:`validate` checks every declaration at preflight and raises
:class:`ProbeSpecError` with a one-line message naming the resource (``group/member``
inside a group), the attribute and what is wrong.

On a live cluster (:mod:`.live`, :mod:`.cib`, :mod:`.snapshot`): declarations
come from ``cibadmin --query --scope resources`` (groups and ungrouped
primitives; clones and bundles are not checked), level 1 from
``crm_mon --one-shot --inactive --output-as=xml`` (fail-counts from its
``node_history``), level 2 runs on the container's node (the local node
directly, others through ``Rolling-Upgrade::Remote-Shell``), and
``Rolling-Upgrade::Health::Timeout``/``Retries``/``Interval`` become each
check's deadline, extra attempts and pause. The orchestrator calls
:func:`.live.validate_probes` at preflight, :func:`.live.read_baseline` before
a move and :func:`.live.verify_moved` after it. ``rolling-upgrade check
[--json]`` (:mod:`.command`) checks every running resource now: exit 0 all
passed, 1 a check failed, 2 a malformed declaration (nothing checked).
"""

from upgrader.health.cluster import ClusterSnapshot, Snapshot, SnapshotRounds, cluster_problem
from upgrader.health.engine import HealthDefaults, Target, check_health
from upgrader.health.errors import CheckFailed, ProbeSpecError
from upgrader.health.report import CheckResult, HealthReport, Level
from upgrader.health.spec import CHECK_CMD_ATTR, PROBE_ATTR, HealthSpec, ResourceConfig, health_spec, parse_probe, validate

__all__ = [
    "CHECK_CMD_ATTR", "PROBE_ATTR", "CheckFailed", "CheckResult", "ClusterSnapshot",
    "HealthDefaults", "HealthReport", "HealthSpec", "Level", "ProbeSpecError",
    "ResourceConfig", "Snapshot", "SnapshotRounds", "Target", "check_health", "cluster_problem",
    "health_spec", "parse_probe", "validate",
]
