"""Bad builds held back on every node: the cluster-wide record, kept in the CIB.

After a fail back, each package version the failed node installed in that run
is *held*: every node gets an APT pin that keeps the version off it
(:mod:`upgrader.packages.holds` writes the pin file, ``rolling-upgrade holds
--sync`` on each node). The record lives in the CIB, so a node that was
offline at the fail back learns it at its next sync.

Format: one ``cluster_property_set`` with id ``rolling-upgrade-holds`` in
``crm_config``, one nvpair per held package version::

    <cluster_property_set id="rolling-upgrade-holds">
      <nvpair id="rolling-upgrade-hold-demo-app_v3" name="rolling-upgrade-hold-demo-app_v3"
              value="3 20261201T020000-node1-abcdef node2 2026-12-01T02:10:00Z"/>
    </cluster_property_set>

The nvpair's id (and its name, the same string) is ``rolling-upgrade-hold-``
then the package, ``_v``, the version, each escaped for an XML id (which may
not hold ``+``, ``:`` or ``~``): ``+`` is ``_p``, ``:`` is ``_c``, ``~`` is
``_t`` (``_`` is in no package name or version, so this reverses exactly):
``libstdc++6`` 12.2.0-14 is ``rolling-upgrade-hold-libstdc_p_p6_v12.2.0-14``.
Every nvpair name in crm_config is also a cluster option to Pacemaker: ours all
carry the ``rolling-upgrade-`` prefix, so none can ever be mistaken for a real
one. The value is ``VERSION RUN_ID NODE SINCE`` (the run that failed back, the
node it failed on, UTC). Several versions of one package can be held at once.

Every operation is a bounded number of cibadmin calls, each bounded by the
runner's timeout, and idempotent: adding a hold that is there keeps the one
recorded first; removing one that is gone removes nothing. The set is made by
``cibadmin --create`` (exit 108: it exists, then it is modified; exit 105 on
that modify: it was just removed, then it is made again) and removed once its
last hold goes (only while it is empty). Everything read back is validated
(:mod:`upgrader.pacemaker.names`): an entry that is not a hold of ours is
refused in one line, never guessed at.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Iterator, Sequence

from upgrader.pacemaker import names
from upgrader.runner import ALREADY_EXISTS, NO_SUCH_OBJECT

if TYPE_CHECKING:  # a type only: the node-local commands (plan, apply) that read holds never load the CLI's cluster side
    from upgrader.pacemaker.live import Cluster

HOLDS_ID = "rolling-upgrade-holds"
PREFIX = "rolling-upgrade-hold-"
XPATH = f"/cib/configuration/crm_config/cluster_property_set[@id='{HOLDS_ID}']"
ATTEMPTS = 3  # create, modify, create: the set appeared or vanished in between at most twice
CHUNK = 50  # holds per cibadmin call (a point release brings hundreds; one argv string stays well under 128 KiB)
RELEASE = "rolling-upgrade release-hold"
_ESCAPES = {"+": "_p", ":": "_c", "~": "_t"}
_UNESCAPES = {v[1]: k for k, v in _ESCAPES.items()}
SEPARATOR = "_v"


class HoldError(Exception):
    """The holds in the CIB could not be read or changed."""


@dataclass(frozen=True)
class Hold:
    """One package version kept off every node: the run that failed back from it, on which node, since when (UTC)."""

    package: str
    version: str
    run_id: str
    node: str
    since: str  # ISO 8601 UTC, to the second: 2026-12-01T02:10:00Z

    def __post_init__(self) -> None:
        names.package_name(self.package)
        names.package_version(self.version)
        names.run_id(self.run_id)
        names.node_name(self.node)
        names.utc_time(self.since)

    @property
    def key(self) -> str:
        """The nvpair's id and name in the CIB (see the module's docstring)."""
        return key(self.package, self.version)

    def value(self) -> str:
        return f"{self.version} {self.run_id} {self.node} {self.since}"

    def text(self) -> str:
        """``demo-app 3``."""
        return f"{self.package} {self.version}"

    def document(self) -> dict[str, str]:
        """Plain data (``holds --json``, ``status --json``)."""
        return {"package": self.package, "version": self.version, "run": self.run_id, "node": self.node,
                "since": self.since}


def escape(text: str) -> str:
    """A package name or version as part of an XML id (``+`` ``_p``, ``:`` ``_c``, ``~`` ``_t``)."""
    return "".join(_ESCAPES.get(ch, ch) for ch in text)


def key(package: str, version: str) -> str:
    """``rolling-upgrade-hold-PACKAGE_vVERSION``, escaped; both validated first."""
    return PREFIX + escape(names.package_name(package)) + SEPARATOR + escape(names.package_version(version))


def parse_key(text: str) -> tuple[str, str]:
    """The package and version a key names (the reverse of :func:`key`); :class:`HoldError` if it names none."""
    if not text.startswith(PREFIX):
        raise HoldError(f"{text!r} is not a hold of rolling-upgrade (it should start with {PREFIX!r})")
    parts: list[str] = []
    current: list[str] = []
    chars = iter(text.removeprefix(PREFIX))
    for ch in chars:
        if ch != "_":
            current.append(ch)
            continue
        code = next(chars, "")
        if code == SEPARATOR[1]:
            parts.append("".join(current))
            current = []
        elif code in _UNESCAPES:
            current.append(_UNESCAPES[code])
        else:
            raise HoldError(f"{text!r} is not a hold of rolling-upgrade ('_{code}' is no escape of ours)")
    parts.append("".join(current))
    if len(parts) != 2:
        raise HoldError(f"{text!r} is not a hold of rolling-upgrade (it should be {PREFIX}PACKAGE{SEPARATOR}VERSION)")
    try:
        return names.package_name(parts[0]), names.package_version(parts[1])
    except names.BadValue as exc:
        raise HoldError(f"{text!r} is not a hold of rolling-upgrade: {exc}") from None


def nvpair(hold: Hold) -> ET.Element:
    return ET.Element("nvpair", id=hold.key, name=hold.key, value=hold.value())


def from_nvpair(ident: str, name: str, value: str) -> Hold:
    """The hold an nvpair of our set records; :class:`HoldError` naming it when it is none (or not ours)."""
    package, version = parse_key(name)
    fields = value.split(" ")
    what = f"the hold {name!r} in the CIB"
    if ident != name:
        raise HoldError(f"{what} has the id {ident!r}, not its name; remove it with '{RELEASE} {package}'")
    if len(fields) != 4 or fields[0] != version:
        raise HoldError(f"{what} has the value {value[:200]!r}, not 'VERSION RUN NODE SINCE' for version "
                        f"{version}; remove it with '{RELEASE} {package}'")
    try:
        return Hold(package, version, fields[1], fields[2], fields[3])
    except names.BadValue as exc:
        raise HoldError(f"{what} is unreadable: {exc}; remove it with '{RELEASE} {package}'") from None


def set_xml(holds: Iterable[Hold]) -> str:
    """Our property set holding ``holds`` (what create and modify send)."""
    root = ET.Element("cluster_property_set", id=HOLDS_ID)
    root.extend(nvpair(h) for h in holds)
    return ET.tostring(root, encoding="unicode")


def parse(text: str) -> list[Hold]:
    """The holds of our property set's XML (``cibadmin --query`` of it), sorted by package and version."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise HoldError(f"the CIB's holds ({HOLDS_ID}) are not XML: {exc}") from None
    found = []
    for el in root:
        if el.tag != "nvpair":
            raise HoldError(f"the CIB's holds ({HOLDS_ID}) hold a <{el.tag}>, which is not ours; remove it by hand "
                            f"or clear every hold with '{RELEASE} --all'")
        found.append(from_nvpair(el.get("id", ""), el.get("name", ""), el.get("value", "")))
    return sorted(set(found), key=lambda h: (h.package, h.version))


def read(cluster: Cluster) -> list[Hold]:
    """Every hold the CIB records now (none when our set is missing)."""
    result = cluster.runner.run(["cibadmin", "--query", f"--xpath={XPATH}"], ok=(0, NO_SUCH_OBJECT),
                                what="reading the held-back packages")
    return [] if result.returncode == NO_SUCH_OBJECT else parse(result.stdout)


def add(cluster: Cluster, holds: Iterable[Hold]) -> list[Hold]:
    """Record ``holds``; the ones that were not recorded yet (a package version already held keeps its
    first record). Verified by reading back: :class:`HoldError` when one is missing after."""
    held = {(h.package, h.version) for h in read(cluster)}
    new = {(h.package, h.version): h for h in holds if (h.package, h.version) not in held}
    wanted = sorted(new.values(), key=lambda h: (h.package, h.version))
    for chunk in _chunks(wanted):
        _write(cluster, chunk)
    after = {(h.package, h.version) for h in read(cluster)} if wanted else held
    missing = [h.text() for h in wanted if (h.package, h.version) not in after]
    if missing:
        raise HoldError(f"holds not in the CIB after writing them: {', '.join(missing)}; run the fail back's "
                        "holds again or check the CIB (cibadmin --query --scope crm_config)")
    return wanted


def _write(cluster: Cluster, holds: Sequence[Hold]) -> None:
    """Create our set with ``holds`` or, when it exists (108), add them to it; again if it vanished (105)."""
    xml = set_xml(holds)
    for _ in range(ATTEMPTS):
        made = cluster.runner.run(["cibadmin", "--create", "--scope", "crm_config", f"--xml-text={xml}"],
                                  ok=(0, ALREADY_EXISTS), what="recording held-back packages")
        if made.returncode == 0:
            return
        changed = cluster.runner.run(["cibadmin", "--modify", f"--xpath={XPATH}", f"--xml-text={xml}"],
                                     ok=(0, NO_SUCH_OBJECT), what="recording held-back packages")
        if changed.returncode == 0:
            return
    raise HoldError(f"the CIB's holds ({HOLDS_ID}) appeared and vanished {ATTEMPTS} times while writing; try again")


def remove(cluster: Cluster, packages: Iterable[str]) -> list[Hold]:
    """Release every held version of ``packages``; the holds removed (none: nothing was held)."""
    wanted = {names.package_name(p) for p in packages}
    return remove_holds(cluster, [h for h in read(cluster) if h.package in wanted])


def remove_holds(cluster: Cluster, holds: Iterable[Hold]) -> list[Hold]:
    """Release these package versions (whatever run recorded them); those that were held. The set goes
    with its last hold. Verified by reading back: :class:`HoldError` when one is still there."""
    gone = {(h.package, h.version) for h in holds}
    present = [h for h in read(cluster) if (h.package, h.version) in gone] if gone else []
    for chunk in _chunks(present):
        # One call per chunk: a delete of the section's element removes each child it lists, matched by id
        # (ids are unique in the CIB, ours carry our prefix); an XPath with --delete-all would need --force.
        root = ET.Element("crm_config")
        root.extend(ET.Element("nvpair", id=h.key) for h in chunk)
        cluster.runner.run(["cibadmin", "--delete", "--scope", "crm_config",
                            f"--xml-text={ET.tostring(root, encoding='unicode')}"],
                           ok=(0, NO_SUCH_OBJECT), what="releasing held-back packages")
    if present:
        _drop_if_empty(cluster)
    left = [h.text() for h in read(cluster) if (h.package, h.version) in gone] if present else []
    if left:
        raise HoldError(f"holds still in the CIB after removing them: {', '.join(left)}; try again")
    return present


def clear(cluster: Cluster) -> list[Hold] | None:
    """Release every hold: the whole set, whatever it holds; the holds removed (None: they were unreadable)."""
    try:
        holds: list[Hold] | None = read(cluster)
    except HoldError:
        holds = None
    cluster.runner.run(["cibadmin", "--delete", f"--xpath={XPATH}"], ok=(0, NO_SUCH_OBJECT),
                       what="releasing every held-back package")
    after = cluster.runner.run(["cibadmin", "--query", f"--xpath={XPATH}"], ok=(0, NO_SUCH_OBJECT),
                               what="reading the held-back packages")
    if after.returncode != NO_SUCH_OBJECT:
        raise HoldError(f"the CIB's holds ({HOLDS_ID}) are still there after removing them; try again")
    return holds


def _drop_if_empty(cluster: Cluster) -> None:
    """Our set removed, only while it holds nothing (a hold added meanwhile keeps it)."""
    cluster.runner.run(["cibadmin", "--delete", f"--xpath={XPATH}[not(*)]"], ok=(0, NO_SUCH_OBJECT),
                       what="removing the empty set of held-back packages")


def _chunks(holds: Sequence[Hold]) -> Iterator[Sequence[Hold]]:
    for start in range(0, len(holds), CHUNK):
        yield holds[start:start + CHUNK]
