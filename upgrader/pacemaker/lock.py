"""The cluster-wide upgrade lock, kept in the CIB.

The lock is one ``cluster_property_set`` with id ``rolling-upgrade-lock`` in
``crm_config``, made by ``cibadmin --create``: the CIB manager refuses a second
set with the same id (exit 108), so exactly one creator wins, whichever node
it runs on. Its nvpairs record holder node, run id, pid, phase, started,
heartbeat and expires (UTC, ISO 8601; node clocks are assumed NTP-synced).
Updates and the release are compare-and-set: an XPath that also matches our
holder and run id, so a run never touches a lock that is no longer its own.

**Stale and breaking rule.** A lock is *stale* when its holder node is not
online in the cluster or its ``expires`` time has passed (an unreadable
expiry counts as passed). A stale lock is broken automatically only when
ALL hold: the holder node is cleanly offline (down, or fenced; a holder
that is not a cluster node counts as offline), the lock expired, AND fencing
is on (without it a partitioned holder looks offline while it still runs). An
*unclean* holder (lost, not fenced yet) may still be running, so its lock is
not broken. An expired lock on an online holder (a run that hangs, or is
slow between heartbeats) and a fresh lock on an offline holder (a node
rebooting inside its run) are only reported; they are broken by
``rolling-upgrade unlock --force``. So ``ttl`` must outlast the longest
stretch a run goes without a heartbeat, a reboot included.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable

from upgrader import runkey
from upgrader.pacemaker import names
from upgrader.pacemaker.live import Cluster
from upgrader.pacemaker.state import ClusterState
from upgrader.runner import ALREADY_EXISTS, NO_SUCH_OBJECT
from upgrader.runs import APT_RUN_PREFIX, DPKG_FAILED

LOCK_ID = "rolling-upgrade-lock"
_XPATH = f"/cib/configuration/crm_config/cluster_property_set[@id='{LOCK_ID}']"
DEFAULT_TTL = 900.0
# A write into crm_config makes the DC's controller re-read the cluster options; its scheduler call then
# finds that query pending and sleeps a second before it asks again (Pacemaker 2.1.5's
# do_pe_invoke_callback, "Re-asking for the CIB"; every lock write in the DC's log: 1.01 s to the next
# transition, a standby's 0.016 s). A heartbeat written right before a standby delays that move by as much,
# and a wait for the DC to be idle waits for it. A heartbeat before a move (or such a wait) therefore writes
# only when the last write is older than this (at most a quarter of the ttl).
FRESH_ENOUGH = 60.0

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


class LockError(Exception):
    """The lock could not be taken, updated or released."""


class LockHeld(LockError):
    """Another run holds the lock."""

    def __init__(self, status: "LockStatus", now: datetime) -> None:
        super().__init__(f"the upgrade lock is held: {status.describe(now)}")
        self.status = status


class LockLost(LockError):
    """Our lock is gone or belongs to another run now (it was broken)."""


@dataclass(frozen=True)
class LockInfo:
    """What the lock records."""

    holder: str
    run_id: str
    pid: int | None
    phase: str
    started: datetime | None
    heartbeat: datetime | None
    expires: datetime | None
    package_set: str = ""  # the digest of the run's package set (upgrader.packages.pkgset), when it has one

    def to_xml(self) -> str:
        """The property set, nvpair ids prefixed with the set's id (unique in the CIB)."""
        root = ET.Element("cluster_property_set", id=LOCK_ID)
        for name, value in self.fields().items():
            ET.SubElement(root, "nvpair", id=f"{LOCK_ID}-{name}", name=name, value=value)
        return ET.tostring(root, encoding="unicode")

    def fields(self) -> dict[str, str]:
        return {
            "holder": names.node_name(self.holder),
            "run-id": names.run_id(self.run_id),
            "pid": str(self.pid or 0),
            "phase": names.phase(self.phase),
            "started": iso(self.started),
            "heartbeat": iso(self.heartbeat),
            "expires": iso(self.expires),
            **({"package-set": _digest(self.package_set)} if self.package_set else {}),
        }

    @classmethod
    def from_xml(cls, text: str) -> "LockInfo":
        """Read the set back; missing or unreadable values become '' or None."""
        values = {nv.get("name", ""): nv.get("value", "") for nv in ET.fromstring(text).iter("nvpair")}
        pid = values.get("pid", "")
        return cls(
            holder=values.get("holder", ""),
            run_id=values.get("run-id", ""),
            pid=int(pid) if pid.isascii() and pid.isdigit() else None,
            phase=values.get("phase", ""),
            started=_parse_time(values.get("started")),
            heartbeat=_parse_time(values.get("heartbeat")),
            expires=_parse_time(values.get("expires")),
            package_set=values.get("package-set", ""),
        )


@dataclass(frozen=True)
class LockStatus:
    """A lock as seen against the cluster's state at one moment."""

    info: LockInfo
    holder_state: str  # online, offline, unclean (lost, not fenced yet) or unknown (not a cluster node)
    expired: bool
    fencing: bool = False  # stonith-enabled: an offline node is down for sure (fenced, or shut down cleanly)

    @property
    def stale(self) -> bool:
        return self.holder_state != "online" or self.expired

    @property
    def breakable(self) -> bool:
        """The automatic rule: holder node cleanly offline AND expired AND fencing on.

        Without fencing a partitioned holder looks offline while it still runs (in a two-node
        cluster both sides keep quorum): its lock is then broken only by a person (``unlock --force``).
        """
        return self.holder_state in ("offline", "unknown") and self.expired and self.fencing

    @property
    def only_by_hand(self) -> bool:
        """Stale in every way but one: fencing is off, so nothing proves the holder is down."""
        return self.holder_state in ("offline", "unknown") and self.expired and not self.fencing

    def describe(self, now: datetime) -> str:
        i = self.info
        text = f"holder {i.holder or '?'}, run {i.run_id or '?'}, pid {i.pid or '?'}, phase {i.phase or '?'}, taken {ago(i.started, now)}, heartbeat {ago(i.heartbeat, now)}"
        if i.package_set:
            text += f", package set {i.package_set}"
        if self.only_by_hand:
            text += (f" (stale: {self.why_stale}; not broken automatically: fencing is off, so {i.holder or '?'} "
                     "may still run; once you know it is down, 'rolling-upgrade unlock --force')")
            return text
        return text + (f" (stale: {self.why_stale})" if self.stale else "")

    @property
    def why_stale(self) -> str:
        """E.g. "holder offline and expired" (empty when not stale)."""
        why = [f"holder {self.holder_state}"] if self.holder_state != "online" else []
        return " and ".join(why + (["expired"] if self.expired else []))

    @classmethod
    def judge(cls, info: LockInfo, state: ClusterState, now: datetime) -> "LockStatus":
        node = state.node(info.holder)
        if node is None:
            holder_state = "unknown"
        else:
            holder_state = "online" if node.online else "unclean" if node.unclean else "offline"
        return cls(
            info=info,
            holder_state=holder_state,
            expired=info.expires is None or now >= info.expires,
            fencing=bool(state.summary.stonith_enabled),
        )


def run_alive(info: LockInfo) -> bool:
    """Whether the rolling-upgrade process that holds ``info`` still runs on this node (ask on the holder).

    An apt run's lock (``apt-KEY``) is alive while the apt run, its finisher or its finishing step runs
    (:func:`upgrader.runkey.apt_run_state`), and in phase ``dpkg-failed``: kept on purpose for a person.
    """
    if info.run_id.startswith(APT_RUN_PREFIX):
        key = info.run_id.removeprefix(APT_RUN_PREFIX)
        return info.phase == DPKG_FAILED or runkey.apt_run_state(key) != runkey.ENDED
    if not info.pid:
        return False
    try:
        cmdline = Path(f"/proc/{info.pid}/cmdline").read_bytes()
        state = Path(f"/proc/{info.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X") and b"rolling-upgrade" in cmdline


def read(cluster: Cluster) -> LockInfo | None:
    """The lock as the CIB holds it now, None when nobody holds it."""
    result = cluster.runner.run(
        ["cibadmin", "--query", f"--xpath={_XPATH}"], ok=(0, NO_SUCH_OBJECT), what="reading the upgrade lock"
    )
    return None if result.returncode == NO_SUCH_OBJECT else LockInfo.from_xml(result.stdout)


def inspect(cluster: Cluster, now: datetime | None = None) -> LockStatus | None:
    """The lock judged against the cluster now (holder online? expired?)."""
    info = read(cluster)
    return None if info is None else LockStatus.judge(info, cluster.state(), now or utcnow())


def remove(cluster: Cluster, info: LockInfo) -> None:
    """Delete the lock if it is still ``info``'s (same holder and run id).

    Verified by a query afterwards, since a delete that matches nothing exits 0.
    """
    xpath = _owned_xpath(info.holder, info.run_id)
    cluster.runner.run(["cibadmin", "--delete", f"--xpath={xpath}"], what="deleting the upgrade lock")
    after = read(cluster)
    if after is not None and (after.holder, after.run_id) == (info.holder, info.run_id):
        raise LockError(f"the upgrade lock of run {info.run_id} on {info.holder} is still in the CIB after deleting it")


def force_unlock(cluster: Cluster) -> LockInfo | None:
    """Break the lock whoever holds it; return what was broken (None: no lock)."""
    info = read(cluster)
    if info is None:
        return None
    # An unreadable holder or run id cannot be matched by an XPath: delete by id.
    if _valid(info):
        remove(cluster, info)
    else:
        cluster.runner.run(["cibadmin", "--delete", f"--xpath={_XPATH}"], what="breaking the upgrade lock")
        if read(cluster) is not None:
            raise LockError("the upgrade lock is still in the CIB after deleting it")
    return info


class UpgradeLock:
    """The lock as held by one run on one node.

    Re-entrant: acquiring again with the same run id on the same node
    refreshes the heartbeat (an apt run calls its hooks many times).
    """

    def __init__(self, cluster: Cluster, run_id: str, node: str, ttl: float = DEFAULT_TTL, clock: Clock = utcnow) -> None:
        self.cluster = cluster
        self.run_id = names.run_id(run_id)
        self.node = names.node_name(node)
        self.ttl = timedelta(seconds=ttl)
        self.clock = clock

    def acquire(self, phase: str = "acquired", package_set: str = "") -> LockInfo:
        """Take the lock (recording the digest of the run's ``package_set``), or raise :class:`LockHeld`;
        a breakable stale lock is broken first."""
        names.phase(phase)
        for _ in range(3):  # a create, or a break and a create; a released lock lets us try again
            now = self.clock()
            info = LockInfo(self.node, self.run_id, os.getpid(), phase, now, now, now + self.ttl, package_set)
            result = self.cluster.runner.run(
                ["cibadmin", "--create", "--scope", "crm_config", f"--xml-text={info.to_xml()}"],
                ok=(0, ALREADY_EXISTS),
                what="taking the upgrade lock",
            )
            if result.returncode == 0:
                return info
            status = inspect(self.cluster, now)
            if status is None:
                continue
            if (status.info.holder, status.info.run_id) == (self.node, self.run_id):
                return self.heartbeat(phase)
            if not status.breakable:
                raise LockHeld(status, now)
            remove(self.cluster, status.info)
        raise LockError("the upgrade lock changed hands three times while taking it; try again")

    def heartbeat(self, phase: str | None = None, *, before_move: bool = False) -> LockInfo:
        """Refresh the expiry (and set the phase); :class:`LockLost` if the lock is no longer ours.

        ``before_move``: a move, or a wait for the DC to be idle, follows at once; within :data:`FRESH_ENOUGH` seconds of the last write
        (at most ttl/4) the lock is only checked to be ours, not written: its phase then lags until the
        next write (the history has every phase).
        """
        now = self.clock()
        if before_move:
            current = read(self.cluster)
            if current is None or (current.holder, current.run_id) != (self.node, self.run_id):
                raise LockLost(f"the upgrade lock of run {self.run_id} on {self.node} is gone (broken with "
                               "unlock --force, or stale)")
            fresh = min(timedelta(seconds=FRESH_ENOUGH), self.ttl / 4)
            if current.heartbeat is not None and now - current.heartbeat < fresh:
                return current
        update = {"heartbeat": iso(now), "expires": iso(now + self.ttl)}
        if phase is not None:
            update["phase"] = names.phase(phase)
        root = ET.Element("cluster_property_set", id=LOCK_ID)
        for name, value in update.items():
            ET.SubElement(root, "nvpair", id=f"{LOCK_ID}-{name}", name=name, value=value)
        result = self.cluster.runner.run(
            ["cibadmin", "--modify", f"--xpath={_owned_xpath(self.node, self.run_id)}", f"--xml-text={ET.tostring(root, encoding='unicode')}"],
            ok=(0, NO_SUCH_OBJECT),
            what="refreshing the upgrade lock",
        )
        info = read(self.cluster) if result.returncode == 0 else None
        if info is None or (info.holder, info.run_id) != (self.node, self.run_id):
            raise LockLost(f"the upgrade lock of run {self.run_id} on {self.node} is gone (broken with unlock --force, or stale)")
        return info

    def release(self) -> bool:
        """Give the lock back; False when it was not ours (any more)."""
        info = read(self.cluster)
        if info is None or (info.holder, info.run_id) != (self.node, self.run_id):
            return False
        remove(self.cluster, info)
        return True


def _digest(text: str) -> str:
    if not (len(text) == 16 and all(c in "0123456789abcdef" for c in text)):
        raise ValueError(f"{text!r} is not a package set's digest (16 hex digits)")
    return text


def _owned_xpath(holder: str, run_id: str) -> str:
    """The lock, only if held by ``holder`` for ``run_id`` (both validated: no quote can get in)."""
    holder, run_id = names.node_name(holder), names.run_id(run_id)
    return f"{_XPATH}[nvpair[@name='holder' and @value='{holder}']][nvpair[@name='run-id' and @value='{run_id}']]"


def _valid(info: LockInfo) -> bool:
    try:
        names.node_name(info.holder)
        names.run_id(info.run_id)
    except names.BadValue:
        return False
    return True


def iso(moment: datetime | None) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else ""


def _parse_time(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "at an unknown time"
    seconds = int((now - moment).total_seconds())
    return f"{seconds}s ago" if abs(seconds) < 120 else f"{seconds // 60}m ago"
