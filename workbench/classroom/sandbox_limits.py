"""Limits on one graded submission that hold whatever its Python code does: rlimits, and a cgroup
where the grading machine lets the grader make one.

- Processes: RLIMIT_NPROC of MAX_TASKS, set inside the sandbox's own user namespace
  (`tasks_argv`), where the kernel counts only the sandbox's tasks. Set outside, it would count
  every task of the grader's user: a browser or another grading started meanwhile would take the
  submission's budget, and a correct submission could fail for it. The kernel does not apply it
  to root; a grader that runs as root gets the cap from a cgroup's pids.max instead.
- Memory: RLIMIT_AS per process, and in total (every process, tmpfs files included) a cgroup's
  memory limit with no swap, where a cgroup can be made (cgroup v2 with a delegated subtree, or
  v1 as root). Where none can, the total is not limited: `cgroup_note()` says so.
- Files: RLIMIT_FSIZE per file; no core dumps.
- CPU: each sandbox is a session of its own, and the kernel's autogroup shares the CPU between
  sessions (`cpu_note()` says whether it is on).
"""

from __future__ import annotations

import contextlib
import os
import resource
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path

MAX_TASKS = 512  # processes and threads: a kernel, make and the compiler, four QEMUs with their threads
MAX_FILE_BYTES = 256 << 20  # no file a submission writes may grow past this (RLIMIT_FSIZE)
MAX_ADDRESS_SPACE = 4 << 30  # bytes of virtual memory per process (RLIMIT_AS; QEMU reserves about 1.4 GiB)
MAX_MEMORY = 6 << 30  # resident bytes of the whole submission, tmpfs included, where a cgroup allows
CGROUP_ROOT = Path("/sys/fs/cgroup")
PREFIX = "workbench-grader-"
AUTOGROUP = Path("/proc/sys/kernel/sched_autogroup_enabled")
REMOVE_SECONDS = 5.0


# Runs as the sandbox's first command, inside its user namespace: the limit (never above the hard
# limit the grader has, which it may not raise), then the command.
_LIMIT_TASKS = """
import os, resource, sys
_, hard = resource.getrlimit(resource.RLIMIT_NPROC)
limit = int(sys.argv[1]) if hard == resource.RLIM_INFINITY else min(int(sys.argv[1]), hard)
resource.setrlimit(resource.RLIMIT_NPROC, (limit, limit))
os.execv(sys.argv[2], sys.argv[2:])
"""


def tasks_argv(python: str) -> list[str]:
    """The start of the command that runs in the sandbox: it caps the tasks there at MAX_TASKS,
    then executes the rest of the command line (an absolute path first)."""
    return [python, "-I", "-S", "-c", _LIMIT_TASKS, str(MAX_TASKS)]


def set_rlimits() -> None:
    """The per-process limits, inherited by everything the submission starts (the task cap is
    set inside the sandbox: tasks_argv)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_FILE_BYTES, MAX_FILE_BYTES))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_AS, (MAX_ADDRESS_SPACE, MAX_ADDRESS_SPACE))


def _writable(directory: Path) -> bool:
    return directory.is_dir() and os.access(directory, os.W_OK)


def _own_v2_parent() -> Path | None:
    """The cgroup v2 directory this process is in, if it may make children there (delegated)."""
    try:
        line = next(line for line in Path("/proc/self/cgroup").read_text().splitlines() if line.startswith("0::"))
    except (OSError, StopIteration):
        return None
    here = CGROUP_ROOT / line[3:].lstrip("/")
    controllers = (here / "cgroup.subtree_control")
    if not (CGROUP_ROOT / "cgroup.controllers").is_file() or not _writable(here):
        return None
    with contextlib.suppress(OSError):
        enabled = controllers.read_text().split()
        if not {"pids", "memory"} <= set(enabled):
            controllers.write_text("+pids +memory")
        return here
    return None


def _v1_parents() -> dict[str, Path] | None:
    """This process's own cgroups in the v1 hierarchies of pids and memory, where it may make
    children (as root): a child stays inside any limit the machine already puts on the grader."""
    parents: dict[str, Path] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for name in set(controllers.split(",")) & {"pids", "memory"}:
                parents[name] = CGROUP_ROOT / name / path.lstrip("/")
    return parents if len(parents) == 2 and all(_writable(path) for path in parents.values()) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale() -> None:
    """Empty cgroups of graders that were killed before they could remove their own. A group
    is named after its grader's pid: a live grader's group may be empty for a moment, between
    its making and its sandbox joining it, and is left alone."""
    parents = [*(_v1_parents() or {}).values(), _own_v2_parent() or CGROUP_ROOT / "none"]
    for parent in parents:
        for stale in parent.glob(PREFIX + "*"):
            owner = stale.name.removeprefix(PREFIX).split("-")[0]
            if owner.isdigit() and not _alive(int(owner)):
                with contextlib.suppress(OSError):
                    stale.rmdir()


def _write(path: Path, value: str) -> None:
    with contextlib.suppress(OSError):  # a knob this kernel lacks (swap accounting off, say)
        path.write_text(value)


def _make(parent: Path, name: str, knobs: dict[str, str]) -> Path:
    group = parent / name
    group.mkdir()
    for knob, value in knobs.items():
        _write(group / knob, value)
    return group


def _empty_and_remove(group: Path) -> None:
    """Kill what is left in `group` (the sandbox's init kills its namespace as it exits, but not
    at once), then remove it; a group still busy after a few seconds is left to remove_stale()."""
    deadline = time.monotonic() + REMOVE_SECONDS
    while True:
        with contextlib.suppress(OSError, ValueError):
            for pid in (group / "cgroup.procs").read_text().split():
                os.kill(int(pid), signal.SIGKILL)
        try:
            group.rmdir()
            return
        except OSError:
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)


def cgroup_note() -> str:
    """What total limits a grader would get on this machine, in one line."""
    if _own_v2_parent() is not None:
        return f"cgroup v2: at most {MAX_TASKS} tasks and {MAX_MEMORY >> 30} GiB of memory, no swap, per submission"
    if _v1_parents() is not None:
        return f"cgroup v1: at most {MAX_TASKS} tasks and {MAX_MEMORY >> 30} GiB of memory per submission"
    return ("no cgroup can be made: memory is limited per process only"
            + ("" if os.geteuid() != 0 else ", and root has no process cap (RLIMIT_NPROC does not apply to root)"))


def cpu_note() -> str:
    """How submissions graded side by side share the CPU here, in one line. Each sandbox is a
    session of its own; the kernel's autogroup shares the CPU between sessions, so one that
    spins many processes does not starve its neighbour."""
    try:
        enabled = AUTOGROUP.read_text().strip() == "1"
    except OSError:
        enabled = False
    if enabled:
        return "the CPU is shared per submission (each its own session; the kernel's autogroup is on)"
    return ("the CPU is shared per process, not per submission (the kernel's autogroup is off): grade with "
            "--jobs 1, or sysctl kernel.sched_autogroup_enabled=1")


@contextlib.contextmanager
def cgroup() -> Iterator[list[Path]]:
    """A cgroup (or a v1 pair) for one submission: yields the cgroup.procs files a child joins by
    writing its pid; removes the groups afterwards."""
    name = f"{PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
    groups: list[Path] = []
    try:
        with contextlib.suppress(OSError):
            v2 = _own_v2_parent()
            if v2 is not None:
                groups.append(_make(v2, name, {"pids.max": str(MAX_TASKS), "memory.max": str(MAX_MEMORY),
                                               "memory.swap.max": "0"}))
            elif (v1 := _v1_parents()) is not None:
                groups.append(_make(v1["pids"], name, {"pids.max": str(MAX_TASKS)}))
                groups.append(_make(v1["memory"], name, {"memory.limit_in_bytes": str(MAX_MEMORY),
                                                         "memory.memsw.limit_in_bytes": str(MAX_MEMORY)}))
        yield [group / "cgroup.procs" for group in groups]
    finally:
        for group in groups:
            _empty_and_remove(group)


def join(procs_files: list[Path]) -> None:
    """Put the calling process into the groups (run in the child, before it execs)."""
    for procs in procs_files:
        procs.write_text(str(os.getpid()))
