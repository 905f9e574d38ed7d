"""QEMU's own page-table dump is the oracle for the paging model.

On three kinds of guest, the model must print exactly what QEMU's HMP `info tlb` and `info mem`
print, parse QEMU's text back into the same leaves and ranges, and `Snapshot.walk()` must
translate every leaf QEMU lists to the frame QEMU names, and fault in the gaps between them:

- our unikernel after boot, after its heap grew, and paused in its fault handler;
- hand-built tables that cover every page size and every flag combination, with 4-level and
  5-level paging, written into a guest that only holds them (tests/guests/tables);
- a stock Debian or Ubuntu Linux kernel booted without an initrd and paused once it has its
  final page tables: 2 MiB pages, NX, global pages, tens of thousands of leaves;
- lesson 09's Linux guest on two CPUs, each running a process of its own: per CPU, the tables
  its CR3 points to, against what QEMU prints for that CPU.

QEMU 7.2's `info mem` is wrong with 5-level paging, and takes minutes on large tables (see
`paging.qemu_text._qemu_mem_events_emulated`), so 5-level guests are checked against `info tlb` alone.
"""

from __future__ import annotations

import bisect
import re
import struct
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path

import pytest

from tests.support import linux_kernel
from workbench.compare.linux_guest import GuestFiles, LinuxGuest, build_initramfs
from workbench.guest.cpus import CpuState
from workbench.guest.machine import Machine, MachineState
from workbench.guest.memory import GuestRAM, MonitorMemory
from workbench.kernel.image import Image
from workbench.kernel.toolchains import TOOLCHAINS
from workbench.kernel.workspace import Workspace
from workbench.models.cpu import Cr3
from workbench.models.paging import (
    ENTRY_ACCESSED,
    ENTRY_CACHE_DISABLE,
    ENTRY_DIRTY,
    ENTRY_GLOBAL,
    ENTRY_NO_EXECUTE,
    ENTRY_PAGE_SIZE,
    ENTRY_PAT_LARGE,
    ENTRY_PRESENT,
    ENTRY_USER,
    ENTRY_WRITABLE,
    ENTRY_WRITE_THROUGH,
    Entry,
    FaultKind,
    Level,
    MappedRange,
    PagingKind,
    PagingMode,
    TableInDeviceMemory,
    TlbLine,
    parse_info_mem,
    parse_info_tlb,
    tlb_lines,
)
from workbench.models.snapshot import Snapshot

pytestmark = pytest.mark.qemu

TABLES_GUEST = Path(__file__).resolve().parents[1] / "guests" / "tables"
CPU_FOR_LEVELS = {4: "qemu64", 5: "qemu64,la57=on"}
MONITOR_TIMEOUT = 60.0  # seconds for one `info tlb` of a large guest; it takes about 0.1 s
WALK_SAMPLE = 3000  # leaves of a large guest checked with Snapshot.walk()

PAGE_4K, PAGE_2M, PAGE_1G = 1 << 12, 1 << 21, 1 << 30
PAT_4K = ENTRY_PAGE_SIZE  # bit 7 is PAT in a PT entry
MAX_PADDR_BITS = 40  # qemu64's physical-address width: frames above it would be reserved


# Comparing with QEMU; a failing check shows where the two first part.


def first_difference(ours: Sequence[object], qemu: Sequence[object], what: str) -> str:
    """The first differing item of two sequences, with a little context, or "" if equal."""
    pairs = enumerate(zip_longest(ours, qemu, fillvalue="<none>"))
    index = next((at for at, (mine, theirs) in pairs if mine != theirs), None)
    if index is None:
        return ""
    lines = [f"{what}: ours has {len(ours)} items, QEMU's {len(qemu)}; they first differ at item {index + 1}:"]
    for at in range(max(0, index - 2), min(max(len(ours), len(qemu)), index + 4)):
        mine = ours[at] if at < len(ours) else "<none>"
        theirs = qemu[at] if at < len(qemu) else "<none>"
        mark = "  " if mine == theirs else "!="
        lines.append(f"  {at + 1:>7} {mark} QEMU: {theirs!s:<46} ours: {mine!s}")
    return "\n".join(lines)


def assert_agree(ours: Sequence[object], qemu: Sequence[object], what: str) -> None:
    difference = first_difference(ours, qemu, what)
    assert not difference, difference


def compare_with_qemu(machine: Machine, snapshot: Snapshot, *, info_mem: bool) -> tuple[TlbLine, ...]:
    """Our `info tlb` (and `info mem`) against QEMU's, as text and parsed; QEMU's parsed lines.

    QEMU's are those of the snapshot's CPU (its `cpu-index`, as HMP's `cpu N` chooses it).
    """
    qemu_tlb = machine.hmp("info tlb", MONITOR_TIMEOUT, cpu=snapshot.cpu)
    assert_agree(snapshot.info_tlb().splitlines(), qemu_tlb.splitlines(), "info tlb text")
    assert snapshot.info_tlb() == qemu_tlb, "info tlb: same lines, different line endings"
    qemu_lines = parse_info_tlb(qemu_tlb)
    assert_agree(tlb_lines(snapshot.leaves), qemu_lines, "info tlb parsed")
    if info_mem:
        qemu_mem = machine.hmp("info mem", MONITOR_TIMEOUT, cpu=snapshot.cpu)
        assert_agree(snapshot.info_mem().splitlines(), qemu_mem.splitlines(), "info mem text")
        assert snapshot.info_mem() == qemu_mem, "info mem: same lines, different line endings"
        assert_agree(snapshot.mappings(), parse_info_mem(qemu_mem), "info mem parsed")
    return qemu_lines


def qemu_letters(walk_leaf_entry: int, page_size: int) -> str:
    """A leaf entry's flags in `info tlb` letters, from the model's SDM-named Entry properties."""
    level = {PAGE_4K: Level.PT, PAGE_2M: Level.PD, PAGE_1G: Level.PDPT}[page_size]
    entry = Entry(walk_leaf_entry, level)
    bits = (("X", entry.no_execute), ("G", entry.global_), ("P", page_size > PAGE_4K), ("D", entry.dirty),
            ("A", entry.accessed), ("C", entry.cache_disable), ("T", entry.write_through),
            ("U", entry.user), ("W", entry.writable))
    return "".join(letter if on else "-" for letter, on in bits)


def check_walks(snapshot: Snapshot, lines: Sequence[TlbLine], ranges: Sequence[MappedRange] | None = None,
                *, sample: int | None = None) -> int:
    """Snapshot.walk() against QEMU's leaves (and rights, if QEMU's `info mem` ranges are given).

    For each leaf checked: its first and last byte translate into QEMU's frame, the leaf entry's
    flags read as QEMU's letters, and the effective rights are those of QEMU's range; the byte
    after the page faults unless QEMU lists a page there. Returns how many leaves were walked.
    """
    indices = list(range(len(lines)))
    if sample is not None and len(indices) > sample:
        chosen = set(indices[:: len(indices) // sample]) | {len(lines) - 1}
        chosen |= {i for i, line in enumerate(lines) if line.flags[2] == "P"}  # every huge page
        indices = sorted(chosen)
    starts = [r.vaddr for r in ranges] if ranges is not None else []
    problems: list[str] = []
    for i in indices:
        line = lines[i]
        first = snapshot.walk(line.vaddr)
        if not first.ok or first.page_size is None or first.paddr is None or first.permissions is None:
            problems.append(f"{line}: the walk faults: {first.fault.message if first.fault else '?'}")
            continue
        size = first.page_size
        last = snapshot.walk(line.vaddr + size - 1)
        letters = qemu_letters(first.steps[-1].entry.raw, size)
        if first.paddr != line.paddr or last.paddr != line.paddr + size - 1 or letters != line.flags:
            problems.append(f"{line}: the walk gives paddr {first.paddr:#x}..{last.paddr or 0:#x}, "
                            f"a {size:#x}-byte page, flags {letters}")
        if ranges is not None:
            where = ranges[bisect.bisect_right(starts, line.vaddr) - 1]
            rights = (first.permissions.user, first.permissions.writable)
            if not where.vaddr <= line.vaddr < where.end or rights != (where.user, where.writable):
                problems.append(f"{line}: the walk gives user={rights[0]} writable={rights[1]}, "
                                f"QEMU's info mem says {where.permissions_text} for {where.vaddr:#x}..{where.end:#x}")
        after = line.vaddr + size
        if after >= 1 << 64 or (i + 1 < len(lines) and lines[i + 1].vaddr == after):
            continue
        gap = snapshot.walk(after)
        if gap.ok or gap.fault is None or gap.fault.kind not in (FaultKind.NOT_PRESENT, FaultKind.NON_CANONICAL):
            found = f"paddr {gap.paddr:#x}" if gap.paddr is not None else f"{gap.fault.kind if gap.fault else None}"
            problems.append(f"{after:#018x}, in a gap of QEMU's info tlb: the walk gives {found}")
        if len(problems) >= 10:
            break
    assert not problems, "Snapshot.walk() disagrees with QEMU:\n  " + "\n  ".join(problems)
    return len(indices)


# (a) Our unikernel.


def test_the_unikernel_after_boot_and_after_its_heap_grew(image: Image) -> None:
    with Machine(image) as machine:
        machine.wait_for("> ")
        machine.pause()
        booted = machine.snapshot("after boot")
        lines = compare_with_qemu(machine, booted, info_mem=True)
        check_walks(booted, lines, parse_info_mem(machine.hmp("info mem")))
        machine.resume()

        small = machine.request("alloc 3").number("vaddr")
        large = machine.request("alloc 600").number("vaddr")  # more than one PT's worth
        machine.pause()
        grown = machine.snapshot("after the heap grew")
        lines = compare_with_qemu(machine, grown, info_mem=True)
        assert len(lines) == len(parse_info_tlb(booted.info_tlb())) + 603
        assert {small, large, large + 599 * PAGE_4K} <= {line.vaddr for line in lines}
        check_walks(grown, lines, parse_info_mem(machine.hmp("info mem")))


def test_the_unikernel_paused_in_its_fault_handler(image: Image) -> None:
    with Machine(image) as machine:
        machine.wait_for("> ")
        machine.send_line("fault null-write")
        outcome = machine.wait()
        assert outcome.state is MachineState.FAULTED and outcome.fault is not None
        faulted = machine.snapshot("in the fault handler")
        lines = compare_with_qemu(machine, faulted, info_mem=True)
        check_walks(faulted, lines, parse_info_mem(machine.hmp("info mem")))
        assert outcome.fault.cr2 == 0
        assert faulted.walk(outcome.fault.cr2).fault is not None


# (b) Hand-built tables.


@dataclass
class TablesGuest:
    machine: Machine
    root: int  # CR3's table: the host rewrites it
    free: int  # first paddr the host may use for more tables
    levels: int


@pytest.fixture(scope="session")
def tables_image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    """tests/guests/tables, built with the system toolchain."""
    build = tmp_path_factory.mktemp("tables-guest")
    subprocess.run(["make", "-s", "-C", str(TABLES_GUEST), f"BUILD_DIR={build}",
                    *(f"{k}={v}" for k, v in TOOLCHAINS["gcc"].items())], check=True, timeout=60)
    return Image.load(build / "tables.elf")


@pytest.fixture(params=[4, 5], ids=["4-level", "5-level"])
def tables_guest(request: pytest.FixtureRequest, tables_image: Image) -> Iterator[TablesGuest]:
    """The tables guest in long mode with 4 or 5 levels, halted for good and paused."""
    levels: int = request.param
    machine = Machine(tables_image, cpu=CPU_FOR_LEVELS[levels]).start(paused=True)
    try:
        # Before the first instruction: the guest reads it to choose CR4.LA57 (paging is off,
        # so its symbol's vaddr is its paddr).
        machine.memory.write(tables_image.symbol("requested_levels").vaddr, levels.to_bytes(4, "little"))
        machine.resume()
        machine.wait_for("tables: ready\n", timeout=10)
        machine.pause()
        registers = machine.registers()
        expected = PagingKind.FIVE_LEVEL if levels == 5 else PagingKind.FOUR_LEVEL
        assert PagingMode.from_registers(registers).kind is expected
        yield TablesGuest(machine, registers.cr3 & ~0xFFF, tables_image.symbol("free_memory").vaddr, levels)
    finally:
        machine.close()


class TableWriter:
    """Page tables built from scratch in Python, then written into guest RAM in one go."""

    def __init__(self, guest: TablesGuest) -> None:
        self.levels = guest.levels
        self.tables: dict[int, list[int]] = {guest.root: [0] * 512}
        self.root = guest.root
        self.next_free = guest.free
        self.ram_size = guest.machine.memory.size

    def table(self) -> int:
        paddr = self.next_free
        self.next_free += PAGE_4K
        assert self.next_free <= self.ram_size, "the tables do not fit in guest RAM"
        self.tables[paddr] = [0] * 512
        return paddr

    def link(self, table: int, index: int, flags: int) -> int:
        """A new table, entered at `index` of `table` with `flags`."""
        child = self.table()
        self.tables[table][index] = child | flags
        return child

    def map(self, vaddr: int, paddr: int, size: int, flags: int) -> None:
        """Map one page, creating missing tables as present, writable and user."""
        leaf_level = {PAGE_4K: 1, PAGE_2M: 2, PAGE_1G: 3}[size]
        table = self.root
        for level in range(self.levels, leaf_level, -1):
            index = vaddr >> (12 + 9 * (level - 1)) & 0x1FF
            entry = self.tables[table][index]
            if not entry:
                entry = self.link(table, index, ENTRY_PRESENT | ENTRY_WRITABLE | ENTRY_USER)
            table = entry & 0xF_FFFF_FFFF_F000
        index = vaddr >> (12 + 9 * (leaf_level - 1)) & 0x1FF
        assert not self.tables[table][index], f"{vaddr:#x} is mapped twice"
        self.tables[table][index] = paddr | flags

    def vaddr(self, *indices: int) -> int:
        """The canonical vaddr selected by these entry indices, top level first."""
        value = 0
        for depth, index in enumerate(indices):
            value |= index << (12 + 9 * (self.levels - 1 - depth))
        top_bit = 1 << (12 + 9 * self.levels - 1)
        return value | ((1 << 64) - 2 * top_bit if value & top_bit else 0)

    def write(self, memory: GuestRAM | MonitorMemory) -> None:
        for paddr, entries in self.tables.items():
            memory.write(paddr, struct.pack("<512Q", *entries))


def frame(number: int, size: int) -> int:
    """A deterministic frame spread over the physical-address space (mostly outside RAM)."""
    return ((number * 0x9E37_79B9_7F4A_7C15) >> 20) % (1 << MAX_PADDR_BITS) & ~(size - 1)


# The leaf bits that mean something, in combination number order: 2**9 = 512 combinations.
LEAF_BITS = ("R/W", "U/S", "PWT", "PCD", "A", "D", "G", "PAT", "XD")
_BIT_VALUES = {"R/W": ENTRY_WRITABLE, "U/S": ENTRY_USER, "PWT": ENTRY_WRITE_THROUGH, "PCD": ENTRY_CACHE_DISABLE,
               "A": ENTRY_ACCESSED, "D": ENTRY_DIRTY, "G": ENTRY_GLOBAL, "XD": ENTRY_NO_EXECUTE}


def leaf_flags(combination: int, size: int) -> int:
    """P, PS for a huge page, the bits of `combination`, and some of the bits the CPU ignores here."""
    flags = ENTRY_PRESENT | (ENTRY_PAGE_SIZE if size > PAGE_4K else 0)
    for position, name in enumerate(LEAF_BITS):
        if combination >> position & 1:
            flags |= (PAT_4K if size == PAGE_4K else ENTRY_PAT_LARGE) if name == "PAT" else _BIT_VALUES[name]
    # Software-available bits 11:9 and 58:52, and bits 62:59 (protection keys, off here).
    return flags | (combination % 8) << 9 | (combination * 37 % 128) << 52 | (combination % 16) << 59


def table_flags(flavour: int, level: int) -> int:
    """A table entry: every combination of the bits that restrict rights (R/W, U/S, XD) over
    `flavour` 0-7, and A, PWT, PCD and ignored bits varied too, which must change nothing."""
    flags = ENTRY_PRESENT | (ENTRY_WRITABLE if flavour & 1 else 0) | (ENTRY_USER if flavour & 2 else 0)
    flags |= ENTRY_NO_EXECUTE if flavour & 4 else 0
    flags |= ENTRY_ACCESSED if (flavour + level) % 2 else 0
    flags |= ENTRY_WRITE_THROUGH if flavour == 3 else 0
    flags |= ENTRY_CACHE_DISABLE if flavour == 5 else 0
    return flags | (flavour << 9) | (level << 52)


def build_every_combination(writer: TableWriter) -> None:
    """Every leaf flag combination at every page size, and every table flag combination on every path.

    1. Three regions under top-level entries 2, 3 and 4 hold 512 pages each, of 1 GiB, 2 MiB and
       4 KiB, page n carrying flag combination n (so neighbours differ and `info mem` splits).
    2. Under eight top-level entries in both halves, each table has eight child tables, one per
       combination of R/W, U/S and XD in its entry, down to the PTs; every PDPT and PD also maps
       eight huge pages, and every PT eight 4 KiB pages, with varied rights.
    """
    for region, size in ((2, PAGE_1G), (3, PAGE_2M), (4, PAGE_4K)):
        base = writer.vaddr(region)
        for combination in range(512):
            writer.map(base + combination * size, frame(combination + 512 * region, size), size,
                       leaf_flags(combination, size))

    counter = iter(range(1 << 20))

    def page(variant: int, size: int) -> int:
        rights = (ENTRY_WRITABLE if variant & 1 else 0) | (ENTRY_USER if variant & 2 else 0)
        rights |= ENTRY_NO_EXECUTE if variant & 4 else 0
        extra = ENTRY_ACCESSED | ENTRY_DIRTY | ENTRY_GLOBAL if variant % 3 == 0 else 0
        huge = ENTRY_PAGE_SIZE if size > PAGE_4K else 0
        return frame(next(counter), size) | ENTRY_PRESENT | rights | extra | huge

    def fill(table: int, level: int, slots: Sequence[int]) -> None:
        for flavour, slot in enumerate(slots):
            child = writer.link(table, slot, table_flags(flavour, level))
            if level - 1 == 1:
                writer.tables[child][:8] = [page(variant, PAGE_4K) for variant in range(8)]
            else:
                fill(child, level - 1, range(8))
        if level in (2, 3):
            size = PAGE_2M if level == 2 else PAGE_1G
            writer.tables[table][8:16] = [page(variant, size) for variant in range(8)]

    fill(writer.root, writer.levels, (16, 17, 255, 256, 257, 384, 510, 511))


def test_every_page_size_and_flag_combination(tables_guest: TablesGuest) -> None:
    writer = TableWriter(tables_guest)
    build_every_combination(writer)
    machine = tables_guest.machine
    writer.write(machine.memory)
    snapshot = machine.snapshot("hand-built")
    four_level = tables_guest.levels == 4
    lines = compare_with_qemu(machine, snapshot, info_mem=four_level)
    sizes = {leaf.size for leaf in snapshot.leaves}
    assert sizes == {PAGE_4K, PAGE_2M, PAGE_1G}
    assert {line.flags for line in lines} >= {qemu_letters(leaf_flags(c, PAGE_2M), PAGE_2M) for c in range(512)}
    ranges = parse_info_mem(machine.hmp("info mem")) if four_level else None
    check_walks(snapshot, lines, ranges, sample=WALK_SAMPLE)


def test_tables_the_cpu_would_refuse_or_that_alias(tables_guest: TablesGuest) -> None:
    """Entries QEMU's monitor reads differently from the CPU: both must still print the same."""
    writer = TableWriter(tables_guest)
    top = writer.levels
    user_table = ENTRY_PRESENT | ENTRY_WRITABLE | ENTRY_USER
    # PS in a top-level entry: reserved for the CPU, ignored by QEMU's monitor (a table all the same).
    child = writer.link(writer.root, 1, user_table | ENTRY_PAGE_SIZE)
    below = child
    for _ in range(top - 4):  # down to a PDPT
        below = writer.link(below, 0, user_table)
    writer.tables[below][0] = frame(1, PAGE_1G) | ENTRY_PRESENT | ENTRY_PAGE_SIZE
    # A leaf frame above the physical-address width, bits 51:40 (QEMU keeps bits 49:12).
    writer.map(writer.vaddr(2), (0xFFF << 40) | frame(2, PAGE_4K), PAGE_4K, ENTRY_PRESENT | ENTRY_WRITABLE)
    # A table entry with bit 51 set: QEMU's monitor follows bits 49:12 and finds the table.
    table = writer.link(writer.root, 3, user_table | 1 << 51)
    for _ in range(top - 4):
        table = writer.link(table, 0, user_table)
    writer.tables[table][5] = frame(3, PAGE_1G) | ENTRY_PRESENT | ENTRY_PAGE_SIZE | ENTRY_USER
    # A table beyond RAM, where nothing is mapped: QEMU's monitor reads zeros, and so does the model.
    writer.tables[writer.root][4] = (1 << 38) | user_table
    # Non-present entries full of other bits, which must be ignored.
    writer.tables[writer.root][6] = 0x7FFF_FFFF_FFFF_FFFE
    writer.tables[below][1] = 0xFFFF_FFFF_FFFF_FFFE
    # A self-reference at the top: the root is also its own next level, down to the leaves.
    writer.tables[writer.root][300] = writer.root | ENTRY_PRESENT | ENTRY_WRITABLE
    machine = tables_guest.machine
    writer.write(machine.memory)
    snapshot = machine.snapshot("odd")
    lines = compare_with_qemu(machine, snapshot, info_mem=tables_guest.levels == 4)
    assert any(leaf.reserved for leaf in snapshot.leaves), "the PS bit and bit 51 are reserved for the CPU"
    assert any(problem.kind is FaultKind.NO_MEMORY for problem in snapshot.leaves.problems)
    aliases = [line for line in lines if line.vaddr >> (12 + 9 * (top - 1)) & 0x1FF == 300]
    assert len(aliases) > 1, "the self-reference makes the tables reappear under entry 300"


def test_tables_in_rom_beyond_ram_and_in_device_memory(tables_guest: TablesGuest) -> None:
    """QEMU maps its BIOS ROM again just below 4 GiB, far beyond the guest's RAM: tables there
    are read as the guest reads them, at every level; a table in device registers is not read."""
    writer = TableWriter(tables_guest)
    machine = tables_guest.machine
    physical_map = machine.physical_map()
    rom_pages = [page for region in physical_map if region.kind == "rom" and region.start >= writer.ram_size
                 for page in range(region.start, region.end, PAGE_4K)]
    assert rom_pages, str(physical_map)
    user_table = ENTRY_PRESENT | ENTRY_WRITABLE | ENTRY_USER
    # The ROM as the level below the root, and as each deeper level under tables of our own.
    for number, page in enumerate(rom_pages[:8]):
        writer.tables[writer.root][10 + number] = page | user_table
    for depth in range(1, writer.levels - 1):
        table = writer.link(writer.root, 20 + depth, user_table)
        for _ in range(depth - 1):
            table = writer.link(table, 0, user_table)
        for number, page in enumerate(rom_pages[8:]):
            writer.tables[table][number] = page | user_table
    writer.write(machine.memory)
    snapshot = machine.snapshot("rom")
    lines = compare_with_qemu(machine, snapshot, info_mem=tables_guest.levels == 4)
    walked = [(line, leaf) for line, leaf in zip(lines, snapshot.leaves, strict=True) if not leaf.reserved]
    assert walked, "the ROM holds entries the CPU would use"
    for line, leaf in walked[:: max(1, len(walked) // WALK_SAMPLE)]:
        result = snapshot.walk(line.vaddr)
        assert result.ok and result.frame_paddr == line.paddr, (str(line), result.fault)
        assert any(step.target_place.startswith("in ROM (") for step in result.steps), leaf
    # A table in device registers: QEMU's monitor would read the device; the model refuses.
    device = next(region for region in physical_map if region.kind == "io" and region.size >= PAGE_4K)
    writer.tables[writer.root][100] = device.start | user_table
    writer.write(machine.memory)
    odd = machine.snapshot("device")
    with pytest.raises(TableInDeviceMemory, match=device.name):
        odd.info_tlb()
    refused = odd.walk(writer.vaddr(100))
    assert refused.fault is not None and refused.fault.kind is FaultKind.DEVICE_MEMORY
    assert f"in device memory ({device.name})" in refused.fault.message
    assert [p.kind for p in odd.leaves.problems if p.vaddr == writer.vaddr(100)] == [FaultKind.DEVICE_MEMORY]


# (c) A stock Linux kernel.


@pytest.fixture(scope="module", params=[4, 5], ids=["4-level", "5-level"])
def linux(request: pytest.FixtureRequest) -> Iterator[tuple[Machine, int]]:
    """A stock Linux kernel paused after it panicked with its final tables; booted once per mode."""
    levels: int = request.param
    kernel = linux_kernel.stock_kernel()
    machine = linux_kernel.boot_paused(kernel, cpu=CPU_FOR_LEVELS[levels])
    try:
        yield machine, levels
    finally:
        machine.close()


@pytest.mark.slow(20)  # each: a boot of Linux under TCG
def test_a_stock_linux_kernel(linux: tuple[Machine, int]) -> None:
    machine, levels = linux
    snapshot = machine.snapshot("linux")
    expected = PagingKind.FIVE_LEVEL if levels == 5 else PagingKind.FOUR_LEVEL
    assert snapshot.leaves.mode.kind is expected
    lines = compare_with_qemu(machine, snapshot, info_mem=levels == 4)
    assert len(lines) > 20_000, f"only {len(lines)} leaves: is this the whole kernel?"
    flags = [line.flags for line in lines]
    assert any(f[2] == "P" for f in flags), "Linux maps its direct map with 2 MiB pages"
    assert any(f[0] == "X" for f in flags) and any(f[0] == "-" for f in flags), "NX and executable pages"
    assert any(f[1] == "G" for f in flags), "global pages"
    ranges = parse_info_mem(machine.hmp("info mem", MONITOR_TIMEOUT)) if levels == 4 else None
    check_walks(snapshot, lines, ranges, sample=WALK_SAMPLE)


@pytest.fixture(scope="module")
def guest_files(tmp_path_factory: pytest.TempPathFactory) -> GuestFiles:
    """Lesson 09's Linux guest: the stock kernel, and an initramfs with the greeter."""
    workspace = Workspace.open("oracle-linux-guest", parent=tmp_path_factory.mktemp("linux-guest"))
    program = workspace.build_linux_program(app="apps/greeter")
    return build_initramfs(program, linux_kernel.stock_kernel(), workspace.root / "build" / "guest.cpio")


def qemus_cr3(machine: Machine, cpu: int) -> int:
    """CR3 as the monitor prints it for `cpu` alone (`info registers` with that CPU chosen)."""
    found = re.search(r"\bCR3=([0-9a-f]+)", machine.hmp("info registers", cpu=cpu))
    assert found is not None, f"no CR3 in QEMU's registers of cpu {cpu}"
    return int(found[1], 16)


@pytest.mark.slow(25)  # a boot of Linux on two CPUs under TCG, and two CPUs' tables compared
def paused_in_two_address_spaces(machine: Machine, tries: int = 20) -> tuple[CpuState, ...]:
    """The guest paused at an instant when its two CPUs are on different tables. Each runs its
    own busy process, but Linux may run another task there for a moment (a kworker, the shell
    answering): then resume and pause again."""
    for _ in range(tries):
        machine.pause()
        cpus = machine.cpus()
        if Cr3(cpus[0].cr3).table_paddr != Cr3(cpus[1].cr3).table_paddr:
            return cpus
        machine.resume()
        time.sleep(0.05)
    raise AssertionError(f"the two CPUs were on the same tables at each of {tries} pauses")


def test_the_linux_guest_on_two_cpus_per_cpu(guest_files: GuestFiles) -> None:
    with LinuxGuest(guest_files, name="oracle-linux-two-cpus", cpus=2) as guest:
        guest.spin()  # a busy process pinned to each CPU: two address spaces
        machine = guest.machine
        cpus = paused_in_two_address_spaces(machine)
        assert [cpu.index for cpu in cpus] == [0, 1]
        assert [cpu.cr3 for cpu in cpus] == [qemus_cr3(machine, 0), qemus_cr3(machine, 1)]
        user_pages = []
        for cpu in cpus:
            snapshot = machine.snapshot(f"linux, cpu {cpu.index}", cpu=cpu.index)
            assert snapshot.cpu == cpu.index and snapshot.registers.cr3 == cpu.cr3
            assert snapshot.cpu_cr3 == tuple(each.cr3 for each in cpus)
            lines = compare_with_qemu(machine, snapshot, info_mem=True)
            check_walks(snapshot, lines, parse_info_mem(machine.hmp("info mem", MONITOR_TIMEOUT, cpu=cpu.index)),
                        sample=WALK_SAMPLE)
            user_pages.append({(line.vaddr, line.paddr) for line in lines if line.flags[7] == "U"})
        assert user_pages[0] and user_pages[1], "each CPU's process has user pages"
        assert user_pages[0] != user_pages[1], "two processes: their user pages differ in some frames"
