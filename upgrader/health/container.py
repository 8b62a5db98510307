"""Level 2: an lxc container is RUNNING and its check command succeeds inside it.

Commands go through the caller's :class:`~upgrader.runner.Runner` for the node
where the container runs (locally, over ssh, or ``upgrader-lab exec NODE --``).
"""

from __future__ import annotations

import shlex
from time import monotonic

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


def check_container(runner: Runner, container: ContainerSpec, timeout: float) -> None:
    """One attempt within ``timeout`` seconds; raise CheckFailed."""
    deadline = monotonic() + timeout
    name = container.name
    result = _run(runner, ["lxc-info", "-n", name, "-s"], timeout, f"lxc-info -n {name} -s")
    state = lxc_state(result.stdout)
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
