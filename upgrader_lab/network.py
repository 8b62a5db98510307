"""The lab's network: a bridge with no address and no uplink, a veth per namespace.

No default route anywhere; IPv6 off; the host itself has no address on the
bridge, so lab traffic cannot leave it. Tests reach the floating IPs from the
lab's client namespace (see :mod:`upgrader_lab.client`).
"""

from __future__ import annotations

import time
from pathlib import Path

from upgrader_lab.layout import Lab, LabError
from upgrader.runner import Runner

_ip = Runner(timeout=15)


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def netns_exists(name: str) -> bool:
    return Path("/run/netns", name).exists()


def create_bridge(lab: Lab) -> None:
    if not link_exists(lab.bridge):
        _ip.run(["ip", "link", "add", lab.bridge, "type", "bridge"])
    _ip.run(["ip", "link", "set", lab.bridge, "up"])


def create_netns(lab: Lab, ns: str, veth: str, address: str) -> None:
    """A namespace with one interface, eth0, on the lab's bridge."""
    if netns_exists(ns):
        delete_netns(ns)
    _ip.run(["ip", "netns", "add", ns])
    _ip.run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1",
             "net.ipv6.conf.default.disable_ipv6=1"])
    _gone(veth)
    _ip.run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
    _ip.run(["ip", "link", "set", veth, "master", lab.bridge, "up"])
    _ip.run(["ip", "-n", ns, "addr", "add", f"{address}/{lab.prefixlen}", "dev", "eth0"])
    _ip.run(["ip", "-n", ns, "link", "set", "lo", "up"])
    _ip.run(["ip", "-n", ns, "link", "set", "eth0", "up"])


def _gone(veth: str, timeout: float = 10.0) -> None:
    """No host interface ``veth`` left: the kernel tears a deleted namespace (and its veth pair) down
    asynchronously, so a node powered off and on again at once may still find its old one."""
    if not Path("/sys/class/net", veth).exists():
        return
    _ip.call(["ip", "link", "delete", veth])
    deadline = time.monotonic() + timeout
    while Path("/sys/class/net", veth).exists():
        if time.monotonic() > deadline:
            raise LabError(f"the old interface {veth} is still there after {timeout:g}s")
        time.sleep(0.1)


def delete_netns(ns: str) -> None:
    """Deleting the namespace destroys its veth pair too."""
    if netns_exists(ns):
        _ip.run(["ip", "netns", "delete", ns])


def set_link(veth: str, up: bool) -> None:
    _ip.run(["ip", "link", "set", veth, "up" if up else "down"])


def link_is_up(veth: str) -> bool:
    try:
        return Path("/sys/class/net", veth, "operstate").read_text().strip() != "down"
    except FileNotFoundError:
        return False


def delete_link(name: str) -> None:
    """Delete a link; one that vanished meanwhile (its namespace's veth peer) is fine."""
    result = _ip.call(["ip", "link", "delete", name])
    if result.returncode != 0 and link_exists(name):
        _ip.run(["ip", "link", "delete", name])


def lab_links(lab: Lab) -> list[str]:
    """Every interface on the host that belongs to this lab (by name prefix)."""
    prefix = f"{lab.name}-"
    return sorted(p.name for p in Path("/sys/class/net").iterdir() if p.name.startswith(prefix))


def lab_netns(lab: Lab) -> list[str]:
    prefix = f"{lab.name}-"
    root = Path("/run/netns")
    return sorted(p.name for p in root.iterdir() if p.name.startswith(prefix)) if root.exists() else []
