"""A class on a real JupyterHub: deploy/jupyterhub_config.py (with the overrides this machine needs,
see tests/support/hub_classroom.py) serves three students at once; each runs lesson 01 top to bottom in
their own server through a real Jupyter kernel and walks away with a guest still running; the
idle culler stops their servers, and nothing the hub started is left: no server, no kernel, no
QEMU, no memfd, no temporary file."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.hub_classroom import ClassroomHub, Student, run_async

pytestmark = pytest.mark.qemu

STUDENTS = ("ada", "grace", "linus")
LESSON = "01-hello-unikernel.ipynb"
IDLE_TIMEOUT = 10  # seconds; the deploy configuration says an hour
CULL_DEADLINE = 60.0
# A kernel notices its server has gone within a second or two (ipykernel's parent poller), and
# its guests die with it (PR_SET_PDEATHSIG); so does the proxy with the hub.
WIND_DOWN = 20.0
# A student leaves with a guest booted: the culler's stop must end it.
WALK_AWAY = ['left_running = Machine(ws.build(), name="left-running").start()\n'
             'left_running.wait_for("> ")']


def memfds(pid: int) -> list[str]:
    try:
        return [link for link in (str(fd.readlink()) for fd in Path(f"/proc/{pid}/fd").iterdir())
                if link.startswith("/memfd:")]
    except OSError:
        return []  # the process is gone


def until_empty(read: Callable[[], dict[int, str]], seconds: float) -> dict[int, str]:
    """`read()` again until it finds nothing or `seconds` have passed; what it found last."""
    found = read()
    deadline = time.monotonic() + seconds
    while found and time.monotonic() < deadline:
        time.sleep(0.2)
        found = read()
    return found


def students_processes(hub: ClassroomHub, hub_pid: int) -> dict[int, str]:
    return {pid: command for pid, command in hub.marked_processes().items()
            if pid != hub_pid and "configurable-http-proxy" not in command and "jupyterhub_idle_culler" not in command}


async def run_class(hub: ClassroomHub) -> list[Student]:
    students = [hub.student(name) for name in STUDENTS]
    await asyncio.gather(*(student.spawn() for student in students))
    await asyncio.gather(*(student.run_notebook(LESSON, extra_cells=WALK_AWAY) for student in students))
    return students


async def wait_until_culled(students: list[Student]) -> list[str]:
    deadline = time.monotonic() + CULL_DEADLINE
    running = [student.name for student in students]
    while running and time.monotonic() < deadline:
        await asyncio.sleep(1)
        running = [student.name for student in students if await student.server_running()]
    return running


@pytest.mark.slow(36)
def test_a_class_runs_lesson_01_and_the_culler_leaves_nothing() -> None:
    with ClassroomHub(idle_timeout=IDLE_TIMEOUT) as hub:
        hub_pid = hub.process.pid if hub.process else 0
        students = run_async(run_class(hub))

        # Each student's server ran the lesson in their own lessons directory, and each has
        # the guest they walked away from still running, its RAM in a memfd.
        for student in students:
            assert (student.home / "lessons" / "workspaces" / "01-hello-unikernel" / "app" / "main.c").is_file()
            sockets = list((hub.runtime / student.name).glob("kernel-*-ipc-*"))
            assert sockets, f"{student.name}'s kernel should talk to its server over Unix sockets"
        processes = hub.marked_processes()
        guests = {pid: command for pid, command in processes.items() if "qemu-system" in command}
        assert len(guests) == len(STUDENTS), f"expected one running guest per student, found:\n{processes}"
        assert all(any("left-running" in fd for fd in memfds(pid)) for pid in guests), \
            "each guest's RAM should be a memfd shared with QEMU"

        still_running = run_async(wait_until_culled(students))
        assert not still_running, f"the idle culler did not stop {still_running} within {CULL_DEADLINE:g} s"

        # What remains of the hub is the hub, its proxy and the culler; nothing of the students.
        left = until_empty(lambda: students_processes(hub, hub_pid), WIND_DOWN)
        assert not left, f"left behind after culling: {left}\nhub log:\n{hub.log_tail()}"
        assert not memfds(hub_pid), f"the hub holds memfds: {memfds(hub_pid)}"
        leftovers = sorted(str(path.relative_to(hub.tmp)) for path in hub.tmp.rglob("*"))
        assert not leftovers, f"temporary files left in the students' TMPDIR: {leftovers}"
        for student in students:
            # A server stopped cleanly removes its own and its kernels' connection files and
            # sockets (it keeps jupyter_cookie_secret, on purpose).
            runtime = hub.runtime / student.name
            stale = sorted(path.name for pattern in ("kernel-*", "jpserver-*") for path in runtime.glob(pattern))
            assert not stale, f"{student.name}'s server did not shut down cleanly; it left {stale}"

    # The proxy gets SIGTERM as the hub stops (deploy/jupyterhub_config.py) and exits in its own time.
    left = until_empty(hub.marked_processes, WIND_DOWN)
    assert not left, f"the hub left processes behind when it stopped: {left}\nhub log:\n{hub.last_words}"
