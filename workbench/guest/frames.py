"""The frame map's input, read from a live guest: its page tables and its frame allocator's
variables at one instant (workbench/models/frames.py classifies them)."""

from __future__ import annotations

from workbench.guest.machine import Machine
from workbench.kernel.image import Image
from workbench.models import frames
from workbench.models.snapshot import Snapshot


def read(machine: Machine, image: Image | None) -> tuple[Snapshot, frames.AllocatorState | None]:
    """A snapshot and the allocator's state (None without the image's symbols), the guest held
    still for both and no longer: classifying needs only what was read."""
    with machine.held():
        snapshot = machine.snapshot()
        allocator = frames.read_allocator(machine.memory, image) if image is not None else None
    return snapshot, allocator
