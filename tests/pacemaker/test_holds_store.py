"""The holds' cluster-wide record with Pacemaker's real cibadmin on copies of captured CIBs (CIB_file), and
the exit codes a live CIB can answer in between (108, 105) replayed by a fake runner."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from typing import Callable

import pytest

from upgrader.pacemaker import holds
from upgrader.pacemaker.holds import Hold, HoldError
from upgrader.pacemaker.live import Cluster
from upgrader.runner import ALREADY_EXISTS, NO_SUCH_OBJECT, CommandError, Result, Runner

Offline = Callable[[str], Cluster]
RUN = "20261201T020000-node1-abcdef"
SINCE = "2026-12-01T02:10:00Z"
DEMO = Hold("demo-app", "3", RUN, "node2", SINCE)
LIBSTDCXX = Hold("libstdc++6", "12.2.0-14+deb12u1", RUN, "node2", SINCE)
EPOCH = Hold("libfoo1:i386", "1:2.0~rc1-1", "apt-4242-1795352739", "node3", SINCE)


def crm_config(cluster: Cluster) -> ET.Element:
    return ET.fromstring(cluster.runner.run(["cibadmin", "--query", "--scope", "crm_config"]).stdout)


def test_add_read_remove_on_a_captured_cib(offline: Offline) -> None:
    cluster = offline("all-online")
    assert holds.read(cluster) == []
    assert holds.add(cluster, [DEMO, LIBSTDCXX]) == [DEMO, LIBSTDCXX]
    assert holds.read(cluster) == [DEMO, LIBSTDCXX]
    assert holds.add(cluster, [EPOCH, DEMO]) == [EPOCH]  # the set exists (108): added to it
    assert holds.read(cluster) == [DEMO, EPOCH, LIBSTDCXX]
    assert holds.remove(cluster, ["libstdc++6", "not-held"]) == [LIBSTDCXX]
    assert holds.remove(cluster, ["libstdc++6"]) == []  # idempotent
    assert holds.remove_holds(cluster, [EPOCH, DEMO]) == [DEMO, EPOCH]
    assert holds.read(cluster) == []
    assert [s.get("id") for s in crm_config(cluster)] == ["cib-bootstrap-options"]  # the set went with its last


def test_the_format_in_the_cib(offline: Offline) -> None:
    cluster = offline("all-online")
    holds.add(cluster, [DEMO, LIBSTDCXX, EPOCH])
    ours = crm_config(cluster).find(f"cluster_property_set[@id='{holds.HOLDS_ID}']")
    assert ours is not None
    assert [(nv.get("id"), nv.get("value")) for nv in ours] == [
        ("rolling-upgrade-hold-demo-app_v3", f"3 {RUN} node2 {SINCE}"),
        ("rolling-upgrade-hold-libfoo1_ci386_v1_c2.0_trc1-1", f"1:2.0~rc1-1 apt-4242-1795352739 node3 {SINCE}"),
        ("rolling-upgrade-hold-libstdc_p_p6_v12.2.0-14_pdeb12u1", f"12.2.0-14+deb12u1 {RUN} node2 {SINCE}")]
    assert all(nv.get("name") == nv.get("id") for nv in ours)  # a cluster option of ours: never a real one
    configuration = cluster.runner.run(["cibadmin", "--query", "--scope", "configuration"]).stdout
    ids = Counter(el.get("id") for el in ET.fromstring(configuration).iter() if el.get("id"))
    assert all(n == 1 for n in ids.values())


def test_the_raw_names_would_break_the_cib_s_schema_and_the_escapes_reverse_exactly(offline: Offline) -> None:
    cluster = offline("all-online")
    raw = '<cluster_property_set id="x"><nvpair id="hold-libstdc++6:i386" name="n" value="v"/></cluster_property_set>'
    with pytest.raises(CommandError, match="schema"):  # why the ids are escaped: '+' and ':' are no XML id
        cluster.runner.run(["cibadmin", "--create", "--scope", "crm_config", f"--xml-text={raw}"])
    for package, version in [("libstdc++6:i386", "1:12.2.0-14+deb12u1~bpo11+1"), ("g++", "4:12.2.0-3"),
                             ("a.b-c", "0~~a")]:
        assert holds.parse_key(holds.key(package, version)) == (package, version)


def test_an_entry_that_is_not_a_hold_of_ours_is_refused_in_one_line(offline: Offline) -> None:
    cluster = offline("all-online")
    holds.add(cluster, [DEMO])
    hostile = "rolling-upgrade-hold-x' or '1'='1_v1"  # a name (not an id: ids cannot hold quotes)
    cluster.runner.run(["cibadmin", "--modify", f"--xpath={holds.XPATH}", "--xml-text="
                        f'<cluster_property_set id="{holds.HOLDS_ID}"><nvpair id="by-hand" name="{hostile.replace(chr(39), "&apos;")}" '
                        f'value="1 r n {SINCE}"/></cluster_property_set>'])
    with pytest.raises(HoldError) as err:
        holds.read(cluster)
    assert str(err.value).startswith(f"{hostile!r} is not a hold of rolling-upgrade: invalid package name")
    assert holds.clear(cluster) is None  # unreadable: the whole set goes all the same, by its fixed id
    assert holds.read(cluster) == []


def test_a_value_that_does_not_match_its_name_is_refused(offline: Offline) -> None:
    cluster = offline("all-online")
    holds.add(cluster, [DEMO])
    cluster.runner.run(["cibadmin", "--modify", f"--xpath={holds.XPATH}", "--xml-text="
                        f'<cluster_property_set id="{holds.HOLDS_ID}"><nvpair id="{DEMO.key}" name="{DEMO.key}" '
                        f'value="4 {RUN} node2 {SINCE}"/></cluster_property_set>'])
    with pytest.raises(HoldError, match="not 'VERSION RUN NODE SINCE' for version 3; remove it with "
                                        "'rolling-upgrade release-hold demo-app'"):
        holds.read(cluster)


def test_clear_removes_every_hold_and_says_which(offline: Offline) -> None:
    cluster = offline("all-online")
    holds.add(cluster, [DEMO, EPOCH])
    assert holds.clear(cluster) == [DEMO, EPOCH]
    assert holds.clear(cluster) == []


def test_many_holds_go_in_bounded_chunks(offline: Offline) -> None:
    cluster = offline("all-online")
    many = [Hold(f"lib{i:03d}", "1.0-1", RUN, "node2", SINCE) for i in range(holds.CHUNK * 2 + 5)]
    assert len(holds.add(cluster, many)) == len(many)
    assert holds.read(cluster) == many
    assert holds.remove(cluster, [h.package for h in many[::2]]) == many[::2]
    assert holds.read(cluster) == many[1::2]


class Replay(Runner):
    """Answers each cibadmin call with the next scripted exit code (a live CIB changing in between)."""

    def __init__(self, codes: dict[str, list[int]], query: str = "") -> None:
        super().__init__()
        self.codes = codes
        self.query = query
        self.calls: list[list[str]] = []

    def call(self, argv, *, timeout=None, input=None, cwd=None):  # type: ignore[override]
        self.calls.append(list(argv))
        verb = argv[1]
        if verb == "--query":
            return Result(tuple(argv), 0 if self.query else NO_SUCH_OBJECT, self.query, "", 0.0)
        return Result(tuple(argv), self.codes[verb].pop(0), "", "", 0.0)


def test_a_set_that_vanishes_between_create_and_modify_is_made_again() -> None:
    runner = Replay({"--create": [ALREADY_EXISTS, 0], "--modify": [NO_SUCH_OBJECT]})
    holds._write(Cluster(runner), [DEMO])
    assert [c[1] for c in runner.calls] == ["--create", "--modify", "--create"]
    assert runner.calls[1][2] == f"--xpath={holds.XPATH}"
    assert ET.fromstring(runner.calls[0][-1].removeprefix("--xml-text=")).find("nvpair").get("id") == DEMO.key  # type: ignore[union-attr]


def test_writing_gives_up_after_a_bounded_number_of_tries() -> None:
    runner = Replay({"--create": [ALREADY_EXISTS] * holds.ATTEMPTS, "--modify": [NO_SUCH_OBJECT] * holds.ATTEMPTS})
    with pytest.raises(HoldError, match=f"appeared and vanished {holds.ATTEMPTS} times while writing; try again"):
        holds._write(Cluster(runner), [DEMO])
    assert len(runner.calls) == 2 * holds.ATTEMPTS


def test_a_hold_that_is_not_there_after_writing_is_said() -> None:
    runner = Replay({"--create": [0]})  # the create "worked", the query finds nothing
    with pytest.raises(HoldError, match="holds not in the CIB after writing them: demo-app 3"):
        holds.add(Cluster(runner), [DEMO])


def test_the_set_is_dropped_only_while_it_is_empty(offline: Offline) -> None:
    cluster = offline("all-online")
    holds.add(cluster, [DEMO, LIBSTDCXX])
    holds._drop_if_empty(cluster)  # as a release does after its delete, with a hold added meanwhile
    assert holds.read(cluster) == [DEMO, LIBSTDCXX]
    holds.remove(cluster, ["demo-app", "libstdc++6"])
    assert crm_config(cluster).find(f"cluster_property_set[@id='{holds.HOLDS_ID}']") is None
