"""A slow mirror for a lab: its APT repository served over HTTP at a bounded rate.

The lab's nodes normally read the repository as a ``copy:`` source
(:func:`upgrader_lab.repo.sources_entry`). :func:`serving` starts a small
static-file HTTP server (the standard library's, read-only: GET and HEAD of
files, no directory listings) in the lab's client namespace, bound to the
client's lab address (:attr:`~upgrader_lab.layout.Lab.client_ip`) on
:data:`PORT`, whose output is held to ``rate`` bytes/s in all (one token bucket
for every connection: the mirror's uplink); it switches every node's source to
it (:func:`upgrader_lab.repo.http_sources_entry`, then ``apt-get update`` in
each) and on exit, also on error, switches them back to ``copy:`` and ends the
server by its PID. The server is one process per lab, recorded by its PID file
in the lab's state (``slowrepo/server.pid``, its log beside it); ``down`` ends
one left behind the same way (by its PID, or by its command line when the PID
file was lost), never by name.

Traffic stays on the lab's bridge: the server binds only a lab address inside
the lab's client namespace, which has no route off the bridge, and the nodes
reach it on their own /27. Each node also gets ``Acquire::http::Proxy::ADDRESS
"DIRECT"`` (:data:`PROXY_CONF`), so that a proxy the host's APT configuration
names (a node sees the host's apt.conf.d) is never asked for it.

    python -m upgrader_lab.slowrepo start --lab NAME --rate BYTES_PER_S [--port N]   (in the client netns)

forks the server, prints its PID once it is bound, and exits (:func:`start` runs it there).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import ipaddress
import os
import re
import socketserver
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any, BinaryIO, Callable

from upgrader.runner import CommandError, Runner
from upgrader_lab import daemons, network, node, repo
from upgrader_lab.layout import NETWORKS, PACKAGE, Lab, LabError, check_name

MODULE = "upgrader_lab.slowrepo"
PORT = 8080  # on the lab client's address
CHUNK = 16 << 10  # bytes sent per step; also the bucket's burst
MIN_RATE, MAX_RATE = 1 << 10, 1 << 30  # bytes/s
START_TIMEOUT = 30.0
UPDATE_TIMEOUT = 180.0  # apt-get update in a node, through the slow server
PROXY_CONF = "/etc/apt/apt.conf.d/60upgrader-lab-slowrepo"  # in each node while the slow repository is on

Clock = Callable[[], float]


# ---------------------------------------------------------------- the rate: a token bucket

class Throttle:
    """At most ``rate`` bytes/s on average over every caller together, bursts of at most ``burst`` bytes.

    A caller reserves its bytes before it sends them and waits what :meth:`reserve` says: the bucket
    may go into debt, so callers that come meanwhile wait their turn behind it (the sum of what they
    send by time t never exceeds ``burst + rate * t``).
    """

    def __init__(self, rate: float, burst: int = CHUNK, clock: Clock = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError(f"a throttle needs a positive rate and burst, not {rate!r} and {burst!r}")
        self.rate = float(rate)
        self.burst = float(burst)
        self._clock, self._sleep = clock, sleep
        self._tokens = self.burst
        self._stamp = clock()
        self._lock = threading.Lock()

    def reserve(self, size: int) -> float:
        """Take ``size`` bytes' worth now; the seconds to wait before sending them (0: at once)."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= size
            return max(0.0, -self._tokens / self.rate)

    def take(self, size: int) -> None:
        """Wait until ``size`` more bytes may go."""
        wait = self.reserve(size)
        if wait > 0:
            self._sleep(wait)


def throttled_copy(source: BinaryIO, out: BinaryIO, throttle: Throttle, chunk: int = CHUNK) -> int:
    """Copy ``source`` to ``out`` in steps of ``chunk`` bytes, each after ``throttle`` lets it go; bytes sent."""
    sent = 0
    while True:
        data = source.read(chunk)
        if not data:
            return sent
        throttle.take(len(data))
        out.write(data)
        sent += len(data)


def check_rate(rate: int) -> int:
    if not MIN_RATE <= rate <= MAX_RATE:
        raise LabError(f"a slow repository's rate of {rate} bytes/s is out of range: {MIN_RATE} to {MAX_RATE}")
    return rate


def check_address(address: str) -> str:
    """Only a lab address (198.51.100.0/24 or 203.0.113.0/24): the server never listens anywhere else."""
    ip = ipaddress.ip_address(address)
    if not any(ip in net for net in NETWORKS):
        raise LabError(f"{address} is not a lab address ({', '.join(map(str, NETWORKS))}): the slow repository "
                       "listens only on the lab's bridge")
    return address


# ---------------------------------------------------------------- what it served (its log)

_SERVED = re.compile(r"served (?P<method>[A-Z]+) (?P<path>\S+) (?P<status>\d+|-) (?P<bytes>\d+) (?P<seconds>\d+\.\d+)$")


@dataclass(frozen=True)
class Served:
    """One request the server answered: its status (None if none was sent), bytes of body sent, seconds."""

    method: str
    path: str
    status: int | None
    bytes: int
    seconds: float

    @property
    def archive(self) -> bool:
        return self.path.endswith(".deb")


def served_line(method: str, path: str, status: int | None, sent: int, seconds: float) -> str:
    return f"served {method} {path} {'-' if status is None else status} {sent} {seconds:.3f}"


def served(text: str) -> list[Served]:
    """The requests a server log names (other lines, e.g. errors, left out)."""
    found = []
    for line in text.splitlines():
        m = _SERVED.search(line)
        if m:
            found.append(Served(m["method"], m["path"], None if m["status"] == "-" else int(m["status"]),
                                int(m["bytes"]), float(m["seconds"])))
    return found


# ---------------------------------------------------------------- the server itself

class Handler(http.server.SimpleHTTPRequestHandler):
    """GET and HEAD of the repository's files (the standard library's handler), each body throttled;
    no directory listings; one log line per request (:func:`served_line`)."""

    server: "SlowServer"
    sent = 0
    status: int | None = None

    def copyfile(self, source: Any, outputfile: Any) -> None:
        self.sent += throttled_copy(source, outputfile, self.server.throttle)

    def list_directory(self, path: str | os.PathLike[str]) -> None:
        self.send_error(HTTPStatus.NOT_FOUND, "no directory listings here")
        return None

    def send_response(self, code: int, message: str | None = None) -> None:
        self.status = int(code)
        super().send_response(code, message)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # one line per request once it is done, with its bytes and seconds (_timed)

    def log_message(self, format: str, *args: Any) -> None:
        _log(f"{self.address_string()}: {format % args}")

    def do_GET(self) -> None:
        self._timed(super().do_GET)

    def do_HEAD(self) -> None:
        self._timed(super().do_HEAD)

    def _timed(self, serve: Callable[[], None]) -> None:
        started, self.sent, self.status = time.monotonic(), 0, None
        try:
            serve()
        finally:
            _log(f"{self.address_string()} " + served_line(self.command, self.path, self.status, self.sent,
                                                           time.monotonic() - started))


class SlowServer(http.server.ThreadingHTTPServer):
    """The repository directory ``root`` on ``address:port`` (a lab address only), at ``rate`` bytes/s in all."""

    daemon_threads = True

    def __init__(self, address: str, port: int, root: Path, rate: int) -> None:
        check_address(address)
        self.throttle = Throttle(check_rate(rate))
        self.root = root
        super().__init__((address, port), functools.partial(Handler, directory=str(root)))

    def server_bind(self) -> None:
        """Bound as HTTPServer binds, without its socket.getfqdn (a reverse DNS lookup: no name lookups here)."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        _log(f"{client_address[0]}: {sys.exc_info()[1]!r}")  # a client gone mid-file: one line, no traceback


def _log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} slowrepo: {msg}", file=sys.stderr, flush=True)


def state_dir(lab: Lab) -> Path:
    return lab.state_dir / "slowrepo"


def log_path(lab: Lab) -> Path:
    return state_dir(lab) / "server.log"


def url(lab: Lab, port: int = PORT) -> str:
    return f"http://{lab.client_ip}:{port}/"


def launch(name: str, rate: int, port: int) -> int:
    """Bind the server (an error is said at once), fork it into a session of its own (output to its log),
    record its PID and print it."""
    lab = Lab.load(check_name(name))
    if lab is None:
        print(f"lab {name} has no lab.json: no repository to serve", file=sys.stderr)
        return 1
    state_dir(lab).mkdir(parents=True, exist_ok=True)
    server = SlowServer(lab.client_ip, port, lab.repo_dir, rate)
    child = os.fork()
    if child == 0:
        os.setsid()
        os.chdir("/")
        log = os.open(log_path(lab), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        try:
            _log(f"lab {lab.name}: serving {lab.repo_dir} on {url(lab, port)} at {rate} bytes/s")
            server.serve_forever()
        except BaseException as exc:  # report, do not vanish silently
            _log(f"fatal: {exc!r}")
        os._exit(1)
    server.socket.close()
    (state_dir(lab) / "server.pid").write_text(f"{child}\n")
    print(child)
    return 0


# ---------------------------------------------------------------- the lab's side: start, find, stop

def start(lab: Lab, rate: int, port: int = PORT) -> int:
    """Start the lab's slow repository in its client namespace; its PID once it listens."""
    check_rate(rate)
    check_address(lab.client_ip)
    if pid(lab) is not None:
        raise LabError(f"lab {lab.name} already serves its repository slowly (pid {pid(lab)})")
    if not network.netns_exists(lab.client_netns):
        raise LabError(f"lab {lab.name} has no client namespace {lab.client_netns}: is it up?")
    state_dir(lab).mkdir(parents=True, exist_ok=True)
    result = Runner(timeout=START_TIMEOUT).run(
        ["ip", "netns", "exec", lab.client_netns, sys.executable, "-m", MODULE, "start", "--lab", lab.name,
         "--rate", str(rate), "--port", str(port)], what=f"starting lab {lab.name}'s slow repository")
    found = int(result.stdout.strip())
    if not daemons.is_ours(found, MODULE, lab):
        raise LabError(f"the slow repository of lab {lab.name} (pid {found}) ended at once; see {log_path(lab)}")
    return found


def pid(lab: Lab) -> int | None:
    """The server's PID if it is alive and really this lab's."""
    return daemons.recorded(state_dir(lab) / "server.pid", MODULE, lab)


def strays(lab: Lab) -> list[int]:
    """Servers of this lab whose PID file was lost."""
    return daemons.strays(MODULE, lab)


def stop(lab: Lab) -> list[int]:
    """End the lab's server (and any stray one) by PID; the PIDs ended."""
    pids = sorted({p for p in (pid(lab),) if p} | set(strays(lab)))
    for found in pids:
        daemons.end(found, "the slow repository")
    (state_dir(lab) / "server.pid").unlink(missing_ok=True)
    return pids


def proxy_conf(address: str) -> str:
    """APT in a node asks no proxy for the slow repository, whatever the host's configuration names."""
    return f'// upgrader-lab: the slow repository is on the lab\'s bridge\nAcquire::http::Proxy::{address} "DIRECT";\n'


def switch(lab: Lab, nodes: list[str], address: str | None, port: int = PORT) -> None:
    """Every node of ``nodes`` reads the repository from the slow server at ``address`` (None: as its
    ``copy:`` source again), then ``apt-get update``, in parallel; a node whose APT does not list the lab's
    package from that source afterwards (``apt-cache policy``) is an error. Every node is tried; the first
    error is raised after."""
    uri = f"http://{address}:{port}" if address is not None else f"copy:{node.REPO_MOUNT}"

    def one(n: str) -> None:
        inside = node.runner(lab, n, timeout=UPDATE_TIMEOUT)
        if address is not None:
            inside.run(["tee", PROXY_CONF], input=proxy_conf(address), what=f"writing {PROXY_CONF} in {n}")
            inside.run(["tee", node.SOURCES], input=repo.http_sources_entry(address, port),
                       what=f"switching {n} to the slow repository")
        else:
            inside.run(["tee", node.SOURCES], input=repo.sources_entry(Path(node.REPO_MOUNT)),
                       what=f"switching {n} back to the copy: repository")
            inside.run(["rm", "-f", PROXY_CONF], what=f"removing {PROXY_CONF} in {n}")
        inside.run(["apt-get", "update", "-q"], what=f"apt-get update in {n}")
        policy = inside.run(["apt-cache", "policy", PACKAGE], what=f"apt-cache policy in {n}").stdout
        if uri not in policy:
            raise LabError(f"{n} does not list {PACKAGE} from {uri} after apt-get update (apt-cache policy: "
                           f"{' '.join(policy.split())[:300]})")

    errors: list[Exception] = []
    with ThreadPoolExecutor(max_workers=len(nodes) or 1) as pool:
        for future in [pool.submit(one, n) for n in nodes]:
            try:
                future.result()
            except (CommandError, LabError) as exc:
                errors.append(exc)
    if errors:
        raise errors[0]


@contextmanager
def serving(lab: Lab, rate: int, port: int = PORT) -> Iterator[str]:
    """The lab's repository served at ``rate`` bytes/s to every running node while the block runs; its URL.

    On exit, also on error or Ctrl-C, every node reads the ``copy:`` source again and the server ends.
    """
    live = [n for n in lab.node_names if node.running(lab, n)]
    if not live:
        raise LabError(f"no node of lab {lab.name} is running: nothing to serve the repository to")
    if pid(lab) is not None:  # another block serves it: not ours to end
        raise LabError(f"lab {lab.name} already serves its repository slowly (pid {pid(lab)})")
    try:
        start(lab, rate, port)
    except BaseException:
        stop(lab)  # one that started but was not seen listening
        raise
    failed: BaseException | None = None
    try:
        switch(lab, live, lab.client_ip, port)
        yield url(lab, port)
    except BaseException as exc:
        failed = exc
        raise
    finally:
        try:
            switch(lab, live, None)
        except (CommandError, LabError) as exc:
            if failed is None:
                raise
            failed.add_note(f"switching the nodes back to the copy: repository failed too: {exc}")
        finally:
            stop(lab)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="slowrepo")
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("start", help="fork the lab's slow repository server, print its PID")
    s.add_argument("--lab", required=True)
    s.add_argument("--rate", type=int, required=True, help="bytes per second, every connection together")
    s.add_argument("--port", type=int, default=PORT)
    args = parser.parse_args(argv)
    try:
        return launch(args.lab, args.rate, args.port)
    except (LabError, OSError) as exc:
        print(f"slowrepo: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
