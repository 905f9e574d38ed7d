"""`workbench lab` starts a real JupyterLab on a copy of the lessons, never touching the originals
nor a student's own copies."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.support.lab_command import serve_lab
from workbench import resources


def test_lab_copies_the_lessons_serves_them_and_stops_on_sigint(tmp_path: Path) -> None:
    classroom = tmp_path / "class"
    classroom.mkdir()
    mine = classroom / "01-hello-unikernel.ipynb"
    mine.write_text('{"the student": "work in progress"}')  # a student's own copy: never overwritten
    with serve_lab([sys.executable, "-m", "workbench.cli", "lab", "--dir", str(classroom)]) as names:
        assert {"01-hello-unikernel.ipynb", "03-page-tables.ipynb"} <= names, names
    assert mine.read_text() == '{"the student": "work in progress"}'
    shipped = sorted(path.name for path in resources.lessons().glob("[0-9][0-9]-*.ipynb"))
    assert sorted(path.name for path in classroom.glob("*.ipynb")) == shipped
    copied = classroom / "03-page-tables.ipynb"
    assert copied.read_bytes() == (resources.lessons() / copied.name).read_bytes()
