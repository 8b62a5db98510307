"""Building the Debian package once per test session (``make deb-build``), for the packaging and lab tests.

Needs debhelper, dh-python, pybuild-plugin-pyproject and lintian on the host (``make deb-deps``;
``make test`` installs them). A missing tool fails, naming what to install: nothing is skipped.
``UPGRADER_DEB=path/to/upgrader_VERSION_all.deb`` uses a package built before instead.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

TREE = Path(__file__).resolve().parents[2]
# Debian's own tools only (a virtualenv's or pyenv's python must not build the package).
DEBIAN_ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
DEBIAN_ENV["PATH"] = "/usr/sbin:/usr/bin:/sbin:/bin"
BUILD_PACKAGES = ("debhelper", "dh-python", "pybuild-plugin-pyproject", "python3-all", "python3-setuptools",
                  "python3-wheel", "dpkg-dev", "lintian")
HOOK = "/usr/lib/upgrader/rolling-upgrade-hook"
CONFFILES = {"/etc/apt/apt.conf.d/20rolling-upgrade-hooks", "/etc/apt/apt.conf.d/50rolling-upgrade.conf",
             "/etc/apt/apt.conf.d/51rolling-upgrade-unattended", "/etc/dpkg/dpkg.cfg.d/rolling-upgrade",
             "/etc/cron.d/rolling-upgrade", "/etc/needrestart/conf.d/50rolling-upgrade.conf",
             "/etc/logrotate.d/upgrader"}


def run(*argv: str, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=DEBIAN_ENV, **kw)


def version() -> str:
    return run("dpkg-parsechangelog", "-l", str(TREE / "debian/changelog"), "-S", "Version").stdout.strip()


@pytest.fixture(scope="session")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("UPGRADER_DEB")
    if given:
        assert Path(given).is_file(), f"UPGRADER_DEB={given}: no such file"
        return Path(given)
    missing = [p for p in BUILD_PACKAGES
               if "install ok installed" not in run("dpkg-query", "-W", "-f", "${Status}", p).stdout]
    if missing:
        pytest.fail(f"building the Debian package needs {' '.join(missing)}: run 'make deb-deps' (as root)")
    dist = tmp_path_factory.mktemp("dist")
    built = run("make", "-s", "--no-print-directory", "-C", str(TREE), "deb-build", f"DIST={dist}", timeout=600)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    path = dist / f"upgrader_{version()}_all.deb"
    assert path.is_file(), sorted(p.name for p in dist.iterdir())
    return path


