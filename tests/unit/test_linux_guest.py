"""The Linux guest's parts that need no guest: the initramfs archive, its init script, gadgets."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from workbench.compare import stock_linux
from workbench.compare.linux_guest import INIT_SCRIPT, Cpio, busybox_applets, find_code, static_busybox
from workbench.compare.stock_linux import MANIFEST, cache_directory, stock_kernel
from workbench.debug.disassembly import disassemble_bytes


def test_the_archive_is_newc_and_busybox_cpio_reads_it_back(tmp_path: Path) -> None:
    archive = Cpio()
    archive.directory("bin")
    archive.file("bin/tool", b"#!/bin/sh\necho hi\n", 0o755)
    archive.symlink("bin/alias", "tool")
    archive.character_device("console", 5, 1)
    data = archive.bytes()
    assert data.startswith(b"070701") and data.rstrip(b"\0").endswith(b"TRAILER!!!")
    assert len(data) % 4 == 0
    assert Cpio().bytes() == Cpio().bytes()  # deterministic: no times, owners or random inodes
    (tmp_path / "initramfs.cpio").write_bytes(data)
    listing = subprocess.run([str(static_busybox()), "cpio", "-t", "-v", "-F", "initramfs.cpio"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=10, check=True).stdout
    lines = {line.split()[-1] if "->" not in line else line.split()[-3]: line for line in listing.splitlines()}
    assert lines["bin"].startswith("drwxr-xr-x") and lines["bin/tool"].startswith("-rwxr-xr-x")
    assert lines["bin/alias"].startswith("lrwxrwxrwx") and lines["bin/alias"].endswith("-> tool")
    assert lines["console"].startswith("crw-------")


def test_busybox_is_static_with_the_applets_the_init_script_uses() -> None:
    applets = set(busybox_applets(static_busybox()))
    used = {"sh", "mount", "grep", "sed", "sort", "wc", "ls", "pidof", "usleep", "readlink", "awk", "unshare",
            "chroot", "cat", "tr", "mkdir"}
    assert used <= applets, used - applets


def test_the_init_script_is_valid_shell(tmp_path: Path) -> None:
    (tmp_path / "init").write_text(INIT_SCRIPT)
    done = subprocess.run([str(static_busybox()), "sh", "-n", "init"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=10, check=False)
    assert done.returncode == 0, done.stderr
    assert INIT_SCRIPT.startswith("#!/bin/busybox sh\n")


def test_gadgets_are_found_in_executable_segments_only_and_bytes_disassemble() -> None:
    busybox = static_busybox()
    ret = find_code(busybox, b"\xc3")
    assert ret is not None and ret >= 0x400000
    assert find_code(busybox, b"\x0f\x0b" * 64) is None  # 64 ud2 in a row: not in any code
    assert disassemble_bytes(bytes.fromhex("31d2 b83b000000 0f05"), 0x1000) == [
        (0x1000, "xor %edx,%edx"), (0x1002, "mov $0x3b,%eax"), (0x1007, "syscall")]


def test_the_stock_kernel_comes_from_the_users_cache_then_the_machines(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def fill(cache: Path, version: str) -> None:
        (cache / "k").mkdir(parents=True)
        (cache / "k" / "vmlinuz-x").write_bytes(b"kernel")
        (cache / MANIFEST).write_text(json.dumps({"package": "linux-image-x", "version": version,
                                                  "vmlinuz": "k/vmlinuz-x", "system_map": None}))

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user"))
    monkeypatch.setattr(stock_linux, "SYSTEM_CACHE", tmp_path / "system")
    fill(tmp_path / "system", "from-the-machine")
    assert stock_kernel().version == "from-the-machine"  # nothing downloaded: the machine has one
    fill(cache_directory(), "from-the-user")
    assert stock_kernel().version == "from-the-user"
