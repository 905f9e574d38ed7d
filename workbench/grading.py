"""Grading untrusted submissions: each one's Jupyter kernel runs in a bubblewrap sandbox.

nbgrader's autograde executes a submission's notebook in a Jupyter kernel that the course's
configuration (course/nbgrader_config.py) names `workbench-grader`. That kernel is this module:

    python -m workbench.grading CONNECTION_FILE

started by nbgrader in the submission's own directory (autograded/STUDENT/ASSIGNMENT/). It runs
the real IPython kernel inside `bwrap` (Debian's bubblewrap) so that the submission

- sees the whole file system read-only, and cannot see the course directory (the other
  submissions, the gradebook, the solutions), nbgrader's exchange, or anyone's home directory;
- can write only its own directory (its workspaces, builds and temporary files go there: TMPDIR,
  XDG_CACHE_HOME, HOME and IPYTHONDIR point into `.grader/` in it) and a private /tmp;
- runs in its own PID namespace without capabilities: it cannot see or signal the grader, and
  when the kernel is killed, everything it started (QEMU too) dies with it;
- has no network when the kernel talks to nbgrader over Unix sockets (the course's
  configuration asks for that: `KernelManager.transport = "ipc"`, in a runtime directory of
  the grading run's own, which is all the sandbox sees of it);
- is killed after WORKBENCH_GRADER_SECONDS (default 600) whatever it does, on top of nbgrader's
  per-cell ExecutePreprocessor.timeout, and may run at most WORKBENCH_MAX_MACHINES machines (4);
- has at most 4 GiB of address space per process (RLIMIT_AS; QEMU reserves about 1.4 GiB) and
  writes no file larger than 256 MiB.

Why bubblewrap rather than a separate user: it needs no account to set up on the grading machine,
works for an unprivileged instructor (user namespaces), hides the other submissions instead of
relying on their file modes, and its PID namespace takes every process of a submission down with
the kernel. A kernel on TCP (nbgrader's default) keeps the network, as it needs localhost; the
guests themselves never have a network device. Memory is limited per process, not in total: a
total needs a cgroup, which the grading machine's own service manager can give (systemd's
MemoryMax= on the grader's unit).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from . import resources
from .errors import WorkbenchError

DEFAULT_SECONDS = 600  # one notebook, top to bottom; each lesson takes well under a minute
GRADER_MACHINES = 4  # machines one submission may run at once (lessons use one at a time)
MAX_FILE_BYTES = 256 << 20  # no file a submission writes may grow past this (RLIMIT_FSIZE)
MAX_ADDRESS_SPACE = 4 << 30  # bytes of virtual memory per process (RLIMIT_AS)
HIDDEN_ALWAYS = ("/home", "/root", "/srv/nbgrader")  # homes, and nbgrader's default exchange
PRIVATE_TMP = "/tmp"  # noqa: S108 - replaced by an empty tmpfs of the sandbox's own


class SandboxError(WorkbenchError):
    """The sandbox cannot be set up (bubblewrap missing, or an unusable directory)."""


def student_of(submission: Path) -> str | None:
    """The student a submission belongs to: `.../autograded/STUDENT/ASSIGNMENT`, else None."""
    if submission.parent.parent.name == "autograded":
        return submission.parent.name
    return None


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


def sandbox_argv(connection_file: Path, submission: Path, *, course: Path | None, seconds: int,
                 python: str = sys.executable, hidden: Sequence[str] = HIDDEN_ALWAYS) -> list[str]:
    """The command line that runs an IPython kernel for `submission` inside the sandbox."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxError("bubblewrap (bwrap) is not installed: apt-get install bubblewrap")
    sockets = _unix_socket_directory(connection_file, submission)
    private = submission / ".grader"
    argv = ["timeout", "--signal=KILL", str(seconds), bwrap,
            "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", PRIVATE_TMP]
    hide = [path for path in (*hidden, str(course) if course else None) if path and Path(path).is_dir()]
    for path in hide:
        argv += ["--tmpfs", path]
    # What the kernel needs from inside a hidden directory, read-only: Python, its packages, the
    # workbench, and the connection file nbgrader wrote.
    # A checkout's editable install keeps the workbench and its unikernel source outside the venv,
    # often in a home directory.
    workbench_files = [str(Path(__file__).resolve().parent), str(resources.kernel_source()), str(resources.widgets())]
    needed = [sys.prefix, sys.base_prefix, str(Path(python).resolve().parent.parent), *workbench_files,
              *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep)), str(connection_file)]
    covered = [Path(path) for path in (*hide, PRIVATE_TMP)]
    for path in needed:
        if any(Path(path) == h or h in Path(path).parents for h in covered) and Path(path).exists():
            argv += ["--ro-bind", path, path]
    if sockets is not None:  # the kernel's sockets are files: their directory, and no network
        argv += ["--bind", str(sockets), str(sockets), "--unshare-net"]
    argv += ["--bind", str(submission), str(submission), "--chdir", str(submission),
             "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
             "--die-with-parent", "--new-session", "--cap-drop", "ALL",
             "--unsetenv", "WORKBENCH_WORKSPACES",  # workspaces beside the notebook, in the submission
             # ipykernel would take init (its parent in the PID namespace) for a dead Jupyter and
             # quit; --die-with-parent ties the kernel's life to nbgrader's instead.
             "--unsetenv", "JPY_PARENT_PID",
             "--setenv", "WORKBENCH_MAX_MACHINES", os.environ.get("WORKBENCH_MAX_MACHINES", str(GRADER_MACHINES))]
    for name, directory in (("TMPDIR", "tmp"), ("XDG_CACHE_HOME", "cache"), ("HOME", "home"),
                            ("IPYTHONDIR", "ipython")):
        argv += ["--setenv", name, str(private / directory)]
    student = student_of(submission)
    if student is not None:
        argv += ["--setenv", "WORKBENCH_STUDENT", student]
    return [*argv, python, "-m", "ipykernel_launcher", "-f", str(connection_file)]


def main(argv: Sequence[str] | None = None) -> int:
    """Start the sandboxed kernel; nbgrader runs this in the submission's directory."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if len(arguments) != 1:
        print("usage: python -m workbench.grading CONNECTION_FILE", file=sys.stderr)
        return 2
    submission = Path.cwd().resolve()
    course = os.environ.get("WORKBENCH_COURSE")
    seconds = int(os.environ.get("WORKBENCH_GRADER_SECONDS", DEFAULT_SECONDS))
    try:
        command = sandbox_argv(Path(arguments[0]).resolve(), submission,
                               course=Path(course).resolve() if course else None, seconds=seconds)
    except SandboxError as error:
        print(f"workbench.grading: {error}", file=sys.stderr)
        return 2
    for directory in ("tmp", "cache", "home", "ipython"):
        (submission / ".grader" / directory).mkdir(parents=True, exist_ok=True)
    resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_FILE_BYTES, MAX_FILE_BYTES))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_AS, (MAX_ADDRESS_SPACE, MAX_ADDRESS_SPACE))
    os.execvp(command[0], command)  # noqa: S606 - our own argument list, no shell


if __name__ == "__main__":
    sys.exit(main())
