"""The run's package set: one version per package from every node's plan, its digest, where it is kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from upgrader.packages import pkgset
from upgrader.packages.pkgset import PackageSet, Pinned, SetError, differences, from_plans, held_back
from upgrader.packages.plan import Change


def change(package: str, candidate: str | None, installed: str | None = "1") -> Change:
    return Change(package, installed, candidate)


def test_the_set_takes_the_newest_candidate_and_defers_a_node_whose_mirror_lags() -> None:
    plans = {
        "node1": [change("demo-app", "2"), change("libssl3", "3.0.15-1~deb12u1", "3.0.11-1~deb12u2")],
        "node2": [change("demo-app", "10")],  # 10 > 2 as Debian compares versions, not as strings do
        "node3": [change("demo-app", "10"), change("old-thing", None)],  # a removal is not pinned
    }
    frozen, lagging = from_plans(plans)
    assert frozen.versions == {"demo-app": "10", "libssl3": "3.0.15-1~deb12u1"}
    assert frozen.removals == ("old-thing",)  # but named: no node may remove anything else
    assert list(lagging) == ["node1"]
    assert lagging["node1"].startswith("its candidates are older than the run's set: demo-app 2 (the set has 10)")
    assert "apt-get update" in lagging["node1"]


def test_every_node_agreeing_defers_nobody_and_an_empty_plan_gives_an_empty_set() -> None:
    frozen, lagging = from_plans({"node1": [change("zlib1g", "2")], "node2": [change("zlib1g", "2")], "node3": []})
    assert frozen.versions == {"zlib1g": "2"} and lagging == {}
    empty, none = from_plans({"node1": []})
    assert not empty and len(empty) == 0 and none == {}


def test_the_digest_names_the_versions_only_and_not_their_order() -> None:
    one = PackageSet((Pinned("libbb", "2", "Debian bookworm"), Pinned("libaa", "1")))
    two = PackageSet((Pinned("libaa", "1", "elsewhere"), Pinned("libbb", "2")))
    assert one.digest == two.digest and len(one.digest) == 16
    assert PackageSet((Pinned("libaa", "1"), Pinned("libbb", "3"))).digest != one.digest
    assert one.summary() == f"2 packages (set {one.digest})"


def test_removals_are_part_of_the_digest_and_a_set_without_them_keeps_its_old_digest() -> None:
    pinned = (Pinned("demo-app", "2"),)
    assert PackageSet(pinned, ("old-thing",)).digest != PackageSet(pinned).digest
    assert PackageSet(pinned, ("libbb", "libaa", "libaa")).removals == ("libaa", "libbb")
    old = {"digest": PackageSet(pinned).digest, "packages": [{"package": "demo-app", "version": "2"}]}
    assert PackageSet.from_document(old) == PackageSet(pinned)  # a set kept before removals were named
    with pytest.raises(SetError, match="malformed package name or version: '-x'"):
        PackageSet(pinned, ("-x",))


def test_a_document_round_trips_and_a_tampered_one_is_refused() -> None:
    frozen = PackageSet((Pinned("demo-app", "2", "upgrader-lab lab"), Pinned("libc6", "2.36-9+deb12u9")), ("old",))
    doc = json.loads(json.dumps(frozen.document()))
    assert PackageSet.from_document(doc) == frozen
    doc["packages"][0]["version"] = "3"
    with pytest.raises(SetError, match="does not match its packages"):
        PackageSet.from_document(doc)
    with pytest.raises(SetError, match="malformed package name or version: '-oops'"):
        PackageSet.from_document({"digest": "0" * 16, "packages": [{"package": "-oops", "version": "1"}]})
    with pytest.raises(SetError, match="malformed package name or version: 'demo-app'"):
        PackageSet((Pinned("demo-app", "1\n"),))  # a trailing newline is no version
    with pytest.raises(SetError, match="without its packages or digest"):
        PackageSet.from_document({"packages": "nope"})


def test_differences_name_what_is_not_the_set_and_held_back_what_the_resolver_keeps() -> None:
    frozen = PackageSet((Pinned("demo-app", "2"), Pinned("libfoo", "5")), ("gone",))
    assert differences(frozen, [change("demo-app", "2"), change("gone", None)]) == []
    assert differences(frozen, [change("demo-app", "2"), change("pacemaker", None)]) == [
        "pacemaker would be removed, which no node's plan showed"]
    found = differences(frozen, [change("demo-app", "3"), change("extra", "9"), change("libfoo", "4", "5")])
    assert found == ["demo-app: 3 instead of the set's 2", "extra 9 is not in the run's set",
                     "libfoo would go down from 5 to 4"]
    assert held_back(frozen, [change("demo-app", "2")], {"demo-app": "1", "libfoo": "4"}) == ["libfoo 4 (the set has 5)"]
    assert held_back(frozen, [], {"libfoo": "5"}) == []  # already at the set's version (a resumed node)


def test_a_set_is_kept_under_its_digest_and_read_back(tmp_path: Path) -> None:
    frozen = PackageSet((Pinned("demo-app", "2"),))
    path = pkgset.save(frozen, tmp_path / "sets")
    assert path.name == f"{frozen.digest}.json" and path.stat().st_mode & 0o777 == 0o600
    assert pkgset.load(frozen.digest, tmp_path / "sets") == frozen
    with pytest.raises(SetError, match="is not on this node"):
        pkgset.load("0123456789abcdef", tmp_path / "sets")
    with pytest.raises(SetError, match="is not a package set's digest"):
        pkgset.load("../../etc/passwd", tmp_path / "sets")
    other = PackageSet((Pinned("demo-app", "3"),))
    (tmp_path / "sets" / f"{frozen.digest}.json").write_text(json.dumps(other.document()))
    with pytest.raises(SetError, match=f"holds set {other.digest}, not {frozen.digest}"):
        pkgset.load(frozen.digest, tmp_path / "sets")


def test_only_the_newest_sets_are_kept(tmp_path: Path) -> None:
    for i in range(pkgset.KEEP_SETS + 3):
        pkgset.save(PackageSet((Pinned("demo-app", str(i + 1)),)), tmp_path)
    assert len(list(tmp_path.glob("*.json"))) == pkgset.KEEP_SETS
