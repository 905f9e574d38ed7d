"""What the paging model reads: guest physical memory and the control registers.

Two protocols (`PhysicalMemory`, `PagingRegisters`) and plain implementations of them for
tests and for callers without a machine (`BytesMemory`, `ControlRegisters`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from workbench.models.cpu import (
    CR0_PG,
    CR0_WP,
    CR4_LA57,
    CR4_PAE,
    EFER_LMA,
    EFER_NXE,
)
from workbench.models.paging.errors import PhysicalMemoryError
from workbench.models.physmap import PhysicalMap


class PhysicalMemory(Protocol):
    """Guest physical memory as the model reads it.

    `size` bytes of RAM from paddr 0, and nothing else, unless the memory also has a
    `physical_map` attribute (a `PhysicalMap`, as QEMU reports it): then RAM, ROM and device
    regions are where the map says, and the model reads only RAM and ROM (see `physical_map_of`).
    """

    @property
    def size(self) -> int:
        """Bytes of guest RAM (from paddr 0 when there is no `physical_map`)."""
        ...

    def read(self, paddr: int, length: int) -> bytes:
        """Return `length` bytes at `paddr` as the guest reads them; the range lies in RAM or ROM."""
        ...


def physical_map_of(memory: PhysicalMemory) -> PhysicalMap:
    """The memory's own map of the physical address space, or RAM from 0 to its size alone."""
    found = getattr(memory, "physical_map", None)
    return found if isinstance(found, PhysicalMap) else PhysicalMap.ram_only(memory.size)


@runtime_checkable
class LendingMemory(Protocol):
    """A `PhysicalMemory` that also lends a zero-copy window on its RAM, as `GuestRAM` and
    `BytesMemory` do: `leaves()` then reads all the tables of a level in one array operation."""

    def view(self, paddr: int, length: int) -> memoryview:
        """A read-only window on `length` bytes at `paddr`."""
        ...


class BytesMemory:
    """Guest RAM held in a bytes-like object, the paddr being the offset.

    Args:
        data: the RAM image; a memoryview is used without copying.
        physical_map: where RAM, ROM and devices are; by default RAM from 0 to len(data).
            ROM regions inside `data` read from it (tests put "ROM" contents there).
    """

    def __init__(self, data: bytes | bytearray | memoryview, physical_map: PhysicalMap | None = None) -> None:
        self._view = memoryview(data).cast("B")
        self.physical_map = physical_map if physical_map is not None else PhysicalMap.ram_only(len(self._view))

    @property
    def size(self) -> int:
        """Bytes of RAM."""
        return len(self._view)

    def read(self, paddr: int, length: int) -> bytes:
        """Return a copy of `length` bytes at `paddr`.

        Raises:
            PhysicalMemoryError: the range is not inside RAM.
        """
        self._check_range(paddr, length)
        return bytes(self._view[paddr : paddr + length])

    def view(self, paddr: int, length: int) -> memoryview:
        """A zero-copy, read-only window on `length` bytes at `paddr`.

        Raises:
            PhysicalMemoryError: the range is not inside RAM.
        """
        self._check_range(paddr, length)
        return self._view[paddr : paddr + length].toreadonly()

    def _check_range(self, paddr: int, length: int) -> None:
        if paddr < 0 or length < 0 or paddr + length > len(self._view):
            raise PhysicalMemoryError(
                f"paddr range {paddr:#x}..{paddr + length:#x} lies outside RAM (0x0..{len(self._view):#x})"
            )


class PagingRegisters(Protocol):
    """The registers a page walk depends on (`cpu.Registers` is one)."""

    @property
    def cr0(self) -> int:
        """CR0 (PG, WP)."""
        ...

    @property
    def cr3(self) -> int:
        """CR3 (top-level table)."""
        ...

    @property
    def cr4(self) -> int:
        """CR4 (PAE, LA57, PCIDE, PKE, PKS, SMEP, SMAP)."""
        ...

    @property
    def efer(self) -> int:
        """IA32_EFER (LMA, NXE)."""
        ...


@dataclass(frozen=True)
class ControlRegisters:
    """Plain register values, for tests and for callers without a `cpu.Registers`."""

    cr0: int
    cr3: int
    cr4: int
    efer: int

    @classmethod
    def long_mode(
        cls, cr3: int, *, la57: bool = False, nxe: bool = True, wp: bool = True, cr4_extra: int = 0
    ) -> ControlRegisters:
        """Return the registers of a CPU in long mode with paging on.

        Args:
            cr3: CR3, the top-level table paddr (and PCID or cache bits).
            la57: 5-level paging.
            nxe: EFER.NXE, honour the XD bit.
            wp: CR0.WP, supervisor writes obey read-only pages.
            cr4_extra: more CR4 bits (PKE, SMEP, ...).
        """
        cr0 = CR0_PG | (CR0_WP if wp else 0) | 0x11  # PG, WP, ET, PE
        cr4 = CR4_PAE | (CR4_LA57 if la57 else 0) | cr4_extra
        efer = (1 << 8) | EFER_LMA | (EFER_NXE if nxe else 0)  # LME, LMA, NXE
        return cls(cr0=cr0, cr3=cr3, cr4=cr4, efer=efer)


