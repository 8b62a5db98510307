"""The power controller of a fenced lab: the out-of-band channel its fence agent talks to.

One small process per lab, on the host, started by ``up`` and ended by
``down`` by its PID (``python -m upgrader_lab.powerswitch start --lab NAME``
forks it, prints its PID and exits, as a node's launcher does). It listens
on a unix socket in the lab's power directory, which every node of the lab
sees at :data:`~upgrader_lab.layout.POWER_MOUNT`; the fence agent
(:mod:`upgrader_lab.fence_lab`) sends one JSON line, e.g.
``{"action": "off", "node": "node2"}``, and gets one back. "off" power-cuts
the node exactly as ``upgrader-lab kill`` does and answers only once its
process 1 is gone; "on" powers it on (it rejoins by itself); "status" says
whether its process 1 runs; "list" names the lab's nodes.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socketserver
import sys
import threading
import time
from pathlib import Path

from upgrader.runner import Runner
from upgrader_lab import daemons, node
from upgrader_lab.layout import Lab, LabError, check_name

MODULE = "upgrader_lab.powerswitch"
SOCKET = "power.sock"
READY_TIMEOUT = 15.0
MAX_REQUEST = 4096
REQUEST_TIMEOUT = 30.0  # a client that sends nothing for this long is dropped


def socket_path(lab: Lab) -> Path:
    return lab.power_dir / SOCKET


# ---------------------------------------------------------------- the lab's side: start, find, stop

def start(lab: Lab) -> int:
    """Start the lab's controller; return its PID once it listens."""
    lab.power_dir.mkdir(parents=True, exist_ok=True)
    result = Runner(timeout=READY_TIMEOUT + 15).run(
        [sys.executable, "-m", MODULE, "start", "--lab", lab.name], what=f"starting lab {lab.name}'s power controller")
    return int(result.stdout.strip())


def pid(lab: Lab) -> int | None:
    """The controller's PID if it is alive and really this lab's."""
    return daemons.recorded(lab.power_dir / "controller.pid", MODULE, lab)


def strays(lab: Lab) -> list[int]:
    """Controllers of this lab whose PID file was lost (an interrupted 'up')."""
    return daemons.strays(MODULE, lab)


def stop(lab: Lab) -> list[int]:
    """End the lab's controller (and any stray one) by PID; return the PIDs ended."""
    pids = sorted({p for p in (pid(lab),) if p} | set(strays(lab)))
    for found in pids:
        daemons.end(found, "the power controller")
    socket_path(lab).unlink(missing_ok=True)
    return pids


# ---------------------------------------------------------------- the controller itself

class Controller:
    """Power requests for one lab's nodes, one at a time per node."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self._locks = {n: threading.Lock() for n in lab.node_names}

    def handle(self, request: object) -> dict:
        """One request (decoded JSON) -> its answer; never raises."""
        try:
            return {"ok": True, **self._do(request)}
        except (LabError, OSError, ValueError, KeyError, TypeError) as exc:
            return {"ok": False, "error": str(exc)}

    def _do(self, request: object) -> dict:
        if not isinstance(request, dict):
            raise ValueError("a request is a JSON object with 'action' (and 'node')")
        action = request.get("action")
        if action == "list":
            return {"nodes": self.lab.node_names}
        if action not in ("off", "on", "status"):
            raise ValueError(f"unknown action {action!r}: off, on, status or list")
        n = self.lab.check_node(str(request.get("node")))
        with self._locks[n]:
            if action == "off":
                node.power_off(self.lab, n)  # returns once process 1 is gone (or raises)
            elif action == "on" and not node.running(self.lab, n):
                node.power_on(self.lab, n, hold=False)
            return {"power": "on" if node.running(self.lab, n) else "off"}


def serve(lab: Lab, ready: int | None = None) -> None:
    """Listen on the lab's socket until killed; write to ``ready`` once listening."""
    server = make_server(lab)
    if ready is not None:
        os.write(ready, b"1")
        os.close(ready)
    server.serve_forever()


def make_server(lab: Lab) -> socketserver.UnixStreamServer:
    """The controller's server, bound to the lab's socket (mode 0600), not yet serving."""
    controller = Controller(lab)
    path = socket_path(lab)
    path.unlink(missing_ok=True)

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            self.connection.settimeout(REQUEST_TIMEOUT)
            try:
                request = json.loads(self.rfile.readline(MAX_REQUEST))
            except ValueError:
                request = None
            started = time.monotonic()
            answer = controller.handle(request)
            _log(f"{request!r} -> {answer} in {time.monotonic() - started:.2f}s")
            self.wfile.write((json.dumps(answer) + "\n").encode())

    class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
        daemon_threads = True

    old = os.umask(0o077)  # the socket 0600: root's, as the nodes' fencers are
    try:
        server = Server(str(path), Handler)
    finally:
        os.umask(old)
    _log(f"lab {lab.name}: listening on {path}")
    return server


def _log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} powerswitch: {msg}", file=sys.stderr, flush=True)


def launch(name: str) -> int:
    """Fork the controller (a session of its own, output to its log); print its PID once it listens."""
    lab = Lab.load(check_name(name))
    if lab is None:
        print(f"lab {name} has no lab.json: nothing to control", file=sys.stderr)
        return 1
    ready_r, ready_w = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(ready_r)
        os.setsid()
        os.chdir("/")
        log = os.open(lab.power_dir / "controller.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        try:
            serve(lab, ready_w)
        except BaseException as exc:  # report, do not vanish silently
            _log(f"fatal: {exc!r}")
        os._exit(1)
    os.close(ready_w)
    (lab.power_dir / "controller.pid").write_text(f"{child}\n")
    ready, _, _ = select.select([ready_r], [], [], READY_TIMEOUT)
    if not ready or os.read(ready_r, 1) != b"1":
        daemons.end(child, "the power controller")
        print(f"power controller of lab {name} not listening within {READY_TIMEOUT:g}s "
              f"(see {lab.power_dir}/controller.log)", file=sys.stderr)
        return 1
    print(child)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="powerswitch")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("start", help="fork the lab's power controller, print its PID").add_argument("--lab", required=True)
    args = parser.parse_args(argv)
    try:
        return launch(args.lab)
    except LabError as exc:
        print(f"powerswitch: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
