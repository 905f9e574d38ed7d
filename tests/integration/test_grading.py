"""A class graded with real nbgrader, in a temporary course: generate, release, fetch and submit
as students, collect, autograde (each submission's kernel in the bubblewrap sandbox), feedback.

The points must be exactly what each submission deserves, the feedback must carry the checks'
explanations, and hostile submissions must neither hang the grader, nor leave a QEMU behind,
nor change anything outside their own directory.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest

from tests.support.grading_course import (
    REPOSITORY,
    Course,
    fill,
    host_socket_path,
    points,
    secrets_of_the_course,
    solution_cells,
)
from workbench.classroom import variant
from workbench.kernel.prebuilt import PREBUILT_PATH
from workbench.kernel.skeleton import solutions
from workbench.kernel.workspace import Workspace

pytestmark = pytest.mark.qemu


def answer(notebook: nbformat.NotebookNode, grade_id: str, source: str) -> None:
    fill(notebook, {grade_id: textwrap.dedent(source).strip()})


def write_in_files(directory: Path, workspace: str, solution: str, *, without: str = "") -> None:
    """What a student does in the file browser: the solution typed into the exercise workspace
    (minus the line `without`, for a wrong one); the notebook's exercise cell keeps no code."""
    exercise = Workspace.open(workspace, parent=directory / "workspaces")
    exercise.solve(solution)
    if without:
        for block in solutions(solution):
            if without in block.code:
                exercise.replace(block.path, without, "")


def qemu_processes() -> dict[str, str]:
    """Every QEMU on the machine, by pid: its command line."""
    found = {}
    for status in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            command = status.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "qemu-system" in command:
            found[status.parent.name] = command
    return found


def qemus_under(path: Path) -> list[str]:
    """QEMU processes whose command line mentions `path` (ours only, on a shared machine)."""
    return [command for command in qemu_processes().values() if str(path) in command]


@pytest.mark.slow(26)
def test_a_class_is_graded_end_to_end(tmp_path: Path) -> None:
    lesson = "04-page-faults"
    course = Course(tmp_path, [lesson])
    course.release()
    assert variant.choose("04-broken-mapping", ("data", "heap"), student="alice") == "data"
    assert variant.choose("04-broken-mapping", ("data", "heap"), student="carol") == "heap"

    def correct(notebook: nbformat.NotebookNode, directory: Path) -> None:
        fill(notebook, solution_cells(lesson))
        answer(notebook, "exercise-2", "# written in kernel/scenario.c of the exercise workspace")
        write_in_files(directory, "04-page-faults-exercises", "heap-execute")

    def two_wrong(notebook: nbformat.NotebookNode, directory: Path) -> None:
        fill(notebook, solution_cells(lesson))
        answer(notebook, "exercise-1a", """
            # alice's diagnosis, copied: her broken kernel is not mine
            snapshot = machine.snapshot("broken")
            walk = snapshot.walk(fault.cr2)
            refusing_level = "PT"
            region_label = snapshot.address_space(image).region_at(image.symbol("heap_next").vaddr).label
            """)
        answer(notebook, "exercise-2", "# written in kernel/scenario.c, but it never calls the page")
        write_in_files(directory, "04-page-faults-exercises", "heap-execute",
                       without="    ((void (*)(void))(uintptr_t)page)();\n")

    scores = course.grade_class(lesson, {"alice": correct, "carol": two_wrong})
    full = points(lesson)
    assert scores["alice"] == full, course.why("alice", lesson)
    assert scores["carol"] == {**full, "exercise-1a-check": 1.0, "exercise-2-check": 0.0}

    feedback = course.feedback("carol", lesson)
    assert "Exercise 1a: diagnose the fault: 1 of 2 points" in feedback
    assert "region_label is not what the guest says" in feedback and "image .data" in feedback
    assert "Exercise 2: executing data: 0 of 2 points" in feedback
    assert "The guest did not stop: no fault." in feedback
    assert "Exercise 2: executing data: 2 of 2 points" in course.feedback("alice", lesson)
    assert not qemus_under(tmp_path)


HOSTILE_LESSON = "02-single-address-space"


def hostile_submissions(course: Course, outside: Path, listener_port: int,  # noqa: PLR0915 - a catalogue
                        host_socket: Path) -> dict[str, Callable[[nbformat.NotebookNode, Path], None]]:
    """One submission of each kind the grader must survive, by student."""
    lesson = HOSTILE_LESSON
    solved = solution_cells(lesson)

    def correct_c(directory: Path) -> None:
        write_in_files(directory, "02-single-address-space-exercises", "call-vaddr")

    def all_correct(notebook: nbformat.NotebookNode, directory: Path) -> None:
        fill(notebook, solved)
        answer(notebook, "exercise-2", "# written in app/main.c")
        correct_c(directory)

    def all_wrong(notebook: nbformat.NotebookNode, directory: Path) -> None:
        answer(notebook, "exercise-1", 'heap_variable, new_heap_next = "heap_next", heap_base + (1 << 30)  # not mine')
        answer(notebook, "exercise-2", "# written in app/main.c: it never calls the function")
        write_in_files(directory, "02-single-address-space-exercises", "call-vaddr",
                       without="    console_printf(\"ok call-vaddr value=0x%lx\\n\", function(numbers[1]));\n")

    def never_returns(notebook: nbformat.NotebookNode, directory: Path) -> None:
        answer(notebook, "exercise-1", "while True:\n    pass")
        answer(notebook, "exercise-2", "# written in app/main.c")
        correct_c(directory)

    def ignores_interrupts(notebook: nbformat.NotebookNode, directory: Path) -> None:
        answer(notebook, "exercise-1", """
            import signal
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            while True:
                pass
            """)

    def triple_fault(notebook: nbformat.NotebookNode, directory: Path) -> None:
        answer(notebook, "exercise-1", """
            machine.write_virtual(image.symbol("idt").vaddr, bytes(16 * 32))  # no handler for anything
            machine.send_line("write 0x0 1")
            print(machine.wait().state)
            """)
        answer(notebook, "exercise-2", "# written in app/main.c")
        correct_c(directory)

    def twenty_machines(notebook: nbformat.NotebookNode, directory: Path) -> None:
        answer(notebook, "exercise-1", """
            leaked = []  # kept, so that nothing closes them
            for _ in range(20):
                leaked.append(Machine(image).start())
            """)
        answer(notebook, "exercise-2", "# written in app/main.c")
        correct_c(directory)

    def deletes_outside(notebook: nbformat.NotebookNode, directory: Path) -> None:
        attempts = textwrap.dedent(f"""
            import os, shutil, socket

            def processes():
                children = []
                try:
                    for _ in range(2000):
                        child = os.fork()
                        if child == 0:
                            os._exit(0)
                        children.append(child)
                finally:
                    for child in children:
                        os.waitpid(child, 0)

            def big_file():
                try:
                    with open("/tmp/big", "wb") as file:
                        for _ in range(10 << 10):
                            file.write(bytes(1 << 20))
                finally:
                    os.remove("/tmp/big")

            attempts = {{}}
            for name, attempt in [
                    ("instructor file", lambda: os.remove({str(outside)!r})),
                    ("gradebook", lambda: os.remove("../../../gradebook.db")),
                    ("another submission", lambda: shutil.rmtree("../../alice")),
                    ("submitted originals", lambda: shutil.rmtree({str(course.root / "submitted")!r})),
                    ("system file", lambda: open("/etc/hostname", "w").write("mine")),
                    ("QEMU itself", lambda: open(shutil.which("qemu-system-x86_64"), "ab").write(b"x")),
                    ("grader's network", lambda: socket.create_connection(("127.0.0.1", {listener_port}), 2)),
                    ("all the memory", lambda: bytearray(8 << 30)),
                    ("a host socket", lambda: socket.socket(socket.AF_UNIX).connect({str(host_socket)!r})),
                    ("the grader builds", lambda: open({str(PREBUILT_PATH / "build" / "gcc" / "kernel" / "main.c.o")!r},
                                                         "ab").write(b"poisoned")),
                    ("2000 processes", processes), ("10 GiB in /tmp", big_file)]:
                try:
                    attempt()
                    attempts[name] = "done"
                except (OSError, MemoryError) as error:
                    attempts[name] = type(error).__name__
            print(attempts)
            """)
        fill(notebook, {"exercise-1": attempts + solved["exercise-1"]})

    def solves_with_the_instructors_code(notebook: nbformat.NotebookNode, directory: Path) -> None:
        answer(notebook, "exercise-2", 'exercise.solve("call-vaddr")  # the grader has no solution to give')

    def poses_as_alice(notebook: nbformat.NotebookNode, directory: Path) -> None:
        alices = variant.number("02-heap-move", 2, 9, student="alice")  # copied from alice's notebook
        answer(notebook, "exercise-1", f"""
            import os
            os.environ["WORKBENCH_STUDENT"] = "alice"  # so that the check would compute alice's variant
            heap_variable, new_heap_next = "heap_next", heap_base + ({alices} << 30)
            """)
        answer(notebook, "exercise-2", "# written in app/main.c")
        correct_c(directory)

    def raises_its_machine_cap(notebook: nbformat.NotebookNode, directory: Path) -> None:
        answer(notebook, "exercise-1", """
            import os
            os.environ["WORKBENCH_MAX_MACHINES"] = "99"
            leaked = [Machine(image).start() for _ in range(20)]
            """)
        answer(notebook, "exercise-2", "# written in app/main.c")
        correct_c(directory)

    def forges_its_grade(notebook: nbformat.NotebookNode, directory: Path) -> None:
        answer(notebook, "exercise-1", """
            import workbench.classroom.checks
            heap_variable, new_heap_next = "heap_next", 0  # a wrong answer, to be graded as right
            workbench.classroom.checks.Grade.points = property(lambda self: self.max_points)  # every part passed
            workbench.classroom.checks.expect_reply = lambda *arguments, **keywords: None
            """)

    def reads_the_solutions(notebook: nbformat.NotebookNode, directory: Path) -> None:
        answer(notebook, "exercise-1", """
            import os
            from workbench import resources
            for root in (resources.lessons(), resources.kernel_source(), os.path.dirname(resources.lessons()),
                         "/home", "/root", "/srv", "/opt"):
                for top, _, files in os.walk(root):
                    for name in files:
                        if name.endswith((".ipynb", ".c", ".h", ".py", ".patch")):
                            try:
                                print(open(os.path.join(top, name), errors="replace").read()[:200_000])
                            except OSError:
                                pass
            """)

    def edits_the_check(notebook: nbformat.NotebookNode, directory: Path) -> None:
        answer(notebook, "exercise-1", "pass  # no answer")
        answer(notebook, "exercise-1-check", "grade = 1.0\ngrade")  # a check that always passes
        answer(notebook, "exercise-2", "# written in app/main.c")
        correct_c(directory)

    def empty(notebook: nbformat.NotebookNode, directory: Path) -> None:
        pass

    return {"alice": all_correct, "bob": all_wrong, "carol": empty, "dave": never_returns,
            "erin": ignores_interrupts, "frank": triple_fault, "gina": twenty_machines,
            "hank": deletes_outside, "ivan": edits_the_check, "jack": solves_with_the_instructors_code,
            "kate": poses_as_alice, "liam": raises_its_machine_cap, "mona": forges_its_grade,
            "nina": reads_the_solutions}


@pytest.mark.slow(125)
def test_hostile_submissions_get_what_they_deserve_and_change_nothing_outside(tmp_path: Path) -> None:
    lesson = HOSTILE_LESSON
    course = Course(tmp_path, [lesson])
    course.release()
    outside = tmp_path / "outside.txt"
    outside.write_text("an instructor's file\n")
    listener = socket.create_server(("127.0.0.1", 0))  # a service on the grading machine
    listener.setblocking(False)
    host_socket = host_socket_path(tmp_path.name)  # another, on a Unix socket
    unix = unix_listener(host_socket)
    course.submit(lesson, hostile_submissions(course, outside, listener.getsockname()[1], host_socket))
    course.nbgrader("collect", lesson)
    before = {path: path.read_bytes() for path in (course.root / "submitted").rglob("*") if path.is_file()}
    assert before
    hostname = Path("/etc/hostname").read_bytes()

    os.environ["WORKBENCH_GRADER_SECONDS"] = "45"  # erin's kernel is killed after this (alice needs a few)
    try:
        graded = course.nbgrader("autograde", lesson, "--force", "--Execute.timeout=20", check=False)
        course.nbgrader("generate_feedback", lesson, "--force", check=False)
    finally:
        del os.environ["WORKBENCH_GRADER_SECONDS"]
    log = graded.stderr

    full = points(lesson)
    nothing = dict.fromkeys(full, 0.0)
    scores = course.scores(lesson)
    assert scores["alice"] == full, course.why("alice", lesson)
    assert scores["bob"] == nothing
    assert scores["carol"] == nothing
    assert scores["dave"] == {**nothing, "exercise-2-check": full["exercise-2-check"]}  # interrupted, then graded on
    assert scores.get("erin", nothing) == nothing  # killed with its kernel: no points
    assert scores["frank"] == {**nothing, "exercise-2-check": full["exercise-2-check"]}
    # The limit stopped gina's loop at the fourth machine; the check's machine replaces the lesson's.
    assert scores["gina"] == {**nothing, "exercise-2-check": full["exercise-2-check"]}
    assert scores["hank"] == {**nothing, "exercise-1-check": full["exercise-1-check"]}
    assert scores["ivan"] == {**nothing, "exercise-2-check": full["exercise-2-check"]}
    assert re.search(r"Attribute 'checksum' for cell exercise-1-check has changed", log)  # nbgrader's checksums

    # Nothing outside the submissions' own directories changed, and no QEMU is left.
    assert outside.read_text() == "an instructor's file\n"
    assert Path("/etc/hostname").read_bytes() == hostname
    assert {path: path.read_bytes() for path in (course.root / "submitted").rglob("*") if path.is_file()} == before
    assert (course.root / "gradebook.db").is_file() and (course.root / "autograded" / "alice").is_dir()
    hank_was_stopped(course)
    for server in (listener, unix):
        with pytest.raises(BlockingIOError):  # no connection reached it
            server.accept()
        server.close()
    host_socket.unlink()
    assert "as many as it may (the limit is 4)" in course.feedback("gina", lesson)
    assert not qemus_under(tmp_path)

    sandbox_held(course, scores, full)
    verify_grades_flags_only(course, {"mona"})


def unix_listener(path: Path) -> socket.socket:
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen()
    listener.setblocking(False)
    return listener


def hank_was_stopped(course: Course) -> None:
    lesson = HOSTILE_LESSON
    hank = nbformat.read(course.root / "autograded" / "hank" / lesson / f"{lesson}.ipynb", as_version=4)
    printed = "".join(output.get("text", "") for cell in hank.cells for output in cell.get("outputs", []))
    assert "'instructor file': 'FileNotFoundError'" in printed and "'done'" not in printed
    assert "'all the memory': 'MemoryError'" in printed
    assert "'a host socket': 'FileNotFoundError'" in printed and "'2000 processes': 'BlockingIOError'" in printed
    assert "'10 GiB in /tmp': 'OSError'" in printed
    assert "'the grader builds': 'OSError'" in printed  # there to read (not FileNotFoundError), read-only


def sandbox_held(course: Course, scores: dict[str, dict[str, float]], full: dict[str, float]) -> None:
    """What the sandbox stops: the instructor's solutions, another student's variant, a higher cap."""
    lesson, nothing = HOSTILE_LESSON, dict.fromkeys(full, 0.0)
    assert scores["jack"] == nothing and "not available while a submission is graded" in course.feedback("jack", lesson)
    assert variant.number("02-heap-move", 2, 9, student="kate") != variant.number("02-heap-move", 2, 9, student="alice")
    assert scores["kate"] == {**full, "exercise-1-check": 0.0}  # alice's heap move is not kate's
    assert scores["liam"] == scores["gina"] and "(the limit is 4)" in course.feedback("liam", lesson)
    assert not [secret for secret in secrets_of_the_course() if secret in course.feedback("nina", lesson)]
    assert scores["mona"] == full  # nbgrader's points, computed in mona's own kernel: forged


# Runs a command as a child subreaper (prctl PR_SET_CHILD_SUBREAPER), so that whatever the command
# leaves running when it exits is reparented here, not to init: then writes those processes'
# command lines, as JSON, to the file argv[1], kills them and exits with the command's status.
# Exact on a machine where other tests start and stop QEMUs of their own at the same time.
SUBREAPER = """
import ctypes, json, os, signal, subprocess, sys
from pathlib import Path
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)
status = subprocess.call(sys.argv[2:])
parents = {}
for stat in Path("/proc").glob("[0-9]*/stat"):
    try:
        parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        pass
def descends(pid):
    while pid > 1:
        pid = parents.get(pid, 0)
        if pid == os.getpid():
            return True
    return False
left = {}
for pid in filter(descends, parents):
    try:
        left[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\\0", b" ").decode(errors="replace")
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
Path(sys.argv[1]).write_text(json.dumps(left))
for _ in left:
    try:
        os.wait()
    except ChildProcessError:
        break
sys.exit(status)
"""


def run_reaping(command: list[str], report: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str],
                                                                              dict[str, str]]:
    """Run `command`; its output, and every process it left running (killed since), by pid."""
    done = subprocess.run([sys.executable, "-c", SUBREAPER, str(report), *command], capture_output=True, text=True,
                          timeout=1800, check=False, env=env)
    return done, json.loads(report.read_text())


def verify_grades_flags_only(course: Course, forgers: set[str]) -> None:
    """What the sandbox cannot stop, points forged in the student's kernel, verify-grades finds."""
    # Its temporary directories, and nothing else's; short, for the kernels' IPC socket paths.
    scratch = Path(tempfile.mkdtemp(prefix="verify-"))
    try:
        verified, left = run_reaping(
            [sys.executable, "-m", "workbench.cli", "verify-grades", str(course.root), HOSTILE_LESSON, "--jobs", "2"],
            course.root.parent / "verify-grades-left.json", {**course.environment(), "TMPDIR": str(scratch)})
        leftovers = list(scratch.iterdir())
    finally:
        shutil.rmtree(scratch)
    flagged = {line.split()[0] for line in verified.stdout.splitlines()[:-1]}
    assert verified.returncode == 1 and flagged == forgers, verified.stdout + verified.stderr[-3000:]
    autograded = list((course.root / "autograded").glob(f"*/{HOSTILE_LESSON}"))  # a killed kernel may leave none
    assert f"{len(autograded)} submissions checked" in verified.stdout.splitlines()[-1]
    qemus = {pid: command for pid, command in left.items() if "qemu-system" in command}
    assert not qemus and not leftovers, (qemus, leftovers)


@pytest.mark.slow(61)
def test_every_lesson_passes_nbgrader_validate(tmp_path: Path) -> None:
    """nbgrader's own check of a source notebook: it runs, and every test cell passes."""
    lessons = sorted(str(path) for path in (REPOSITORY / "lessons").glob("[0-9][0-9]-*.ipynb"))
    environment = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
                   # validate runs the lessons: their workspaces must not be the ones nbval's run uses later
                   "WORKBENCH_WORKSPACES": str(tmp_path / "workspaces")}
    done = subprocess.run([sys.executable, "-m", "nbgrader", "validate", *lessons,
                           # the course's budget per cell (course/nbgrader_config.py): nbgrader's default
                           # of 30 s is close to lesson 07's slowest cells under QEMU 10 (14 s alone)
                           "--Execute.timeout=120"], cwd=tmp_path, env=environment,
                          capture_output=True, text=True, timeout=1800, check=False)
    assert done.stdout.count("Success! Your notebook passes all the tests.") == len(lessons), \
        done.stdout[-3000:] + done.stderr[-6000:]
