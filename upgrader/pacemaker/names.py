"""Validation of every value we put into CIB XML, an XPath or a command line.

Only values matching these patterns ever reach Pacemaker, so no quote, angle
bracket or option-looking string can change what an XPath or XML means.
"""

from __future__ import annotations

import re

ATTRIBUTE_PREFIX = "rolling-upgrade-"

_NODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}")
_PHASE = re.compile(r"[a-z][a-z0-9_-]{0,39}")
_ATTRIBUTE = re.compile(re.escape(ATTRIBUTE_PREFIX) + r"[a-z0-9][a-z0-9_-]{0,62}")
_VALUE = re.compile(r"[\w.:@+/=, -]{0,256}")
# Debian policy: a package name is [a-z0-9][a-z0-9+.-]+; python-apt names a foreign one NAME:ARCH.
_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]{1,99}(?::[a-z0-9][a-z0-9-]{0,31})?")
# Debian policy: [epoch:]upstream[-revision]; '-' in upstream only with a revision, ':' only after an epoch.
_VERSION = re.compile(r"(?:[0-9]{1,9}:)?(?:[A-Za-z0-9][A-Za-z0-9.+~]*|[A-Za-z0-9][A-Za-z0-9.+~-]*-[A-Za-z0-9.+~]+)")
VERSION_MAX = 128
_UTC_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")


class BadValue(ValueError):
    """A value that may not go into the CIB, an XPath or a command line."""


def _check(kind: str, value: str, pattern: re.Pattern[str], hint: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise BadValue(f"invalid {kind} {value!r}: {hint}")
    return value


def node_name(value: str) -> str:
    """A cluster node name (a hostname)."""
    return _check("node name", value, _NODE, "use letters, digits, '.', '_' or '-' (at most 63)")


def run_id(value: str) -> str:
    """The identifier of one upgrade run."""
    return _check("run id", value, _RUN_ID, "use letters, digits and . _ : @ + - (at most 128)")


def phase(value: str) -> str:
    """The name of a phase of an upgrade run."""
    return _check("phase", value, _PHASE, "use lower-case letters, digits, '_' or '-' (at most 40)")


def attribute_name(value: str) -> str:
    """A node attribute of ours: always prefixed with ``rolling-upgrade-``."""
    return _check(
        "attribute name", value, _ATTRIBUTE, f"it must start with {ATTRIBUTE_PREFIX!r}, then lower-case letters, digits, '_' or '-'"
    )


def attribute_value(value: str) -> str:
    """A value of one of our node attributes: printable, no quotes or angle brackets."""
    return _check("attribute value", value, _VALUE, "use letters, digits, spaces and . : @ + / = , _ - (at most 256)")


def package_name(value: str) -> str:
    """A Debian package name, optionally ``NAME:ARCH`` (as python-apt names a foreign-architecture one)."""
    return _check("package name", value, _PACKAGE, "Debian package names are lower-case letters, digits and "
                  "+ . - (at least 2, starting with a letter or digit), optionally :ARCH")


def package_version(value: str) -> str:
    """A Debian version (``[epoch:]upstream[-revision]``, at most :data:`VERSION_MAX` characters)."""
    if isinstance(value, str) and len(value) > VERSION_MAX:
        raise BadValue(f"invalid package version {value[:40]!r}...: longer than {VERSION_MAX} characters")
    return _check("package version", value, _VERSION, "a Debian version is [epoch:]upstream[-revision] of letters, "
                  "digits and . + ~ (and - before the revision)")


def utc_time(value: str) -> str:
    """A moment as we write it into the CIB: ISO 8601, UTC, to the second (``2026-12-01T02:10:00Z``)."""
    return _check("time", value, _UTC_TIME, "write it as YYYY-MM-DDTHH:MM:SSZ (UTC)")
