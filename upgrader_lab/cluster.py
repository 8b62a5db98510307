"""The lab cluster's configuration: corosync.conf, its key, the initial CIB and the containers' config.

Every node gets the same initial CIB. The default profile's: no fencing (a
production cluster must have it; the other profiles fence through the lab's
power controller, see :mod:`upgrader_lab.profiles`), a short dc-deadtime so
the cluster forms in seconds, a resource-stickiness of 100 (resources stay
where they are unless moved), and per application a group of a floating IP
and an LXC container that serves HTTP on it.

What a lab costs the CPUs in steady state is its recurring monitors: each is
a fork of a shell resource agent, measured on the 2-core machine at about
27 ms of CPU for IPaddr2 and 38 ms for lxc (plus pacemaker-execd's share).
At 5 s each, as up to 12 applications have them, 120 applications would
make 48 agent runs a second, about 1.7 CPUs of 2. So the monitor interval
grows with the number of applications (:func:`monitor_interval`: 5 s up to
12, then 5 s per 12 applications, 50 s at 120): the cluster never runs more
monitors a second than a 12-application lab does (4.8, about 0.17 CPU).
A container runs two small processes, init.lxc and the application (no
systemd, no cron): about 13 MiB of resident memory (see
:mod:`upgrader_lab.demo_app`), idle until a request comes.
"""

from __future__ import annotations

import math
import os
from xml.sax.saxutils import quoteattr

from upgrader_lab.layout import PACKAGE, SLICE_APPS, Lab

PROBE_ATTRIBUTE = "rolling-upgrade-probe"
MONITOR_SECONDS = 5  # the applications' monitor interval up to SLICE_APPS applications


def monitor_interval(apps: int) -> int:
    """Seconds between two monitors of an application's IP and container: 5 up to 12 applications, then
    growing with them (50 at 120), so the whole lab's monitors a second stay those of 12 applications."""
    return max(MONITOR_SECONDS, math.ceil(MONITOR_SECONDS * apps / SLICE_APPS))


def corosync_conf(lab: Lab) -> str:
    nodes = "\n".join(
        f"    node {{\n        ring0_addr: {lab.node_ip(n)}\n        name: {n}\n        nodeid: {i}\n    }}"
        for i, n in enumerate(lab.node_names, start=1)
    )
    two_node = "\n    two_node: 1" if lab.nodes == 2 else ""
    return f"""totem {{
    version: 2
    cluster_name: {lab.name}
    transport: knet
    crypto_cipher: aes256
    crypto_hash: sha256
    token: 3000
    ip_version: ipv4
}}

nodelist {{
{nodes}
}}

quorum {{
    provider: corosync_votequorum{two_node}
}}

logging {{
    to_logfile: yes
    logfile: /var/log/corosync/corosync.log
    to_stderr: no
    to_syslog: no
    timestamp: on
}}
"""


def authkey() -> bytes:
    return os.urandom(256)


def nvpair(prefix: str, name: str, value: str) -> str:
    return f'<nvpair id={quoteattr(f"{prefix}-{name}")} name={quoteattr(name)} value={quoteattr(value)}/>'


def app_resources(lab: Lab, app: str, first: str = "") -> str:
    """A group: floating IP first (after ``first``, XML of members before it), then the container that binds to it."""
    ip = lab.app_ip(app)
    ct = lab.container(app)
    every = f"{monitor_interval(lab.apps)}s"
    return f"""
      <group id="{app}">
        <meta_attributes id="{app}-meta">
          {nvpair(f"{app}-meta", PROBE_ATTRIBUTE, f"http://{ip}/health")}
        </meta_attributes>{first}
        <primitive id="{app}-ip" class="ocf" provider="heartbeat" type="IPaddr2">
          <instance_attributes id="{app}-ip-params">
            {nvpair(f"{app}-ip-params", "ip", ip)}
            {nvpair(f"{app}-ip-params", "cidr_netmask", str(lab.prefixlen))}
            {nvpair(f"{app}-ip-params", "nic", "eth0")}
          </instance_attributes>
          <operations>
            <op id="{app}-ip-monitor-{every}" name="monitor" interval="{every}" timeout="20s"/>
          </operations>
        </primitive>
        <primitive id="{app}-ct" class="ocf" provider="heartbeat" type="lxc">
          <instance_attributes id="{app}-ct-params">
            {nvpair(f"{app}-ct-params", "container", ct)}
            {nvpair(f"{app}-ct-params", "config", f"/var/lib/lxc/{ct}/config")}
            {nvpair(f"{app}-ct-params", "log", f"/var/lib/lxc/{ct}/agent.log")}
          </instance_attributes>
          <operations>
            <op id="{app}-ct-start-0" name="start" interval="0" timeout="30s"/>
            <op id="{app}-ct-stop-0" name="stop" interval="0" timeout="30s"/>
            <op id="{app}-ct-monitor-{every}" name="monitor" interval="{every}" timeout="20s"/>
          </operations>
        </primitive>
      </group>"""


def initial_cib(lab: Lab) -> str:
    """The default profile's CIB (other profiles: :mod:`upgrader_lab.profiles`)."""
    return cib_document(lab, "".join(app_resources(lab, app) for app in lab.app_names))


def cib_document(lab: Lab, resources: str, constraints: str = "", properties: dict[str, str] | None = None) -> str:
    """A whole initial CIB: the lab's cluster options (``properties`` override or add to them), then
    ``resources`` and ``constraints`` (XML fragments)."""
    opts = "cib-bootstrap-options"
    options = {"stonith-enabled": "false", "dc-deadtime": "5s", "cluster-name": lab.name,
               "cluster-recheck-interval": "1min", **(properties or {})}
    pairs = "\n        ".join(nvpair(opts, key, value) for key, value in options.items())
    constraints_xml = f"<constraints>{constraints}\n    </constraints>" if constraints else "<constraints/>"
    return f"""<cib validate-with="pacemaker-3.9" epoch="1" num_updates="0" admin_epoch="0">
  <configuration>
    <crm_config>
      <cluster_property_set id="{opts}">
        {pairs}
      </cluster_property_set>
    </crm_config>
    <nodes/>
    <resources>{resources}
    </resources>
    {constraints_xml}
    <rsc_defaults>
      <meta_attributes id="rsc-options">
        {nvpair("rsc-options", "resource-stickiness", "100")}
      </meta_attributes>
    </rsc_defaults>
  </configuration>
  <status/>
</cib>
"""


def container_config(lab: Lab, app: str, rootfs: str | None = None) -> str:
    """LXC config: the container's root is an overlay of its node's root (the seed idea), which LXC
    mounts itself unless ``rootfs`` names a directory something else mounted it on."""
    ct = lab.container(app)
    root = f"dir:{rootfs}" if rootfs else f"overlay:/var/lib/lxc/host/rootfs:/var/lib/lxc/{ct}/delta0"
    return f"""lxc.uts.name = {app}
lxc.rootfs.path = {root}
lxc.include = /usr/share/lxc/config/common.conf
lxc.apparmor.profile = unconfined
lxc.autodev = 1
lxc.net.0.type = none
lxc.init.cmd = /usr/sbin/init.lxc -n {ct} -- /usr/bin/python3 /usr/lib/{PACKAGE}/app.py {lab.app_ip(app)} 80
lxc.log.file = /var/lib/lxc/{ct}/lxc.log
"""

