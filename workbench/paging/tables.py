"""Reading 4 KiB tables of guest memory as numpy arrays, a whole level at a time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from workbench.errors import WorkbenchError

from .entries import ENTRIES_PER_TABLE, ENTRY_PRESENT, TABLE_SIZE
from .inputs import PhysicalMemory, _LendingMemory

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
        # Pages under ROM or devices (GuestRAM.not_ram) are read through `read`, as the guest sees them.
        self._in_ram = np.ones(self._lent, np.bool_)
        for region in getattr(memory, "not_ram", ()):
            self._in_ram[region.start // TABLE_SIZE : -(-region.end // TABLE_SIZE)] = False
        self._copies: dict[int, _Words] = {}
        self._entries: dict[int, tuple[int, ...]] = {}
        self._present: dict[int, list[tuple[int, int]]] = {}

    def table(self, paddr: int) -> _Words:
        """The 512 entries of the table at `paddr` (4 KiB aligned), read-only."""
        page = paddr // TABLE_SIZE
        if page < self._lent and self._in_ram[page]:
            assert self._ram is not None
            row: _Words = self._ram[page]
            return row
        cached = self._copies.get(paddr)
        if cached is None:
            try:
                data = bytes(self.memory.read(paddr, min(TABLE_SIZE, self.size - paddr))) if paddr < self.size else b""
            except WorkbenchError:  # device registers: not read, as for memory beyond RAM
                data = b""
            cached = self._copies[paddr] = np.frombuffer(data.ljust(TABLE_SIZE, b"\0"), dtype=_WORD)
        return cached

    def tables(self, paddrs: _Words) -> _Words:
        """The tables at `paddrs` (4 KiB aligned) as the rows of a new (n, 512) array."""
        pages = paddrs // TABLE_SIZE
        if self._ram is not None and (not len(pages) or (int(pages.max()) < self._lent and self._in_ram[pages].all())):
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


