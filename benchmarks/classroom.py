"""A class on one machine: how many students it holds.

For each class size N (default 5, 10, 20 and 40), a real JupyterHub with deploy/jupyterhub_config.py
(tests/support/hub_classroom.py: here without systemd, so without its limits) serves N simulated
students. At the same moment, each starts their server and runs lesson 01 top to bottom through
a real Jupyter kernel, then boots one more guest and leaves it at its prompt, as a student who
reads on. Printed for each N:

- time until every student's first boot answered (the lesson's first `wait_for("app: ")`),
  and until every student had finished, from the common start; failures, with the first error;
- memory per student, RSS and PSS (PSS shares what processes share, such as Python's libraries
  among the kernels): their Jupyter server, their kernel, and their idle guest's QEMU;
- CPU seconds per student for starting the server and the lesson (server, kernel, compilers and
  guests, the hub and proxy apart), and an idle student's CPU share: kernel, server and one booted
  guest that idles in `hlt` with a 100 Hz timer, measured over --idle-seconds;
- the capacity that follows: students per core and per GiB with their idle guests counted.

This is heavy (N=40 is 40 JupyterLab servers, 40 kernels and 40 guests on this machine): check
the load first, and say whether the machine was shared.

    .venv/bin/python -m benchmarks.classroom [--students 5 10 20 40] [--idle-seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import hub_classroom
from tests.support.hub_classroom import ClassroomHub, Student

LESSON = "01-hello-unikernel.ipynb"
FIRST_BOOT = 'machine.wait_for("app: ")'
WALK_AWAY = ['left_running = Machine(ws.build(), name="left-running").start()\n'
             'left_running.wait_for("> ")']
TICK = os.sysconf("SC_CLK_TCK")
MIB = 1 << 20


@dataclass
class Outcome:
    name: str
    first_boot: float | None = None  # seconds from the common start
    finished: float | None = None
    error: str = ""


@dataclass
class Usage:
    rss: dict[str, int] = field(default_factory=lambda: {"server": 0, "kernel": 0, "qemu": 0})
    pss: dict[str, int] = field(default_factory=lambda: {"server": 0, "kernel": 0, "qemu": 0})
    cpu: float = 0.0  # seconds, with reaped children (compilers, guests that were closed)
    idle_ticks: int = 0  # own CPU ticks of the live processes, for the idle measurement
    guest_ticks: int = 0


def _role(command: str) -> str:
    if "qemu-system" in command:
        return "qemu"
    return "kernel" if "ipykernel" in command else "server"


def _stat(pid: int) -> tuple[int, int]:
    """(own ticks, ticks of reaped children) of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = int(fields[11]) + int(fields[12])  # utime, stime
    return own, int(fields[13]) + int(fields[14])  # cutime, cstime


def _memory(pid: int) -> tuple[int, int]:
    values = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":", 1)
        values[key] = int(value.split()[0]) * 1024
    return values["Rss"], values["Pss"]


def _environ(pid: int) -> dict[str, str]:
    items = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace").split("\0")
    return dict(item.split("=", 1) for item in items if "=" in item)


def usage_by_student(hub: ClassroomHub) -> dict[str, Usage]:
    usage: dict[str, Usage] = {}
    for pid, command in hub.marked_processes().items():
        try:
            user = _environ(pid).get("JUPYTERHUB_USER")
            if user is None:
                continue  # the hub, its proxy or the culler
            own, children = _stat(pid)
            rss, pss = _memory(pid)
        except (OSError, ValueError):
            continue
        student = usage.setdefault(user, Usage())
        role = _role(command)
        student.rss[role] += rss
        student.pss[role] += pss
        student.cpu += (own + children) / TICK
        student.idle_ticks += own
        if role == "qemu":
            student.guest_ticks += own
    return usage


async def one_student(student: Student, start: float, first_boot_cell: int) -> Outcome:
    outcome = Outcome(student.name)

    def on_cell(result: hub_classroom.CellResult) -> None:
        if result.index == first_boot_cell:
            outcome.first_boot = result.finished - start

    try:
        await student.spawn()
        await student.run_notebook(LESSON, extra_cells=WALK_AWAY, on_cell=on_cell)
        outcome.finished = time.monotonic() - start
    except Exception as error:  # a failed student is a result to print
        outcome.error = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    return outcome


def first_boot_index() -> int:
    import nbformat  # noqa: PLC0415 - only here

    from workbench import resources  # noqa: PLC0415
    notebook = nbformat.read(resources.lessons() / LESSON, as_version=4)
    code = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    return next(index for index, source in enumerate(code) if FIRST_BOOT in source)


async def run_class(hub: ClassroomHub, size: int) -> tuple[list[Outcome], float]:
    students = [hub.student(f"student{number:02}") for number in range(1, size + 1)]
    cell = first_boot_index()
    start = time.monotonic()
    outcomes = await asyncio.gather(*(one_student(student, start, cell) for student in students))
    return list(outcomes), time.monotonic() - start


def hub_cpu(hub: ClassroomHub) -> float:
    total = 0.0
    for pid in hub.marked_processes():
        try:
            if "JUPYTERHUB_USER" not in _environ(pid):
                own, children = _stat(pid)
                total += (own + children) / TICK
        except OSError:
            continue
    return total


def measure(size: int, idle_seconds: float) -> None:
    print(f"\n== {size} students, load before: {os.getloadavg()[0]:.2f} ==", flush=True)
    with ClassroomHub(idle_timeout=24 * 3600, spawn_timeout=900) as hub:
        outcomes, wall = asyncio.run(run_class(hub, size))
        failures = [outcome for outcome in outcomes if outcome.error]
        done = [outcome for outcome in outcomes if not outcome.error]
        busy = usage_by_student(hub)
        time.sleep(2)  # let the last cells' echoes settle before the idle window
        before = usage_by_student(hub)
        time.sleep(idle_seconds)
        after = usage_by_student(hub)
        hub_seconds = hub_cpu(hub)

    boots = [outcome.first_boot for outcome in outcomes if outcome.first_boot is not None]
    print(f"first boot answered: every student by {max(boots):.1f} s (median {statistics.median(boots):.1f} s)"
          if len(boots) == size else f"first boot answered: only {len(boots)} of {size} students")
    if done:
        print(f"lesson 01 finished:  every student by {max(o.finished or 0 for o in done):.1f} s "
              f"(median {statistics.median(o.finished or 0 for o in done):.1f} s); wall {wall:.1f} s")
    print(f"failures: {len(failures)}" + "".join(f"\n  {o.name}: {o.error}" for o in failures))
    if not busy:
        return
    names = sorted(busy)
    guests = sum(1 for name in names if busy[name].rss["qemu"])
    print(f"students measured: {len(names)}, each with {guests / len(names):.0f} idle guest(s) running")
    for kind in ("rss", "pss"):
        parts = {role: statistics.mean(getattr(busy[name], kind)[role] for name in names) / MIB
                 for role in ("server", "kernel", "qemu")}
        print(f"memory per student ({kind.upper()}): {sum(parts.values()):.0f} MiB = server {parts['server']:.0f}"
              f" + kernel {parts['kernel']:.0f} + QEMU {parts['qemu']:.0f}")
    cpu = statistics.mean(busy[name].cpu for name in names)
    print(f"CPU per student, server start and lesson 01: {cpu:.1f} s (hub and proxy: {hub_seconds:.1f} s in all)")

    common = [name for name in names if name in before and name in after]
    idle_student = statistics.mean((after[n].idle_ticks - before[n].idle_ticks) / TICK for n in common) / idle_seconds
    idle_guest = statistics.mean((after[n].guest_ticks - before[n].guest_ticks) / TICK for n in common) / idle_seconds
    print(f"idle, over {idle_seconds:g} s: one booted guest {idle_guest * 100:.2f}% of a core; "
          f"a whole idle student (server, kernel, guest) {idle_student * 100:.2f}%")

    pss = statistics.mean(sum(busy[name].pss.values()) for name in names) / MIB
    print(f"capacity: {1024 / pss:.1f} students per GiB (PSS, idle guest counted); "
          f"{1 / max(idle_student, 1e-6):.0f} idle students per core; "
          f"a core runs lesson 01 for {60 / cpu:.1f} students a minute")
    cores = os.cpu_count() or 1
    total_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    print(f"this machine ({cores} cores, {total_gib:.0f} GiB): memory holds {int(total_gib * 1024 / pss)} students "
          f"with their idle guests; all {size} starting lesson 01 together keep its cores busy for about "
          f"{size * cpu / cores:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, nargs="+", default=[5, 10, 20, 40])
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    args = parser.parse_args()
    hub_classroom.CELL_TIMEOUT = 900.0  # a class all at once: a build may wait long for a core
    print(f"load average before: {' '.join(f'{value:.2f}' for value in os.getloadavg())}; "
          f"{os.cpu_count()} cores; other work on this machine is not excluded")
    for size in args.students:
        measure(size, args.idle_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
