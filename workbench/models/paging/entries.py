"""Entry bits, levels, the paging mode and effective permissions (SDM Vol. 3A §4.5, §4.6).

The vocabulary every other part of the model uses: `Level`, `PagingMode` (what CR0, CR3, CR4
and EFER select, and which entry bits are reserved), `Entry` (one raw entry decoded) and
`Permissions`.
"""

from __future__ import annotations

import enum
import functools
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
    U64_MAX,
)
from workbench.models.paging.errors import PagingError, UnsupportedPagingModeError
from workbench.models.paging.inputs import PagingRegisters

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

ENTRY_ADDRESS_BITS = 0x000F_FFFF_FFFF_F000  # bits 51:12: next table or 4 KiB frame
ENTRY_IGNORED_LOW = 0x7 << 9  # bits 11:9, free for software
ENTRY_IGNORED_HIGH = 0x7F << 52  # bits 58:52, free for software
_FLAG_BITS = 0x1FF | ENTRY_PAT_LARGE | ENTRY_NO_EXECUTE  # every bit `Entry.flag_names` looks at

# A page's effective rights in three bits, as `leaves()` keeps them per page: R/W and U/S at
# their own entry positions, and XD (bit 63 of an entry) moved down to bit 0.
RIGHTS_NO_EXECUTE = 1
RIGHTS_WRITABLE = ENTRY_WRITABLE
RIGHTS_USER = ENTRY_USER


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
        return self.cr3 & ENTRY_ADDRESS_BITS & self.address_mask

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
            return (vaddr | (U64_MAX << self.vaddr_bits)) & U64_MAX
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
        return self.bits(ENTRY_PROTECTION_KEY)

    @property
    def page_size(self) -> int | None:
        """Size of the page it maps, or None if it points to a table."""
        return 1 << self.level.shift if self.maps_page else None

    @property
    def target_paddr(self) -> int:
        """Paddr of the next table, or of the frame for a page (bits 51:12, 51:21 or 51:30)."""
        if self.maps_page:
            return self.raw & ENTRY_ADDRESS_BITS & ~(self.level.entry_span - 1)
        return self.raw & ENTRY_ADDRESS_BITS

    @property
    def flag_names(self) -> tuple[str, ...]:
        """The SDM names of the set bits that mean something at this level, low bit first."""
        return _flag_names(self.raw & _FLAG_BITS, self.level)

    @property
    def ignored_bits(self) -> int:
        """Set bits the CPU ignores here (free for software): 11:9, 58:52, and D/G in tables."""
        mask = ENTRY_IGNORED_LOW | ENTRY_IGNORED_HIGH
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

    def fields(self, mode: PagingMode) -> tuple[EntryField, ...]:
        """Every field of the entry, high bits first, with what it means at this level in `mode`."""
        return (*_high_fields(self, mode), *_address_fields(self, mode), *_low_fields(self))

    def bits(self, mask: int) -> int:
        """The value of the contiguous bits of `mask`, shifted down to bit 0."""
        return (self.raw & mask) >> ((mask & -mask).bit_length() - 1)

    def flag_field(self, mask: int, name: str, on: str, off: str) -> EntryField:
        """The one-bit field `mask`, with what it means set (`on`) and clear (`off`)."""
        value = self.bits(mask)
        return EntryField(str(mask.bit_length() - 1), name, value, on if value else off)


@functools.lru_cache(maxsize=4096)  # an expanded table shows up to 512 entries; few distinct flag sets
def _flag_names(raw: int, level: Level) -> tuple[str, ...]:
    leaf = level == Level.PT or (level.can_map_page and bool(raw & ENTRY_PAGE_SIZE))
    names = [n for n, b in (("P", ENTRY_PRESENT), ("R/W", ENTRY_WRITABLE), ("U/S", ENTRY_USER),
                            ("PWT", ENTRY_WRITE_THROUGH), ("PCD", ENTRY_CACHE_DISABLE),
                            ("A", ENTRY_ACCESSED)) if raw & b]
    if leaf and raw & ENTRY_DIRTY:
        names.append("D")
    if raw & ENTRY_PAGE_SIZE:
        names.append("PAT" if level == Level.PT else "PS")
    if leaf and raw & ENTRY_GLOBAL:
        names.append("G")
    if leaf and level != Level.PT and raw & ENTRY_PAT_LARGE:
        names.append("PAT")
    if raw & ENTRY_NO_EXECUTE:
        names.append("XD")
    return tuple(names)


@dataclass(frozen=True)
class EntryField:
    """One field of an entry, as the SDM lays entries out (Tables 4-15 to 4-20).

    Attributes:
        bits: which bits, `63` or `62:59`.
        name: the SDM's name (`XD`, `PK`, `frame`), or `ignored` or `reserved`.
        value: the field's value, shifted down (an address field keeps its place).
        meaning: what the value means at this level in this paging mode, in a few words.
    """

    bits: str
    name: str
    value: int
    meaning: str

    def to_json(self) -> dict[str, str]:
        """A JSON-safe dict; a value above 1 in hex."""
        value = f"{self.value:#x}" if self.value > 1 else str(self.value)
        return {"bits": self.bits, "name": self.name, "value": value, "meaning": self.meaning}


def _bit_range(high: int, low: int) -> int:
    return ((1 << (high + 1)) - 1) & ~((1 << low) - 1)


def _high_fields(entry: Entry, mode: PagingMode) -> tuple[EntryField, ...]:
    """XD, the protection key and the ignored bits 58:52."""
    if mode.nxe:
        xd = entry.flag_field(ENTRY_NO_EXECUTE, "XD", "no instruction fetch in what this entry maps",
                              "instructions may be fetched")
    else:
        xd = entry.flag_field(ENTRY_NO_EXECUTE, "XD", "reserved (EFER.NXE is off): the CPU faults",
                              "reserved while EFER.NXE is off")
    key = entry.protection_key
    if entry.maps_page and (mode.pke or mode.pks):
        protection = EntryField("62:59", "PK", key, f"protection key {key}")
    else:
        protection = EntryField("62:59", "ignored", key, "free for software")
    return xd, protection, EntryField("58:52", "ignored", entry.bits(ENTRY_IGNORED_HIGH), "free for software")


def _address_fields(entry: Entry, mode: PagingMode) -> list[EntryField]:
    """Bits 51:12: the reserved bits beyond MAXPHYADDR, the frame or table, a large page's PAT."""
    top = mode.maxphyaddr
    level = entry.level
    fields = []
    if top < 52:
        fields.append(EntryField(f"51:{top}", "reserved", entry.bits(_bit_range(51, top)),
                                 f"must be 0: this CPU's physical addresses have {top} bits"))
    target = entry.target_paddr & mode.address_mask
    if not entry.maps_page:
        return [*fields, EntryField(f"{top - 1}:12", "table", target, f"paddr of the {Level(level - 1).name} table")]
    low = level.shift
    fields.append(EntryField(f"{top - 1}:{low}", "frame", target, f"paddr of the {size_text(level.entry_span)} page"))
    if level != Level.PT:
        fields.append(EntryField(f"{low - 1}:13", "reserved", entry.bits(_bit_range(low - 1, 13)), "must be 0"))
        fields.append(entry.flag_field(ENTRY_PAT_LARGE, "PAT", "memory type: PAT bit set",
                                       "memory type: PAT bit clear"))
    return fields


def _low_fields(entry: Entry) -> tuple[EntryField, ...]:
    """Bits 11:0: the ignored bits 11:9, then G down to P."""
    leaf = entry.maps_page
    ignored = ("ignored", "ignored in a table entry", "ignored in a table entry")
    return (
        EntryField("11:9", "ignored", entry.bits(ENTRY_IGNORED_LOW), "free for software"),
        entry.flag_field(ENTRY_GLOBAL, *(("G", "global: kept in the TLB across CR3 writes", "not global")
                                         if leaf else ignored)),
        _bit_7_field(entry),
        entry.flag_field(ENTRY_DIRTY, *(("D", "dirty: the page has been written", "not written since D was cleared")
                                        if leaf else ignored)),
        entry.flag_field(ENTRY_ACCESSED, "A", "accessed: the CPU has used this entry", "not used since A was cleared"),
        entry.flag_field(ENTRY_CACHE_DISABLE, "PCD", "caching disabled", "caching allowed"),
        entry.flag_field(ENTRY_WRITE_THROUGH, "PWT", "write-through caching", "write-back caching"),
        entry.flag_field(ENTRY_USER, "U/S", "user: ring 3 may access (if every level agrees)", "supervisor only"),
        entry.flag_field(ENTRY_WRITABLE, "R/W", "writable (if every level agrees)", "read-only"),
        entry.flag_field(ENTRY_PRESENT, "P", "present", "not present: everything else is ignored"),
    )


def _bit_7_field(entry: Entry) -> EntryField:
    """Bit 7 is PAT in a PTE, PS where an entry can map a page, and reserved above."""
    if entry.level == Level.PT:
        return entry.flag_field(ENTRY_PAT_4K, "PAT", "memory type: PAT bit set", "memory type: PAT bit clear")
    if entry.level.can_map_page:
        return entry.flag_field(ENTRY_PAGE_SIZE, "PS", f"maps a {size_text(entry.level.entry_span)} page",
                                "points to a table")
    return entry.flag_field(ENTRY_PAGE_SIZE, "PS", "reserved at this level: the CPU faults", "must be 0 at this level")


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

    @staticmethod
    def from_rights(rights: int) -> Permissions:
        """The permissions of a rights value (`RIGHTS_USER`, `RIGHTS_WRITABLE`, `RIGHTS_NO_EXECUTE`)."""
        return _BY_RIGHTS[rights]

    @property
    def rights(self) -> int:
        """The permissions as a rights value, the inverse of `from_rights`."""
        return ((RIGHTS_USER if self.user else 0) | (RIGHTS_WRITABLE if self.writable else 0)
                | (0 if self.executable else RIGHTS_NO_EXECUTE))

    def describe(self) -> str:
        """Return e.g. `kernel only, read/write, no-execute`."""
        return ", ".join((
            "user and kernel" if self.user else "kernel only",
            "read/write" if self.writable else "read-only",
            "executable" if self.executable else "no-execute",
        ))


_BY_RIGHTS = tuple(Permissions(user=bool(rights & RIGHTS_USER), writable=bool(rights & RIGHTS_WRITABLE),
                               executable=not rights & RIGHTS_NO_EXECUTE) for rights in range(8))


def effective_permissions(and_bits: int, or_bits: int, nxe: bool) -> Permissions:
    """The rights of a page from its walk: the AND and the OR of every entry on the path.

    Every level must allow user access and writes (SDM §4.6); any level's XD forbids
    instruction fetch, but only with EFER.NXE.
    """
    no_execute = RIGHTS_NO_EXECUTE if nxe and or_bits & ENTRY_NO_EXECUTE else 0
    return _BY_RIGHTS[(and_bits & (RIGHTS_USER | RIGHTS_WRITABLE)) | no_execute]


def size_text(size: int) -> str:
    """`4 KiB`, `2 MiB`, `128 TiB`: the largest unit that fits, with one decimal when the size
    is not a whole number of it (`17.1 MiB`). The one size format of the workbench."""
    for unit, shift in (("EiB", 60), ("PiB", 50), ("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift:
            whole = size % (1 << shift) == 0
            return f"{size >> shift} {unit}" if whole else f"{size / (1 << shift):.1f} {unit}"
    return f"{size} B"
