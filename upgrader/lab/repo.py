"""The lab's APT repository: the demo package built with dpkg-deb, indexed by apt-ftparchive.

Two suites, ``lab`` and ``lab-security`` (origin ``upgrader-lab``), served
as a trusted ``file:`` source that every node sees through its overlay. A
suite holds exactly the version last published into it.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from upgrader.lab.layout import PACKAGE, LabError
from upgrader.runner import Runner

SUITES = ("lab", "lab-security")
ORIGIN = "upgrader-lab"
VERSION_RE = re.compile(r"^(?:[0-9]+:)?[0-9][A-Za-z0-9.+~]*(?:-[A-Za-z0-9.+~]+)?$")
APP_SOURCE = Path(__file__).with_name("demo_app.py")

_run = Runner(timeout=60)


def check_version(version: str) -> str:
    if not VERSION_RE.match(version):
        raise LabError(f"version {version!r} is not a Debian version string (e.g. 2, 1.1, 2.0-1)")
    return version


def sources_entry(repo: Path) -> str:
    """The deb822 source every node uses."""
    return (f"Types: deb\nURIs: file:{repo}\nSuites: {' '.join(SUITES)}\n"
            "Components: main\nTrusted: yes\n")


def published(repo: Path) -> dict[str, str]:
    """Version per suite, from the pool (the suite's only .deb)."""
    found = {}
    for suite in SUITES:
        for deb in sorted((repo / "pool" / suite).glob(f"{PACKAGE}_*.deb")):
            found[suite] = deb.name.split("_")[1].replace("%3a", ":")
    return found


def publish(repo: Path, version: str, *, security: bool = False, bad: bool = False,
            broken_postinst: bool = False) -> Path:
    """Build the package at exactly ``version`` and make it the suite's only version."""
    check_version(version)
    every = {d.name.split("_")[1].replace("%3a", ":") for d in repo.glob(f"**/{PACKAGE}_*.deb")}
    if version in every:
        raise LabError(f"version {version} of {PACKAGE} was published already; publish a new version")
    suite = "lab-security" if security else "lab"
    pool = repo / "pool" / suite
    pool.mkdir(parents=True, exist_ok=True)
    archive = repo / "archive"
    archive.mkdir(exist_ok=True)
    for old in pool.glob("*.deb"):
        old.replace(archive / old.name)
    deb = pool / f"{PACKAGE}_{version.replace(':', '%3a')}_all.deb"
    _build(deb, version, bad=bad, broken_postinst=broken_postinst)
    index(repo)
    return deb


def _build(deb: Path, version: str, *, bad: bool, broken_postinst: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="upgrader-deb-") as tmp:
        root = Path(tmp)
        (root / "DEBIAN").mkdir()
        (root / "DEBIAN/control").write_text(
            f"Package: {PACKAGE}\nVersion: {version}\nArchitecture: all\nSection: libs\n"
            "Priority: optional\nMaintainer: upgrader lab <lab@invalid>\n"
            "Description: upgrader lab library the demo application runs on\n")
        if broken_postinst:
            postinst = root / "DEBIAN/postinst"
            postinst.write_text("#!/bin/sh\necho 'demo-libfoo: postinst fails on purpose (--broken-postinst)' >&2\n"
                                "exit 1\n")
            postinst.chmod(0o755)
        share = root / "usr/share" / PACKAGE
        share.mkdir(parents=True)
        (share / "VERSION").write_text(version + "\n")
        if bad:
            (share / "BROKEN").write_text("this build answers 500 on /health (--bad)\n")
        lib = root / "usr/lib" / PACKAGE
        lib.mkdir(parents=True)
        shutil.copy(APP_SOURCE, lib / "app.py")
        _run.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(deb)])


def index(repo: Path) -> None:
    """Write Packages and Release for every suite."""
    for suite in SUITES:
        (repo / "pool" / suite).mkdir(parents=True, exist_ok=True)
        dist = repo / "dists" / suite
        binary = dist / "main" / "binary-amd64"
        binary.mkdir(parents=True, exist_ok=True)
        packages = _run.run(["apt-ftparchive", "packages", f"pool/{suite}"], what="apt-ftparchive packages",
                            cwd=repo).stdout
        (binary / "Packages").write_text(packages)
        opts = {"Origin": ORIGIN, "Label": ORIGIN, "Suite": suite, "Codename": suite,
                "Architectures": "amd64", "Components": "main"}
        argv = ["apt-ftparchive"]
        for key, value in opts.items():
            argv += ["-o", f"APT::FTPArchive::Release::{key}={value}"]
        (dist / "Release").unlink(missing_ok=True)
        release = _run.run(argv + ["release", str(dist)], what="apt-ftparchive release").stdout
        (dist / "Release").write_text(release)

