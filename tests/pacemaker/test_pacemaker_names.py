"""Nothing that could change an XPath, XML or argv gets through validation."""

from __future__ import annotations

import pytest

from upgrader.pacemaker import names

HOSTILE = ["", "node1' or '1'='1", 'a"b', "a<b", "a>b", "-rf", "a b", "a/b", "a\nb", "x" * 200, "ä"]


@pytest.mark.parametrize("value", HOSTILE)
def test_node_names_and_run_ids_refuse_hostile_values(value: str) -> None:
    with pytest.raises(names.BadValue):
        names.node_name(value)
    with pytest.raises(names.BadValue):
        names.run_id(value)


def test_good_values_pass_unchanged() -> None:
    assert names.node_name("node-1.example") == "node-1.example"
    assert names.run_id("node1:20261122T0300Z:4242") == "node1:20261122T0300Z:4242"
    assert names.phase("upgrading") == "upgrading"
    assert names.attribute_name("rolling-upgrade-state") == "rolling-upgrade-state"


def test_attribute_names_must_carry_our_prefix() -> None:
    with pytest.raises(names.BadValue, match="must start with 'rolling-upgrade-'"):
        names.attribute_name("standby")


def test_error_names_the_value_and_what_to_do() -> None:
    with pytest.raises(names.BadValue) as err:
        names.node_name("node1']")
    assert str(err.value) == "invalid node name \"node1']\": use letters, digits, '.', '_' or '-' (at most 63)"


@pytest.mark.parametrize("value", ["a'b", 'a"b', "<x>", "a\nb"])
def test_attribute_values_refuse_quotes_brackets_and_newlines(value: str) -> None:
    with pytest.raises(names.BadValue):
        names.attribute_value(value)
