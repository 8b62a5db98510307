"""Level 2: an lxc container is RUNNING and its check command succeeds inside it.

The states of every container on a node come from one ``lxc-ls`` a round,
shared by the checks of that node (:func:`node_states`): at a hundred
containers, one lxc-info and one remote shell each would saturate the node.

Commands go through the caller's :class:`~upgrader.runner.Runner` for the node
where the container runs (locally, over ssh, or ``upgrader-lab exec NODE --``).
"""

from __future__ import annotations

import shlex
from time import monotonic
from typing import Callable, Mapping

from upgrader.runner import CommandError, CommandMissing, Result, Runner
from upgrader.health.errors import CheckFailed
from upgrader.health.spec import ContainerSpec


def lxc_state(output: str) -> str:
    """The state in ``lxc-info -s`` output (``State:  RUNNING``), or ``""``."""
    for line in output.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "State":
            return value.strip()
    return ""


def lxc_states(output: str) -> dict[str, str]:
    """Each container's state in ``lxc-ls --fancy --fancy-format NAME,STATE`` output (a header line first)."""
    rows = [line.split() for line in output.splitlines()[1:]]
    return {row[0]: row[1] for row in rows if len(row) >= 2}


def node_states(runner: Runner, timeout: float) -> dict[str, str]:
    """Every container's state on the runner's node, in one command (``lxc-ls -f -F NAME,STATE``)."""
    return lxc_states(_run(runner, ["lxc-ls", "--fancy", "--fancy-format", "NAME,STATE"], timeout,
                           "lxc-ls --fancy (the containers' states)").stdout)


def check_container(runner: Runner, container: ContainerSpec, timeout: float,
                    states: Callable[[float], Mapping[str, str]] | None = None) -> None:
    """One attempt within ``timeout`` seconds; raise CheckFailed. ``states``: a reading of every container's
    state on that node, shared with the other checks there (one lxc-ls a round, or the patched scan's);
    else lxc-info for this one."""
    deadline = monotonic() + timeout
    name = container.name
    if states is not None:
        state = states(timeout).get(name, "")
    else:
        state = lxc_state(_run(runner, ["lxc-info", "-n", name, "-s"], timeout, f"lxc-info -n {name} -s").stdout)
    if state != "RUNNING":
        raise CheckFailed(f"container {name} is {state or 'in no state lxc-info reports'}")
    if container.command:
        left = deadline - monotonic()
        if left <= 0:
            raise CheckFailed(f"no time left to run the check command in {name}")
        _run(runner, ["lxc-attach", "-n", name, "--", *container.command], left,
             f"check command {shlex.join(container.command)!r} in container {name}")


def _run(runner: Runner, argv: list[str], timeout: float, what: str) -> Result:
    try:
        return runner.run(argv, timeout=timeout, what=what)
    except CommandMissing as exc:
        raise CheckFailed(str(exc), final=True) from None
    except CommandError as exc:
        raise CheckFailed(str(exc)) from None
