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
