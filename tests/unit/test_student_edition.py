"""The student edition is nbgrader's own release version of the lessons: solutions replaced by
"YOUR CODE HERE", hidden tests gone, every check and read-only cell kept with its checksum."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest

from workbench.classroom.student_edition import write_student_edition
from workbench.errors import WorkbenchError

LESSONS = Path(__file__).resolve().parents[2] / "lessons"


def test_nbgrader_makes_the_student_version(tmp_path: Path) -> None:
    source = tmp_path / "lessons"
    source.mkdir()
    for name in ("03-page-tables.ipynb", "04-page-faults.ipynb"):
        shutil.copy(LESSONS / name, source / name)
    assert write_student_edition(source, tmp_path / "out") == ["03-page-tables", "04-page-faults"]
    for name in ("03-page-tables", "04-page-faults"):
        teacher = nbformat.read(source / f"{name}.ipynb", as_version=4)
        student = nbformat.read(tmp_path / "out" / f"{name}.ipynb", as_version=4)
        assert len(student.cells) == len(teacher.cells)
        for ours, theirs in zip(teacher.cells, student.cells, strict=True):
            meta = ours.metadata.get("nbgrader", {})
            if meta.get("solution"):
                assert "### BEGIN SOLUTION" in ours.source and "BEGIN SOLUTION" not in theirs.source
                assert "raise NotImplementedError()" in theirs.source
                assert theirs.source.startswith(ours.source.split("### BEGIN SOLUTION")[0])  # the task stays
            elif "### BEGIN HIDDEN TESTS" in ours.source:
                assert "HIDDEN" not in theirs.source and "Grade(" not in theirs.source
                assert theirs.source.strip() == ours.source.split("### BEGIN HIDDEN TESTS")[0].strip()
            else:
                assert theirs.source == ours.source
            if meta.get("locked") or meta.get("grade"):
                assert theirs.metadata["nbgrader"]["checksum"]


def test_no_lessons_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(WorkbenchError, match="no lessons"):
        write_student_edition(tmp_path, tmp_path / "out")
