"""The frame map's input, read from a live guest: its page tables and its frame allocator's
variables at one instant (workbench/models/frames.py classifies them)."""

from __future__ import annotations

import time

from workbench.guest.machine import Machine
from workbench.kernel.image import Image
from workbench.models import frames
from workbench.models.snapshot import Snapshot


def read(machine: Machine, image: Image | None,
         timings: dict[str, float] | None = None) -> tuple[Snapshot, frames.AllocatorState | None]:
    """A snapshot and the allocator's state (None without the image's symbols), the guest held
    still for both and no longer: classifying needs only what was read. `timings` gets the
    milliseconds of stopping the guest, reading it, and letting it run again (for benchmarks)."""
    started = time.perf_counter()
    with machine.held():
        stopped = time.perf_counter()
        snapshot = machine.snapshot()
        allocator = frames.read_allocator(machine.memory, image) if image is not None else None
        walked = time.perf_counter()
    if timings is not None:
        timings.update(stop=milliseconds_since(started, stopped), walk=milliseconds_since(stopped, walked),
                       resume=milliseconds_since(walked))
    return snapshot, allocator


def milliseconds_since(start: float, end: float | None = None) -> float:
    """Milliseconds from `start` to `end` (now), on time.perf_counter()'s clock, to a tenth."""
    return round(((time.perf_counter() if end is None else end) - start) * 1000, 1)
