"""A library OS, specialised, against a Linux guest running the same application in a container.

For each selection of kernel components (the application of app/, as lesson 08 builds it) and for
the greeter of lesson 09, as a unikernel and in a container on Debian's stock Linux kernel, prints:
image size, boot to the application's first output (median of the runs, wall-clock time, TCG),
guest memory in use, processes, programs that could be executed, system calls offered. The
smallest unikernel that prints hello is the figure to beat: target below 16 KiB.

    .venv/bin/python -m benchmarks.specialise [--runs 5] [--linux-runs 1] [--toolchain gcc]

Memory in use: for the unikernel, its image and the frames its allocator handed out, read from
the guest stopped at app_main; for Linux, the guest's RAM minus MemFree, read in the guest once
the application runs. Processes count every process of the guest, kernel threads included.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from workbench.compare.attack_surface import image_surface
from workbench.compare.linux_guest import LinuxGuest, build_initramfs
from workbench.compare.specialise import memory_in_use, stopped_at
from workbench.compare.stock_linux import stock_kernel
from workbench.guest.machine import Machine
from workbench.kernel.image import Image
from workbench.kernel.toolchains import DEFAULT_TOOLCHAIN
from workbench.kernel.workspace import Workspace

SELECTIONS: dict[str, list[str] | None] = {
    "everything (app/config.mk)": None,
    "requests, page tables": ["console-input", "page-tables"],
    "requests": ["console-input"],
    "hello, timer": ["timer"],
    "hello, faults reported": ["fault-report", "symbols"],
    "hello, page tables": ["page-tables"],
    "hello (the base alone)": [],
}
TARGET_BYTES = 16 * 1024


@dataclass(frozen=True)
class Row:
    name: str
    image_bytes: int
    boot_seconds: list[float]
    memory_bytes: int
    processes: int
    programs: int
    system_calls: int


def boot_times(image: Image, runs: int) -> list[float]:
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        with Machine(image, name="bench-specialise") as machine:
            machine.wait_for("app: ", timeout=60)
            seconds.append(time.perf_counter() - started)
    return seconds


def unikernel_row(name: str, image: Image, runs: int) -> Row:
    seconds = boot_times(image, runs)
    machine = stopped_at(image, "app_main", name="bench-specialise")
    try:
        memory = memory_in_use(machine, image)
    finally:
        machine.close()
    return Row(name, image.size, seconds, memory, 0, 0, image_surface(image).system_calls)


def linux_row(workspace: Workspace, toolchain: str, runs: int) -> tuple[Row, int]:
    """The greeter in its container; also the root file system's bytes."""
    program = workspace.build_linux_program(app="apps/greeter", toolchain=toolchain)
    files = build_initramfs(program, stock_kernel(), workspace.root / "build" / "bench-linux.cpio")
    seconds, last = [], None
    for _ in range(runs):
        with LinuxGuest(files, name="bench-linux") as guest:
            last = guest.run_container(timeout=120)
            seconds.append(guest.seconds_to_ready + last.seconds_to_first_output)
            memory = guest.machine.memory_mib * 1024 * 1024 - last.memory_free_kib * 1024
    assert last is not None
    row = Row("greeter, Linux + container", files.kernel_bytes + files.initramfs_bytes, seconds, memory,
              last.processes, last.container_programs, last.system_calls)
    return row, files.root_file_system_bytes


def print_table(rows: Iterable[Row]) -> None:
    print(f"{'':30} {'image':>12} {'boot, median (min-max)':>26} {'memory':>11} {'processes':>9} "
          f"{'programs':>8} {'syscalls':>8}")
    for row in rows:
        ms = sorted(s * 1000 for s in row.boot_seconds)
        boot = f"{statistics.median(ms):9.1f} ms ({ms[0]:.0f}-{ms[-1]:.0f})"
        print(f"{row.name:30} {row.image_bytes:>12,} {boot:>26} {row.memory_bytes // 1024:>8,} KiB "
              f"{row.processes:>9} {row.programs:>8} {row.system_calls:>8}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="boots of each unikernel")
    parser.add_argument("--linux-runs", type=int, default=1, help="boots of the Linux guest (seconds each)")
    parser.add_argument("--toolchain", default=DEFAULT_TOOLCHAIN)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="workbench-bench-") as scratch:
        workspace = Workspace.open("specialise", parent=Path(scratch))
        rows = [unikernel_row(name, workspace.build(components=selected, toolchain=args.toolchain), args.runs)
                for name, selected in SELECTIONS.items()]
        greeter = workspace.build(app="apps/greeter", toolchain=args.toolchain)
        rows.append(unikernel_row("greeter, unikernel", greeter, args.runs))
        linux, root_bytes = linux_row(workspace, args.toolchain, args.linux_runs)
        rows.append(linux)

    print(f"specialise: {args.toolchain}, TCG, {args.runs} boots per unikernel, {args.linux_runs} of Linux "
          "(wall-clock time to the application's first line)")
    print_table(rows)
    smallest = rows[len(SELECTIONS) - 1]
    print(f"the container's root file system: {root_bytes:,} bytes (busybox, the greeter, a link per applet)")
    print(f"smallest unikernel that prints hello: {smallest.image_bytes:,} bytes "
          f"({smallest.image_bytes / 1024:.1f} KiB)   target < {TARGET_BYTES // 1024} KiB: "
          f"{'met' if smallest.image_bytes < TARGET_BYTES else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
