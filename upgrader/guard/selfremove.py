"""The guard's one exception: an apt or dpkg run whose only change is the removal of upgrader itself.

The guard runs in DPkg::Pre-Invoke, before dpkg removes anything; were the
removal of the package judged like any other run, it would be refused on an
active node and upgrader could never be removed there. Removing the tool
touches no package the cluster runs on, so such a run is let through without
asking the cluster and without taking the upgrade lock (its Post-Invoke finds
the hook gone: no finishing step follows).

- **apt** (apt, apt-get, python-apt callers): Pre-Invoke does not know the
  run's changes; Pre-Install-Pkgs, which follows it, lists them. When the
  frontend's command line names this package (:func:`names_us`), Pre-Invoke
  leaves the decision to Pre-Install-Pkgs (verdict ``deferred``): a step that
  only removes or purges upgrader passes (verdict ``self-removal``); any
  other step is judged there by the guard's rule, as Pre-Invoke judges every
  other run (a refusal there stops apt before dpkg runs, as in Pre-Invoke).
  Runs that do not name the package (unattended-upgrades, a dist-upgrade)
  are judged in Pre-Invoke as before.
- **dpkg run directly** (``dpkg -r upgrader``, ``dpkg -P upgrader``): dpkg
  says its action (DPKG_HOOK_ACTION) and its command line names the packages;
  only this package, removed or purged, passes.

Anything else that removes upgrader on an active node (aptitude's interactive
screen, an autoremove that takes more packages along) is judged as usual:
put the node in standby, or use ``UPGRADER_GUARD=off``.

Standard library only: this runs in the hooks' cheap path.
"""

from __future__ import annotations

PACKAGE = "upgrader"
REASON = f"this run only removes {PACKAGE} itself: let through without asking the cluster"


def command_line(pid: int) -> list[str]:
    """The arguments of process ``pid`` (empty when it is gone)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def _name(word: str) -> str:
    """The package name in an apt or dpkg argument: without :ARCH, =VERSION, /RELEASE or a +/- suffix."""
    for sep in ":=/":
        word = word.split(sep, 1)[0]
    return word.rstrip("+-")


def names_us(argv: list[str]) -> bool:
    """Whether a frontend's command line (``apt-get purge upgrader``, ``apt remove upgrader:all``)
    names this package: then its changes may be only upgrader's removal."""
    return any(not w.startswith("-") and _name(w) == PACKAGE for w in argv[1:])


def only_removes_us(changes) -> bool:
    """Whether Pre-Install-Pkgs' changes (:class:`upgrader.guard.pkgs.PackageAction`) are only the
    removal (or purge) of this package."""
    changes = list(changes)
    return bool(changes) and all(c.action == "remove" and _name(c.name) == PACKAGE for c in changes)


def dpkg_removes_only_us(argv: list[str], action: str) -> bool:
    """Whether dpkg run directly (its command line, its DPKG_HOOK_ACTION) removes or purges this
    package and nothing else. An option with a separate value (``--root DIR``) counts as a package,
    so it is judged as usual; so are ``-a``/``--pending`` (every package selected for removal)."""
    if action not in ("remove", "purge"):
        return False
    words = argv[1:]
    if any(w in ("-a", "--pending") for w in words):
        return False
    names = [w for w in words if not w.startswith("-")]
    return bool(names) and all(_name(n) == PACKAGE for n in names)
