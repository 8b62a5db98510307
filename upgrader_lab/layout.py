"""Names, addresses and paths of a lab: everything derived from (name, slice, nodes, apps).

Labs run side by side: each has a name that prefixes its bridge, namespaces,
containers and state, and its own /27 slice of 198.51.100.0/24 or
203.0.113.0/24 (slices 0-7 and 8-15). In a slice, .1-.5 are the nodes,
.11-.22 the applications' floating IPs, .30 the lab's client namespace.
A lab's profile names the shape of its cluster (see :mod:`upgrader_lab.profiles`).
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

LAB_ROOT = Path("/var/lib/upgrader-lab")
DEFAULT_NAME = "ulab"
NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,7}$")
NETWORKS = (ipaddress.IPv4Network("198.51.100.0/24"), ipaddress.IPv4Network("203.0.113.0/24"))
SLICES = 16
MIN_NODES, MAX_NODES = 2, 5
MIN_APPS, MAX_APPS = 1, 12
PACKAGE = "demo-libfoo"
DEFAULT_PROFILE = "default"
# Profile -> the node counts it allows. Profiles other than the default have lab fencing.
PROFILE_NODES = {DEFAULT_PROFILE: (MIN_NODES, MAX_NODES), "seed": (2, 2), "mixed": (3, MAX_NODES)}
POWER_MOUNT = "/srv/upgrader-lab/power"  # where a node sees the lab's power controller (its socket)


def default_nodes(profile: str) -> int:
    """The node count of a profile's lab when none is given: 3, or what the profile allows nearest to it."""
    low, high = PROFILE_NODES.get(profile, (MIN_NODES, MAX_NODES))
    return min(max(3, low), high)


class LabError(Exception):
    """A lab operation cannot go on; the message says why and what to do."""


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise LabError(f"lab name {name!r} is invalid: use 1-8 lowercase letters or digits, starting with a letter")
    return name


@dataclass(frozen=True)
class Lab:
    """One lab's identity; saved as lab.json in its state directory."""

    name: str = DEFAULT_NAME
    slice: int = 0
    nodes: int = 3
    apps: int = 3
    profile: str = DEFAULT_PROFILE  # absent from an older lab.json: the default

    def __post_init__(self) -> None:
        check_name(self.name)
        if self.profile not in PROFILE_NODES:
            raise LabError(f"profile {self.profile!r} is unknown: use one of {', '.join(PROFILE_NODES)}")
        if not MIN_NODES <= self.nodes <= MAX_NODES:
            raise LabError(f"--nodes {self.nodes} is out of range: a lab has {MIN_NODES} to {MAX_NODES} nodes")
        low, high = PROFILE_NODES[self.profile]
        if not low <= self.nodes <= high:
            count = str(low) if low == high else f"{low} to {high}"
            raise LabError(f"--nodes {self.nodes} does not fit profile {self.profile}: it has {count} nodes")
        if not MIN_APPS <= self.apps <= MAX_APPS:
            raise LabError(f"--apps {self.apps} is out of range: a lab has {MIN_APPS} to {MAX_APPS} applications")
        if not 0 <= self.slice < SLICES:
            raise LabError(f"slice {self.slice} is out of range 0-{SLICES - 1}")

    # Paths
    @property
    def state_dir(self) -> Path:
        return LAB_ROOT / self.name

    @property
    def repo_dir(self) -> Path:
        return self.state_dir / "repo"

    def node_dir(self, node: str) -> Path:
        return self.state_dir / "nodes" / node

    @property
    def power_dir(self) -> Path:
        """The power controller's directory (its socket, PID file and log), bound into fenced nodes."""
        return self.state_dir / "power"

    @property
    def fenced(self) -> bool:
        """The lab's cluster fences through the lab's power controller (every profile but the default)."""
        return self.profile != DEFAULT_PROFILE

    # Names
    @property
    def node_names(self) -> list[str]:
        return [f"node{i}" for i in range(1, self.nodes + 1)]

    @property
    def app_names(self) -> list[str]:
        return [f"app{i}" for i in range(1, self.apps + 1)]

    @property
    def bridge(self) -> str:
        return f"{self.name}-br"

    @property
    def client_netns(self) -> str:
        return f"{self.name}-client"

    def netns(self, node: str) -> str:
        return f"{self.name}-{node}"

    def host_veth(self, node_or_client: str) -> str:
        return f"{self.name}-{node_or_client}"[:14] + "h"

    def container(self, app: str) -> str:
        """LXC names are global on the machine (cgroups are shared): prefix them."""
        return f"{self.name}-{app}"

    # Addresses
    @property
    def prefixlen(self) -> int:
        return 27

    def _base(self) -> ipaddress.IPv4Address:
        network = NETWORKS[self.slice // 8]
        return network.network_address + 32 * (self.slice % 8)

    def node_ip(self, node: str) -> str:
        return str(self._base() + self.node_names.index(node) + 1)

    def app_ip(self, app: str) -> str:
        return str(self._base() + 10 + self.app_names.index(app) + 1)

    @property
    def client_ip(self) -> str:
        return str(self._base() + 30)

    def check_node(self, node: str) -> str:
        if node not in self.node_names:
            raise LabError(f"unknown node {node!r}: lab {self.name} has {', '.join(self.node_names)}")
        return node

    # Persistence
    def save(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_dir / "lab.json.tmp"
        tmp.write_text(json.dumps(asdict(self)) + "\n")
        tmp.replace(self.state_dir / "lab.json")

    @classmethod
    def load(cls, name: str) -> "Lab | None":
        path = LAB_ROOT / check_name(name) / "lab.json"
        try:
            return cls(**json.loads(path.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as exc:
            raise LabError(f"{path} is corrupt ({exc}); run 'upgrader-lab --name {name} down'") from exc


def free_slice(name: str) -> int:
    """The default lab takes slice 0; a named lab the first slice no other lab holds."""
    if name == DEFAULT_NAME:
        return 0
    taken = {0}
    for path in LAB_ROOT.glob("*/lab.json"):
        try:
            taken.add(json.loads(path.read_text())["slice"])
        except (OSError, ValueError, KeyError):
            continue
    for candidate in range(1, SLICES):
        if candidate not in taken:
            return candidate
    raise LabError(f"all {SLICES} lab address slices are taken: tear a lab down first")
