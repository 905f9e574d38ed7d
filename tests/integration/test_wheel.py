"""A built wheel is the whole workbench: installed into a fresh virtual environment outside the
source tree, `workbench lab` serves a copy of the lessons, and lesson 01 passes nbval there. The
students' wheel is the same without a single solution or hidden test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import venv
import zipfile
from pathlib import Path

import pytest

from tests.support.lab_command import serve_lab
from workbench.kernel.skeleton import solutions

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.qemu


def run(*command: str | Path, cwd: Path, env: dict[str, str], timeout: float = 600) -> str:
    done = subprocess.run([str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert done.returncode == 0, f"{' '.join(map(str, command))} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout


@pytest.mark.slow(35)
def test_wheel_installs_anywhere_and_runs_lesson_01(tmp_path: Path) -> None:
    # Nothing of the source tree or of this test run may leak into the installed workbench.
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("WORKBENCH_", "PYTHON", "VIRTUAL_ENV"))}
    env["HOME"] = str(tmp_path / "home")
    source = tmp_path / "source"  # a clean copy: the wheel must not depend on build/ or workspaces
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "workspaces", "*.egg-info", "__pycache__", "test-artifacts", ".*cache"))

    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", tmp_path / "dist", source,
        cwd=tmp_path, env=env)
    wheel = next((tmp_path / "dist").glob("*.whl"))
    venv.create(tmp_path / "venv", with_pip=True)
    python = tmp_path / "venv" / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", "-c", ROOT / "constraints.txt", wheel, "pytest", "nbval",
        cwd=tmp_path, env=env)
    installed = run(python, "-c", "import workbench, workbench.resources as r; print(r.kernel_source())",
                    cwd=tmp_path, env=env).strip()
    assert installed.startswith(str(tmp_path / "venv")), f"the workbench was imported from {installed}"

    classroom = tmp_path / "class"
    with serve_lab([str(tmp_path / "venv" / "bin" / "workbench"), "lab", "--dir", str(classroom)],
                   env=env) as listing:
        assert "01-hello-unikernel.ipynb" in listing
    assert (classroom / "01-hello-unikernel.ipynb").is_file()

    run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval", "01-hello-unikernel.ipynb",
        "--nbval-sanitize-with", ROOT / "tests" / "nbval-sanitize.cfg", cwd=classroom, env=env)
    assert (classroom / "workspaces" / "01-hello-unikernel" / "app" / "main.c").is_file()


@pytest.mark.slow(10)
def test_the_students_wheel_carries_no_solution(tmp_path: Path) -> None:
    wheel_dir = tmp_path / "students"
    made = run(ROOT / ".venv" / "bin" / "workbench", "student-edition", "--wheel", wheel_dir, cwd=tmp_path,
               env=dict(os.environ), timeout=900)
    wheel = next(wheel_dir.glob("unikernel_workbench-*.whl"))
    assert str(wheel) in made and "+students-" in wheel.name
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        texts = {name: archive.read(name).decode(errors="replace") for name in names
                 if name.endswith((".c", ".h", ".S", ".md", ".ipynb", ".py"))}
    lessons = sorted(name for name in names if name.startswith("workbench/lessons/") and name.endswith(".ipynb"))
    assert [Path(name).name for name in lessons] == sorted(p.name for p in (ROOT / "lessons").glob("[0-9]*.ipynb"))
    for name in lessons:
        assert "YOUR CODE HERE" in texts[name] and "BEGIN SOLUTION" not in texts[name], name
        assert "BEGIN HIDDEN TESTS" not in texts[name], name
    # The C the exercises ask for: not one solution block's code is in the kernel source shipped.
    kernel = {name.removeprefix("workbench/kernel_src/"): text for name, text in texts.items()
              if name.startswith("workbench/kernel_src/")}
    for name in ("call-vaddr", "uptime-command", "uptime-service", "heap-execute"):
        for block in solutions(name):
            assert block.code.strip() not in kernel[block.path], f"{name} is in {block.path} of the students' wheel"
    assert not any("BEGIN SOLUTION" in text for text in kernel.values())

    # Unpacked, it is a working workbench that builds the skeleton and cannot put a solution back.
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(tmp_path / "unpacked")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("WORKBENCH_", "PYTHONPATH"))}
    env.update(PYTHONPATH=str(tmp_path / "unpacked"), HOME=str(tmp_path / "home"),
               XDG_CACHE_HOME=str(tmp_path / "cache"))
    probe = textwrap.dedent(f"""
        from workbench import Workspace, resources
        from workbench.errors import WorkbenchError
        assert str(resources.kernel_source()).startswith({str(tmp_path / "unpacked")!r})
        ws = Workspace.open("exercise", parent={str(tmp_path / "workspaces")!r})
        print(ws.build().size > 0)
        try:
            ws.solve("call-vaddr")
        except WorkbenchError as error:
            print(error)
        """)
    said = run(sys.executable, "-c", probe, cwd=tmp_path, env=env)
    assert said.splitlines()[0] == "True"
    assert "the students' edition, which carries no solutions" in said
