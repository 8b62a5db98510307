"""A node's cluster stack is started again first, whatever else fails around the upgrade (a heartbeat, a
history line): the stack is never left stopped."""

from __future__ import annotations

import pytest

from tests.helpers import AheadNoted
from upgrader.config import Config
from upgrader.orchestrator.restarts import Restarts
from upgrader.runner import Result


class Shell:
    def __init__(self) -> None:
        self.sent: list[list[str]] = []

    def call(self, argv, **_: object) -> Result:
        self.sent.append(list(argv))
        return Result(tuple(argv), 0, "", "", 0.1)


class FakeNodes(AheadNoted):
    local, tool = "node1", "/usr/sbin/rolling-upgrade"

    def __init__(self) -> None:
        self.shell = Shell()

    def runner(self, node: str, timeout: float = 60) -> Shell:
        return self.shell


def test_a_failing_heartbeat_after_the_upgrade_still_starts_the_stack_first() -> None:
    nodes = FakeNodes()

    def phase(node: str | None, name: str) -> None:
        if name == "stack-start":
            raise OSError(28, "No space left on device")

    restarts = Restarts(cluster=None, nodes=nodes, config=Config(), run_id="20261201T000000-node1-abcdef",  # type: ignore[arg-type]
                        phase=phase, say=lambda *a: None)
    restarts.wait_rejoined = lambda node: None  # type: ignore[method-assign]
    with pytest.raises(OSError, match="No space left"):
        with restarts.stack_stopped("node2"):
            pass
    actions = [argv[2] for argv in nodes.shell.sent]
    assert actions == ["stop", "start"]
