"""The patched scan's md5sums cache: served while dpkg's database is unchanged, read again on any change.

dpkg's database here is a directory of our own (md5sums files written as dpkg writes them), aged past
the racy window with real utime calls; the real database is read once to show the cache changes nothing.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.packages.test_patched import dpkg_replace, write_md5sums
from upgrader.packages import sumcache
from upgrader.packages.patched import md5sums_index
from upgrader.packages.plan import DPKG_INFO, merged_aliases

LIB = "/usr/lib/x86_64-linux-gnu/libdemo.so.1"
BIN = "/usr/bin/demo"


def aged(info: Path, seconds: float = 60.0) -> None:
    """Every file of ``info``, then the directory itself, last changed ``seconds`` ago."""
    then = time.time() - seconds
    for path in info.iterdir():
        os.utime(path, (then, then))
    os.utime(info, (then, then))


class Reads:
    """md5sums_index of ``info`` for the paths asked, each call's paths noted."""

    def __init__(self, info: Path) -> None:
        self.info, self.asked = info, []

    def __call__(self, paths: set[str]):
        self.asked.append(set(paths))
        return md5sums_index(self.info, None, {}, paths)


@pytest.fixture
def info(tmp_path: Path) -> Path:
    info = tmp_path / "info"
    write_md5sums(info, "libdemo1", {LIB: b"one"})
    write_md5sums(info, "demo", {BIN: b"bin"})
    aged(info)
    return info


def test_a_second_scan_of_an_unchanged_database_reads_no_md5sums_file(info: Path, tmp_path: Path) -> None:
    cache, reads = tmp_path / "run" / "cache.json", Reads(info)
    first = sumcache.cached_index(info, {}, {LIB, BIN}, reads, cache)
    assert first == md5sums_index(info, None, {}, {LIB, BIN}) and first[LIB][0][1] == "libdemo1"
    assert sumcache.cached_index(info, {}, {LIB}, reads, cache) == {LIB: first[LIB]}
    assert sumcache.cached_index(info, {}, {LIB, BIN}, reads, cache) == first
    assert reads.asked == [{LIB, BIN}], "read once; the rest from the cache"
    assert (os.stat(cache).st_mode & 0o777, os.stat(cache.parent).st_mode & 0o777) == (0o600, 0o700)


def test_an_upgrade_of_a_package_is_read_again(info: Path, tmp_path: Path) -> None:
    cache, reads = tmp_path / "cache.json", Reads(info)
    before = sumcache.cached_index(info, {}, {LIB}, reads, cache)
    new = info / "libdemo1.md5sums.new"  # dpkg's way: the new list beside the old, renamed over it
    new.write_text(f"{'0' * 32}  {LIB.lstrip('/')}\n")
    dpkg_replace(info / "libdemo1.md5sums", new.read_bytes())
    new.unlink()
    aged(info, 30)
    after = sumcache.cached_index(info, {}, {LIB}, reads, cache)
    assert after == {LIB: [("0" * 32, "libdemo1")]} != before and len(reads.asked) == 2


def test_a_list_edited_in_place_is_read_again_though_the_directory_did_not_change(info: Path, tmp_path: Path) -> None:
    cache, reads = tmp_path / "cache.json", Reads(info)
    sumcache.cached_index(info, {}, {LIB}, reads, cache)
    directory = os.stat(info)
    listed = info / "libdemo1.md5sums"
    listed.write_text(f"{'f' * 32}  {LIB.lstrip('/')}\n")
    then = time.time() - 20
    os.utime(listed, (then, then))
    os.utime(info, ns=(directory.st_atime_ns, directory.st_mtime_ns))  # as an edit in place leaves it
    assert sumcache.cached_index(info, {}, {LIB}, reads, cache) == {LIB: [("f" * 32, "libdemo1")]}
    assert len(reads.asked) == 2


def test_a_new_package_listing_a_cached_path_is_read_again(info: Path, tmp_path: Path) -> None:
    cache, reads = tmp_path / "cache.json", Reads(info)
    sumcache.cached_index(info, {}, {LIB}, reads, cache)
    write_md5sums(info, "libdemo1-compat", {LIB: b"other"})
    aged(info, 10)
    got = sumcache.cached_index(info, {}, {LIB}, reads, cache)
    assert sorted(p for _, p in got[LIB]) == ["libdemo1", "libdemo1-compat"] and len(reads.asked) == 2


def test_paths_not_covered_are_read_with_the_covered_ones_then_all_served(info: Path, tmp_path: Path) -> None:
    cache, reads = tmp_path / "cache.json", Reads(info)
    sumcache.cached_index(info, {}, {LIB}, reads, cache)
    assert sumcache.cached_index(info, {}, {BIN, "/usr/lib/not-a-package-file"}, reads, cache) == \
        md5sums_index(info, None, {}, {BIN})
    assert reads.asked == [{LIB}, {LIB, BIN, "/usr/lib/not-a-package-file"}]
    sumcache.cached_index(info, {}, {LIB, BIN, "/usr/lib/not-a-package-file"}, reads, cache)
    assert len(reads.asked) == 2


def test_a_database_that_just_changed_is_not_cached(info: Path, tmp_path: Path) -> None:
    cache, reads = tmp_path / "cache.json", Reads(info)
    write_md5sums(info, "fresh", {BIN: b"x"})  # the directory's mtime is now: a change may follow in this tick
    sumcache.cached_index(info, {}, {BIN}, reads, cache)
    assert not cache.exists()
    sumcache.cached_index(info, {}, {BIN}, reads, cache)
    assert len(reads.asked) == 2


@pytest.mark.parametrize("spoil", ["garbage", "others may read", "symlink", "another directory"])
def test_a_cache_that_is_not_ours_or_not_readable_is_no_cache(info: Path, tmp_path: Path, spoil: str) -> None:
    cache, reads = tmp_path / "cache.json", Reads(info)
    right = sumcache.cached_index(info, {}, {LIB}, reads, cache)
    if spoil == "garbage":
        cache.write_text("{not json")
    elif spoil == "others may read":
        cache.chmod(0o644)
    elif spoil == "symlink":
        planted = tmp_path / "planted.json"
        doc = json.loads(cache.read_text())
        doc["index"][LIB] = [["0" * 32, "libdemo1"]]
        planted.write_text(json.dumps(doc))
        planted.chmod(0o600)
        cache.unlink()
        cache.symlink_to(planted)
    else:
        other = tmp_path / "other"
        write_md5sums(other, "libdemo1", {LIB: b"two"})
        aged(other)
        assert sumcache.cached_index(other, {}, {LIB}, Reads(other), cache) != right
    assert sumcache.cached_index(info, {}, {LIB}, reads, cache) == right
    assert len(reads.asked) == 2


def test_on_this_hosts_dpkg_database_the_cache_gives_what_reading_gives(tmp_path: Path) -> None:
    aliases = merged_aliases()
    wanted = set(sorted(md5sums_index(DPKG_INFO, None, aliases))[::211]) | {"/usr/lib/no/such/file"}
    read = lambda paths: md5sums_index(DPKG_INFO, None, aliases, paths)  # noqa: E731
    cache = tmp_path / "cache.json"
    fresh = sumcache.cached_index(DPKG_INFO, aliases, wanted, read, cache)
    assert fresh == read(wanted) == sumcache.cached_index(DPKG_INFO, aliases, wanted, read, cache)
