"""What the grader's sandbox tells the Jupyter kernel inside it, read once from a read-only file.

The grader (workbench/classroom/sandbox.py) binds a small JSON file read-only at FACTS_PATH in each
submission's sandbox: whose submission it is and how many machines it may run. A submission can
change its own environment variables and any Python object in its kernel, but not that file, so
a variant computed from it is the student's own and no cell can raise the cap it reads. Outside
the grader there is no such file and `FACTS` is None.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import WorkbenchError

FACTS_PATH = Path("/run/workbench-grader/facts.json")
DEFAULT_STUDENT = "self-learner"  # a notebook graded outside nbgrader's autograded/STUDENT/ directories
STUDENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}")  # nbgrader's ids are hub user names


@dataclass(frozen=True)
class GraderFacts:
    """Who is graded, and the limits the grader set."""

    student: str
    max_machines: int

    def to_json(self) -> str:
        return json.dumps({"student": self.student, "max_machines": self.max_machines})


def parse(text: str) -> GraderFacts:
    """The facts in `text`; anything malformed is the grader's own mistake, said at once."""
    try:
        data = json.loads(text)
        student, machines = data["student"], data["max_machines"]
    except (ValueError, TypeError, KeyError) as error:
        raise WorkbenchError(f"the grader's facts file {FACTS_PATH} is malformed: {error}") from error
    if not isinstance(student, str) or not STUDENT_ID.fullmatch(student):
        raise WorkbenchError(f"the grader's facts name no usable student: {student!r}")
    if not isinstance(machines, int) or isinstance(machines, bool) or machines < 1:
        raise WorkbenchError(f"the grader's facts allow no machines: {machines!r}")
    return GraderFacts(student, machines)


def _read() -> GraderFacts | None:
    try:
        text = FACTS_PATH.read_text()
    except FileNotFoundError:
        return None
    return parse(text)


FACTS: GraderFacts | None = _read()  # once, when the workbench is imported
