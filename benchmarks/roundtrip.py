"""The loop a student waits on, measured through the same API a lesson uses.

Prints median and min-max over N runs of:
  (a) a clean build of the unikernel;
  (b) edit one application line, rebuild, boot, first line of application output; then where
      that time goes: the edit, make, the Python side of Workspace.build (reading the ELF among
      it) and the boot; and, in N more runs with each recipe line timed (benchmarks/timed-shell
      as make's SHELL), make's steps: compile, link, symbols, objcopy, and make itself;
  (c) boot to the first application output, divided by the same for the floor guest
      (a PVH guest that only writes one byte and exits), same machine type, same run.
Targets on a 2-core machine: (b) median <= 150 ms, (c) <= 1.3.

    .venv/bin/python -m benchmarks.roundtrip [--runs 10] [--machine-type microvm]
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._timing import summary, timed
from workbench.guest.machine import Machine
from workbench.kernel.image import Image
from workbench.kernel.toolchains import TOOLCHAINS
from workbench.kernel.workspace import Workspace

FLOOR_SOURCE = Path(__file__).resolve().parent / "floor-guest"
TIMED_SHELL = Path(__file__).resolve().parent / "timed-shell"
BANNER = "Hello from the unikernel!"
# make's steps, told apart by their recipe lines (kernel-src/Makefile).
STEPS = {"compile": " -c -o ", "link": " -T ", "symbols": "readelf", "objcopy": "objcopy"}


def build_floor_guest(directory: Path) -> Path:
    subprocess.run(["make", "-s", "-C", str(FLOOR_SOURCE), f"BUILD_DIR={directory}",
                    *(f"{k}={v}" for k, v in TOOLCHAINS["gcc"].items())], check=True)
    return directory / "floor.elf"


def boot_until(image: object, text: str, machine_type: str) -> float:
    """Seconds from asking for a machine to the guest printing `text`."""
    started = time.perf_counter()
    with Machine(image, machine_type=machine_type) as machine:  # type: ignore[arg-type]
        machine.wait_for(text, timeout=30)
        return time.perf_counter() - started


def edit(workspace: Workspace, run: int) -> None:
    """Change the banner's line in app/main.c, a different text in each run."""
    previous = BANNER if run == 0 else f"{BANNER} (edit {run - 1})"
    workspace.replace("app/main.c", previous, f"{BANNER} (edit {run})")


def edit_loop(workspace: Workspace, runs: range, machine_type: str) -> tuple[list[float], dict[str, list[float]]]:
    """Seconds of each edit-build-boot run, and of its parts."""
    loop: list[float] = []
    parts: dict[str, list[float]] = {name: [] for name in (
        "edit (write app/main.c)", "build: make", "build: Python side (all but make)",
        "  of which reading the ELF (Image.load)", "boot to first app output")}
    for run in runs:
        started = time.perf_counter()
        edit(workspace, run)
        edited_at = time.perf_counter()
        edited = workspace.build()
        built_at = time.perf_counter()
        with Machine(edited, machine_type=machine_type) as machine:
            machine.wait_for(f"(edit {run})", timeout=30)
        loop.append(time.perf_counter() - started)
        reading = timed(functools.partial(Image.load, edited.path))  # again, outside the loop's time
        for name, seconds in zip(parts, (edited_at - started, edited.build_seconds,
                                         built_at - edited_at - edited.build_seconds, reading,
                                         loop[-1] - (built_at - started)), strict=True):
            parts[name].append(seconds)
    return loop, parts


def timed_steps(workspace: Workspace, log: Path, runs: range) -> dict[str, list[float]]:
    """Seconds of make's steps in edit-and-build runs with each recipe line timed."""
    rest = "make itself (with the timing shell's starts)"
    steps: dict[str, list[float]] = {name: [] for name in (*STEPS, "other recipe lines", rest)}
    os.environ.update(MAKEFLAGS=f"SHELL={TIMED_SHELL}", ROUNDTRIP_STEPS=str(log))
    try:
        for run in runs:
            edit(workspace, run)
            log.write_text("")
            total = workspace.build().build_seconds
            spent = dict.fromkeys(steps, 0.0)
            for started, ended, line in (entry.split(" ", 2) for entry in log.read_text().splitlines()):
                name = next((name for name, mark in STEPS.items() if mark in line), "other recipe lines")
                spent[name] += float(ended) - float(started)
            spent[rest] = total - sum(spent.values())  # an edit's steps run one after another
            for name, seconds in spent.items():
                steps[name].append(seconds)
    finally:
        for name in ("MAKEFLAGS", "ROUNDTRIP_STEPS"):
            os.environ.pop(name, None)
    return {f"make: {name}": seconds for name, seconds in steps.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--machine-type", default="microvm", choices=("microvm", "pc", "q35"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="workbench-bench-") as scratch:
        root = Path(scratch)
        workspace = Workspace.open("roundtrip", parent=root)

        def clean_build() -> None:
            shutil.rmtree(workspace.root / "build", ignore_errors=True)
            workspace.build()

        clean = [timed(clean_build) for _ in range(args.runs)]

        image = workspace.build()
        boot_until(image, BANNER, args.machine_type)  # warm the page cache and the QEMU probe
        loop, parts = edit_loop(workspace, range(args.runs), args.machine_type)
        steps = timed_steps(workspace, root / "steps.log", range(args.runs, 2 * args.runs))

        floor_image = build_floor_guest(root / "floor")
        workspace.reset()
        image = workspace.build()
        ours, floor = [], []
        for _ in range(args.runs):  # interleaved, so both see the same machine load
            ours.append(boot_until(image, BANNER, args.machine_type))
            floor.append(boot_until(floor_image, "!", args.machine_type))
        ratio = statistics.median(ours) / statistics.median(floor)

    print(f"roundtrip on {args.machine_type}, TCG, {args.runs} runs each (wall-clock time)")
    print(summary("(a) clean build", clean, width=58))
    print(summary("(b) edit one line, rebuild, boot, first app output", loop, "median <= 150 ms", width=58))
    for name, seconds in {**parts, **steps}.items():
        print(summary(f"      {name}", seconds, width=58))
    print(summary("    boot to first app output (unikernel)", ours, width=58))
    print(summary("    boot to first output (floor guest)", floor, width=58))
    print(f"{'(c) unikernel boot / floor guest boot (medians)':<58} ratio  {ratio:7.2f}"
          f"{'':>31}target <= 1.3")
    return 0


if __name__ == "__main__":
    sys.exit(main())
