"""Lab operations: up, down, publish, power and link faults, status.

Each operation is a short procedure over :mod:`network`, :mod:`node` and
:mod:`repo`. ``down`` is idempotent and finds leftovers by name prefix and by
process identity, so it also cleans up after a crashed test or an
interrupted ``up``.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from upgrader_lab import cluster, network, node, powerswitch, project, repo, slowrepo
from upgrader_lab.client import LabClient
from upgrader_lab.layout import (DEFAULT_NAME, DEFAULT_PROFILE, LAB_ROOT, PACKAGE, Lab, LabError, default_nodes,
                                 free_slice)
from upgrader.pacemaker.state import ParseError, parse_crm_mon
from upgrader.runner import CommandError, Runner

REQUIRED = ("corosync", "pacemakerd", "crm_mon", "cibadmin", "lxc-start", "apt-ftparchive",
            "dpkg-deb", "ip", "nsenter", "mount", "pivot_root", "sshd", "ssh", "ssh-keygen")
FORM_TIMEOUT = 90.0
SERVE_TIMEOUT = 120.0
SERVE_SECONDS_PER_APP = 5.0  # a wide lab's serve timeout: this per application, when more than SERVE_TIMEOUT
CGROUP_BUSY_TIMEOUT = 10.0
POLL = 0.3  # how often up polls crm_mon (and, once placed, every application) in a lab of up to 12 applications
POLL_APPS = 120  # a wide lab polls every apps/POLL_APPS seconds (1 s at 120): see poll_interval
Say = Callable[[str], None]


def _quiet(_msg: str) -> None:
    pass


def preflight() -> None:
    """Root and the stack's programs, or one line that says what to do."""
    if os.geteuid() != 0:
        raise LabError("the lab needs root (namespaces, mounts, bridges); run it as root")
    missing = [p for p in REQUIRED if shutil.which(p) is None]
    if missing:
        raise LabError(f"missing programs: {', '.join(missing)}; run 'make deps' (apt-get install) first")


# ---------------------------------------------------------------- up / down

UP_REPORT = "up.json"  # in a lab's state: its up's report, for 'status'


@dataclass
class UpReport:
    formed_seconds: float = 0.0
    serving_seconds: float = 0.0
    total_seconds: float = 0.0
    node_memory_mib: dict[str, float] = field(default_factory=dict)
    container_memory_mib: dict[str, float] = field(default_factory=dict)  # app -> its container's RSS

    @property
    def container_average_mib(self) -> float:
        found = self.container_memory_mib
        return sum(found.values()) / len(found) if found else 0.0

    def summary(self) -> str:
        """What up prints: how many containers, their average memory, the up time."""
        return (f"{len(self.container_memory_mib)} containers, {self.container_average_mib:.1f} MiB each on "
                f"average, up in {self.total_seconds:.1f} s")

    def save(self, lab: Lab) -> None:
        """Kept in the lab's state (up.json) for 'status'."""
        (lab.state_dir / UP_REPORT).write_text(json.dumps(asdict(self)) + "\n")

    @classmethod
    def load(cls, lab: Lab) -> "UpReport | None":
        try:
            return cls(**json.loads((lab.state_dir / UP_REPORT).read_text()))
        except (OSError, ValueError, TypeError):
            return None


def serve_timeout(lab: Lab) -> float:
    """How long up waits for every application to serve: 120 s, or 5 s per application in a wide lab."""
    return max(SERVE_TIMEOUT, SERVE_SECONDS_PER_APP * lab.apps) if lab.wide else SERVE_TIMEOUT


def poll_interval(lab: Lab) -> float:
    """Seconds between two polls of up's waits: 0.3, or one per 120 applications in a wide lab. A poll (crm_mon
    and its parsing) costs in proportion to the applications, and so does the wait: polls that come less often
    in proportion keep the CPU the waits take linear in the applications, not quadratic."""
    return max(POLL, lab.apps / POLL_APPS) if lab.wide else POLL


def up(name: str, nodes: int | None = None, apps: int = 3, say: Say = _quiet,
       profile: str = DEFAULT_PROFILE, deb: Path | None = None) -> tuple[Lab, UpReport]:
    """Bring lab ``name`` up in ``profile``'s shape (``nodes`` None: the profile's usual count); with ``deb``,
    every node installs that built package instead of this tree's tool (``make install``'s way)."""
    preflight()
    existing = Lab.load(name)
    if existing and any(node.running(existing, n) for n in existing.node_names):
        raise LabError(f"lab {name} is already up; 'upgrader-lab{_flag(name)} down' first")
    lab = Lab(name=name, nodes=default_nodes(profile) if nodes is None else nodes, apps=apps, profile=profile)
    lab = replace(lab, slice=free_slice(name, apps, prefer=existing.slice if existing else None))
    if existing or network.lab_netns(lab) or network.lab_links(lab):
        say("cleaning up what an earlier lab left")
        down(name, say=say)
    started = time.monotonic()
    report = UpReport()
    try:
        lab.save()
        repo.index(lab.repo_dir)
        repo.publish(lab.repo_dir, "1")
        key = cluster.authkey()
        if lab.fenced:
            say(f"power controller listening (pid {powerswitch.start(lab)})")
        network.create_bridge(lab)
        network.create_netns(lab, lab.client_netns, lab.host_veth("client"), lab.client_ip)
        for n in lab.node_names:
            node.prepare(lab, n, key)
            node.power_on(lab, n, hold=True)
        say(f"{lab.nodes} nodes started; installing {PACKAGE} 1 in each")
        _each_node(lab, lambda n: install_package(lab, n))
        if deb is not None:
            inside = project.stage_deb(lab, deb)
            say(f"installing {deb.name} in each node")
            _each_node(lab, lambda n: project.install_deb(lab, n, inside))
        else:
            _each_node(lab, lambda n: project.install_project(lab, n))
        for n in lab.node_names:
            node.release_hold(lab, n)
        say("cluster stack starting")
        wait_formed(lab, FORM_TIMEOUT)
        report.formed_seconds = time.monotonic() - started
        say(f"cluster formed: {lab.nodes} nodes online with a DC in {report.formed_seconds:.1f}s")
        wait_serving(lab, serve_timeout(lab))
        report.serving_seconds = time.monotonic() - started
        say(f"{lab.apps} applications serving in {report.serving_seconds:.1f}s")
    except BaseException:
        say("up failed: tearing down what it started")
        down(name, say=say, keep=True)
        raise
    report.total_seconds = time.monotonic() - started
    report.node_memory_mib = {n: node_memory_mib(lab, n) for n in lab.node_names}
    report.container_memory_mib = container_memory_mib(lab)
    report.save(lab)
    return lab, report


def down(name: str, say: Say = _quiet, keep: bool = False) -> list[str]:
    """Remove every trace of the lab; return what was removed."""
    lab = Lab.load(name) or Lab(name=name)
    # The power controller first, by its PID: nothing may power a node on again meanwhile.
    removed = [f"power controller {pid}" for pid in powerswitch.stop(lab)]
    removed += [f"slow repository server {pid}" for pid in slowrepo.stop(lab)]  # by its PID, in the client netns
    pids = {p for p in (node.init_pid(lab, n) for n in _all_node_names(lab)) if p} | set(node.stray_inits(lab))
    for pid in sorted(pids):
        node.kill(lab, pid)
        removed.append(f"node process {pid}")
    for ns in network.lab_netns(lab):
        network.delete_netns(ns)
        removed.append(f"netns {ns}")
    for link in network.lab_links(lab):
        network.delete_link(link)
        removed.append(f"link {link}")
    removed += [f"cgroup {c}" for c in _remove_cgroups(lab)]
    if lab.state_dir.exists():
        _unmount_under(lab.state_dir)
        if not keep:
            shutil.rmtree(lab.state_dir, onerror=_gone_is_fine)
            removed.append(f"state {lab.state_dir}")
    for item in removed:
        say(f"removed {item}")
    return removed


def _gone_is_fine(func: Callable, path: str, exc: tuple) -> None:
    """rmtree: something another 'down' of the same lab removed first is not an error."""
    if not isinstance(exc[1], FileNotFoundError):
        raise exc[1]


def all_labs() -> list[str]:
    """Every lab with state on this machine, plus the default one (its leftovers too)."""
    return sorted({DEFAULT_NAME} | {p.name for p in LAB_ROOT.iterdir() if p.is_dir()} if LAB_ROOT.exists()
                  else {DEFAULT_NAME})


def _all_node_names(lab: Lab) -> list[str]:
    """Nodes by state directory too, in case lab.json is gone."""
    names = set(lab.node_names)
    nodes_dir = lab.state_dir / "nodes"
    if nodes_dir.exists():
        names |= {p.name for p in nodes_dir.iterdir()}
    return sorted(names)


def _remove_cgroups(lab: Lab) -> list[str]:
    """LXC's cgroups of this lab's containers (cgroups are shared by all namespaces)."""
    prefixes = tuple(f"lxc.{kind}.{lab.name}-" for kind in ("payload", "monitor"))
    # lxc.pivot is LXC's shared scratch group: it goes with the last lab.
    others = [p for p in LAB_ROOT.glob("*/lab.json") if p.parent.name != lab.name]
    if not others:
        prefixes += ("lxc.pivot",)
    removed = []
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        if not hierarchy.is_dir():
            continue
        for group in hierarchy.iterdir():
            if group.is_dir() and group.name.startswith(prefixes):
                for sub in sorted(group.rglob("*"), key=lambda p: -len(p.parts)):
                    if sub.is_dir():
                        _rmdir_cgroup(sub)
                _rmdir_cgroup(group)
                removed.append(f"{hierarchy.name}/{group.name}")
    return removed


def _rmdir_cgroup(group: Path, timeout: float = CGROUP_BUSY_TIMEOUT) -> None:
    """rmdir a cgroup; one still busy (the kernel releasing a killed container's last tasks, which takes longer
    with many containers) is tried again for up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            group.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _unmount_under(path: Path) -> None:
    prefix = str(path) + "/"
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for target in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
        Runner(timeout=15).run(["umount", "-l", target])


# ---------------------------------------------------------------- inside nodes

def _each_node(lab: Lab, fn: Callable[[str], object], nodes: list[str] | None = None) -> list:
    targets = nodes or lab.node_names
    with ThreadPoolExecutor(max_workers=len(targets)) as pool:
        return list(pool.map(fn, targets))


def install_package(lab: Lab, n: str) -> None:
    run = node.runner(lab, n, timeout=120)
    run.run(["apt-get", "update", "-q"], what=f"apt-get update in {n}")
    run.run(["apt-get", "install", "-y", "-q", PACKAGE], what=f"installing {PACKAGE} in {n}")


def refresh_indexes(lab: Lab) -> list[str]:
    """apt-get update in every running node; return the nodes refreshed."""
    live = [n for n in lab.node_names if node.running(lab, n)]
    if live:
        _each_node(lab, lambda n: node.runner(lab, n).run(["apt-get", "update", "-q"],
                                                         what=f"apt-get update in {n}"), live)
    return live


def installed_version(lab: Lab, n: str, package: str = PACKAGE) -> str | None:
    result = node.runner(lab, n, timeout=20).call(["dpkg-query", "-W", "-f", "${Version}", package])
    return result.stdout.strip() if result.returncode == 0 else None


def node_memory_mib(lab: Lab, n: str) -> float:
    """Resident memory of every process in the node's PID namespace."""
    pid = node.init_pid(lab, n)
    if pid is None:
        return 0.0
    target = os.readlink(f"/proc/{pid}/ns/pid")
    total_kib = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if os.readlink(proc / "ns/pid") != target:
                continue
            for line in (proc / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total_kib / 1024


def container_memory_mib(lab: Lab, proc: Path = Path("/proc")) -> dict[str, float]:
    """Resident memory of each running container of the lab (app -> MiB): the sum of VmRSS over the processes
    in its LXC payload cgroup (``lxc.payload.NAME``, in whichever hierarchy; LXC appends ``-N`` to a name whose
    group already exists). One pass over ``proc``; a container with no process is absent."""
    kib: dict[str, int] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            app = container_of(lab, (entry / "cgroup").read_text())
            if app is None:
                continue
            rss = rss_kib((entry / "status").read_text())
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        kib[app] = kib.get(app, 0) + rss
    return {app: kib[app] / 1024 for app in lab.app_names if app in kib}


def container_of(lab: Lab, cgroup_text: str) -> str | None:
    """The application whose container a process is in, from its /proc/PID/cgroup (None: not one of ours)."""
    pattern = re.compile(rf"/lxc\.payload\.{re.escape(lab.name)}-(app[0-9]+)(?:-[0-9]+)?(?:/|$)")
    for line in cgroup_text.splitlines():
        found = pattern.search(line)
        if found and found.group(1) in lab.app_names:
            return found.group(1)
    return None


def rss_kib(status_text: str) -> int:
    """VmRSS of a /proc/PID/status (0 for a kernel thread or a zombie, which have none)."""
    for line in status_text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# ---------------------------------------------------------------- cluster view

@dataclass(frozen=True)
class View:
    """What the lab waits on, from the product's crm_mon parser."""

    online: frozenset[str]
    dc: str | None
    placement: dict[str, tuple[str, ...]]  # group -> where it runs whole, () when it does not
    settled: bool  # no operation in flight

    @classmethod
    def parse(cls, text: str) -> "View":
        state = parse_crm_mon(text)
        placement = {rid: tuple(sorted(state.running_on(rid))) for rid in state.top_level_ids()}
        return cls(frozenset(n.name for n in state.nodes if n.online), state.summary.dc, placement,
                   not state.busy())


def view(lab: Lab, via: str | None = None) -> View:
    """The cluster as one running node sees it."""
    for n in ([via] if via else lab.node_names):
        if node.running(lab, n):
            out = node.runner(lab, n, timeout=15).run(
                ["crm_mon", "--one-shot", "--inactive", "--output-as=xml"], what=f"crm_mon in {n}").stdout
            return View.parse(out)
    raise LabError(f"no node of lab {lab.name} is running")


def _wait(what: str, timeout: float, probe: Callable[[], tuple[bool, str]], poll: float = POLL) -> None:
    """Poll ``probe`` every ``poll`` seconds until it says done, within ``timeout``; the error says what it
    last saw."""
    last = ["nothing yet"]

    def attempt() -> bool:
        try:
            done, last[0] = probe()
        except (CommandError, LabError, ParseError) as exc:
            done, last[0] = False, str(exc)
        return done

    try:
        Retrying(stop=stop_after_delay(timeout), wait=wait_fixed(poll), retry=retry_if_result(lambda ok: not ok))(attempt)
    except RetryError:
        raise LabError(f"timed out after {timeout:g}s waiting for {what}; last seen: {last[0]}") from None


def wait_formed(lab: Lab, timeout: float, nodes: list[str] | None = None) -> None:
    expected = set(nodes or lab.node_names)

    def probe() -> tuple[bool, str]:
        views = [view(lab, n) for n in expected]
        ok = all(v.online >= expected and v.dc for v in views)
        return ok, "; ".join(f"online={sorted(v.online)} dc={v.dc}" for v in views)

    _wait(f"nodes {', '.join(sorted(expected))} online with a DC", timeout, probe, poll_interval(lab))


def wait_serving(lab: Lab, timeout: float, version: str | None = None,
                 on: Sequence[str] | None = None) -> dict[str, str]:
    """Every application Started and answering /version (optionally with ``version``); with ``on``, each one
    running on those nodes, in the same reading (not a second look after it served: a recovery in between
    would show an application placed nowhere)."""
    answers: dict[str, str] = {}

    def placed(where: tuple[str, ...]) -> bool:
        return bool(where) and (on is None or set(where) <= set(on))

    def probe() -> tuple[bool, str]:
        v = view(lab)
        if not v.settled or not all(placed(v.placement.get(a, ())) for a in lab.app_names):
            return False, f"placement {v.placement}"
        with LabClient(lab.client_netns) as client:
            got = client.get_many([(lab.app_ip(a), "/version") for a in lab.app_names])
        answers.clear()
        answers.update({a: (g.body if g.ok else g.error or str(g.status)) for a, g in zip(lab.app_names, got)})
        good = all(g.ok and (version is None or g.body == version) for g in got)
        return good, f"answers {answers}"

    _wait("every application to answer /version" + (f" with {version}" if version else "")
          + (f" on {', '.join(on)}" if on is not None else ""), timeout, probe, poll_interval(lab))
    return answers


# ---------------------------------------------------------------- faults

def require(name: str) -> Lab:
    lab = Lab.load(name)
    if lab is None:
        raise LabError(f"lab {name} is not up; 'upgrader-lab{_flag(name)} up' starts it")
    return lab


def power_cut(lab: Lab, n: str) -> None:
    lab.check_node(n)
    if not node.running(lab, n):
        raise LabError(f"{n} is not running")
    node.power_off(lab, n)


def boot(lab: Lab, n: str, timeout: float = FORM_TIMEOUT) -> None:
    lab.check_node(n)
    if node.running(lab, n):
        raise LabError(f"{n} is already running")
    node.power_on(lab, n, hold=False)
    wait_formed(lab, timeout, [n])


def cut(lab: Lab, n: str) -> None:
    lab.check_node(n)
    network.set_link(lab.host_veth(n), up=False)


def heal(lab: Lab, n: str) -> None:
    lab.check_node(n)
    network.set_link(lab.host_veth(n), up=True)


def _flag(name: str) -> str:
    return "" if name == DEFAULT_NAME else f" --name {name}"
