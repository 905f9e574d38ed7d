"""The `workbench` command as a person in a terminal uses it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import linux_kernel
from workbench.kernel.workspace import Workspace

pytestmark = pytest.mark.qemu


def workbench(*args: str, stdin: str = "", cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workbench.cli", *args], input=stdin, text=True,
                          capture_output=True, timeout=120, cwd=cwd, check=False)


def test_run_talks_to_the_guest_and_returns_its_exit_status(workspace: Workspace) -> None:
    done = workbench("run", "--source", str(workspace.root), stdin="ticks\nexit 3\n")
    assert done.returncode == 3, done.stderr
    assert "app: Hello from the unikernel!" in done.stdout
    assert "ok ticks ticks=" in done.stdout
    assert "exited with status 3" in done.stderr


def test_run_explains_a_fault(workspace: Workspace) -> None:
    done = workbench("run", "--source", str(workspace.root), "--scenario", "null-write", stdin="")
    assert done.returncode == 1
    assert "FAULT vector=14" in done.stdout
    assert "null page" in done.stderr


def test_build_in_a_workspace_directory_and_its_errors(workspace: Workspace) -> None:
    done = workbench("build", cwd=workspace.root)
    assert done.returncode == 0, done.stderr
    assert ".text" in done.stdout and "r-x" in done.stdout
    workspace.write("app/main.c", workspace.read("app/main.c") + "\nint broken = ;\n")
    done = workbench("build", cwd=workspace.root)
    assert done.returncode == 1
    assert "app/main.c" in done.stderr and "int broken = ;" in done.stderr


def test_doctor_finds_qemu_and_both_toolchains() -> None:
    done = workbench("doctor")
    assert done.returncode == 0, done.stdout
    assert "QEMU" in done.stdout and "gcc toolchain" in done.stdout and "clang toolchain" in done.stdout
    autogroup = Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    assert ("the kernel's autogroup is on" in done.stdout) is autogroup, done.stdout


def test_pagetable_prints_the_labelled_address_space(workspace: Workspace) -> None:
    done = workbench("pagetable", "--source", str(workspace.root))
    assert done.returncode == 0, done.stderr
    assert "image .text" in done.stdout and "guard page (boot_stack_guard)" in done.stdout
    assert "W^X holds" in done.stdout
    tree = workbench("pagetable", "--source", str(workspace.root), "--format", "tree", "--depth", "2")
    assert tree.returncode == 0 and "PML4 table" in tree.stdout


def test_translate_walks_a_symbol_and_reports_a_fault(workspace: Workspace) -> None:
    done = workbench("translate", "app_main", "--source", str(workspace.root))
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("table 0x") >= 4 and "executable" in done.stdout
    null = workbench("translate", "0x0", "--source", str(workspace.root))
    assert null.returncode == 2 and "not mapped" in null.stdout


def test_pagetable_of_a_stock_linux_kernel_given_on_the_command_line() -> None:
    kernel = linux_kernel.stock_kernel()
    done = workbench("pagetable", "--image", str(kernel.vmlinuz), "--machine-type", "pc", "--memory", "512",
                     "--append", "console=ttyS0 panic=0 rdinit=/root", "--wait-for", "Kernel panic",
                     "--format", "tlb")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) > 10_000, "a Linux kernel maps tens of thousands of pages"
    assert any(line.endswith(("X-PDA---W", "XGPDA---W")) for line in lines), "2 MiB pages, NX, global"
