"""Operations on a live cluster, every one through :class:`~upgrader.runner.Runner`."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Literal, Mapping

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay

from upgrader.pacemaker import cibcopy, names
from upgrader.pacemaker.compat import verify_errors
from upgrader.pacemaker.quorum import Votes, parse_quorumtool
from upgrader.pacemaker.simulate import Move, parse_transition_summary
from upgrader.pacemaker.state import ClusterState, Failure, ParseError, parse_crm_mon
from upgrader.pacemaker.utilization import Utilization
from upgrader.pacemaker.utilization import parse as parse_utilization
from upgrader.runner import (CONFIG_INVALID, DC_QUERY_TIMEOUT, NO_SUCH_OBJECT, SIMULATE_TIMEOUT, TIMED_OUT,
                             VERIFY_TIMEOUT, CommandError, CommandMissing, CommandTimeout, Runner)

# A placement check: the problems it sees in a state (empty when it holds).
Check = Callable[[ClusterState], list[str]]
Lifetime = Literal["forever", "reboot"]
# wait_settled: seconds from the start of one poll to the start of the next, while the
# wait is young (SETTLE_POLL_FAST_FOR seconds), then later; a slow poll is followed at once.
SETTLE_POLL = 0.1
SETTLE_POLL_FAST_FOR = 5.0
SETTLE_POLL_LATE = 0.5


class NotSettled(Exception):
    """The cluster did not settle within the caller's deadline."""


def placement(expected: Mapping[str, str]) -> Check:
    """A check that each resource/group/clone id runs on the node given for it."""

    def check(state: ClusterState) -> list[str]:
        problems = []
        for rid, node in expected.items():
            try:
                where = state.running_on(rid)
            except KeyError as exc:
                problems.append(str(exc.args[0]))
                continue
            if node not in where:
                problems.append(f"{rid} runs on {_nodes(where)}, expected {node}")
        return problems

    return check


def drained(node: str, resources: tuple[str, ...]) -> Check:
    """A check that each of ``resources`` runs somewhere, and not on ``node``."""

    def check(state: ClusterState) -> list[str]:
        problems = []
        for rid in resources:
            where = state.running_on(rid)
            if not where or node in where:
                problems.append(f"{rid} runs on {_nodes(where)}, expected it away from {node}")
        return problems

    return check


def in_flight(state: ClusterState) -> list[str]:
    """What keeps a state from being settled, apart from the DC's state."""
    problems = []
    if state.summary.dc is None:
        problems.append("no DC elected")
    for r in state.busy():
        problems.append(f"{r.id} is {r.pending or r.role} on {_nodes(r.nodes)}")
    return problems


def unsettled(state: ClusterState, check: Check | None) -> list[str]:
    """What in ``state`` keeps it from being settled: in flight, or ``check`` not holding."""
    return in_flight(state) + (check(state) if check is not None else [])


@dataclass(frozen=True)
class Preflight:
    """Facts to check before touching the cluster."""

    quorum: bool
    dc: str | None
    offline: tuple[str, ...]
    unclean: tuple[str, ...]
    pending: tuple[str, ...]
    standby: tuple[str, ...]
    failures: tuple[Failure, ...]
    maintenance_mode: bool
    stonith_enabled: bool
    cli_constraints: tuple[str, ...]

    @property
    def all_online(self) -> bool:
        return not self.offline

    def problems(self) -> list[str]:
        """Each fact that should stop an upgrade, as one sentence (fencing is only reported)."""
        found = []
        if not self.quorum:
            found.append("the cluster has no quorum")
        if self.offline:
            found.append(f"nodes offline: {', '.join(self.offline)}")
        if self.unclean:
            found.append(f"nodes unclean: {', '.join(self.unclean)}")
        if self.pending:
            found.append(f"nodes pending: {', '.join(self.pending)}")
        for f in self.failures:
            found.append(f"failed action {f.op_key} on {f.node} ({f.exitstatus}); clean it up with crm_resource --cleanup")
        if self.maintenance_mode:
            found.append("maintenance-mode is on")
        if self.cli_constraints:
            found.append(f"leftover crm_resource constraints: {', '.join(self.cli_constraints)} (crm_resource --clear)")
        return found

    @classmethod
    def from_state(cls, state: ClusterState, cli_constraints: tuple[str, ...]) -> "Preflight":
        nodes = state.nodes
        return cls(
            quorum=state.summary.quorum,
            dc=state.summary.dc,
            offline=tuple(n.name for n in nodes if not n.online),
            unclean=tuple(n.name for n in nodes if n.unclean),
            pending=tuple(n.name for n in nodes if n.pending),
            standby=tuple(n.name for n in nodes if n.standby),
            failures=state.failures,
            maintenance_mode=bool(state.summary.maintenance_mode),
            stonith_enabled=bool(state.summary.stonith_enabled),
            cli_constraints=cli_constraints,
        )


@dataclass
class Cluster:
    """The cluster as the Pacemaker CLI on one node sees it."""

    runner: Runner

    def local_node(self) -> str:
        """This node's name in the cluster (``crm_node -n``)."""
        return self.runner.run(["crm_node", "-n"], what="asking crm_node for the local node name").stdout.strip()

    def state(self, timeout: float | None = None) -> ClusterState:
        """The cluster now, as crm_mon shows it."""
        return parse_crm_mon(self._xml(["crm_mon", "--one-shot", "--inactive"], timeout, "crm_mon (cluster status)"))

    def set_standby(self, node: str, on: bool) -> None:
        """Put ``node`` in standby or bring it back (permanent: survives a node restart)."""
        names.node_name(node)
        value = "on" if on else "off"
        self.runner.run(
            ["crm_attribute", "--node", node, "--name", "standby", f"--update={value}", "--lifetime", "forever"],
            what=f"setting standby {value} for {node}",
        )

    def set_node_attributes(self, values: Mapping[str, Mapping[str, str]]) -> None:
        """Permanent attributes of several nodes (``standby`` on or off, or ours) in one CIB write:
        ``{node: {name: value}}``.

        One write is one transition of Pacemaker's for all of them. A crm_attribute a node and attribute
        started a transition at the first write and stopped it at the next: a batch's second node's
        resources waited for the stops in flight of the first's, and a drain's own mark stopped its
        transition once (the lab: a 2-node batch's drain settled in 2.0 s against 0.8 s for one node, its
        outages 1.1-1.4 s against 0.7 s). Each nvpair is the one crm_attribute would write
        (:func:`~upgrader.pacemaker.cibcopy.nodes_update`); one node's one attribute is crm_attribute's."""
        for node, attrs in values.items():
            names.node_name(node)
            for name, value in attrs.items():
                if name == "standby":
                    if value not in ("on", "off"):
                        raise ValueError(f"standby is 'on' or 'off', not {value!r}")
                else:
                    names.attribute_name(name)
                    names.attribute_value(value)
        writes = [(n, name, value) for n, attrs in values.items() for name, value in attrs.items()]
        if not writes:
            return
        if len(writes) == 1:
            node, name, value = writes[0]
            if name == "standby":
                self.set_standby(node, value == "on")
            else:
                self.set_attribute(node, name, value)
            return
        cib = cibcopy.parse_configuration(self.runner.run(["cibadmin", "--query", "--scope", "configuration"],
                                                          what="reading the CIB's nodes").stdout)
        fragment = cibcopy.text(cibcopy.nodes_update(cib, values))
        self.runner.run(["cibadmin", "--modify", "--scope", "nodes", f"--xml-text={fragment}"],
                        what="setting " + "; ".join(f"{name} {value} for {n}" for n, name, value in writes))

    def delete_node_attributes(self, nodes: Iterable[str], name: str) -> None:
        """One of our permanent node attributes removed from each of ``nodes`` in one CIB write (nothing
        written where none is set)."""
        names.attribute_name(name)
        nodes = list(nodes)
        which = " or ".join(f"@uname='{names.node_name(n)}'" for n in nodes)
        if not which:
            return
        self.runner.run(["cibadmin", "--delete-all", "--force",
                         f"--xpath=/cib/configuration/nodes/node[{which}]/instance_attributes/nvpair[@name='{name}']"],
                        ok=(0, NO_SUCH_OBJECT), what=f"deleting node attribute {name} of {', '.join(nodes)}")

    def get_attribute(self, node: str, name: str, lifetime: Lifetime = "forever") -> str | None:
        """One of our node attributes, None when it is not set."""
        result = self.runner.run(
            ["crm_attribute", "--node", names.node_name(node), "--name", names.attribute_name(name), "--query", "--quiet", "--lifetime", lifetime],
            ok=(0, NO_SUCH_OBJECT),
            what=f"reading node attribute {name} of {node}",
        )
        if result.returncode == NO_SUCH_OBJECT:
            if "Could not map name" in result.stderr:
                raise CommandError(result, what=f"reading node attribute {name}: there is no node {node!r}")
            return None
        return result.stdout.strip()

    def set_attribute(self, node: str, name: str, value: str, lifetime: Lifetime = "forever") -> None:
        """Set one of our node attributes (names start with ``rolling-upgrade-``)."""
        self.runner.run(
            [
                "crm_attribute", "--node", names.node_name(node), "--name", names.attribute_name(name),
                f"--update={names.attribute_value(value)}", "--lifetime", lifetime,
            ],
            what=f"setting node attribute {name} of {node}",
        )

    def delete_attribute(self, node: str, name: str, lifetime: Lifetime = "forever") -> None:
        """Remove one of our node attributes (nothing happens when it is not set)."""
        self.runner.run(
            ["crm_attribute", "--node", names.node_name(node), "--name", names.attribute_name(name), "--delete", "--lifetime", lifetime],
            what=f"deleting node attribute {name} of {node}",
        )

    def dc_state(self, dc: str, timeout: float | None = None) -> str:
        """The DC controller's FSA state, e.g. ``S_IDLE`` (``crmadmin -S``)."""
        what = f"crmadmin (state of DC {dc})"
        crmd = ET.fromstring(self._xml(["crmadmin", "--status", names.node_name(dc)], timeout, what)).find("crmd")
        if crmd is None:
            raise ParseError(f"{what} gave no <crmd> element")
        return crmd.get("state", "unknown")

    def settled_problems(self, check: Check | None = None, timeout: float | None = None,
                         now: ClusterState | None = None) -> tuple[ClusterState, list[str]]:
        """The state now and what keeps it from being settled (empty when settled).

        The DC's own state (one more command, the slower one) is asked only when crm_mon shows nothing in
        flight and ``check`` holds: otherwise the poll cannot be settled anyway. A settled state is one
        read *after* the DC answered idle (crm_mon once more, checked again): under load crmadmin can take
        seconds, and a transition that ran meanwhile (a failed start recovered, a resource stopped) is
        over by then but not in the state read before it. ``now``: a state the caller has just read, taken
        as the first crm_mon's."""
        state = now if now is not None else self.state(timeout)
        problems = unsettled(state, check)
        dc = state.summary.dc
        if dc is not None and not problems:
            # A DC that just died is still named until membership catches up, and
            # crmadmin waits for its answer: ask briefly, then look again.
            try:
                dc_state = self.dc_state(dc, min(timeout or self.runner.timeout, DC_QUERY_TIMEOUT))
            except CommandTimeout:
                dc_state = f"no answer within {DC_QUERY_TIMEOUT:g}s"
            if dc_state != "S_IDLE":
                problems.insert(0, f"DC {dc}: {dc_state}, not S_IDLE")
            else:
                state = self.state(timeout)
                problems = unsettled(state, check)
        return state, problems

    def wait_settled(
        self, expect: Mapping[str, str] | Check | None = None, *, deadline: float, interval: float | None = None,
        first: ClusterState | None = None,
    ) -> ClusterState:
        """Wait until the DC is idle, nothing is in flight and ``expect`` holds.

        ``expect`` maps resource/group/clone ids to the node each should run
        on, or is a :data:`Check`. Raises :class:`NotSettled` after
        ``deadline`` seconds, saying what it waited for and what it last saw.

        A poll (one crm_mon; crmadmin and crm_mon again once that one looks
        settled) starts every ``interval`` seconds, counted from the start
        of the previous one: a poll that took longer
        (crmadmin answers late while the DC is busy with a transition) is
        followed at once by the next, not by a pause. By default polls come
        every :data:`SETTLE_POLL` seconds for the first :data:`SETTLE_POLL_FAST_FOR`
        seconds of the wait (a lab move settles in one to two seconds), then
        every :data:`SETTLE_POLL_LATE` seconds. Each poll's commands are bounded
        by the runner's timeout, and never by less than one second. ``first``: a state the caller has just
        read, the first poll's first crm_mon (one crm_mon less; the settled state is always read after the
        DC answered idle).
        """
        check = placement(expect) if isinstance(expect, Mapping) else expect
        started = time.monotonic()
        end = started + deadline
        polled = [started]
        last = ["nothing yet"]
        given = [first]

        def attempt() -> ClusterState | None:
            polled[0] = time.monotonic()
            timeout = round(max(1.0, min(self.runner.timeout, end - polled[0])), 1)
            now, given[0] = given[0], None
            try:
                state, problems = self.settled_problems(check, timeout, now)
            except (CommandError, ParseError, ET.ParseError) as exc:
                problems = [str(exc)]
            last[:] = problems or last
            return None if problems else state

        def pause(_state: object) -> float:
            """Until the next poll is due (from the start of the last one); the last poll comes at the deadline."""
            step = interval if interval is not None else (
                SETTLE_POLL if polled[0] - started < SETTLE_POLL_FAST_FOR else SETTLE_POLL_LATE)
            return max(0.0, min(polled[0] + step, end) - time.monotonic())

        waited_for = "DC idle, no resource starting/stopping/pending" + (", expected placement" if check else "")
        try:
            return Retrying(stop=stop_after_delay(deadline), wait=pause, retry=retry_if_result(lambda s: s is None))(
                attempt)
        except RetryError:
            raise NotSettled(f"cluster not settled after {deadline:g}s (waited for: {waited_for}); last seen: "
                             f"{'; '.join(last)}") from None

    def cli_constraints(self) -> tuple[str, ...]:
        """Ids of constraints left by ``crm_resource --ban/--move`` (``cli-ban-*``, ``cli-prefer-*``)."""
        result = self.runner.run(["cibadmin", "--query", "--scope", "constraints"], what="reading the CIB's constraints")
        root = ET.fromstring(result.stdout)
        return tuple(
            el.get("id", "") for el in root.iter() if el.get("id", "").startswith(("cli-ban-", "cli-prefer-"))
        )

    def verify(self, timeout: float = VERIFY_TIMEOUT) -> list[str]:
        """The errors ``crm_verify --live-check -V`` finds in the live CIB, one per line (empty: none; warnings
        are not errors). Raises :class:`CommandError` when crm_verify could not check it at all."""
        result = self.runner.run(["crm_verify", "--live-check", "-V"], timeout=timeout, ok=(0, CONFIG_INVALID),
                                 what="crm_verify (the live CIB)")
        return verify_errors(result.returncode, result.stderr + result.stdout)

    def preflight(self, state: ClusterState | None = None) -> Preflight:
        """Quorum, nodes, failures, maintenance-mode, stray cli- constraints and fencing, now (``state``: a
        reading just made, instead of a crm_mon)."""
        return Preflight.from_state(state if state is not None else self.state(), self.cli_constraints())

    def predict_standby(self, node: str, standby: bool = True) -> tuple[Move, ...]:
        """The actions Pacemaker would take if ``node`` went into standby now (``standby`` False: came out of it)."""
        return parse_transition_summary(self.simulate_standby(node, standby))

    def simulate_standby(self, node: str, standby: bool = True) -> str:
        """crm_simulate's text output for "``node`` goes into standby" (or, ``standby`` False, comes out of it).

        Works on a copy of the live CIB, read through the runner (so it also works through a prefix) and
        edited in memory: the live cluster is not touched.
        """
        return self.simulate_standbys({node: standby})

    def predict_standbys(self, standby: Mapping[str, bool],
                         prepare: Callable[[ET.Element], None] | None = None) -> tuple[Move, ...]:
        """The actions Pacemaker would take if every node of ``standby`` went into standby (True) or came
        out of it (False) at once now, ``prepare`` first applied to the copy (our preferences)."""
        return parse_transition_summary(self.simulate_standbys(standby, prepare))

    def simulate_standbys(self, standby: Mapping[str, bool], prepare: Callable[[ET.Element], None] | None = None) -> str:
        """crm_simulate's text output for several nodes' standby changed at once, on a copy of the live CIB
        (as :meth:`simulate_standby`); ``prepare`` edits the copy's XML (:mod:`cibcopy`) before it is asked.

        The copy is edited in memory and given to crm_simulate on its standard input: two commands, where a
        copy on disk edited by crm_attribute and cibadmin took one a node and one a write more (each of
        them rewrites the whole copy: 0.4 s at 120 applications)."""
        for node in standby:
            names.node_name(node)
        # The live CIB (status included), as crm_simulate --live-check --save-input reads it, but without
        # a scheduler run of its own: a prediction costs one scheduler run, not two.
        cib = cibcopy.parse(self.runner.run(["cibadmin", "--query"], what="reading the live CIB").stdout)
        for node, on in standby.items():
            cibcopy.set_standby(cib, node, on)
        if prepare is not None:
            prepare(cib)
        # --run: the scheduler's answer (its transition summary) and nothing more. --simulate would also
        # fake every action of the transition and show the status after it, with the same summary: at 120
        # applications (40 moves) that took 13 s of a prediction's 13.1 (crm_simulate --run 0.11 s).
        return self.runner.run(["crm_simulate", "--xml-pipe", "--run"], input=cibcopy.text(cib),
                               timeout=SIMULATE_TIMEOUT, what="crm_simulate (prediction)").stdout

    def votes(self) -> Votes:
        """corosync's votes now (``corosync-quorumtool -s``); :class:`CommandError` or :class:`ParseError`
        when it cannot tell (not installed, another quorum provider)."""
        result = self.runner.run(["corosync-quorumtool", "-s"], ok=(0, 1, 2), what="corosync-quorumtool (votes)")
        return parse_quorumtool(result.stdout)

    def utilization(self) -> Utilization:
        """What the CIB declares of Pacemaker's utilization (nodes, primitives, placement-strategy)."""
        return parse_utilization(self.runner.run(["cibadmin", "--query", "--scope", "configuration"],
                                                 what="reading the CIB's utilization").stdout)

    def _xml(self, argv: list[str], timeout: float | None, what: str) -> str:
        """Run a tool with ``--output-as=xml``; on failure, its <error> lines say why."""
        result = self.runner.call([*argv, "--output-as=xml"], timeout=timeout)
        if result.returncode == 0:
            return result.stdout
        if result.returncode == TIMED_OUT:
            raise CommandTimeout(result, timeout or self.runner.timeout, what)
        if result.missing:
            raise CommandMissing(result)
        try:
            errors = [e.text or "" for e in ET.fromstring(result.stdout).iter("error")]
        except ET.ParseError:
            errors = []
        raise CommandError(replace(result, stderr="; ".join(errors)) if errors else result, what)


def _nodes(nodes: Iterable[str]) -> str:
    listed = sorted(nodes)
    return ",".join(listed) if listed else "nowhere"
