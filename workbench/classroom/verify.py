"""`workbench verify-grades COURSE ASSIGNMENT`: nbgrader's points, checked again without the
student's code.

nbgrader computes a submission's points in the student's own Jupyter kernel, so an earlier cell
can forge them (replace `Grade.points`, say). After `nbgrader autograde`, this runs the
instructor's source notebook once more for each submission, in a fresh sandbox of its own
(sandbox.py), with every exercise cell replaced by `restore(...)` of the answer the submission
handed in as plain data (answers.py): only the instructor's cells run, in a plain Python process
(runner.py) rather than a Jupyter kernel, which they do not need. Each check
cell's points, read as nbgrader reads them, are compared with the gradebook's automatic score,
and every difference is listed per student and cell.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import json
import os
import selectors
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import nbformat
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.utils import determine_grade
from traitlets.config.loader import PyFileConfigLoader

from workbench.classroom import answers
from workbench.classroom.sandbox import check_sandbox, prepare_grading
from workbench.errors import InvalidInput

CELL_SECONDS = 120  # the course's budget per cell (course/nbgrader_config.py)
SILENCE_SECONDS = 30  # past a cell's budget, for an interrupted cell to end, before the sandbox is stopped
STOP_SECONDS = 10  # for the sandbox's launcher to end when asked


@dataclass(frozen=True)
class Disagreement:
    """One check cell whose points nbgrader and the verification do not agree on."""

    student: str
    cell: str
    recorded: float | None  # the gradebook's automatic score; None when it has none
    verified: float

    def __str__(self) -> str:
        recorded = "none" if self.recorded is None else f"{self.recorded:g}"
        return f"{self.student:<16} {self.cell:<28} nbgrader {recorded:>5}   verified {self.verified:g}"


@dataclass(frozen=True)
class Course:
    """An nbgrader course directory, as its nbgrader_config.py describes it."""

    root: Path
    course_id: str
    db_url: str

    @classmethod
    def open(cls, root: str | Path) -> Course:
        directory = Path(root).resolve()
        config_file = directory / "nbgrader_config.py"
        if not config_file.is_file():
            raise InvalidInput(f"{directory} is not an nbgrader course: it has no nbgrader_config.py")
        config = PyFileConfigLoader(config_file.name, path=str(directory)).load_config()
        course_directory = config.get("CourseDirectory", {})
        return cls(directory, str(course_directory.get("course_id", "")),
                   str(course_directory.get("db_url", f"sqlite:///{directory / 'gradebook.db'}")))

    def source(self, assignment: str) -> nbformat.NotebookNode:
        notebooks = sorted((self.root / "source" / assignment).glob("*.ipynb"))
        if len(notebooks) != 1:
            raise InvalidInput(f"the course has no single source notebook for {assignment!r} "
                               f"(found {len(notebooks)} in source/{assignment}/)")
        notebook: nbformat.NotebookNode = nbformat.read(notebooks[0], as_version=4)  # type: ignore[no-untyped-call]
        return notebook

    def submissions(self, assignment: str) -> dict[str, Path]:
        """student -> their autograded directory of `assignment`."""
        return {path.parent.name: path for path in sorted((self.root / "autograded").glob(f"*/{assignment}"))
                if path.is_dir()}

    def recorded(self, assignment: str, notebook: str) -> dict[str, dict[str, float | None]]:
        """student -> cell -> the automatic score autograde stored."""
        found: dict[str, dict[str, float | None]] = {}
        with Gradebook(self.db_url, self.course_id) as book:
            try:
                submissions = book.assignment_submissions(assignment)
            except MissingEntry as error:
                raise InvalidInput(f"the gradebook has no assignment {assignment!r}: run nbgrader autograde "
                                   "first") from error
            for submission in submissions:
                for graded in submission.notebooks:
                    if graded.name == notebook:
                        found[submission.student.id] = {grade.name: grade.auto_score for grade in graded.grades}
        return found


def _handed_in_names(check: str) -> list[str]:
    """The keyword names of every `hand_in(...)` call in a check cell's source."""
    try:
        tree = ast.parse(check)
    except SyntaxError:
        return []
    return [keyword.arg for node in ast.walk(tree) if isinstance(node, ast.Call)
            and getattr(node.func, "id", getattr(node.func, "attr", "")) == "hand_in"
            for keyword in node.keywords if keyword.arg not in (None, "workspaces")]


def verification_notebook(source: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """`source` with each exercise cell replaced by the restore of its handed-in answer."""
    notebook = copy.deepcopy(source)
    names = [name for cell in notebook.cells if cell.metadata.get("nbgrader", {}).get("grade")
             for name in _handed_in_names(cell.source)]
    for cell in notebook.cells:
        grading = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code":
            cell.outputs = []
            if grading.get("solution"):
                cell.source = ("from workbench.classroom.answers import restore\n"
                               f"restore({grading['grade_id']!r}, globals(), names={sorted(set(names))!r})")
    return notebook


def _points(notebook: nbformat.NotebookNode) -> dict[str, float]:
    """Each check cell's points, read from its outputs as nbgrader's autograde reads them."""
    return {cell.metadata["nbgrader"]["grade_id"]: float(determine_grade(cell, None)[0] or 0)
            for cell in notebook.cells if cell.metadata.get("nbgrader", {}).get("grade")}


def run_checks(notebook: nbformat.NotebookNode, student: str, submission: Path, course: Course) -> dict[str, float]:
    """Execute the verification notebook for `student` in a fresh sandbox (runner.py), in a
    scratch copy of what the submission handed in; the points of each check cell."""
    with tempfile.TemporaryDirectory(prefix="workbench-verify-") as scratch:
        directory = Path(scratch) / "autograded" / student / submission.name  # where the sandbox reads the id
        directory.mkdir(parents=True)
        handed_in = answers.answers_path(submission)
        if handed_in.is_file():
            shutil.copyfile(handed_in, answers.answers_path(directory))
        _execute(notebook, directory, course)
        return _points(notebook)


def _execute(notebook: nbformat.NotebookNode, directory: Path, course: Course) -> None:
    """Run the code cells of `notebook` in the sandbox for `directory`, putting each cell's
    outputs into it. A cell still running after CELL_SECONDS is interrupted; a sandbox that says
    nothing for a while longer, or dies, leaves the cells it did not finish without outputs (no
    points, as in autograde)."""
    cells = [(index, cell.source) for index, cell in enumerate(notebook.cells)
             if cell.cell_type == "code" and cell.source.strip()]  # what nbclient runs
    request = json.dumps({"cells": cells, "seconds": CELL_SECONDS}).encode()
    environment = {**os.environ, "WORKBENCH_COURSE": str(course.root)}
    with subprocess.Popen([sys.executable, "-P", "-m", "workbench.classroom.sandbox", "--checks"], cwd=directory,
                          env=environment, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL) as process:
        try:
            writer = threading.Thread(target=_send, args=(process, request), daemon=True)
            writer.start()
            assert process.stdout is not None
            for line in _lines(process.stdout, CELL_SECONDS + SILENCE_SECONDS):
                _record(notebook, line)
        finally:
            _stop(process)


def _record(notebook: nbformat.NotebookNode, line: bytes) -> None:
    """One cell's outputs, as the runner writes them, into `notebook`; anything else (a line cut
    short by a runner that died) is left out: that cell then earns nothing."""
    try:
        reply = json.loads(line)
        outputs = [nbformat.from_dict(output) for output in reply["outputs"]]  # type: ignore[no-untyped-call]
        notebook.cells[int(reply["index"])].outputs = outputs
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        pass


def _send(process: subprocess.Popen[bytes], request: bytes) -> None:
    """The cells, to the runner's standard input (a thread: a pipe holds less than a notebook)."""
    with contextlib.suppress(OSError):  # a sandbox that could not start reads nothing
        assert process.stdin is not None
        process.stdin.write(request)
        process.stdin.close()


def _lines(stream: IO[bytes], seconds: float) -> Iterator[bytes]:
    """Each line of `stream` until its end, or until it says nothing for `seconds`."""
    buffered = b""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while selector.select(seconds):
            chunk = os.read(stream.fileno(), 1 << 16)
            if not chunk:
                return
            *lines, buffered = (buffered + chunk).split(b"\n")
            yield from lines


def _stop(process: subprocess.Popen[bytes]) -> None:
    """The sandbox's launcher has ended, or ends now: asked first, so that it removes its
    cgroup; everything in the sandbox dies with it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def verify_grades(course_dir: str | Path, assignment: str, *, jobs: int = 1, students: Sequence[str] | None = None,
                  db_url: str | None = None) -> tuple[int, list[Disagreement]]:
    """Check every autograded submission of `assignment` (or only `students`'): how many were
    checked, and each disagreement with the gradebook."""
    if not isinstance(jobs, int) or jobs < 1:
        raise InvalidInput(f"jobs is the number of submissions checked at once, 1 or more, not {jobs!r}")
    course = Course.open(course_dir)
    if db_url is not None:
        course = Course(course.root, course.course_id, db_url)
    source = course.source(assignment)
    notebook_name = next(iter(sorted((course.root / "source" / assignment).glob("*.ipynb")))).stem
    submissions = course.submissions(assignment)
    if students is not None:
        submissions = {student: path for student, path in submissions.items() if student in students}
    if not submissions:
        raise InvalidInput(f"there is no autograded submission of {assignment!r} in {course.root / 'autograded'}")
    recorded = course.recorded(assignment, notebook_name)
    check_sandbox()  # a machine that refuses the sandbox says so once, not as zero points for everyone
    prepare_grading(course.root)  # once, before the first submission's sandbox would wait for it

    def one(student: str) -> list[Disagreement]:
        verified = run_checks(verification_notebook(source), student, submissions[student], course)
        theirs = recorded.get(student, {})
        return [Disagreement(student, cell, theirs.get(cell), points) for cell, points in verified.items()
                if abs(float(theirs.get(cell) or 0) - points) > 1e-9]  # no score is no points

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        found = [item for items in pool.map(one, sorted(submissions)) for item in items]
    return len(submissions), found


def report(checked: int, disagreements: list[Disagreement]) -> Iterator[str]:
    """The lines `workbench verify-grades` prints."""
    for disagreement in disagreements:
        yield str(disagreement)
    students = len({d.student for d in disagreements})
    yield (f"{checked} submission{'s' if checked != 1 else ''} checked: "
           + ("every grade agrees" if not disagreements else
              f"{len(disagreements)} cell{'s' if len(disagreements) != 1 else ''} of {students} "
              f"student{'s' if students != 1 else ''} disagree: look at these submissions before trusting the grades"))
