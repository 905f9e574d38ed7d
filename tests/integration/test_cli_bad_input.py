"""Issue 9: every bad input to the `workbench` command is one line on stderr, exit status 2,
and never a traceback; guest outcomes keep their own statuses (tests/integration/test_cli.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import workbench
from workbench.kernel.image import Image

pytestmark = pytest.mark.qemu

LESSONS = Path(__file__).resolve().parents[2] / "lessons"


def workbench_command(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.run([sys.executable, "-m", "workbench.cli", *args], text=True, capture_output=True,
                          timeout=120, cwd=cwd, env=environment, check=False)


@pytest.fixture
def files(tmp_path: Path, image: Image) -> dict[str, str]:
    truncated = tmp_path / "truncated.elf"
    truncated.write_bytes(image.path.read_bytes()[:600])  # the ELF header survives, the sections do not
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory\n")
    return {"TRUNCATED": str(truncated), "LOOP": str(loop), "IMAGE": str(image.path), "DIR": str(tmp_path),
            "FILE": str(a_file), "UNDER_FILE": str(a_file / "lessons"), "LESSONS": str(LESSONS),
            "PACKAGE": str(Path(workbench.__file__).parent / "lessons")}


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
    "lab --dir a file": ("lab", "--dir", "FILE"),
    "lab --dir under a file": ("lab", "--dir", "UNDER_FILE"),
    "lab --dir a symlink loop": ("lab", "--dir", "LOOP"),
    "lab --dir empty": ("lab", "--dir", ""),
    "lab --dir inside the package": ("lab", "--dir", "PACKAGE"),
    "student-edition into a file": ("student-edition", "FILE"),
    "student-edition under a file": ("student-edition", "UNDER_FILE"),
    "student-edition into a symlink loop": ("student-edition", "LOOP"),
    "student-edition into nothing": ("student-edition", ""),
    "student-edition into the lessons": ("student-edition", "LESSONS"),
    "student-edition into the package": ("student-edition", "PACKAGE"),
    "no subcommand": (),
    "an unknown option": ("doctor", "--frobnicate"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_and_exit_status_2(case: str, files: dict[str, str], tmp_path: Path) -> None:
    args = [files.get(arg, arg) for arg in CASES[case]]
    result = workbench_command(*args, cwd=tmp_path)
    assert "Traceback" not in result.stderr, f"{case}: {result.stderr}"
    assert result.returncode == 2, f"{case}: status {result.returncode}, stderr {result.stderr!r}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("workbench"), f"{case}: {result.stderr!r}"


@pytest.mark.slow(10)
def test_a_refused_directory_keeps_every_file(files: dict[str, str], tmp_path: Path) -> None:
    """The lessons, the package and a teacher's notebooks are never overwritten or added to."""
    before = {path: path.read_bytes() for path in LESSONS.iterdir() if path.is_file()}
    package = sorted(Path(workbench.__file__).parent.rglob("*"))
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    own = teacher / "03-page-tables.ipynb"
    own.write_bytes((LESSONS / own.name).read_bytes())  # with its solutions
    for args in (("student-edition", str(LESSONS)), ("student-edition", files["PACKAGE"]),
                 ("student-edition", str(teacher))):
        result = workbench_command(*args, cwd=tmp_path)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert {path: path.read_bytes() for path in LESSONS.iterdir() if path.is_file()} == before
    assert sorted(Path(workbench.__file__).parent.rglob("*")) == package
    assert own.read_bytes() == (LESSONS / own.name).read_bytes() and [p.name for p in teacher.iterdir()] == [own.name]
    # A student edition made earlier is replaced by a new one; that is what the directory is for.
    out = tmp_path / "out"
    assert workbench_command("student-edition", str(out), cwd=tmp_path).returncode == 0
    assert workbench_command("student-edition", str(out), cwd=tmp_path).returncode == 0
