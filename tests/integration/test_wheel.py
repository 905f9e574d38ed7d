"""A built wheel is the whole workbench: installed into a fresh virtual environment outside the
source tree, `workbench lab` serves a copy of the lessons, and lesson 01 passes nbval there."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from lab_command import serve_lab  # tests/lab_command.py

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.qemu


def run(*command: str | Path, cwd: Path, env: dict[str, str], timeout: float = 600) -> str:
    done = subprocess.run([str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert done.returncode == 0, f"{' '.join(map(str, command))} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout


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
