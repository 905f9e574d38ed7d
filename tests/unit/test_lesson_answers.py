"""Every check of every lesson hands in its exercise's answer first (workbench/classroom/answers.py).

`workbench verify-grades` runs a lesson again with each exercise cell replaced by `restore` of
what was handed in; a check that does not hand in its answer first, or hands in another
exercise's, would be graded there on nothing.
"""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

LESSONS = sorted((Path(__file__).resolve().parents[2] / "lessons").glob("[0-9][0-9]-*.ipynb"))


def first_statement(source: str) -> ast.stmt | None:
    body = ast.parse(source).body
    return body[0] if body else None


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.name for p in LESSONS])
def test_every_check_first_hands_in_the_exercise_before_it(lesson: Path) -> None:
    book = nbformat.read(lesson, as_version=4)
    exercise = None
    imported = False
    for cell in book.cells:
        meta = cell.metadata["nbgrader"]
        if cell.cell_type != "code":
            continue
        if meta["solution"]:
            exercise = meta["grade_id"]
        elif meta["grade"]:
            statement = first_statement(cell.source)
            assert isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call), meta["grade_id"]
            call = statement.value
            assert isinstance(call.func, ast.Name) and call.func.id == "hand_in", \
                f"{meta['grade_id']} does not start with hand_in(...)"
            assert [ast.literal_eval(argument) for argument in call.args] == [exercise], \
                f"{meta['grade_id']} hands in {ast.unparse(call.args[0])}, not the exercise before it ({exercise})"
            assert imported, f"hand_in is not imported in a read-only cell before {meta['grade_id']}"
        elif "from workbench.classroom.answers import hand_in" in cell.source:
            imported = True
    assert exercise is not None
