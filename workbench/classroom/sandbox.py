"""Grading untrusted submissions: each one's Jupyter kernel runs in a bubblewrap sandbox.

nbgrader's autograde executes a submission's notebook in a Jupyter kernel that the course's
configuration (course/nbgrader_config.py) names `workbench-grader`. That kernel is this module:

    python -m workbench.classroom.sandbox CONNECTION_FILE

started by nbgrader in the submission's own directory (autograded/STUDENT/ASSIGNMENT/). It runs
the real IPython kernel inside `bwrap` (Debian's bubblewrap), in its own user, PID, IPC and UTS
namespaces without capabilities. `workbench verify-grades` starts the same sandbox with
`--checks` instead of a connection file: the instructor's cells then run in a plain Python
process (runner.py), with no network at all. Either way the submission

- sees no solution: the unikernel source is the students' skeleton, the lessons are the course's
  released (student) versions, and the course directory, a source checkout (its .git, tests and
  lessons), the instructor's cache, every home directory, /run and nbgrader's exchange are empty;
  these hiding mounts come after everything bound for Python, so no bind can show them again;
- learns who it is, and how many machines it may run, from a read-only file (grader_facts.py),
  not from anything it can change;
- can write only its own directory (workspaces, builds and temporary files: TMPDIR,
  XDG_CACHE_HOME, HOME and IPYTHONDIR point into `.grader/` in it) and a private /tmp and
  /dev/shm of TMPFS_BYTES each;
- reads the grader's builds of the skeleton (builds.py, made before any submission runs, from
  the skeleton alone) read-only at PREBUILT_PATH: a workspace's first build copies the objects
  its own bytes would make (workbench/kernel/prebuilt.py), and no submission can change them;
- has no network when the kernel talks to nbgrader over Unix sockets (the course's
  configuration asks for that), and reaches no host socket under /run;
- is held by the limits of sandbox_limits.py (tasks, memory, file sizes) and killed after
  WORKBENCH_GRADER_SECONDS (default 600) whatever it does; everything it started dies with the
  kernel, in its PID namespace.

The points themselves are computed in the submission's own kernel: that is nbgrader's model, and
code in an earlier cell can change them. `workbench verify-grades` (verify.py) checks them again
in a fresh sandbox without the student's code.
"""

from __future__ import annotations

import compileall
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from workbench import grader_facts, resources
from workbench.classroom import builds, sandbox_limits
from workbench.errors import WorkbenchError
from workbench.kernel import skeleton
from workbench.kernel.prebuilt import PREBUILT_PATH

DEFAULT_SECONDS = 600  # one notebook, top to bottom; each lesson takes well under a minute
GRADER_MACHINES = 4  # machines one submission may run at once (lessons use one at a time)
TMPFS_BYTES = 512 << 20  # the private /tmp and /dev/shm: lessons write their files into .grader/
# Homes, host sockets, nbgrader's default exchange, and the host's temporary files.
HIDDEN_ALWAYS = ("/home", "/root", "/srv/nbgrader", "/run", "/var/tmp")  # noqa: S108 - hidden, not used
PRIVATE = ("/tmp", "/dev/shm")  # noqa: S108 - each replaced by a bounded tmpfs of the sandbox's own
FACTS_INSIDE = str(grader_facts.FACTS_PATH)
PROBE_SECONDS = 10
ORPHAN_POLL_SECONDS = 1.0
_PR_SET_PDEATHSIG = 1


class SandboxError(WorkbenchError):
    """The sandbox cannot be set up (bubblewrap missing or refused, or an unusable directory)."""


def student_of(submission: Path) -> str | None:
    """The student a submission belongs to: `.../autograded/STUDENT/ASSIGNMENT`, else None."""
    if submission.parent.parent.name == "autograded":
        return submission.parent.name
    return None


def _bwrap() -> str:
    found = shutil.which("bwrap")
    if found is None:
        raise SandboxError("bubblewrap (bwrap) is not installed: sudo apt-get install bubblewrap")
    return found


def check_sandbox() -> None:
    """Make a sandbox like the grader's once, doing nothing in it; raise SandboxError with one line
    that says why and what to do when this machine refuses."""
    probe = [_bwrap(), "--unshare-user", "--unshare-pid", "--cap-drop", "ALL", "--ro-bind", "/", "/",
             "--dev", "/dev", "--proc", "/proc", "true"]
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=PROBE_SECONDS, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SandboxError(f"bubblewrap could not be run to make the grading sandbox: {error}") from error
    if done.returncode != 0:
        said = (done.stderr.strip().splitlines() or ["no reason given"])[-1].removeprefix("bwrap: ")
        raise SandboxError(
            f"this machine refuses the grading sandbox's user namespace ({said}): allow unprivileged user "
            "namespaces (sysctl kernel.unprivileged_userns_clone=1 and user.max_user_namespaces > 0; on Ubuntu "
            "kernel.apparmor_restrict_unprivileged_userns=0 or an AppArmor profile for bwrap), or grade as a "
            "user or service that may create them; inside a container, run it with user namespaces allowed")


def _unix_socket_directory(connection_file: Path, submission: Path) -> Path | None:
    """Where the kernel makes its Unix sockets (beside the path its connection file gives as
    `ip`), or None for a kernel on TCP."""
    try:
        connection = json.loads(connection_file.read_text())
        transport, ip = str(connection.get("transport", "tcp")), str(connection.get("ip", ""))
    except (OSError, ValueError, AttributeError) as error:
        raise SandboxError(f"the kernel's connection file {connection_file} cannot be read: {error}") from error
    if transport != "ipc":
        return None
    return (submission / ip).parent  # an absolute ip replaces the submission's directory


def _inside(path: Path, directories: Sequence[Path]) -> bool:
    return any(path == directory or directory in path.parents for directory in directories)


@dataclass(frozen=True)
class Solutions:
    """Where the instructor's material lies in this installation, and what replaces it."""

    checkout: Path | None  # a source checkout's top (its .git, tests, course), or None for a wheel
    kernel_source: Path
    skeleton: Path  # the students' kernel source, bound over kernel_source
    lessons: Path
    released: dict[str, Path]  # lesson name -> the course's released (student) notebook
    cache: Path  # the instructor's builds of the full source

    @classmethod
    def find(cls, course: Path | None) -> Solutions:
        package = resources.PACKAGE
        source = resources.kernel_source().resolve()
        released = {path.name: path for path in sorted((course / "release").glob("*/*.ipynb"))} if course else {}
        return cls(checkout=None if _inside(source, [package]) else package.parent, kernel_source=source,
                   skeleton=skeleton.skeleton_source(source), lessons=resources.lessons().resolve(),
                   released=released, cache=resources.cache_dir().resolve())


def prepare_grading(course: Path | None) -> Path | None:
    """What every sandbox reads and none can write, made now if missing; returns the grader's
    builds of the students' skeleton (builds.py). Also the workbench's own bytecode: a checkout
    run without it (or with PYTHONDONTWRITEBYTECODE) would compile every module again in every
    submission's kernel. Autograde and verify-grades ask before their first submission, and each
    launcher again (it finds both made)."""
    compileall.compile_dir(resources.PACKAGE, quiet=2)  # a package this user cannot write stays as it is
    return builds.prebuilt_tree(Solutions.find(course).skeleton)


def _hidden(course: Path | None, solutions: Solutions, hidden: Sequence[str]) -> list[Path]:
    paths = [Path(path) for path in hidden] + [solutions.cache]
    paths += [path for path in (course, solutions.checkout) if path is not None]
    return [path for path in paths if path.is_dir()]


def _needed(python: str, solutions: Solutions) -> list[Path]:
    """What the kernel needs to run, bound read-only again inside hidden directories: Python, its
    packages and the workbench's code and views. A PYTHONPATH entry that holds instructor
    material (a checkout's top) is left out: the workbench inside it is bound on its own."""
    package = resources.PACKAGE
    material = [solutions.kernel_source, solutions.lessons, *([solutions.checkout] if solutions.checkout else [])]
    entries = [Path(entry).resolve() for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry]
    entries = [entry for entry in entries if not any(entry == m or entry in m.parents for m in material)]
    return [Path(sys.prefix), Path(sys.base_prefix), Path(python).resolve().parent.parent, package,
            resources.widgets().resolve(), *entries]


def _solution_mounts(solutions: Solutions, course: Path | None) -> list[str]:
    """Last: the students' edition over the full one, and the course hidden again."""
    mounts = ["--ro-bind", str(solutions.skeleton), str(solutions.kernel_source), "--tmpfs", str(solutions.lessons)]
    for name, notebook in solutions.released.items():
        mounts += ["--ro-bind", str(notebook), str(solutions.lessons / name)]
    if course is not None and course.is_dir():
        mounts += ["--tmpfs", str(course)]
    return mounts


def sandbox_argv(connection_file: Path, submission: Path, *, course: Path | None, seconds: int, facts: int,
                 python: str = sys.executable, hidden: Sequence[str] = HIDDEN_ALWAYS,
                 prebuilt: Path | None = None) -> list[str]:
    """The command line that runs an IPython kernel for `submission` inside the sandbox; `facts`
    is a descriptor of the grader's facts (facts_descriptor), put read-only where grader_facts
    reads them; `prebuilt`, the grader's builds of the skeleton (builds.py), read-only where
    a workspace's first build finds them."""
    sockets = _unix_socket_directory(connection_file, submission)
    argv = _sandbox(submission, course=course, seconds=seconds, facts=facts, python=python, hidden=hidden,
                    readable=[connection_file], sockets=sockets, network=sockets is None, prebuilt=prebuilt)
    return [*argv, python, "-m", "ipykernel_launcher", "-f", str(connection_file)]


def checks_argv(submission: Path, *, course: Path | None, seconds: int, facts: int, python: str = sys.executable,
                hidden: Sequence[str] = HIDDEN_ALWAYS, prebuilt: Path | None = None) -> list[str]:
    """The command line that runs verify-grades' cells (runner.py, cells on its standard input)
    for `submission` in the same sandbox as a kernel's, without any network."""
    argv = _sandbox(submission, course=course, seconds=seconds, facts=facts, python=python, hidden=hidden,
                    readable=[], sockets=None, network=False, prebuilt=prebuilt)
    # -P: the directory it starts in is not on sys.path, so no file there can stand in for a module
    return [*argv, python, "-P", "-m", "workbench.classroom.runner"]


def _sandbox(submission: Path, *, course: Path | None, seconds: int, facts: int, python: str,
             hidden: Sequence[str], readable: Sequence[Path], sockets: Path | None, network: bool,
             prebuilt: Path | None) -> list[str]:
    """bubblewrap's command line, and the task cap inside, up to the command it runs; `readable`
    is bound read-only again where a hiding mount covers it, `sockets` (a kernel's Unix sockets)
    read-write. `network` only for a kernel that talks to nbgrader over TCP."""
    solutions = Solutions.find(course)
    hide = _hidden(course, solutions, hidden)
    argv = ["timeout", "--signal=KILL", str(seconds), _bwrap(),
            "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    for private in PRIVATE:
        argv += ["--size", str(TMPFS_BYTES), "--tmpfs", private]
    for path in hide:
        argv += ["--tmpfs", str(path)]
    covered = [*hide, *map(Path, PRIVATE)]
    for path in (*_needed(python, solutions), *readable):
        if _inside(path, covered) and path.exists():
            argv += ["--ro-bind", str(path), str(path)]
    argv += _solution_mounts(solutions, course)
    argv += ["--ro-bind-data", str(facts), FACTS_INSIDE]
    if prebuilt is not None:
        argv += ["--ro-bind", str(prebuilt), str(PREBUILT_PATH)]
    if sockets is not None:  # the kernel's sockets are files: their directory
        argv += ["--bind", str(sockets), str(sockets)]
    if not network:
        argv += ["--unshare-net"]
    argv += ["--bind", str(submission), str(submission), "--chdir", str(submission)]
    # Workspaces beside the notebook; ipykernel would take init (its parent in the PID namespace)
    # for a dead Jupyter and quit, so --die-with-parent ties its life to nbgrader's instead.
    for name in ("WORKBENCH_WORKSPACES", "JPY_PARENT_PID", "WORKBENCH_STUDENT", "WORKBENCH_MAX_MACHINES",
                 "WORKBENCH_KERNEL_SRC"):
        argv += ["--unsetenv", name]
    scratch = submission / ".grader"
    for name, directory in (("TMPDIR", "tmp"), ("XDG_CACHE_HOME", "cache"), ("HOME", "home"),
                            ("IPYTHONDIR", "ipython")):
        argv += ["--setenv", name, str(scratch / directory)]
    return [*argv, *sandbox_limits.tasks_argv(python)]


def facts_descriptor(student: str, max_machines: int = GRADER_MACHINES) -> int:
    """The grader's facts for one submission in a file of memory only (nothing on disk to remove),
    as an inheritable descriptor that bubblewrap copies into the sandbox."""
    facts = grader_facts.GraderFacts(student, max_machines)
    grader_facts.parse(facts.to_json())  # the same rules as inside: a bad student id stops here
    descriptor = os.memfd_create("workbench-grader-facts", 0)  # no MFD_CLOEXEC: the sandbox reads it
    os.write(descriptor, facts.to_json().encode())
    os.lseek(descriptor, 0, os.SEEK_SET)
    return descriptor


def run_sandboxed(command: list[str], pass_fds: Sequence[int] = ()) -> int:
    """Run `command` (with the descriptors `pass_fds`) in the submission's cgroup, under its
    rlimits; its exit status. The sandbox dies with this process; SIGTERM and SIGINT are passed on."""
    sandbox_limits.remove_stale()
    with sandbox_limits.cgroup() as procs:
        def prepare() -> None:
            ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
            sandbox_limits.join(procs)
            sandbox_limits.set_rlimits()

        try:
            child = subprocess.Popen(command, pass_fds=pass_fds, preexec_fn=prepare)  # noqa: PLW1509 - no threads
        except (OSError, subprocess.SubprocessError) as error:
            raise SandboxError(f"the grading sandbox could not be started: {error}") from error
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, lambda received, _: child.send_signal(received))
        return _wait(child, parent=os.getppid())


def _wait(child: subprocess.Popen[bytes], parent: int) -> int:
    """The child's exit status; ends it early if whoever started this kernel (nbgrader,
    verify-grades) is gone without shutting it down. Polled: a parent-death signal would come
    when the parent's starting thread ends, which for an asyncio kernel manager is too soon."""
    while True:
        try:
            return child.wait(timeout=ORPHAN_POLL_SECONDS)
        except subprocess.TimeoutExpired:
            if os.getppid() != parent:
                child.terminate()


USAGE = "usage: python -m workbench.classroom.sandbox CONNECTION_FILE | --checks"


def main(argv: Sequence[str] | None = None) -> int:
    """Start the sandboxed kernel (nbgrader runs this in the submission's directory), or with
    `--checks` the sandboxed runner of verify-grades' cells (verify.py)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if len(arguments) != 1:
        print(USAGE, file=sys.stderr)
        return 2
    submission = Path.cwd().resolve()
    course = os.environ.get("WORKBENCH_COURSE")
    seconds = int(os.environ.get("WORKBENCH_GRADER_SECONDS", DEFAULT_SECONDS))
    try:
        check_sandbox()
        facts = facts_descriptor(student_of(submission) or grader_facts.DEFAULT_STUDENT)
        where = Path(course).resolve() if course else None
        prebuilt = prepare_grading(where)
        if arguments[0] == "--checks":
            command = checks_argv(submission, facts=facts, course=where, seconds=seconds, prebuilt=prebuilt)
        else:
            command = sandbox_argv(Path(arguments[0]).resolve(), submission, facts=facts, course=where,
                                   seconds=seconds, prebuilt=prebuilt)
        for directory in ("tmp", "cache", "home", "ipython"):
            (submission / ".grader" / directory).mkdir(parents=True, exist_ok=True)
        return run_sandboxed(command, pass_fds=(facts,))
    except WorkbenchError as error:
        print(f"workbench.classroom.sandbox: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
