"""Install (or remove) the guard: APT and dpkg snippets and the hook wrapper; the nightly cron entry.

Also the unattended-upgrades and needrestart snippets for cluster nodes, and
/usr/local/sbin/rolling-upgrade (a link to this venv's command, which the
cron entry runs; a removed tool leaves a dangling link that cron skips).

``python -m upgrader.guard.install [--root DIR] [--uninstall]`` (``make
install`` runs it with the venv's python). The wrapper written to
/usr/local/lib/upgrader/rolling-upgrade-hook names this python and this
source tree, so it must be run by the tool's own interpreter. When the
interpreter or the source tree is gone the wrapper exits 0 (a removed tool
never blocks apt).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import upgrader

SOURCE = Path(upgrader.__file__).resolve().parents[1]
HOOK = Path("usr/local/lib/upgrader/rolling-upgrade-hook")
SNIPPETS = {
    "apt.conf.d/20rolling-upgrade-hooks": Path("etc/apt/apt.conf.d/20rolling-upgrade-hooks"),
    "apt.conf.d/50rolling-upgrade.conf": Path("etc/apt/apt.conf.d/50rolling-upgrade.conf"),
    "dpkg.cfg.d/rolling-upgrade": Path("etc/dpkg/dpkg.cfg.d/rolling-upgrade"),
    "apt.conf.d/51rolling-upgrade-unattended": Path("etc/apt/apt.conf.d/51rolling-upgrade-unattended"),
    "cron.d/rolling-upgrade": Path("etc/cron.d/rolling-upgrade"),
    "needrestart/50rolling-upgrade.conf": Path("etc/needrestart/conf.d/50rolling-upgrade.conf"),
    "logrotate.d/upgrader": Path("etc/logrotate.d/upgrader"),
}
COMMAND = Path("usr/local/sbin/rolling-upgrade")  # what cron.d/rolling-upgrade runs: this venv's command
# Written by 'rolling-upgrade automatic window', not by install: uninstall removes it too, so a removed tool
# (no window any more) leaves the node to unattended-upgrades again, never with no automatic upgrades at all.
AUTOMATIC = Path("etc/apt/apt.conf.d/52rolling-upgrade-automatic")


def wrapper(python: str, source: Path) -> str:
    """The installed hook: run the source tree's hook with ``python``, or nothing if either is gone."""
    py, hook = shlex.quote(python), shlex.quote(str(source / "hooks" / "rolling-upgrade-hook"))
    return (
        "#!/bin/sh\n# upgrader's APT/dpkg hook, written by 'make install' (python -m upgrader.guard.install).\n"
        f"test -x {py} && test -f {hook} || exit 0\n"
        f"exec {py} -sSE {hook} \"$@\"\n"
    )


def install(root: Path = Path("/"), python: str = sys.executable, source: Path = SOURCE) -> list[Path]:
    """Write the snippets and the wrapper under ``root``; return what was written."""
    written = []
    for rel, target in SNIPPETS.items():
        path = root / target
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text((source / rel).read_text())
        path.chmod(0o644)
        written.append(path)
    hook = root / HOOK
    hook.parent.mkdir(parents=True, exist_ok=True)
    tmp = hook.with_name(hook.name + ".tmp")
    tmp.write_text(wrapper(python, source))
    tmp.chmod(0o755)
    tmp.replace(hook)
    command = root / COMMAND
    command.parent.mkdir(parents=True, exist_ok=True)
    command.unlink(missing_ok=True)
    command.symlink_to(Path(python).parent / "rolling-upgrade")
    return [*written, hook, command]


def uninstall(root: Path = Path("/")) -> list[Path]:
    """Remove what :func:`install` wrote; return what was there."""
    removed = []
    for path in (root / HOOK, root / COMMAND, *(root / t for t in SNIPPETS.values()), root / AUTOMATIC):
        if path.exists() or path.is_symlink():
            path.unlink()
            removed.append(path)
    return removed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m upgrader.guard.install", description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, default=Path("/"), help="install under this directory (default /)")
    p.add_argument("--uninstall", action="store_true", help="remove the installed files instead")
    args = p.parse_args(argv)
    for path in uninstall(args.root) if args.uninstall else install(args.root):
        print(("removed " if args.uninstall else "installed ") + str(path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
