"""Variants per student: the same seed gives the same choice, in the student's session and in
the grader; other students get others."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.classroom import variant
from workbench.errors import InvalidInput


def test_the_seed_comes_from_the_grader_then_the_hub_then_the_default(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WORKBENCH_STUDENT", "JUPYTERHUB_USER", "NBGRADER_EXECUTION"):
        monkeypatch.delenv(name, raising=False)
    assert variant.seed() == "self-learner"
    monkeypatch.setenv("JUPYTERHUB_USER", "alice")
    assert variant.seed() == "alice"
    submission = tmp_path / "autograded" / "bob" / "03-page-tables"
    submission.mkdir(parents=True)
    monkeypatch.chdir(submission)
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert variant.seed() == "bob"
    monkeypatch.setenv("WORKBENCH_STUDENT", "carol")
    assert variant.seed() == "carol"


def test_choices_are_stable_per_student_and_differ_between_students() -> None:
    options = list(range(100))
    assert variant.choose("x", options, student="alice") == variant.choose("x", options, student="alice")
    picks = {variant.choose("x", options, student=f"student{n}") for n in range(30)}
    assert len(picks) > 15
    numbers = {variant.number("y", 1, 8, student=f"student{n}") for n in range(60)}
    assert numbers == set(range(1, 9))
    assert variant.number("z", 0, 4096, step=8, student="a") % 8 == 0


def test_bad_variants_are_refused() -> None:
    with pytest.raises(InvalidInput):
        variant.choose("x", [])
    with pytest.raises(InvalidInput):
        variant.number("x", 5, 1)
    with pytest.raises(InvalidInput):
        variant.choose("", [1])
