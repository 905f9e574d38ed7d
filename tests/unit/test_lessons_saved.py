"""What the committed lessons carry besides their cells: no saved widget state.

With `metadata.widgets` saved, every renderer without a live kernel (nbconvert's HTML, nbviewer,
GitHub) picks the widget over the static HTML in the same output, tries to load the widget
manager from a CDN, and shows nothing offline. scripts/execute-lessons re-executes the lessons
without it.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

LESSONS = sorted((Path(__file__).resolve().parents[2] / "lessons").glob("[0-9][0-9]-*.ipynb"))


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.name for p in LESSONS])
def test_no_lesson_saves_widget_state(lesson: Path) -> None:
    book = nbformat.read(lesson, as_version=4)
    assert "widgets" not in book.metadata, (
        f"{lesson.name} has metadata.widgets ({len(str(book.metadata['widgets'])):,} characters): renderers "
        "without a kernel would show an empty widget instead of the static view; re-execute it with "
        "scripts/execute-lessons")


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.name for p in LESSONS])
def test_every_lesson_is_an_nbgrader_source_notebook(lesson: Path) -> None:
    """Exercises with solution regions, checks with points, every other cell read-only."""
    book = nbformat.read(lesson, as_version=4)
    ids = [cell.metadata["nbgrader"]["grade_id"] for cell in book.cells]
    assert len(ids) == len(set(ids)), "grade_ids must be unique"
    exercises = [cell for cell in book.cells if cell.metadata["nbgrader"]["solution"]]
    checks = [cell for cell in book.cells if cell.metadata["nbgrader"]["grade"]]
    assert exercises and checks
    for cell in book.cells:
        meta = cell.metadata["nbgrader"]
        assert meta["schema_version"] == 3 and "solution" not in cell.metadata.get("tags", [])
        if meta["solution"]:
            assert cell.cell_type == "code" and not meta["locked"] and not meta["grade"]
            assert "### BEGIN SOLUTION" in cell.source and "### END SOLUTION" in cell.source
        elif meta["grade"]:
            assert meta["locked"] and meta["points"] > 0 and "BEGIN SOLUTION" not in cell.source
        else:
            assert meta["locked"], f"{meta['grade_id']} should be read-only"
        if "### BEGIN HIDDEN TESTS" in cell.source:
            assert meta["grade"] and "### END HIDDEN TESTS" in cell.source
