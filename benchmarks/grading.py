"""A class graded on this machine: nbgrader autograde of every lesson for N students.

Makes a temporary course from course/ (generate_assignment of every lesson), puts N students'
correct submissions where `nbgrader collect` would (submitted/STUDENT/LESSON/), then runs
`nbgrader autograde LESSON` for every lesson, each submission's kernel in the bubblewrap sandbox,
`--jobs` lessons at a time, then `workbench verify-grades` of every lesson (each submission's
checks again in a fresh sandbox, `--jobs` at a time). Prints notebooks per minute for the two
together and for each, the slowest notebook (its cells, first to last, from nbclient's own
timing), and the peak memory of everything grading started, summed over the process tree (QEMU
included), sampled every 0.2 s. Every submission must earn full points and every grade must
verify, or the figures are not printed.

Target on 2 cores: 30 students x 6 lessons = 180 notebooks autograded and verified in under 10
minutes (the six lessons the target was set for: --lessons 01 02 03 04 05 06).

    .venv/bin/python -m benchmarks.grading [--students 30] [--jobs 2] [--lessons 01 02 ...]
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat

from tests.support.grading_course import REPOSITORY, Course, fill, points, solution_cells
from workbench.kernel.workspace import Workspace

ALL_LESSONS = sorted(path.stem for path in (REPOSITORY / "lessons").glob("[0-9][0-9]-*.ipynb"))
PAGE = os.sysconf("SC_PAGE_SIZE")


def tree_rss(root: int) -> int:
    """Resident bytes of `root` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(status.parent.name)
        children.setdefault(int(fields[1]), []).append(pid)  # fields[1] is the parent's pid
        rss[pid] = int(fields[21]) * PAGE
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack += children.get(pid, [])
    return total


def seconds_of(path: Path) -> float:
    """First cell's start to last cell's reply, from the timing nbclient records in each cell."""
    book = nbformat.read(path, as_version=4)
    stamps = [datetime.datetime.fromisoformat(cell.metadata["execution"][key].replace("Z", "+00:00"))
              for cell in book.cells if "execution" in cell.metadata
              for key in ("iopub.execute_input", "shell.execute_reply") if key in cell.metadata["execution"]]
    return (max(stamps) - min(stamps)).total_seconds() if stamps else float("nan")


def gradebook(lesson: str) -> str:
    """One gradebook per lesson: lessons graded at the same time never wait for SQLite's lock."""
    return f"gradebook-{lesson}.db"


SOLVE = re.compile(r'^(?P<workspace>\w+)\.solve\("(?P<solution>[a-z0-9-]+)"\)$', re.MULTILINE)
EXERCISES = re.compile(r'(?P<variable>\w+) = Workspace\.open\("(?P<name>[\w.-]+-exercises)"\)')


def correct_answers(lesson: str) -> tuple[dict[str, str], dict[str, list[str]]]:
    """The solution cells, and the C a correct student writes in the file browser: the grader
    has no solution for a cell's `solve()` to put back. (grade_id -> source, workspace -> solutions)"""
    cells = solution_cells(lesson)
    source = "\n".join(cell.source for cell in nbformat.read(REPOSITORY / "lessons" / f"{lesson}.ipynb",
                                                          as_version=4).cells)
    workspaces = {match["variable"]: match["name"] for match in EXERCISES.finditer(source)}
    written: dict[str, list[str]] = {}
    for grade_id, cell in cells.items():
        for match in SOLVE.finditer(cell):
            written.setdefault(workspaces[match["workspace"]], []).append(match["solution"])
        cells[grade_id] = SOLVE.sub(r"# \g<solution>: written in the workspace's files", cell)
    return cells, written


def prepare(course: Course, students: int, lessons: list[str]) -> None:
    for lesson in lessons:
        course.nbgrader("generate_assignment", lesson, "--force",
                        f"--CourseDirectory.db_url=sqlite:///{course.root / gradebook(lesson)}")
        release = nbformat.read(course.root / "release" / lesson / f"{lesson}.ipynb", as_version=4)
        cells, written = correct_answers(lesson)
        fill(release, cells)
        for number in range(students):
            directory = course.root / "submitted" / f"student{number:02d}" / lesson
            directory.mkdir(parents=True)
            nbformat.write(release, directory / f"{lesson}.ipynb")
            for workspace, solutions in written.items():
                for solution in solutions:
                    Workspace.open(workspace, parent=directory / "workspaces").solve(solution)


def verify(course: Course, lessons: list[str], jobs: int) -> list[str]:
    """verify-grades of every lesson, one after the other; what did not verify."""
    problems = []
    for lesson in lessons:
        done = subprocess.run([sys.executable, "-m", "workbench.cli", "verify-grades", str(course.root), lesson,
                               "--jobs", str(jobs), "--db", f"sqlite:///{course.root / gradebook(lesson)}"],
                              env=course.environment(), capture_output=True, text=True, check=False)
        if done.returncode != 0:
            problems.append(f"{lesson}: {done.stdout.strip()[-2000:]} {done.stderr.strip()[-3000:]}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=2, help="lessons autograded at the same time")
    parser.add_argument("--lessons", nargs="+", metavar="NN", help="only these lessons, by number (default: all)")
    args = parser.parse_args()
    chosen = [name for name in ALL_LESSONS if args.lessons is None or name[:2] in args.lessons]
    if not chosen:
        parser.error(f"no lesson has one of the numbers {' '.join(args.lessons)}")
    load_before = os.getloadavg()[0]  # other work on the machine slows grading: say how much there was
    with tempfile.TemporaryDirectory(prefix="workbench-grading-") as scratch:
        course = Course(Path(scratch), chosen)
        prepare(course, args.students, chosen)
        peak = 0
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.wait(0.2):
                peak = max(peak, tree_rss(os.getpid()))

        sampler = threading.Thread(target=sample, daemon=True)
        started = time.monotonic()
        sampler.start()
        pending = list(chosen)
        running: list[subprocess.Popen[str]] = []
        command = [sys.executable, "-m", "nbgrader", "autograde", "--force", f"--Exchange.root={course.exchange}"]
        while pending or running:
            while pending and len(running) < args.jobs:
                lesson = pending.pop(0)
                database = f"--CourseDirectory.db_url=sqlite:///{course.root / gradebook(lesson)}"
                running.append(subprocess.Popen([*command, lesson, database], cwd=course.root,
                                                env=course.environment(), stdout=subprocess.DEVNULL,
                                                stderr=subprocess.DEVNULL, text=True))
            time.sleep(0.2)
            running = [process for process in running if process.poll() is None]
        autograded = time.monotonic() - started
        unverified = verify(course, chosen, args.jobs)
        elapsed = time.monotonic() - started
        done.set()
        sampler.join()

        notebooks = sorted((course.root / "autograded").glob("*/*/*.ipynb"))
        wrong = [f"{student}/{lesson}: {scores}" for lesson in chosen
                 for student, scores in course.scores(lesson, gradebook(lesson)).items() if scores != points(lesson)]
        expected = args.students * len(chosen)
        if len(notebooks) != expected or wrong or unverified:
            print(f"grading failed: {len(notebooks)} of {expected} notebooks graded; wrong points: {wrong[:5]}; "
                  f"not verified: {unverified[:5]}")
            return 1
        slowest = max(notebooks, key=seconds_of)
        print(f"{len(notebooks)} notebooks ({args.students} students x {len(chosen)} lessons), "
              f"{args.jobs} lessons at a time, on {os.cpu_count()} cores (load average {load_before:.1f} before)")
        print(f"  total:          {elapsed / 60:.1f} min, {len(notebooks) / (elapsed / 60):.1f} notebooks per minute "
              f"(target: 180 in under 10 min, verify-grades included)")
        print(f"  autograde:      {autograded / 60:.1f} min")
        print(f"  verify-grades:  {(elapsed - autograded) / 60:.1f} min")
        print(f"  slowest:        {slowest.parent.parent.name}/{slowest.stem}, {seconds_of(slowest):.1f} s "
              "from its first cell to its last")
        print(f"  peak memory:    {peak / 2**20:.0f} MiB resident, all processes grading started (QEMU included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
