"""The `workbench` command as a person in a terminal uses it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from workbench.workspace import Workspace

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
