"""Pacemaker's own rolling-upgrade rules: release versions, CRM feature sets, the Pacemaker Remote protocol.

Pure functions, no command is run. The facts come from ClusterLabs' sources
(github.com/ClusterLabs/pacemaker, read at commit 0a519a6e, July 2026; the
tables are the same at tag Pacemaker-2.1.5, Bookworm's version):

- ``doc/sphinx/Pacemaker_Administration/upgrading.rst``, "Upgrading a Pacemaker
  Cluster" (the book Pacemaker Administration): the table "Version Compatibility
  for Cluster Nodes" (:data:`ROLLING_MINIMUM`), "the major version number
  increases when at least some rolling upgrades are not possible from the
  previous major version", and the alternatives when a rolling upgrade is not
  possible: a complete cluster shutdown, or detach and reattach
  (maintenance-mode), or a rolling upgrade in steps through an intermediate
  version. Rolling upgrades 1.1 -> 2.x also need Corosync 2 or later and a CIB
  ``validate-with`` of pacemaker-1.0 or later (a footnote); the messaging layer
  must be the same on every node (only Corosync 2 and later is supported).
- ``include/crm/crm.h`` ``CRM_FEATURE_SET`` and ``include/crm/lrmd.h``
  ``LRMD_PROTOCOL_VERSION`` at each release tag (:data:`RELEASES`).
- ``daemons/controld/controld_utils.c`` ``feature_set_compatible()``: the DC
  accepts a joining node whose feature set has the same major number and a
  minor number the same as or newer than the DC's; the minor-minor number is
  ignored from feature set 3.1.0 (Pacemaker 2.0.0) on, and counted as a minor
  one before it (upgrading.rst, footnote).
- upgrading.rst on the Pacemaker Remote protocol: a Pacemaker Remote node
  accepts connections only from cluster nodes with the same or a newer
  protocol version.
"""

from __future__ import annotations

import re
from typing import Sequence

Release = tuple[int, int, int]

DOC = "Pacemaker Administration, Upgrading a Pacemaker Cluster"
ALTERNATIVES = ("upgrade with a complete cluster shutdown or detach and reattach (maintenance-mode), "
                "or in steps through an intermediate version")

# "Version Compatibility for Cluster Nodes": the major version being installed -> the oldest version every
# other cluster node may run during a rolling upgrade. 0 stands for the row "Pacemaker 0.6.z to 0.7.z".
ROLLING_MINIMUM: dict[int, Release] = {
    3: (2, 0, 0),
    2: (1, 1, 11),
    1: (1, 0, 0),
    0: (0, 6, 0),
}

# Release -> (CRM feature set, Pacemaker Remote protocol version; None before Pacemaker Remote, 1.1.9),
# read from include/crm/crm.h and include/crm/lrmd.h at every release tag.
RELEASES: dict[str, tuple[str, str | None]] = {
    "0.6.0": ("2.1", None), "0.6.1": ("2.1", None), "0.6.2": ("2.1", None), "0.6.3": ("2.1", None),
    "0.6.4": ("2.1", None), "0.6.5": ("2.1", None), "0.6.6": ("2.1", None), "0.7.0": ("3.0", None),
    "0.7.3": ("3.0", None),
    "1.0.0": ("3.0", None), "1.0.1": ("3.0", None), "1.0.2": ("3.0.1", None), "1.0.3": ("3.0.1", None),
    "1.0.4": ("3.0.1", None), "1.0.5": ("3.0.1", None), "1.0.6": ("3.0.1", None), "1.0.7": ("3.0.1", None),
    "1.0.8": ("3.0.1", None),
    "1.1.0": ("3.0.1", None), "1.1.1": ("3.0.1", None), "1.1.2": ("3.0.2", None), "1.1.3": ("3.0.2", None),
    "1.1.4": ("3.0.5", None), "1.1.5": ("3.0.5", None), "1.1.6": ("3.0.5", None), "1.1.7": ("3.0.6", None),
    "1.1.8": ("3.0.6", None), "1.1.9": ("3.0.7", "1.0"), "1.1.10": ("3.0.7", "1.0"),
    "1.1.11": ("3.0.8", "1.0"), "1.1.12": ("3.0.9", "1.0"), "1.1.13": ("3.0.10", "1.0"),
    "1.1.14": ("3.0.10", "1.0"), "1.1.15": ("3.0.10", "1.1"), "1.1.16": ("3.0.11", "1.1"),
    "1.1.17": ("3.0.13", "1.1"), "1.1.18": ("3.0.14", "1.1"), "1.1.19": ("3.0.14", "1.1"),
    "1.1.20": ("3.0.14", "1.1"), "1.1.21": ("3.0.14", "1.1"), "1.1.22": ("3.0.14", "1.1"),
    "1.1.23": ("3.0.14", "1.1"), "1.1.24": ("3.0.14", "1.1"),
    "2.0.0": ("3.1.0", "1.1"), "2.0.1": ("3.1.0", "1.1"), "2.0.2": ("3.1.0", "1.1"), "2.0.3": ("3.2.0", "1.1"),
    "2.0.4": ("3.3.0", "1.1"), "2.0.5": ("3.6.1", "1.1"),
    "2.1.0": ("3.10.0", "1.1"), "2.1.1": ("3.10.2", "1.1"), "2.1.2": ("3.11.0", "1.1"),
    "2.1.3": ("3.15.0", "1.1"), "2.1.4": ("3.15.0", "1.1"), "2.1.5": ("3.16.1", "1.1"),
    "2.1.6": ("3.17.4", "1.1"), "2.1.7": ("3.19.0", "1.1"), "2.1.8": ("3.19.5", "1.2"),
    "2.1.9": ("3.19.6", "1.2"), "2.1.10": ("3.19.6", "1.2"), "2.1.11": ("3.19.6", "1.2"),
    "3.0.0": ("3.20.0", "1.2"), "3.0.1": ("3.20.1", "1.2"), "3.0.2": ("3.20.5", "1.2"),
}

# crm_verify -V: "(unpack_resources) \terror: ..." (the function in parentheses, then the log level).
_VERIFY_ERROR = re.compile(r"^(?:\([^)]*\)\s+)?error:\s*(.+)$")
_VERIFY_ERRORS_FOUND = ("Errors found during check", "Configuration invalid")  # Pacemaker 2.1, 3.0
_VERIFY_WARNINGS_ONLY = ("Warnings found during check", "Configuration may need attention")
_RELEASE = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?")


def upstream_version(debian_version: str) -> str:
    """The upstream part of a Debian version: ``1:2.1.5-1+deb12u1`` -> ``2.1.5``."""
    text = debian_version.strip()
    text = text.split(":", 1)[1] if ":" in text else text  # the epoch
    return text.rsplit("-", 1)[0]  # the Debian revision (a native version has none)


def dc_release(dc_version: str) -> str:
    """The release in crm_mon's ``current_dc version``: ``2.1.5-a3f44794f94`` -> ``2.1.5`` (the build after ``-``)."""
    return dc_version.strip().split("-", 1)[0]


def release(version: str) -> Release:
    """``2.1.5``, ``2.1.0~rc1``, ``2.1`` as numbers; ValueError when it does not start with one."""
    found = _RELEASE.match(version.strip())
    if found is None:
        raise ValueError(f"{version!r} is not a version (x.y.z)")
    major, minor, patch = found.groups()
    return int(major), int(minor), int(patch or 0)


def _known(version: str) -> tuple[str, str | None] | None:
    """The table's row for an upstream version; None for one it lacks or a pre-release (``~rc1``)."""
    text = version.strip()
    found = _RELEASE.match(text)
    if found is None or found.group(3) is None or text[found.end():][:1] not in ("", "+"):
        return None
    return RELEASES.get(found.group(0))


def feature_set_of(version: str) -> str | None:
    """The CRM feature set a Pacemaker release speaks (None when the table does not know it)."""
    row = _known(version)
    return row[0] if row else None


def remote_protocol_of(version: str) -> str | None:
    """The Pacemaker Remote protocol version of a release (None when unknown, or before Pacemaker Remote)."""
    row = _known(version)
    return row[1] if row else None


def _shown(r: Release) -> str:
    return "%d.%d.%d" % r


def rolling_upgrade_problem(running: str, candidate: str) -> str | None:
    """Why the documentation does not allow a rolling upgrade from ``running`` to ``candidate`` (None: it does).

    Both are upstream versions (``2.1.5``). A downgrade of the major.minor series is refused. A major
    version the table lacks is allowed only from the same major: the major number grows exactly when some
    rolling upgrades stop being possible, so a jump into an unknown major is refused as undocumented.
    """
    old, new = release(running), release(candidate)
    if new[:2] < old[:2]:
        return (f"Pacemaker {candidate} is a downgrade from the running {running} (series {old[0]}.{old[1]} to "
                f"{new[0]}.{new[1]}): a rolling downgrade is not supported; keep the candidate at {old[0]}.{old[1]} or "
                f"later (apt preferences), or downgrade with a complete cluster shutdown")
    minimum = ROLLING_MINIMUM.get(new[0])
    if minimum is None:
        if new[0] == old[0]:
            return None
        return (f"a rolling upgrade from Pacemaker {running} to {candidate} is not documented ({DOC} lists no "
                f"Pacemaker {new[0]}.y.z, and a new major version may not allow one): read its release notes, "
                f"then {ALTERNATIVES}")
    if old < minimum:
        return (f"a rolling upgrade from Pacemaker {running} to {candidate} is not supported (Pacemaker "
                f"{new[0]}.y.z needs every other node at {_shown(minimum)} or later, {DOC}): {ALTERNATIVES}")
    return None


def _feature_set(text: str) -> Release:
    try:
        return release(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a CRM feature set (x.y.z)") from None


def feature_set_problem(running_feature_set: str, candidate_feature_set: str | None) -> str | None:
    """Why a node with ``candidate_feature_set`` could not join a DC with ``running_feature_set`` (None: it can).

    Pacemaker's rule (``feature_set_compatible()``): the same major number, and the DC's minor number the
    same as or older than the joining node's; before feature set 3.1.0 the minor-minor number counts too.
    An unknown candidate feature set (None) is no problem here: the version rule alone then applies.
    """
    if candidate_feature_set is None:
        return None
    dc, joining = _feature_set(running_feature_set), _feature_set(candidate_feature_set)
    old_rule = min(dc, joining) < (3, 1, 0)
    if dc[0] == joining[0] and (dc <= joining if old_rule else dc[1] <= joining[1]):
        return None
    if dc[0] != joining[0]:
        why = "a different major number: no mixed-version cluster is possible, not even for a rolling upgrade"
    else:
        why = "an older one than the DC's: the DC would refuse its join"
    return (f"the candidate Pacemaker's CRM feature set {candidate_feature_set} is {why} (the running DC has "
            f"{running_feature_set}); {ALTERNATIVES}")


def remote_protocol_problem(running: str, candidate: str, remote_nodes: Sequence[str]) -> str | None:
    """Why upgraded cluster nodes could lose the Pacemaker Remote nodes ``remote_nodes`` (None: they would not).

    Pacemaker Remote nodes accept connections only from cluster nodes with the same or a newer protocol
    version: a candidate with an older one than the running DC's is refused while the cluster has remote
    nodes. A newer one is fine for cluster nodes (upgrade every cluster node before any remote node).
    """
    old, new = remote_protocol_of(running), remote_protocol_of(candidate)
    if not remote_nodes or old is None or new is None or release(new) >= release(old):
        return None
    return (f"Pacemaker {candidate} speaks Pacemaker Remote protocol {new}, older than the running {running}'s "
            f"{old}: the remote nodes {', '.join(remote_nodes)} would refuse connections from upgraded cluster "
            f"nodes; keep Pacemaker at {running} or later")


def verify_errors(returncode: int, output: str) -> list[str]:
    """The errors in crm_verify's output (``-V``, stderr), one per line; empty when it found none.

    Exit code 0 is a clean check. Pacemaker 2.1 exits 78 for warnings alone too, so the text decides:
    its "error:" lines, else its closing sentence when that says errors were found; warnings are not errors.
    A non-zero exit with neither is reported as an error, with crm_verify's last line.
    """
    if returncode == 0:
        return []
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [m.group(1).strip() for m in map(_VERIFY_ERROR.match, lines) if m]
    if errors:
        return errors
    closing = [line for line in lines if any(s in line for s in _VERIFY_ERRORS_FOUND)]
    if closing:
        return closing[:1]
    if any(s in line for line in lines for s in _VERIFY_WARNINGS_ONLY):
        return []
    return [f"crm_verify exited {returncode}" + (f": {lines[-1]}" if lines else " and said nothing")]
