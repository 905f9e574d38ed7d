"""The student edition keeps each exercise's task and checks, and drops its solution."""

from __future__ import annotations

from pathlib import Path

import nbformat

from workbench.student_edition import PLACEHOLDER, strip_solutions, write_student_edition

LESSONS = Path(__file__).resolve().parents[2] / "lessons"


def test_a_solution_cell_keeps_its_task_and_loses_its_code() -> None:
    notebook = nbformat.v4.new_notebook()
    solution = nbformat.v4.new_code_cell("# Exercise: make it say hi.\n# Then run the check.\nprint('hi')\n")
    solution.metadata["tags"] = ["solution"]
    solution.outputs = [nbformat.v4.new_output("stream", text="hi\n")]
    check = nbformat.v4.new_code_cell("assert True")
    notebook.cells = [solution, check]
    assert strip_solutions(notebook) == 1
    assert notebook.cells[0].source == "# Exercise: make it say hi.\n# Then run the check.\n" + PLACEHOLDER
    assert notebook.cells[0].outputs == []
    assert notebook.cells[1].source == "assert True"


def test_every_lesson_has_solutions_to_strip(tmp_path: Path) -> None:
    written = write_student_edition(LESSONS, tmp_path)
    assert written, "no lessons found"
    for name, count in written:
        assert count >= 1, f"{name} has no cell tagged 'solution'"
        student = nbformat.read(tmp_path / name, as_version=4)
        for cell in student.cells:
            if "solution" in cell.metadata.get("tags", []) and cell.cell_type == "code":
                assert PLACEHOLDER in cell.source
