"""The student edition of the lessons, made by nbgrader's own `generate_assignment`, and the
students' wheel built around it.

The lessons are nbgrader source notebooks. For a self-learner or a course without a gradebook,
this puts them in a temporary course and lets nbgrader write its release version of each: every
solution replaced by "YOUR CODE HERE", hidden tests taken out, checksums set. The C code that
exercises ask for is not in the notebooks: workspaces start from kernel-src without it
(workbench/kernel/skeleton.py).

The ordinary wheel carries the instructor's lessons and kernel-src, solutions and hidden tests
included, for a self-learner and for grading. A class gets the students' wheel instead
(`write_student_wheel`): the same package with the student edition of the lessons and the
skeleton of kernel-src, so no solution is anywhere on a student's machine.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from workbench import resources
from workbench.errors import WorkbenchError
from workbench.kernel import skeleton

NBGRADER_TIMEOUT = 300.0
SOLUTION_MARK = "### BEGIN SOLUTION"


def _has_solutions(path: Path) -> bool:
    """A teacher's notebook (or something that is no notebook at all): never overwritten."""
    try:
        return SOLUTION_MARK in path.read_text()
    except (OSError, UnicodeDecodeError):
        return True


def write_student_edition(lessons: Path, destination: str | Path) -> list[str]:
    """nbgrader's release version of every lesson in `lessons`, written to `destination`.

    Nothing is lost: `destination` may not be the lessons' own directory or inside the
    installed package, and a notebook already there is replaced only if it has no solutions
    (a student edition made earlier). All of that is checked before anything is written.
    """
    names = [lesson.stem for lesson in sorted(lessons.glob("[0-9][0-9]-*.ipynb"))]
    if not names:
        raise WorkbenchError(f"there are no lessons (NN-topic.ipynb) in {lessons}")
    destination = resources.own_directory(destination, "the student edition", refuse=lessons)
    kept = [destination / f"{name}.ipynb" for name in names
            if (destination / f"{name}.ipynb").exists() and _has_solutions(destination / f"{name}.ipynb")]
    if kept:
        raise resources.BadDirectory(f"{kept[0]} exists and has solutions (or is not a notebook); it is not "
                                     "overwritten: choose another directory")
    with tempfile.TemporaryDirectory(prefix="workbench-student-edition-") as scratch:
        course = Path(scratch)
        for name in names:
            (course / "source" / name).mkdir(parents=True)
            shutil.copyfile(lessons / f"{name}.ipynb", course / "source" / name / f"{name}.ipynb")
        environment = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        # One nbgrader for every lesson (its assignment id is a pattern): nbgrader takes seconds to start.
        try:
            done = subprocess.run(
                [sys.executable, "-m", "nbgrader", "generate_assignment", "*", "--no-db", "--force",
                 f"--CourseDirectory.root={course}"],
                cwd=course, env=environment, capture_output=True, text=True, timeout=NBGRADER_TIMEOUT, check=False)
        except subprocess.TimeoutExpired as error:
            raise WorkbenchError(f"nbgrader took longer than {NBGRADER_TIMEOUT:g} s on the lessons") from error
        if done.returncode != 0:
            if "No module named nbgrader" in done.stderr:
                raise WorkbenchError("nbgrader is not installed: pip install 'unikernel-workbench[grading]'")
            raise WorkbenchError("nbgrader could not make the student edition:\n"
                                 + "\n".join(done.stderr.strip().splitlines()[-10:]))
        destination.mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copyfile(course / "release" / name / f"{name}.ipynb", destination / f"{name}.ipynb")
    return names


# Everything pyproject.toml builds the wheel from, except kernel-src/ and lessons/, which the
# students' wheel replaces.
PACKAGE_FILES = ("pyproject.toml", "README.md", "workbench", "widgets")
WHEEL_TIMEOUT = 600.0


def write_student_wheel(destination: str | Path, checkout: Path | None = None) -> Path:
    """Build the students' wheel of the checkout into `destination` and return its path.

    It is made from a copy of the checkout in which lessons/ is the student edition and
    kernel-src/ the skeleton; the build fails if any solution marker or hidden test is left.
    """
    checkout = (checkout or resources.kernel_source().parent).resolve()
    if not (checkout / "pyproject.toml").is_file() or not (checkout / "lessons").is_dir():
        raise WorkbenchError(f"{checkout} is not a checkout of the workbench (no pyproject.toml and lessons/): "
                             "the students' wheel is built from the source repository")
    destination = resources.own_directory(destination, "the students' wheel")
    with tempfile.TemporaryDirectory(prefix="workbench-student-wheel-") as scratch:
        tree = Path(scratch) / "unikernel-workbench"
        tree.mkdir()
        for name in PACKAGE_FILES:
            source = checkout / name
            if source.is_dir():
                shutil.copytree(source, tree / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(source, tree / name)
        project = tree / "pyproject.toml"  # a version of its own, so the two wheels are never mistaken
        project.write_text(re.sub(r'(?m)^version = "([^"+]+)"$', r'version = "\1+students"', project.read_text(),
                                  count=1))
        shutil.copytree(skeleton.skeleton_source(checkout / "kernel-src"), tree / "kernel-src")
        write_student_edition(checkout / "lessons", tree / "lessons")
        left = [str(path.relative_to(tree)) for path in sorted((tree / "kernel-src").rglob("*"))
                + sorted((tree / "lessons").rglob("*")) if path.is_file() and _solution_left(path)]
        if left:
            raise WorkbenchError(f"the students' wheel would carry solutions, in {', '.join(left)}")
        try:
            done = subprocess.run(
                [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(destination),
                 str(tree)], capture_output=True, text=True, timeout=WHEEL_TIMEOUT, check=False)
        except subprocess.TimeoutExpired as error:
            raise WorkbenchError(f"building the students' wheel took longer than {WHEEL_TIMEOUT:g} s") from error
        if done.returncode != 0:
            raise WorkbenchError("pip could not build the students' wheel:\n"
                                 + "\n".join(done.stderr.strip().splitlines()[-10:]))
    wheels = sorted(destination.glob("unikernel_workbench-*+students-*.whl"), key=lambda path: path.stat().st_mtime)
    return wheels[-1]


def _solution_left(path: Path) -> bool:
    text = path.read_text(errors="replace")
    return any(mark in text for mark in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS"))
