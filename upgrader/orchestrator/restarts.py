"""Restarting a drained node: its cluster stack around an upgrade of the stack, and reboots.

Pacemaker's rolling-upgrade rule: a node's cluster stack is not upgraded
while it runs. :meth:`Restarts.stack_stopped` stops it on the drained node
(``rolling-upgrade stack stop`` there: a marker naming the run, a
policy-rc.d that keeps maintainer scripts from starting it, ``Stack::Stop``),
lets dpkg run, then starts it and waits until the node rejoined. While the
node the run itself runs on is down, the cluster is asked through a peer.

:meth:`Restarts.reboot` reboots a node that asks for it (Reboot on) and
waits until it answers without the /run marker written before the reboot
(gone at boot) and rejoined the cluster; the node stays in standby
through it (a permanent attribute). The node running the rollout reboots
itself last; its @reboot step (``rolling-upgrade resume``) finishes it.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from upgrader.config import Config
from upgrader.hastack.marker import REBOOT_PENDING
from upgrader.orchestrator.outcome import Outcome, Stop
from upgrader.orchestrator.remote import Nodes
from upgrader.pacemaker.live import Check, Cluster
from upgrader.pacemaker.state import ClusterState
from upgrader.runner import REBOOT_ASK_TIMEOUT, REBOOT_PROBE_TIMEOUT, REPORT_MARGIN, Result


def online(node: str) -> Check:
    def check(state: ClusterState) -> list[str]:
        me = state.node(node)
        return [] if me is not None and me.online else [f"{node} not online yet"]
    return check


class Restarts:
    def __init__(self, cluster: Cluster, nodes: Nodes, config: Config, run_id: str,
                 phase: Callable[[str, str], None], say: Callable[[str, str, str], None]) -> None:
        self.cluster = cluster
        self.nodes = nodes
        self.config = config
        self.run_id = run_id
        self.phase = phase
        self.say = say

    # ------------------------------------------------------------------ the cluster stack

    @contextmanager
    def stack_stopped(self, node: str) -> Iterator[None]:
        """The drained node's cluster stack stopped for the block; started and rejoined after it."""
        with self.asking_a_peer_while_down(node):
            self.phase(node, "stack-stop")
            stop = self._stack(node, "stop", "--by", self.nodes.local, "--pid", str(os.getpid()))
            if stop.returncode != 0:
                why = stop.last_words
                self._start_and_rejoin(node)
                self.cluster.set_standby(node, False)
                raise Stop(Outcome.NEEDS_PERSON, f"stopping the cluster stack on {node} failed: {why}; nothing "
                           f"was upgraded, its stack was started again and {node} is back online")
            self.say(node, "stack", "cluster stack stopped; policy-rc.d keeps maintainer scripts from starting it")
            try:
                yield
            finally:
                # The stack is started first, whatever else fails: a heartbeat or a history line that
                # raises must never leave a node's stack stopped.
                started = self._stack(node, "start")
                try:
                    self.phase(node, "stack-start")
                finally:
                    seconds = self._rejoined(node, started)
                self.say(node, "stack", f"cluster stack started; {node} rejoined after {seconds:.1f}s")

    def _start_and_rejoin(self, node: str) -> float:
        return self._rejoined(node, self._stack(node, "start"))

    def _rejoined(self, node: str, start: Result) -> float:
        """After ``stack start`` on ``node``: its failure as the stop, else the seconds until it rejoined."""
        started = time.monotonic() - start.seconds
        if start.returncode != 0:
            raise Stop(Outcome.NEEDS_PERSON, f"starting the cluster stack on {node} again failed: "
                       f"{start.last_words}; {node} stays in standby: start it there ('rolling-upgrade stack "
                       "start'), then 'rolling-upgrade run' goes on")
        self.wait_rejoined(node)
        return time.monotonic() - started

    def _stack(self, node: str, action: str, *args: str, timeout: float | None = None) -> Result:
        """``rolling-upgrade stack ACTION --run-id RUN ARGS`` on ``node``."""
        argv = [self.nodes.tool, "stack", action, "--run-id", self.run_id, *args]
        return self.nodes.runner(node, timeout=timeout or self.config.settle_timeout + REPORT_MARGIN).call(argv)

    @contextmanager
    def asking_a_peer_while_down(self, node: str) -> Iterator[None]:
        """While this node's own stack is down, the cluster is asked on a peer (through the remote shell)."""
        if node != self.nodes.local:
            yield
            return
        state = self.cluster.state()
        peer = next((n.name for n in state.nodes if n.name != node and n.online), None)
        if peer is None:
            raise Stop(Outcome.NEEDS_PERSON, f"no peer is online to ask the cluster while {node}'s stack is down")
        own = self.cluster.runner
        self.cluster.runner = self.nodes.runner(peer, timeout=own.timeout)
        try:
            yield
        finally:
            self.cluster.runner = own
        self.wait_rejoined(node)  # and seen so from this node itself again

    def wait_rejoined(self, node: str) -> None:
        self.cluster.wait_settled(online(node), deadline=self.config.rejoin_timeout)

    # ------------------------------------------------------------------ reboots

    def reboot(self, node: str) -> None:
        """Reboot the drained node and wait until it rejoined (the node running the run: see :meth:`reboot_self`)."""
        self.phase(node, "reboot")
        if node == self.nodes.local:
            self.reboot_self(node)
            return
        started = time.monotonic()
        asked = self._stack(node, "reboot", timeout=REBOOT_ASK_TIMEOUT)
        if asked.returncode not in (0, 255) and asked.returncode >= 0:  # 255, a signal: the session went down with it
            self.say(node, "reboot", f"could not reboot {node}: {asked.last_words}; its upgrade "
                     "stands, the reboot is left to a person")
            return
        self.wait_rebooted(node)
        self.say(node, "reboot", f"{node} rebooted; waiting until it rejoins the cluster")
        self.wait_rejoined(node)
        self.say(node, "reboot", f"rebooted; {node} rejoined after {time.monotonic() - started:.1f}s")

    def wait_rebooted(self, node: str) -> None:
        """Until the node answers again without the marker its reboot takes away (/run is fresh at boot)."""
        probe = ["test", "!", "-e", str(REBOOT_PENDING)]

        def gone() -> bool:
            return self.nodes.runner(node, timeout=REBOOT_PROBE_TIMEOUT).call(probe).returncode == 0

        try:
            Retrying(stop=stop_after_delay(self.config.rejoin_timeout), wait=wait_fixed(1),
                     retry=retry_if_result(lambda done: not done))(gone)
        except RetryError:
            raise Stop(Outcome.NEEDS_PERSON, f"{node} did not come back from its reboot within "
                       f"{self.config.rejoin_timeout}s (still {REBOOT_PENDING} there, or unreachable); it stays "
                       "in standby") from None

    def reboot_self(self, node: str) -> None:
        """Reboot the node this run runs on: the lock keeps the run (phase reboot) for ``rolling-upgrade resume``."""
        self.say(node, "reboot", "rebooting this node, which runs the rollout; at its boot 'rolling-upgrade "
                 "resume' (cron @reboot) brings it back online and ends the run")
        asked = self._stack(node, "reboot", timeout=REBOOT_ASK_TIMEOUT)
        if asked.returncode != 0:
            self.say(node, "reboot", f"could not reboot {node}: {asked.last_words}; its upgrade "
                     "stands, the reboot is left to a person")
            return
        time.sleep(self.config.rejoin_timeout)  # the reboot ends this process before
        raise Stop(Outcome.NEEDS_PERSON, f"{node} was asked to reboot but still runs after "
                   f"{self.config.rejoin_timeout}s; it stays in standby: reboot it, then 'rolling-upgrade resume'")

