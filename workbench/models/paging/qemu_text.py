"""QEMU's `info tlb` and `info mem`, produced and parsed byte for byte.

Source: QEMU 7.2's target/i386/monitor.c (`print_pte`, `tlb_info_la48`, `tlb_info_la57`,
`mem_print`, `mem_info_la48`, `mem_info_la57`).
"""

from __future__ import annotations

import binascii
import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from workbench.models.cpu import U64_MAX
from workbench.models.paging.entries import (
    DEFAULT_MAX_ENTRIES,
    ENTRY_ACCESSED,
    ENTRY_CACHE_DISABLE,
    ENTRY_DIRTY,
    ENTRY_GLOBAL,
    ENTRY_NO_EXECUTE,
    ENTRY_PAGE_SIZE,
    ENTRY_PRESENT,
    ENTRY_USER,
    ENTRY_WRITABLE,
    ENTRY_WRITE_THROUGH,
    PAGE_SIZE_1G,
    PAGE_SIZE_2M,
    PAGE_SIZE_4K,
    PagingKind,
    PagingMode,
)
from workbench.models.paging.enumeration import Leaves, collector_paused, leaves
from workbench.models.paging.errors import MonitorOutputError, TableInDeviceMemory, WalkLimitError
from workbench.models.paging.inputs import PagingRegisters, PhysicalMemory
from workbench.models.paging.ranges import MappedRange
from workbench.models.paging.tables import QEMU_TABLE_MASK, TableReader
from workbench.models.paging.translation import FaultKind

# QEMU 7.2 target/i386/monitor.c prints frames with these masks (50 bits), and mem_print
# compares these protection bits.
_QEMU_PTE_MASK = 0x3_FFFF_FFFF_F000
_QEMU_2M_MASK = 0x3_FFFF_FFE0_0000
_QEMU_1G_MASK = 0x3_FFFF_C000_0000
_QEMU_PROT_BITS = ENTRY_USER | ENTRY_WRITABLE | ENTRY_PRESENT


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
    with collector_paused():
        for vaddr, size, entry in zip(found.vaddrs.tolist(), found.sizes.tolist(), found.ptes.tolist(), strict=True):
            # print_pte is given `pte & ~PG_PSE_MASK` for 4 KiB pages
            pte = entry & ~ENTRY_PAGE_SIZE if size == PAGE_SIZE_4K else entry
            out.append(TlbLine(vaddr, pte & masks[size], _tlb_flags(pte)))
    return tuple(out)


def _require_complete(found: Leaves, what: str) -> None:
    device = next((problem for problem in found.problems if problem.kind is FaultKind.DEVICE_MEMORY), None)
    if device is not None:
        assert device.region is not None
        raise TableInDeviceMemory(
            device.entry & QEMU_TABLE_MASK, device.region,
            f"cannot produce QEMU's `{what}` exactly: {device.message}; QEMU's monitor would read them "
            "as entries.")
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
    `newline="\\n"` for display. Tables are read where the memory's physical map puts them
    (RAM, ROM, zeros where there is no memory), as QEMU reads them.

    Raises:
        UnsupportedPagingModeError: the CPU uses 32-bit or PAE paging.
        WalkLimitError: the enumeration hit `max_entries`.
        TableInDeviceMemory: a table lies in device memory, which QEMU would read and we do not.
    """
    return info_tlb_text(leaves(memory, regs, max_entries=max_entries), newline=newline)


# Every combination of the nine flag bits as its nine letters, indexed as _flag_keys() makes them.
_FLAG_TEXTS = np.array(
    ["".join(letter if key >> (8 - i) & 1 else "-" for i, (letter, _) in enumerate(_TLB_LETTERS))
     for key in range(1 << len(_TLB_LETTERS))], dtype=f"S{len(_TLB_LETTERS)}")
# Per leaf level (1 to 3), what print_pte shows of the entry as paddr: QEMU's masks, and for
# 4 KiB pages without PS (bit 7 is their PAT bit: tlb_info_la48 passes `pte & ~PG_PSE_MASK`).
_TLB_PADDR_MASKS = np.array([0, _QEMU_PTE_MASK & ~ENTRY_PAGE_SIZE, _QEMU_2M_MASK, _QEMU_1G_MASK], np.uint64)
_KEY_WITHOUT_PS = np.uint16(0x1FF & ~(ENTRY_PAGE_SIZE >> 1))
_TLB_CHUNK = 8192  # lines formatted at once: their temporaries stay small and in the cache


def _hex_column(values: npt.NDArray[np.uint64]) -> npt.NDArray[np.bytes_]:
    """Each value as 16 lowercase hex digits: binascii over the big-endian words, in C."""
    column: npt.NDArray[np.bytes_] = np.frombuffer(binascii.hexlify(values.astype(">u8").data), "S16")
    return column


def _flag_keys(ptes: npt.NDArray[np.uint64], levels: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint16]:
    """The nine `info tlb` flag bits of each leaf entry as an index into _FLAG_TEXTS, X highest:
    XD (bit 63), G (bit 8), then PS D A PCD PWT U/S R/W (bits 7 to 1); PS cleared for 4 KiB pages."""
    entry_bytes = ptes.view(np.uint8).reshape(-1, 8)
    keys: npt.NDArray[np.uint16] = (entry_bytes[:, 7] >> 7).astype(np.uint16) << np.uint16(8)
    keys |= (entry_bytes[:, 1] & 1).astype(np.uint16) << np.uint16(7)
    keys |= entry_bytes[:, 0] >> 1
    keys &= np.where(levels == 1, _KEY_WITHOUT_PS, np.uint16(0x1FF))
    return keys


def _tlb_line_type(newline: str) -> np.dtype[np.void]:
    """One `info tlb` line as a record of fixed-width byte strings: `vaddr: paddr flags` + newline."""
    return np.dtype([("vaddr", "S16"), ("colon", "S2"), ("paddr", "S16"), ("space", "S1"),
                     ("flags", f"S{len(_TLB_LETTERS)}"), ("newline", f"S{len(newline)}")])


def info_tlb_text(found: Leaves, *, newline: str = "\r\n") -> str:
    """QEMU's `info tlb` text for leaves already enumerated (a snapshot's), byte for byte.

    Formatted column by column with numpy into one array of fixed-width records, one per
    line, with no Python loop per line: hex digits from binascii, the flags from a table of
    all 512 combinations.

    Raises:
        WalkLimitError: the enumeration behind `found` was cut short.
        TableInDeviceMemory: a table lies in device memory, which QEMU would read and we do not.
    """
    if not found.mode.enabled:
        return "PG disabled" + newline
    _require_complete(found, "info tlb")
    lines = np.empty(len(found), _tlb_line_type(newline))
    lines["colon"] = b": "
    lines["space"] = b" "
    lines["newline"] = newline.encode("ascii")
    for start in range(0, len(found), _TLB_CHUNK):  # a chunk at a time: small temporaries
        part = slice(start, start + _TLB_CHUNK)
        levels, ptes = found.levels[part], found.ptes[part]
        out = lines[part]
        out["vaddr"] = _hex_column(found.vaddrs[part])
        out["paddr"] = _hex_column(ptes & np.take(_TLB_PADDR_MASKS, levels))
        out["flags"] = np.take(_FLAG_TEXTS, _flag_keys(ptes, levels))
    return str(lines.data, "ascii")


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
    return f"{canon(start):016x}-{canon(end):016x} {canon((end - start) & U64_MAX):016x} {user}r{write}"


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
    reader: TableReader, mode: PagingMode, max_events: int, *, la57_bug: bool
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
                child = table_events(e & QEMU_TABLE_MASK, level - 1, mask & e & _QEMU_PROT_BITS)
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

    root = mode.cr3 & QEMU_TABLE_MASK
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
    prints nothing. Tables are read as `format_info_tlb` reads them.

    Raises:
        UnsupportedPagingModeError: the CPU uses 32-bit or PAE paging.
        WalkLimitError: the work bound was hit.
        TableInDeviceMemory: a table lies in device memory, which QEMU would read and we do not.
    """
    mode = PagingMode.from_registers(regs)
    mode.require_long_mode()
    if not mode.enabled:
        return "PG disabled" + newline
    if mode.kind is PagingKind.FIVE_LEVEL:
        events = _qemu_mem_events_emulated(TableReader(memory), mode, max_entries, la57_bug=True)
    else:
        found = leaves(memory, regs, max_entries=max_entries)
        _require_complete(found, "info mem")
        events = _qemu_mem_events_from_leaves(found)
    return _qemu_mem_print(mode, events, newline)


_MEM_LINE = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16}) ([0-9a-f]{16}) ([u-])r([w-])$")


def _qemu_canonical(bits: int, value: int) -> int:
    """QEMU's addr_canonical() for a `bits`-wide address space."""
    if value >> (bits - 1) & 1:
        return (value | (U64_MAX << bits)) & U64_MAX
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
    sign = U64_MAX & ~mask
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


