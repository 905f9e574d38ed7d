"""Reading 4 KiB tables of guest memory as numpy arrays, a whole level at a time."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from workbench.models.paging.entries import ENTRIES_PER_TABLE, ENTRY_PRESENT, TABLE_SIZE
from workbench.models.paging.errors import TableInDeviceMemory
from workbench.models.paging.inputs import LendingMemory, PhysicalMemory, physical_map_of
from workbench.models.physmap import DEVICE, PhysicalRegion

WORD = np.dtype("<u8")  # one page-table entry, or a vaddr or paddr
Words = npt.NDArray[np.uint64]

# QEMU 7.2 target/i386/monitor.c follows tables with this mask (50 bits), and so do `leaves()`
# and the tree, so that they find the tables `info tlb` finds.
QEMU_TABLE_MASK = 0x3_FFFF_FFFF_F000

# Where a table is, as `TableReader.places` reports it for the enumeration.
READABLE, IN_DEVICE, NO_MEMORY = 0, 1, 2


class TableReader:
    """Reads 4 KiB tables as the guest's CPU reads them: a batch at once as the rows of one
    array, or one at a time.

    When the memory lends a window on its RAM (`view`), all of RAM is one zero-copy array of
    tables and a batch is a single fancy-indexing copy. Other tables (in ROM, under ROM, or in
    a memory without a window: QMP copies, snapshots) are read through `read` once and kept.
    The memory's physical map (`physical_map_of`) says where a table is: where the guest has
    no memory a table reads as zeros, as the CPU and QEMU's monitor read it; a table in device
    memory is never read (a read can change the device): `table()` raises TableInDeviceMemory.
    """

    def __init__(self, memory: PhysicalMemory) -> None:
        self.memory = memory
        self.map = physical_map_of(memory)
        self._ram: Words | None = None
        whole = memory.size // TABLE_SIZE  # tables wholly inside the lent window
        if whole and isinstance(memory, LendingMemory):
            window = memory.view(0, whole * TABLE_SIZE)
            self._ram = np.frombuffer(window, dtype=WORD).reshape(whole, ENTRIES_PER_TABLE)
        self._lent = whole if self._ram is not None else 0  # pages readable from self._ram
        # Pages wholly in RAM, read from the window; the rest (ROM, holes, devices) by the map.
        self._in_ram = np.zeros(self._lent, np.bool_)
        for first, end in self.map.ram_pages(self._lent):
            self._in_ram[first:end] = True
        self._copies: dict[int, Words] = {}
        self._entries: dict[int, tuple[int, ...]] = {}
        self._present: dict[int, list[tuple[int, int]]] = {}

    def place(self, paddr: int) -> tuple[str, PhysicalRegion | None]:
        """Where the table at `paddr` is: see PhysicalMap.page_place."""
        page = paddr // TABLE_SIZE
        if page < self._lent and self._in_ram[page]:
            return "ram", None
        return self.map.page_place(paddr)

    def places(self, paddrs: Words) -> npt.NDArray[np.uint8]:
        """READABLE, IN_DEVICE or NO_MEMORY for each table paddr (4 KiB aligned)."""
        pages = paddrs // np.uint64(TABLE_SIZE)
        out = np.zeros(len(paddrs), np.uint8)
        fast = pages < np.uint64(self._lent)
        fast[fast] = self._in_ram[pages[fast].astype(np.intp)]
        if not fast.all():
            codes = {"device": IN_DEVICE, "none": NO_MEMORY}
            slow = np.flatnonzero(~fast)
            distinct, which = np.unique(paddrs[slow], return_inverse=True)
            found = np.array([codes.get(self.map.page_place(p)[0], READABLE) for p in distinct.tolist()], np.uint8)
            out[slow] = found[which.reshape(-1)]
        return out

    def table(self, paddr: int) -> Words:
        """The 512 entries of the table at `paddr` (4 KiB aligned), read-only."""
        page = paddr // TABLE_SIZE
        if page < self._lent and self._in_ram[page]:
            assert self._ram is not None
            row: Words = self._ram[page]
            return row
        cached = self._copies.get(paddr)
        if cached is None:
            data = bytearray(TABLE_SIZE)
            for start, end, region in self.map.pieces(paddr, paddr + TABLE_SIZE):
                if region is not None and region.kind == DEVICE:
                    raise TableInDeviceMemory(paddr, region)
                if region is not None:  # RAM or ROM; where no region is, zeros
                    data[start - paddr : end - paddr] = self.memory.read(start, end - start)
            cached = self._copies[paddr] = np.frombuffer(bytes(data), dtype=WORD)
        return cached

    def tables(self, paddrs: Words) -> Words:
        """The tables at `paddrs` (4 KiB aligned, none in device memory) as the rows of a new (n, 512) array."""
        pages = paddrs // TABLE_SIZE
        if self._ram is not None and (not len(pages) or (int(pages.max()) < self._lent and self._in_ram[pages].all())):
            rows: Words = self._ram[pages]
            return rows
        out = np.empty((len(paddrs), ENTRIES_PER_TABLE), dtype=WORD)
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


def read_tables(memory: PhysicalMemory, paddrs: Sequence[int]) -> Words:
    """The 4 KiB pages at `paddrs` (4 KiB aligned) as the rows of a new (n, 512) uint64 array.

    One copy when `memory` lends a window on its RAM, one `read` per page otherwise; ROM reads
    as the guest reads it, a page where the guest has no memory as zeros. Snapshots keep the
    tables `leaves()` read with it.
    """
    return TableReader(memory).tables(np.array(paddrs, dtype=WORD).reshape(-1))


