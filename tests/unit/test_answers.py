"""Answers handed in as plain data (workbench.classroom.answers), and the notebook verify-grades runs
instead of the student's code (workbench.classroom.verify)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from workbench.classroom.answers import AnswerError, hand_in, load, restore
from workbench.classroom.verify import verification_notebook
from workbench.kernel.workspace import Workspace


def test_an_answer_goes_back_as_it_was_handed_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WORKBENCH_WORKSPACES", raising=False)
    workspace = Workspace.open("exercise")
    workspace.write("app/main.c", workspace.read("app/main.c") + "/* mine */\n")
    workspace.path("app/config.mk").unlink()
    hand_in("exercise-1", workspaces=[workspace], my_paddr=0x1234, levels=("PML4", "PT"), label="heap")
    workspace.reset()
    workspace.write("kernel/paging.c", "/* changed after the check */\n")
    namespace: dict[str, object] = {"image": "the lesson's own"}
    restore("exercise-1", namespace, names=["my_paddr", "levels", "label"])
    assert namespace == {"image": "the lesson's own", "my_paddr": 0x1234, "levels": ["PML4", "PT"], "label": "heap"}
    assert sorted(workspace.changed_files()) == ["app/config.mk", "app/main.c"]
    assert workspace.read("app/main.c").endswith("/* mine */\n")


def test_only_the_names_the_check_hands_in_come_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A submission that hands in `image` or `Grade` cannot replace the instructor's objects."""
    monkeypatch.chdir(tmp_path)
    hand_in("exercise-1", my_paddr=1, image="forged", Grade=0)
    namespace: dict[str, object] = {}
    restore("exercise-1", namespace, names=["my_paddr"])
    restore("never-handed-in", namespace, names=["my_paddr"])
    assert namespace == {"my_paddr": 1}


@pytest.mark.parametrize(("value", "words"), [(b"\x90", "hand in its .hex()"), (object(), "not plain data"),
                                              (float("nan"), "finite"), ({1: 2}, "str keys")])
def test_what_is_not_plain_data_is_refused_before_anything_is_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: object, words: str) -> None:
    monkeypatch.chdir(tmp_path)
    hand_in("exercise-1", kept=1)
    with pytest.raises(AnswerError, match=words):
        hand_in("exercise-1", kept=value)
    with pytest.raises(AnswerError, match="grade id"):
        hand_in("../elsewhere", kept=1)
    assert load() == {"exercise-1": {"values": {"kept": 1}, "workspaces": {}}}


def test_a_damaged_answers_file_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "answers.json").write_text("{not json")
    with pytest.raises(AnswerError, match="not the JSON that hand_in writes"):
        load(tmp_path)


def test_the_verification_runs_no_cell_of_the_students() -> None:
    source = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("x = 1", metadata={"nbgrader": {"grade_id": "setup", "locked": True}}),
        nbformat.v4.new_code_cell("### BEGIN SOLUTION\nmy_paddr = 2\n### END SOLUTION",
                                  metadata={"nbgrader": {"grade_id": "exercise-1", "solution": True}}),
        nbformat.v4.new_code_cell('hand_in("exercise-1", workspaces=[ws], my_paddr=my_paddr)\ngrade',
                                  metadata={"nbgrader": {"grade_id": "exercise-1-check", "grade": True,
                                                         "points": 1}})])
    cells = verification_notebook(source).cells
    assert cells[0].source == "x = 1" and "hand_in" in cells[2].source
    assert cells[1].source == ("from workbench.classroom.answers import restore\n"
                               "restore('exercise-1', globals(), names=['my_paddr'])")
