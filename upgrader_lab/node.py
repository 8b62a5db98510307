"""A lab node: its private upper directory, its process 1, and commands run inside it."""

from __future__ import annotations

import os
import shutil
import signal
import sys
from pathlib import Path

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from upgrader_lab import cluster, network, profiles, repo
from upgrader_lab.layout import POWER_MOUNT, Lab, LabError
from upgrader.runner import Runner

# Directories whose host copies a node must not see (opaque in its upper dir).
NODE_OPAQUE = (
    "etc/corosync", "var/lib/pacemaker", "var/lib/corosync", "var/log/pacemaker",
    "var/log/corosync", "var/lib/apt/lists", "etc/apt/sources.list.d", "var/lib/upgrader",
    "var/log/upgrader", "var/lib/unattended-upgrades", "var/log/unattended-upgrades",
)
# And the directories a container must not share with its node.
CONTAINER_OPAQUE = ("root", "home", "tmp", "run", "var/lib/lxc", "var/log")
NODE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "HOME": "/root",
    "TERM": os.environ.get("TERM", "dumb"),
}
INIT_MODULE = "upgrader_lab.node_init"
# The lab's containers start in a fraction of a second: retry health checks every second.
# The node's own process 1 plays systemd for the cluster stack and reboots (upgrader_lab.power).
POWER = f"{sys.executable} -m upgrader_lab.power"
LAB_SETTINGS = f"""// upgrader-lab: settings for a lab node (see 50rolling-upgrade.conf for all settings)
Rolling-Upgrade::Health::Interval "1";
Rolling-Upgrade::Health::Timeout "20";
Rolling-Upgrade::Settle-Timeout "120";
Rolling-Upgrade::Rejoin-Timeout "120";
Rolling-Upgrade::Stack::Stop "{POWER} stop";
Rolling-Upgrade::Stack::Start "{POWER} start";
Rolling-Upgrade::Reboot-Command "{POWER} reboot";
Rolling-Upgrade::Origins-Pattern {{ "origin=upgrader-lab"; }};  // the host's 50unattended-upgrades allows only Debian's
"""
# A wide lab's waits grow with its applications: a drain there moves tens of groups, one action at a time
# when Pacemaker throttles a loaded node. Seconds per application, over the small lab's values.
WIDE_WAITS = {"Health::Timeout": (20, 0.5), "Settle-Timeout": (120, 5), "Rejoin-Timeout": (120, 2)}


def lab_settings(lab: Lab) -> str:
    """The node's Rolling-Upgrade:: settings: LAB_SETTINGS, with a wide lab's waits scaled to its size."""
    if not lab.wide:
        return LAB_SETTINGS
    text = LAB_SETTINGS
    for key, (small, per_app) in WIDE_WAITS.items():
        text = text.replace(f'Rolling-Upgrade::{key} "{small}";',
                            f'Rolling-Upgrade::{key} "{max(small, round(per_app * lab.apps))}";')
    return text


REPO_MOUNT = "/srv/upgrader-lab/repo"  # where a node sees the lab's APT repository
SOURCES = "/etc/apt/sources.list.d/upgrader-lab.sources"  # the node's only APT source (repo.sources_entry)
# This source tree and its venv, seen live at the same path in every node (wherever it is
# cloned: under /tmp a node would not see it, /tmp being its own).
PROJECT = str(Path(__file__).resolve().parents[1])

_host = Runner(timeout=30)


def _opaque(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.setxattr(path, "trusted.overlay.opaque", b"y")


def _owned(path: Path, mode: int, user: str = "hacluster", group: str = "haclient") -> None:
    import grp
    import pwd

    os.chown(path, pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid)
    path.chmod(mode)


def prepare(lab: Lab, node: str, key: bytes) -> None:
    """Write the node's upper directory: cluster config, APT source, containers."""
    base = lab.node_dir(node)
    upper = base / "upper"
    for sub in ("upper", "work", "root", "lxc"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    for rel in NODE_OPAQUE:
        _opaque(upper / rel)
    (upper / "var/lib/upgrader").chmod(0o700)  # as the tool makes it on a machine without it (history 0600)
    (upper / "etc/hostname").write_text(node + "\n")
    hosts = "".join(f"{lab.node_ip(n)} {n}\n" for n in lab.node_names)
    (upper / "etc/hosts").write_text(f"127.0.0.1 localhost\n{hosts}")
    (upper / "etc/corosync/corosync.conf").write_text(cluster.corosync_conf(lab))
    keyfile = upper / "etc/corosync/authkey"
    keyfile.write_bytes(key)
    keyfile.chmod(0o400)
    pcmk = upper / "var/lib/pacemaker"
    for sub in ("cib", "pengine", "blackbox", "cores"):
        (pcmk / sub).mkdir(exist_ok=True)
        _owned(pcmk / sub, 0o750)
    _owned(pcmk, 0o750)
    cib = pcmk / "cib/cib.xml"
    cib.write_text(profiles.initial_cib(lab))
    _owned(cib, 0o600)
    _owned(upper / "var/log/pacemaker", 0o770)
    (upper / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)
    (upper / "etc/apt/sources.list").write_text("")
    (upper / REPO_MOUNT.lstrip("/")).mkdir(parents=True, exist_ok=True)
    (upper / SOURCES.lstrip("/")).write_text(repo.sources_entry(Path(REPO_MOUNT)))
    (upper / "etc/apt/apt.conf.d").mkdir(parents=True, exist_ok=True)
    (upper / "etc/apt/apt.conf.d/60rolling-upgrade-lab").write_text(lab_settings(lab))
    _prepare_ssh(lab, node, upper)
    for app in lab.app_names:
        ct = base / "lxc" / lab.container(app)
        for rel in CONTAINER_OPAQUE:
            _opaque(ct / "delta0" / rel)
        (ct / "config").write_text(profiles.container_config(lab, app))
    profiles.prepare_node(lab, node, base)


def _prepare_ssh(lab: Lab, node: str, upper: Path) -> None:
    """Root logs in between nodes by key, as a rolling upgrade's remote shell does in production."""
    key = lab.state_dir / "ssh" / "id_ed25519"
    if not key.exists():
        key.parent.mkdir(mode=0o700, exist_ok=True)
        _host.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"upgrader-lab {lab.name}", "-f", str(key)])
    hostkey = upper / "etc/ssh/ssh_host_ed25519_key"
    hostkey.parent.mkdir(parents=True, exist_ok=True)
    if not hostkey.exists():
        _host.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", node, "-f", str(hostkey)])
    (upper / "etc/ssh/sshd_config.d").mkdir(exist_ok=True)
    (upper / "etc/ssh/sshd_config.d/upgrader-lab.conf").write_text(
        f"ListenAddress {lab.node_ip(node)}\nHostKey /etc/ssh/ssh_host_ed25519_key\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "UseDNS no\nPrintMotd no\n")
    dot_ssh = upper / "root/.ssh"
    _opaque(dot_ssh)
    dot_ssh.chmod(0o700)
    shutil.copy(key, dot_ssh / "id_ed25519")
    (dot_ssh / "id_ed25519").chmod(0o600)
    (dot_ssh / "authorized_keys").write_text(key.with_suffix(".pub").read_text())
    (dot_ssh / "config").write_text(
        "Host *\n    StrictHostKeyChecking no\n    UserKnownHostsFile /dev/null\n    LogLevel ERROR\n"
        "    ConnectTimeout 5\n")
    _stock_root_shell(upper)


def _stock_root_shell(upper: Path) -> None:
    """Root's ~/.bashrc and ~/.profile in the node as a fresh Debian install has them (base-files' own),
    not the host's: bash reads ~/.bashrc for every command sshd starts, and a developer's (a pyenv init)
    made each remote shell session of a run cost 0.15 s in the lab instead of 0.03 s."""
    for name in ("bashrc", "profile"):
        stock = Path("/usr/share/base-files") / f"dot.{name}"
        if stock.exists():
            shutil.copy(stock, upper / "root" / f".{name}")


def launch(lab: Lab, node: str, *, hold: bool) -> int:
    """Start the node's process 1 (its network namespace must exist); return its host PID."""
    argv = [sys.executable, "-m", INIT_MODULE, "launch", "--lab", lab.name, "--node", node,
            "--netns", lab.netns(node), "--state", str(lab.node_dir(node))]
    if hold:
        argv.append("--hold")
    argv += ["--bind", f"{lab.repo_dir}:{REPO_MOUNT}"]
    for tree in project_trees():
        argv += ["--bind", f"{tree}:{tree}"]
    if lab.fenced:  # the out-of-band channel to the lab's power controller
        argv += ["--bind", f"{lab.power_dir}:{POWER_MOUNT}"]
    result = _host.run(argv, what=f"starting {node}", timeout=30)
    return int(result.stdout.strip())


def project_trees() -> list[str]:
    """This source tree, and the venv whose interpreter runs the nodes' tools when it lies elsewhere."""
    venv = str(Path(sys.prefix).resolve())
    inside = venv == PROJECT or venv.startswith(PROJECT + os.sep)
    return [PROJECT] if inside or sys.prefix == sys.base_prefix else [PROJECT, venv]


def init_pid(lab: Lab, node: str) -> int | None:
    """The host PID of the node's process 1 if it is alive and really ours."""
    try:
        pid = int((lab.node_dir(node) / "init.pid").read_text())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _is_our_init(pid, lab, node) else None


def _is_our_init(pid: int, lab: Lab, node: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    if state in ("Z", "X"):
        return False
    return INIT_MODULE.encode() in cmdline and _follows(cmdline, b"--lab", lab.name.encode()) \
        and _follows(cmdline, b"--node", node.encode())

def _follows(cmdline: list[bytes], flag: bytes, value: bytes) -> bool:
    return any(cmdline[i] == flag and cmdline[i + 1] == value for i in range(len(cmdline) - 1))


def stray_inits(lab: Lab) -> list[int]:
    """Process 1s of this lab whose PID file was lost (an interrupted 'up')."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            pid = int(proc.name)
            if any(_is_our_init(pid, lab, node) for node in lab.node_names):
                found.append(pid)
    return found


def running(lab: Lab, node: str) -> bool:
    return init_pid(lab, node) is not None


def exec_argv(lab: Lab, node: str, argv: list[str]) -> list[str]:
    pid = init_pid(lab, node)
    if pid is None:
        raise LabError(f"{node} of lab {lab.name} is not running; 'upgrader-lab boot {node}' starts it")
    return ["nsenter", "-t", str(pid), "-a", "--root", "--wd", "--", *argv]


def runner(lab: Lab, node: str, timeout: float = 60) -> Runner:
    """A runner whose commands run inside the node."""
    return Runner(prefix=exec_argv(lab, node, []), timeout=timeout, env=NODE_ENV)


def release_hold(lab: Lab, node: str) -> None:
    pid = init_pid(lab, node)
    if pid is not None:
        os.kill(pid, signal.SIGUSR1)


def kill(lab: Lab, pid: int, timeout: float = 15) -> None:
    """SIGKILL a process 1: its whole PID namespace dies, its mounts with it."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    wait_gone(pid, timeout, "process 1 to die after SIGKILL")


def stop(lab: Lab, node: str, timeout: float = 90) -> None:
    """Graceful stop: SIGTERM lets pacemakerd stop its resources, then corosync."""
    pid = init_pid(lab, node)
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    wait_gone(pid, timeout, f"{node} to stop its cluster stack")


def wait_gone(pid: int, timeout: float, what: str) -> None:
    def dead() -> bool:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        return state in ("Z", "X")

    try:
        Retrying(stop=stop_after_delay(timeout), wait=wait_fixed(0.05), retry=retry_if_result(lambda d: not d))(dead)
    except RetryError:
        raise LabError(f"timed out after {timeout:g}s waiting for {what} (pid {pid})") from None


def power_on(lab: Lab, node: str, *, hold: bool) -> int:
    """Fresh network namespace (a rebooted node keeps no addresses), then process 1."""
    network.create_netns(lab, lab.netns(node), lab.host_veth(node), lab.node_ip(node))
    return launch(lab, node, hold=hold)


def power_off(lab: Lab, node: str) -> None:
    """A power cut: process 1 killed, the node's NIC gone with its namespace."""
    pid = init_pid(lab, node)
    if pid is not None:
        kill(lab, pid)
    network.delete_netns(lab.netns(node))
