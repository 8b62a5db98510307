"""``rolling-upgrade automatic [CHOICE]``: what upgrades the nodes by themselves, on every node.

``window``: the nightly window is the automatic path and unattended-upgrades' daily run stands down (each
node gets :data:`upgrader.automatic.PATH`); ``unattended-upgrades``: the file is removed, Debian's
20auto-upgrades decides again (the default). No CHOICE: every node's state. The choice is checked on every
node first (each must answer, its settings must load, and for the window it must have a
``Rolling-Upgrade::Windows`` entry): otherwise nothing is changed anywhere. Then it is written on every node,
all or nothing: when a node's write fails, every node it changed is put back (its file there or not, as the
first round found it) and one line names the node and the file. ``--local``: this node only (what the command
runs on each node, through the Remote-Shell), JSON with ``--json``.
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from upgrader import automatic
from upgrader.automatic import AUTOMATIC_UNATTENDED, AUTOMATIC_WINDOW, COMMAND

if TYPE_CHECKING:
    from rich.console import Console

    from upgrader.orchestrator.remote import Nodes
    from upgrader.pacemaker.live import Cluster

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
NODE_TIMEOUT = 60  # one node's 'automatic --local': reads APT's configuration, writes one small file


def local(choice: str | None, as_json: bool) -> int:
    """This node: its state, or ``choice`` written here (refused, nothing changed, when its settings do not
    allow it). Exit 0 done, 1 the file could not be written or the choice does not hold here, 2 refused."""
    from upgrader.config import ConfigError

    doc: dict[str, Any] = {"choice": choice, "changed": False, "error": None, "refused": None}
    try:
        before = automatic.local_state()
    except ConfigError as exc:
        return _local_result(doc | {"refused": f"the settings here cannot be read: {exc}"}, as_json, EXIT_USAGE)
    doc["state"] = before.document()
    if choice is None:
        return _local_result(doc, as_json, EXIT_OK, before.line(), before.problems())
    refused = refusal(choice, before)
    if refused:
        return _local_result(doc | {"refused": refused}, as_json, EXIT_USAGE)
    try:
        doc["changed"] = automatic.write_local(choice)
        after = automatic.local_state()
    except (automatic.AutomaticError, ConfigError) as exc:
        return _local_result(doc | {"error": str(exc)}, as_json, EXIT_ERROR)
    doc["state"] = after.document()
    problems = after.problems()
    if after.choice != choice:  # a later file names the other choice
        problems.insert(0, f"Rolling-Upgrade::Automatic is still {after.choice} here: a file after "
                           f"{automatic.PATH.name} in {automatic.PATH.parent} sets it; remove it there")
    if problems:
        doc["error"] = problems[0]
    return _local_result(doc, as_json, EXIT_ERROR if problems else EXIT_OK, after.line(), problems)


def refusal(choice: str, state: automatic.Local) -> str | None:
    """Why ``choice`` is refused on a node in ``state`` (None: it may be written)."""
    if choice == AUTOMATIC_WINDOW and not state.windows:
        return (f"Rolling-Upgrade::Windows has no entry: with '{COMMAND} {AUTOMATIC_WINDOW}' nothing would "
                "upgrade this node by itself; set Windows first (rolling-upgrade.conf(5)), then choose the window")
    return None


def _local_result(doc: dict[str, Any], as_json: bool, code: int, line: str = "",
                  problems: Sequence[str] = ()) -> int:
    if as_json:
        print(json.dumps(doc))
        return code
    if doc["refused"]:
        print(f"{COMMAND}: refused, nothing changed: {doc['refused']}", file=sys.stderr)
        return code
    if doc["error"] and not problems:
        print(f"{COMMAND}: {doc['error']}", file=sys.stderr)
        return code
    if doc["choice"] is not None:
        print(("changed: " if doc["changed"] else "unchanged: ") + line)
    else:
        print(line)
    for p in problems:
        print(f"problem: {p}")
    return code


def everywhere(cluster: Cluster, choice: str | None, as_json: bool, out: Console) -> int:
    """Every node: its state (no ``choice``), or ``choice`` checked on every node, then written on each."""
    from rich.markup import escape

    from upgrader import config as configuration
    from upgrader.orchestrator.remote import Nodes

    nodes = Nodes(configuration.load(), cluster.local_node())
    names = [n.name for n in cluster.state().nodes]
    seen = _each(nodes, names, None)
    doc: dict[str, Any] = {"choice": choice, "nodes": seen, "refused": None, "error": None, "put_back": {}}
    code = EXIT_OK
    if choice is not None:
        unreached = [f"{n}: {d.get('error')}" for n, d in seen.items() if "state" not in d and not d.get("refused")]
        refused = [f"{n}: {why}" for n, d in seen.items()
                   if (why := d.get("refused") or ("state" in d and refusal(choice, _state(d))))]
        if unreached or refused:
            doc["refused"] = "; ".join([*unreached, *refused])
            code = EXIT_ERROR if unreached else EXIT_USAGE
        else:
            seen = _write(nodes, names, choice, seen, doc)
            failed = doc["error"] or any(d.get("error") or d.get("refused") for d in seen.values())
            code = EXIT_ERROR if failed else EXIT_OK
    if as_json:
        out.file.write(json.dumps(doc, indent=2) + "\n")
        return code
    if doc["refused"]:
        print(f"{COMMAND} {choice}: refused, nothing changed on any node: {doc['refused']}", file=sys.stderr)
        return code
    if doc["error"]:
        print(f"{COMMAND} {choice}: {doc['error']}", file=sys.stderr)
        return code
    for n, d in seen.items():
        out.print(escape(f"{n}: {_describe(d)}"))
    if code != EXIT_OK:
        out.print(escape(f"not every node holds the choice; fix what is said above, then '{COMMAND}"
                         f"{' ' + choice if choice else ''}' again (it changes only what differs)"))
    return code


def _write(nodes: Nodes, names: Sequence[str], choice: str, before: Mapping[str, dict[str, Any]],
           doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``choice`` written on every node, all or nothing: when a node's write fails, every node it changed is
    put back (``doc``'s "put_back"; its "error" the one line that says so). Each node's answer to the write."""
    doc["nodes"] = written = _each(nodes, names, choice)
    if not all(_holds(d, choice) for d in written.values()):
        doc["put_back"] = _put_back(nodes, before, written)
        doc["error"] = _undone(choice, written, doc["put_back"])
    return written


def _holds(doc: dict[str, Any], choice: str) -> bool:
    """Whether a node's answer shows its file as ``choice`` makes it: there for the window, gone otherwise."""
    return ("state" in doc and not doc.get("refused")
            and (doc["state"]["file"] is not None) == (choice == AUTOMATIC_WINDOW))


def _put_back(nodes: Nodes, before: Mapping[str, dict[str, Any]],
              written: Mapping[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every node the write may have changed (it says so, or did not answer) made to say again what
    ``before`` found: the window where its file was there, unattended-upgrades where it was not. Each
    node's answer, with the choice it was asked."""
    back = {n: AUTOMATIC_WINDOW if before[n]["state"]["file"] else AUTOMATIC_UNATTENDED
            for n, d in written.items() if d.get("changed") or "state" not in d}
    return {n: d | {"choice": back[n]} for n, d in _on_each(nodes, back).items()}


def _undone(choice: str, written: Mapping[str, dict[str, Any]], back: Mapping[str, dict[str, Any]]) -> str:
    """The one line of a write that failed on some node: where, why, and whether the others were put back."""
    failed = "; ".join(f"{n}: {_why(d)}" for n, d in written.items() if not _holds(d, choice))
    stuck = "; ".join(f"{n}: {_why(d)}" for n, d in back.items() if not _holds(d, d["choice"]))
    if stuck:
        return (f"{automatic.PATH} not written on every node ({failed}) and not put back on every node it "
                f"changed ({stuck}): fix it there, then '{COMMAND} {choice}' again")
    again = f" (put back on {', '.join(back)})" if back else ""
    return f"{automatic.PATH} not written on every node, nothing changed on any node{again}: {failed}"


def _why(doc: dict[str, Any]) -> str:
    return doc.get("refused") or doc.get("error") or "its file is not as written"


def _each(nodes: Nodes, names: Sequence[str], choice: str | None) -> dict[str, dict[str, Any]]:
    """``automatic --local --json [CHOICE]`` on every node at once; per node its document (never raises)."""
    return _on_each(nodes, dict.fromkeys(names, choice))


def _on_each(nodes: Nodes, choices: Mapping[str, str | None]) -> dict[str, dict[str, Any]]:
    """:func:`_each` with each node's own CHOICE (``choices``: node -> CHOICE)."""
    names = list(choices)
    if not names:
        return {}
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        return dict(zip(names, pool.map(lambda n: _ask(nodes, n, choices[n]), names)))


def _ask(nodes: Nodes, node: str, choice: str | None) -> dict[str, Any]:
    """``automatic --local --json [CHOICE]`` on ``node``: its document (never raises)."""
    argv = [nodes.tool, "automatic", "--local", "--json", *([choice] if choice else [])]
    try:
        result = nodes.runner(node, timeout=NODE_TIMEOUT).call(argv)
    except Exception as exc:  # noqa: BLE001 - one node's trouble is its line
        return {"error": f"not reached ({type(exc).__name__}: {exc})"}
    try:
        found = json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": f"no answer ({result.last_words})"}
    return found if isinstance(found, dict) else {"error": "no answer (not a JSON object)"}


def _state(doc: dict[str, Any]) -> automatic.Local:
    s = doc["state"]
    return automatic.Local(choice=s["choice"], periodic=s["periodic"], file=s["file"] is not None,
                           windows=s["windows"], path=s["file"] or str(automatic.PATH))


def _describe(doc: dict[str, Any]) -> str:
    if doc.get("refused"):
        return f"refused: {doc['refused']}"
    if "state" not in doc:
        return f"error: {doc.get('error')}"
    state = doc["state"]
    choice = state["choice"]
    runs = "runs daily" if state["unattended_upgrades_runs"] else "stands down"
    text = (f"{choice}; unattended-upgrades' daily run {runs} ({automatic.PERIODIC} "
            f"{json.dumps(state['periodic']) if state['periodic'] else 'unset'}); {state['windows']} window(s)")
    if doc.get("choice") is not None:
        text = ("changed: " if doc.get("changed") else "unchanged: ") + text
    problems = state.get("problems") or []
    if doc.get("error") and doc["error"] not in problems:
        problems = [doc["error"], *problems]
    return text + "".join(f"; problem: {p}" for p in problems)


def status_lines() -> list[str]:
    """``status`` and ``plan``: this node's automatic path and what is wrong with it (never raises)."""
    from upgrader.config import ConfigError

    try:
        state = automatic.local_state()
    except ConfigError as exc:
        return [f"automatic upgrades: the settings here cannot be read ({exc})"]
    except Exception as exc:  # noqa: BLE001 - status shows the rest
        return [f"automatic upgrades: unknown ({type(exc).__name__}: {exc})"]
    return [state.line(), *(f"problem: {p}" for p in state.problems())]


def status_document() -> dict[str, Any] | None:
    """``status --json``'s "automatic": this node's state (None when its settings cannot be read)."""
    try:
        return automatic.local_state().document()
    except Exception:  # noqa: BLE001 - status shows the rest
        return None
