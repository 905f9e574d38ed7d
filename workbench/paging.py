"""x86-64 page tables read from guest memory: walk, enumerate, coalesce, compare, print.

Pure model, no I/O: it takes a `PhysicalMemory` reader and the control registers, and returns
frozen values. Views, lessons and the address-space model call it; it calls nothing above it.

Sources: Intel SDM Vol. 3A §4.5 (4-level and 5-level paging, Tables 4-14 to 4-20 for the entry
formats, §4.6 for access rights), and QEMU 7.2's target/i386/monitor.c (`print_pte`,
`tlb_info_la48`, `tlb_info_la57`, `mem_print`, `mem_info_la48`, `mem_info_la57`), which
`format_info_tlb` and `format_info_mem` reproduce byte for byte.

What "like QEMU" means here:
    `leaves()` descends exactly where QEMU's `info tlb` does (P decides, PS in a PML4E/PML5E
    is ignored, tables are located with QEMU's 50-bit mask) and marks, rather than drops,
    leaves the CPU would refuse for reserved bits. Memory outside RAM reads as zeros, as QEMU's
    unassigned memory does (QEMU would see device registers or ROM there). `walk()` is the
    CPU's view instead: it stops at the first reserved bit, and a table beyond RAM is a fault.
    A leaf whose frame is beyond RAM is a valid mapping of device memory, not a fault.

How much work a full enumeration may do:
    A walk descends at most 4 (or 5) levels, so no path can loop: a PML4 entry that points at
    the PML4 itself (the recursive-mapping trick) just makes the PML4 serve as a PDPT one level
    down, which the hardware and QEMU's `info tlb` both do. What can explode is fan-out, when
    many entries point at the same tables (garbage memory can make every entry do so: 512**4
    leaves). So `leaves()` stops after examining `max_entries` present entries (default
    1,000,000, about 40 times a stock Linux guest), counted in QEMU's depth-first order, and
    returns exactly what a depth-first walk stopping there finds, with `truncated=True`; no
    level of its work decodes more than about `max_entries` entries. Nothing else is bounded
    because nothing else can grow.

How it stays fast (a stock Linux guest has some 75,000 leaves):
    `leaves()` decodes a whole level of tables at a time with numpy, reading guest RAM in
    place when the memory lends a window on it (`view`, as `GuestRAM` and `BytesMemory` do);
    a table that many entries point at is read once per level. Results stay numpy columns
    until asked for: `Leaves` builds `Leaf` objects and `rows`, and `mappings()` its
    `MappedRange`s, only when they are looked at.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import gc
import itertools
import operator
import re
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, overload, runtime_checkable

import numpy as np
import numpy.typing as npt

from workbench.cpu import (
    CR0_PG,
    CR0_WP,
    CR4_LA57,
    CR4_PAE,
    CR4_PCIDE,
    CR4_PKE,
    CR4_PKS,
    CR4_SMAP,
    CR4_SMEP,
    EFER_LMA,
    EFER_NXE,
)
from workbench.errors import WorkbenchError

__all__ = [
    "DEFAULT_MAX_ENTRIES",
    "ENTRY_ACCESSED",
    "ENTRY_CACHE_DISABLE",
    "ENTRY_DIRTY",
    "ENTRY_GLOBAL",
    "ENTRY_NO_EXECUTE",
    "ENTRY_PAGE_SIZE",
    "ENTRY_PAT_4K",
    "ENTRY_PAT_LARGE",
    "ENTRY_PRESENT",
    "ENTRY_PROTECTION_KEY",
    "ENTRY_USER",
    "ENTRY_WRITABLE",
    "ENTRY_WRITE_THROUGH",
    "PAGE_SIZE_1G",
    "PAGE_SIZE_2M",
    "PAGE_SIZE_4K",
    "BytesMemory",
    "ControlRegisters",
    "Entry",
    "EntryKind",
    "FaultKind",
    "Leaf",
    "LeafChange",
    "LeafDiff",
    "Leaves",
    "Level",
    "MappedRange",
    "MappedRanges",
    "MonitorOutputError",
    "PageFault",
    "PageFaultError",
    "PageTableTree",
    "PagingError",
    "PagingKind",
    "PagingMode",
    "PagingRegisters",
    "Permissions",
    "PhysicalMemory",
    "PhysicalMemoryError",
    "TableNode",
    "TableProblem",
    "TlbLine",
    "TreeEntry",
    "UnsupportedPagingModeError",
    "Walk",
    "WalkLimitError",
    "WalkStep",
    "diff",
    "format_info_mem",
    "format_info_tlb",
    "format_mappings",
    "format_tree",
    "format_walk",
    "leaves",
    "mappings",
    "parse_info_mem",
    "parse_info_tlb",
    "read_tables",
    "size_text",
    "tlb_lines",
    "translate",
    "vaddrs_for_frame",
    "walk",
]

U64 = (1 << 64) - 1
PAGE_SIZE_4K = 1 << 12
PAGE_SIZE_2M = 1 << 21
PAGE_SIZE_1G = 1 << 30
ENTRIES_PER_TABLE = 512
TABLE_SIZE = 4096
DEFAULT_MAX_ENTRIES = 1_000_000

# Entry bits, SDM Vol. 3A Tables 4-15 to 4-20. Bits 11:9 and 58:52 are ignored by the CPU.
ENTRY_PRESENT = 1 << 0  # P: all other bits are ignored when clear
ENTRY_WRITABLE = 1 << 1  # R/W: writes allowed (subject to CR0.WP for the kernel)
ENTRY_USER = 1 << 2  # U/S: ring 3 may access
ENTRY_WRITE_THROUGH = 1 << 3  # PWT
ENTRY_CACHE_DISABLE = 1 << 4  # PCD
ENTRY_ACCESSED = 1 << 5  # A: set by the CPU on first use of the entry
ENTRY_DIRTY = 1 << 6  # D: set by the CPU on first write to the page (leaves only)
ENTRY_PAGE_SIZE = 1 << 7  # PS: in a PDPT or PD entry, maps a 1 GiB or 2 MiB page
ENTRY_PAT_4K = 1 << 7  # PAT: the same bit in a PT entry selects the memory type
ENTRY_GLOBAL = 1 << 8  # G: survives CR3 writes when CR4.PGE (leaves only)
ENTRY_PAT_LARGE = 1 << 12  # PAT of a 1 GiB or 2 MiB page
ENTRY_PROTECTION_KEY = 0xF << 59  # bits 62:59, with CR4.PKE (user) or CR4.PKS (supervisor)
ENTRY_NO_EXECUTE = 1 << 63  # XD: no instruction fetch, needs EFER.NXE (reserved without it)

_ADDRESS_BITS = 0x000F_FFFF_FFFF_F000  # bits 51:12: next table or 4 KiB frame
_PROTECTION_KEY_SHIFT = 59

# QEMU 7.2 target/i386/monitor.c follows tables and prints frames with these masks (50 bits).
_QEMU_TABLE_MASK = 0x3_FFFF_FFFF_F000
_QEMU_PTE_MASK = 0x3_FFFF_FFFF_F000
_QEMU_2M_MASK = 0x3_FFFF_FFE0_0000
_QEMU_1G_MASK = 0x3_FFFF_C000_0000
_QEMU_PROT_BITS = ENTRY_USER | ENTRY_WRITABLE | ENTRY_PRESENT

_ENTRY = struct.Struct("<Q")


# ---------------------------------------------------------------------------------------------
# Errors


class PagingError(WorkbenchError):
    """Root of the errors this module raises."""


class UnsupportedPagingModeError(PagingError):
    """The registers select a paging mode this model does not walk (32-bit or PAE)."""


class PhysicalMemoryError(PagingError, IndexError):
    """A read of guest physical memory outside RAM."""


class WalkLimitError(PagingError):
    """An enumeration was cut short by its work bound, so exact output cannot be produced."""


class MonitorOutputError(PagingError):
    """Text given as QEMU monitor output is not in the expected format."""


class PageFaultError(PagingError):
    """`translate` found no translation; the walk says where and why.

    Attributes:
        fault: what stopped the walk.
        walk: the whole walk, steps included.
    """

    def __init__(self, walk: Walk) -> None:
        assert walk.fault is not None
        super().__init__(walk.fault.message)
        self.fault = walk.fault
        self.walk = walk


# ---------------------------------------------------------------------------------------------
# Inputs: memory and registers


class PhysicalMemory(Protocol):
    """Guest RAM as the model reads it: paddrs 0 to size-1."""

    @property
    def size(self) -> int:
        """Bytes of guest RAM; paddrs at or above it are outside RAM."""
        ...

    def read(self, paddr: int, length: int) -> bytes:
        """Return `length` bytes at `paddr`; the range lies inside RAM."""
        ...


@runtime_checkable
class _LendingMemory(Protocol):
    """A `PhysicalMemory` that also lends a zero-copy window on its RAM, as `GuestRAM` and
    `BytesMemory` do: `leaves()` then reads all the tables of a level in one array operation."""

    def view(self, paddr: int, length: int) -> memoryview:
        """A read-only window on `length` bytes at `paddr`."""
        ...


class BytesMemory:
    """Guest RAM held in a bytes-like object, the paddr being the offset.

    Args:
        data: the RAM image; a memoryview is used without copying.
    """

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self._view = memoryview(data).cast("B")

    @property
    def size(self) -> int:
        """Bytes of RAM."""
        return len(self._view)

    def read(self, paddr: int, length: int) -> bytes:
        """Return a copy of `length` bytes at `paddr`.

        Raises:
            PhysicalMemoryError: the range is not inside RAM.
        """
        if paddr < 0 or length < 0 or paddr + length > len(self._view):
            raise PhysicalMemoryError(
                f"paddr range {paddr:#x}..{paddr + length:#x} lies outside RAM (0x0..{len(self._view):#x})"
            )
        return bytes(self._view[paddr : paddr + length])

    def view(self, paddr: int, length: int) -> memoryview:
        """A zero-copy, read-only window on `length` bytes at `paddr`.

        Raises:
            PhysicalMemoryError: the range is not inside RAM.
        """
        if paddr < 0 or length < 0 or paddr + length > len(self._view):
            raise PhysicalMemoryError(
                f"paddr range {paddr:#x}..{paddr + length:#x} lies outside RAM (0x0..{len(self._view):#x})"
            )
        return self._view[paddr : paddr + length].toreadonly()


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


# ---------------------------------------------------------------------------------------------
# Levels, modes, entries


class Level(enum.IntEnum):
    """A page-table level, numbered as the SDM does (PT is 1)."""

    PT = 1
    PD = 2
    PDPT = 3
    PML4 = 4
    PML5 = 5

    @property
    def shift(self) -> int:
        """Lowest vaddr bit this level's index selects: 12, 21, 30, 39, 48."""
        return 12 + 9 * (self.value - 1)

    @property
    def vaddr_bits(self) -> tuple[int, int]:
        """The (high, low) bits of the vaddr that index this level's table, e.g. (47, 39)."""
        return (self.shift + 8, self.shift)

    @property
    def entry_span(self) -> int:
        """Bytes of vaddr space one entry of this level covers."""
        return 1 << self.shift

    @property
    def entry_name(self) -> str:
        """The SDM's name for an entry of this level: PTE, PDE, PDPTE, PML4E, PML5E."""
        return {1: "PTE", 2: "PDE", 3: "PDPTE", 4: "PML4E", 5: "PML5E"}[self.value]

    @property
    def can_map_page(self) -> bool:
        """True for PT, PD and PDPT, whose entries can map a page."""
        return self.value <= 3


class PagingKind(enum.Enum):
    """Which paging structure the registers select."""

    OFF = "paging off"
    LEGACY_32 = "32-bit paging"
    PAE = "PAE paging"
    FOUR_LEVEL = "4-level paging"
    FIVE_LEVEL = "5-level paging"


@dataclass(frozen=True)
class PagingMode:
    """What the control registers say about translation.

    Attributes:
        kind: which paging structure is in use.
        cr3: the raw CR3.
        nxe: EFER.NXE, the XD bit is honoured (otherwise it is a reserved bit).
        write_protect: CR0.WP.
        pke: CR4.PKE, protection keys for user pages.
        pks: CR4.PKS, protection keys for supervisor pages.
        smep: CR4.SMEP.
        smap: CR4.SMAP.
        pcide: CR4.PCIDE.
        maxphyaddr: the CPU's physical-address width; entry bits 51:maxphyaddr are reserved.
    """

    kind: PagingKind
    cr3: int
    nxe: bool = True
    write_protect: bool = True
    pke: bool = False
    pks: bool = False
    smep: bool = False
    smap: bool = False
    pcide: bool = False
    maxphyaddr: int = 52

    @classmethod
    def from_registers(cls, regs: PagingRegisters, *, maxphyaddr: int = 52) -> PagingMode:
        """Work out the paging mode as the CPU (and QEMU's monitor) does.

        Long mode is read from EFER.LMA, as QEMU does, not from EFER.LME.

        Args:
            regs: the control registers.
            maxphyaddr: the CPU's physical-address width (CPUID 0x80000008), 36 to 52.
        """
        if not 36 <= maxphyaddr <= 52:
            raise PagingError(f"maxphyaddr must be between 36 and 52 bits, got {maxphyaddr}")
        if not regs.cr0 & CR0_PG:
            kind = PagingKind.OFF
        elif not regs.cr4 & CR4_PAE:
            kind = PagingKind.LEGACY_32
        elif not regs.efer & EFER_LMA:
            kind = PagingKind.PAE
        elif regs.cr4 & CR4_LA57:
            kind = PagingKind.FIVE_LEVEL
        else:
            kind = PagingKind.FOUR_LEVEL
        return cls(
            kind=kind,
            cr3=regs.cr3,
            nxe=bool(regs.efer & EFER_NXE),
            write_protect=bool(regs.cr0 & CR0_WP),
            pke=bool(regs.cr4 & CR4_PKE),
            pks=bool(regs.cr4 & CR4_PKS),
            smep=bool(regs.cr4 & CR4_SMEP),
            smap=bool(regs.cr4 & CR4_SMAP),
            pcide=bool(regs.cr4 & CR4_PCIDE),
            maxphyaddr=maxphyaddr,
        )

    @property
    def enabled(self) -> bool:
        """Paging is on."""
        return self.kind is not PagingKind.OFF

    @property
    def levels(self) -> tuple[Level, ...]:
        """The levels a walk visits, top first (empty when paging is off)."""
        if self.kind is PagingKind.FIVE_LEVEL:
            return (Level.PML5, Level.PML4, Level.PDPT, Level.PD, Level.PT)
        if self.kind is PagingKind.FOUR_LEVEL:
            return (Level.PML4, Level.PDPT, Level.PD, Level.PT)
        return ()

    @property
    def top_level(self) -> Level:
        """PML5 or PML4."""
        return Level.PML5 if self.kind is PagingKind.FIVE_LEVEL else Level.PML4

    @property
    def vaddr_bits(self) -> int:
        """Width of a linear address: 57 with 5-level paging, 48 with 4-level, 32 otherwise."""
        return {PagingKind.FIVE_LEVEL: 57, PagingKind.FOUR_LEVEL: 48}.get(self.kind, 32)

    @property
    def root_paddr(self) -> int:
        """Paddr of the top-level table, from CR3 bits M-1:12."""
        return self.cr3 & _ADDRESS_BITS & self.address_mask

    @property
    def address_mask(self) -> int:
        """Entry bits that hold a paddr: M-1:12."""
        return ((1 << self.maxphyaddr) - 1) & ~0xFFF

    def is_canonical(self, vaddr: int) -> bool:
        """True if bits 63 down to the top vaddr bit all equal that bit."""
        top = self.vaddr_bits - 1
        upper = vaddr >> top
        return upper in (0, (1 << (64 - top)) - 1)

    def canonical(self, vaddr: int) -> int:
        """Sign-extend a vaddr from its top bit (47 or 56), as QEMU's addr_canonical does."""
        top = self.vaddr_bits - 1
        if vaddr >> top & 1:
            return (vaddr | (U64 << self.vaddr_bits)) & U64
        return vaddr

    def require_long_mode(self) -> None:
        """Raise unless paging is off or 4- or 5-level.

        Raises:
            UnsupportedPagingModeError: 32-bit or PAE paging.
        """
        if self.kind in (PagingKind.LEGACY_32, PagingKind.PAE):
            raise UnsupportedPagingModeError(
                f"the CPU uses {self.kind.value}, which the workbench does not walk: it models "
                "the 4-level and 5-level paging of long mode (CR0.PG, CR4.PAE and EFER.LMA set). "
                "Look again once the guest has entered long mode."
            )

    def reserved_mask(self, level: Level, leaf: bool) -> int:
        """Bits that must be 0 in a present entry of this level (SDM Tables 4-15 to 4-20).

        Args:
            level: the entry's level.
            leaf: the entry maps a page (PS set in a PDPTE or PDE, or any PTE).
        """
        mask = ((1 << 52) - 1) & ~((1 << self.maxphyaddr) - 1)  # bits 51:M
        if not self.nxe:
            mask |= ENTRY_NO_EXECUTE
        if level >= Level.PML4:
            mask |= ENTRY_PAGE_SIZE
        elif leaf and level == Level.PDPT:
            mask |= ((1 << 30) - 1) & ~((1 << 13) - 1)  # bits 29:13
        elif leaf and level == Level.PD:
            mask |= ((1 << 21) - 1) & ~((1 << 13) - 1)  # bits 20:13
        return mask

    def describe(self) -> str:
        """One line: the kind, CR3 and the switches that change permissions."""
        words = [self.kind.value]
        if self.enabled:
            words.append(f"CR3={self.cr3:#018x}")
            words.append("NXE on" if self.nxe else "NXE off")
            words.append("WP on" if self.write_protect else "WP off")
            words += [name for name, on in (("PKE", self.pke), ("PKS", self.pks), ("SMEP", self.smep),
                                            ("SMAP", self.smap), ("PCIDE", self.pcide)) if on]
        return ", ".join(words)


@dataclass(frozen=True)
class Entry:
    """One raw page-table entry and the level it was found at.

    Attributes:
        raw: the 64-bit entry.
        level: the level of the table holding it.
    """

    raw: int
    level: Level

    @property
    def present(self) -> bool:
        """P."""
        return bool(self.raw & ENTRY_PRESENT)

    @property
    def writable(self) -> bool:
        """R/W."""
        return bool(self.raw & ENTRY_WRITABLE)

    @property
    def user(self) -> bool:
        """U/S."""
        return bool(self.raw & ENTRY_USER)

    @property
    def write_through(self) -> bool:
        """PWT."""
        return bool(self.raw & ENTRY_WRITE_THROUGH)

    @property
    def cache_disable(self) -> bool:
        """PCD."""
        return bool(self.raw & ENTRY_CACHE_DISABLE)

    @property
    def accessed(self) -> bool:
        """A."""
        return bool(self.raw & ENTRY_ACCESSED)

    @property
    def dirty(self) -> bool:
        """D (meaningful in leaves only)."""
        return bool(self.raw & ENTRY_DIRTY)

    @property
    def maps_page(self) -> bool:
        """The entry maps a page: any PTE, or a PDPTE/PDE with PS set."""
        return self.level == Level.PT or (self.level.can_map_page and bool(self.raw & ENTRY_PAGE_SIZE))

    @property
    def global_(self) -> bool:
        """G (meaningful in leaves only)."""
        return self.maps_page and bool(self.raw & ENTRY_GLOBAL)

    @property
    def pat(self) -> bool:
        """PAT: bit 7 of a PTE, bit 12 of a 1 GiB or 2 MiB page; False in tables."""
        if self.level == Level.PT:
            return bool(self.raw & ENTRY_PAT_4K)
        return self.maps_page and bool(self.raw & ENTRY_PAT_LARGE)

    @property
    def no_execute(self) -> bool:
        """XD (bit 63)."""
        return bool(self.raw & ENTRY_NO_EXECUTE)

    @property
    def protection_key(self) -> int:
        """Bits 62:59 (a protection key in leaves when CR4.PKE/PKS, otherwise ignored)."""
        return (self.raw >> _PROTECTION_KEY_SHIFT) & 0xF

    @property
    def page_size(self) -> int | None:
        """Size of the page it maps, or None if it points to a table."""
        return 1 << self.level.shift if self.maps_page else None

    @property
    def target_paddr(self) -> int:
        """Paddr of the next table, or of the frame for a page (bits 51:12, 51:21 or 51:30)."""
        if self.maps_page:
            return self.raw & _ADDRESS_BITS & ~(self.level.entry_span - 1)
        return self.raw & _ADDRESS_BITS

    @property
    def flag_names(self) -> tuple[str, ...]:
        """The SDM names of the set bits that mean something at this level, low bit first."""
        raw = self.raw
        names = [n for n, b in (("P", ENTRY_PRESENT), ("R/W", ENTRY_WRITABLE), ("U/S", ENTRY_USER),
                                ("PWT", ENTRY_WRITE_THROUGH), ("PCD", ENTRY_CACHE_DISABLE),
                                ("A", ENTRY_ACCESSED)) if raw & b]
        leaf = self.maps_page
        if leaf and raw & ENTRY_DIRTY:
            names.append("D")
        if raw & ENTRY_PAGE_SIZE:
            names.append("PAT" if self.level == Level.PT else "PS")
        if leaf and raw & ENTRY_GLOBAL:
            names.append("G")
        if leaf and self.level != Level.PT and raw & ENTRY_PAT_LARGE:
            names.append("PAT")
        if raw & ENTRY_NO_EXECUTE:
            names.append("XD")
        return tuple(names)

    @property
    def ignored_bits(self) -> int:
        """Set bits the CPU ignores here (free for software): 11:9, 58:52, and D/G in tables."""
        mask = (0x7 << 9) | (0x7F << 52)
        if not self.maps_page:
            mask |= ENTRY_DIRTY | ENTRY_GLOBAL
        return self.raw & mask

    def describe(self) -> str:
        """Return e.g. `PDE 0x0000000000200083 P R/W PS -> 2 MiB page 0x0000000000200000`."""
        if not self.present:
            return f"{self.level.entry_name} {self.raw:#018x} not present"
        if self.maps_page:
            target = f"{size_text(1 << self.level.shift)} page {self.target_paddr:#018x}"
        else:
            target = f"{Level(self.level - 1).name} table {self.target_paddr:#018x}"
        return f"{self.level.entry_name} {self.raw:#018x} {' '.join(self.flag_names)} -> {target}"


@dataclass(frozen=True)
class Permissions:
    """Effective access rights of a page, combined over every level of its walk.

    Attributes:
        user: ring 3 may access it (U/S set at every level).
        writable: writes are allowed (R/W set at every level). With CR0.WP clear the kernel
            may write read-only pages anyway.
        executable: instructions may be fetched (no level has XD, or EFER.NXE is off).
    """

    user: bool
    writable: bool
    executable: bool

    def __str__(self) -> str:
        """Return four letters: `u` or `-`, `r`, `w` or `-`, `x` or `-` (e.g. `-rw-`)."""
        return f"{'u' if self.user else '-'}r{'w' if self.writable else '-'}{'x' if self.executable else '-'}"

    def describe(self) -> str:
        """Return e.g. `kernel only, read/write, no-execute`."""
        return ", ".join((
            "user and kernel" if self.user else "kernel only",
            "read/write" if self.writable else "read-only",
            "executable" if self.executable else "no-execute",
        ))


def _permissions_table() -> tuple[Permissions, ...]:
    # Index: bit 0 = no-execute, bit 1 = R/W, bit 2 = U/S (the entry bits' own positions).
    return tuple(Permissions(user=bool(i & 4), writable=bool(i & 2), executable=not i & 1) for i in range(8))


_PERMISSIONS = _permissions_table()
_ALL_ALLOWED = Permissions(user=True, writable=True, executable=True)


def _effective(and_bits: int, or_bits: int, nxe: bool) -> Permissions:
    return _PERMISSIONS[(and_bits & 6) | (int(nxe) & (or_bits >> 63))]


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while building many small objects that all survive.

    Each generational collection would rescan every object built so far, which doubles or
    triples the time for tens of thousands of them; none of them can form a cycle. (Leaf rows
    avoid the problem differently: they hold only ints, so the collector untracks them.)
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def size_text(size: int) -> str:
    """`4 KiB`, `2 MiB`, `128 TiB`: the largest unit that fits, with one decimal when the size
    is not a whole number of it (`17.1 MiB`). The one size format of the workbench."""
    for unit, shift in (("EiB", 60), ("PiB", 50), ("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift:
            whole = size % (1 << shift) == 0
            return f"{size >> shift} {unit}" if whole else f"{size / (1 << shift):.1f} {unit}"
    return f"{size} B"


def _hex(value: int) -> str:
    """A 64-bit value for JavaScript, which loses precision above 2**53."""
    return f"{value:#018x}"


def _check_vaddr(vaddr: int) -> None:
    if not 0 <= vaddr <= U64:
        raise PagingError(f"vaddr must be a 64-bit unsigned value, got {vaddr!r}")


# ---------------------------------------------------------------------------------------------
# One walk


class FaultKind(enum.Enum):
    """Why a walk stopped."""

    NOT_PRESENT = "not present"
    RESERVED_BIT = "reserved bit set"
    NON_CANONICAL = "non-canonical address"
    OUTSIDE_RAM = "table outside RAM"


class EntryKind(enum.Enum):
    """What a present entry points to."""

    TABLE = "table"
    PAGE = "page"
    OUTSIDE_RAM = "table outside RAM"


@dataclass(frozen=True)
class PageFault:
    """Why a walk found no translation: a normal result to show, not an exception.

    Attributes:
        kind: the reason.
        vaddr: the vaddr being translated.
        level: the level whose entry stopped the walk (None for a non-canonical vaddr).
        table_paddr: the table holding that entry (or the table that could not be read).
        index: the entry's index in its table.
        entry: the raw entry (None if it could not be read).
        reserved_bits: for RESERVED_BIT, the reserved bits that are set.
        mode: the paging mode of the walk.
    """

    kind: FaultKind
    vaddr: int
    level: Level | None
    table_paddr: int | None
    index: int | None
    entry: int | None
    mode: PagingMode
    reserved_bits: int = 0

    @property
    def message(self) -> str:
        """What happened, for a student."""
        vaddr = f"vaddr {self.vaddr:#018x}"
        if self.kind is FaultKind.NON_CANONICAL and not self.mode.enabled:
            return (
                f"{vaddr} is beyond 4 GiB: with paging off the CPU is not in long mode and its "
                "linear addresses are 32 bits wide."
            )
        if self.kind is FaultKind.NON_CANONICAL:
            top = self.mode.vaddr_bits - 1
            return (
                f"{vaddr} is not canonical: with {self.mode.kind.value} bits 63:{top} must all equal "
                f"bit {top}. The CPU does not even start a page walk; the access raises a general "
                "protection fault (#GP), or a stack fault (#SS) for a stack access."
            )
        assert self.level is not None and self.table_paddr is not None
        where = f"the {self.level.name} table at paddr {self.table_paddr:#018x}"
        if self.kind is FaultKind.OUTSIDE_RAM:
            if self.index is None:
                return (
                    f"{vaddr} cannot be translated: CR3 points to {where}, which is outside guest RAM, "
                    "so the workbench cannot read it."
                )
            return (
                f"{vaddr} cannot be translated: {self.level.entry_name} {self.index} in {where} points "
                f"to a table at paddr {(self.entry or 0) & _ADDRESS_BITS:#018x}, outside guest RAM. "
                "The workbench cannot read it; the CPU would read whatever device, or nothing, is there."
            )
        entry = f"{self.level.entry_name} {self.index} in {where} (value {self.entry or 0:#018x})"
        if self.kind is FaultKind.NOT_PRESENT:
            return (
                f"{vaddr} is not mapped: {entry} has its present bit P clear. The CPU stops the walk "
                "there and raises a page fault (#PF, vector 14) with CR2 set to the vaddr."
            )
        bits = ", ".join(str(i) for i in range(64) if self.reserved_bits >> i & 1)
        extra = ""
        if self.reserved_bits & ENTRY_NO_EXECUTE and not self.mode.nxe:
            extra = " Bit 63 (XD) is reserved because EFER.NXE is off."
        return (
            f"{vaddr} faults: {entry} has reserved bit(s) {bits} set. The CPU raises a page fault "
            f"(#PF) with the RSVD bit set in the error code.{extra}"
        )


@dataclass(frozen=True)
class WalkStep:
    """One level of a walk: which entry the vaddr selected, and what it says.

    Attributes:
        level: the table's level.
        table_paddr: paddr of the table.
        index: the entry's index, the 9 vaddr bits `vaddr_bits` (high, low).
        vaddr_bits: which vaddr bits chose the entry, e.g. (47, 39).
        entry: the raw entry.
        reserved_bits: reserved bits set in it (0 when none).
        target: what the entry points to (None when it is not present).
        target_paddr: the next table or the frame.
        recursive: the target table is one this walk already used (a self-reference).
    """

    level: Level
    table_paddr: int
    index: int
    vaddr_bits: tuple[int, int]
    entry: Entry
    reserved_bits: int
    target: EntryKind | None
    target_paddr: int | None
    recursive: bool = False

    @property
    def entry_paddr(self) -> int:
        """Where the entry itself is in memory."""
        return self.table_paddr + 8 * self.index

    @property
    def flags(self) -> tuple[str, ...]:
        """SDM names of the set bits."""
        return self.entry.flag_names


@dataclass(frozen=True)
class Walk:
    """A whole translation of one vaddr, the way the CPU does it.

    Attributes:
        vaddr: the vaddr translated.
        mode: the paging mode.
        steps: one per level visited, top first (empty when paging is off).
        fault: why it stopped, or None if it reached a page.
        paddr: the translation, or None.
        page_size: size of the page reached.
        permissions: effective rights across all levels.
        protection_key: the leaf's key when CR4.PKE (user page) or CR4.PKS (kernel page) is on.
        paddr_in_ram: whether paddr is inside guest RAM (False for device memory such as the APIC).
    """

    vaddr: int
    mode: PagingMode
    steps: tuple[WalkStep, ...]
    fault: PageFault | None
    paddr: int | None
    page_size: int | None
    permissions: Permissions | None
    protection_key: int | None = None
    paddr_in_ram: bool | None = None

    @property
    def ok(self) -> bool:
        """The walk reached a page."""
        return self.fault is None

    @property
    def identity(self) -> bool:
        """Paging is off: the paddr is the vaddr itself."""
        return not self.mode.enabled

    @property
    def page_vaddr(self) -> int | None:
        """First vaddr of the page reached."""
        if self.page_size is None:
            return None
        return self.vaddr & ~(self.page_size - 1)

    @property
    def frame_paddr(self) -> int | None:
        """First paddr of the frame reached."""
        if self.paddr is None or self.page_size is None:
            return None
        return self.paddr & ~(self.page_size - 1)

    def to_json(self) -> dict[str, object]:
        """A JSON-safe dict for views: every address and entry as a hex string."""
        return {
            "vaddr": _hex(self.vaddr),
            "mode": self.mode.kind.value,
            "cr3": _hex(self.mode.cr3),
            "steps": [
                {
                    "level": step.level.name,
                    "table_paddr": _hex(step.table_paddr),
                    "index": step.index,
                    "vaddr_bits": list(step.vaddr_bits),
                    "entry": _hex(step.entry.raw),
                    "flags": list(step.flags),
                    "reserved_bits": _hex(step.reserved_bits),
                    "target": step.target.value if step.target is not None else None,
                    "target_paddr": _hex(step.target_paddr) if step.target_paddr is not None else None,
                    "recursive": step.recursive,
                }
                for step in self.steps
            ],
            "fault": None if self.fault is None else {
                "kind": self.fault.kind.value,
                "level": self.fault.level.name if self.fault.level is not None else None,
                "message": self.fault.message,
            },
            "paddr": _hex(self.paddr) if self.paddr is not None else None,
            "page_size": self.page_size,
            "permissions": str(self.permissions) if self.permissions is not None else None,
            "protection_key": self.protection_key,
            "paddr_in_ram": self.paddr_in_ram,
        }


def _read_entry(memory: PhysicalMemory, paddr: int) -> int | None:
    if paddr + 8 > memory.size:
        return None
    value: int = _ENTRY.unpack(bytes(memory.read(paddr, 8)))[0]
    return value


def walk(memory: PhysicalMemory, regs: PagingRegisters, vaddr: int, *, maxphyaddr: int = 52) -> Walk:
    """Translate one vaddr step by step, as the CPU would, and return the whole walk.

    Never raises for anything found in memory: a missing entry, a reserved bit, a table outside
    RAM or a non-canonical vaddr end the walk with a `PageFault` in `Walk.fault`.

    Args:
        memory: guest RAM.
        regs: CR0, CR3, CR4 and EFER.
        vaddr: the virtual (linear) address, 0 to 2**64-1.
        maxphyaddr: the CPU's physical-address width.

    Raises:
        UnsupportedPagingModeError: the CPU uses 32-bit or PAE paging.
        PagingError: vaddr is not a 64-bit unsigned value.
    """
    _check_vaddr(vaddr)
    mode = PagingMode.from_registers(regs, maxphyaddr=maxphyaddr)
    mode.require_long_mode()
    if not mode.enabled and not vaddr >> 32:
        return Walk(vaddr, mode, (), None, vaddr, None, _ALL_ALLOWED, None, vaddr < memory.size)
    if not mode.enabled or not mode.is_canonical(vaddr):
        fault = PageFault(FaultKind.NON_CANONICAL, vaddr, None, None, None, None, mode)
        return Walk(vaddr, mode, (), fault, None, None, None)
    return _walk_tables(memory, mode, vaddr)


def _walk_tables(memory: PhysicalMemory, mode: PagingMode, vaddr: int) -> Walk:
    """The table part of `walk`, for a canonical vaddr with 4- or 5-level paging."""
    steps: list[WalkStep] = []
    used_tables: list[int] = []
    table = mode.root_paddr
    and_bits = U64
    or_bits = 0
    fault: PageFault | None = None
    for level in mode.levels:
        index = (vaddr >> level.shift) & 0x1FF
        raw = _read_entry(memory, table + 8 * index)
        if raw is None:
            if steps:  # the previous entry points outside RAM: blame it
                prev = steps[-1]
                fault = PageFault(FaultKind.OUTSIDE_RAM, vaddr, prev.level, prev.table_paddr, prev.index,
                                  prev.entry.raw, mode)
            else:  # CR3 itself does
                fault = PageFault(FaultKind.OUTSIDE_RAM, vaddr, level, table, None, None, mode)
            break
        used_tables.append(table)
        entry = Entry(raw, level)
        if not raw & ENTRY_PRESENT:
            steps.append(WalkStep(level, table, index, level.vaddr_bits, entry, 0, None, None))
            fault = PageFault(FaultKind.NOT_PRESENT, vaddr, level, table, index, raw, mode)
            break
        leaf = entry.maps_page
        reserved = raw & mode.reserved_mask(level, leaf)
        target_paddr = entry.target_paddr & ((1 << mode.maxphyaddr) - 1)
        if leaf:
            kind = EntryKind.PAGE
        else:
            kind = EntryKind.TABLE if target_paddr < memory.size else EntryKind.OUTSIDE_RAM
        steps.append(WalkStep(level, table, index, level.vaddr_bits, entry, reserved, kind, target_paddr,
                              recursive=not leaf and target_paddr in used_tables))
        if reserved:
            fault = PageFault(FaultKind.RESERVED_BIT, vaddr, level, table, index, raw, mode, reserved)
            break
        and_bits &= raw
        or_bits |= raw
        if leaf:
            size = 1 << level.shift
            paddr = target_paddr | (vaddr & (size - 1))
            permissions = _effective(and_bits, or_bits, mode.nxe)
            key_on = mode.pke if permissions.user else mode.pks
            key = entry.protection_key if key_on else None
            return Walk(vaddr, mode, tuple(steps), None, paddr, size, permissions, key, paddr < memory.size)
        table = target_paddr
    assert fault is not None, "a PT entry always maps a page"
    return Walk(vaddr, mode, tuple(steps), fault, None, None, None)


def translate(memory: PhysicalMemory, regs: PagingRegisters, vaddr: int, *, maxphyaddr: int = 52) -> int:
    """Return the paddr a vaddr translates to.

    Args:
        memory: guest RAM.
        regs: CR0, CR3, CR4 and EFER.
        vaddr: the virtual address.
        maxphyaddr: the CPU's physical-address width.

    Raises:
        PageFaultError: the walk found no translation; `.walk` has every step.
        UnsupportedPagingModeError: the CPU uses 32-bit or PAE paging.
    """
    result = walk(memory, regs, vaddr, maxphyaddr=maxphyaddr)
    if result.fault is not None or result.paddr is None:
        raise PageFaultError(result)
    return result.paddr


def _format_step(step: WalkStep, width: int) -> str:
    head = (f"{step.level.name:<4}  table {step.table_paddr:#018x}  [{step.index:>3}] = "
            f"{step.entry.raw:#018x}  {' '.join(step.flags):<{width}}")
    if step.target is None:
        tail = "not present"
    elif step.target is EntryKind.PAGE:
        tail = f"-> {size_text(step.entry.page_size or 0)} frame {step.target_paddr or 0:#018x}"
    else:
        tail = f"-> {Level(step.level - 1).name} table {step.target_paddr or 0:#018x}"
        if step.target is EntryKind.OUTSIDE_RAM:
            tail += " (outside RAM)"
        if step.recursive:
            tail += " (recursive: a table this walk already used)"
    if step.reserved_bits:
        tail += f"  reserved bits {step.reserved_bits:#x} set"
    return f"{head}  {tail}".rstrip()


def _format_outcome(result: Walk) -> str:
    if result.fault is not None:
        where = f" at {result.fault.level.name}" if result.fault.level is not None else ""
        return f"fault{where}: {result.fault.message}"
    assert result.paddr is not None and result.permissions is not None
    line = (f"paddr {result.paddr:#018x}: {size_text(result.page_size or 0)} page, "
            f"{result.permissions.describe()}")
    if result.protection_key is not None:
        line += f", protection key {result.protection_key}"
    if result.paddr_in_ram is False:
        line += " (outside RAM: device memory)"
    return line


def format_walk(result: Walk) -> str:
    """Print a walk: CR3, the vaddr's bit fields, one line per level, then the frame or fault."""
    mode = result.mode
    lines = [f"vaddr {result.vaddr:#018x}, {mode.kind.value}"]
    if not mode.enabled:
        if result.fault is not None:
            lines.append(result.fault.message)
        else:
            lines.append(f"paging is off: paddr = vaddr = {result.vaddr:#018x} (identity)")
        return "\n".join(lines)
    lines[0] += f", CR3={mode.cr3:#018x} ({mode.top_level.name} table at paddr {mode.root_paddr:#018x})"
    if result.steps:
        fields = [f"63:{mode.vaddr_bits} sign"]
        fields += [f"{s.vaddr_bits[0]}:{s.vaddr_bits[1]} {s.level.name} {s.index}" for s in result.steps]
        if result.page_size is not None:
            offset = result.vaddr & (result.page_size - 1)
            fields.append(f"{result.page_size.bit_length() - 2}:0 offset {offset:#x}")
        lines.append("vaddr bits: " + " | ".join(fields))
    width = max((len(" ".join(s.flags)) for s in result.steps), default=0)
    lines += [_format_step(step, width) for step in result.steps]
    lines.append(_format_outcome(result))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Reading tables fast

_WORD = np.dtype("<u8")  # one page-table entry
_Words = npt.NDArray[np.uint64]
_Indices = npt.NDArray[np.intp]
_Links = npt.NDArray[np.int32]  # indices into a level's chain of table entries
_Bytes = npt.NDArray[np.uint8]
_Flags = npt.NDArray[np.bool_]
_T = TypeVar("_T", bound=np.generic)
_CHUNK_TABLES = 4096  # tables of one level read at once: at most 16 MiB of entries in flight


class _TableReader:
    """Reads 4 KiB tables: a batch at once as the rows of one array, or one at a time.

    When the memory lends a window on its RAM (`view`), all of RAM is one zero-copy array of
    tables and a batch is a single fancy-indexing copy. Otherwise (QMP copies, snapshots) each
    table is read through `read` once and kept. QEMU reads zeros where a table runs past the
    end of RAM; so do we.
    """

    def __init__(self, memory: PhysicalMemory) -> None:
        self.memory = memory
        self.size = memory.size
        self._ram: _Words | None = None
        whole = self.size // TABLE_SIZE  # tables wholly inside RAM
        if whole and isinstance(memory, _LendingMemory):
            window = memory.view(0, whole * TABLE_SIZE)
            self._ram = np.frombuffer(window, dtype=_WORD).reshape(whole, ENTRIES_PER_TABLE)
        self._lent = whole if self._ram is not None else 0  # pages readable from self._ram
        self._copies: dict[int, _Words] = {}
        self._entries: dict[int, tuple[int, ...]] = {}
        self._present: dict[int, list[tuple[int, int]]] = {}

    def table(self, paddr: int) -> _Words:
        """The 512 entries of the table at `paddr` (4 KiB aligned), read-only."""
        page = paddr // TABLE_SIZE
        if page < self._lent:
            assert self._ram is not None
            row: _Words = self._ram[page]
            return row
        cached = self._copies.get(paddr)
        if cached is None:
            data = bytes(self.memory.read(paddr, min(TABLE_SIZE, self.size - paddr))) if paddr < self.size else b""
            cached = self._copies[paddr] = np.frombuffer(data.ljust(TABLE_SIZE, b"\0"), dtype=_WORD)
        return cached

    def tables(self, paddrs: _Words) -> _Words:
        """The tables at `paddrs` (4 KiB aligned) as the rows of a new (n, 512) array."""
        pages = paddrs // TABLE_SIZE
        if self._ram is not None and (not len(pages) or int(pages.max()) < self._lent):
            rows: _Words = self._ram[pages]
            return rows
        out = np.empty((len(paddrs), ENTRIES_PER_TABLE), dtype=_WORD)
        for row, paddr in enumerate(paddrs.tolist()):
            out[row] = self.table(paddr)
        return out

    def entries(self, paddr: int) -> tuple[int, ...]:
        cached = self._entries.get(paddr)
        if cached is None:
            cached = self._entries[paddr] = tuple(self.table(paddr).tolist())
        return cached

    def present(self, paddr: int) -> list[tuple[int, int]]:
        cached = self._present.get(paddr)
        if cached is None:
            table = self.table(paddr)
            where = np.flatnonzero(table & ENTRY_PRESENT)
            cached = self._present[paddr] = list(zip(where.tolist(), table[where].tolist(), strict=True))
        return cached

    def present_count(self, paddr: int) -> int:
        return len(self.present(paddr))


def read_tables(memory: PhysicalMemory, paddrs: Sequence[int]) -> _Words:
    """The 4 KiB pages at `paddrs` (4 KiB aligned) as the rows of a new (n, 512) uint64 array.

    One copy when `memory` lends a window on its RAM, one `read` per page otherwise; a page
    beyond RAM reads as zeros. Snapshots keep the tables `leaves()` read with it.
    """
    return _TableReader(memory).tables(np.array(paddrs, dtype=_WORD).reshape(-1))


# ---------------------------------------------------------------------------------------------
# Every leaf


@dataclass(frozen=True, slots=True)
class Leaf:
    """One present page mapping: a line of QEMU's `info tlb`, with more detail.

    Attributes:
        vaddr: first vaddr of the page (canonical).
        paddr: first paddr of the frame.
        size: 4 KiB, 2 MiB or 1 GiB.
        entries: the raw entries on the path, top level first, the leaf last.
        permissions: effective rights across all levels.
        reserved: some entry on the path has a reserved bit set, so the CPU would fault
            (QEMU's `info tlb` and `info mem` still list the page).
    """

    vaddr: int
    paddr: int
    size: int
    entries: tuple[int, ...]
    permissions: Permissions
    reserved: bool = False

    @property
    def level(self) -> Level:
        """Level of the leaf entry: PT, PD or PDPT."""
        return Level((self.size.bit_length() - 13) // 9 + 1)

    @property
    def entry(self) -> Entry:
        """The leaf entry."""
        return Entry(self.entries[-1], self.level)

    @property
    def end(self) -> int:
        """First vaddr after the page."""
        return self.vaddr + self.size

    @property
    def accessed(self) -> bool:
        """A bit of the leaf entry."""
        return bool(self.entries[-1] & ENTRY_ACCESSED)

    @property
    def dirty(self) -> bool:
        """D bit of the leaf entry."""
        return bool(self.entries[-1] & ENTRY_DIRTY)

    @property
    def global_(self) -> bool:
        """G bit of the leaf entry."""
        return bool(self.entries[-1] & ENTRY_GLOBAL)

    @property
    def flags(self) -> tuple[str, ...]:
        """SDM names of the leaf entry's set bits."""
        return self.entry.flag_names

    def to_json(self) -> dict[str, object]:
        """A JSON-safe dict: addresses and entries as hex strings."""
        return {
            "vaddr": _hex(self.vaddr),
            "paddr": _hex(self.paddr),
            "size": self.size,
            "entries": [_hex(e) for e in self.entries],
            "permissions": str(self.permissions),
            "flags": list(self.flags),
            "reserved": self.reserved,
        }


# A leaf as a plain tuple: (vaddr, paddr, size, entries, rights, reserved), where rights
# indexes _PERMISSIONS (bit 0 no-execute, bit 1 R/W, bit 2 U/S). Rows hold only ints so that
# CPython's collector untracks them: 100,000 rows then cost it nothing.
_Row = tuple[int, int, int, tuple[int, ...], int, bool]


def _leaf(row: _Row) -> Leaf:
    return Leaf(row[0], row[1], row[2], row[3], _PERMISSIONS[row[4]], row[5])


@dataclass(frozen=True)
class TableProblem:
    """A present entry that the enumeration could not follow or that the CPU would refuse.

    Attributes:
        kind: OUTSIDE_RAM (points to a table beyond RAM) or RESERVED_BIT.
        level: level of the entry (of the top-level table for CR3).
        vaddr: first vaddr the entry covers.
        entry: the raw entry, or CR3.
        from_cr3: the problem is CR3 itself pointing outside RAM.
    """

    kind: FaultKind
    level: Level
    vaddr: int
    entry: int
    from_cr3: bool = False

    @property
    def message(self) -> str:
        """What is wrong, for a student."""
        name = self.level.entry_name
        if self.from_cr3:
            return (f"CR3 {self.entry:#018x} points to a {self.level.name} table at paddr "
                    f"{self.entry & _ADDRESS_BITS:#018x}, outside guest RAM: there are no page tables to read")
        if self.kind is FaultKind.OUTSIDE_RAM:
            return (f"{name} {self.entry:#018x} for vaddr {self.vaddr:#018x} points to a table at paddr "
                    f"{self.entry & _ADDRESS_BITS:#018x}, outside guest RAM")
        return f"{name} {self.entry:#018x} for vaddr {self.vaddr:#018x} has reserved bits set"


def _frozen(array: npt.NDArray[_T]) -> npt.NDArray[_T]:
    array.flags.writeable = False
    return array


# Per leaf level (1 to 3): the page size, and the entry bits that hold the frame.
_PAGE_SIZES = _frozen(np.array([0, PAGE_SIZE_4K, PAGE_SIZE_2M, PAGE_SIZE_1G], _WORD))
_FRAME_MASKS = _frozen(np.array([0, *(_ADDRESS_BITS & ~(size - 1) for size in _PAGE_SIZES[1:].tolist())], _WORD))


@dataclass(frozen=True, eq=False)
class _Columns:
    """The leaves as columns, one element per leaf, in vaddr order.

    A leaf's path of table entries is not copied per leaf: `link` indexes the table entry
    above it in `chain[level + 1]`, whose own link indexes the entry above that, up to the top.
    """

    vaddr: _Words
    pte: _Words  # the leaf entry
    level: _Bytes  # 1, 2 or 3
    rights: _Bytes  # as in _Row
    reserved: _Flags
    link: _Links
    chain: dict[int, tuple[_Words, _Links]]  # level: (entries followed to a table, their links)

    @classmethod
    def empty(cls) -> _Columns:
        words = _frozen(np.zeros(0, _WORD))
        return cls(words, words, _frozen(np.zeros(0, np.uint8)), _frozen(np.zeros(0, np.uint8)),
                   _frozen(np.zeros(0, np.bool_)), _frozen(np.zeros(0, np.int32)), {})


@dataclass(frozen=True, eq=False)
class Leaves(Sequence[Leaf]):
    """Every present leaf in vaddr order, like QEMU's `info tlb`.

    The leaves are kept as numpy columns (`vaddrs`, `paddrs`, `sizes`, `ptes`, `rights`,
    `reserved`) and turned into `Leaf` objects, or into `rows`, only when asked for, so that
    enumerating a large guest stays fast.

    Attributes:
        mode: the paging mode they were read with.
        columns: the leaves, column by column (internal; use the properties).
        problems: entries that could not be followed, or that have reserved bits.
        truncated: the enumeration stopped at its work bound; the leaves are incomplete.
        entries_examined: present entries looked at (the quantity the bound limits).
        table_paddrs: the tables the enumeration read, in paddr order.
    """

    mode: PagingMode
    columns: _Columns = field(default_factory=_Columns.empty, repr=False)
    problems: tuple[TableProblem, ...] = ()
    truncated: bool = False
    entries_examined: int = 0
    table_paddrs: tuple[int, ...] = ()

    @property
    def vaddrs(self) -> _Words:
        """First vaddr of each page (read-only array)."""
        return self.columns.vaddr

    @functools.cached_property
    def sizes(self) -> _Words:
        """Size of each page: 4 KiB, 2 MiB or 1 GiB (read-only array)."""
        return _frozen(_PAGE_SIZES[self.columns.level])

    @functools.cached_property
    def paddrs(self) -> _Words:
        """First paddr of each frame (read-only array)."""
        return _frozen(self.columns.pte & _FRAME_MASKS[self.columns.level])

    @property
    def ptes(self) -> _Words:
        """The leaf entry of each page (read-only array)."""
        return self.columns.pte

    @property
    def rights(self) -> npt.NDArray[np.uint8]:
        """Effective rights of each page: bit 0 no-execute, bit 1 R/W, bit 2 U/S (read-only array)."""
        return self.columns.rights

    @property
    def reserved(self) -> npt.NDArray[np.bool_]:
        """Whether each page's path has a reserved bit set (read-only array)."""
        return self.columns.reserved

    @functools.cached_property
    def rows(self) -> tuple[_Row, ...]:
        """One tuple per leaf: vaddr, paddr, size, entries, rights index, reserved (built on first use)."""
        c = self.columns
        with _collector_paused():
            return tuple(zip(c.vaddr.tolist(), self.paddrs.tolist(), self.sizes.tolist(), self._paths(),
                             c.rights.tolist(), c.reserved.tolist(), strict=True))

    def _paths(self) -> list[tuple[int, ...]]:
        """Each leaf's entries, top level first, the leaf last."""
        c = self.columns
        top = self.mode.top_level.value
        paths: list[tuple[int, ...]] = [()] * len(c.vaddr)
        for level in np.unique(c.level).tolist():
            where = np.flatnonzero(c.level == level)
            columns = [c.pte[where]]
            link = c.link[where]
            for above in range(level + 1, top + 1):
                values, links = c.chain[above]
                columns.append(values[link])
                link = links[link]
            for at, path in zip(where.tolist(), zip(*(col.tolist() for col in reversed(columns)), strict=True),
                                strict=True):
                paths[at] = path
        return paths

    def _leaf_at(self, index: int) -> Leaf:
        c = self.columns
        level = int(c.level[index])
        path = [int(c.pte[index])]
        link = int(c.link[index])
        for above in range(level + 1, self.mode.top_level.value + 1):
            values, links = c.chain[above]
            path.append(int(values[link]))
            link = int(links[link])
        size = 1 << (9 * level + 3)
        return Leaf(int(c.vaddr[index]), path[0] & _ADDRESS_BITS & ~(size - 1), size, tuple(reversed(path)),
                    _PERMISSIONS[int(c.rights[index])], bool(c.reserved[index]))

    def __len__(self) -> int:
        """Number of leaves."""
        return len(self.columns.vaddr)

    @overload
    def __getitem__(self, index: int) -> Leaf: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Leaf]: ...

    def __getitem__(self, index: int | slice) -> Leaf | Sequence[Leaf]:
        """A leaf, or a list of leaves for a slice."""
        if isinstance(index, slice):
            return [self._leaf_at(i) for i in range(*index.indices(len(self)))]
        position = operator.index(index)
        if position < 0:
            position += len(self)
        if not 0 <= position < len(self):
            raise IndexError(f"leaf index {index} out of range for {len(self)} leaves")
        return self._leaf_at(position)

    def __iter__(self) -> Iterator[Leaf]:
        """Every leaf in vaddr order."""
        for row in self.rows:
            yield _leaf(row)

    def __eq__(self, other: object) -> bool:
        """Same mode, leaves (paths included), problems and bound."""
        if not isinstance(other, Leaves):
            return NotImplemented
        return self is other or (
            (self.mode, self.problems, self.truncated, self.entries_examined, len(self))
            == (other.mode, other.problems, other.truncated, other.entries_examined, len(other))
            and self.rows == other.rows
        )

    def __hash__(self) -> int:
        """Consistent with ==."""
        return hash((self.mode, self.problems, self.truncated, self.entries_examined, len(self)))

    def __repr__(self) -> str:
        """Deterministic and short: kind and count."""
        more = ", truncated" if self.truncated else ""
        return f"<Leaves: {len(self)} pages, {self.mode.kind.value}{more}>"


def leaves(
    memory: PhysicalMemory,
    regs: PagingRegisters,
    *,
    maxphyaddr: int = 52,
    max_entries: int = DEFAULT_MAX_ENTRIES,
) -> Leaves:
    """Enumerate every present leaf reachable from CR3, in vaddr order.

    Follows the tables exactly as QEMU's `info tlb` does (so the two agree line for line):
    only P decides whether to descend, PS in a PML4E/PML5E is ignored, and tables are located
    with QEMU's 50-bit mask. Leaves whose path has reserved bits are kept and marked; entries
    pointing outside RAM become `problems`. The work bound is described in the module doc.

    Args:
        memory: guest RAM.
        regs: CR0, CR3, CR4 and EFER.
        maxphyaddr: the CPU's physical-address width (for reserved-bit marks).
        max_entries: stop after examining this many present entries.

    Raises:
        UnsupportedPagingModeError: the CPU uses 32-bit or PAE paging.
    """
    mode = PagingMode.from_registers(regs, maxphyaddr=maxphyaddr)
    mode.require_long_mode()
    if not mode.enabled:
        return Leaves(mode)
    return _Enumerator(_TableReader(memory), mode, max_entries).run()


@dataclass(frozen=True, eq=False)
class _Frontier:
    """The tables of one level still to read, in vaddr order, and what their paths carry."""

    table: _Words  # paddr
    base: _Words  # first vaddr its entries cover
    rights: _Bytes  # bit 0: some entry above has XD; bits 1, 2: every entry above has R/W, U/S
    reserved: _Flags  # some entry above has a reserved bit
    link: _Links  # the entry pointing to it, in the chain of the level above (-1 for CR3)


@dataclass(frozen=True, eq=False)
class _Present:
    """Present entries of one level, in vaddr order, and what their paths carry."""

    vaddr: _Words  # first vaddr the entry covers
    entry: _Words
    rights: _Bytes  # as _Frontier.rights, this entry included
    reserved_above: _Flags
    link: _Links  # the entry above it, in the chain of the level above

    def __getitem__(self, which: _Flags) -> _Present:
        return _Present(self.vaddr[which], self.entry[which], self.rights[which], self.reserved_above[which],
                        self.link[which])


# A run of leaves of one level, in vaddr order: vaddr, entry, level, rights, reserved, link.
_LeafRun = tuple[_Words, _Words, int, _Bytes, _Flags, _Links]


class _Enumerator:
    """The enumeration behind `leaves()`: the hot path of the module.

    QEMU's `info tlb` goes depth first. Here each level is done at once, over all its tables
    (the frontier) in a few array operations: the frontier is kept in vaddr order, so each
    level's leaves come out in vaddr order, and merging the levels gives QEMU's order.

    The work bound counts present entries table by table in depth-first order (QEMU's, which is
    vaddr order with a table before its children), and the result is what a depth-first walk
    that stops at the first table taking the count over `max_entries` would have found. Level by
    level, a level's tables beyond the point where that level's own count exceeds the bound
    come after that stopping table, so they are not read: no level decodes more than about
    `max_entries` entries. `stopping_table` then finds the exact stopping point.

    Arrays are updated in place where they can be: a large guest's columns are megabytes, and
    fresh memory costs page faults.
    """

    def __init__(self, reader: _TableReader, mode: PagingMode, max_entries: int) -> None:
        self.reader = reader
        self.mode = mode
        self.max_entries = max_entries
        self.top = mode.top_level.value
        self.rights_mask = np.uint8(7 if mode.nxe else 6)  # XD counts only with EFER.NXE
        self.reserved_table = {lv.value: np.uint64(mode.reserved_mask(lv, False)) for lv in Level}
        self.reserved_leaf = {lv.value: np.uint64(mode.reserved_mask(lv, True)) for lv in Level}
        self.sign = np.uint64(U64 & ~((1 << mode.vaddr_bits) - 1))
        # Found so far, in pieces: per level and chunk of tables, each in vaddr order.
        self.leaf_runs: list[_LeafRun] = []
        self.problem_parts: list[tuple[_Words, int, int, _Words]] = []  # vaddr, level, kind, entry
        self.chain: dict[int, tuple[_Words, _Links]] = {}
        self.visits: list[tuple[_Words, int, _Indices]] = []  # tables read: bases, level, present counts
        self.tables_read: list[_Words] = []

    def run(self) -> Leaves:
        mode = self.mode
        root = mode.cr3 & _QEMU_TABLE_MASK  # as QEMU's monitor locates it
        if root >= self.reader.size:
            problem = TableProblem(FaultKind.OUTSIDE_RAM, mode.top_level, 0, mode.cr3, from_cr3=True)
            return Leaves(mode, problems=(problem,))
        frontier = _Frontier(np.array([root], _WORD), np.zeros(1, _WORD), np.array([6], np.uint8),
                             np.zeros(1, np.bool_), np.array([-1], np.int32))
        for level in range(self.top, 0, -1):
            frontier = self.read_level(frontier, level)
        return self.result()

    def read_level(self, frontier: _Frontier, level: int) -> _Frontier:
        """Read the frontier's tables (up to the bound); keep leaves and problems; return the next frontier."""
        examined = 0
        below: list[_Frontier] = []
        followed: list[tuple[_Words, _Links]] = []
        chain_length = 0
        for start in range(0, len(frontier.table), _CHUNK_TABLES):
            # Each distinct table is read once, however many entries point to it (Linux shares
            # page tables, and garbage tables can all point to the same few).
            distinct, which = np.unique(frontier.table[start : start + _CHUNK_TABLES], return_inverse=True)
            rows = self.reader.tables(distinct)
            present = (rows.view(np.uint8)[:, ::8] & 1).view(np.bool_)  # P: bit 0 of each entry's low byte
            distinct_counts = np.count_nonzero(present, axis=1)
            counts = distinct_counts[which]
            cumulative = examined + np.cumsum(counts)
            over = bool(cumulative[-1] > self.max_entries)
            if over:  # later tables of this level come after the depth-first stopping point
                keep = int(np.searchsorted(cumulative, self.max_entries, side="right")) + 1
                which, counts = which[:keep], counts[:keep]
            examined = int(cumulative[len(counts) - 1])
            self.tables_read.append(distinct)
            self.visits.append((frontier.base[start : start + len(counts)], level, counts))
            # The present entries of the distinct tables, table after table (as positions in
            # `rows`); then those of each table of the frontier, in frontier order, picked out.
            flat = np.flatnonzero(present)
            first_of_distinct = np.cumsum(distinct_counts) - distinct_counts
            first_of_table = np.cumsum(counts) - counts
            picked = np.repeat(first_of_distinct[which] - first_of_table, counts)
            picked += np.arange(len(picked))
            flat = np.take(flat, picked)
            entries = np.take(rows, flat)
            index = np.bitwise_and(flat, ENTRIES_PER_TABLE - 1, out=flat)
            tables = slice(start, start + len(counts))
            part = self.decode(frontier, level, (tables, counts), index, entries, chain_start=chain_length)
            if part is not None:
                below.append(part[0])
                followed.append(part[1])
                chain_length += len(part[1][0])
            if over:
                break
        if followed:
            self.chain[level] = (np.concatenate([f[0] for f in followed]), np.concatenate([f[1] for f in followed]))
        if not below:
            return _Frontier(np.zeros(0, _WORD), np.zeros(0, _WORD), np.zeros(0, np.uint8), np.zeros(0, np.bool_),
                             np.zeros(0, np.int32))
        return _Frontier(*(np.concatenate([getattr(b, name) for b in below])
                           for name in ("table", "base", "rights", "reserved", "link")))

    def decode(self, frontier: _Frontier, level: int, owners: tuple[slice, _Indices], index: _Indices,
               entries: _Words, *, chain_start: int) -> tuple[_Frontier, tuple[_Words, _Links]] | None:
        """Decode present entries of one level, given the frontier tables holding them (a slice
        of the frontier and the number of entries of each) and their indices: keep the leaves
        and problems, and return the tables below with the entries leading there."""
        tables, counts = owners
        vaddr = index.astype(_WORD)
        vaddr <<= np.uint64(12 + 9 * (level - 1))
        vaddr += np.repeat(frontier.base[tables], counts)
        if level == self.top:
            vaddr[index >= 256] |= self.sign
        # Rights in a byte: R/W and U/S are bits 1 and 2 of an entry's low byte, XD bit 7 of its high byte.
        entry_bytes = entries.view(np.uint8)
        rights = np.repeat(frontier.rights[tables], counts)
        rights &= entry_bytes[::8]
        rights |= entry_bytes[7::8] >> 7
        found = _Present(vaddr, entries, rights, np.repeat(frontier.reserved[tables], counts),
                         np.repeat(frontier.link[tables], counts))
        if level == 1:
            self.keep_leaves(level, found)
            return None
        if level <= 3:
            leaf = (entry_bytes[::8] & ENTRY_PAGE_SIZE).view(np.bool_)
            if leaf.any():
                self.keep_leaves(level, found[leaf])
                found = found[~leaf]
        own_reserved = self.reserved_bits(found.entry, self.reserved_table[level])
        child = found.entry & np.uint64(_QEMU_TABLE_MASK)
        outside = child >= np.uint64(self.reader.size)
        if own_reserved.any():
            self.problem_parts.append((found.vaddr[own_reserved], level, 0, found.entry[own_reserved]))
        if outside.any():
            self.problem_parts.append((found.vaddr[outside], level, 1, found.entry[outside]))
            inside = ~outside
            found, child, own_reserved = found[inside], child[inside], own_reserved[inside]
        below = _Frontier(child, found.vaddr, found.rights, found.reserved_above | own_reserved,
                          np.arange(chain_start, chain_start + len(child), dtype=np.int32))
        return below, (found.entry, found.link)

    def keep_leaves(self, level: int, found: _Present) -> None:
        reserved = self.reserved_bits(found.entry, self.reserved_leaf[level])
        reserved |= found.reserved_above
        rights = np.bitwise_and(found.rights, self.rights_mask, out=found.rights)
        self.leaf_runs.append((found.vaddr, found.entry, level, rights, reserved, found.link))

    @staticmethod
    def reserved_bits(entries: _Words, mask: np.uint64) -> _Flags:
        """Which entries have a bit of `mask` set (often none can: with EFER.NXE and 52
        physical-address bits a 4 KiB page has no reserved bit)."""
        if not mask:
            return np.zeros(len(entries), np.bool_)
        marked: _Flags = (entries & mask) != 0
        return marked

    def stopping_table(self) -> tuple[int, int, int] | None:
        """Where a depth-first walk would stop: (its base vaddr, level, entries examined), or None."""
        counts = np.concatenate([counts for _bases, _level, counts in self.visits])
        if int(counts.sum()) <= self.max_entries:
            return None
        bases = np.concatenate([bases for bases, _level, _counts in self.visits])
        levels = np.concatenate([np.full(len(c), level, np.intp) for _b, level, c in self.visits])
        order = np.lexsort((-levels, bases))  # depth-first: by vaddr, a table before its children
        cumulative = np.cumsum(counts[order])
        at = int(np.searchsorted(cumulative, self.max_entries, side="right"))
        return int(bases[order[at]]), int(levels[order[at]]), int(cumulative[at])

    def result(self) -> Leaves:
        stop = self.stopping_table()
        examined = stop[2] if stop is not None else sum(int(counts.sum()) for _b, _l, counts in self.visits)
        tables = tuple(np.unique(np.concatenate(self.tables_read)).tolist())
        return Leaves(self.mode, self.columns(stop), self.problems(stop), stop is not None, examined, tables)

    def columns(self, stop: tuple[int, int, int] | None) -> _Columns:
        runs = self.leaf_runs
        if stop is not None:  # the leaves a depth-first walk found before it stopped: a prefix of each run
            runs = [(run[0][:end], run[1][:end], run[2], run[3][:end], run[4][:end], run[5][:end])
                    for run in runs for end in [int(np.searchsorted(run[0], np.uint64(stop[0])))]]
        runs = [run for run in runs if len(run[0])]
        if not runs:
            return _Columns.empty()
        vaddr, pte, level, rights, reserved, link = _merge_runs(runs)
        return _Columns(_frozen(vaddr), _frozen(pte), _frozen(level), _frozen(rights), _frozen(reserved),
                        _frozen(link), self.chain)

    def problems(self, stop: tuple[int, int, int] | None) -> tuple[TableProblem, ...]:
        parts = self.problem_parts
        if not parts:
            return ()
        vaddr = np.concatenate([p[0] for p in parts])
        level = np.concatenate([np.full(len(p[0]), p[1], np.intp) for p in parts])
        kind = np.concatenate([np.full(len(p[0]), p[2], np.intp) for p in parts])
        entry = np.concatenate([p[3] for p in parts])
        if stop is not None:  # a depth-first walk reports an entry before reading the table below it
            keep = (vaddr < stop[0]) | ((vaddr == stop[0]) & (level > stop[1]))
            vaddr, level, kind, entry = vaddr[keep], level[keep], kind[keep], entry[keep]
        order = np.lexsort((kind, -level, vaddr))  # depth-first order; reserved bits before outside RAM
        kinds = (FaultKind.RESERVED_BIT, FaultKind.OUTSIDE_RAM)
        return tuple(TableProblem(kinds[k], Level(lv), v, e) for v, lv, k, e in zip(
            vaddr[order].tolist(), level[order].tolist(), kind[order].tolist(), entry[order].tolist(), strict=True))


def _merge_runs(runs: list[_LeafRun]) -> tuple[_Words, _Words, _Bytes, _Bytes, _Flags, _Links]:
    """Merge runs of leaves, each in vaddr order, into columns in vaddr order (vaddrs are distinct).

    The largest run (a guest's 4 KiB pages) fills the places the others leave free; the others
    (its huge pages, usually few) are placed by binary search.
    """
    if len(runs) == 1:
        vaddr, entry, level, rights, reserved, link = runs[0]
        return vaddr, entry, np.full(len(vaddr), level, np.uint8), rights, reserved, link
    largest = max(range(len(runs)), key=lambda r: len(runs[r][0]))
    total = sum(len(run[0]) for run in runs)
    places: list[tuple[_LeafRun, _Indices]] = []
    free = np.ones(total, np.bool_)
    for r, run in enumerate(runs):
        if r != largest:
            place = np.arange(len(run[0]))
            for q, other in enumerate(runs):
                if q != r:
                    place += np.searchsorted(other[0], run[0])
            free[place] = False
            places.append((run, place))
    out = (np.empty(total, _WORD), np.empty(total, _WORD), np.empty(total, np.uint8), np.empty(total, np.uint8),
           np.empty(total, np.bool_), np.empty(total, np.int32))
    columns: tuple[npt.NDArray[Any], ...] = out
    for column, merged in enumerate(columns):
        merged[free] = runs[largest][column]
        for run, place in places:
            merged[place] = run[column]
    return out


def vaddrs_for_frame(found: Leaves, paddr: int) -> tuple[int, ...]:
    """Every vaddr at which the byte at `paddr` is visible, in vaddr order.

    Pass a frame-aligned paddr to get the vaddrs of the frame's first byte. Leaves marked
    `reserved` are skipped: the CPU would fault on them.
    """
    if not 0 <= paddr <= U64:
        return ()
    frames = found.paddrs
    hits = (frames <= paddr) & (paddr < frames + found.sizes) & ~found.reserved
    return tuple((found.vaddrs[hits] + (paddr - frames[hits])).tolist())


# ---------------------------------------------------------------------------------------------
# Coalesced ranges (`info mem`)


@dataclass(frozen=True)
class MappedRange:
    """Contiguous vaddrs with the same effective rights, like one line of QEMU's `info mem`.

    Attributes:
        vaddr: first vaddr.
        size: bytes.
        user: ring 3 may access.
        writable: writes are allowed.
        executable: True or False when the ranges were split on execute rights too; None when
            they were coalesced QEMU's way (which ignores XD), so the range may mix both.
    """

    vaddr: int
    size: int
    user: bool
    writable: bool
    executable: bool | None = None

    @property
    def end(self) -> int:
        """First vaddr after the range."""
        return self.vaddr + self.size

    @property
    def permissions_text(self) -> str:
        """Four letters: `u`/`-`, `r`, `w`/`-`, `x`/`-` (or `?` when execute rights are mixed)."""
        x = "?" if self.executable is None else ("x" if self.executable else "-")
        return f"{'u' if self.user else '-'}r{'w' if self.writable else '-'}{x}"

    def to_json(self) -> dict[str, object]:
        """A JSON-safe dict; addresses and the size as hex strings (a size can reach 2**64)."""
        return {"vaddr": _hex(self.vaddr), "end": _hex(self.end), "size": _hex(self.size),
                "permissions": self.permissions_text}


class MappedRanges(Sequence[MappedRange]):
    """What `mappings()` returns: a tuple-like sequence of `MappedRange`, each made when looked at.

    A large guest has tens of thousands of ranges; they are kept as arrays. It compares equal
    to a tuple of the same ranges (and to another `MappedRanges`); a slice is a `MappedRanges`.
    """

    __slots__ = ("_keys", "_sizes", "_split", "_starts")

    def __init__(self, starts: _Words, sizes: _Words, keys: npt.NDArray[np.uint8], split_on_execute: bool) -> None:
        self._starts = starts
        self._sizes = sizes
        self._keys = keys  # rights as in Leaves.rights, no-execute bit cleared unless split
        self._split = split_on_execute

    def _range(self, start: int, size: int, key: int) -> MappedRange:
        return MappedRange(start, size, bool(key & 4), bool(key & 2), not key & 1 if self._split else None)

    def __len__(self) -> int:
        """Number of ranges."""
        return len(self._starts)

    @overload
    def __getitem__(self, index: int) -> MappedRange: ...

    @overload
    def __getitem__(self, index: slice) -> MappedRanges: ...

    def __getitem__(self, index: int | slice) -> MappedRange | MappedRanges:
        """A range, or the ranges of a slice."""
        if isinstance(index, slice):
            return MappedRanges(self._starts[index], self._sizes[index], self._keys[index], self._split)
        position = operator.index(index)
        if position < 0:
            position += len(self)
        if not 0 <= position < len(self):
            raise IndexError(f"range index {index} out of range for {len(self)} ranges")
        return self._range(int(self._starts[position]), int(self._sizes[position]), int(self._keys[position]))

    def __iter__(self) -> Iterator[MappedRange]:
        """Every range in vaddr order."""
        for start, size, key in zip(self._starts.tolist(), self._sizes.tolist(), self._keys.tolist(), strict=True):
            yield self._range(start, size, key)

    def __eq__(self, other: object) -> bool:
        """Equal to a tuple of the same ranges, or to another MappedRanges holding them."""
        if isinstance(other, MappedRanges):
            return len(self) == len(other) and (not len(self) or (
                self._split == other._split and bool(np.array_equal(self._starts, other._starts))
                and bool(np.array_equal(self._sizes, other._sizes)) and bool(np.array_equal(self._keys, other._keys))))
        if isinstance(other, tuple):
            return len(self) == len(other) and tuple(self) == other
        return NotImplemented

    def __hash__(self) -> int:
        """That of the equal tuple."""
        return hash(tuple(self))

    def __repr__(self) -> str:
        """That of the equal tuple."""
        return repr(tuple(self))


def mappings(found: Leaves, *, split_on_execute: bool = False) -> MappedRanges:
    """Coalesce leaves into ranges with QEMU's `info mem` rule.

    Neighbouring pages merge when the second starts where the first ends and both have the same
    effective U/S and R/W. QEMU also merges across the non-canonical hole (its addresses are not
    yet sign-extended when it compares them); these ranges never do: `parse_info_mem` splits
    such a QEMU line in two, so `parse_info_mem(format_info_mem(...)) == mappings(leaves(...))`.

    Args:
        found: the result of `leaves()`.
        split_on_execute: also require equal execute rights, so each range says whether it is
            executable (QEMU's `info mem` does not).
    """
    vaddr = found.vaddrs
    end = vaddr + found.sizes  # 0 after the last page of the address space, never a next vaddr
    keys = found.rights & np.uint8(7 if split_on_execute else 6)
    starts_range = np.ones(len(vaddr), np.bool_)
    starts_range[1:] = (vaddr[1:] != end[:-1]) | (keys[1:] != keys[:-1])
    first = np.flatnonzero(starts_range)
    last = np.empty_like(first)
    last[:-1] = first[1:] - 1
    last[-1:] = len(vaddr) - 1
    starts = vaddr[first]
    sizes = end[last]
    sizes -= starts
    return MappedRanges(starts, sizes, keys[first], split_on_execute)


def format_mappings(ranges: Iterable[MappedRange]) -> str:
    """A table of ranges: start, end, size and rights (`u`, `r`, `w`, `x`)."""
    lines = [f"{'vaddr':<18}  {'end':<18}  {'size':>10}  rights"]
    for r in ranges:
        lines.append(f"{r.vaddr:#018x}  {r.end:#018x}  {size_text(r.size):>10}  {r.permissions_text}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# QEMU's `info tlb` and `info mem`, byte for byte


@dataclass(frozen=True)
class TlbLine:
    """One line of QEMU's `info tlb`: `vaddr: paddr XGPDACTUW`.

    Attributes:
        vaddr: the page's canonical vaddr.
        paddr: the leaf entry masked as QEMU masks it (frame bits 49:12, 49:21 or 49:30).
        flags: nine characters, each a letter or `-`: X (XD), G, P (PS, `-` for 4 KiB pages),
            D, A, C (PCD), T (PWT), U (U/S), W (R/W). Leaf bits only, not effective rights.
    """

    vaddr: int
    paddr: int
    flags: str

    def __str__(self) -> str:
        """The line as QEMU prints it, without the line ending."""
        return f"{self.vaddr:016x}: {self.paddr:016x} {self.flags}"


_TLB_LETTERS = (
    ("X", ENTRY_NO_EXECUTE), ("G", ENTRY_GLOBAL), ("P", ENTRY_PAGE_SIZE), ("D", ENTRY_DIRTY),
    ("A", ENTRY_ACCESSED), ("C", ENTRY_CACHE_DISABLE), ("T", ENTRY_WRITE_THROUGH), ("U", ENTRY_USER),
    ("W", ENTRY_WRITABLE),
)


def _tlb_flags(pte: int) -> str:
    return "".join(letter if pte & bit else "-" for letter, bit in _TLB_LETTERS)


def tlb_lines(found: Leaves) -> tuple[TlbLine, ...]:
    """The leaves as QEMU's `info tlb` reports them (its masks and letters)."""
    out: list[TlbLine] = []
    masks = {PAGE_SIZE_4K: _QEMU_PTE_MASK, PAGE_SIZE_2M: _QEMU_2M_MASK, PAGE_SIZE_1G: _QEMU_1G_MASK}
    with _collector_paused():
        for vaddr, size, entry in zip(found.vaddrs.tolist(), found.sizes.tolist(), found.ptes.tolist(), strict=True):
            # print_pte is given `pte & ~PG_PSE_MASK` for 4 KiB pages
            pte = entry & ~ENTRY_PAGE_SIZE if size == PAGE_SIZE_4K else entry
            out.append(TlbLine(vaddr, pte & masks[size], _tlb_flags(pte)))
    return tuple(out)


def _require_complete(found: Leaves, what: str) -> None:
    if found.truncated:
        raise WalkLimitError(
            f"cannot produce QEMU's `{what}` exactly: the page tables reach more than "
            f"{found.entries_examined - 1:,} present entries (they are probably garbage or "
            "heavily aliased), and the enumeration stopped there. Raise max_entries to go further."
        )


def format_info_tlb(
    memory: PhysicalMemory,
    regs: PagingRegisters,
    *,
    newline: str = "\r\n",
    max_entries: int = DEFAULT_MAX_ENTRIES,
) -> str:
    """Return exactly what QEMU 7.2's HMP `info tlb` prints for this memory and these registers.

    QEMU's monitor ends lines with CRLF, also through QMP `human-monitor-command`; pass
    `newline="\\n"` for display. Memory outside RAM reads as zeros, as QEMU's unassigned memory
    does (QEMU would read real device or ROM contents there).

    Raises:
        UnsupportedPagingModeError: the CPU uses 32-bit or PAE paging.
        WalkLimitError: the enumeration hit `max_entries`.
    """
    found = leaves(memory, regs, max_entries=max_entries)
    if not found.mode.enabled:
        return "PG disabled" + newline
    _require_complete(found, "info tlb")
    masks = {PAGE_SIZE_4K: _QEMU_PTE_MASK, PAGE_SIZE_2M: _QEMU_2M_MASK, PAGE_SIZE_1G: _QEMU_1G_MASK}
    letters: dict[int, str] = {}
    out: list[str] = []
    for vaddr, size, entry in zip(found.vaddrs.tolist(), found.sizes.tolist(), found.ptes.tolist(), strict=True):
        pte = entry & ~ENTRY_PAGE_SIZE if size == PAGE_SIZE_4K else entry  # as print_pte is given it
        key = (pte & 0x1FE) | (pte >> 63)
        flags = letters.get(key)
        if flags is None:
            flags = letters[key] = _tlb_flags(pte)
        out.append(f"{vaddr:016x}: {pte & masks[size]:016x} {flags}{newline}")
    return "".join(out)


_TLB_LINE = re.compile(r"^([0-9a-f]{16}): ([0-9a-f]{16}) ([X-][G-][P-][D-][A-][C-][T-][U-][W-])$")


def parse_info_tlb(text: str) -> tuple[TlbLine, ...]:
    """Read QEMU's `info tlb` output (CRLF or LF) back into lines.

    `PG disabled` gives an empty tuple.

    Raises:
        MonitorOutputError: a line is neither a TLB line nor blank.
    """
    out: list[TlbLine] = []
    for number, raw_line in enumerate(text.splitlines(), 1):
        line = raw_line.strip()
        if not line or line == "PG disabled":
            continue
        m = _TLB_LINE.match(line)
        if m is None:
            raise MonitorOutputError(
                f"line {number} of the `info tlb` output is not `vaddr: paddr XGPDACTUW`: {line!r}"
            )
        out.append(TlbLine(int(m.group(1), 16), int(m.group(2), 16), m.group(3)))
    return tuple(out)


def _qemu_mem_line(mode: PagingMode, start: int, end: int, prot: int) -> str:
    # mem_print(): addr_canonical() is applied to start, end and even the size.
    canon = mode.canonical
    user = "u" if prot & ENTRY_USER else "-"
    write = "w" if prot & ENTRY_WRITABLE else "-"
    return f"{canon(start):016x}-{canon(end):016x} {canon((end - start) & U64):016x} {user}r{write}"


def _qemu_mem_print(mode: PagingMode, events: Iterable[tuple[int, int]], newline: str) -> str:
    """Replay QEMU's mem_print() state machine over (end, prot) calls, flush included."""
    lines: list[str] = []
    start = -1
    last = 0
    flush = (1 << mode.vaddr_bits, 0)
    for end, prot in (*events, flush):
        if prot != last:
            if start != -1:
                lines.append(_qemu_mem_line(mode, start, end, last))
            start = end if prot else -1
            last = prot
    return "".join(line + newline for line in lines)


def _qemu_mem_events_from_leaves(found: Leaves) -> list[tuple[int, int]]:
    """mem_print() calls for 4-level paging, derived from the leaves (QEMU's walk visits the same).

    Addresses are QEMU's internal ones: not sign-extended, so the lower and upper halves touch.
    Only the calls that change the protection are produced; mem_print() ignores the others.
    """
    internal = (1 << found.mode.vaddr_bits) - 1
    events: list[tuple[int, int]] = []
    end = -1
    last = 0
    for vaddr, size, rights in zip(found.vaddrs.tolist(), found.sizes.tolist(), found.rights.tolist(), strict=True):
        start = vaddr & internal
        prot = ENTRY_PRESENT | (rights & (ENTRY_USER | ENTRY_WRITABLE))
        if start != end and last:
            events.append((end, 0))  # a gap: QEMU saw a non-present entry there
            last = 0
        if prot != last:
            events.append((start, prot))
            last = prot
        end = start + size
    if last:
        events.append((end, 0))
    return events


def _qemu_mem_events_emulated(
    reader: _TableReader, mode: PagingMode, max_events: int, *, la57_bug: bool
) -> list[tuple[int, int]]:
    """mem_print() calls exactly as QEMU's mem_info_la48/la57 loops make them.

    QEMU 7.2's mem_info_la57 tests the PDPT and PD entries' P bit the wrong way round
    (`if (pdpe & PG_PRESENT_MASK) { prot = 0; ...; continue; }`): present PDPTEs and PDEs
    count as unmapped, and non-present ones are followed as if they pointed to tables (a zero
    entry to the table at paddr 0). With `la57_bug` this replays that faithfully.

    Only the calls where the protection changes matter to mem_print(), so each table yields
    its compressed list of (offset, prot) and lists are memoised by (table, level, mask): the
    buggy loop visits paddr 0's tables millions of times but they are read once.
    """
    memo: dict[tuple[int, int, int], list[tuple[int, int]]] = {}
    total = 0

    def table_events(paddr: int, level: int, mask: int) -> list[tuple[int, int]]:
        nonlocal total
        key = (paddr, level, mask)
        hit = memo.get(key)
        if hit is not None:
            return hit
        shift = 12 + 9 * (level - 1)
        out: list[tuple[int, int]] = []
        last = -1
        inverted = la57_bug and level in (2, 3)
        for i, e in enumerate(reader.entries(paddr)):
            present = e & ENTRY_PRESENT
            if level == 1:
                prot = (e & mask & _QEMU_PROT_BITS) if present else 0
            elif (not present) if not inverted else present:
                prot = 0
            elif level <= 3 and e & ENTRY_PAGE_SIZE:
                prot = e & mask & _QEMU_PROT_BITS
            else:
                child = table_events(e & _QEMU_TABLE_MASK, level - 1, mask & e & _QEMU_PROT_BITS)
                base = i << shift
                for offset, child_prot in child:
                    if child_prot != last:
                        out.append((base + offset, child_prot))
                        last = child_prot
                total += len(child)
                if total > max_events:
                    raise WalkLimitError(
                        "cannot reproduce QEMU's `info mem`: its walk of these tables makes more than "
                        f"{max_events:,} range changes (the tables are probably garbage)."
                    )
                continue
            if prot != last:
                out.append((i << shift, prot))
                last = prot
        memo[key] = out
        return out

    root = mode.cr3 & _QEMU_TABLE_MASK
    return table_events(root, mode.top_level.value, _QEMU_PROT_BITS)


def format_info_mem(
    memory: PhysicalMemory,
    regs: PagingRegisters,
    *,
    newline: str = "\r\n",
    max_entries: int = DEFAULT_MAX_ENTRIES,
) -> str:
    """Return exactly what QEMU 7.2's HMP `info mem` prints for this memory and these registers.

    Lines are `start-end size` then `u`/`-`, `r`, `w`/`-` (QEMU shows no execute right), all
    addresses sign-extended as QEMU's addr_canonical() does, the last range of the upper half
    ending at the unextended `0001000000000000`. With 5-level paging QEMU 7.2's output is
    wrong (see `_qemu_mem_events_emulated`), and this reproduces it: for ordinary tables it
    prints nothing. Memory outside RAM reads as zeros.

    Raises:
        UnsupportedPagingModeError: the CPU uses 32-bit or PAE paging.
        WalkLimitError: the work bound was hit.
    """
    mode = PagingMode.from_registers(regs)
    mode.require_long_mode()
    if not mode.enabled:
        return "PG disabled" + newline
    if mode.kind is PagingKind.FIVE_LEVEL:
        events = _qemu_mem_events_emulated(_TableReader(memory), mode, max_entries, la57_bug=True)
    else:
        found = leaves(memory, regs, max_entries=max_entries)
        _require_complete(found, "info mem")
        events = _qemu_mem_events_from_leaves(found)
    return _qemu_mem_print(mode, events, newline)


_MEM_LINE = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16}) ([0-9a-f]{16}) ([u-])r([w-])$")


def _qemu_canonical(bits: int, value: int) -> int:
    """QEMU's addr_canonical() for a `bits`-wide address space."""
    if value >> (bits - 1) & 1:
        return (value | (U64 << bits)) & U64
    return value


def _qemu_mem_pieces(start: int, end: int, size: int, bits: int) -> list[tuple[int, int]] | None:
    """Undo mem_print() for one line if it is consistent with `bits`: canonical (vaddr, size) pieces."""
    top = 1 << bits
    mask = top - 1
    lower_top = top >> 1
    internal_start = start & mask
    internal_end = top if end == top else end & mask
    if _qemu_canonical(bits, internal_start) != start or _qemu_canonical(bits, internal_end) != end:
        return None
    if internal_end <= internal_start or _qemu_canonical(bits, internal_end - internal_start) != size:
        return None
    sign = U64 & ~mask
    cuts = [internal_start, internal_end]
    if internal_start < lower_top < internal_end:  # QEMU merged across the non-canonical hole
        cuts.insert(1, lower_top)
    return [(a | sign if a >= lower_top else a, b - a) for a, b in itertools.pairwise(cuts)]


def parse_info_mem(text: str) -> tuple[MappedRange, ...]:
    """Read QEMU's `info mem` output (CRLF or LF) back into ranges (`executable` is None).

    Undoes QEMU's quirks, using the size column to tell 4-level from 5-level output: a range
    that runs to the top of the address space ends at 2**64 (QEMU prints the end unextended,
    `0001000000000000` or `0200000000000000`), and a range QEMU merged across the
    non-canonical hole is split into its lower-half and upper-half parts.

    Raises:
        MonitorOutputError: a line is not an `info mem` line, or its numbers do not agree.
    """
    out: list[MappedRange] = []
    for number, raw_line in enumerate(text.splitlines(), 1):
        line = raw_line.strip()
        if not line or line == "PG disabled":
            continue
        m = _MEM_LINE.match(line)
        pieces = None
        if m is not None:
            start, end, size = (int(m.group(i), 16) for i in (1, 2, 3))
            pieces = _qemu_mem_pieces(start, end, size, 48) or _qemu_mem_pieces(start, end, size, 57)
        if m is None or pieces is None:
            raise MonitorOutputError(
                f"line {number} of the `info mem` output is not `start-end size [u-]r[w-]` with "
                f"consistent numbers: {line!r}"
            )
        user, writable = m.group(4) == "u", m.group(5) == "w"
        out += [MappedRange(vaddr, length, user, writable) for vaddr, length in pieces]
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# Comparing two snapshots


@dataclass(frozen=True)
class LeafChange:
    """One page present in both snapshots (same vaddr and size) whose entry changed.

    Attributes:
        before: the leaf in the first snapshot.
        after: the leaf in the second.
    """

    before: Leaf
    after: Leaf

    @property
    def remapped(self) -> bool:
        """The frame changed."""
        return self.before.paddr != self.after.paddr

    @property
    def permissions_changed(self) -> bool:
        """Effective rights changed."""
        return self.before.permissions != self.after.permissions

    @property
    def accessed_changed(self) -> bool:
        """The leaf's A bit changed (the CPU sets it on first use)."""
        return self.before.accessed != self.after.accessed

    @property
    def dirty_changed(self) -> bool:
        """The leaf's D bit changed (the CPU sets it on first write)."""
        return self.before.dirty != self.after.dirty

    @property
    def changes(self) -> tuple[str, ...]:
        """Names of what changed: `paddr`, `permissions`, `accessed`, `dirty`, `entries`."""
        names = [n for n, c in (("paddr", self.remapped), ("permissions", self.permissions_changed),
                                ("accessed", self.accessed_changed), ("dirty", self.dirty_changed)) if c]
        mask = ~(ENTRY_ACCESSED | ENTRY_DIRTY)
        last_before = self.before.entries[-1] & mask
        last_after = self.after.entries[-1] & mask
        if (self.before.entries[:-1] != self.after.entries[:-1] or last_before != last_after) and not names:
            names.append("entries")
        return tuple(names)


@dataclass(frozen=True)
class LeafDiff:
    """What changed in the mappings between two snapshots.

    Attributes:
        added: pages only in the second snapshot.
        removed: pages only in the first.
        changed: pages in both whose entries differ.
    """

    added: tuple[Leaf, ...]
    removed: tuple[Leaf, ...]
    changed: tuple[LeafChange, ...]

    @property
    def empty(self) -> bool:
        """Nothing changed."""
        return not (self.added or self.removed or self.changed)

    @property
    def permission_changes(self) -> tuple[LeafChange, ...]:
        """Changes of effective rights."""
        return tuple(c for c in self.changed if c.permissions_changed)

    @property
    def accessed_or_dirty(self) -> tuple[LeafChange, ...]:
        """Pages whose A or D bit changed: what the guest touched in between."""
        return tuple(c for c in self.changed if c.accessed_changed or c.dirty_changed)

    def describe(self) -> str:
        """One line per difference, in vaddr order."""
        lines = [f"+ {leaf.vaddr:#018x} {size_text(leaf.size)} -> {leaf.paddr:#018x} {leaf.permissions}"
                 for leaf in self.added]
        lines += [f"- {leaf.vaddr:#018x} {size_text(leaf.size)} -> {leaf.paddr:#018x} {leaf.permissions}"
                  for leaf in self.removed]
        for c in self.changed:
            parts = []
            if c.remapped:
                parts.append(f"paddr {c.before.paddr:#x} -> {c.after.paddr:#x}")
            if c.permissions_changed:
                parts.append(f"rights {c.before.permissions} -> {c.after.permissions}")
            if c.accessed_changed:
                parts.append("accessed" if c.after.accessed else "accessed cleared")
            if c.dirty_changed:
                parts.append("dirty" if c.after.dirty else "dirty cleared")
            if not parts:
                parts.append("entry bits changed")
            lines.append(f"~ {c.after.vaddr:#018x} {size_text(c.after.size)}: {', '.join(parts)}")
        lines.sort(key=lambda line: int(line.split()[1], 16))
        return "\n".join(lines)


def diff(before: Leaves, after: Leaves) -> LeafDiff:
    """Compare two snapshots' leaves, page by page (a page is its vaddr and size).

    Splitting a 2 MiB page into 4 KiB pages shows as one removal and 512 additions.
    """
    if before.rows == after.rows:
        return LeafDiff((), (), ())
    # Most rows are usually identical: set lookups (in C) leave only the few that differ.
    kept_old = set(before.rows)
    kept_new = set(after.rows)
    gone = [row for row in before.rows if row not in kept_new]
    came = [row for row in after.rows if row not in kept_old]
    # key: the vaddr with the page size's bit length in its (always clear) low 12 bits
    old = {row[0] | row[2].bit_length(): row for row in gone}
    new = {row[0] | row[2].bit_length(): row for row in came}
    added = tuple(_leaf(row) for key, row in new.items() if key not in old)
    removed = tuple(_leaf(row) for key, row in old.items() if key not in new)
    changed = tuple(LeafChange(_leaf(old[key]), _leaf(row)) for key, row in new.items() if key in old)
    return LeafDiff(
        tuple(sorted(added, key=lambda leaf: leaf.vaddr)),
        tuple(sorted(removed, key=lambda leaf: leaf.vaddr)),
        tuple(sorted(changed, key=lambda c: c.after.vaddr)),
    )


# ---------------------------------------------------------------------------------------------
# The tree, for views


@dataclass(frozen=True)
class TableNode:
    """A page table in the tree; its entries are read only when asked for.

    Attributes:
        level: the table's level.
        table_paddr: where it is.
        vaddr: first vaddr its entries cover.
        ancestors: paddrs of the tables above it, root first.
        tree: the tree it belongs to (reads memory on demand).
    """

    level: Level
    table_paddr: int
    vaddr: int
    ancestors: tuple[int, ...]
    tree: PageTableTree = field(compare=False, repr=False)

    @property
    def in_ram(self) -> bool:
        """The whole table is inside RAM."""
        return self.table_paddr + TABLE_SIZE <= self.tree.memory_size

    @property
    def recursive(self) -> bool:
        """This table is also one of its own ancestors (a recursive mapping)."""
        return self.table_paddr in self.ancestors

    @property
    def present_count(self) -> int:
        """Number of present entries (0 if outside RAM)."""
        return self.tree.present_count(self)

    def entries(self) -> tuple[TreeEntry, ...]:
        """The present entries, read and decoded now."""
        return self.tree.entries(self)


@dataclass(frozen=True)
class TreeEntry:
    """A present entry of a table in the tree.

    Attributes:
        index: position in its table.
        vaddr: first vaddr it covers.
        entry: the raw entry and its level.
        reserved_bits: reserved bits set (0 when none).
        kind: what it points to.
        target_paddr: the next table or the frame.
        child: the next table's node (None for a page or a table outside RAM).
        recursive: the next table is this table or one above it.
    """

    index: int
    vaddr: int
    entry: Entry
    reserved_bits: int
    kind: EntryKind
    target_paddr: int
    child: TableNode | None
    recursive: bool = False

    def to_json(self) -> dict[str, object]:
        """A JSON-safe dict for views: addresses and the entry as hex strings."""
        return {
            "index": self.index,
            "vaddr": _hex(self.vaddr),
            "level": self.entry.level.name,
            "entry": _hex(self.entry.raw),
            "flags": list(self.entry.flag_names),
            "reserved_bits": _hex(self.reserved_bits),
            "kind": self.kind.value,
            "target_paddr": _hex(self.target_paddr),
            "page_size": self.entry.page_size,
            "recursive": self.recursive,
            "present_count": self.child.present_count if self.child is not None else None,
        }


class PageTableTree:
    """The page tables reachable from CR3, as a tree whose children are read on request.

    Build it on a paused guest: tables are read once and cached, so a tree is a snapshot.

    Args:
        memory: guest RAM.
        regs: CR0, CR3, CR4 and EFER.
        maxphyaddr: the CPU's physical-address width.

    Raises:
        UnsupportedPagingModeError: the CPU uses 32-bit or PAE paging.
    """

    def __init__(self, memory: PhysicalMemory, regs: PagingRegisters, *, maxphyaddr: int = 52) -> None:
        self.mode = PagingMode.from_registers(regs, maxphyaddr=maxphyaddr)
        self.mode.require_long_mode()
        self._reader = _TableReader(memory)
        self.memory_size = memory.size
        self.root: TableNode | None = None
        if self.mode.enabled:
            self.root = TableNode(self.mode.top_level, self.mode.root_paddr, 0, (), self)

    def __repr__(self) -> str:
        """Deterministic: mode and root."""
        root = f"{self.root.table_paddr:#018x}" if self.root is not None else "none"
        return f"<PageTableTree {self.mode.kind.value}, root {root}>"

    def present_count(self, node: TableNode) -> int:
        """Number of present entries in a table (0 if it is outside RAM)."""
        if node.table_paddr >= self.memory_size:
            return 0
        return self._reader.present_count(node.table_paddr)

    def entries(self, node: TableNode) -> tuple[TreeEntry, ...]:
        """The present entries of a table, decoded, with child nodes for tables."""
        if node.table_paddr >= self.memory_size:
            return ()
        out: list[TreeEntry] = []
        level = node.level
        mode = self.mode
        sign = U64 & ~((1 << mode.vaddr_bits) - 1)
        ancestors = (*node.ancestors, node.table_paddr)
        for index, raw in self._reader.present(node.table_paddr):
            vaddr = node.vaddr + (index << level.shift)
            if level == mode.top_level and index >= 256:
                vaddr |= sign
            entry = Entry(raw, level)
            leaf = entry.maps_page
            reserved = raw & mode.reserved_mask(level, leaf)
            if leaf:
                out.append(TreeEntry(index, vaddr, entry, reserved, EntryKind.PAGE, entry.target_paddr, None))
                continue
            target = raw & _QEMU_TABLE_MASK
            if target >= self.memory_size:
                out.append(TreeEntry(index, vaddr, entry, reserved, EntryKind.OUTSIDE_RAM, target, None))
                continue
            child = TableNode(Level(level - 1), target, vaddr, ancestors, self)
            out.append(TreeEntry(index, vaddr, entry, reserved, EntryKind.TABLE, target, child,
                                 recursive=target in ancestors))
        return tuple(out)


def format_tree(tree: PageTableTree, *, max_depth: int | None = None, max_lines: int = 10_000) -> str:
    """An indented printout in the spirit of xv6's vmprint: one line per present entry.

    Recursive entries (pointing back at a table on their own path) are shown, not expanded.

    Args:
        tree: the tree.
        max_depth: levels to expand below the root (None: all).
        max_lines: stop after this many lines, saying so.
    """
    if tree.root is None:
        return f"{tree.mode.kind.value}: no page tables"
    root = tree.root
    lines = [f"{root.level.name} table {root.table_paddr:#018x} (from CR3), {root.present_count} present entries"]
    stopped = False

    def emit(node: TableNode, depth: int) -> None:
        nonlocal stopped
        for item in node.entries():
            if len(lines) >= max_lines:
                stopped = True
                return
            indent = " .." * depth
            flags = " ".join(item.entry.flag_names)
            head = f"{indent}{item.index}: {item.entry.level.entry_name} {item.entry.raw:#018x} {flags}"
            if item.kind is EntryKind.PAGE:
                size = size_text(item.entry.page_size or 0)
                tail = f"-> {size} page {item.target_paddr:#018x} at vaddr {item.vaddr:#018x}"
            else:
                below = Level(item.entry.level - 1).name
                tail = f"-> {below} table {item.target_paddr:#018x}"
                if item.kind is EntryKind.OUTSIDE_RAM:
                    tail += " (outside RAM)"
                elif item.recursive:
                    tail += " (recursive: already on this path, not expanded)"
            if item.reserved_bits:
                tail += f" [reserved bits {item.reserved_bits:#x} set]"
            lines.append(f"{head} {tail}")
            if item.child is not None and not item.recursive and (max_depth is None or depth < max_depth):
                emit(item.child, depth + 1)
                if stopped:
                    return

    emit(root, 1)
    if stopped:
        lines.append(f"... (stopped after {max_lines} lines)")
    return "\n".join(lines)
