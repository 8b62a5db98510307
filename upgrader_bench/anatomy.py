"""The anatomy of a bare standby move: where an application's outage goes, from the cluster's own timings.

Issue 20 item 4. A bare move (``crm_attribute --name standby --update on``, nothing of the tool) of each
node in turn; afterwards every node's Pacemaker detail log (millisecond timestamps; the lab's nodes share
the host's clock) gives, per action of the move's transition: when the DC initiated it, when the executing
node's controller reported its result, and the agent's own execution time (execd's ``log_finished``).
With the prober's view of each moved application (its last answer before the outage, its first after),
each application's outage splits into:

- **the DC's reaction**: the standby written, until the DC initiated the application's first action (the
  scheduler, the transition's start, and any wait behind other applications' actions);
- **the agents**: each stop and start's execution time, in the group's order (container stop, IP stop, IP
  start, container start in the lab);
- **the cluster's hops**: the rest of the span from the first action initiated to the last result, the DC
  dispatching each action to a node and hearing back before it initiates the next (a group is serial);
- **serving**: the container's start reported done until the application answers.

Against the floor: the same container's own ``lxc-stop`` + ``lxc-start`` until it serves
(:mod:`upgrader_bench.floor`).

    python -m upgrader_bench --anatomy-only [--anatomy-apps N] [--anatomy-reps N] [--out FILE]

:func:`parse_log`, :func:`actions` and :func:`application` are pure (tested on logs captured from the lab
by ``tests/bench/capture_anatomy.py``).
"""

from __future__ import annotations

import calendar
import json
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

LINE = re.compile(r"^(?P<stamp>[A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2}\.\d{3}) (?P<node>\S+) "
                  r"(?P<daemon>pacemaker-[a-z]+)\s*\[\s*\d+\] \((?P<function>[^)]*)\)\s+(?P<level>\w+): (?P<text>.*)$")
INITIATING = re.compile(r"^Initiating (?P<op>start|stop) operation (?P<key>\S+)_(?P=op)_0 (?:locally )?on (?P<node>\S+)")
RESULT = re.compile(r"^Result of (?P<op>start|stop) operation for (?P<rsc>\S+) on (?P<node>\S+): (?P<result>[^|]*?)\s*(\||$)")
FINISHED = re.compile(r"^(?P<rsc>\S+) (?P<op>start|stop) \(call \d+, PID \d+\) exited with status (?P<rc>\d+) "
                      r"\(execution time (?P<exec>[\d.]+)(?P<unit>ms|s)")
CALCULATED = re.compile(r"^Calculated transition (?P<n>\d+)")
COMPLETE = re.compile(r"^Transition (?P<n>\d+) \(Complete=.*\): Complete")
IDLE = "State transition S_TRANSITION_ENGINE -> S_IDLE"


@dataclass(frozen=True)
class LogLine:
    at: float  # seconds since the epoch
    node: str
    daemon: str
    text: str


def parse_log(text: str, year: int, utc_offset: float) -> list[LogLine]:
    """The lines of a Pacemaker detail log, other lines skipped. Its stamps are the nodes' local time with
    no year and no zone: ``year`` and ``utc_offset`` (seconds east of UTC, ``tm_gmtoff``) are the nodes'."""
    found = []
    for raw in text.splitlines():
        m = LINE.match(raw)
        if m is None:
            continue
        whole, millis = m["stamp"].rsplit(".", 1)
        moment = calendar.timegm(time.strptime(f"{year} {whole}", "%Y %b %d %H:%M:%S")) - utc_offset \
            + int(millis) / 1000
        found.append(LogLine(moment, m["node"], m["daemon"], m["text"]))
    return found


@dataclass(frozen=True)
class Action:
    """One stop or start of a move's transition."""

    resource: str
    op: str
    node: str
    initiated: float
    done: float | None  # its result reported by the executing node's controller
    exec_s: float | None  # the agent's own execution time (execd)
    result: str | None


@dataclass(frozen=True)
class Move:
    standby_at: float
    actions: tuple[Action, ...]
    calculated_at: float | None  # the DC's scheduler computed the transition holding the first action
    complete_at: float | None  # that transition's end (the last one ending after the last action)
    idle_at: float | None  # the DC back in S_IDLE after it

    @property
    def span_s(self) -> float | None:
        """The first action initiated to the last result."""
        done = [a.done for a in self.actions if a.done is not None]
        return max(done) - min(a.initiated for a in self.actions) if done else None


def actions(lines: Iterable[LogLine], standby_at: float, until: float) -> Move:
    """The stops and starts the DC initiated between ``standby_at`` and ``until``, each with its result and
    execution time (every node's log merged: ``lines`` from all of them)."""
    ordered = sorted(lines, key=lambda line: line.at)
    window = [line for line in ordered if standby_at <= line.at <= until]
    found = []
    for i, line in enumerate(window):
        m = INITIATING.match(line.text) if line.daemon == "pacemaker-controld" else None
        if m is None:
            continue
        rsc, op, node = m["key"], m["op"], m["node"]
        done = result = exec_s = None
        for later in window[i + 1:]:
            if later.node != node:
                continue
            r = RESULT.match(later.text) if later.daemon == "pacemaker-controld" else None
            if r and (r["rsc"], r["op"]) == (rsc, op) and done is None:
                done, result = later.at, r["result"]
            f = FINISHED.match(later.text) if later.daemon == "pacemaker-execd" else None
            if f and (f["rsc"], f["op"]) == (rsc, op) and exec_s is None:
                exec_s = float(f["exec"]) / (1000 if f["unit"] == "ms" else 1)
            if done is not None and exec_s is not None:
                break
        found.append(Action(rsc, op, node, line.at, done, exec_s, result))
    first = min((a.initiated for a in found), default=None)
    last = max((a.done for a in found if a.done is not None), default=None)
    calculated = complete = idle = None
    for line in window:
        if first is not None and line.at <= first and CALCULATED.match(line.text):
            calculated = line.at
        if last is not None and complete is None and line.at >= last and COMPLETE.match(line.text):
            complete = line.at
        if complete is not None and idle is None and line.at >= complete and IDLE in line.text:
            idle = line.at
    return Move(standby_at, tuple(found), calculated, complete, idle)


def application(move: Move, members: Sequence[tuple[str, str]], outage: tuple[float, float] | None) -> dict[str, Any]:
    """One moved application's split (see the module's docstring). ``members``: its primitives in the group's
    order with their agents (``ocf:heartbeat:lxc``); ``outage``: the prober's last answer before the move's
    outage and its first answer after (None: none seen)."""
    ids = {rid for rid, _ in members}
    agent = dict(members)
    mine = [a for a in move.actions if a.resource in ids]
    if not mine or any(a.done is None or a.exec_s is None for a in mine):
        missing = sorted(f"{a.resource} {a.op}" for a in mine if a.done is None or a.exec_s is None)
        raise ValueError(f"the log does not show every action of {sorted(ids)} ended: "
                         + (", ".join(missing) if missing else "no action initiated"))
    first = min(a.initiated for a in mine)
    last = max(a.done for a in mine if a.done is not None)
    agents: dict[str, float] = {}
    for a in mine:  # two members of one kind (two IPs) add up
        kind = f"{a.op} {agent[a.resource].rsplit(':', 1)[-1]}"
        agents[kind] = agents.get(kind, 0.0) + (a.exec_s or 0.0)
    doc: dict[str, Any] = {
        "dc_reaction_s": first - move.standby_at,
        "agents": agents,
        "agents_s": sum(agents.values()),
        "cluster_hops_s": (last - first) - sum(agents.values()),
        "actions_span_s": last - first,
        "actions": len(mine),
    }
    if outage is not None:
        down, up = outage
        doc.update(outage_s=up - down, serving_s=up - last, down_after_first_action_s=down - first)
    return doc


def longest_outage(samples: Sequence[tuple[float, bool]], start: float, end: float) -> tuple[float, float] | None:
    """The longest (last answer, next answer) span with failed probes between, in [start, end] (the product's
    rule, :func:`upgrader.health.outage.outage_spans`, as the prober counts: none before a first answer)."""
    from upgrader.health.outage import outage_spans

    return max(outage_spans(samples, start, end, from_start=False), key=lambda s: s[1] - s[0], default=None)


def summary(apps: Sequence[Mapping[str, Any]], moves: Sequence[Move]) -> dict[str, Any]:
    """Medians (min-max, n) of every figure over the applications of every move measured."""
    def spread(values: Sequence[float]) -> dict[str, float]:
        return {"median": round(statistics.median(values), 4), "min": round(min(values), 4),
                "max": round(max(values), 4), "n": len(values)}

    found: dict[str, Any] = {}
    for key in ("outage_s", "dc_reaction_s", "agents_s", "cluster_hops_s", "serving_s", "actions_span_s",
                "down_after_first_action_s"):
        values = [a[key] for a in apps if key in a]
        if values:
            found[key] = spread(values)
    for key in sorted({k for a in apps for k in a["agents"]}):
        found[f"agent {key} s"] = spread([a["agents"][key] for a in apps if key in a["agents"]])
    schedule = [m.calculated_at - m.standby_at for m in moves if m.calculated_at is not None]
    tail = [m.idle_at - m.complete_at for m in moves if m.idle_at is not None and m.complete_at is not None]
    if schedule:
        found["standby_to_transition_s"] = spread(schedule)
    spans = [m.span_s for m in moves if m.span_s]
    if spans:
        found["move_actions_span_s"] = spread(spans)
        # how many applications' action chains ran at once, on average over a move
        found["parallel_applications"] = spread([
            sum(a["actions_span_s"] for a in apps if a.get("move") == i) / m.span_s
            for i, m in enumerate(moves) if m.span_s and any(a.get("move") == i for a in apps)])
    if tail:
        found["transition_end_to_idle_s"] = spread(tail)
    return found


def measure(lab: Any, reps: int, say: Callable[[str], None], keep: Path | None = None) -> dict[str, Any]:
    """``reps`` bare moves of every node of ``lab`` (each from the home placement), split. ``keep``: a
    directory the first repetition's raw material goes into, a file per move (every node's log lines of the
    move, innode's answer, the moved applications' probes on the epoch clock): what the unit tests read."""
    from upgrader_bench import floor
    from upgrader_bench.prober import Prober
    from upgrader_bench.scenario import TAIL, VIA, home, innode
    from upgrader_lab import node as lab_node

    log = "/var/log/pacemaker/pacemaker.log"
    apps: list[dict[str, Any]] = []
    moves: list[Move] = []
    offset = time.time() - time.monotonic()
    say("physical floor: lxc-start/lxc-stop cycles")
    found_floor = floor.measure(lab, lab.node_names[-1], 5)
    with Prober(lab) as prober:
        for rep in range(reps):
            for n in lab.node_names:
                say(f"repetition {rep + 1}/{reps}: a bare standby move of {n}, split")
                home(lab)
                sizes = {m: int(lab_node.runner(lab, m).run(["stat", "-c", "%s", log], what="the log's size").stdout)
                         for m in lab.node_names}
                mine = [a for i, a in enumerate(lab.app_names) if lab.node_names[i % lab.nodes] == n]
                with prober.moving(mine):
                    moved = innode(lab, VIA, "move", n, "on", "--members")
                    time.sleep(TAIL)
                end = time.time()
                year, utc_offset = time.localtime().tm_year, time.localtime().tm_gmtoff  # the nodes' are the host's
                texts = {m: lab_node.runner(lab, m).run(["tail", "-c", f"+{sizes[m] + 1}", log],
                                                        what="the log").stdout for m in lab.node_names}
                lines = [line for m in lab.node_names for line in parse_log(texts[m], year, utc_offset)]
                move = actions(lines, moved["wall_start"], end)
                moves.append(move)
                samples = prober.samples
                if keep is not None and rep == 0:
                    keep.mkdir(parents=True, exist_ok=True)
                    (keep / f"move-{n}.json").write_text(json.dumps({
                        "log": [raw for m in lab.node_names for raw in texts[m].splitlines()
                                if (t := parse_log(raw, year, utc_offset)) and t[0].at >= moved["wall_start"] - 1],
                        "year": year, "utc_offset": utc_offset, "end": end, "moved": moved,
                        "samples": {a: [(t + offset, ok) for t, ok in samples.get(a, [])
                                        if moved["wall_start"] - 2 <= t + offset <= end] for a in moved["moved"]},
                    }, indent=0) + "\n")
                for app in [a for a in moved["moved"] if a in lab.app_names]:  # not a fencing device
                    span = longest_outage(samples.get(app, []), moved["wall_start"] - offset, end - offset)
                    wall = (span[0] + offset, span[1] + offset) if span else None
                    apps.append({"app": app, "node": n, "move": len(moves) - 1,
                                 **application(move, moved["members"][app], wall)})
                innode(lab, VIA, "move", n, "off")
    return {"nodes": lab.nodes, "apps": lab.apps, "reps": reps, "applications": apps,
            "floor_lxc_stop_plus_start_s": statistics.median(
                [a + b for a, b in zip(found_floor["stop"], found_floor["start"])]),
            "summary": summary(apps, moves)}


ROWS = (  # (figure key, what it is), in the order of a move
    ("standby_to_transition_s", "standby written -> the DC's transition calculated"),
    ("dc_reaction_s", "standby written -> the application's first action initiated"),
    ("agent stop lxc s", "agent: container stop (ocf:heartbeat:lxc)"),
    ("agent stop IPaddr2 s", "agent: IP stop (ocf:heartbeat:IPaddr2)"),
    ("agent start IPaddr2 s", "agent: IP start"),
    ("agent start lxc s", "agent: container start"),
    ("agents_s", "the agents together"),
    ("cluster_hops_s", "the cluster's hops between them (DC -> node -> DC, each action)"),
    ("serving_s", "container start done -> the application answers"),
    ("down_after_first_action_s", "its first action initiated -> its last answer before the outage"),
    ("outage_s", "the outage the prober saw (20 ms probes)"),
    ("transition_end_to_idle_s", "the transition complete -> the DC idle"),
    ("move_actions_span_s", "the whole move: its first action initiated -> its last result"),
    ("parallel_applications", "applications moving at once (their action spans over the move's)"),
)


def rows(found: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(what, 'median (min-max)') for the table, the floor last."""
    s = found["summary"]
    out = [(what, f"{s[k]['median']:.3f} ({s[k]['min']:.3f}-{s[k]['max']:.3f})") for k, what in ROWS if k in s]
    out.append(("floor: the container's own lxc-stop + lxc-start until it serves",
                f"{found['floor_lxc_stop_plus_start_s']:.3f}"))
    return out
