"""Nodes.apply when the remote shell gives no result: real processes stand in for ssh."""

from __future__ import annotations

import pytest

from upgrader.config import Config
from upgrader.orchestrator.remote import Nodes


def nodes_with_shell(*shell: str) -> Nodes:
    return Nodes(Config(remote_shell=(*shell, "{node}")), local="node1", tool="/nonexistent/rolling-upgrade")


def test_a_dropped_remote_shell_says_contact_was_lost_and_dpkg_may_still_run() -> None:
    events: list[dict] = []
    result = nodes_with_shell("sh", "-c", "echo 'Connection to node2 closed by remote host.' >&2; exit 255").apply(
        "node2", "20261122T000000-node1-abcdef", events.append)
    assert not result.ok and result.touched and events == []
    assert result.error == ("lost contact with node2 during its upgrade (the remote shell ended: Connection to node2 "
                            "closed by remote host.); dpkg may still be running there")


def test_a_remote_shell_that_never_connected_leaves_the_node_untouched() -> None:
    said = "ssh: connect to host node2 port 22: Connection timed out"
    result = nodes_with_shell("sh", "-c", f"echo '{said}' >&2; exit 255").apply(
        "node2", "20261122T000000-node1-abcdef", lambda e: None)
    assert not result.ok and not result.touched
    assert result.error == f"could not reach node2 to upgrade it ({said}); nothing ran there"


@pytest.mark.parametrize("code", [1, 3])
def test_any_other_end_without_a_result_is_said_as_such(code: int) -> None:
    result = nodes_with_shell("sh", "-c", f"echo 'apply crashed' >&2; exit {code}").apply(
        "node2", "20261122T000000-node1-abcdef", lambda e: None)
    assert not result.ok and result.touched
    assert result.error == "the upgrade on node2 ended without a result: apply crashed"
