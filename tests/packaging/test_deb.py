"""The Debian package (debian/, ``make deb``): built once per session, then read with dpkg-deb and lintian.

Needs debhelper, dh-python, pybuild-plugin-pyproject and lintian on the host (``make deb-deps``;
``make test`` installs them). A missing tool fails these tests, naming what to install: nothing is
skipped. ``UPGRADER_DEB=path/to/upgrader_VERSION_all.deb`` checks a package built before instead.
Nothing here touches the host's dpkg database: the package is only unpacked (dpkg-deb -x).
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

import upgrader
from tests.packaging.build import CONFFILES, DEBIAN_ENV, HOOK, TREE, run, version

pytestmark = pytest.mark.deb

@pytest.fixture(scope="session")
def unpacked(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package unpacked into a throw-away root (never installed on the host)."""
    root = tmp_path_factory.mktemp("root")
    got = run("dpkg-deb", "-x", str(deb), str(root))
    assert got.returncode == 0, got.stderr
    return root


def files(deb: Path) -> list[str]:
    listing = run("dpkg-deb", "-c", str(deb))
    assert listing.returncode == 0, listing.stderr
    return [line.split(None, 5)[5].removeprefix(".").split(" -> ")[0] for line in listing.stdout.splitlines()]


def field(deb: Path, name: str) -> str:
    return run("dpkg-deb", "-f", str(deb), name).stdout.strip()


def test_the_package_holds_the_product_alone_at_debian_paths(deb: Path) -> None:
    names = files(deb)
    assert "/usr/sbin/rolling-upgrade" in names and HOOK in names
    assert "/usr/lib/python3/dist-packages/upgrader/guard/hook.py" in names
    for dev in ("upgrader_lab", "upgrader_bench", "/tests/", "conftest", "/bench/", "hooks/rolling-upgrade-hook"):
        assert not [n for n in names if dev in n], dev
    assert not [n for n in names if n.startswith(("/usr/local", "/usr/bin/", "/opt"))]
    assert {n for n in names if n.startswith("/etc/") and not n.endswith("/")} == CONFFILES
    modes = {line.split()[-1].removeprefix("."): line.split()[0] for line in run("dpkg-deb", "-c", str(deb)).stdout.splitlines()}
    assert modes["/usr/sbin/rolling-upgrade"] == modes[HOOK] == "-rwxr-xr-x"
    assert field(deb, "Version") == version() == upgrader.__version__
    cfg = configparser.ConfigParser()
    cfg.read(TREE / "setup.cfg")
    assert cfg["metadata"]["version"] == upgrader.__version__
    assert field(deb, "Architecture") == "all" and deb.name == f"upgrader_{version()}_all.deb"


def test_every_module_of_the_product_is_in_the_package(deb: Path) -> None:
    """Each .py under upgrader/ at its place in dist-packages (a directory without __init__.py was once left out)."""
    names = set(files(deb))
    tree = sorted(str(p.relative_to(TREE)) for p in (TREE / "upgrader").rglob("*.py"))
    missing = [p for p in tree if f"/usr/lib/python3/dist-packages/{p}" not in names]
    assert tree and missing == [], missing


def test_the_manual_pages_and_the_completion_are_in_the_package(deb: Path) -> None:
    names = set(files(deb))
    assert {"/usr/share/man/man8/rolling-upgrade.8.gz", "/usr/share/man/man5/rolling-upgrade.conf.5.gz",
            "/usr/share/bash-completion/completions/rolling-upgrade"} <= names


def test_every_file_in_etc_is_a_conffile(deb: Path) -> None:
    got = run("dpkg-deb", "-I", str(deb), "conffiles")
    assert got.returncode == 0, got.stderr
    assert set(got.stdout.split()) == CONFFILES


def test_it_depends_on_debians_own_packages(deb: Path) -> None:
    depends = {d.split()[0] for d in field(deb, "Depends").split(", ")}
    assert {"python3-apt", "python3-rich", "python3-tenacity", "pacemaker-cli-utils"} <= depends
    assert "python3:any" in depends or "python3" in depends
    assert "needrestart" in field(deb, "Suggests") and "needrestart" not in depends
    assert not [d for d in depends if "venv" in d or "virtualenv" in d]


def test_the_shipped_snippets_name_the_packages_hook_and_command(unpacked: Path) -> None:
    hooks = (unpacked / "etc/apt/apt.conf.d/20rolling-upgrade-hooks").read_text()
    dpkg = (unpacked / "etc/dpkg/dpkg.cfg.d/rolling-upgrade").read_text()
    cron = (unpacked / "etc/cron.d/rolling-upgrade").read_text()
    assert hooks.count(f"ROLLING_UPGRADE_HOOK={HOOK}") == 4 and dpkg.count(f"ROLLING_UPGRADE_HOOK={HOOK}") == 2
    assert cron.count("test -x /usr/sbin/rolling-upgrade && /usr/sbin/rolling-upgrade ") == 2
    for path in (unpacked / "etc").rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert "/usr/local/lib/upgrader" not in text and "/usr/local/sbin/rolling-upgrade" not in text, path
            assert "make install" not in text, path
    # Apart from those paths, what the package ships is what 'make install' writes.
    tree = (TREE / "apt.conf.d/20rolling-upgrade-hooks").read_text()
    assert hooks == tree.replace("/usr/local/lib/upgrader/", "/usr/lib/upgrader/")
    assert (unpacked / "etc/apt/apt.conf.d/50rolling-upgrade.conf").read_text() == \
        (TREE / "apt.conf.d/50rolling-upgrade.conf").read_text()


def test_the_unpacked_hook_finds_its_package_with_site_packages_off(unpacked: Path) -> None:
    hook = unpacked / HOOK.lstrip("/")
    env = {k: v for k, v in DEBIAN_ENV.items() if not k.startswith("PYTHON")}
    got = subprocess.run([str(hook)], capture_output=True, text=True, timeout=60, env=env, cwd="/")
    assert got.returncode == 2 and got.stderr.startswith("usage: rolling-upgrade-hook {pre-invoke|"), got.stderr
    assert hook.read_text().startswith("#!/usr/bin/python3 -sSE\n")
    # The same with /usr/bin/python3 by hand: the code it ran is the unpacked root's, site-packages stayed off.
    probe = ("import runpy, sys\nsys.argv = [HOOK]\ntry:\n    runpy.run_path(HOOK, run_name='__main__')\n"
             "except SystemExit as e:\n    print(e.code)\n"
             "print(sys.modules['upgrader'].__file__)\nprint(sys.flags.no_site, 'site' in sys.modules)\n")
    got = subprocess.run(["/usr/bin/python3", "-sSE", "-c", probe.replace("HOOK", repr(str(hook)))],
                         capture_output=True, text=True, timeout=60, env=env, cwd="/")
    code, where, flags = got.stdout.splitlines()
    assert code == "2", got.stderr
    assert where == str(unpacked / "usr/lib/python3/dist-packages/upgrader/__init__.py")
    assert flags == "1 False"


def test_the_command_is_an_entry_point_of_debians_python(unpacked: Path) -> None:
    script = (unpacked / "usr/sbin/rolling-upgrade").read_text()
    assert script.startswith("#!/usr/bin/python3\n") and "from upgrader.cli import main" in script


def test_purge_removes_the_tools_own_state_and_of_apt_only_the_file_it_wrote(unpacked: Path, deb: Path) -> None:
    control = unpacked.parent / (unpacked.name + "-control")
    assert run("dpkg-deb", "-e", str(deb), str(control)).returncode == 0
    postrm = (control / "postrm").read_text()
    assert "rm -rf /var/log/upgrader /var/lib/upgrader" in postrm
    # 'rolling-upgrade automatic window' wrote it (not a conffile); remove already hands the node back to
    # unattended-upgrades. No other path under /etc/apt: the conffiles are dpkg's.
    mentions = [line for line in postrm.splitlines() if "/etc/apt" in line and not line.lstrip().startswith("#")]
    assert mentions == ["\trm -f /etc/apt/apt.conf.d/52rolling-upgrade-automatic"], mentions
    assert run("sh", "-n", str(control / "postrm")).returncode == 0
    preinst = control / "preinst"  # debhelper's own, for the systemd units, and nothing else
    assert not preinst.exists() or "Automatically added by dh_installsystemd" in preinst.read_text()


def test_lintian_has_no_error_and_no_warning(deb: Path) -> None:
    assert shutil.which("lintian", path=DEBIAN_ENV["PATH"]), "lintian is missing: run 'make deb-deps' (as root)"
    got = run("lintian", "--fail-on", "error,warning", str(deb))
    tags = [line for line in got.stdout.splitlines() if line[:2] in ("E:", "W:")]
    assert got.returncode == 0 and not tags, got.stdout + got.stderr
    # Any override is explained by a comment right above it (there is none today).
    overrides = TREE / "debian/upgrader.lintian-overrides"
    lines = overrides.read_text().splitlines() if overrides.exists() else []
    for i, line in enumerate(lines):
        if line and not line.startswith("#"):
            assert i > 0 and lines[i - 1].startswith("#"), line


UNITS = ("rolling-upgrade-window.timer", "rolling-upgrade-window.service", "rolling-upgrade-resume.service")


def test_the_systemd_units_verify_and_are_enabled_by_the_package(deb: Path, unpacked: Path, tmp_path: Path) -> None:
    """systemd-analyze verify on the unpacked package, beside this machine's targets (no systemd runs here)."""
    root = tmp_path / "root"
    shutil.copytree(unpacked, root, symlinks=True)
    system = root / "lib/systemd/system"
    for target in Path("/lib/systemd/system").glob("*.target"):
        shutil.copy(target, system / target.name)
    units = [str(system / u) for u in UNITS]
    got = run("systemd-analyze", "verify", "--man=no", f"--root={root}", *units)
    assert got.returncode == 0 and got.stdout + got.stderr == "", got.stdout + got.stderr
    (system / "typo.service").write_text("[Service]\nType=oneshot\nExecStrat=/usr/sbin/rolling-upgrade window\n")
    bad = run("systemd-analyze", "verify", "--man=no", f"--root={root}", str(system / "typo.service"))
    assert bad.returncode != 0 and "Unknown key 'ExecStrat'" in bad.stderr  # the check has teeth
    postinst = run("dpkg-deb", "-I", str(deb), "postinst").stdout
    assert "deb-systemd-helper" in postinst and "rolling-upgrade-window.timer" in postinst
    assert "rolling-upgrade-resume.service" in postinst
    cron = (unpacked / "etc/cron.d/rolling-upgrade").read_text()
    assert "rolling-upgrade window --from-cron" in cron and "rolling-upgrade resume --from-cron" in cron
