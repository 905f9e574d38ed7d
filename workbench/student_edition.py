"""Make the student edition of the lessons: every cell tagged `solution` is emptied.

A solution cell keeps its first comment lines (the task, in words) and loses its code and
outputs, so students get the exercise and the checks after it, but not the answer.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

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
                task.append(line)
            cell.source = "".join(task) + PLACEHOLDER
            cell.outputs = []
            cell.execution_count = None
        else:
            cell.source = "*Your answer here.*"
    return count


def write_student_edition(lessons: Path, destination: Path) -> list[tuple[str, int]]:
    """Copy every lesson notebook to `destination` without its solutions."""
    destination.mkdir(parents=True, exist_ok=True)
    done = []
    for source in sorted(lessons.glob("[0-9][0-9]-*.ipynb")):
        notebook = nbformat.read(source, as_version=4)  # type: ignore[no-untyped-call]
        count = strip_solutions(notebook)
        nbformat.write(notebook, destination / source.name)  # type: ignore[no-untyped-call]
        done.append((source.name, count))
    return done
