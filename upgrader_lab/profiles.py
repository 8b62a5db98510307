"""Lab profiles: the shape of a lab's cluster (``upgrader-lab up --profile NAME``).

``default``: today's lab, no fencing: per application a group of a floating
IP and an LXC container (:mod:`upgrader_lab.cluster`).

``seed``: two nodes (corosync ``two_node``), shaped as a DRBD setup is. Per
application a promotable ``ocf:pacemaker:Stateful`` clone stands in for its
DRBD device, and a group runs with its Promoted instance, after the promote:
an ``ocf:heartbeat:Filesystem`` mounting the container's OverlayFS root (the
node's root as lower dir, the application's own upper and work dirs), the
floating IP, the container on that mounted directory.

``mixed``: three to five nodes, the default's groups, plus a Dummy clone on
every node, a resource allowed on two nodes only, one stopped by its
target-role, one unmanaged and running (on node1), and a group with
``resource-stickiness=INFINITY``.

Both fence: ``stonith-enabled=true``, ``stonith-action=off``, one device of
the lab's agent ``fence_lab`` (:mod:`upgrader_lab.fence_lab`) for every node,
which cuts a node's power through the lab's power controller
(:mod:`upgrader_lab.powerswitch`). In two nodes a network cut is a fence
race: fencing node1 waits :data:`RACE_DELAY`, so node1 always wins it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from upgrader_lab import cluster
from upgrader_lab.cluster import app_resources, cib_document, nvpair
from upgrader_lab.layout import DEFAULT_PROFILE, Lab

FENCE_DEVICE = "fence-lab"
FENCE_AGENT = Path(__file__).with_name("fence_lab.py")
FENCE_AGENT_PATH = "usr/sbin/fence_lab"  # in a node's upper dir: where Pacemaker's fencer finds agents
RACE_DELAY = "5s"  # fencing node1 waits this long in a two-node lab: node1 wins a fence race
FENCED_OPTIONS = {"stonith-enabled": "true", "stonith-action": "off"}
# mixed: the resources beside the applications' groups
CLONE, PINNED, PARKED, UNMANAGED, STICKY = "ping-clone", "pinned", "parked", "legacy", "sticky"
PINNED_NODES = ("node1", "node2")
UNMANAGED_NODE = "node1"
UNMANAGED_STATE = "/var/lib/upgrader-lab-legacy/legacy.state"  # in node1's disk: running there, unmanaged


def drbd_clone(app: str) -> str:
    """The promotable clone standing in for ``app``'s DRBD device."""
    return f"{app}-drbd-clone"


def rootfs(lab: Lab, app: str) -> str:
    """Where the seed profile's Filesystem mounts ``app``'s container root."""
    return f"/var/lib/lxc/{lab.container(app)}/rootfs"


# ---------------------------------------------------------------- what node.prepare writes

def initial_cib(lab: Lab) -> str:
    if lab.profile == "seed":
        return _seed_cib(lab)
    if lab.profile == "mixed":
        return _mixed_cib(lab)
    return cluster.initial_cib(lab)


def container_config(lab: Lab, app: str) -> str:
    return cluster.container_config(lab, app, rootfs(lab, app) if lab.profile == "seed" else None)


def prepare_node(lab: Lab, node: str, base: Path) -> None:
    """What a profile adds to a node's upper dir (``base/upper``) and container dirs (``base/lxc``)."""
    if lab.profile == DEFAULT_PROFILE:
        return
    upper = base / "upper"
    agent = upper / FENCE_AGENT_PATH
    agent.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(FENCE_AGENT, agent)
    agent.chmod(0o755)
    (upper / "srv/upgrader-lab/power").mkdir(parents=True, exist_ok=True)
    if lab.profile == "seed":
        for app in lab.app_names:
            for sub in ("rootfs", "work"):
                (base / "lxc" / lab.container(app) / sub).mkdir(parents=True, exist_ok=True)
    if lab.profile == "mixed":
        state = upper / UNMANAGED_STATE.lstrip("/")
        state.parent.mkdir(parents=True, exist_ok=True)
        if node == UNMANAGED_NODE:
            state.write_text("")


# ---------------------------------------------------------------- CIB fragments

def _params(rid: str, params: dict[str, str]) -> str:
    pairs = "".join(f"\n            {nvpair(f'{rid}-params', k, v)}" for k, v in params.items())
    return f'\n          <instance_attributes id="{rid}-params">{pairs}\n          </instance_attributes>'


def _meta(rid: str, meta: dict[str, str]) -> str:
    pairs = "".join(f"\n            {nvpair(f'{rid}-meta', k, v)}" for k, v in meta.items())
    return f'\n          <meta_attributes id="{rid}-meta">{pairs}\n          </meta_attributes>'


def _ops(rid: str, ops: list[tuple[str, str, str, str]]) -> str:
    """(name, interval, timeout, role or '') per operation."""
    lines = "".join(
        f'\n            <op id="{rid}-{name}-{role.lower() or interval}" name="{name}" interval="{interval}" '
        f'timeout="{timeout}"' + (f' role="{role}"' if role else "") + "/>"
        for name, interval, timeout, role in ops)
    return f"\n          <operations>{lines}\n          </operations>"


def _primitive(rid: str, agent: str, params: dict[str, str] | None = None, meta: dict[str, str] | None = None,
               ops: list[tuple[str, str, str, str]] | None = None) -> str:
    cls, _, rest = agent.partition(":")
    provider, _, kind = rest.rpartition(":")
    head = f'<primitive id="{rid}" class="{cls}"' + (f' provider="{provider}"' if provider else "") + f' type="{kind}">'
    body = (_params(rid, params) if params else "") + (_meta(rid, meta) if meta else "")
    body += _ops(rid, ops or [("monitor", "10s", "20s", "")])
    return f"\n        {head}{body}\n        </primitive>"


def fence_device(lab: Lab) -> str:
    """One lab fence device for every node; in two nodes, fencing node1 waits (a deterministic race)."""
    params = {"pcmk_host_list": " ".join(lab.node_names), "pcmk_host_check": "static-list"}
    if lab.nodes == 2:
        params["pcmk_delay_base"] = f"node1:{RACE_DELAY};node2:0s"
    return _primitive(FENCE_DEVICE, "stonith:fence_lab", params, ops=[("monitor", "30s", "20s", "")])


def _seed_app(lab: Lab, app: str) -> str:
    """The app's promotable clone, then its group: Filesystem (its overlay root), floating IP, container."""
    ct = lab.container(app)
    clone = drbd_clone(app)
    stateful = _primitive(f"{app}-drbd", "ocf:pacemaker:Stateful",
                          ops=[("monitor", "10s", "20s", "Promoted"), ("monitor", "11s", "20s", "Unpromoted")])
    meta = _meta(clone, {"promotable": "true", "promoted-max": "1", "promoted-node-max": "1",
                         "clone-max": "2", "clone-node-max": "1"})
    overlay = f"lowerdir=/var/lib/lxc/host/rootfs,upperdir=/var/lib/lxc/{ct}/delta0,workdir=/var/lib/lxc/{ct}/work"
    fs = _primitive(f"{app}-fs", "ocf:heartbeat:Filesystem",
                    {"device": f"{ct}-root", "directory": rootfs(lab, app), "fstype": "overlay", "options": overlay},
                    ops=[("start", "0", "60s", ""), ("stop", "0", "60s", ""), ("monitor", "20s", "40s", "")])
    return f'\n      <clone id="{clone}">{meta}{stateful}\n      </clone>' + app_resources(lab, app, fs)


def _seed_constraints(app: str) -> str:
    """As a DRBD setup has them: with the Promoted instance, after the promote."""
    clone = drbd_clone(app)
    return (f'\n      <rsc_colocation id="{app}-with-promoted" rsc="{app}" with-rsc="{clone}" '
            'with-rsc-role="Promoted" score="INFINITY"/>'
            f'\n      <rsc_order id="{app}-after-promote" first="{clone}" first-action="promote" '
            f'then="{app}" then-action="start"/>')


def _seed_cib(lab: Lab) -> str:
    resources = fence_device(lab) + "".join(_seed_app(lab, app) for app in lab.app_names)
    constraints = "".join(_seed_constraints(app) for app in lab.app_names)
    return cib_document(lab, resources, constraints, FENCED_OPTIONS)


def _mixed_extras(lab: Lab) -> str:
    clone = f'\n      <clone id="{CLONE}">{_primitive("ping", "ocf:pacemaker:Dummy")}\n      </clone>'
    pinned = _primitive(PINNED, "ocf:pacemaker:Dummy")
    parked = _primitive(PARKED, "ocf:pacemaker:Dummy", meta={"target-role": "Stopped"})
    legacy = _primitive(UNMANAGED, "ocf:pacemaker:Dummy", {"state": UNMANAGED_STATE}, {"is-managed": "false"})
    members = _primitive(f"{STICKY}-a", "ocf:pacemaker:Dummy") + _primitive(f"{STICKY}-b", "ocf:pacemaker:Dummy")
    stickiness = _meta(STICKY, {"resource-stickiness": "INFINITY"})
    sticky = f'\n      <group id="{STICKY}">{stickiness}{members}\n      </group>'
    return clone + pinned + parked + legacy + sticky


def _mixed_constraints(lab: Lab) -> str:
    return "".join(f'\n      <rsc_location id="{PINNED}-not-{n}" rsc="{PINNED}" node="{n}" score="-INFINITY"/>'
                   for n in lab.node_names if n not in PINNED_NODES)


def _mixed_cib(lab: Lab) -> str:
    resources = fence_device(lab) + "".join(app_resources(lab, app) for app in lab.app_names) + _mixed_extras(lab)
    return cib_document(lab, resources, _mixed_constraints(lab), FENCED_OPTIONS)
