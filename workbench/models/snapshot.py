"""The guest at one instant: its registers and its page tables, frozen for later questions.

Machine.snapshot() pauses the guest (if it runs), reads the registers, walks every page table
once from shared memory, copies each table page the walk read (ROM ones too), and lets the
guest go on. Walks, mappings, trees and diffs asked of a Snapshot later read those recorded
pages, with the physical map QEMU reported (where RAM, ROM and devices are), so they describe
that instant even though the guest has moved on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from workbench.kernel.image import Image
from workbench.models import address_space, paging
from workbench.models.address_space import AddressSpace
from workbench.models.cpu import Cr3, Registers
from workbench.models.paging import PhysicalMemory, physical_map_of
from workbench.models.physmap import PhysicalMap

PAGE_SIZE = 4096


class FrozenMemory:
    """Copies of some 4 KiB pages of guest memory (RAM or ROM), as they were, and the physical
    map they were read with; other pages read as zeros.

    Args:
        size: bytes of guest RAM.
        paddrs: the pages' paddrs (4 KiB aligned).
        pages: their contents, one row of 512 entries per page, as `paging.read_tables` returns them.
        physical_map: where RAM, ROM and devices were (RAM from 0 to `size` alone by default).
    """

    def __init__(self, size: int, paddrs: Sequence[int], pages: npt.NDArray[np.uint64],
                 physical_map: PhysicalMap | None = None) -> None:
        self._size = size
        self.physical_map = physical_map if physical_map is not None else PhysicalMap.ram_only(size)
        self._where = {paddr // PAGE_SIZE: row for row, paddr in enumerate(paddrs)}
        self._bytes = np.ascontiguousarray(pages, dtype="<u8").reshape(-1).view(np.uint8)

    @classmethod
    def copy(cls, memory: PhysicalMemory, paddrs: Sequence[int]) -> FrozenMemory:
        """Copy the pages at `paddrs` (4 KiB aligned, RAM or ROM) out of `memory` now, with its map."""
        return cls(memory.size, paddrs, paging.read_tables(memory, paddrs), physical_map_of(memory))

    @property
    def size(self) -> int:
        return self._size

    @property
    def page_count(self) -> int:
        return len(self._where)

    def read(self, paddr: int, length: int) -> bytes:
        chunks = []
        while length > 0:
            page, offset = divmod(paddr, PAGE_SIZE)
            take = min(length, PAGE_SIZE - offset)
            row = self._where.get(page)
            if row is None:
                chunks.append(bytes(take))
            else:
                start = row * PAGE_SIZE + offset
                chunks.append(self._bytes[start : start + take].tobytes())
            paddr, length = paddr + take, length - take
        return b"".join(chunks)


@dataclass(frozen=True)
class Snapshot:
    """Registers and page tables of a guest at one instant, and where RAM, ROM and devices were.

    `physical_map` is `memory.physical_map`: QEMU's map for a machine's snapshot.
    """

    registers: Registers
    memory: FrozenMemory = field(repr=False)
    leaves: paging.Leaves = field(repr=False)
    seconds: float  # since the machine started
    label: str = ""
    maxphyaddr: int = 52  # the CPU's physical-address width: entry bits 51:maxphyaddr are reserved
    cpu_cr3: tuple[int, ...] = ()  # each CPU's CR3, CPU 0 first (a machine's snapshot has them all)
    cpu: int = 0  # the CPU whose registers these are, and whose CR3's tables were walked

    @classmethod
    def take(cls, memory: PhysicalMemory, registers: Registers, *, seconds: float = 0.0,
             label: str = "", maxphyaddr: int = 52, cpu_cr3: tuple[int, ...] = (), cpu: int = 0) -> Snapshot:
        """Walk every table from `memory` now; the caller makes sure the guest is paused.

        `maxphyaddr` is the CPU's (Machine.maxphyaddr(), 40 for QEMU's qemu64); 52, the
        architectural maximum, only for hand-built tables. `cpu_cr3` holds every CPU's CR3,
        CPU 0 first; `registers` are CPU `cpu`'s, whose tables are walked.
        """
        found = paging.leaves(memory, registers, maxphyaddr=maxphyaddr)
        return cls(registers, FrozenMemory.copy(memory, found.table_paddrs), found, seconds, label, maxphyaddr,
                   cpu_cr3 or (registers.cr3,), cpu)

    def cpus_on_table(self, paddr: int) -> tuple[int, ...]:
        """The CPUs whose CR3 points at the page table at `paddr` (its PML4)."""
        return tuple(cpu for cpu, cr3 in enumerate(self.cpu_cr3) if Cr3(cr3).table_paddr == paddr)

    @property
    def physical_map(self) -> PhysicalMap:
        """Where RAM, ROM and devices were in the guest's physical address space."""
        return self.memory.physical_map

    def walk(self, vaddr: int) -> paging.Walk:
        """Every step of translating `vaddr`, ending in a paddr or a fault."""
        return paging.walk(self.memory, self.registers, vaddr, maxphyaddr=self.maxphyaddr)

    def translate(self, vaddr: int) -> int:
        """The paddr of `vaddr`; raises paging.PageFaultError when it is not mapped."""
        return paging.translate(self.memory, self.registers, vaddr, maxphyaddr=self.maxphyaddr)

    def mappings(self) -> paging.MappedRanges:
        """Coalesced ranges of equal permissions, as QEMU's `info mem` groups them."""
        return paging.mappings(self.leaves)

    def tree(self) -> paging.PageTableTree:
        """The tables as a tree, CR3 first, children read on demand."""
        return paging.PageTableTree(self.memory, self.registers, maxphyaddr=self.maxphyaddr)

    def diff(self, later: Snapshot) -> paging.LeafDiff:
        """What changed between this snapshot and a later one."""
        return paging.diff(self.leaves, later.leaves)

    def vaddrs_for_frame(self, paddr: int) -> tuple[int, ...]:
        """Every vaddr that translates to `paddr` (a page's own vaddr plus the offset)."""
        return paging.vaddrs_for_frame(self.leaves, paddr)

    def address_space(self, image: Image | None = None) -> AddressSpace:
        """The mappings labelled from `image` (sections, stacks, guards, heap, direct map)."""
        return address_space.build(self.leaves, image, physical_map=self.physical_map)

    def info_tlb(self) -> str:
        """Exactly what QEMU's `info tlb` would print for these tables."""
        return paging.info_tlb_text(self.leaves)  # the leaves already read, formatted with numpy

    def info_mem(self) -> str:
        """Exactly what QEMU's `info mem` would print for these tables."""
        return paging.format_info_mem(self.memory, self.registers)

    def __repr__(self) -> str:
        name = f" {self.label!r}" if self.label else ""
        cpu = f" (cpu {self.cpu})" if self.cpu else ""
        return f"<Snapshot{name}: {len(self.leaves)} pages, cr3={self.registers.cr3:#x}{cpu}>"
