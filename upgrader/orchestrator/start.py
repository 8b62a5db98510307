"""Setting a rollout up: this node's own stack first (if a dead run left it stopped), then the Rollout.

Every entry point that upgrades (``run``, ``node``, ``node --finish``, ``resume``
and the nightly window) builds its :class:`Rollout` here.
"""

from __future__ import annotations

import os
import socket
import time

from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from upgrader import config as configuration
from upgrader.hastack.control import StackError
from upgrader.orchestrator.gate import HealthGate
from upgrader.history import History
from upgrader.orchestrator.outcome import Refused
from upgrader.orchestrator.procedure import Checks, Reporter, Rollout
from upgrader.orchestrator.recovery import restart_own_stack
from upgrader.orchestrator.remote import Nodes
from upgrader.orchestrator.restarts import online
from upgrader.packages.choose import selection_for
from upgrader.pacemaker.live import Cluster, NotSettled
from upgrader.runner import CommandError
from upgrader.runs import RUN_ID_ENV, new_run_id


def rollout(cluster: Cluster, report: Reporter, checks: Checks | None = None, *,
            security_only: bool = False) -> Rollout:
    """The Rollout of this node's run (``UPGRADER_RUN_ID`` names it where the APT hooks started us); its
    ``selection`` from the settings (Origins-Pattern, Package-Blacklist) and ``security_only``."""
    cfg = configuration.load()
    selection = selection_for(cfg, security_only)
    restarted = own_stack_first(cluster, cfg)
    local = cluster.local_node()
    r = Rollout(cluster, Nodes(cfg, local), checks or default_checks(cluster, cfg), cfg,
                History(cfg.history_file), report, os.environ.get(RUN_ID_ENV) or new_run_id(local))
    r.selection = selection
    if restarted:
        r.report.step(local, "recover", restarted)
    return r


def default_checks(cluster: Cluster, cfg: configuration.Config) -> Checks:
    return HealthGate(cluster, cfg)


def own_stack_first(cluster: Cluster, cfg: configuration.Config) -> str | None:
    """This node's cluster stack, if a run of this node stopped it and died: started, and rejoined."""
    try:
        restarted = restart_own_stack(cfg, _host_names())
    except StackError as exc:
        raise Refused(f"refused: {exc}") from None
    if restarted:
        wait_joined(cluster, cfg.rejoin_timeout)
    return restarted


def _host_names() -> set[str]:
    host = socket.gethostname()
    return {host, host.split(".")[0]}


def wait_joined(cluster: Cluster, timeout: float) -> str:
    """This node's name once its cluster stack answers and it is online (up to ``timeout`` seconds)."""
    end = time.monotonic() + timeout
    try:
        local = Retrying(stop=stop_after_delay(timeout), wait=wait_fixed(1), retry=retry_if_exception_type(CommandError),
                         reraise=True)(cluster.local_node)
    except CommandError as exc:
        raise NotSettled(f"the cluster stack on this node did not answer within {timeout:g}s: {exc}") from None
    cluster.wait_settled(online(local), deadline=max(1.0, end - time.monotonic()))
    return local
