"""Shared fixtures: the real lab, brought up once per session and always torn down."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.packaging.build import deb  # noqa: F401 - the session's built package, a fixture for lab tests too
from upgrader_lab import lab as ops
from upgrader_lab.client import LabClient
from upgrader_lab.layout import DEFAULT_PROFILE, Lab


def lab_name(suffix: str = "") -> str:
    """A name of our own, so parallel test runs never share a lab."""
    return f"t{os.getpid() % 100000}{suffix}"[:8]


@contextmanager
def private_lab(suffix: str = "", nodes: int | None = None, apps: int = 3,
                profile: str = DEFAULT_PROFILE) -> Iterator[Lab]:
    """A lab of this test run's own, always torn down (``nodes`` None: the profile's usual count, 3 by default)."""
    name = lab_name(suffix)
    try:
        the_lab, _ = ops.up(name, nodes=nodes, apps=apps, profile=profile)
        yield the_lab
    finally:
        ops.down(name)


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """A 3-node lab with 3 applications at version 1 (session-wide)."""
    with private_lab() as the_lab:
        yield the_lab


@pytest.fixture()
def client(lab: Lab) -> Iterator[LabClient]:
    with LabClient(lab.client_netns) as c:
        yield c
