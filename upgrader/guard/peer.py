"""Asking a peer when this node's cluster stack is stopped: Pacemaker's documented procedure.

ClusterLabs, SUSE and Red Hat document the same manual upgrade: put the node in
standby, stop its cluster stack, upgrade, start the stack. With the local stack
down the guard cannot ask the cluster here, so it asks a peer through the
Remote-Shell: the peers are corosync's nodelist (``/etc/corosync/corosync.conf``),
this node is the entry named like its host.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from pathlib import Path

from upgrader.config import Config, node_runner
from upgrader.pacemaker import names
from upgrader.pacemaker.live import Cluster
from upgrader.pacemaker.state import ClusterState
from upgrader.runner import CommandError, Runner

COROSYNC_CONF = Path("/etc/corosync/corosync.conf")
_NAME = re.compile(r"^\s*name\s*:\s*(\S+)\s*$", re.M)


@dataclass(frozen=True)
class Peer:
    cluster: Cluster  # the cluster as the peer answers for it
    name: str  # the peer that answered
    me: str  # this node's name in the cluster
    state: ClusterState


def nodelist(text: str) -> list[str]:
    """The node names of corosync.conf's nodelist (``name:`` of each ``node { }``)."""
    start = text.find("nodelist")
    return _NAME.findall(text[start:]) if start >= 0 else []


def this_node(nodes: list[str], host: str | None = None) -> str | None:
    """The nodelist entry that is this host (its name, or its short name)."""
    host = host or socket.gethostname()
    for candidate in (host, host.split(".")[0]):
        if candidate in nodes:
            return candidate
    return None


def ask_a_peer(config: Config, timeout: float, conf_file: Path = COROSYNC_CONF) -> Peer | str:
    """The first peer that answers for the cluster, or one line saying why none could be asked."""
    try:
        nodes = nodelist(conf_file.read_text())
    except OSError as exc:
        return f"cannot read {conf_file} to find a peer ({exc.strerror})"
    me = this_node(nodes)
    if me is None:
        return f"this host ({socket.gethostname()}) is not in the nodelist of {conf_file}"
    tried = []
    for peer in (n for n in nodes if n != me):
        try:
            names.node_name(peer)
            cluster = Cluster(node_runner(config, peer, me, Runner(timeout=timeout)))
            return Peer(cluster, peer, me, cluster.state())
        except (CommandError, names.BadValue, ValueError) as exc:
            tried.append(f"{peer}: {exc}")
    return "no peer answered (" + "; ".join(tried) + ")" if tried else f"{conf_file} names no peer"
