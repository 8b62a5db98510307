"""Names, addresses and paths of a lab: everything derived from (name, slice, nodes, apps).

Labs run side by side: each has a name that prefixes its bridge, namespaces,
containers and state, and its own addresses in 198.51.100.0/24 or
203.0.113.0/24, which are cut into 16 slices of a /27 (slices 0-7 and 8-15).

A lab of up to 12 applications has one slice: .1-.5 of it are the nodes,
.11-.22 the applications' floating IPs, .30 the lab's client namespace.
The default lab has slice 0, a named lab the first slice no other lab holds.

A lab of 13 to 120 applications (a *wide* lab) takes a whole /24, i.e. all
eight slices of it: the default lab 198.51.100.0/24 (slices 0-7), a named
lab 203.0.113.0/24 (slices 8-15). In it .1-.5 are the nodes, .11-.130 the
floating IPs, .200 the client. ``up`` refuses, in one line naming them, when
another lab holds a slice of that /24; while a wide lab is up, the other
labs take slices of the other /24 (a named lab beside a wide default lab:
slices 8-15; beside a wide named lab: 1-7).

The bridge has no address. A lab's profile names the shape of its cluster
(see :mod:`upgrader_lab.profiles`); ``seed`` keeps the limit of 12
applications (per application five resources, a mount and a promotable clone).
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
SLICES_PER_NETWORK = 8  # a /27 slice is 32 addresses: 8 to a /24
SLICE_APPS = 12  # the most applications a /27 slice holds; more take a whole /24
MIN_NODES, MAX_NODES = 2, 5
MIN_APPS, MAX_APPS = 1, 120
PACKAGE = "demo-libfoo"
DEFAULT_PROFILE = "default"
# Profile -> the node counts it allows. Profiles other than the default have lab fencing.
PROFILE_NODES = {DEFAULT_PROFILE: (MIN_NODES, MAX_NODES), "seed": (2, 2), "mixed": (3, MAX_NODES)}
# Profile -> the most applications it allows (MAX_APPS when absent). The mixed profile's applications are the
# default's groups (its extra resources do not grow with them); the seed's are five resources each.
PROFILE_MAX_APPS = {"seed": SLICE_APPS}
POWER_MOUNT = "/srv/upgrader-lab/power"  # where a node sees the lab's power controller (its socket)


def default_nodes(profile: str) -> int:
    """The node count of a profile's lab when none is given: 3, or what the profile allows nearest to it."""
    low, high = PROFILE_NODES.get(profile, (MIN_NODES, MAX_NODES))
    return min(max(3, low), high)


def max_apps(profile: str) -> int:
    return PROFILE_MAX_APPS.get(profile, MAX_APPS)


def is_wide(apps: int) -> bool:
    """A lab of more applications than a /27 slice holds takes a whole /24."""
    return apps > SLICE_APPS


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
        if self.apps > max_apps(self.profile):
            raise LabError(f"--apps {self.apps} does not fit profile {self.profile}: it has {MIN_APPS} to "
                           f"{max_apps(self.profile)} applications")
        if not 0 <= self.slice < SLICES:
            raise LabError(f"slice {self.slice} is out of range 0-{SLICES - 1}")
        if self.wide and self.slice % SLICES_PER_NETWORK:
            raise LabError(f"slice {self.slice}: a lab of more than {SLICE_APPS} applications takes a whole /24, "
                           f"slice 0 or {SLICES_PER_NETWORK}")

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
    def wide(self) -> bool:
        """More applications than a /27 slice holds: the lab takes a whole /24."""
        return is_wide(self.apps)

    @property
    def prefixlen(self) -> int:
        return 24 if self.wide else 27

    @property
    def slices(self) -> range:
        """The /27 slices the lab's addresses cover: its own, or the eight of its /24."""
        return held_slices(self.slice, self.apps)

    @property
    def subnet(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"{self._base()}/{self.prefixlen}")

    def _base(self) -> ipaddress.IPv4Address:
        network = NETWORKS[self.slice // SLICES_PER_NETWORK]
        return network.network_address + 32 * (self.slice % SLICES_PER_NETWORK)

    def node_ip(self, node: str) -> str:
        return str(self._base() + self.node_names.index(node) + 1)

    def app_ip(self, app: str) -> str:
        return str(self._base() + 10 + self.app_names.index(app) + 1)

    @property
    def client_ip(self) -> str:
        return str(self._base() + (200 if self.wide else 30))

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


def held_slices(first: int, apps: int) -> range:
    """The slices a lab with slice ``first`` and ``apps`` applications holds."""
    return range(first, first + SLICES_PER_NETWORK) if is_wide(apps) else range(first, first + 1)


def slice_subnet(index: int) -> ipaddress.IPv4Network:
    """The /27 of slice ``index``."""
    network = NETWORKS[index // SLICES_PER_NETWORK]
    return ipaddress.IPv4Network(f"{network.network_address + 32 * (index % SLICES_PER_NETWORK)}/27")


def other_labs_slices(name: str) -> dict[int, str]:
    """Slice -> the lab holding it, for every lab on this machine but ``name`` (by their lab.json)."""
    held: dict[int, str] = {}
    for path in sorted(LAB_ROOT.glob("*/lab.json")):
        if path.parent.name == name:
            continue
        try:
            saved = json.loads(path.read_text())
            slices = held_slices(int(saved["slice"]), int(saved.get("apps", 3)))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        held.update({s: path.parent.name for s in slices})
    return held


def free_slice(name: str, apps: int = 3, prefer: int | None = None) -> int:
    """The slice lab ``name`` takes for ``apps`` applications (``prefer``: the one it had, if still free).

    Up to 12 applications: the default lab slice 0, a named lab ``prefer`` or the first slice 1-15 no other
    lab holds. More: the default lab slice 0 (198.51.100.0/24), a named lab slice 8 (203.0.113.0/24), each
    with the seven slices after it; refused when another lab holds one of them."""
    others = other_labs_slices(name)
    if is_wide(apps):
        first = 0 if name == DEFAULT_NAME else SLICES_PER_NETWORK
        block = held_slices(first, apps)
        clash = sorted({others[s] for s in block if s in others})
        if clash:
            held = ", ".join(f"{lab} ({' '.join(str(slice_subnet(s)) for s in block if others.get(s) == lab)})"
                             for lab in clash)
            flag = f"--name {clash[0]}" if len(clash) == 1 else "--name NAME"
            raise LabError(f"--apps {apps} takes all of {NETWORKS[first // SLICES_PER_NETWORK]}, where "
                           f"{'lab' if len(clash) == 1 else 'labs'} {held} {'holds' if len(clash) == 1 else 'hold'} "
                           f"addresses: 'upgrader-lab {flag} down' first, or use at most {SLICE_APPS} applications")
        return first
    if name == DEFAULT_NAME:
        if 0 in others:
            raise LabError(f"the default lab's {slice_subnet(0)} is held by lab {others[0]}: "
                           f"'upgrader-lab --name {others[0]} down' first")
        return 0
    taken = {0} | set(others)
    if prefer is not None and prefer not in taken and 0 < prefer < SLICES:
        return prefer
    for candidate in range(1, SLICES):
        if candidate not in taken:
            return candidate
    raise LabError(f"all {SLICES} lab address slices are taken: tear a lab down first")
