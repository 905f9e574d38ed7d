"""Every present leaf reachable from CR3, enumerated with numpy: `leaves` and `Leaves`.

What "like QEMU" means here:
    `leaves()` descends exactly where QEMU's `info tlb` does (P decides, PS in a PML4E/PML5E
    is ignored, tables are located with QEMU's 50-bit mask) and marks, rather than drops,
    leaves the CPU would refuse for reserved bits. Tables are read where the memory's physical
    map puts them, as the guest reads them: RAM, ROM, and zeros where there is no memory (as
    QEMU's monitor and CPU read them); a table in device memory is not read but reported.
    `walk()` is the CPU's view instead: it stops at the first reserved bit. A leaf whose
    frame is ROM, device memory or nothing is a valid mapping, not a fault.

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
import functools
import gc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

import numpy as np
import numpy.typing as npt

from workbench.models.cpu import U64_MAX, hex_u64
from workbench.models.paging.entries import (
    DEFAULT_MAX_ENTRIES,
    ENTRIES_PER_TABLE,
    ENTRY_ACCESSED,
    ENTRY_ADDRESS_BITS,
    ENTRY_DIRTY,
    ENTRY_GLOBAL,
    ENTRY_PAGE_SIZE,
    PAGE_SIZE_1G,
    PAGE_SIZE_2M,
    PAGE_SIZE_4K,
    RIGHTS_NO_EXECUTE,
    RIGHTS_USER,
    RIGHTS_WRITABLE,
    Entry,
    Level,
    PagingMode,
    Permissions,
)
from workbench.models.paging.inputs import PagingRegisters, PhysicalMemory
from workbench.models.paging.tables import (
    IN_DEVICE,
    NO_MEMORY,
    QEMU_TABLE_MASK,
    READABLE,
    WORD,
    TableReader,
    Words,
)
from workbench.models.paging.translation import FaultKind
from workbench.models.physmap import PhysicalRegion, describe_place

_Indices = npt.NDArray[np.intp]
_Links = npt.NDArray[np.int32]  # indices into a level's chain of table entries
_Bytes = npt.NDArray[np.uint8]
_Flags = npt.NDArray[np.bool_]
_T = TypeVar("_T", bound=np.generic)
_CHUNK_TABLES = 4096  # tables of one level read at once: at most 16 MiB of entries in flight


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
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

    @classmethod
    def from_row(cls, row: LeafRow) -> Leaf:
        """The leaf a row of `Leaves.rows` stands for."""
        return cls(row[0], row[1], row[2], row[3], Permissions.from_rights(row[4]), row[5])

    def to_json(self) -> dict[str, object]:
        """A JSON-safe dict: addresses and entries as hex strings."""
        return {
            "vaddr": hex_u64(self.vaddr),
            "paddr": hex_u64(self.paddr),
            "size": self.size,
            "entries": [hex_u64(e) for e in self.entries],
            "permissions": str(self.permissions),
            "flags": list(self.flags),
            "reserved": self.reserved,
        }


# A leaf as a plain tuple: (vaddr, paddr, size, entries, rights, reserved), where rights is a
# rights value (`Permissions.from_rights`). Rows hold only ints so that CPython's collector
# untracks them: 100,000 rows then cost it nothing.
LeafRow = tuple[int, int, int, tuple[int, ...], int, bool]


@dataclass(frozen=True)
class TableProblem:
    """A present entry that the enumeration could not follow, that points where there is no
    memory, or that the CPU would refuse.

    Attributes:
        kind: DEVICE_MEMORY (points to a table in device memory, not read), NO_MEMORY (points
            to a table where the guest has no memory, read as zeros) or RESERVED_BIT.
        level: level of the entry (of the top-level table for CR3).
        vaddr: first vaddr the entry covers.
        entry: the raw entry, or CR3.
        from_cr3: the problem is CR3 itself pointing there.
        region: for DEVICE_MEMORY, the device's region.
    """

    kind: FaultKind
    level: Level
    vaddr: int
    entry: int
    from_cr3: bool = False
    region: PhysicalRegion | None = None

    @property
    def message(self) -> str:
        """What is wrong, for a student."""
        name = self.level.entry_name
        if self.kind is FaultKind.RESERVED_BIT:
            return f"{name} {self.entry:#018x} for vaddr {self.vaddr:#018x} has reserved bits set"
        where = (f"{describe_place('device', self.region)}: its entries would be device registers, "
                 "which the workbench does not read"
                 if self.kind is FaultKind.DEVICE_MEMORY else
                 "where the guest has no memory: it reads as zeros, so nothing is mapped below it")
        if self.from_cr3:
            return (f"CR3 {self.entry:#018x} points to a {self.level.name} table at paddr "
                    f"{self.entry & QEMU_TABLE_MASK:#018x}, {where}")
        return (f"{name} {self.entry:#018x} for vaddr {self.vaddr:#018x} points to a table at paddr "
                f"{self.entry & QEMU_TABLE_MASK:#018x}, {where}")


def _frozen(array: npt.NDArray[_T]) -> npt.NDArray[_T]:
    array.flags.writeable = False
    return array


# Per leaf level (1 to 3): the page size, and the entry bits that hold the frame.
_PAGE_SIZES = _frozen(np.array([0, PAGE_SIZE_4K, PAGE_SIZE_2M, PAGE_SIZE_1G], WORD))
_FRAME_MASKS = _frozen(np.array([0, *(ENTRY_ADDRESS_BITS & ~(size - 1) for size in _PAGE_SIZES[1:].tolist())], WORD))


@dataclass(frozen=True, eq=False)
class _Columns:
    """The leaves as columns, one element per leaf, in vaddr order.

    A leaf's path of table entries is not copied per leaf: `link` indexes the table entry
    above it in `chain[level + 1]`, whose own link indexes the entry above that, up to the top.
    """

    vaddr: Words
    pte: Words  # the leaf entry
    level: _Bytes  # 1, 2 or 3
    rights: _Bytes  # as in LeafRow
    reserved: _Flags
    link: _Links
    chain: dict[int, tuple[Words, _Links]]  # level: (entries followed to a table, their links)

    @classmethod
    def empty(cls) -> _Columns:
        words = _frozen(np.zeros(0, WORD))
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
        table_levels: the level each of them served as, parallel to `table_paddrs` (4 for a
            PML4, 1 for a PT; the highest when a table serves at more than one level).
    """

    mode: PagingMode
    columns: _Columns = field(default_factory=_Columns.empty, repr=False)
    problems: tuple[TableProblem, ...] = ()
    truncated: bool = False
    entries_examined: int = 0
    table_paddrs: tuple[int, ...] = ()
    table_levels: tuple[int, ...] = ()

    @property
    def vaddrs(self) -> Words:
        """First vaddr of each page (read-only array)."""
        return self.columns.vaddr

    @property
    def levels(self) -> _Bytes:
        """Level of each leaf entry: 1 (PT, 4 KiB), 2 (PD, 2 MiB) or 3 (PDPT, 1 GiB) (read-only array)."""
        return self.columns.level

    @functools.cached_property
    def sizes(self) -> Words:
        """Size of each page: 4 KiB, 2 MiB or 1 GiB (read-only array)."""
        return _frozen(_PAGE_SIZES[self.columns.level])

    @functools.cached_property
    def paddrs(self) -> Words:
        """First paddr of each frame (read-only array)."""
        return _frozen(self.columns.pte & _FRAME_MASKS[self.columns.level])

    @property
    def ptes(self) -> Words:
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
    def rows(self) -> tuple[LeafRow, ...]:
        """One tuple per leaf: vaddr, paddr, size, entries, rights index, reserved (built on first use)."""
        c = self.columns
        with collector_paused():
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
        return Leaf(int(c.vaddr[index]), path[0] & ENTRY_ADDRESS_BITS & ~(size - 1), size, tuple(reversed(path)),
                    Permissions.from_rights(int(c.rights[index])), bool(c.reserved[index]))

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
        position = range(len(self))[index]  # negative indices, and IndexError beyond the end
        return self._leaf_at(position)

    def __iter__(self) -> Iterator[Leaf]:
        """Every leaf in vaddr order."""
        for row in self.rows:
            yield Leaf.from_row(row)

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
    return _Enumerator(TableReader(memory), mode, max_entries).run()


@dataclass(frozen=True, eq=False)
class _Frontier:
    """The tables of one level still to read, in vaddr order, and what their paths carry."""

    table: Words  # paddr
    base: Words  # first vaddr its entries cover
    rights: _Bytes  # bit 0: some entry above has XD; bits 1, 2: every entry above has R/W, U/S
    reserved: _Flags  # some entry above has a reserved bit
    link: _Links  # the entry pointing to it, in the chain of the level above (-1 for CR3)


@dataclass(frozen=True, eq=False)
class _Present:
    """Present entries of one level, in vaddr order, and what their paths carry."""

    vaddr: Words  # first vaddr the entry covers
    entry: Words
    rights: _Bytes  # as _Frontier.rights, this entry included
    reserved_above: _Flags
    link: _Links  # the entry above it, in the chain of the level above

    def __getitem__(self, which: _Flags) -> _Present:
        return _Present(self.vaddr[which], self.entry[which], self.rights[which], self.reserved_above[which],
                        self.link[which])


# A run of leaves of one level, in vaddr order: vaddr, entry, level, rights, reserved, link.
_LeafRun = tuple[Words, Words, int, _Bytes, _Flags, _Links]


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

    def __init__(self, reader: TableReader, mode: PagingMode, max_entries: int) -> None:
        self.reader = reader
        self.mode = mode
        self.max_entries = max_entries
        self.top = mode.top_level.value
        self.rights_mask = np.uint8(RIGHTS_USER | RIGHTS_WRITABLE | (RIGHTS_NO_EXECUTE if mode.nxe else 0))
        self.reserved_table = {lv.value: np.uint64(mode.reserved_mask(lv, False)) for lv in Level}
        self.reserved_leaf = {lv.value: np.uint64(mode.reserved_mask(lv, True)) for lv in Level}
        self.sign = np.uint64(U64_MAX & ~((1 << mode.vaddr_bits) - 1))
        # Found so far, in pieces: per level and chunk of tables, each in vaddr order.
        self.leaf_runs: list[_LeafRun] = []
        self.problem_parts: list[tuple[Words, int, int, Words]] = []  # vaddr, level, kind, entry
        self.chain: dict[int, tuple[Words, _Links]] = {}
        self.visits: list[tuple[Words, int, _Indices]] = []  # tables read: bases, level, present counts
        self.tables_read: list[tuple[Words, int]] = []  # distinct tables of a chunk, and their level

    def run(self) -> Leaves:
        mode = self.mode
        root = mode.cr3 & QEMU_TABLE_MASK  # as QEMU's monitor locates it
        place, region = self.reader.place(root)
        if place in ("device", "none"):  # nothing to read: not a device, and no memory reads as zeros
            kind = FaultKind.DEVICE_MEMORY if place == "device" else FaultKind.NO_MEMORY
            problem = TableProblem(kind, mode.top_level, 0, mode.cr3, from_cr3=True, region=region)
            return Leaves(mode, problems=(problem,))
        all_allowed = np.array([RIGHTS_USER | RIGHTS_WRITABLE], np.uint8)  # no XD: nothing taken away yet
        frontier = _Frontier(np.array([root], WORD), np.zeros(1, WORD), all_allowed, np.zeros(1, np.bool_),
                             np.array([-1], np.int32))
        for level in range(self.top, 0, -1):
            frontier = self.read_level(frontier, level)
        return self.result()

    def read_level(self, frontier: _Frontier, level: int) -> _Frontier:
        """Read the frontier's tables (up to the bound); keep leaves and problems; return the next frontier."""
        examined = 0
        below: list[_Frontier] = []
        followed: list[tuple[Words, _Links]] = []
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
            self.tables_read.append((distinct, level))
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
            return _Frontier(np.zeros(0, WORD), np.zeros(0, WORD), np.zeros(0, np.uint8), np.zeros(0, np.bool_),
                             np.zeros(0, np.int32))
        return _Frontier(*(np.concatenate([getattr(b, name) for b in below])
                           for name in ("table", "base", "rights", "reserved", "link")))

    def decode(self, frontier: _Frontier, level: int, owners: tuple[slice, _Indices], index: _Indices,
               entries: Words, *, chain_start: int) -> tuple[_Frontier, tuple[Words, _Links]] | None:
        """Decode present entries of one level, given the frontier tables holding them (a slice
        of the frontier and the number of entries of each) and their indices: keep the leaves
        and problems, and return the tables below with the entries leading there."""
        tables, counts = owners
        vaddr = index.astype(WORD)
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
        child = found.entry & np.uint64(QEMU_TABLE_MASK)
        places = self.reader.places(child)
        if own_reserved.any():
            self.problem_parts.append((found.vaddr[own_reserved], level, 0, found.entry[own_reserved]))
        if places.any():  # tables in device memory are not read; where there is no memory, zeros
            for code in (IN_DEVICE, NO_MEMORY):
                there = places == code
                if there.any():
                    self.problem_parts.append((found.vaddr[there], level, code, found.entry[there]))
            readable = places == READABLE
            found, child, own_reserved = found[readable], child[readable], own_reserved[readable]
        below = _Frontier(child, found.vaddr, found.rights, found.reserved_above | own_reserved,
                          np.arange(chain_start, chain_start + len(child), dtype=np.int32))
        return below, (found.entry, found.link)

    def keep_leaves(self, level: int, found: _Present) -> None:
        reserved = self.reserved_bits(found.entry, self.reserved_leaf[level])
        reserved |= found.reserved_above
        rights = np.bitwise_and(found.rights, self.rights_mask, out=found.rights)
        self.leaf_runs.append((found.vaddr, found.entry, level, rights, reserved, found.link))

    @staticmethod
    def reserved_bits(entries: Words, mask: np.uint64) -> _Flags:
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
        tables, levels = self.table_levels()
        return Leaves(self.mode, self.columns(stop), self.problems(stop), stop is not None, examined, tables, levels)

    def table_levels(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The tables read, in paddr order, and the highest level each served as."""
        paddrs = np.concatenate([distinct for distinct, _level in self.tables_read])
        levels = np.concatenate([np.full(len(distinct), level, np.uint8) for distinct, level in self.tables_read])
        order = np.lexsort((-levels.astype(np.int16), paddrs))
        paddrs, levels = paddrs[order], levels[order]
        first = np.ones(len(paddrs), np.bool_)
        first[1:] = paddrs[1:] != paddrs[:-1]
        return tuple(paddrs[first].tolist()), tuple(levels[first].tolist())

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
        order = np.lexsort((kind, -level, vaddr))  # depth-first order; reserved bits first
        kinds = {0: FaultKind.RESERVED_BIT, IN_DEVICE: FaultKind.DEVICE_MEMORY, NO_MEMORY: FaultKind.NO_MEMORY}
        return tuple(TableProblem(kinds[k], Level(lv), v, e, region=self.device(e) if k == IN_DEVICE else None)
                     for v, lv, k, e in zip(vaddr[order].tolist(), level[order].tolist(), kind[order].tolist(),
                                            entry[order].tolist(), strict=True))

    def device(self, entry: int) -> PhysicalRegion | None:
        """The device region the table `entry` points to lies in."""
        return self.reader.place(entry & QEMU_TABLE_MASK)[1]


def _merge_runs(runs: list[_LeafRun]) -> tuple[Words, Words, _Bytes, _Bytes, _Flags, _Links]:
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
    out = (np.empty(total, WORD), np.empty(total, WORD), np.empty(total, np.uint8), np.empty(total, np.uint8),
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
    if not 0 <= paddr <= U64_MAX:
        return ()
    frames = found.paddrs
    hits = (frames <= paddr) & (paddr < frames + found.sizes) & ~found.reserved
    return tuple((found.vaddrs[hits] + (paddr - frames[hits])).tolist())


