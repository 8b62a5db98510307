"""Level 4's data path with real processes and real files: a child loads a library, dpkg's way of replacing it is done.

No /proc is faked: each child is a real python that dlopen()s a copy of zlib
(or the system's zlib), and the scan reads its real maps and map_files. Only
dpkg's database is a directory of our own (md5sums files written here).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from upgrader.packages.after import file_mappings
from upgrader.packages.patched import (DELETED, REPLACED, StaleMapping, container_pids, md5sums_index,
                                       namespace_members, report_lines, stale_mappings, stale_mappings_of)
from upgrader.packages.plan import DPKG_INFO, merged_aliases

ZLIB = Path(os.path.realpath("/usr/lib/x86_64-linux-gnu/libz.so.1"))  # libz.so.1.2.13 on bookworm
LOAD = """
import ctypes, sys
ctypes.CDLL(sys.argv[1])
print("ready", flush=True)
sys.stdin.read()
"""

pytestmark = pytest.mark.skipif(not ZLIB.exists(), reason="needs the system's zlib (zlib1g)")


@contextmanager
def loading(library: Path) -> Iterator[subprocess.Popen]:
    """A real process that has loaded ``library`` and keeps it mapped until it is terminated (always, at the end)."""
    child = subprocess.Popen([sys.executable, "-c", LOAD, str(library)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        yield child
    finally:
        child.terminate()
        child.wait(timeout=10)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def write_md5sums(info: Path, package: str, files: dict[str, bytes]) -> None:
    """dpkg's NAME.md5sums: ``<md5>  <path without the leading slash>`` per file."""
    info.mkdir(parents=True, exist_ok=True)
    (info / f"{package}.md5sums").write_text("".join(f"{md5(data)}  {path.lstrip('/')}\n"
                                                     for path, data in files.items()))


def dpkg_replace(path: Path, data: bytes) -> None:
    """As dpkg unpacks: the new version is written beside the file, then renamed over it (a new inode)."""
    new = path.with_name(path.name + ".dpkg-new")
    new.write_bytes(data)
    os.rename(new, path)


def command_of(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


@pytest.fixture()
def library(tmp_path: Path) -> Path:
    """A package's library: a copy of zlib at a path of our own."""
    lib = tmp_path / "usr" / "lib" / "libdemo.so.1"
    lib.parent.mkdir(parents=True)
    shutil.copyfile(ZLIB, lib)
    return lib


def test_a_process_mapping_a_replaced_library_is_stale_and_one_started_after_is_not(
        tmp_path: Path, library: Path) -> None:
    info = tmp_path / "info"
    old = library.read_bytes()
    write_md5sums(info, "demo:amd64", {str(library): old})
    with loading(library) as before:
        assert stale_mappings([before.pid], dpkg_info=info) == []
        new = old + b"patched\0" * 8  # still a loadable ELF file: the loader ignores trailing bytes
        dpkg_replace(library, new)
        write_md5sums(info, "demo:amd64", {str(library): new})
        expected = StaleMapping(before.pid, command_of(before.pid), str(library), DELETED, "demo")
        assert stale_mappings([before.pid], dpkg_info=info) == [expected]
        with loading(library) as after:
            assert stale_mappings([before.pid, after.pid], dpkg_info=info) == [expected]
            assert stale_mappings([after.pid], dpkg_info=info) == []
            assert report_lines(stale_mappings([after.pid, before.pid], dpkg_info=info)) == [
                f"{command_of(before.pid)} (pid {before.pid}) maps old {library}"]


def test_one_scan_of_several_containers_gives_each_its_own_stale_processes(tmp_path: Path, library: Path) -> None:
    """A node's scan reads dpkg's md5sums once for every group: each group (a container's processes) gets
    exactly what a scan of it alone gives, though both map the same replaced object."""
    info = tmp_path / "info"
    old = library.read_bytes()
    write_md5sums(info, "demo", {str(library): old})
    with loading(library) as first, loading(library) as second:
        dpkg_replace(library, old + b"patched\0" * 8)
        write_md5sums(info, "demo", {str(library): old + b"patched\0" * 8})
        with loading(library) as fresh:
            both = stale_mappings_of({"web": [first.pid], "db": [second.pid, fresh.pid], "idle": []}, dpkg_info=info)
            assert both == {"web": stale_mappings([first.pid], dpkg_info=info),
                            "db": stale_mappings([second.pid, fresh.pid], dpkg_info=info), "idle": []}
            assert [s.pid for s in both["web"]] == [first.pid] and [s.pid for s in both["db"]] == [second.pid]


def test_a_byte_identical_replacement_counts_as_current(tmp_path: Path, library: Path) -> None:
    """dpkg replaces every file of an upgraded package; one whose bytes did not change runs the installed code."""
    info = tmp_path / "info"
    data = library.read_bytes()
    write_md5sums(info, "demo", {str(library): data})
    with loading(library) as child:
        dpkg_replace(library, data)
        assert any(m.deleted for m in file_mappings(Path(f"/proc/{child.pid}/maps").read_text())
                   if m.path == str(library))  # the kernel does mark it "(deleted)"
        assert stale_mappings([child.pid], dpkg_info=info) == []


@contextmanager
def host_with_zlib(tmp_path: Path, data: bytes) -> Iterator[Path]:
    """A host root (merged /usr) whose zlib1g installed ``data`` as its libz, dpkg's md5sums listing it under /lib."""
    host = tmp_path / "host"
    installed = host / ZLIB.relative_to("/")
    installed.parent.mkdir(parents=True)
    (host / "lib").symlink_to("usr/lib")
    installed.write_bytes(data)
    write_md5sums(host / "var/lib/dpkg/info", "zlib1g:amd64", {f"/lib/{ZLIB.relative_to('/usr/lib')}": data})
    yield host


def test_a_container_s_old_library_is_found_by_content_through_merged_usr(tmp_path: Path) -> None:
    """The child is the container (it sees the host's tree at "/" as an overlay would); its host is under tmp_path.

    The host upgraded zlib (dpkg's md5sums say /lib/.../libz.so..., the child maps
    /usr/lib/...): not marked "(deleted)" in the child, yet stale by content.
    """
    with loading(Path("/lib/x86_64-linux-gnu/libz.so.1")) as child:
        with host_with_zlib(tmp_path, ZLIB.read_bytes() + b"\0fixed") as host:
            assert merged_aliases(host) == {"/lib": "/usr/lib"}
            found = stale_mappings([child.pid], host_root=host)
            assert found == [StaleMapping(child.pid, command_of(child.pid), str(ZLIB), REPLACED, "zlib1g")]
            assert stale_mappings([child.pid], host_root=host, packages=["zlib1g"]) == found
            assert stale_mappings([child.pid], host_root=host, packages=["libssl3"]) == []


def test_a_content_equal_copy_with_another_inode_counts_as_current(tmp_path: Path) -> None:
    """Another device and inode than the host's file (as in an overlay) prove nothing: equal bytes are current."""
    with loading(Path("/lib/x86_64-linux-gnu/libz.so.1")) as child:
        with host_with_zlib(tmp_path, ZLIB.read_bytes()) as host:
            copy = os.stat(host / ZLIB.relative_to("/"))
            assert (copy.st_dev, copy.st_ino) != (os.stat(ZLIB).st_dev, os.stat(ZLIB).st_ino)
            assert stale_mappings([child.pid], host_root=host) == []


def test_only_files_that_a_package_lists_count(tmp_path: Path, library: Path) -> None:
    info = tmp_path / "info"
    info.mkdir()
    with loading(library) as child:
        dpkg_replace(library, library.read_bytes() + b"\0v2")
        assert stale_mappings([child.pid], dpkg_info=info) == []  # no package lists it
        write_md5sums(info, "demo", {str(library): library.read_bytes()})
        assert stale_mappings([child.pid], dpkg_info=info, packages=["other"]) == []
        assert [s.package for s in stale_mappings([child.pid], dpkg_info=info, packages=["demo"])] == ["demo"]


def test_the_host_s_own_file_is_current_and_gone_processes_are_skipped(tmp_path: Path, library: Path) -> None:
    info = tmp_path / "info"
    write_md5sums(info, "demo", {str(library): b"another version"})
    with loading(library) as child:
        pid = child.pid
        # The host's own file (same device and inode) is what is installed, whatever dpkg's md5 says (a local edit).
        assert stale_mappings([pid], dpkg_info=info) == []
        dpkg_replace(library, b"another version")
        assert [s.pid for s in stale_mappings([pid], dpkg_info=info)] == [pid]
    assert stale_mappings([pid], dpkg_info=info) == []
    assert stale_mappings([pid], dpkg_info=info, proc=tmp_path / "no-proc") == []


def test_a_fresh_process_on_this_host_maps_only_current_package_files() -> None:
    """The real dpkg database: a process started now runs what is installed, libc through merged /usr included."""
    with loading(Path("/lib/x86_64-linux-gnu/libz.so.1")) as child:
        maps = file_mappings(Path(f"/proc/{child.pid}/maps").read_text())
        aliases = merged_aliases()
        index = md5sums_index(DPKG_INFO, ["libc6", "zlib1g"], aliases, {m.path for m in maps})
        assert str(ZLIB) in index and any(p.endswith("/libc.so.6") for p in index)
        assert stale_mappings([child.pid]) == []


def test_every_mapped_package_file_is_read_by_content_the_program_too(tmp_path: Path) -> None:
    """No fast path (a host root without the files, as an overlay on another device): content alone decides.

    The program itself (python3.11, mapped low and named padded in maps) is read
    through map_files: current against the real dpkg database, stale against a wrong md5.
    """
    nowhere = tmp_path / "empty-root"
    nowhere.mkdir()
    program = Path(os.path.realpath(sys.executable))
    with loading(Path("/lib/x86_64-linux-gnu/libz.so.1")) as child:
        assert stale_mappings([child.pid], host_root=nowhere, dpkg_info=DPKG_INFO) == []
        info = tmp_path / "info"
        write_md5sums(info, "demo-python", {str(program): b"not this program"})
        assert stale_mappings([child.pid], host_root=nowhere, dpkg_info=info) == [
            StaleMapping(child.pid, command_of(child.pid), str(program), REPLACED, "demo-python")]


def test_container_pids_are_those_of_the_init_s_pid_namespace(tmp_path: Path, library: Path) -> None:
    """No namespace is created here: the child shares ours, so "its container" is every process of ours."""
    with loading(library) as child:
        pids = container_pids(child.pid)
        ours = os.readlink("/proc/self/ns/pid")
        assert child.pid in pids and os.getpid() in pids
        assert all(os.readlink(f"/proc/{p}/ns/pid") == ours for p in pids if os.path.exists(f"/proc/{p}"))
        gone = child.pid
    with pytest.raises(OSError):
        container_pids(gone)


def test_namespace_members_reads_proc_once_for_several_inits_and_leaves_a_gone_one_out(library: Path) -> None:
    with loading(library) as child:
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait(timeout=10)
        found = namespace_members([child.pid, os.getpid(), gone.pid])
        assert set(found) == {child.pid, os.getpid()}  # same namespace here: both get every process of ours
        assert found[child.pid] == found[os.getpid()] == container_pids(child.pid)
    assert namespace_members([]) == {}


def test_file_mappings_keep_one_range_per_mapped_object() -> None:
    maps = ("00400000-0041f000 r--p 00000000 08:01 11 /usr/bin/bash\n"
            "0041f000-00420000 r-xp 00001000 08:01 11 /usr/bin/bash\n"
            "7f00-7f01 r-xp 00000000 fd:1a 22 /usr/lib/x86_64-linux-gnu/libssl.so.3 (deleted)\n"
            "7f02-7f03 rw-p 00000000 00:00 0 \n"
            "7f04-7f05 rw-s 00000000 00:01 33 /dev/zero (deleted)\n"
            "7ffd-7ffe r-xp 00000000 00:00 0 [vdso]\n")
    found = file_mappings(maps)
    assert [(m.range, m.path, m.deleted) for m in found] == [
        ("400000-41f000", "/usr/bin/bash", False),  # as map_files names it
        ("7f00-7f01", "/usr/lib/x86_64-linux-gnu/libssl.so.3", True),
        ("7f04-7f05", "/dev/zero", True)]
    assert (found[1].device, found[1].inode) == (os.makedev(0xfd, 0x1a), 22)


def test_report_lines_say_one_line_per_process() -> None:
    found = [StaleMapping(7, "sshd", "/usr/lib/libssl.so.3", DELETED, "libssl3"),
             StaleMapping(3, "corosync", "/usr/lib/libnss3.so", REPLACED, "libnss3"),
             StaleMapping(7, "sshd", "/usr/lib/libcrypto.so.3", DELETED, "libssl3")]
    assert report_lines(found) == ["corosync (pid 3) maps old /usr/lib/libnss3.so",
                                   "sshd (pid 7) maps old /usr/lib/libcrypto.so.3, /usr/lib/libssl.so.3"]
    assert str(found[0]) == "sshd (pid 7) maps old /usr/lib/libssl.so.3"


def test_the_index_of_wanted_paths_is_the_full_index_cut_to_them(tmp_path: Path) -> None:
    """The real dpkg database and merged /usr: looking each line up as it is spelled keeps exactly what
    canonicalising every line and filtering kept, spellings through /lib, /bin and /sbin included."""
    aliases = merged_aliases()
    full = md5sums_index(DPKG_INFO, None, aliases)
    wanted = set(sorted(full)[::97]) | {str(ZLIB), "/usr/lib/no/such/file"}
    if aliases:
        wanted.add(next(iter(aliases)) + "/not-canonical")  # a spelling no canonical line path ever is
    assert md5sums_index(DPKG_INFO, None, aliases, wanted) == {k: v for k, v in full.items() if k in wanted}
    info = tmp_path / "info"
    write_md5sums(info, "old-spelling", {"/lib/x86_64-linux-gnu/libdemo.so.1": b"a"})
    write_md5sums(info, "new-spelling", {"/usr/lib/x86_64-linux-gnu/libdemo.so.1": b"b"})
    merged = {"/lib": "/usr/lib"}
    index = md5sums_index(info, None, merged, {"/usr/lib/x86_64-linux-gnu/libdemo.so.1"})
    assert sorted(p for _, p in index["/usr/lib/x86_64-linux-gnu/libdemo.so.1"]) == ["new-spelling", "old-spelling"]
    assert md5sums_index(info, None, merged, {"/lib/x86_64-linux-gnu/libdemo.so.1"}) == {}
