"""Lesson checks that measure: graded with real nbgrader (tests/support/grading_course.py), a submission
that forges what a check used to trust gets nothing for it, and a correct one gets every point.

Lesson 07's first check once searched the recording's console for the reply, and the guest
echoes what it is sent: typing the reply into a recording of the broken kernel passed. Lesson
06's check once graded the Replies the student's own cells made. Both now record or boot again
from the workspace the submission hands in (workbench/classroom/answers.py), and measure there.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import nbformat
import pytest

from tests.support.grading_course import Course, fill, points, solution_cells
from workbench.kernel.workspace import Workspace

pytestmark = pytest.mark.qemu

DEBUGGING = "07-debugging-and-time-travel"
ATTACK_SURFACE = "06-attack-surface"
SEVERAL_CPUS = "10-several-cpus"
SOLVE = re.compile(r'^\w+\.solve\("[a-z0-9-]+"\)$', re.MULTILINE)  # refused while grading


def answer(notebook: nbformat.NotebookNode, grade_id: str, source: str) -> None:
    fill(notebook, {grade_id: textwrap.dedent(source).strip()})


@pytest.mark.slow(39)
def test_lesson_07_pays_for_the_fix_not_for_typing_its_reply(tmp_path: Path) -> None:
    course = Course(tmp_path, [DEBUGGING])
    course.release()

    def correct(notebook: nbformat.NotebookNode, directory: Path) -> None:
        fill(notebook, solution_cells(DEBUGGING))

    def types_the_reply(notebook: nbformat.NotebookNode, directory: Path) -> None:
        fill(notebook, solution_cells(DEBUGGING))  # exercise 2 answered right
        answer(notebook, "fix-the-planted-bug", """
            # no fix: the broken kernel, recorded, with the reply typed in (the guest echoes it)
            recorder = Recorder(ws.build(), name="lesson-07-recording")
            machine = recorder.start()
            machine.wait_for("> ")
            for request in ["syscall noop", "ticks", "alloc 2", "call noop"]:
                machine.request(request)
            machine.send_line("ok syscall-cr3 service=noop")
            machine.wait_for("> ok syscall-cr3 service=noop")
            fixed_recording = recorder.stop()
            print("ok syscall-cr3 service=noop" in fixed_recording.console)
            """)

    scores = course.grade_class(DEBUGGING, {"alice": correct, "bob": types_the_reply})
    full = points(DEBUGGING)
    assert scores["alice"] == full, course.why("alice", DEBUGGING)
    assert scores["bob"] == {**full, "check-the-fix": 0.0}
    feedback = course.feedback("bob", DEBUGGING)
    assert "Exercise 1: fix the planted bug: 0 of 2 points" in feedback
    assert "still hold the planted line" in feedback


@pytest.mark.slow(15)
def test_lesson_06_grades_the_hook_it_makes_not_replies_a_submission_forged(tmp_path: Path) -> None:
    course = Course(tmp_path, [ATTACK_SURFACE])
    course.release()

    def correct(notebook: nbformat.NotebookNode, directory: Path) -> None:
        fill(notebook, solution_cells(ATTACK_SURFACE))

    def forges_the_replies(notebook: nbformat.NotebookNode, directory: Path) -> None:
        answer(notebook, "exercise", """
            # no hook: replies made up, and the table's own (read-only) address handed in
            from workbench.guest.protocol import Reply
            hooked = Reply(True, "syscall", {"service": "noop", "value": str(my_clock + 5)},
                           f"ok syscall service=noop value={my_clock + 5}")
            direct = Reply(True, "call", {"service": "noop", "value": "0"}, "ok call service=noop value=0")
            table_alias = image.symbol("syscall_table").vaddr
            hook = image.symbol("sys_get_ticks").vaddr
            """)

    scores = course.grade_class(ATTACK_SURFACE, {"alice": correct, "carol": forges_the_replies})
    full = points(ATTACK_SURFACE)
    assert scores["alice"] == full, course.why("alice", ATTACK_SURFACE)
    assert scores["carol"] == {**full, "exercise-check": 0.0}
    assert "Exercise: hook the system call table: 0 of 2 points" in course.feedback("carol", ATTACK_SURFACE)


@pytest.mark.slow(23)
def test_lesson_10_pays_for_the_lock_not_for_a_reply_that_says_nothing_was_lost(tmp_path: Path) -> None:
    """Lesson 10's first check once trusted the counts the student's C prints: C that takes no
    lock and prints the expected count passed. The check now reads `counter` in guest memory."""
    course = Course(tmp_path, [SEVERAL_CPUS])
    course.release()
    cells = {grade_id: SOLVE.sub("pass  # written in the workspace's files", source)
             for grade_id, source in solution_cells(SEVERAL_CPUS).items()}

    def exercise_workspace(directory: Path) -> Workspace:
        return Workspace.open("10-several-cpus-exercises", parent=directory / "workspaces")

    def correct(notebook: nbformat.NotebookNode, directory: Path) -> None:
        fill(notebook, cells)
        exercise = exercise_workspace(directory)
        exercise.solve("counter-lock")
        exercise.solve("tlb-shootdown")

    def prints_no_loss(notebook: nbformat.NotebookNode, directory: Path) -> None:
        fill(notebook, cells)
        exercise = exercise_workspace(directory)
        exercise.solve("tlb-shootdown")  # exercise 2b done right; exercise 1 not done, its reply made up
        exercise.replace("apps/smp/main.c", "    uint64_t count = counter;\n",
                         "    uint64_t count = run.locked ? expected : counter;\n")

    scores = course.grade_class(SEVERAL_CPUS, {"alice": correct, "mallory": prints_no_loss})
    full = points(SEVERAL_CPUS)
    assert scores["alice"] == full, course.why("alice", SEVERAL_CPUS)
    assert scores["mallory"] == {**full, "exercise-1-check": 0.0}
    feedback = course.feedback("mallory", SEVERAL_CPUS)
    assert "the counter&#39;s lock: 0 of 2 points" in feedback or "the counter's lock: 0 of 2 points" in feedback
    assert "in the guest&#39;s memory" in feedback or "in the guest's memory" in feedback
