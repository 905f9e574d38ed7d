"""The guest at one instant: its registers and its page tables, frozen for later questions.

Machine.snapshot() pauses the guest (if it runs), reads the registers, walks every page table
once from shared memory while recording each table page it reads, and lets the guest go on.
Walks, mappings, trees and diffs asked of a Snapshot later read those recorded pages, so they
describe that instant even though the guest has moved on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import address_space, paging
from .address_space import AddressSpace
from .cpu import Registers
from .image import Image
from .paging import PhysicalMemory

PAGE_SIZE = 4096


class RecordingMemory:
    """Reads through to `inner` and keeps a copy of every 4 KiB page that was read."""

    def __init__(self, inner: PhysicalMemory) -> None:
        self.inner = inner
        self.pages: dict[int, bytes] = {}

    @property
    def size(self) -> int:
        return self.inner.size

    def read(self, paddr: int, length: int) -> bytes:
        first, last = paddr // PAGE_SIZE, (paddr + max(length, 1) - 1) // PAGE_SIZE
        for page in range(first, last + 1):
            if page not in self.pages:
                self.pages[page] = self.inner.read(page * PAGE_SIZE, PAGE_SIZE)
        return self.inner.read(paddr, length)


class FrozenMemory:
    """The pages a RecordingMemory saw, as they were; other RAM reads as zeros."""

    def __init__(self, size: int, pages: dict[int, bytes]) -> None:
        self._size = size
        self._pages = pages

    @property
    def size(self) -> int:
        return self._size

    @property
    def page_count(self) -> int:
        return len(self._pages)

    def read(self, paddr: int, length: int) -> bytes:
        chunks = []
        while length > 0:
            page, offset = divmod(paddr, PAGE_SIZE)
            take = min(length, PAGE_SIZE - offset)
            chunks.append(self._pages.get(page, bytes(PAGE_SIZE))[offset : offset + take])
            paddr, length = paddr + take, length - take
        return b"".join(chunks)


@dataclass(frozen=True)
class Snapshot:
    """Registers and page tables of a guest at one instant."""

    registers: Registers
    memory: FrozenMemory = field(repr=False)
    leaves: paging.Leaves = field(repr=False)
    seconds: float  # since the machine started
    label: str = ""

    @classmethod
    def take(cls, memory: PhysicalMemory, registers: Registers, *, seconds: float = 0.0,
             label: str = "") -> Snapshot:
        """Walk every table from `memory` now; the caller makes sure the guest is paused."""
        recording = RecordingMemory(memory)
        found = paging.leaves(recording, registers)
        return cls(registers, FrozenMemory(memory.size, recording.pages), found, seconds, label)

    def walk(self, vaddr: int) -> paging.Walk:
        """Every step of translating `vaddr`, ending in a paddr or a fault."""
        return paging.walk(self.memory, self.registers, vaddr)

    def translate(self, vaddr: int) -> int:
        """The paddr of `vaddr`; raises paging.PageFaultError when it is not mapped."""
        return paging.translate(self.memory, self.registers, vaddr)

    def mappings(self) -> tuple[paging.MappedRange, ...]:
        """Coalesced ranges of equal permissions, as QEMU's `info mem` groups them."""
        return paging.mappings(self.leaves)

    def tree(self) -> paging.PageTableTree:
        """The tables as a tree, CR3 first, children read on demand."""
        return paging.PageTableTree(self.memory, self.registers)

    def diff(self, later: Snapshot) -> paging.LeafDiff:
        """What changed between this snapshot and a later one."""
        return paging.diff(self.leaves, later.leaves)

    def vaddrs_for_frame(self, paddr: int) -> tuple[int, ...]:
        """Every vaddr that maps the physical frame containing `paddr`."""
        return paging.vaddrs_for_frame(self.leaves, paddr)

    def address_space(self, image: Image | None = None) -> AddressSpace:
        """The mappings labelled from `image` (sections, stacks, guards, heap, direct map)."""
        return address_space.build(self.leaves, image, ram_size=self.memory.size)

    def info_tlb(self) -> str:
        """Exactly what QEMU's `info tlb` would print for these tables."""
        return paging.format_info_tlb(self.memory, self.registers)

    def info_mem(self) -> str:
        """Exactly what QEMU's `info mem` would print for these tables."""
        return paging.format_info_mem(self.memory, self.registers)

    def __repr__(self) -> str:
        name = f" {self.label!r}" if self.label else ""
        return f"<Snapshot{name}: {len(self.leaves)} pages, cr3={self.registers.cr3:#x}>"
