"""A small file the tool keeps in /etc for APT (a pin file, a configuration snippet): replaced whole.

Written atomically (a copy beside it, whose leading dot APT never reads, fsynced and renamed over it,
mode 0644), left alone when it already says the same, removed when there is nothing to say.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def keep(path: Path, text: str | None) -> bool:
    """``path`` made to hold exactly ``text`` (None or empty: removed); whether it changed. Raises OSError."""
    if not text:
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True
    try:
        before: str | None = path.read_text()
    except (OSError, UnicodeDecodeError):
        before = None  # missing or unreadable: written
    if before == text:
        return False
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fchmod(f.fileno(), 0o644)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return True
