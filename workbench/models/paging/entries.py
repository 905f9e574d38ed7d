"""Entry bits, levels, the paging mode and effective permissions (SDM Vol. 3A §4.5, §4.6).

The vocabulary every other part of the model uses: `Level`, `PagingMode` (what CR0, CR3, CR4
and EFER select, and which entry bits are reserved), `Entry` (one raw entry decoded) and
`Permissions`.
"""

from __future__ import annotations

import contextlib
import enum
import gc
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from workbench.models.cpu import (
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
from workbench.models.paging.errors import InvalidVaddr, PagingError, UnsupportedPagingModeError
from workbench.models.paging.inputs import PagingRegisters

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

    def reserved_reasons(self, level: Level, bits: int) -> str:
        """Why each of these reserved bits of an entry at `level` is reserved, in a few words."""
        reasons = []
        high = bits & ((1 << 52) - 1) & ~((1 << self.maxphyaddr) - 1)
        if high:
            reasons.append(f"bits 51:{self.maxphyaddr} lie beyond this CPU's {self.maxphyaddr}-bit "
                           "physical addresses (MAXPHYADDR)")
        if bits & ENTRY_PAGE_SIZE and level >= Level.PML4:
            reasons.append(f"PS (bit 7) must be 0 in a {level.entry_name}")
        if bits & ((1 << 30) - 1) & ~((1 << 13) - 1):
            low = level.shift - 1
            reasons.append(f"bits {low}:13 must be 0 in a {level.entry_name} that maps a "
                           f"{size_text(level.entry_span)} page")
        if bits & ENTRY_NO_EXECUTE and not self.nxe:
            reasons.append("XD (bit 63) is reserved while EFER.NXE is off")
        return "; ".join(reasons)

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
    if isinstance(vaddr, bool) or not isinstance(vaddr, int):
        raise InvalidVaddr(f"a vaddr is an int such as 0xffffffff80100000, not {type(vaddr).__name__}")
    if not 0 <= vaddr <= U64:
        raise InvalidVaddr(f"vaddr must be a 64-bit unsigned value, 0 to 0xffffffffffffffff, got {vaddr!r}")


