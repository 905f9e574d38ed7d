"""The student edition of the lessons, made by nbgrader's own `generate_assignment`.

The lessons are nbgrader source notebooks. For a self-learner or a course without a gradebook,
this puts them in a temporary course and lets nbgrader write its release version of each: every
solution replaced by "YOUR CODE HERE", hidden tests taken out, checksums set. The C code that
exercises ask for is not in the notebooks: workspaces start from kernel-src without it
(workbench/skeleton.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from . import resources
from .errors import WorkbenchError

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
        for name in names:
            try:
                done = subprocess.run(
                    [sys.executable, "-m", "nbgrader", "generate_assignment", name, "--no-db", "--force",
                     f"--CourseDirectory.root={course}"],
                    cwd=course, env=environment, capture_output=True, text=True, timeout=NBGRADER_TIMEOUT, check=False)
            except subprocess.TimeoutExpired as error:
                raise WorkbenchError(f"nbgrader took longer than {NBGRADER_TIMEOUT:g} s on {name}") from error
            if done.returncode != 0:
                if "No module named nbgrader" in done.stderr:
                    raise WorkbenchError("nbgrader is not installed: pip install 'unikernel-workbench[grading]'")
                raise WorkbenchError(f"nbgrader could not make the student edition of {name}:\n"
                                     + "\n".join(done.stderr.strip().splitlines()[-10:]))
        destination.mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copyfile(course / "release" / name / f"{name}.ipynb", destination / f"{name}.ipynb")
    return names
