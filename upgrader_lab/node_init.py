"""Process 1 of a lab node: namespaces, an overlay root, then corosync and pacemakerd.

Run as ``python -m upgrader_lab.node_init launch ...`` by the lab. The
launcher enters the node's network namespace, unshares mount/UTS/IPC/PID
namespaces and forks; the child is process 1 of the node. It mounts an
OverlayFS of the host root (private upper directory), pivots into it,
starts the cluster stack and reaps orphans until SIGTERM (graceful stop)
or SIGKILL (power cut). The launcher prints the child's host PID and exits.

Inside the node (:mod:`upgrader_lab.power` sends them), as systemd would on
a real host: SIGUSR2 stops the cluster stack, SIGUSR1 starts it again,
SIGHUP reboots the node (stack stopped, every other process of the node
ended, /run and /tmp fresh, then the stack and sshd started again; the
root's upper directory, the node's "disk", stays).

Standard library only, no upgrader imports: this is the node's init.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWNET = 0x40000000
CLONE_NEWPID = 0x20000000

DAEMON_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "HOME": "/root",
    "PCMK_logfile": "/var/log/pacemaker/pacemaker.log",
    "PCMK_debug": "no",
}
STOP_TIMEOUT = 60.0
# Where process 1 keeps a second bind of each host directory (--bind), outside /run and /tmp.
KEPT_BINDS = "/.lab-binds"
READY_TIMEOUT = 30.0

_libc = ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, timeout=30, stdin=subprocess.DEVNULL)


def launch(args: argparse.Namespace) -> int:
    """Enter the node's namespaces and fork its process 1; print its host PID."""
    with open(f"/run/netns/{args.netns}") as netns:
        _check(_libc.setns(netns.fileno(), CLONE_NEWNET), "setns(net)")
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID), "unshare")
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        os.setsid()
        log = os.open(Path(args.state) / "init.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        try:
            code = init(args, ready_w)
        except BaseException as exc:  # process 1 must report, not vanish silently
            print(f"init: fatal: {exc!r}", flush=True)
            code = 1
        os._exit(code)
    os.close(ready_w)
    Path(args.state, "init.pid").write_text(f"{pid}\n")
    # Commands must not enter the node before its root is in place.
    ready, _, _ = select.select([ready_r], [], [], READY_TIMEOUT)
    if not ready or os.read(ready_r, 1) != b"1":
        print(f"{args.node}: root not ready within {READY_TIMEOUT:g}s (see {args.state}/init.log)", file=sys.stderr)
        return 1
    print(pid)
    return 0


def init(args: argparse.Namespace, ready: int) -> int:
    """Process 1: build the root, start the stack, reap until told to stop."""
    state = Path(args.state)
    root = state / "root"
    _mount_root(state, root, args.bind)
    socket.sethostname(args.node)
    _prepare_runtime()
    print(f"init: {args.node} root ready", flush=True)
    os.write(ready, b"1")
    os.close(ready)
    requests = _Requests()
    if args.hold and not requests.wait_for(signal.SIGUSR1):
        return 0
    stack = _start_stack()
    sshd = _start_sshd()
    while True:
        signo = requests.next()
        if signo == signal.SIGTERM:
            print("init: SIGTERM, stopping the cluster stack", flush=True)
            _stop_stack(stack)
            return 0
        if signo == signal.SIGUSR2 and stack:
            print("init: SIGUSR2, stopping the cluster stack", flush=True)
            _stop_stack(stack)
            stack = []
        elif signo == signal.SIGUSR1 and not stack:
            print("init: SIGUSR1, starting the cluster stack", flush=True)
            stack = _start_stack()
        elif signo == signal.SIGHUP:
            print("init: SIGHUP, rebooting", flush=True)
            _stop_stack(stack)
            _end_everything_else([sshd])
            _fresh_runtime()
            stack = _start_stack()
            sshd = _start_sshd()
            print("init: rebooted", flush=True)


class _Requests:
    """Signals to process 1, handled one at a time in its main loop (never inside a handler)."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP)

    def __init__(self) -> None:
        self.pending: list[int] = []
        self.wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        for signo in self.SIGNALS:
            signal.signal(signo, lambda s, _f: self.pending.append(s))

    def next(self) -> int:
        """Reap orphans until a signal comes; return it."""
        while not self.pending:
            select.select([self.wake_r], [], [], 1.0)
            try:
                os.read(self.wake_r, 512)
            except BlockingIOError:
                pass
            _reap_some()
        return self.pending.pop(0)

    def wait_for(self, wanted: int) -> bool:
        """Hold until ``wanted`` (True) or SIGTERM (False); other signals are dropped."""
        while True:
            signo = self.next()
            if signo == wanted:
                return True
            if signo == signal.SIGTERM:
                return False


def _mount_root(state: Path, root: Path, binds: list[str]) -> None:
    _run("mount", "--make-rprivate", "/")
    _run("mount", "-t", "overlay", "overlay", "-o",
         f"lowerdir=/,upperdir={state / 'upper'},workdir={state / 'work'}", str(root))
    _run("mount", "-t", "proc", "proc", str(root / "proc"))
    _run("mount", "-t", "sysfs", "sysfs", str(root / "sys"))
    _run("mount", "--rbind", "/sys/fs/cgroup", str(root / "sys/fs/cgroup"))
    _run("mount", "--rbind", "/dev", str(root / "dev"))
    _run("mount", "-t", "tmpfs", "-o", "mode=1777", "tmpfs", str(root / "dev/shm"))
    _run("mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", str(root / "run"))
    _run("mount", "-t", "tmpfs", "-o", "mode=1777", "tmpfs", str(root / "tmp"))
    # Containers need a real directory for their overlay upper dirs.
    _run("mount", "--bind", str(state / "lxc"), str(root / "var/lib/lxc"))
    # Host directories the node must see live (a lower layer changed under a
    # mounted overlay is not reliably seen: that is the containers' property).
    # Each is bound twice: once at a fixed place of the root (KEPT_BINDS/N), which a reboot leaves
    # alone, and from there at its target, which may lie under /tmp or /run (a clone under /tmp):
    # a reboot's fresh /tmp and /run lose the target, and _rebind puts it back from the kept copy.
    for i, pair in enumerate(binds):
        source, target = pair.split(":", 1)
        kept = root / KEPT_BINDS.lstrip("/") / str(i)
        os.makedirs(kept, exist_ok=True)
        _run("mount", "--bind", source, str(kept))
        Path(root / KEPT_BINDS.lstrip("/"), f"{i}.target").write_text(target)
        where = root / target.lstrip("/")
        os.makedirs(where, exist_ok=True)  # e.g. under the node's fresh /tmp
        _run("mount", "--bind", str(kept), str(where))
    old = root / ".lab-oldroot"
    old.mkdir(exist_ok=True)
    _run("pivot_root", str(root), str(old))
    os.chdir("/")
    _run("umount", "-l", "/.lab-oldroot")
    os.rmdir("/.lab-oldroot")


def _end_everything_else(sshd: list[subprocess.Popen]) -> None:
    """A reboot's end of every process of the node but this one: TERM, a grace, then KILL."""
    for proc in sshd:
        proc.terminate()
    try:
        os.kill(-1, signal.SIGTERM)  # in a PID namespace: every process of it but process 1
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        _reap_some()
        if not _others_alive():
            return
        time.sleep(0.1)
    try:
        os.kill(-1, signal.SIGKILL)
    except ProcessLookupError:
        pass
    while _others_alive() and time.monotonic() < deadline + 10:
        _reap_some()
        time.sleep(0.1)


def _others_alive() -> bool:
    return any(p.name.isdigit() and p.name != "1" for p in Path("/proc").iterdir())


def _fresh_runtime() -> None:
    """/run and /tmp as a boot finds them (tmpfs), then what the node needs in /run, and the binds again."""
    for where, mode in (("/run", "755"), ("/tmp", "1777")):
        _run("umount", "-l", where)
        _run("mount", "-t", "tmpfs", "-o", f"mode={mode}", "tmpfs", where)
    _prepare_runtime()
    _rebind()


def _rebind() -> None:
    """Bind every host directory whose target a reboot's fresh /run or /tmp took away, from its kept copy."""
    kept = Path(KEPT_BINDS)
    for record in sorted(kept.glob("*.target")):
        target = record.read_text()
        if os.path.ismount(target):
            continue
        os.makedirs(target, exist_ok=True)
        _run("mount", "--bind", str(kept / record.stem), target)


def _prepare_runtime() -> None:
    os.makedirs("/run/crm", exist_ok=True)
    os.makedirs("/run/lxc", exist_ok=True)
    os.makedirs("/run/netns", exist_ok=True)
    import grp
    import pwd

    uid = pwd.getpwnam("hacluster").pw_uid
    gid = grp.getgrnam("haclient").gr_gid
    os.chown("/run/crm", uid, gid)
    os.chmod("/run/crm", 0o750)
    # The containers' lower layer: this node's own root, as the seed idea has it.
    os.makedirs("/var/lib/lxc/host/rootfs", exist_ok=True)
    if not os.path.ismount("/var/lib/lxc/host/rootfs"):
        _run("mount", "--bind", "/", "/var/lib/lxc/host/rootfs")


def _start_sshd() -> subprocess.Popen:
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    log = open("/var/log/sshd.log", "ab")
    return subprocess.Popen(["/usr/sbin/sshd", "-D", "-e"], env=DAEMON_ENV, stdout=log, stderr=log,
                            stdin=subprocess.DEVNULL, start_new_session=True)


STACK_PRELOAD = "/etc/upgrader-lab/stack-preload"  # names a library the stack's daemons load (LD_PRELOAD)


def _stack_env() -> dict[str, str]:
    """DAEMON_ENV, plus LD_PRELOAD of the library STACK_PRELOAD names (read at every stack start): so the
    stack maps a lab package's library, as corosync maps libgnutls."""
    try:
        library = open(STACK_PRELOAD).read().strip()
    except OSError:
        return DAEMON_ENV
    return {**DAEMON_ENV, "LD_PRELOAD": library} if os.path.isfile(library) else DAEMON_ENV


def _start_stack() -> list[subprocess.Popen]:
    env = _stack_env()
    log = open("/var/log/corosync/stdout.log", "ab")
    corosync = subprocess.Popen(["corosync", "-f"], env=env, stdout=log, stderr=log,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 30
    while subprocess.run(["corosync-cfgtool", "-s"], capture_output=True, timeout=10).returncode != 0:
        if time.monotonic() > deadline or corosync.poll() is not None:
            raise RuntimeError("corosync did not come up within 30s (see /var/log/corosync/corosync.log)")
        time.sleep(0.1)
    plog = open("/var/log/pacemaker/stdout.log", "ab")
    pacemakerd = subprocess.Popen(["pacemakerd"], env=env, stdout=plog, stderr=plog,
                                  stdin=subprocess.DEVNULL, start_new_session=True)
    print(f"init: corosync {corosync.pid}, pacemakerd {pacemakerd.pid}", flush=True)
    return [pacemakerd, corosync]


def _stop_stack(stack: list[subprocess.Popen]) -> None:
    """Stop pacemakerd (it stops the resources), then corosync; reap as we go."""
    for proc in stack:
        if proc.poll() is not None:
            continue
        proc.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        while proc.poll() is None and time.monotonic() < deadline:
            _reap_some()
            time.sleep(0.1)
        if proc.poll() is None:
            print(f"init: pid {proc.pid} did not stop within {STOP_TIMEOUT:g}s, killing it", flush=True)
            proc.kill()
            proc.wait()


def _reap_some() -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="node_init")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("launch")
    p.add_argument("--lab", required=True)
    p.add_argument("--node", required=True)
    p.add_argument("--netns", required=True)
    p.add_argument("--state", required=True)
    p.add_argument("--hold", action="store_true")
    p.add_argument("--bind", action="append", default=[], metavar="SRC:DST", help="bind a host directory in")
    args = parser.parse_args(argv)
    return launch(args)


if __name__ == "__main__":
    sys.exit(main())
