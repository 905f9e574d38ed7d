"""The loop a student waits on, measured through the same API a lesson uses.

Prints median and min-max over N runs of:
  (a) a clean build of the unikernel;
  (b) edit one application line, rebuild, boot, first line of application output;
  (c) boot to the first application output, divided by the same for the floor guest
      (a PVH guest that only writes one byte and exits), same machine type, same run.
Targets on a 2-core machine: (b) median <= 250 ms, (c) <= 1.3.

    .venv/bin/python -m benchmarks.roundtrip [--runs 10] [--machine-type microvm]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._timing import summary, timed
from workbench.guest.machine import Machine
from workbench.kernel.toolchains import TOOLCHAINS
from workbench.kernel.workspace import Workspace

FLOOR_SOURCE = Path(__file__).resolve().parent / "floor-guest"
BANNER = "Hello from the unikernel!"




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
        loop = []
        for run in range(args.runs):
            previous = "Hello from the unikernel!" if run == 0 else f"Hello from the unikernel! (edit {run - 1})"
            started = time.perf_counter()
            workspace.replace("app/main.c", previous, f"Hello from the unikernel! (edit {run})")
            edited = workspace.build()
            with Machine(edited, machine_type=args.machine_type) as machine:
                machine.wait_for(f"(edit {run})", timeout=30)
            loop.append(time.perf_counter() - started)

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
    print(summary("(b) edit one line, rebuild, boot, first app output", loop, "median <= 250 ms", width=58))
    print(summary("    boot to first app output (unikernel)", ours, width=58))
    print(summary("    boot to first output (floor guest)", floor, width=58))
    print(f"{'(c) unikernel boot / floor guest boot (medians)':<58} ratio  {ratio:7.2f}"
          f"{'':>31}target <= 1.3")
    return 0


if __name__ == "__main__":
    sys.exit(main())
