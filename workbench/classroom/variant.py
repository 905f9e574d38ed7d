"""A variant of an exercise per student, so that a neighbour's answer is the wrong answer.

The seed is the student's name: the one nbgrader grades under, or the one JupyterHub logged in,
or "self-learner" for everyone else. The same seed gives the same choices in the student's own
session and in the grader, because nbgrader's student id is the hub user name. A check never
trusts the notebook's variables for its variant: it asks `choose` again and computes the
expected answer from the student's own live guest.

    seed()                              who this is: "alice", or "self-learner"
    choose("03-walk", ["a", "b"])       one of the options, the same one every time for this seed
    number("02-heap", 1, 8)             a whole number from 1 to 8, likewise
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from workbench import grader_facts
from workbench.errors import InvalidInput

DEFAULT_SEED = grader_facts.DEFAULT_STUDENT
T = TypeVar("T")


def seed() -> str:
    """The student this notebook runs for.

    In order: the student the grader's sandbox names in its read-only facts file (a submission
    cannot change it), $WORKBENCH_STUDENT, the student directory of an nbgrader autograde run
    (`autograded/STUDENT/ASSIGNMENT/`, the notebook's working directory), $JUPYTERHUB_USER,
    else "self-learner".
    """
    if grader_facts.FACTS is not None:
        return grader_facts.FACTS.student
    explicit = os.environ.get("WORKBENCH_STUDENT", "").strip()
    if explicit:
        return explicit
    if os.environ.get("NBGRADER_EXECUTION") == "autograde":
        student = Path.cwd().parent
        if student.parent.name == "autograded":
            return student.name
    return os.environ.get("JUPYTERHUB_USER", "").strip() or DEFAULT_SEED


def _random(what: str, student: str | None) -> random.Random:
    if not isinstance(what, str) or not what:
        raise InvalidInput("a variant needs a name, such as '03-hand-walk'")
    digest = hashlib.sha256(f"{student if student is not None else seed()}\0{what}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "little"))  # noqa: S311 - a variant, not a secret


def choose(what: str, options: Sequence[T], *, student: str | None = None) -> T:
    """One of `options` for this student and this exercise `what`; always the same one."""
    if not options:
        raise InvalidInput(f"the variant {what!r} has no options to choose from")
    return options[_random(what, student).randrange(len(options))]


def number(what: str, low: int, high: int, *, step: int = 1, student: str | None = None) -> int:
    """A whole number from `low` to `high` (both included, in steps of `step`) for this student."""
    if high < low or step < 1:
        raise InvalidInput(f"the variant {what!r} needs low <= high and a step of 1 or more")
    return low + step * _random(what, student).randrange((high - low) // step + 1)
