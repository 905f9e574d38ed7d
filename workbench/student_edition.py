"""Make the student edition of the lessons: every cell tagged `solution` is emptied.

A solution cell keeps its first comment lines (the task, in words) and loses its code and
outputs, so students get the exercise and the checks after it, but not the answer.
"""

from __future__ import annotations

import contextlib
import copy
import os
import secrets
from pathlib import Path

import nbformat

from .resources import BadDirectory, own_directory

SOLUTION_TAG = "solution"
PLACEHOLDER = "# Your solution here.\n"


def strip_solutions(notebook: nbformat.NotebookNode) -> int:
    """Empty every solution cell of `notebook` in place; returns how many there were."""
    count = 0
    for cell in notebook.cells:
        if SOLUTION_TAG not in cell.get("metadata", {}).get("tags", []):
            continue
        count += 1
        if cell.cell_type == "code":
            lines = cell.source.splitlines(keepends=True)
            task = []
            for line in lines:
                if not line.startswith("#"):
                    break
                if line != PLACEHOLDER:  # stripping a student edition again changes nothing
                    task.append(line)
            cell.source = "".join(task) + PLACEHOLDER
            cell.outputs = []
            cell.execution_count = None
        else:
            cell.source = "*Your answer here.*"
    return count


def _is_student_edition(path: Path) -> bool:
    """The notebook at `path` has no solution left to strip (a student edition made earlier)."""
    try:
        notebook = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
    except Exception:  # not a notebook nbformat can read: not ours to overwrite
        return False
    stripped = copy.deepcopy(notebook)
    strip_solutions(stripped)
    return bool(stripped == notebook)


def write_student_edition(lessons: Path, destination: str | Path) -> list[tuple[str, int]]:
    """Copy every lesson notebook to `destination` without its solutions.

    Nothing is lost: `destination` may not be the lessons' own directory or inside the
    installed package, and a notebook already there is replaced only if it is itself a
    student edition (a teacher's notebook with solutions is never overwritten). All of that is
    checked before the first file is written; each file is written whole or not at all.
    """
    target = own_directory(destination, "the student edition", refuse=lessons)
    sources = sorted(lessons.glob("[0-9][0-9]-*.ipynb"))
    kept = [target / s.name for s in sources if (target / s.name).exists() and not _is_student_edition(target / s.name)]
    if kept:
        raise BadDirectory(f"{kept[0]} exists and is not a student edition (it has solutions, or is not a notebook); "
                           "it is not overwritten: choose another directory")
    done = []
    for source in sources:
        notebook = nbformat.read(source, as_version=4)  # type: ignore[no-untyped-call]
        count = strip_solutions(notebook)
        final = target / source.name
        temporary = target / f".{source.name}.{secrets.token_hex(4)}.tmp"
        try:
            nbformat.write(notebook, temporary)  # type: ignore[no-untyped-call]
            os.replace(temporary, final)
        except OSError as error:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise BadDirectory(f"cannot write {final}: {error.strerror or error}") from error
        done.append((source.name, count))
    return done
