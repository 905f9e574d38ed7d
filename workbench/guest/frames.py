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
        timings.update(stop=_ms(stopped - started), walk=_ms(walked - stopped),
                       resume=_ms(time.perf_counter() - walked))
    return snapshot, allocator


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)
