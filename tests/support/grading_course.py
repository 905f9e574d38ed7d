"""A real nbgrader course in a temporary directory, for the grading tests and benchmarks/grading.py.

Everything goes through nbgrader's own commands, as an instructor and students would run them:
generate_assignment, release_assignment, fetch_assignment and submit (as each student, through a
private exchange; every student's in one Python), collect, autograde (in the course's sandboxed
kernel) and generate_feedback.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook

from workbench.kernel.skeleton import parse, skeleton_source

REPOSITORY = Path(__file__).resolve().parents[2]
COURSE = REPOSITORY / "course"
NBGRADER_TIMEOUT = 1800.0

Edit = Callable[[nbformat.NotebookNode, Path], None]  # (the student's notebook, their assignment directory)

# Runs nbgrader commands as students: argv[1] is JSON, a list of [student, home, nbgrader arguments].
# Each runs in the student's home with the student's JUPYTERHUB_USER (nbgrader's own name for who
# submits), as a fresh instance of nbgrader's application; a command that fails ends them all.
AS_STUDENTS = """
import json, os, sys
from jupyter_core.application import NoStart
from nbgrader.apps.nbgraderapp import NbGraderApp
for student, home, arguments in json.loads(sys.argv[1]):
    os.chdir(home)
    os.environ["JUPYTERHUB_USER"] = student
    app = NbGraderApp.instance()
    try:
        app.initialize(arguments)
        app.start()
    except NoStart:  # what a subcommand's application raises once it has run
        pass
    finally:
        if app.subapp is not None:
            type(app.subapp).clear_instance()
        NbGraderApp.clear_instance()
"""


class Course:
    """A course directory with its own exchange, made from course/ and the lessons."""

    def __init__(self, root: Path, lessons: list[str]) -> None:
        self.root = root / "course"
        self.exchange = root / "exchange"
        self.homes = root / "homes"
        self.exchange.mkdir(parents=True)
        self.exchange.chmod(0o777)
        self.root.mkdir(parents=True, exist_ok=True)
        shutil.copy(COURSE / "nbgrader_config.py", self.root / "nbgrader_config.py")
        shutil.copytree(COURSE / "jupyter", self.root / "jupyter")
        for lesson in lessons:
            (self.root / "source" / lesson).mkdir(parents=True)
            shutil.copy(REPOSITORY / "lessons" / f"{lesson}.ipynb", self.root / "source" / lesson / f"{lesson}.ipynb")
        self.lessons = lessons

    def environment(self, student: str | None = None) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items()
               if key not in ("WORKBENCH_WORKSPACES", "JUPYTERHUB_USER")}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # nbgrader runs alembic
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPOSITORY), env.get("PYTHONPATH")]))
        if student is not None:
            env["JUPYTERHUB_USER"] = student  # nbgrader's own name for who submits
        return env

    def nbgrader(self, *arguments: str, cwd: Path | None = None, student: str | None = None,
                 check: bool = True) -> subprocess.CompletedProcess[str]:
        """One nbgrader command, with this course's exchange; raises with its log if it fails."""
        command = [sys.executable, "-m", "nbgrader", *arguments, f"--Exchange.root={self.exchange}"]
        if cwd is not None:  # a student's command, outside the course: name the course
            command.append("--CourseDirectory.course_id=unikernel-workbench")
        done = subprocess.run(command, cwd=cwd or self.root, env=self.environment(student), text=True,
                              capture_output=True, timeout=NBGRADER_TIMEOUT, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"nbgrader {' '.join(arguments)} failed ({done.returncode}):\n{done.stderr[-6000:]}")
        return done

    def release(self) -> None:
        for lesson in self.lessons:
            self.nbgrader("generate_assignment", lesson, "--force")
            self.nbgrader("release_assignment", lesson, "--force")

    def submit(self, lesson: str, submissions: dict[str, Edit]) -> None:
        """Each student fetches `lesson`, changes it with its edit as that student would, and submits it."""
        homes = {student: self.homes / student for student in submissions}
        for home in homes.values():
            home.mkdir(parents=True, exist_ok=True)
        self.as_students({student: ["fetch_assignment", lesson] for student in submissions}, homes)
        for student, edit in submissions.items():
            directory = homes[student] / lesson
            path = directory / f"{lesson}.ipynb"
            notebook = nbformat.read(path, as_version=4)
            edit(notebook, directory)
            nbformat.write(notebook, path)
        self.as_students({student: ["submit", lesson, f"--student={student}"] for student in submissions}, homes)

    def as_students(self, commands: dict[str, list[str]], homes: dict[str, Path]) -> None:
        """One nbgrader command per student, each in its home, as that user, with this course's exchange.

        nbgrader's own apps, all in one Python (AS_STUDENTS), since each start of nbgrader costs a
        second or more of CPU."""
        jobs = [[student, str(homes[student]), [*arguments, f"--Exchange.root={self.exchange}",
                                                "--CourseDirectory.course_id=unikernel-workbench"]]
                for student, arguments in commands.items()]
        done = subprocess.run([sys.executable, "-c", AS_STUDENTS, json.dumps(jobs)], env=self.environment(),
                              text=True, capture_output=True, timeout=NBGRADER_TIMEOUT, check=False)
        if done.returncode != 0:
            raise AssertionError(f"nbgrader as the students failed ({done.returncode}):\n{done.stderr[-6000:]}")

    def grade(self, lesson: str) -> subprocess.CompletedProcess[str]:
        self.nbgrader("collect", lesson)
        done = self.nbgrader("autograde", lesson, "--force", check=False)
        self.nbgrader("generate_feedback", lesson, "--force")
        return done

    def grade_class(self, lesson: str, submissions: dict[str, Edit]) -> dict[str, dict[str, float]]:
        """Each student's submission made by its edit, autograded: the points per check cell."""
        self.submit(lesson, submissions)
        graded = self.grade(lesson)
        if graded.returncode != 0:
            raise AssertionError(f"nbgrader autograde failed:\n{graded.stderr[-4000:]}")
        return self.scores(lesson)

    def scores(self, lesson: str, gradebook: str = "gradebook.db") -> dict[str, dict[str, float]]:
        """For each student, the points of each graded cell of `lesson` (grade_id -> points)."""
        found: dict[str, dict[str, float]] = {}
        with Gradebook(f"sqlite:///{self.root / gradebook}", "unikernel-workbench") as book:
            for submission in book.assignment_submissions(lesson):
                notebook = submission.notebooks[0]
                found[submission.student.id] = {grade.name: float(grade.score) for grade in notebook.grades}
        return found

    def feedback(self, student: str, lesson: str) -> str:
        return (self.root / "feedback" / student / lesson / f"{lesson}.html").read_text()

    def why(self, student: str, lesson: str) -> str:
        """What each graded cell of the student's autograded notebook printed or raised: the
        message of an assert on scores, so that a lost point says where it went."""
        path = self.root / "autograded" / student / lesson / f"{lesson}.ipynb"
        if not path.exists():
            return f"no autograded notebook for {student}"
        said = []
        for cell in nbformat.read(path, as_version=4).cells:
            grading = cell.metadata.get("nbgrader", {})
            for output in cell.get("outputs", []):
                if grading.get("grade") or output.output_type == "error":
                    said.append(f"[{grading.get('grade_id', '')}] {_text_of(output)}")
        return "\n".join(said)


def _text_of(output: nbformat.NotebookNode) -> str:
    if output.output_type == "error":  # the traceback's last lines, without its colours
        return re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(output.get("traceback", [])[-3:]))
    return str(output.get("text") or output.get("data", {}).get("text/plain", "")).strip()


def solution_cells(lesson: str) -> dict[str, str]:
    """Each exercise cell of the source lesson: grade_id -> its source, solution included."""
    source = nbformat.read(REPOSITORY / "lessons" / f"{lesson}.ipynb", as_version=4)
    return {cell.metadata["nbgrader"]["grade_id"]: cell.source for cell in source.cells
            if cell.metadata.get("nbgrader", {}).get("solution")}


def fill(notebook: nbformat.NotebookNode, answers: dict[str, str]) -> None:
    """Put `answers` (grade_id -> source) into the student's exercise cells."""
    for cell in notebook.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell.source = answers[grade_id]


def points(lesson: str) -> dict[str, float]:
    """The points of each check of the source lesson."""
    source = nbformat.read(REPOSITORY / "lessons" / f"{lesson}.ipynb", as_version=4)
    return {cell.metadata["nbgrader"]["grade_id"]: float(cell.metadata["nbgrader"]["points"]) for cell in source.cells
            if cell.metadata.get("nbgrader", {}).get("grade")}


def secrets_of_the_course() -> set[str]:
    """Lines that only the instructor's material holds: every solution block of kernel-src, and the
    code of every solution cell and hidden test of the lessons; minus what the students' skeleton
    or the workbench's own code also says (a solution may quote the line it changes)."""
    found: set[str] = set()
    for path in (REPOSITORY / "kernel-src").rglob("*"):
        if path.is_file():
            found.update(block.code.strip() for block in parse(path.read_text(errors="replace"))[1])
    for lesson in (REPOSITORY / "lessons").glob("[0-9][0-9]-*.ipynb"):
        for cell in nbformat.read(lesson, as_version=4).cells:
            for block in cell.source.split("### BEGIN ")[1:]:
                code = block.split("### END")[0].splitlines()[1:]
                found.update(line.strip() for line in code if len(line.strip()) > 24)
    public = [path for path in skeleton_source(REPOSITORY / "kernel-src").rglob("*") if path.is_file()]
    text = "".join(path.read_text(errors="replace") for path in [*public, *(REPOSITORY / "workbench").rglob("*.py")])
    return {secret for secret in found if secret and secret not in text}


def host_socket_path(name: str) -> Path:
    """A place for a Unix socket of the grading machine's own that a submission must not reach:
    /run where the tests may write there (root), else the home directory."""
    directory = Path("/run") if os.access("/run", os.W_OK) else Path.home()
    return directory / f"workbench-test-{name}.sock"
