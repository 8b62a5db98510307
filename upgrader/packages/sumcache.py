"""dpkg's md5sums of the paths a patched scan wanted, kept between scans while dpkg's database is unchanged.

A scan reads every ``*.md5sums`` file (a thousand on a small host, 0.1 s) for a
few dozen mapped paths; the health check scans every node after every move. The
cache keeps the index of those paths with what it was read from, and is used
only while all of that is unchanged:

- the ``info`` directory itself (device, inode, size, mtime, ctime): dpkg adds,
  renames and removes its files there, and each of those changes the directory;
- each md5sums file an entry came from (device, inode, size, mtime, ctime; dpkg's
  own files carry the package's build time as mtime, their ctime is when they
  arrived): an edit in place changes its ctime whatever its mtime says;
- the aliases (merged /usr), the directory's path and the cache's format.

Wanted paths it does not cover are read from every file again, and the cache
then covers both (at most :data:`MAX_PATHS`). Nothing is written when the
directory or a source changed less than :data:`RACY` seconds before it was
looked at (a change within the same clock tick would leave it as it was), nor
when the directory changed while the files were read, nor kept when it is not a
regular file of ours (0600, through no symlink). A cache that cannot be read or
is not of this format is no cache: the files are read.
"""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path
from typing import Callable

Index = dict[str, list[tuple[str, str]]]  # canonical path: [(md5, package), ...]

CACHE = Path("/run/upgrader/patched-md5sums.json")
MAX_PATHS = 20_000  # paths covered at most (a host maps a few hundred package files)
MAX_BYTES = 8 << 20  # a cache file read at most
RACY = 2.0  # seconds: a directory changed more recently than this is not cached


FORMAT = 1  # of the cache file; another one is no cache


def _identity(path: Path) -> list[int]:
    st = os.stat(path)
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _settled(identity: list[int], seen_at: int) -> bool:
    """Whether the file of ``identity``, looked at ``seen_at`` (ns), had last changed RACY seconds before."""
    return seen_at - max(identity[3], identity[4]) > RACY * 1e9


def cached_index(info: Path, aliases: dict[str, str], wanted: set[str], read: Callable[[set[str]], Index],
                 cache: Path = CACHE) -> Index:
    """The index of ``wanted`` (``read(paths)`` reads every md5sums file for ``paths``), from ``cache``
    when it is valid for ``info`` and covers them; else read, and the cache renewed."""
    try:
        directory = _identity(info)
    except OSError:
        return read(wanted)
    seen_at = time.time_ns()
    key = {"format": FORMAT, "info": str(info), "aliases": aliases, "directory": directory}
    kept = _load(cache)
    try:
        if kept is not None and kept["key"] == key and wanted <= set(kept["covered"]) and _unchanged(info, kept):
            return {p: [(str(md5), str(package)) for md5, package in kept["index"][p]]
                    for p in wanted if p in kept["index"]}
        same_info = kept is not None and kept["key"].get("format") == FORMAT and kept["key"].get("info") == str(info)
        covered = wanted | ({p for p in kept["covered"] if isinstance(p, str)} if same_info else set())
    except (KeyError, TypeError, AttributeError, ValueError):  # not a cache of this format: none
        covered = set(wanted)
    if len(covered) > MAX_PATHS:
        covered = set(wanted)
    index = read(covered)
    try:
        unchanged = _identity(info) == directory  # nothing added, renamed or removed while it was read
    except OSError:
        unchanged = False
    if unchanged and _settled(directory, seen_at):
        _save(cache, key, covered, index, info)
    return {p: v for p, v in index.items() if p in wanted}


def _unchanged(info: Path, kept: dict) -> bool:
    try:
        return all(_identity(info / name) == identity for name, identity in kept["sources"].items())
    except OSError:
        return False


def _sources(info: Path, index: Index) -> dict[str, list[int]]:
    """Each md5sums file an entry came from, and its identity now (``NAME.md5sums`` or ``NAME:ARCH.md5sums``)."""
    found: dict[str, list[int]] = {}
    for package in {p for entries in index.values() for _, p in entries}:
        for path in [info / f"{package}.md5sums", *info.glob(f"{package}:*.md5sums")]:
            try:
                found[path.name] = _identity(path)
            except OSError:
                continue
    return found


def _load(cache: Path) -> dict | None:
    try:
        fd = os.open(cache, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
            return None
        doc = json.loads(os.read(fd, MAX_BYTES))
        if not (isinstance(doc, dict) and isinstance(doc.get("covered"), list) and isinstance(doc.get("index"), dict)
                and isinstance(doc.get("sources"), dict)):
            return None
        return doc
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)


def _save(cache: Path, key: dict, covered: set[str], index: Index, info: Path) -> None:
    seen_at = time.time_ns()
    sources = _sources(info, index)
    if not all(_settled(identity, seen_at) for identity in sources.values()):
        return  # one just changed: its times may not tell the next change within the same tick
    doc = {"key": key, "covered": sorted(covered), "index": index, "sources": sources}
    tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
    old = os.umask(0o077)
    try:
        cache.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        parent = os.lstat(cache.parent)
        if not stat.S_ISDIR(parent.st_mode) or parent.st_uid != os.geteuid() or parent.st_mode & 0o022:
            return  # not a directory of ours: no cache rather than one others could plant
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, json.dumps(doc).encode())
        finally:
            os.close(fd)
        os.replace(tmp, cache)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
    finally:
        os.umask(old)
