"""The patched scan's md5sums cache: served while dpkg's database is unchanged, read again on any change.

dpkg's database here is a directory of our own (md5sums files written here, replaced by rename as dpkg
does); the racy window is 0 s unless a test says otherwise (a file's ctime cannot be set back); the real
database is read twice to show the cache gives what reading gives.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.packages.test_patched import dpkg_replace, write_md5sums
from upgrader.packages import sumcache
from upgrader.packages.patched import md5sums_index
from upgrader.packages.plan import DPKG_INFO, merged_aliases

LIB = "/usr/lib/x86_64-linux-gnu/libdemo.so.1"
BIN = "/usr/bin/demo"


class Reads:
    """md5sums_index of ``info`` for the paths asked, each call's paths noted."""

    def __init__(self, info: Path) -> None:
        self.info, self.asked = info, []

    def __call__(self, paths: set[str]):
        self.asked.append(set(paths))
        return md5sums_index(self.info, None, {}, paths)


@pytest.fixture(autouse=True)
def no_racy_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sumcache, "RACY", 0.0)


@pytest.fixture
def info(tmp_path: Path) -> Path:
    info = tmp_path / "info"
    write_md5sums(info, "libdemo1", {LIB: b"one"})
    write_md5sums(info, "demo", {BIN: b"bin"})
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
    after = sumcache.cached_index(info, {}, {LIB}, reads, cache)
    assert after == {LIB: [("0" * 32, "libdemo1")]} != before and len(reads.asked) == 2


def test_a_list_edited_in_place_is_read_again_though_its_times_and_the_directory_say_nothing(
        info: Path, tmp_path: Path) -> None:
    cache, reads = tmp_path / "cache.json", Reads(info)
    sumcache.cached_index(info, {}, {LIB}, reads, cache)
    directory, listed = os.stat(info), info / "libdemo1.md5sums"
    before = os.stat(listed)
    listed.write_text(f"{'f' * 32}  {LIB.lstrip('/')}\n")  # another md5 of the same length: the same size
    os.utime(listed, ns=(before.st_atime_ns, before.st_mtime_ns))  # its mtime as it was: only its ctime moved
    assert os.stat(listed).st_size == before.st_size and os.stat(info) == directory  # the directory: untouched
    assert sumcache.cached_index(info, {}, {LIB}, reads, cache) == {LIB: [("f" * 32, "libdemo1")]}
    assert len(reads.asked) == 2


def test_a_new_package_listing_a_cached_path_is_read_again(info: Path, tmp_path: Path) -> None:
    """Only the directory tells: the cached entry's own list is untouched."""
    cache, reads = tmp_path / "cache.json", Reads(info)
    sumcache.cached_index(info, {}, {LIB}, reads, cache)
    listed = os.stat(info / "libdemo1.md5sums")
    write_md5sums(info, "libdemo1-compat", {LIB: b"other"})
    assert os.stat(info / "libdemo1.md5sums") == listed
    got = sumcache.cached_index(info, {}, {LIB}, reads, cache)
    assert sorted(p for _, p in got[LIB]) == ["libdemo1", "libdemo1-compat"] and len(reads.asked) == 2


def test_any_change_of_the_directory_is_read_again(info: Path, tmp_path: Path) -> None:
    cache, reads = tmp_path / "cache.json", Reads(info)
    sumcache.cached_index(info, {}, {LIB}, reads, cache)
    (info / "demo.list").write_text("/usr/bin/demo\n")  # no md5sums at all: the directory is all that changed
    sumcache.cached_index(info, {}, {LIB}, reads, cache)
    sumcache.cached_index(info, {}, {LIB}, reads, cache)
    assert len(reads.asked) == 2, "read again once, then from the renewed cache"


def test_a_change_while_the_files_are_read_is_not_cached(info: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache.json"
    reads = Reads(info)

    def racing(paths: set[str]):
        got = reads(paths)
        if len(reads.asked) == 1:
            write_md5sums(info, "libdemo1-compat", {LIB: b"other"})  # dpkg at work meanwhile
        return got

    sumcache.cached_index(info, {}, {LIB}, racing, cache)
    assert not cache.exists()
    got = sumcache.cached_index(info, {}, {LIB}, racing, cache)
    assert len(got[LIB]) == 2 and len(reads.asked) == 2


def test_paths_not_covered_are_read_with_the_covered_ones_then_all_served(info: Path, tmp_path: Path) -> None:
    cache, reads = tmp_path / "cache.json", Reads(info)
    sumcache.cached_index(info, {}, {LIB}, reads, cache)
    assert sumcache.cached_index(info, {}, {BIN, "/usr/lib/not-a-package-file"}, reads, cache) == \
        md5sums_index(info, None, {}, {BIN})
    assert reads.asked == [{LIB}, {LIB, BIN, "/usr/lib/not-a-package-file"}]
    sumcache.cached_index(info, {}, {LIB, BIN, "/usr/lib/not-a-package-file"}, reads, cache)
    assert len(reads.asked) == 2


def test_a_database_that_just_changed_is_not_cached(info: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sumcache, "RACY", 2.0)
    cache, reads = tmp_path / "cache.json", Reads(info)
    write_md5sums(info, "fresh", {BIN: b"x"})  # the directory changed now: a change may follow in this tick
    sumcache.cached_index(info, {}, {BIN}, reads, cache)
    assert not cache.exists()
    sumcache.cached_index(info, {}, {BIN}, reads, cache)
    assert len(reads.asked) == 2


@pytest.mark.parametrize("spoil", ["garbage", "others may read", "symlink", "another directory",
                                   "another format", "malformed entries"])
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
    elif spoil in ("another format", "malformed entries"):
        doc = json.loads(cache.read_text())
        if spoil == "another format":
            doc["key"] = "v2"
        else:
            doc["covered"], doc["index"][LIB] = [[LIB]], [7]
        cache.write_text(json.dumps(doc))
    else:
        other = tmp_path / "other"
        write_md5sums(other, "libdemo1", {LIB: b"two"})
        assert sumcache.cached_index(other, {}, {LIB}, Reads(other), cache) != right
    assert sumcache.cached_index(info, {}, {LIB}, reads, cache) == right
    assert len(reads.asked) == 2


def test_on_this_hosts_dpkg_database_the_cache_gives_what_reading_gives(tmp_path: Path) -> None:
    aliases = merged_aliases()
    wanted = set(sorted(md5sums_index(DPKG_INFO, None, aliases))[::211]) | {"/usr/lib/no/such/file"}
    read = lambda paths: md5sums_index(DPKG_INFO, None, aliases, paths)  # noqa: E731
    asked: list[set[str]] = []
    cache = tmp_path / "cache.json"
    fresh = sumcache.cached_index(DPKG_INFO, aliases, wanted, lambda paths: asked.append(paths) or read(paths), cache)
    kept = sumcache.cached_index(DPKG_INFO, aliases, wanted, lambda paths: asked.append(paths) or read(paths), cache)
    assert fresh == read(wanted) == kept and len(asked) == 1, "the second from the cache"
