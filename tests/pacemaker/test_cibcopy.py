"""A prediction's copy of the CIB edited in memory writes what crm_attribute and cibadmin write into a copy.

Each edit is compared with the real tools' on the same captured CIB (CIB_file): the node entries after a
standby on or off of every node, and the constraints after the run's preferences (twice: the second replaces
the first), then crm_simulate's answer on both copies.
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from upgrader.orchestrator import steering
from upgrader.pacemaker import cibcopy
from upgrader.pacemaker.cibcopy import CibCopyError
from upgrader.pacemaker.live import Cluster
from upgrader.pacemaker.state import ParseError
from upgrader.runner import Runner

DATA = Path(__file__).parent / "data"
CAPTURED = sorted(p.stem.removeprefix("cib-") for p in DATA.glob("cib-*.xml"))
NODES = ("node1", "node2", "node3")


def on_file(tmp_path: Path, name: str) -> tuple[Cluster, Path]:
    copy = tmp_path / f"cib-{name}.xml"
    shutil.copy(DATA / f"cib-{name}.xml", copy)
    return Cluster(Runner(env={"CIB_file": str(copy)}, timeout=30)), copy


def section(cib: ET.Element, path: str) -> str:
    element = cib.find(path)
    assert element is not None, path
    return ET.canonicalize(ET.tostring(element, encoding="unicode"), strip_text=True)


@pytest.mark.parametrize("name", CAPTURED)
def test_standby_in_memory_is_crm_attribute_s(tmp_path: Path, name: str) -> None:
    for node in NODES:
        real, path = on_file(tmp_path, name)
        copy = cibcopy.parse(path.read_text())
        for on in (True, False, True):  # on (created, or updated where the capture has one), off, on again
            real.set_standby(node, on)
            cibcopy.set_standby(copy, node, on)
            written = cibcopy.parse(path.read_text())
            assert section(copy, "configuration/nodes") == section(written, "configuration/nodes"), (name, node, on)
            assert section(copy, "configuration/resources") == section(written, "configuration/resources")


@pytest.mark.parametrize("name", CAPTURED)
def test_several_nodes_attributes_in_one_write_are_crm_attribute_s(tmp_path: Path, name: str) -> None:
    """Cluster.set_node_attributes (one cibadmin --modify of :func:`cibcopy.nodes_update`'s fragment) leaves
    the nodes section as crm_attribute a node and attribute at a time does, created, updated and back; and
    delete_node_attributes as crm_attribute --delete does, in one write."""
    one = tmp_path / "one"
    one.mkdir()
    joint, joint_path = on_file(tmp_path, name)
    single, single_path = on_file(one, name)
    mark = "rolling-upgrade-waiting"
    for values in ({"node2": {"standby": "on", mark: "run-1"}, "node3": {"standby": "on", mark: "run-1"}},
                   {"node2": {"standby": "off"}, "node3": {"standby": "off", mark: "run-2"}},
                   {n: {"standby": "on", mark: "run-3"} for n in NODES}):
        joint.set_node_attributes(values)
        for node, attrs in values.items():
            for attr, value in attrs.items():
                single.runner.run(["crm_attribute", "--node", node, "--name", attr, f"--update={value}",
                                   "--lifetime", "forever"])
        assert section(cibcopy.parse(joint_path.read_text()), "configuration/nodes") == \
            section(cibcopy.parse(single_path.read_text()), "configuration/nodes"), (name, values)
    joint.delete_node_attributes(["node1", "node3"], mark)
    for node in ("node1", "node3"):
        single.delete_attribute(node, mark)
    after = cibcopy.parse(joint_path.read_text())
    assert section(after, "configuration/nodes") == section(cibcopy.parse(single_path.read_text()),
                                                             "configuration/nodes")
    assert [p.get("value") for p in after.iter("nvpair") if p.get("name") == mark] == ["run-3"]  # node2's


def test_several_nodes_attributes_are_one_write(tmp_path: Path) -> None:
    cluster, path = on_file(tmp_path, CAPTURED[0])
    commands: list[list[str]] = []
    run = cluster.runner.run

    def counted(argv: list[str], **kwargs: object):
        commands.append(argv)
        return run(argv, **kwargs)

    cluster.runner.run = counted  # type: ignore[method-assign]
    cluster.set_node_attributes({n: {"standby": "on", "rolling-upgrade-waiting": "r"} for n in NODES})
    assert [c[:2] for c in commands] == [["cibadmin", "--query"], ["cibadmin", "--modify"]]
    commands.clear()
    cluster.set_node_attributes({"node1": {"standby": "off"}})  # one attribute of one node: crm_attribute's own
    assert [c[0] for c in commands] == ["crm_attribute"]
    with pytest.raises(ValueError, match="standby is 'on' or 'off', not 'maybe'"):
        cluster.set_node_attributes({"node1": {"standby": "maybe"}, "node2": {"standby": "on"}})


@pytest.mark.parametrize("name", CAPTURED)
def test_preferences_in_memory_are_cibadmin_s(tmp_path: Path, name: str) -> None:
    real, path = on_file(tmp_path, name)
    rids = [r.id for r in real.state().resources if not r.id.startswith("fence")][:3]
    assert rids, name
    copy = cibcopy.parse(path.read_text())
    first = {rids[0]: "node2"}
    steering.prefer_all(real, rids, "run-1", patched=True, targets=first)
    steering.prefer_in_copy(copy, rids, "run-1", patched=True, targets=first)
    assert section(copy, "configuration/constraints") == section(cibcopy.parse(path.read_text()),
                                                                 "configuration/constraints")
    again = {rid: "node3" for rid in rids[1:]}
    steering.prefer_all(real, rids[:2], "run-1", patched=True, targets=again)
    steering.prefer_in_copy(copy, rids[:2], "run-1", patched=True, targets=again)
    assert section(copy, "configuration/constraints") == section(cibcopy.parse(path.read_text()),
                                                                 "configuration/constraints")
    for node in NODES:  # and the scheduler answers the same on both
        real.set_standby(node, True)
        cibcopy.set_standby(copy, node, True)
        on_disk = real.runner.run(["crm_simulate", f"--xml-file={path}", "--run"]).stdout
        in_memory = real.runner.run(["crm_simulate", "--xml-pipe", "--run"], input=cibcopy.text(copy)).stdout
        assert on_disk.split("Transition Summary:")[1] == in_memory.split("Transition Summary:")[1], (name, node)
        real.set_standby(node, False)
        cibcopy.set_standby(copy, node, False)


def test_a_prediction_runs_two_commands_whatever_the_nodes(tmp_path: Path) -> None:
    cluster, path = on_file(tmp_path, "all-online")
    asked: list[str] = []
    real = cluster.runner.run

    def recording(argv: list[str], **kwargs: object) -> object:
        asked.append(argv[0])
        return real(argv, **kwargs)  # type: ignore[arg-type]

    cluster.runner.run = recording  # type: ignore[method-assign]
    before = path.read_text()
    cluster.predict_standbys({"node1": True, "node2": True},
                             lambda cib: steering.prefer_in_copy(cib, ["app1"], "run-1", patched=True))
    assert asked == ["cibadmin", "crm_simulate"]
    assert path.read_text() == before, "the CIB it copied is left alone"


def test_a_node_the_cib_does_not_name_is_refused() -> None:
    cib = cibcopy.parse((DATA / "cib-all-online.xml").read_text())
    with pytest.raises(CibCopyError, match="the CIB has no <node> entries named 'node9'"):
        cibcopy.set_standby(cib, "node9", True)
    assert issubclass(CibCopyError, ParseError), "a run refuses it as a cluster it cannot read"


def test_two_standby_attributes_on_one_node_are_refused_as_crm_attribute_refuses_them() -> None:
    cib = cibcopy.parse((DATA / "cib-all-online.xml").read_text())
    cibcopy.set_standby(cib, "node1", True)
    node = next(n for n in cib.iter("node") if n.get("uname") == "node1")
    extra = ET.SubElement(node, "instance_attributes", id="operator-set")
    ET.SubElement(extra, "nvpair", id="operator-standby", name="standby", value="off")
    with pytest.raises(CibCopyError, match="node node1 has 2 'standby' attributes.*nodes-1-standby, operator-standby"):
        cibcopy.set_standby(cib, "node1", False)


def test_what_is_not_a_cib_is_refused() -> None:
    with pytest.raises(CibCopyError, match="no readable CIB"):
        cibcopy.parse("<cib")
    with pytest.raises(CibCopyError, match="no <cib> with a <configuration>"):
        cibcopy.parse("<status/>")
