"""Issue 9: every bad input to the `workbench` command is one line on stderr, exit status 2,
and never a traceback; guest outcomes keep their own statuses (tests/integration/test_cli.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.image import Image

pytestmark = pytest.mark.qemu


def workbench(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.run([sys.executable, "-m", "workbench.cli", *args], text=True, capture_output=True,
                          timeout=120, cwd=cwd, env=environment, check=False)


@pytest.fixture
def files(tmp_path: Path, image: Image) -> dict[str, str]:
    truncated = tmp_path / "truncated.elf"
    truncated.write_bytes(image.path.read_bytes()[:600])  # the ELF header survives, the sections do not
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    return {"TRUNCATED": str(truncated), "LOOP": str(loop), "IMAGE": str(image.path), "DIR": str(tmp_path)}


CASES = {
    "pagetable --image /nonexistent": ("pagetable", "--image", "/nonexistent"),
    "pagetable --image a directory": ("pagetable", "--image", "DIR"),
    "pagetable --image a truncated ELF": ("pagetable", "--image", "TRUNCATED"),
    "pagetable --image a symlink loop": ("pagetable", "--image", "LOOP"),
    "pagetable --memory 99999": ("pagetable", "--image", "IMAGE", "--memory", "99999"),
    "pagetable --memory abc": ("pagetable", "--memory", "abc"),
    "pagetable --settle -1": ("pagetable", "--image", "IMAGE", "--settle", "-1"),
    "translate an unknown symbol": ("translate", "--image", "IMAGE", "no_such_symbol"),
    "translate --image /nonexistent": ("translate", "--image", "/nonexistent", "0x0"),
    "run --memory 99999": ("run", "--memory", "99999"),
    "build --source /nonexistent": ("build", "--source", "/nonexistent"),
    "build --source a directory without a Makefile": ("build", "--source", "DIR"),
    "build --scenario BAD": ("build", "--scenario", "Not A Scenario"),
    "no subcommand": (),
    "an unknown option": ("doctor", "--frobnicate"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_and_exit_status_2(case: str, files: dict[str, str], tmp_path: Path) -> None:
    args = [files.get(arg, arg) for arg in CASES[case]]
    result = workbench(*args, cwd=tmp_path)
    assert "Traceback" not in result.stderr, f"{case}: {result.stderr}"
    assert result.returncode == 2, f"{case}: status {result.returncode}, stderr {result.stderr!r}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("workbench"), f"{case}: {result.stderr!r}"
