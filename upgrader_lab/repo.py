"""The lab's APT repository: the demo package built with dpkg-deb, indexed by apt-ftparchive.

Two suites, ``lab`` and ``lab-security`` (origin ``upgrader-lab``), served
as a trusted ``copy:`` source that every node sees through its overlay (``copy:``,
not ``file:``: apt copies each archive into the node's cache, as it downloads
one from a mirror, so a run's staging is real; :mod:`upgrader_lab.slowrepo` serves
the same directory over HTTP at a bounded rate, a slow mirror). A
suite holds exactly the version last published into it.

Builds for the procedure's branches: ``bad`` (the application answers 500),
``broken_postinst`` (dpkg fails), ``postinst_sleep`` (dpkg takes that long),
``padding_bytes`` (the archive carries that many random bytes: a slow download),
``reboot_required`` (the postinst asks for a reboot, as a kernel does), and
``ha_stack``: the demo package then depends on ``resource-agents-lab`` of
the same version, a cluster-stack package by its name, whose postinst does
what pacemaker's does (``invoke-rc.d pacemaker start``) and logs to
/var/log/resource-agents-lab.log whether the stack ran while it was
configured, whose policy-rc.d was in place and what it answered for
starting pacemaker.

:func:`publish_set` publishes a set of many tiny packages (``demo-pkg-001`` ..) at one version: a point
update's size for the benchmarks (``upgrader_bench.automatic``).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from upgrader_lab.layout import PACKAGE, LabError
from upgrader.runner import Runner

SUITES = ("lab", "lab-security")
ORIGIN = "upgrader-lab"
VERSION_RE = re.compile(r"^(?:[0-9]+:)?[0-9][A-Za-z0-9.+~]*(?:-[A-Za-z0-9.+~]+)?$")
APP_SOURCE = Path(__file__).with_name("demo_app.py")
LIBRARY_NAME = "libfoo.so.1"  # in /usr/lib/PACKAGE: what the application maps (see _build)

_run = Runner(timeout=60)


def check_version(version: str) -> str:
    if not VERSION_RE.match(version):
        raise LabError(f"version {version!r} is not a Debian version string (e.g. 2, 1.1, 2.0-1)")
    return version


def sources_entry(repo: Path) -> str:
    """The deb822 source every node uses: the repository's directory as the node sees it."""
    return _entry(f"copy:{repo}")


def http_sources_entry(address: str, port: int) -> str:
    """The same source served over HTTP (:mod:`upgrader_lab.slowrepo`) from ``address:port`` on the lab's bridge."""
    return _entry(f"http://{address}:{port}/")


def _entry(uri: str) -> str:
    return (f"Types: deb\nURIs: {uri}\nSuites: {' '.join(SUITES)}\n"
            "Components: main\nTrusted: yes\n")


def published(repo: Path) -> dict[str, str]:
    """Version per suite, from the pool (the suite's only .deb)."""
    found = {}
    for suite in SUITES:
        for deb in sorted((repo / "pool" / suite).glob(f"{PACKAGE}_*.deb")):
            found[suite] = deb.name.split("_")[1].replace("%3a", ":")
    return found


HA_PACKAGE = "resource-agents-lab"
HA_LOG = "/var/log/resource-agents-lab.log"


def publish(repo: Path, version: str, *, security: bool = False, bad: bool = False,
            broken_postinst: bool = False, postinst_sleep: float = 0, reboot_required: bool = False,
            ha_stack: bool = False, padding_bytes: int = 0) -> Path:
    """Build the package at exactly ``version`` and make it the suite's only version.

    ``padding_bytes``: the package also ships that many random bytes (``/usr/share/demo-libfoo/padding``,
    incompressible), so its archive is about that large: a download that takes a while from a slow mirror.
    """
    check_version(version)
    if padding_bytes < 0 or padding_bytes > MAX_PADDING:
        raise LabError(f"padding of {padding_bytes} bytes is out of range: 0 to {MAX_PADDING} "
                       f"({MAX_PADDING >> 20} MiB)")
    every = {d.name.split("_")[1].replace("%3a", ":") for d in repo.glob(f"**/{PACKAGE}_*.deb")}
    if version in every:
        raise LabError(f"version {version} of {PACKAGE} was published already; publish a new version")
    suite = "lab-security" if security else "lab"
    pool = repo / "pool" / suite
    pool.mkdir(parents=True, exist_ok=True)
    archive = repo / "archive"
    archive.mkdir(exist_ok=True)
    for old in [*pool.glob(f"{PACKAGE}_*.deb"), *pool.glob(f"{HA_PACKAGE}_*.deb")]:
        old.replace(archive / old.name)
    deb = pool / f"{PACKAGE}_{version.replace(':', '%3a')}_all.deb"
    _build(deb, version, bad=bad, broken_postinst=broken_postinst, postinst_sleep=postinst_sleep,
           reboot_required=reboot_required, depends=f"{HA_PACKAGE} (= {version})" if ha_stack else None,
           padding_bytes=padding_bytes)
    if ha_stack:
        _build_ha(pool / f"{HA_PACKAGE}_{version.replace(':', '%3a')}_all.deb", version)
    index(repo)
    return deb


TOOLS_PACKAGE = "demo-tools"  # a second package, unrelated to the application: a plain fix beside a security one


def publish_tools(repo: Path, version: str, *, security: bool = False) -> Path:
    """Build :data:`TOOLS_PACKAGE` at exactly ``version`` (one file, no scripts) as its suite's only version."""
    check_version(version)
    pool = repo / "pool" / ("lab-security" if security else "lab")
    pool.mkdir(parents=True, exist_ok=True)
    archive = repo / "archive"
    archive.mkdir(exist_ok=True)
    for old in pool.glob(f"{TOOLS_PACKAGE}_*.deb"):
        old.replace(archive / old.name)
    deb = pool / f"{TOOLS_PACKAGE}_{version.replace(':', '%3a')}_all.deb"
    with tempfile.TemporaryDirectory(prefix="upgrader-deb-") as tmp:
        root = Path(tmp)
        (root / "DEBIAN").mkdir()
        (root / "DEBIAN/control").write_text(
            f"Package: {TOOLS_PACKAGE}\nVersion: {version}\nArchitecture: all\nSection: utils\n"
            "Priority: optional\nMaintainer: upgrader lab <lab@invalid>\n"
            "Description: upgrader lab tools, unrelated to the demo application\n")
        share = root / "usr/share" / TOOLS_PACKAGE
        share.mkdir(parents=True)
        (share / "VERSION").write_text(version + "\n")
        _md5sums(root)
        _run.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(deb)])
    index(repo)
    return deb


SET_PREFIX = "demo-pkg-"  # publish_set's packages: demo-pkg-001, demo-pkg-002, ...
MAX_SET = 999


def set_names(count: int) -> list[str]:
    """The names of a package set of ``count``: ``demo-pkg-001`` .. ``demo-pkg-COUNT``."""
    if not 1 <= count <= MAX_SET:
        raise LabError(f"a package set of {count} is out of range: 1 to {MAX_SET}")
    return [f"{SET_PREFIX}{i:03d}" for i in range(1, count + 1)]


def publish_set(repo: Path, count: int, version: str, *, security: bool = False) -> list[Path]:
    """``count`` tiny packages (:func:`set_names`: one file each, no scripts, unrelated to the application),
    all at exactly ``version``, as the suite's only version of each: a stand-in for a point update of many
    small packages (issue 20: 135 packages). Their archives, in name order."""
    check_version(version)
    names = set_names(count)
    pool = repo / "pool" / ("lab-security" if security else "lab")
    pool.mkdir(parents=True, exist_ok=True)
    archive = repo / "archive"
    archive.mkdir(exist_ok=True)
    for old in pool.glob(f"{SET_PREFIX}*_*.deb"):
        old.replace(archive / old.name)
    debs = []
    with tempfile.TemporaryDirectory(prefix="upgrader-set-") as tmp:
        for name in names:
            root = Path(tmp) / name
            (root / "DEBIAN").mkdir(parents=True)
            (root / "DEBIAN/control").write_text(
                f"Package: {name}\nVersion: {version}\nArchitecture: all\nSection: misc\n"
                "Priority: optional\nMaintainer: upgrader lab <lab@invalid>\n"
                "Description: upgrader lab package set member (a point update of many small packages)\n")
            share = root / "usr/share" / name
            share.mkdir(parents=True)
            (share / "VERSION").write_text(version + "\n")
            _md5sums(root)
            deb = pool / f"{name}_{version.replace(':', '%3a')}_all.deb"
            _run.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(deb)])
            debs.append(deb)
    index(repo)
    return debs


def _build(deb: Path, version: str, *, bad: bool, broken_postinst: bool, postinst_sleep: float,
           reboot_required: bool, depends: str | None, padding_bytes: int = 0) -> None:
    with tempfile.TemporaryDirectory(prefix="upgrader-deb-") as tmp:
        root = Path(tmp)
        (root / "DEBIAN").mkdir()
        (root / "DEBIAN/control").write_text(
            f"Package: {PACKAGE}\nVersion: {version}\nArchitecture: all\nSection: libs\n"
            + (f"Depends: {depends}\n" if depends else "")
            + "Priority: optional\nMaintainer: upgrader lab <lab@invalid>\n"
            "Description: upgrader lab library the demo application runs on\n")
        script = ["#!/bin/sh"]
        if postinst_sleep:
            script.append(f"sleep {float(postinst_sleep):g}")
        if reboot_required:
            script += ["touch /run/reboot-required", f"echo {PACKAGE} >> /run/reboot-required.pkgs"]
        if broken_postinst:
            script += ["echo 'demo-libfoo: postinst fails on purpose (--broken-postinst)' >&2", "exit 1"]
        if len(script) > 1:
            postinst = root / "DEBIAN/postinst"
            postinst.write_text("\n".join(script) + "\n")
            postinst.chmod(0o755)
        share = root / "usr/share" / PACKAGE
        share.mkdir(parents=True)
        (share / "VERSION").write_text(version + "\n")
        if bad:
            (share / "BROKEN").write_text("this build answers 500 on /health (--bad)\n")
        if padding_bytes:
            write_padding(share / PADDING, padding_bytes)
        lib = root / "usr/lib" / PACKAGE
        lib.mkdir(parents=True)
        shutil.copy(APP_SOURCE, lib / "app.py")
        # The "library" the application maps for as long as it runs, as a process maps libssl: a new
        # version replaces it, and only a restart on the new root maps the new one (level 4 tells).
        # A real shared library (zlib's code under another name, this version's words appended), so that
        # the cluster stack can load it too (LD_PRELOAD, see node_init.STACK_PRELOAD).
        (lib / LIBRARY_NAME).write_bytes(_zlib().read_bytes() + f"\ndemo-libfoo {version}\n".encode())
        _md5sums(root)
        _run.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(deb)])


PADDING = "padding"  # in /usr/share/PACKAGE: random bytes that make the archive large (publish's padding_bytes)
MAX_PADDING = 256 << 20


def write_padding(path: Path, size: int, chunk: int = 1 << 20) -> None:
    """``size`` random bytes at ``path``: gzip cannot shrink them, so the .deb is at least that large."""
    with path.open("wb") as f:
        left = size
        while left > 0:
            f.write(os.urandom(min(chunk, left)))
            left -= chunk


def _zlib() -> Path:
    found = sorted(Path("/usr/lib").glob("*/libz.so.1")) or sorted(Path("/lib").glob("*/libz.so.1"))
    if not found:
        raise LabError("no libz.so.1 under /usr/lib/*/ to build the lab's library from (install zlib1g)")
    return found[0].resolve()


def _md5sums(root: Path) -> None:
    """DEBIAN/md5sums as dh_md5sums writes it: dpkg then knows each file's installed content."""
    import hashlib

    lines = [f"{hashlib.md5(f.read_bytes()).hexdigest()}  {f.relative_to(root)}" for f in sorted(root.rglob("*"))
             if f.is_file() and not f.relative_to(root).parts[0] == "DEBIAN"]
    (root / "DEBIAN/md5sums").write_text("\n".join(lines) + "\n")


HA_POSTINST = """#!/bin/sh
# As pacemaker's own postinst: start the stack through invoke-rc.d, which asks policy-rc.d first.
set -e
if [ "$1" = configure ]; then
    stack=none
    for comm in /proc/[0-9]*/comm; do
        case "$(cat "$comm" 2>/dev/null)" in corosync|pacemakerd) stack=running ;; esac
    done
    policy=none
    answer=none
    if [ -x /usr/sbin/policy-rc.d ]; then
        policy=other
        if grep -q "rolling-upgrade: cluster stack stopped" /usr/sbin/policy-rc.d; then policy=rolling-upgrade; fi
        answer=0
        /usr/sbin/policy-rc.d pacemaker start >/dev/null 2>&1 || answer=$?
    fi
    echo "configure {version}: stack=$stack policy=$policy pacemaker-start=$answer" >> {log}
    invoke-rc.d pacemaker start >/dev/null 2>&1 || true
fi
"""


def _build_ha(deb: Path, version: str) -> None:
    with tempfile.TemporaryDirectory(prefix="upgrader-deb-") as tmp:
        root = Path(tmp)
        (root / "DEBIAN").mkdir()
        (root / "DEBIAN/control").write_text(
            f"Package: {HA_PACKAGE}\nVersion: {version}\nArchitecture: all\nSection: admin\n"
            "Priority: optional\nMaintainer: upgrader lab <lab@invalid>\n"
            "Description: upgrader lab stand-in for a cluster-stack package (resource agents)\n")
        postinst = root / "DEBIAN/postinst"
        postinst.write_text(HA_POSTINST.format(version=version, log=HA_LOG))
        postinst.chmod(0o755)
        share = root / "usr/share" / HA_PACKAGE
        share.mkdir(parents=True)
        (share / "VERSION").write_text(version + "\n")
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

