"""Page-table snapshot and walk, against QEMU's own page-table dump of the same paused guest.

Prints median and min-max over N runs (wall-clock time) of:
  (a) a stock Linux kernel (tests/support/linux_kernel.py) paused with its final page tables:
      ours  Machine.snapshot() (registers over QMP, every table read from shared memory, every
            leaf found) plus mappings() (the leaves coalesced into ranges);
      QEMU  HMP `info tlb` over QMP, its text only (parsing it would cost more);
      in the same run, interleaved, and the ratio of the medians. Target: ours >= 10x faster.
  (b) our unikernel after boot, paused: Machine.snapshot(), i.e. registers and the full walk.
      Target: median <= 5 ms. Also a snapshot of the running guest (it pauses and resumes it).
Before any timing, both sides must describe the same pages: QEMU's `info tlb` parsed equals our
leaves as `info tlb` lines, and with 4-level paging QEMU's `info mem` parsed equals mappings().
Each run repeats the first check, outside the timed part.

    .venv/bin/python -m benchmarks.pagewalk [--runs 10] [--unikernel-runs 50] [--levels 4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from itertools import zip_longest
from pathlib import Path
from typing import TypeVar

from tests.support import linux_kernel
from workbench.guest.machine import Machine
from workbench.kernel.workspace import Workspace
from workbench.models.paging import MappedRange, parse_info_mem, parse_info_tlb, tlb_lines
from workbench.models.snapshot import Snapshot

CPU_FOR_LEVELS = {4: "qemu64", 5: "qemu64,la57=on"}
MONITOR_TIMEOUT = 60.0
T = TypeVar("T")


def timed(action: Callable[[], T]) -> tuple[float, T]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def summary(name: str, seconds: list[float], target: str = "") -> str:
    ms = sorted(s * 1000 for s in seconds)
    line = f"{name:<58} median {statistics.median(ms):7.1f} ms   min-max {ms[0]:6.1f}-{ms[-1]:6.1f} ms"
    return line + (f"   target {target}" if target else "")


def same_pages(snapshot: Snapshot, qemu_tlb: str) -> None:
    """Fail loudly unless QEMU's `info tlb` lists exactly our leaves."""
    ours, theirs = tlb_lines(snapshot.leaves), parse_info_tlb(qemu_tlb)
    if ours != theirs:
        first = next(i for i, (a, b) in enumerate(zip_longest(ours, theirs)) if a != b)
        raise SystemExit(f"ours and QEMU's info tlb differ ({len(ours)} and {len(theirs)} lines), first at "
                         f"line {first + 1}: QEMU {theirs[first] if first < len(theirs) else None}, "
                         f"ours {ours[first] if first < len(ours) else None}")


def linux_figures(runs: int, levels: int) -> list[str]:
    kernel = linux_kernel.stock_kernel()
    boot_seconds, machine = timed(lambda: linux_kernel.boot_paused(kernel, cpu=CPU_FOR_LEVELS[levels]))
    try:
        snapshot = machine.snapshot()
        same_pages(snapshot, machine.hmp("info tlb", MONITOR_TIMEOUT))
        ranges: tuple[MappedRange, ...] = snapshot.mappings()
        if levels == 4 and parse_info_mem(machine.hmp("info mem", MONITOR_TIMEOUT)) != ranges:
            raise SystemExit("ours and QEMU's info mem differ")
        ours, snap_only, coalesce_only, text_only, same_text, qemu = [], [], [], [], [], []
        for _ in range(runs):  # interleaved, so both see the same machine load
            snap_seconds, snapshot = timed(machine.snapshot)
            coalesce_seconds, ranges = timed(snapshot.mappings)
            text_seconds, our_text = timed(snapshot.info_tlb)
            qemu_seconds, text = timed(lambda: machine.hmp("info tlb", MONITOR_TIMEOUT))
            same_pages(snapshot, text)
            if our_text != text:
                raise SystemExit("snapshot.info_tlb() is not byte for byte QEMU's info tlb")
            ours.append(snap_seconds + coalesce_seconds)
            snap_only.append(snap_seconds)
            coalesce_only.append(coalesce_seconds)
            text_only.append(text_seconds)
            same_text.append(snap_seconds + text_seconds)
            qemu.append(qemu_seconds)
    finally:
        machine.close()
    ratio = statistics.median(qemu) / statistics.median(ours)
    text_ratio = statistics.median(qemu) / statistics.median(same_text)
    return [
        f"(a) {kernel.name}, {levels}-level paging, booted to its panic in {boot_seconds:.1f} s; "
        f"{len(snapshot.leaves):,} leaves, {len(ranges):,} ranges, {runs} runs",
        summary("    ours: snapshot + full walk + coalescing", ours),
        summary("      of which Machine.snapshot()", snap_only),
        summary("      of which mappings()", coalesce_only),
        summary("    QEMU: info tlb over QMP (text only)", qemu),
        f"{'    structured: QEMU text / our snapshot+ranges':<58} ratio  {ratio:7.2f}{'':>31}target >= 10",
        summary("    ours, same text: snapshot + snapshot.info_tlb()", same_text),
        summary("      of which snapshot.info_tlb() (numpy formatting)", text_only),
        f"{'    same text: QEMU info tlb / our snapshot+info_tlb()':<58} ratio  {text_ratio:7.2f}"
        f"{'':>31}target >= 10",
    ]


def unikernel_figures(runs: int) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="workbench-bench-") as scratch:
        image = Workspace.open("pagewalk", parent=Path(scratch)).build()
        with Machine(image) as machine:
            machine.wait_for("> ")
            running = [timed(machine.snapshot)[0] for _ in range(runs)]
            machine.pause()
            snapshot = machine.snapshot()
            same_pages(snapshot, machine.hmp("info tlb"))
            paused = [timed(machine.snapshot)[0] for _ in range(runs)]
    return [
        f"(b) our unikernel after boot: {len(snapshot.leaves):,} leaves, {runs} runs",
        summary("    paused: snapshot + full walk", paused, "median <= 5 ms"),
        summary("    running: pause, snapshot + full walk, resume", running),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="runs on the Linux guest")
    parser.add_argument("--unikernel-runs", type=int, default=50, help="runs on the unikernel")
    parser.add_argument("--levels", type=int, default=4, choices=(4, 5), help="paging levels of the Linux guest")
    args = parser.parse_args()
    linux = linux_figures(args.runs, args.levels)
    unikernel = unikernel_figures(args.unikernel_runs)
    print("pagewalk, TCG, wall-clock time")
    print("\n".join(linux + unikernel))
    return 0


if __name__ == "__main__":
    sys.exit(main())
