"""What upgrades a cluster node by itself: unattended-upgrades through the APT hooks, or the nightly window.

``Rolling-Upgrade::Automatic`` names the choice. ``rolling-upgrade automatic window`` writes, on every
node, one file of plain APT configuration, :data:`PATH`::

    Rolling-Upgrade::Automatic "window";
    APT::Periodic::Unattended-Upgrade "0";

APT reads it after Debian's ``20auto-upgrades`` (debconf's ``"1"``), so apt-daily-upgrade.timer's
``apt.systemd.daily`` no longer starts unattended-upgrades, nor apt-daily.timer its ``--download-only`` run;
the package lists are still refreshed (``APT::Periodic::Update-Package-Lists`` is left as it is) and the
nightly window (``Rolling-Upgrade::Windows``) upgrades each node, the tool's own node upgrade, with
unattended-upgrades' origins and blacklist (the selection's defaults, :func:`upgrader.config._unattended`).
``rolling-upgrade automatic unattended-upgrades`` removes the file: 20auto-upgrades' value is back.
Nothing else is touched: not the timers, not 20auto-upgrades, not unattended-upgrades' own configuration.
Writing it again changes nothing (idempotent); the file is replaced atomically (a copy beside it whose name
starts with a dot, which APT skips, renamed over it).

:func:`local_state` says what this node does now, and what is wrong with it (:meth:`Local.problems`): the
window chosen while a later file turns unattended-upgrades' periodic run back on, or with no window set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from upgrader import config as configuration
from upgrader import etcfile
from upgrader.config import AUTOMATIC_CHOICES, AUTOMATIC_UNATTENDED, AUTOMATIC_WINDOW

__all__ = ["AUTOMATIC_CHOICES", "AUTOMATIC_UNATTENDED", "AUTOMATIC_WINDOW", "PATH", "PERIODIC", "AutomaticError",
           "Local", "local_state", "snippet", "write_local"]

PATH = configuration.DEFAULT_DIR / "52rolling-upgrade-automatic"
PERIODIC = "APT::Periodic::Unattended-Upgrade"  # what apt.systemd.daily reads: "0" never runs unattended-upgrades
ENABLE = "APT::Periodic::Enable"  # "0": apt.systemd.daily does nothing at all
UNATTENDED_PROGRAM = Path("/usr/bin/unattended-upgrade")
COMMAND = "rolling-upgrade automatic"


class AutomaticError(OSError):
    """The choice's file could not be written or removed; the message names it."""


def snippet() -> str:
    """The file :func:`write_local` writes for the window: the choice, and unattended-upgrades' periodic run off."""
    return (f"// Written by '{COMMAND} {AUTOMATIC_WINDOW}' (upgrader); '{COMMAND} {AUTOMATIC_UNATTENDED}' removes it.\n"
            "// The nightly window (Rolling-Upgrade::Windows) is this node's automatic upgrade: the tool's own node\n"
            "// upgrade, with unattended-upgrades' origins and blacklist. unattended-upgrades' daily run stands down\n"
            "// (this file sorts after Debian's 20auto-upgrades); the package lists are still refreshed.\n"
            f'Rolling-Upgrade::Automatic "{AUTOMATIC_WINDOW}";\n'
            f'{PERIODIC} "0";\n')


def write_local(choice: str, path: Path = PATH) -> bool:
    """This node's file made to say ``choice``: written (window) or removed (unattended-upgrades).
    Whether it changed. :class:`AutomaticError` when it cannot be; a ValueError for an unknown choice."""
    if choice not in AUTOMATIC_CHOICES:
        raise ValueError(f"{choice!r} is not a choice (use {' or '.join(AUTOMATIC_CHOICES)})")
    text = snippet() if choice == AUTOMATIC_WINDOW else None
    try:
        return etcfile.keep(path, text)
    except OSError as exc:
        raise AutomaticError(f"cannot {'write' if text else 'remove'} {path}: {exc.strerror or exc}") from None


@dataclass(frozen=True)
class Local:
    """This node's automatic path, as its APT configuration says now."""

    choice: str  # Rolling-Upgrade::Automatic
    periodic: str  # APT::Periodic::Unattended-Upgrade as APT reads it ("" unset: apt.systemd.daily's 0)
    enabled: bool = True  # APT::Periodic::Enable is not "0"
    installed: bool = True  # unattended-upgrades is installed here
    file: bool = False  # PATH is there
    windows: int = 0  # entries of Rolling-Upgrade::Windows
    path: str = str(PATH)

    @property
    def unattended_runs(self) -> bool:
        """Whether apt.systemd.daily starts unattended-upgrades here (interval "0" or unset: it never does)."""
        return self.installed and self.enabled and self.periodic.strip() not in ("", "0")

    def problems(self) -> list[str]:
        """What keeps this node from doing what the choice says, each with what to do (empty: nothing)."""
        found = []
        if self.choice == AUTOMATIC_WINDOW and self.unattended_runs:
            where = (f"a file after {Path(self.path).name} sets it again; remove it there" if self.file
                     else f"{self.path} is missing; run '{COMMAND} {AUTOMATIC_WINDOW}'")
            found.append(f"Rolling-Upgrade::Automatic is {AUTOMATIC_WINDOW} but {PERIODIC} is {self.periodic!r} "
                         f"here, so unattended-upgrades still upgrades this node every day ({where})")
        if self.choice == AUTOMATIC_WINDOW and not self.windows:
            found.append(f"Rolling-Upgrade::Automatic is {AUTOMATIC_WINDOW} but Rolling-Upgrade::Windows has no "
                         "entry here: no window opens and nothing upgrades this node by itself; set Windows, or "
                         f"'{COMMAND} {AUTOMATIC_UNATTENDED}'")
        if self.choice == AUTOMATIC_UNATTENDED and self.file:
            found.append(f"{self.path} stands unattended-upgrades down but Rolling-Upgrade::Automatic is "
                         f"{AUTOMATIC_UNATTENDED} (a later file sets it); '{COMMAND} {AUTOMATIC_UNATTENDED}' "
                         "removes the file, or drop that later setting")
        return found

    def line(self) -> str:
        """One line: which path upgrades this node by itself."""
        value = f'{PERIODIC} "{self.periodic}"' if self.periodic else f"{PERIODIC} unset"
        if self.choice == AUTOMATIC_WINDOW:
            stands = ("stands down" if not self.unattended_runs else "still runs")
            return (f"automatic upgrades: the nightly window (Rolling-Upgrade::Automatic \"{AUTOMATIC_WINDOW}\", "
                    f"{self.windows} window{'s' if self.windows != 1 else ''}); unattended-upgrades' daily run "
                    f"{stands} ({value})")
        if not self.installed:
            uu = "unattended-upgrades is not installed"
        elif self.unattended_runs:
            uu = f"unattended-upgrades through the APT hooks, daily ({value})"
        else:
            off = value if self.enabled else f'{ENABLE} "0"'
            uu = f"unattended-upgrades' daily run is off here ({off})"
        window = f"; the nightly window too ({self.windows} set)" if self.windows else ""
        return (f"automatic upgrades: {uu}{window}; '{COMMAND} {AUTOMATIC_WINDOW}' makes the nightly window the "
                "only one")

    def document(self) -> dict[str, Any]:
        return {"choice": self.choice, "periodic": self.periodic, "unattended_upgrades_runs": self.unattended_runs,
                "file": self.path if self.file else None, "windows": self.windows, "problems": self.problems()}


def local_state(directory: Path | str = configuration.DEFAULT_DIR,
                main_file: Path | str | None = configuration.DEFAULT_MAIN, path: Path | None = None,
                program: Path = UNATTENDED_PROGRAM) -> Local:
    """This node's automatic path from its APT configuration (read as APT reads it); a ConfigError when
    upgrader's settings there are bad. ``path``: the choice's file (default: :data:`PATH`'s name in
    ``directory``)."""
    settings = configuration.read(directory, main_file)
    cfg = configuration.from_apt(settings)
    where = path if path is not None else Path(directory) / PATH.name
    return Local(choice=cfg.automatic, periodic=settings.find(PERIODIC, ""),
                 enabled=settings.find(ENABLE, "1").strip() != "0", installed=program.exists(),
                 file=where.exists(), windows=len(cfg.windows), path=str(where))
