"""Unit tests for workbench.models.paging on page tables built by hand in a bytearray.

The expected `info tlb` / `info mem` texts come from QEMU 7.2's target/i386/monitor.c; the ones
marked "captured" were printed by QEMU 7.2 itself for the tables rebuilt here.
"""

from __future__ import annotations

import itertools
import json
import random
import struct
import time
from typing import cast

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from workbench.errors import WorkbenchError
from workbench.models.cpu import CR0_PE, CR0_PG, CR4_PAE, CR4_PKE, CR4_PKS, EFER_LMA, Registers
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
    PAGE_SIZE_1G,
    PAGE_SIZE_2M,
    PAGE_SIZE_4K,
    BytesMemory,
    ControlRegisters,
    Entry,
    EntryKind,
    FaultKind,
    Leaves,
    Level,
    MappedRange,
    MonitorOutputError,
    PageFaultError,
    PageTableTree,
    PagingKind,
    PagingMode,
    Permissions,
    PhysicalMemoryError,
    TableInDeviceMemory,
    TlbLine,
    UnsupportedPagingModeError,
    WalkLimitError,
    diff,
    effective_permissions,
    format_info_mem,
    format_info_tlb,
    format_mappings,
    format_tree,
    format_walk,
    info_tlb_text,
    leaves,
    mappings,
    parse_info_mem,
    parse_info_tlb,
    read_tables,
    tlb_lines,
    translate,
    vaddrs_for_frame,
    walk,
)
from workbench.models.paging.qemu_text import _qemu_mem_events_emulated, _qemu_mem_print
from workbench.models.paging.tables import TableReader
from workbench.models.physmap import PhysicalMap, PhysicalRegion
from workbench.models.snapshot import Snapshot

P = ENTRY_PRESENT
RW = ENTRY_WRITABLE
US = ENTRY_USER
PS = ENTRY_PAGE_SIZE
XD = ENTRY_NO_EXECUTE
A = ENTRY_ACCESSED
D = ENTRY_DIRTY
G = ENTRY_GLOBAL
ADDRESS = 0x000F_FFFF_FFFF_F000
LEAF_LEVEL = {PAGE_SIZE_4K: 1, PAGE_SIZE_2M: 2, PAGE_SIZE_1G: 3}


class Tables:
    """Builds x86-64 page tables in a bytearray; tables come from a bump allocator."""

    def __init__(self, size: int = 8 << 20, *, la57: bool = False, first_table: int = 0x10000,
                 root: int | None = None) -> None:
        self.mem = bytearray(size)
        self.la57 = la57
        self.next_table = first_table
        self.root = self.alloc() if root is None else root

    @property
    def top(self) -> int:
        return 5 if self.la57 else 4

    def alloc(self) -> int:
        paddr = self.next_table
        self.next_table += 0x1000
        assert self.next_table <= len(self.mem), "out of table space"
        self.mem[paddr : paddr + 0x1000] = bytes(0x1000)
        return paddr

    def set(self, table: int, index: int, value: int) -> None:
        struct.pack_into("<Q", self.mem, table + 8 * index, value)

    def get(self, table: int, index: int) -> int:
        value: int = struct.unpack_from("<Q", self.mem, table + 8 * index)[0]
        return value

    def map(self, vaddr: int, paddr: int, size: int = PAGE_SIZE_4K, flags: int = P | RW,
            table_flags: int = P | RW | US) -> bool:
        """Map one page; False (and nothing changed) if it collides with an existing mapping."""
        leaf_level = LEAF_LEVEL[size]
        table = self.root
        for level in range(self.top, leaf_level, -1):
            index = (vaddr >> (12 + 9 * (level - 1))) & 0x1FF
            entry = self.get(table, index)
            if not entry & P:
                child = self.alloc()
                self.set(table, index, child | table_flags)
                table = child
            elif level <= 3 and entry & PS:
                return False
            else:
                table = entry & ADDRESS
        index = (vaddr >> (12 + 9 * (leaf_level - 1))) & 0x1FF
        if self.get(table, index) & P:
            return False
        self.set(table, index, paddr | flags | (PS if size > PAGE_SIZE_4K else 0))
        return True

    def regs(self, **kwargs: bool) -> ControlRegisters:
        return ControlRegisters.long_mode(self.root, la57=self.la57, **kwargs)

    @property
    def memory(self) -> BytesMemory:
        return BytesMemory(self.mem)


def entry_for(t: Tables, vaddr: int, level: int) -> tuple[int, int]:
    """(table paddr, index) of the entry at `level` on the path of vaddr (walking present entries)."""
    table = t.root
    for lv in range(t.top, level, -1):
        table = t.get(table, (vaddr >> (12 + 9 * (lv - 1))) & 0x1FF) & ADDRESS
    return table, (vaddr >> (12 + 9 * (level - 1))) & 0x1FF


KERNEL = 0xFFFF_FFFF_8000_0000


# ------------------------------------------------------------------------------------------
# Levels, modes, entries


def test_levels_name_the_vaddr_bits_they_use() -> None:
    assert [lv.name for lv in Level] == ["PT", "PD", "PDPT", "PML4", "PML5"]
    assert Level.PML4.vaddr_bits == (47, 39)
    assert Level.PT.vaddr_bits == (20, 12)
    assert Level.PML5.vaddr_bits == (56, 48)
    assert Level.PD.entry_span == PAGE_SIZE_2M
    assert Level.PDPT.entry_name == "PDPTE"
    assert Level.PDPT.can_map_page and not Level.PML4.can_map_page


def test_mode_follows_the_registers_like_qemu() -> None:
    def mode(cr0: int, cr4: int, efer: int) -> PagingKind:
        return PagingMode.from_registers(ControlRegisters(cr0, 0x1000, cr4, efer)).kind

    assert mode(CR0_PE, 0, 0) is PagingKind.OFF
    assert mode(CR0_PE | CR0_PG, 0, 0) is PagingKind.LEGACY_32
    assert mode(CR0_PE | CR0_PG, CR4_PAE, 0) is PagingKind.PAE
    assert mode(CR0_PE | CR0_PG, CR4_PAE, EFER_LMA) is PagingKind.FOUR_LEVEL
    assert mode(CR0_PE | CR0_PG, CR4_PAE | (1 << 12), EFER_LMA) is PagingKind.FIVE_LEVEL


def test_canonical_addresses_48_and_57_bits() -> None:
    four = PagingMode.from_registers(ControlRegisters.long_mode(0x1000))
    five = PagingMode.from_registers(ControlRegisters.long_mode(0x1000, la57=True))
    for vaddr in (0, 0x7FFF_FFFF_FFFF, 0xFFFF_8000_0000_0000, 0xFFFF_FFFF_FFFF_FFFF):
        assert four.is_canonical(vaddr) and five.is_canonical(vaddr)
    for vaddr in (0x8000_0000_0000, 0xFFFF_7FFF_FFFF_FFFF, 0x00FF_FFFF_FFFF_FFFF):
        assert not four.is_canonical(vaddr)
        assert five.is_canonical(vaddr)
    for vaddr in (0x0100_0000_0000_0000, 0xFEFF_FFFF_FFFF_FFFF, 1 << 63):
        assert not five.is_canonical(vaddr)
    assert four.canonical(0x8000_0000_0000) == 0xFFFF_8000_0000_0000
    assert five.canonical(1 << 56) == 0xFF00_0000_0000_0000


def test_entry_fields_cover_all_64_bits_at_every_level() -> None:
    for maxphyaddr in (52, 46):
        mode = PagingMode.from_registers(ControlRegisters.long_mode(0x1000), maxphyaddr=maxphyaddr)
        for raw, level in ((0x8000_0000_0012_3067, 1), (0x0000_0000_0020_00E3, 2), (0x0000_0000_4000_0083, 3),
                           (0x0000_0000_0010_2003, 4)):
            covered: set[int] = set()
            for field in Entry(raw, Level(level)).fields(mode):
                high, _, low = field.bits.partition(":")
                assert not covered & set(range(int(low or high), int(high) + 1)), (level, field)
                covered.update(range(int(low or high), int(high) + 1))
            assert covered == set(range(64)), (level, sorted(set(range(64)) - covered))


def test_rights_values_and_effective_permissions_agree() -> None:
    for rights in range(8):
        assert Permissions.from_rights(rights).rights == rights
    kernel_data = P | RW | XD
    assert str(effective_permissions(P | RW | US, P | RW | US, nxe=True)) == "urwx"
    assert str(effective_permissions(kernel_data & (P | US), kernel_data | P, nxe=True)) == "-r--"
    assert str(effective_permissions(kernel_data, kernel_data, nxe=False)) == "-rwx"


def test_entry_flag_names_follow_the_sdm_per_level() -> None:
    assert Entry(0x1003, Level.PML4).flag_names == ("P", "R/W")
    assert Entry(P | RW | US | ENTRY_WRITE_THROUGH | ENTRY_CACHE_DISABLE | A | D | PS | G | XD, Level.PD).flag_names \
        == ("P", "R/W", "U/S", "PWT", "PCD", "A", "D", "PS", "G", "XD")
    # In a PTE bit 7 is PAT; in a 2 MiB page bit 12 is PAT; in a table D and G are ignored.
    assert Entry(P | PS, Level.PT).flag_names == ("P", "PAT")
    assert Entry(P | PS | ENTRY_PAT_LARGE, Level.PD).flag_names == ("P", "PS", "PAT")
    table = Entry(P | D | G | (0x7 << 9), Level.PD)
    assert table.flag_names == ("P",)
    assert table.ignored_bits == D | G | (0x7 << 9)
    assert Entry(P | PS | 0x4000_0000, Level.PDPT).target_paddr == 0x4000_0000
    assert Entry(P | PS | 0x4000_0000, Level.PDPT).page_size == PAGE_SIZE_1G
    assert Entry(0x1003, Level.PML4).describe() == "PML4E 0x0000000000001003 P R/W -> PDPT table 0x0000000000001000"
    assert Entry(0, Level.PT).describe() == "PTE 0x0000000000000000 not present"
    assert Entry(0x7 << 59 | P, Level.PT).protection_key == 7


LEAF_FLAG_BITS = (RW, US, ENTRY_WRITE_THROUGH, ENTRY_CACHE_DISABLE, A, D, G, XD)


@pytest.mark.parametrize("size", [PAGE_SIZE_4K, PAGE_SIZE_2M, PAGE_SIZE_1G])
def test_every_leaf_flag_combination_decodes_and_prints_like_qemu(size: int) -> None:
    t = Tables()
    combos = list(itertools.product((0, 1), repeat=len(LEAF_FLAG_BITS)))
    vaddrs = []
    for n, combo in enumerate(combos):
        flags = P | sum(bit for bit, on in zip(LEAF_FLAG_BITS, combo, strict=True) if on)
        vaddr = n * size
        assert t.map(vaddr, (n % 4) * size + size, size, flags)
        vaddrs.append((vaddr, flags))
    found = leaves(t.memory, t.regs())
    assert [row[0] for row in found.rows] == [v for v, _ in vaddrs]
    for line, (vaddr, flags) in zip(tlb_lines(found), vaddrs, strict=True):
        expected = "".join(
            letter if on else "-"
            for letter, on in (("X", flags & XD), ("G", flags & G), ("P", size > PAGE_SIZE_4K), ("D", flags & D),
                               ("A", flags & A), ("C", flags & ENTRY_CACHE_DISABLE),
                               ("T", flags & ENTRY_WRITE_THROUGH), ("U", flags & US), ("W", flags & RW))
        )
        assert line.vaddr == vaddr
        assert line.flags == expected
        result = walk(t.memory, t.regs(), vaddr + 0x123)
        assert result.ok and result.page_size == size
        leaf_step = result.steps[-1]
        names = set(leaf_step.flags)
        assert ("R/W" in names) == bool(flags & RW)
        assert ("U/S" in names) == bool(flags & US)
        assert ("XD" in names) == bool(flags & XD)
        assert ("G" in names) == bool(flags & G)
        assert ("D" in names) == bool(flags & D)
        assert result.permissions == Permissions(user=bool(flags & US), writable=bool(flags & RW),
                                                 executable=not flags & XD)


# ------------------------------------------------------------------------------------------
# Walks


@pytest.mark.parametrize("la57", [False, True])
@pytest.mark.parametrize("size", [PAGE_SIZE_4K, PAGE_SIZE_2M, PAGE_SIZE_1G])
def test_walk_reports_every_step_and_the_frame(la57: bool, size: int) -> None:
    t = Tables(la57=la57)
    vaddr = KERNEL | (0x5 * size)
    frame = 0x4000_0000 if size == PAGE_SIZE_1G else 0x60_0000
    assert t.map(vaddr, frame, size, P | RW | A | XD)
    offset = size // 2 + 0x234
    result = walk(t.memory, t.regs(), vaddr + offset)
    assert result.ok and not result.identity
    assert result.paddr == frame + offset
    assert result.page_size == size
    assert result.page_vaddr == vaddr and result.frame_paddr == frame
    assert result.paddr_in_ram is (frame < len(t.mem))
    levels = [step.level for step in result.steps]
    top = [Level.PML5] if la57 else []
    assert levels == [*top, Level.PML4, Level.PDPT, Level.PD, Level.PT][: len(top) + 4 - LEAF_LEVEL[size] + 1]
    assert result.steps[0].table_paddr == t.root
    for step in result.steps:
        high, low = step.vaddr_bits
        assert step.index == (vaddr >> low) & 0x1FF and high == low + 8
        assert step.entry_paddr == step.table_paddr + 8 * step.index
        assert step.reserved_bits == 0
    for upper, lower in itertools.pairwise(result.steps):
        assert upper.target is EntryKind.TABLE and upper.target_paddr == lower.table_paddr
    assert result.steps[-1].target is EntryKind.PAGE and result.steps[-1].target_paddr == frame
    assert result.permissions == Permissions(user=False, writable=True, executable=False)
    assert translate(t.memory, t.regs(), vaddr + offset) == frame + offset


def test_effective_permissions_need_every_level() -> None:
    t = Tables()
    assert t.map(0x1000, 0x5000, flags=P | RW | US, table_flags=P | US)  # tables read-only
    assert t.map(0x40_0000, 0x6000, flags=P | RW | US, table_flags=P | RW)  # tables supervisor
    writable_tables = walk(t.memory, t.regs(), 0x1000)
    assert writable_tables.permissions == Permissions(user=True, writable=False, executable=True)
    # the second mapping shares the PML4E and PDPTE of the first (P|US), so it is read-only too
    assert walk(t.memory, t.regs(), 0x40_0000).permissions == Permissions(False, False, True)


def test_no_execute_anywhere_on_the_path_with_nxe() -> None:
    t = Tables()
    assert t.map(0x1000, 0x5000, flags=P | RW, table_flags=P | RW | XD)
    assert walk(t.memory, t.regs(nxe=True), 0x1000).permissions == Permissions(False, True, False)


def test_xd_without_nxe_is_a_reserved_bit_fault() -> None:
    t = Tables()
    assert t.map(0x1000, 0x5000, flags=P | RW | XD)
    result = walk(t.memory, t.regs(nxe=False), 0x1000)
    assert not result.ok and result.fault is not None
    assert result.fault.kind is FaultKind.RESERVED_BIT
    assert result.fault.level is Level.PT
    assert result.fault.reserved_bits == XD
    assert "EFER.NXE is off" in result.fault.message
    assert "63" in result.fault.message
    # without XD anywhere, NXE off changes nothing
    assert t.map(0x2000, 0x6000, flags=P | RW)
    assert walk(t.memory, t.regs(nxe=False), 0x2000).permissions == Permissions(False, True, True)


@pytest.mark.parametrize(
    ("size", "bad_bit", "level"),
    [(PAGE_SIZE_1G, 1 << 13, Level.PDPT), (PAGE_SIZE_1G, 1 << 29, Level.PDPT),
     (PAGE_SIZE_2M, 1 << 13, Level.PD), (PAGE_SIZE_2M, 1 << 20, Level.PD)],
)
def test_reserved_bits_in_large_pages(size: int, bad_bit: int, level: Level) -> None:
    t = Tables()
    assert t.map(0, 0, size, P | RW | bad_bit)
    fault = walk(t.memory, t.regs(), 0).fault
    assert fault is not None and fault.kind is FaultKind.RESERVED_BIT
    assert fault.level is level and fault.reserved_bits == bad_bit
    assert "RSVD" in fault.message


def test_ps_in_a_pml4_entry_is_reserved_but_the_pat_bit_of_a_pte_is_not() -> None:
    t = Tables()
    assert t.map(0x1000, 0x5000, flags=P | RW | PS)  # bit 7 of a PTE: PAT
    assert walk(t.memory, t.regs(), 0x1000).ok
    table, index = entry_for(t, 0x1000, 4)
    t.set(table, index, t.get(table, index) | PS)
    fault = walk(t.memory, t.regs(), 0x1000).fault
    assert fault is not None and fault.kind is FaultKind.RESERVED_BIT and fault.level is Level.PML4


def test_bits_above_maxphyaddr_are_reserved() -> None:
    t = Tables()
    assert t.map(0x1000, (1 << 45) | 0x5000)
    assert walk(t.memory, t.regs(), 0x1000).ok  # with the default 52 bits
    fault = walk(t.memory, t.regs(), 0x1000, maxphyaddr=40).fault
    assert fault is not None and fault.kind is FaultKind.RESERVED_BIT and fault.reserved_bits == 1 << 45


def test_protection_keys_only_with_pke_or_pks() -> None:
    t = Tables()
    assert t.map(0x1000, 0x5000, flags=P | RW | US | (5 << 59))
    assert t.map(KERNEL, 0x6000, flags=P | RW | (9 << 59), table_flags=P | RW)
    assert walk(t.memory, t.regs(), 0x1000).protection_key is None
    pke = ControlRegisters.long_mode(t.root, cr4_extra=CR4_PKE)
    pks = ControlRegisters.long_mode(t.root, cr4_extra=CR4_PKS)
    assert walk(t.memory, pke, 0x1000).protection_key == 5
    assert walk(t.memory, pke, KERNEL).protection_key is None
    assert walk(t.memory, pks, KERNEL).protection_key == 9
    assert walk(t.memory, pks, 0x1000).protection_key is None


@pytest.mark.parametrize("la57", [False, True])
def test_not_present_at_every_level(la57: bool) -> None:
    t = Tables(la57=la57)
    vaddr = KERNEL + 0x1000
    assert t.map(vaddr, 0x5000)
    for level in range(1, t.top + 1):
        table, index = entry_for(t, vaddr, level)
        saved = t.get(table, index)
        t.set(table, index, saved & ~P)
        result = walk(t.memory, t.regs(), vaddr)
        with pytest.raises(PageFaultError) as caught:
            translate(t.memory, t.regs(), vaddr)
        t.set(table, index, saved)
        assert result.fault is not None
        assert result.fault.kind is FaultKind.NOT_PRESENT
        assert result.fault.level == level
        assert result.fault.table_paddr == table and result.fault.index == index
        assert len(result.steps) == t.top - level + 1
        assert result.steps[-1].target is None
        name = Level(level).entry_name
        assert f"{name} {index}" in result.fault.message and "#PF" in result.fault.message
        assert caught.value.walk == result and caught.value.fault == result.fault
        assert isinstance(caught.value, WorkbenchError)
        assert str(caught.value) == result.fault.message


@pytest.mark.parametrize(("la57", "vaddr"), [(False, 0x0000_8000_0000_0000), (False, 0xFFFF_7FFF_FFFF_F000),
                                             (True, 0x0100_0000_0000_0000), (True, 0x8000_0000_0000_0000)])
def test_non_canonical_vaddrs_fault_before_any_table(la57: bool, vaddr: int) -> None:
    t = Tables(la57=la57)
    result = walk(t.memory, t.regs(), vaddr)
    assert result.fault is not None and result.fault.kind is FaultKind.NON_CANONICAL
    assert result.steps == () and result.fault.level is None
    assert "#GP" in result.fault.message and "not canonical" in result.fault.message


def test_paging_off_is_an_identity_translation() -> None:
    regs = ControlRegisters(cr0=CR0_PE, cr3=0, cr4=0, efer=0)
    mem = BytesMemory(bytes(0x10000))
    result = walk(mem, regs, 0x1234)
    assert result.ok and result.identity and result.paddr == 0x1234 and result.steps == ()
    assert result.permissions == Permissions(True, True, True)
    assert "identity" in format_walk(result)
    beyond = walk(mem, regs, 1 << 32)
    assert beyond.fault is not None and "32 bits" in beyond.fault.message
    assert len(leaves(mem, regs)) == 0
    assert format_info_tlb(mem, regs) == "PG disabled\r\n"
    assert format_info_mem(mem, regs) == "PG disabled\r\n"
    assert PageTableTree(mem, regs).root is None


@pytest.mark.parametrize("cr4", [0, CR4_PAE])
def test_32_bit_and_pae_paging_are_refused_clearly(cr4: int) -> None:
    regs = ControlRegisters(cr0=CR0_PE | CR0_PG, cr3=0x1000, cr4=cr4, efer=0)
    mem = BytesMemory(bytes(0x10000))
    for call in (lambda: walk(mem, regs, 0), lambda: leaves(mem, regs), lambda: PageTableTree(mem, regs),
                 lambda: format_info_tlb(mem, regs), lambda: format_info_mem(mem, regs)):
        with pytest.raises(UnsupportedPagingModeError, match="long mode"):
            call()


def test_a_table_where_there_is_no_memory_reads_as_zeros_as_the_cpu_reads_it() -> None:
    t = Tables(size=1 << 20)
    assert t.map(0x1000, 0x5000)
    table, index = entry_for(t, 0x1000, 2)
    t.set(table, index, 0x7000_0000 | P | RW)  # the PD entry points beyond RAM, where nothing is
    result = walk(t.memory, t.regs(), 0x1000)
    # The CPU reads the PT there as zeros: entry 1 is not present, a plain #PF one level down.
    assert result.fault is not None and result.fault.kind is FaultKind.NOT_PRESENT
    assert result.fault.level is Level.PT and result.fault.table_paddr == 0x7000_0000
    assert result.steps[-2].target is EntryKind.NO_MEMORY
    assert "no memory" in result.fault.message and "reads zeros" in result.fault.message
    assert "(where the guest has no memory)" in format_walk(result)
    found = leaves(t.memory, t.regs())
    assert len(found) == 0
    assert [(p.kind, p.level) for p in found.problems] == [(FaultKind.NO_MEMORY, Level.PD)]
    assert "where the guest has no memory" in found.problems[0].message
    assert format_info_tlb(t.memory, t.regs()) == ""  # QEMU's monitor reads the same zeros
    node = PageTableTree(t.memory, t.regs()).root
    for _level in range(2):  # PML4 entry 0, PDPT entry 0, down to the PD
        assert node is not None
        node = node.entries()[0].child
    assert node is not None and node.table_paddr == table
    tree_entry = next(e for e in node.entries() if e.index == index)
    assert tree_entry.kind is EntryKind.NO_MEMORY and tree_entry.child is None
    far = ControlRegisters.long_mode(0x4000_0000)
    cr3_walk = walk(t.memory, far, 0)
    assert cr3_walk.fault is not None and cr3_walk.fault.kind is FaultKind.NOT_PRESENT
    assert cr3_walk.fault.level is Level.PML4 and "no memory" in cr3_walk.fault.message
    problem = leaves(t.memory, far).problems[0]
    assert problem.kind is FaultKind.NO_MEMORY and problem.from_cr3 and "CR3" in problem.message


def _rom_and_device_memory() -> tuple[Tables, BytesMemory]:
    """1 MiB of RAM with a "ROM" at 0xe0000 (its bytes in the data) and device registers at 0xd0000."""
    t = Tables(size=1 << 20)
    regions = (PhysicalRegion(0, 0xD0000, "ram", "ram", 0),
               PhysicalRegion(0xD0000, 0xD1000, "io", "test-device"),
               PhysicalRegion(0xD1000, 0xE0000, "ram", "ram", 0xD1000),
               PhysicalRegion(0xE0000, 0x100000, "rom", "bios"))
    return t, BytesMemory(t.mem, PhysicalMap(regions))


def test_tables_in_rom_are_read_and_tables_in_device_memory_are_not() -> None:
    t, memory = _rom_and_device_memory()
    assert t.map(0x1000, 0x5000) and t.map(0x40_0000, 0x6000)
    pd, index = entry_for(t, 0x1000, 2)
    t.set(pd, index, 0xE0000 | P | RW)  # the PT of vaddr 0..2 MiB is in ROM
    t.set(0xE0000, 3, 0xF000 | P | RW)  # "ROM contents": entry 3 maps vaddr 0x3000
    in_rom = walk(memory, t.regs(), 0x3000)
    assert in_rom.ok and in_rom.paddr == 0xF000 and in_rom.steps[-2].target_place == "in ROM (bios)"
    assert in_rom.paddr_in_ram and in_rom.paddr_place == "in RAM"
    assert [leaf.vaddr for leaf in leaves(memory, t.regs())] == [0x3000, 0x40_0000]
    assert format_info_tlb(memory, t.regs()).count("\r\n") == 2
    pd2, index2 = entry_for(t, 0x40_0000, 2)
    t.set(pd2, index2, 0xD0000 | P | RW)  # the PT of 4 MiB..6 MiB is device registers
    in_device = walk(memory, t.regs(), 0x40_0000)
    assert in_device.fault is not None and in_device.fault.kind is FaultKind.DEVICE_MEMORY
    assert in_device.fault.level is Level.PD and "in device memory (test-device)" in in_device.fault.message
    assert in_device.steps[-1].target is EntryKind.DEVICE_MEMORY
    found = leaves(memory, t.regs())
    assert [leaf.vaddr for leaf in found] == [0x3000]
    assert [(p.kind, p.region and p.region.name) for p in found.problems] == [(FaultKind.DEVICE_MEMORY, "test-device")]
    with pytest.raises(TableInDeviceMemory, match="test-device"):  # QEMU's monitor would read the device
        info_tlb_text(found)
    with pytest.raises(TableInDeviceMemory, match="test-device"):
        format_info_mem(memory, t.regs())
    problem = leaves(memory, ControlRegisters.long_mode(0xD0000)).problems[0]
    assert problem.kind is FaultKind.DEVICE_MEMORY and problem.from_cr3
    # A snapshot keeps the ROM table, so its walks agree after the "ROM" bytes are gone.
    snapshot = Snapshot.take(memory, cast(Registers, t.regs()))
    t.mem[0xE0000:0xE1000] = bytes(0x1000)
    assert snapshot.walk(0x3000).paddr == 0xF000 and snapshot.physical_map is memory.physical_map


def test_a_walk_names_the_memory_its_frame_is_in() -> None:
    t, memory = _rom_and_device_memory()
    for vaddr, frame, place in ((0x1000, 0xE1000, "in ROM (bios)"), (0x2000, 0xD0000, "in device memory (test-device)"),
                                (0x3000, 0x7000_0000, "where the guest has no memory")):
        assert t.map(vaddr, frame)
        result = walk(memory, t.regs(), vaddr)
        assert result.ok and result.paddr_in_ram is False and result.paddr_place == place
        assert f"({place})" in format_walk(result)


def test_a_frame_outside_ram_is_a_valid_mapping() -> None:
    t = Tables(size=1 << 20)
    assert t.map(0x1000, 0xFEE0_0000)  # the local APIC
    result = walk(t.memory, t.regs(), 0x1000)
    assert result.ok and result.paddr == 0xFEE0_0000 and result.paddr_in_ram is False
    assert "(where the guest has no memory)" in format_walk(result)  # plain RAM knows no APIC


def test_recursive_pml4_entry() -> None:
    t = Tables()
    assert t.map(0x1000, 0x5000)
    t.set(t.root, 510, t.root | P | RW)  # the classic self-reference
    recursive_base = 0xFFFF_0000_0000_0000 | (510 << 39)
    # vaddr of PML4[510] as a PT through four self-references is the PML4 page itself
    self_page = recursive_base | (510 << 30) | (510 << 21) | (510 << 12)
    result = walk(t.memory, t.regs(), self_page)
    assert result.ok and result.frame_paddr == t.root
    assert all(step.recursive for step in result.steps[:3])
    found = leaves(t.memory, t.regs())
    assert 0x1000 in [row[0] for row in found.rows]
    assert self_page in [row[0] for row in found.rows]
    assert not found.truncated
    # every page visible through the window is one of the tables
    assert {row[1] for row in found.rows if row[0] >= recursive_base} <= {t.root, *range(0x11000, t.next_table, 0x1000)}
    tree = PageTableTree(t.memory, t.regs())
    assert tree.root is not None
    entries = tree.root.entries()
    assert [e.index for e in entries] == [0, 510]
    assert entries[1].recursive and entries[1].child is not None and entries[1].child.recursive
    text = format_tree(tree)
    assert "recursive" in text
    assert text.count("\n") == 5  # header + 4 levels to 0x1000 + the recursive entry


def test_garbage_that_points_every_entry_at_the_root_terminates() -> None:
    t = Tables(size=1 << 16, first_table=0x1000)
    for i in range(512):
        t.set(t.root, i, t.root | P | RW)
    started = time.monotonic()
    found = leaves(t.memory, t.regs(), max_entries=200_000)
    elapsed = time.monotonic() - started
    assert found.truncated and found.entries_examined > 200_000
    assert elapsed < 5  # a loose bound: the point is that it ends
    with pytest.raises(WalkLimitError, match="max_entries"):
        format_info_tlb(t.memory, t.regs(), max_entries=10_000)
    result = walk(t.memory, t.regs(), 0x7FFF_FFFF_F000)
    assert result.ok and result.frame_paddr == t.root  # four self-references end at the root itself
    assert all(step.recursive for step in result.steps[:3])
    assert format_tree(PageTableTree(t.memory, t.regs()), max_lines=50).endswith("(stopped after 50 lines)")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rng=st.randoms(use_true_random=True),
    confine=st.booleans(),
    cr3_page=st.integers(0, 5),
    vaddr=st.integers(0, (1 << 64) - 1),
    switches=st.tuples(st.booleans(), st.booleans()),
)
def test_walk_never_raises_on_random_memory(
    rng: random.Random, confine: bool, cr3_page: int, vaddr: int, switches: tuple[bool, bool]
) -> None:
    # 16 KiB of random bytes; cr3 pages 4 and 5 are outside it. With `confine`, every entry's
    # address is folded back into RAM so that walks go deep, alias and loop.
    la57, nxe = switches
    data = bytearray(rng.getrandbits(0x4000 * 8).to_bytes(0x4000, "little"))
    if confine:
        for i in range(0, len(data), 8):
            value = int.from_bytes(data[i : i + 8], "little")
            value = (value & ~ADDRESS) | ((value >> 12) % 4) << 12
            data[i : i + 8] = value.to_bytes(8, "little")
    memory = BytesMemory(data)
    regs = ControlRegisters.long_mode(cr3_page * 0x1000, la57=la57, nxe=nxe)
    result = walk(memory, regs, vaddr)
    assert result.ok == (result.fault is None)
    assert format_walk(result)
    found = leaves(memory, regs, max_entries=5_000)
    format_tree(PageTableTree(memory, regs), max_lines=200)
    if not found.truncated:
        assert parse_info_tlb(format_info_tlb(memory, regs)) == tlb_lines(found)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    writes=st.lists(st.tuples(st.integers(0, 3 * 512 - 1), st.integers(0, (1 << 64) - 1)), max_size=20),
    la57=st.booleans(),
)
def test_random_tables_agree_with_every_view(writes: list[tuple[int, int]], la57: bool) -> None:
    # Three tables of random entries whose addresses stay inside them, so that walks go deep,
    # alias, loop and hit reserved bits.
    mem = bytearray(3 * 0x1000)
    for slot, value in writes:
        struct.pack_into("<Q", mem, 8 * slot, (value & ~ADDRESS) | ((value >> 12) % 3) << 12)
    memory = BytesMemory(mem)
    regs = ControlRegisters.long_mode(0, la57=la57)
    found = leaves(memory, regs, max_entries=20_000)
    assume(not found.truncated)
    for leaf in found[:50]:
        result = walk(memory, regs, leaf.vaddr)
        if leaf.reserved:
            assert result.fault is not None and result.fault.kind is FaultKind.RESERVED_BIT
        else:
            assert result.ok and result.paddr == leaf.paddr and result.page_size == leaf.size
            assert result.permissions == leaf.permissions
    assert parse_info_tlb(format_info_tlb(memory, regs)) == tlb_lines(found)
    if not la57:
        assert parse_info_mem(format_info_mem(memory, regs)) == mappings(found)
        mode = PagingMode.from_registers(regs)
        emulated = _qemu_mem_events_emulated(TableReader(memory), mode, 10**6, la57_bug=False)
        assert _qemu_mem_print(mode, emulated, "\r\n") == format_info_mem(memory, regs)


# ------------------------------------------------------------------------------------------
# Hypothesis: random mappings


mapping_strategy = st.lists(
    st.tuples(
        st.sampled_from([PAGE_SIZE_4K, PAGE_SIZE_2M, PAGE_SIZE_1G]),
        st.integers(0, (1 << 20) - 1),  # vaddr slot
        st.booleans(),  # upper half
        st.integers(0, (1 << 20) - 1),  # frame number (in units of the page size)
        st.sampled_from([0, RW, US, RW | US]),
        st.booleans(),  # XD
        st.sampled_from([0, A, A | D, G]),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(specs=mapping_strategy, la57=st.booleans())
def test_translate_agrees_with_how_the_tables_were_built(
    specs: list[tuple[int, int, bool, int, int, bool, int]], la57: bool
) -> None:
    t = Tables(size=2 << 20, la57=la57)
    built: dict[int, tuple[int, int, int]] = {}
    vaddr_bits = 57 if la57 else 48
    for size, slot, upper, frame, rights, xd, extra in specs:
        vaddr = (slot * size) % (1 << (vaddr_bits - 1))
        if upper:
            vaddr |= ((1 << 64) - 1) & ~((1 << (vaddr_bits - 1)) - 1)
        paddr = (frame * size) % (1 << 46)
        flags = P | rights | (XD if xd else 0) | extra
        try:
            ok = t.map(vaddr, paddr, size, flags)
        except AssertionError:
            break  # out of table space
        if ok:
            built[vaddr] = (paddr, size, flags)
    regs = t.regs()
    for vaddr, (paddr, size, flags) in built.items():
        offset = (vaddr * 7 + 5) % size
        assert translate(t.memory, regs, vaddr + offset) == paddr + offset
        result = walk(t.memory, regs, vaddr)
        assert result.page_size == size
        assert result.permissions == Permissions(user=bool(flags & US), writable=bool(flags & RW),
                                                 executable=not flags & XD)
    found = leaves(t.memory, regs)
    assert {row[0]: (row[1], row[2]) for row in found.rows} == {v: (p, s) for v, (p, s, _) in built.items()}
    assert [row[0] for row in found.rows] == sorted(built)
    assert parse_info_tlb(format_info_tlb(t.memory, regs)) == tlb_lines(found)
    assert parse_info_tlb(format_info_tlb(t.memory, regs, newline="\n")) == tlb_lines(found)
    if not la57:
        assert parse_info_mem(format_info_mem(t.memory, regs)) == mappings(found)
    for vaddr, (paddr, _size, _flags) in built.items():
        assert vaddr in vaddrs_for_frame(found, paddr)
    ranges = mappings(found, split_on_execute=True)
    assert sum(r.size for r in ranges) == sum(s for _p, s, _f in built.values())


# ------------------------------------------------------------------------------------------
# QEMU's `info tlb` and `info mem`


def boot_guest_tables(la57: bool) -> Tables:
    """The tables of the tiny test guest the captured QEMU output below came from.

    PML5 at 0x200000 (5-level only), PML4 0x201000, PDPT 0x202000, PD 0x203000 mapping two
    2 MiB pages at 0 and 2 MiB; QEMU's CPU had set A and D on the first.
    """
    t = Tables(size=64 << 20, la57=la57, root=0x200000 if la57 else 0x201000)
    t.set(0x200000, 0, 0x201003)
    t.set(0x201000, 0, 0x202023)
    t.set(0x202000, 0, 0x203023)
    t.set(0x203000, 0, 0x0000E3)
    t.set(0x203000, 1, 0x200083)
    return t


def test_info_tlb_and_info_mem_match_captured_qemu_output() -> None:
    t = boot_guest_tables(la57=False)
    # captured from QEMU 7.2.22 (Debian 12) with `human-monitor-command`
    assert format_info_tlb(t.memory, t.regs()) == (
        "0000000000000000: 0000000000000000 --PDA---W\r\n0000000000200000: 0000000000200000 --P-----W\r\n"
    )
    assert format_info_mem(t.memory, t.regs()) == "0000000000000000-0000000000400000 0000000000400000 -rw\r\n"
    five = boot_guest_tables(la57=True)
    assert format_info_tlb(five.memory, five.regs()) == (
        "0000000000000000: 0000000000000000 --PDA---W\r\n0000000000200000: 0000000000200000 --P-----W\r\n"
    )
    # QEMU 7.2's mem_info_la57 tests P the wrong way round at the PDPT and PD: it prints nothing.
    assert format_info_mem(five.memory, five.regs()) == ""
    assert mappings(leaves(five.memory, five.regs())) == (MappedRange(0, 4 << 20, False, True),)


def test_info_tlb_format_from_qemus_print_pte() -> None:
    t = Tables()
    assert t.map(KERNEL, 0x20_0000, PAGE_SIZE_2M, P | RW | G | XD | A | D | ENTRY_PAT_LARGE)
    assert t.map(KERNEL + PAGE_SIZE_2M, 0x40_0000 | 0x1000, PAGE_SIZE_4K, P | US | PS | ENTRY_WRITE_THROUGH)
    assert t.map(0x80_0000_0000, 0x4000_0000, PAGE_SIZE_1G, P | ENTRY_CACHE_DISABLE | (0xF << 59))
    expected = (
        # 1 GiB: mask 0x3ffffc0000000 drops bits 12-29 and 50-63; P set.
        "0000008000000000: 0000000040000000 --P--C---\n"
        # 2 MiB: the PAT bit (12) is masked out of the address.
        "ffffffff80000000: 0000000000200000 XGPDA---W\n"
        # 4 KiB: `pte & ~PG_PSE_MASK`, so its PAT bit (7) never shows as P.
        "ffffffff80200000: 0000000000401000 ------TU-\n"
    )
    assert format_info_tlb(t.memory, t.regs(), newline="\n") == expected
    assert [str(line) for line in parse_info_tlb(expected)] == expected.splitlines()
    assert parse_info_tlb(expected)[1] == TlbLine(0xFFFF_FFFF_8000_0000, 0x20_0000, "XGPDA---W")


def test_info_mem_coalesces_on_user_and_write_only() -> None:
    t = Tables()
    assert t.map(0x1000, 0x5000, flags=P | RW)
    assert t.map(0x2000, 0x9000, flags=P | RW | XD)  # differs only in XD: merged
    assert t.map(0x3000, 0x6000, flags=P)  # read-only: new range
    assert t.map(0x5000, 0x7000, flags=P)  # after a gap: new range
    assert t.map(0x20_0000, 0x20_0000, PAGE_SIZE_2M, P)  # after another gap
    text = format_info_mem(t.memory, t.regs(), newline="\n")
    assert text == (
        "0000000000001000-0000000000003000 0000000000002000 -rw\n"
        "0000000000003000-0000000000004000 0000000000001000 -r-\n"
        "0000000000005000-0000000000006000 0000000000001000 -r-\n"
        "0000000000200000-0000000000400000 0000000000200000 -r-\n"
    )
    found = leaves(t.memory, t.regs())
    assert mappings(found) == (
        MappedRange(0x1000, 0x2000, False, True),
        MappedRange(0x3000, 0x1000, False, False),
        MappedRange(0x5000, 0x1000, False, False),
        MappedRange(0x20_0000, 0x20_0000, False, False),
    )
    assert mappings(found, split_on_execute=True)[:2] == (
        MappedRange(0x1000, 0x1000, False, True, True),
        MappedRange(0x2000, 0x1000, False, True, False),
    )
    assert parse_info_mem(text) == mappings(found)
    table = format_mappings(mappings(found, split_on_execute=True))
    assert table.splitlines()[1] == "0x0000000000001000  0x0000000000002000       4 KiB  -rwx"
    assert table.splitlines()[2].endswith("-rw-")


def test_info_mem_quirks_hole_merge_top_of_memory_and_sign_extended_sizes() -> None:
    t = Tables()
    # last page of the lower half and first page of the upper half: QEMU merges them
    assert t.map(0x7FFF_FFFF_F000, 0x5000, flags=P | RW | US)
    assert t.map(0xFFFF_8000_0000_0000, 0x6000, flags=P | RW | US)
    # the last page of the address space: QEMU's flush prints end 0001000000000000
    assert t.map(0xFFFF_FFFF_FFFF_F000, 0x7000, flags=P)
    text = format_info_mem(t.memory, t.regs(), newline="\n")
    assert text == (
        "00007ffffffff000-ffff800000001000 0000000000002000 urw\n"
        "fffffffffffff000-0001000000000000 0000000000001000 -r-\n"
    )
    assert parse_info_mem(text) == mappings(leaves(t.memory, t.regs())) == (
        MappedRange(0x7FFF_FFFF_F000, 0x1000, True, True),
        MappedRange(0xFFFF_8000_0000_0000, 0x1000, True, True),
        MappedRange(0xFFFF_FFFF_FFFF_F000, 0x1000, False, False),
    )
    # a range of 2**47 bytes or more: QEMU sign-extends the size as if it were an address
    big = Tables()
    for i in range(256, 512):
        big.set(big.root, i, big.alloc() | P | RW)
        for j in range(512):
            big.set(big.get(big.root, i) & ADDRESS, j, (j << 30) | P | RW | PS)
    whole = format_info_mem(big.memory, big.regs(), newline="\n")
    assert whole == "ffff800000000000-0001000000000000 ffff800000000000 -rw\n"
    assert parse_info_mem(whole) == (MappedRange(0xFFFF_8000_0000_0000, 1 << 47, False, True),)


def five_level_user_pdpt() -> tuple[Tables, int]:
    """5-level tables whose first PML5 and PML4 entries lead (user, writable) to one empty PDPT:
    the tables and that PDPT's paddr."""
    t = Tables(size=4 << 20, la57=True, first_table=0x10_0000)
    pml4 = t.alloc()
    pdpt = t.alloc()
    t.set(t.root, 0, pml4 | P | RW | US)
    t.set(pml4, 0, pdpt | P | RW | US)
    return t, pdpt


def test_info_mem_with_5_level_paging_reproduces_qemus_inverted_present_test() -> None:
    t, pdpt = five_level_user_pdpt()
    # A non-present PDPTE with PS and U/S, R/W: QEMU 7.2 counts it as a 1 GiB user page.
    t.set(pdpt, 3, PS | RW | US)
    # A present PDPTE (a real 1 GiB page): QEMU prints nothing for it.
    t.set(pdpt, 4, PS | P | RW | US)
    text = format_info_mem(t.memory, t.regs(), newline="\n")
    assert text == "00000000c0000000-0000000100000000 0000000040000000 urw\n"
    # and the real view has only the present page
    assert mappings(leaves(t.memory, t.regs())) == (MappedRange(4 << 30, 1 << 30, True, True),)


def test_info_mem_5_level_bug_follows_non_present_entries_to_the_table_at_paddr_0() -> None:
    t, pdpt = five_level_user_pdpt()
    # Non-present PDPTEs with U/S and R/W and address 0: QEMU follows them to a "PD" at paddr 0,
    # whose entry 0 is a non-present 2 MiB page with R/W, and ANDs the bits along the way.
    for index in range(4):
        t.set(pdpt, index, RW | US)
    t.set(0, 0, PS | RW)
    assert format_info_mem(t.memory, t.regs(), newline="\n") == "".join(
        f"{index << 30:016x}-{(index << 30) + PAGE_SIZE_2M:016x} 0000000000200000 -rw\n" for index in range(4)
    )
    assert len(leaves(t.memory, t.regs())) == 0


def test_parse_rejects_other_text() -> None:
    with pytest.raises(MonitorOutputError, match="line 2"):
        parse_info_tlb("0000000000000000: 0000000000000000 --PDA---W\r\nunknown command\r\n")
    with pytest.raises(MonitorOutputError, match="consistent"):
        parse_info_mem("0000000000001000-0000000000003000 0000000000005000 -rw\n")
    assert parse_info_tlb("PG disabled\r\n") == ()
    assert parse_info_mem("PG disabled\r\n") == ()


# ------------------------------------------------------------------------------------------
# Diff, frames, tree, text


def test_diff_of_two_snapshots() -> None:
    t = Tables()
    assert t.map(0x1000, 0x5000, flags=P | RW)
    assert t.map(0x2000, 0x6000, flags=P | RW)
    assert t.map(0x3000, 0x7000, flags=P | RW)
    before = leaves(t.memory, t.regs())
    table, _index = entry_for(t, 0x1000, 1)
    t.set(table, 1, 0x5000 | P | RW | A | D)  # touched and written
    t.set(table, 2, 0x6000 | P)  # made read-only
    t.set(table, 3, 0)  # unmapped
    assert t.map(0x4000, 0x8000)  # new
    after = leaves(t.memory, t.regs())
    change = diff(before, after)
    assert [leaf.vaddr for leaf in change.added] == [0x4000]
    assert [leaf.vaddr for leaf in change.removed] == [0x3000]
    assert [(c.after.vaddr, c.changes) for c in change.changed] == [
        (0x1000, ("accessed", "dirty")),
        (0x2000, ("permissions",)),
    ]
    assert [c.after.vaddr for c in change.permission_changes] == [0x2000]
    assert [c.after.vaddr for c in change.accessed_or_dirty] == [0x1000]
    assert not change.empty and diff(after, after).empty
    assert change.describe().splitlines() == [
        "~ 0x0000000000001000 4 KiB: accessed, dirty",
        "~ 0x0000000000002000 4 KiB: rights -rwx -> -r-x",
        "- 0x0000000000003000 4 KiB -> 0x0000000000007000 -rwx",
        "+ 0x0000000000004000 4 KiB -> 0x0000000000008000 -rwx",
    ]


def test_splitting_a_large_page_is_one_removal_and_many_additions() -> None:
    t = Tables()
    assert t.map(0, 0, PAGE_SIZE_2M)
    before = leaves(t.memory, t.regs())
    table, index = entry_for(t, 0, 2)
    pt = t.alloc()
    for i in range(512):
        t.set(pt, i, (i << 12) | P | RW)
    t.set(table, index, pt | P | RW)
    change = diff(before, leaves(t.memory, t.regs()))
    assert len(change.removed) == 1 and len(change.added) == 512 and not change.changed


def test_vaddrs_for_frame_finds_every_alias() -> None:
    t = Tables()
    assert t.map(0x1000, 0x5000)
    assert t.map(KERNEL + 0x3000, 0x5000)
    assert t.map(0x4000_0000, 0, PAGE_SIZE_2M)  # the 2 MiB page covering 0x5000 too
    assert t.map(0x6000, 0x6000)
    found = leaves(t.memory, t.regs())
    assert vaddrs_for_frame(found, 0x5000) == (0x1000, 0x4000_5000, KERNEL + 0x3000)
    assert vaddrs_for_frame(found, 0x5010) == (0x1010, 0x4000_5010, KERNEL + 0x3010)
    assert vaddrs_for_frame(found, 0x30_0000) == ()


def test_leaves_sequence_and_leaf_fields() -> None:
    t = Tables()
    assert t.map(KERNEL, 0x20_0000, PAGE_SIZE_2M, P | RW | G | A)
    assert t.map(0x1000, 0x5000, flags=P | RW | US | D)
    found = leaves(t.memory, t.regs())
    assert isinstance(found, Leaves) and len(found) == 2
    first, second = found
    assert first == found[0] and list(found[0:2]) == [first, second]
    assert first.vaddr == 0x1000 and first.level is Level.PT and first.dirty and not first.accessed
    assert len(first.entries) == 4 and first.entry.raw == 0x5000 | P | RW | US | D
    assert second.level is Level.PD and second.global_ and second.accessed and second.end == KERNEL + PAGE_SIZE_2M
    assert second.flags == ("P", "R/W", "A", "PS", "G")
    assert second.to_json()["vaddr"] == "0xffffffff80000000"
    assert repr(found) == "<Leaves: 2 pages, 4-level paging>"


def test_tree_reads_children_on_request() -> None:
    t = Tables()
    assert t.map(0x1000, 0x5000, flags=P | RW | A)
    assert t.map(0x2000, 0x6000, flags=P | RW)
    assert t.map(KERNEL, 0x20_0000, PAGE_SIZE_2M, P | RW | G)
    tree = PageTableTree(t.memory, t.regs())
    root = tree.root
    assert root is not None and root.level is Level.PML4 and root.table_paddr == t.root
    assert root.present_count == 2 and not root.recursive and root.readable
    low, high = root.entries()
    assert (low.index, high.index) == (0, 511) and high.vaddr == 0xFFFF_FF80_0000_0000
    assert low.kind is EntryKind.TABLE and low.child is not None and low.child.level is Level.PDPT
    pd = low.child.entries()[0].child
    assert pd is not None
    pt = pd.entries()[0].child
    assert pt is not None and pt.present_count == 2
    pages = pt.entries()
    assert [(p.kind, p.target_paddr, p.vaddr) for p in pages] == [
        (EntryKind.PAGE, 0x5000, 0x1000), (EntryKind.PAGE, 0x6000, 0x2000)]
    assert repr(tree) == "<PageTableTree 4-level paging, root 0x0000000000010000>"
    assert format_tree(tree) == "\n".join([
        "PML4 table 0x0000000000010000 (from CR3), 2 present entries",
        " ..0: PML4E 0x0000000000011007 P R/W U/S -> PDPT table 0x0000000000011000",
        " .. ..0: PDPTE 0x0000000000012007 P R/W U/S -> PD table 0x0000000000012000",
        " .. .. ..0: PDE 0x0000000000013007 P R/W U/S -> PT table 0x0000000000013000",
        " .. .. .. ..1: PTE 0x0000000000005023 P R/W A -> 4 KiB page 0x0000000000005000 at vaddr 0x0000000000001000",
        " .. .. .. ..2: PTE 0x0000000000006003 P R/W -> 4 KiB page 0x0000000000006000 at vaddr 0x0000000000002000",
        " ..511: PML4E 0x0000000000014007 P R/W U/S -> PDPT table 0x0000000000014000",
        " .. ..510: PDPTE 0x0000000000015007 P R/W U/S -> PD table 0x0000000000015000",
        " .. .. ..0: PDE 0x0000000000200183 P R/W PS G -> 2 MiB page 0x0000000000200000 at vaddr 0xffffffff80000000",
    ])
    assert format_tree(tree, max_depth=1).count("\n") == 2  # the header and the two PML4 entries


def test_format_walk_reads_like_a_worked_example() -> None:
    t = Tables()
    assert t.map(KERNEL + 0x10_1000, 0x10_5000, flags=P | RW | A | D | XD)
    text = format_walk(walk(t.memory, t.regs(), KERNEL + 0x10_1234))
    assert text.splitlines() == [
        "vaddr 0xffffffff80101234, 4-level paging, CR3=0x0000000000010000 (PML4 table at paddr 0x0000000000010000)",
        "vaddr bits: 63:48 sign | 47:39 PML4 511 | 38:30 PDPT 510 | 29:21 PD 0 | 20:12 PT 257 | 11:0 offset 0x234",
        "PML4  table 0x0000000000010000  [511] = 0x0000000000011007  P R/W U/S     -> PDPT table 0x0000000000011000",
        "PDPT  table 0x0000000000011000  [510] = 0x0000000000012007  P R/W U/S     -> PD table 0x0000000000012000",
        "PD    table 0x0000000000012000  [  0] = 0x0000000000013007  P R/W U/S     -> PT table 0x0000000000013000",
        "PT    table 0x0000000000013000  [257] = 0x8000000000105063  P R/W A D XD  -> 4 KiB frame 0x0000000000105000",
        "paddr 0x0000000000105234: 4 KiB page, kernel only, read/write, no-execute",
    ]
    missing = format_walk(walk(t.memory, t.regs(), 0x1000))
    assert missing.splitlines()[-2].endswith("not present")
    assert missing.splitlines()[-1].startswith("fault at PML4: vaddr 0x0000000000001000 is not mapped")


def test_json_forms_carry_64_bit_values_as_hex_strings() -> None:
    t = Tables()
    assert t.map(KERNEL, 0x20_0000, PAGE_SIZE_2M, P | RW | XD)
    result = walk(t.memory, t.regs(), KERNEL + 0x10)
    data = result.to_json()
    assert data["vaddr"] == "0xffffffff80000010" and data["paddr"] == "0x0000000000200010"
    steps = data["steps"]
    assert isinstance(steps, list) and steps[-1]["entry"] == "0x8000000000200083"
    assert json.loads(json.dumps(data)) == data
    fault = walk(t.memory, t.regs(), 0x1000).to_json()["fault"]
    assert isinstance(fault, dict) and fault["kind"] == "not present" and fault["level"] == "PML4"
    whole = MappedRange(0xFFFF_FFFF_FFFF_F000, 0x1000, False, True, None).to_json()
    assert whole == {"vaddr": "0xfffffffffffff000", "end": "0x10000000000000000", "size": "0x0000000000001000",
                     "permissions": "-rw?"}
    tree = PageTableTree(t.memory, t.regs())
    assert tree.root is not None
    top = tree.root.entries()[0].to_json()
    assert top["vaddr"] == "0xffffff8000000000" and top["present_count"] == 1 and top["kind"] == "table"


def test_bytes_memory_bounds() -> None:
    memory = BytesMemory(bytearray(0x2000))
    assert memory.size == 0x2000 and memory.read(0x1FF8, 8) == bytes(8)
    with pytest.raises(PhysicalMemoryError):
        memory.read(0x1FF9, 8)
    assert BytesMemory(memoryview(bytes(16)).cast("Q")).size == 16


def test_a_table_that_runs_past_the_end_of_ram_reads_as_zeros() -> None:
    t = Tables(size=0x12800)
    t.set(t.root, 0, 0x12000 | P | RW)  # a PDPT half inside RAM
    t.set(0x12000, 5, 0x4000_0000 | P | PS)
    found = leaves(t.memory, t.regs())
    assert [(row[0], row[1]) for row in found.rows] == [(5 << 30, 0x4000_0000)]


def test_linux_sized_tables_enumerate_quickly() -> None:
    # Not a timed test (benchmarks measure speed); it checks the large case works at all.
    t = Tables(size=64 << 20, first_table=0x100_0000)
    base = 0xFFFF_8880_0000_0000
    for chunk in range(64):  # 32,768 4 KiB pages
        pt = t.alloc()
        for i in range(512):
            t.set(pt, i, ((chunk * 512 + i) << 12) | P | RW | A)
        pml4_index = (base >> 39) & 0x1FF
        pdpt = t.get(t.root, pml4_index) & ADDRESS or t.alloc()
        t.set(t.root, pml4_index, pdpt | P | RW)
        pd = t.get(pdpt, 0) & ADDRESS or t.alloc()
        t.set(pdpt, 0, pd | P | RW)
        t.set(pd, chunk, pt | P | RW)
    found = leaves(t.memory, t.regs())
    assert len(found) == 64 * 512 and not found.truncated
    assert mappings(found) == (MappedRange(base, 64 * PAGE_SIZE_2M, False, True),)


# ------------------------------------------------------------------------------------------
# The vectorised enumeration against a plain depth-first one, lazy results, snapshots


QEMU_TABLE_MASK = 0x3_FFFF_FFFF_F000


def depth_first_leaves(
    data: bytes, regs: ControlRegisters, max_entries: int, maxphyaddr: int = 52
) -> tuple[list[tuple[int, int, int, tuple[int, ...], int, bool]], list[tuple[FaultKind, Level, int, int]], bool, int]:
    """QEMU's `info tlb` recursion with the work bound, written plainly: (rows, problems, truncated, examined).

    The oracle for where `leaves()` stops: it must stop exactly where this does.
    """
    mode = PagingMode.from_registers(regs, maxphyaddr=maxphyaddr)
    rows: list[tuple[int, int, int, tuple[int, ...], int, bool]] = []
    problems: list[tuple[FaultKind, Level, int, int]] = []
    examined = 0

    class Stop(Exception):
        pass

    def visit(table: int, level: int, base: int, above: tuple[int, int, tuple[int, ...], bool]) -> None:
        """`above`: the AND and the OR of the entries above, the entries, and whether one has reserved bits."""
        nonlocal examined
        and_bits, or_bits, path, reserved_above = above
        raw = data[table : table + 0x1000].ljust(0x1000, b"\0")
        present = [(i, e) for i, e in enumerate(struct.unpack("<512Q", raw)) if e & P]
        examined += len(present)
        if examined > max_entries:
            raise Stop
        shift = 12 + 9 * (level - 1)
        for i, e in present:
            vaddr = base + (i << shift)
            if level == mode.top_level:
                vaddr = mode.canonical(vaddr)
            if level == 1 or (level <= 3 and e & PS):
                size = 1 << shift
                rights = (and_bits & e & (RW | US)) | (int(mode.nxe) & ((or_bits | e) >> 63))
                reserved = reserved_above or bool(e & mode.reserved_mask(Level(level), True))
                rows.append((vaddr, e & ADDRESS & ~(size - 1), size, (*path, e), rights, reserved))
                continue
            own = bool(e & mode.reserved_mask(Level(level), False))
            if own:
                problems.append((FaultKind.RESERVED_BIT, Level(level), vaddr, e))
            if e & QEMU_TABLE_MASK >= len(data):
                problems.append((FaultKind.NO_MEMORY, Level(level), vaddr, e))
                continue
            visit(e & QEMU_TABLE_MASK, level - 1, vaddr, (and_bits & e, or_bits | e, (*path, e), reserved_above or own))

    root = regs.cr3 & QEMU_TABLE_MASK
    if root >= len(data):
        return rows, [(FaultKind.NO_MEMORY, mode.top_level, 0, regs.cr3)], False, 0
    try:
        visit(root, mode.top_level, 0, ((1 << 64) - 1, 0, (), False))
    except Stop:
        return rows, problems, True, examined
    return rows, problems, False, examined


class CopyingMemory:
    """Guest RAM that can only be read through `read` (as QMP copies and snapshots are)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.reads = 0

    @property
    def size(self) -> int:
        return len(self.data)

    def read(self, paddr: int, length: int) -> bytes:
        assert 0 <= paddr and paddr + length <= len(self.data)
        self.reads += 1
        return self.data[paddr : paddr + length]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    writes=st.lists(st.tuples(st.integers(0, 3), st.sampled_from([0, 1, 2, 3, 100, 255, 256, 257, 300, 510, 511]),
                              st.integers(0, (1 << 64) - 1), st.booleans()), min_size=8, max_size=60),
    switches=st.tuples(st.booleans(), st.booleans(), st.sampled_from([52, 46, 36])),
    cr3_table=st.integers(0, 4),
    max_entries=st.one_of(st.integers(0, 100), st.integers(0, 30_000)),
    tail=st.sampled_from([0, 0x800]),
)
def test_leaves_stop_exactly_where_a_depth_first_walk_stops(
    writes: list[tuple[int, int, int, bool]],
    switches: tuple[bool, bool, int],
    cr3_table: int,
    max_entries: int,
    tail: int,
) -> None:
    # Four tables of random entries pointing at each other (and past the end of RAM, into the
    # half table at its end), so that walks alias, loop, hit reserved bits and hit the bound.
    la57, nxe, maxphyaddr = switches
    mem = bytearray(4 * 0x1000 + tail)
    for table, index, value, present in writes:
        entry = (value & ~ADDRESS) | ((value >> 12) % 5) << 12 | present
        struct.pack_into("<Q", mem, table * 0x1000 + 8 * index, entry)
    regs = ControlRegisters.long_mode(cr3_table * 0x1000, la57=la57, nxe=nxe)
    rows, problems, truncated, examined = depth_first_leaves(bytes(mem), regs, max_entries, maxphyaddr)
    for memory in (BytesMemory(mem), CopyingMemory(bytes(mem))):
        found = leaves(memory, regs, maxphyaddr=maxphyaddr, max_entries=max_entries)
        assert found.rows == tuple(rows)
        assert [(p.kind, p.level, p.vaddr, p.entry) for p in found.problems] == problems
        assert (found.truncated, found.entries_examined) == (truncated, examined)


def test_leaves_read_each_table_once_however_many_entries_point_to_it() -> None:
    t = Tables(size=1 << 20)
    pt = t.alloc()
    for i in range(512):
        t.set(pt, i, (i << 12) | P | RW)
    for chunk in range(64):  # 64 PD entries share one PT: 32,768 leaves from 4 tables
        assert t.map(chunk * PAGE_SIZE_2M, 0, PAGE_SIZE_2M)
        table, index = entry_for(t, chunk * PAGE_SIZE_2M, 2)
        t.set(table, index, pt | P | RW)
    memory = CopyingMemory(bytes(t.mem))
    found = leaves(memory, t.regs())
    assert len(found) == 64 * 512 and memory.reads == 4
    assert found.table_paddrs == (t.root, pt, pt + 0x1000, pt + 0x2000)
    assert found.entries_examined == 1 + 1 + 64 + 64 * 512


def test_leaves_columns_rows_and_leaf_objects_agree() -> None:
    t = Tables()
    assert t.map(KERNEL, 0x20_0000, PAGE_SIZE_2M, P | RW | G | XD)
    assert t.map(0x1000, 0x5000, flags=P | RW | US | D)
    assert t.map(0x80_0000_0000, 0x4000_0000, PAGE_SIZE_1G, P | US)
    assert t.map(0x40_0000, 0x20_0000 | 1 << 13, PAGE_SIZE_2M, P)  # bit 13 is reserved in a 2 MiB page
    found = leaves(t.memory, t.regs())
    assert found.vaddrs.tolist() == [row[0] for row in found.rows] == [0x1000, 0x40_0000, 0x80_0000_0000, KERNEL]
    assert found.paddrs.tolist() == [row[1] for row in found.rows] == [0x5000, 0x20_0000, 0x4000_0000, 0x20_0000]
    assert found.sizes.tolist() == [PAGE_SIZE_4K, PAGE_SIZE_2M, PAGE_SIZE_1G, PAGE_SIZE_2M]
    assert found.ptes.tolist() == [row[3][-1] for row in found.rows]
    assert found.rights.tolist() == [row[4] for row in found.rows] == [6, 0, 4, 3]
    assert found.reserved.tolist() == [False, True, False, False]
    assert list(found) == [found[i] for i in range(len(found))] == found[:] == [found[i - 4] for i in range(4)]
    assert found[-1].entries == (t.get(t.root, 511), *found[-1].entries[1:]) and len(found[-1].entries) == 3
    with pytest.raises(IndexError):
        found[4]
    with pytest.raises(ValueError, match="read-only"):
        found.vaddrs[0] = 0
    again = leaves(t.memory, t.regs())
    assert again == found and hash(again) == hash(found) and again != leaves(t.memory, t.regs(nxe=False))
    assert sorted(found.table_paddrs) == list(found.table_paddrs) and t.root in found.table_paddrs


def test_mappings_are_a_tuple_like_sequence_made_on_demand() -> None:
    t = Tables()
    assert t.map(0x1000, 0x5000, flags=P | RW)
    assert t.map(0x2000, 0x9000, flags=P | RW | XD)
    assert t.map(0x3000, 0x6000, flags=P)
    assert t.map(0xFFFF_FFFF_FFFF_F000, 0x7000, flags=P | US)
    found = leaves(t.memory, t.regs())
    ranges = mappings(found)
    expected = (MappedRange(0x1000, 0x2000, False, True), MappedRange(0x3000, 0x1000, False, False),
                MappedRange(0xFFFF_FFFF_FFFF_F000, 0x1000, True, False))
    assert ranges == expected and expected == ranges and tuple(ranges) == expected and list(ranges) == list(expected)
    assert len(ranges) == 3 and ranges[-1] == expected[-1] and ranges[-1].end == 1 << 64
    assert ranges[1:] == expected[1:] and ranges[::-1] == expected[::-1] and ranges[5:] == ()
    assert hash(ranges) == hash(expected) and repr(ranges) == repr(expected)
    assert ranges == mappings(found) and ranges != mappings(found, split_on_execute=True)
    assert ranges != list(expected) and ranges != expected[:2]
    assert expected[1] in ranges and ranges.index(expected[2]) == 2
    with pytest.raises(IndexError):
        ranges[3]
    split = mappings(found, split_on_execute=True)
    assert [r.executable for r in split] == [True, False, True, True]
    empty = mappings(leaves(BytesMemory(bytes(0x20000)), ControlRegisters.long_mode(0x10000)))
    assert empty == () and len(empty) == 0 and empty == mappings(leaves(t.memory, t.regs()))[3:]


def test_read_tables_reads_zeros_past_the_end_of_ram() -> None:
    data = bytes(range(256)) * 16 * 2 + b"\xff" * 0x800
    for memory in (BytesMemory(data), CopyingMemory(data)):
        rows = read_tables(memory, [0x1000, 0x2000, 0x3000])
        assert rows.shape == (3, 512)
        assert rows[0].tobytes() == data[0x1000:0x2000]
        assert rows[1].tobytes() == b"\xff" * 0x800 + bytes(0x800)
        assert not rows[2].any()
    assert BytesMemory(data).view(0x10, 4).tobytes() == data[0x10:0x14]
    with pytest.raises(PhysicalMemoryError):
        BytesMemory(data).view(0x2000, 0x1000)


def test_a_snapshot_keeps_the_tables_as_they_were() -> None:
    t = Tables()
    assert t.map(0x1000, 0x5000, flags=P | RW | US)
    assert t.map(KERNEL, 0x20_0000, PAGE_SIZE_2M, P | RW)
    regs = t.regs()
    snapshot = Snapshot.take(t.memory, cast(Registers, regs))
    tlb, mem = format_info_tlb(t.memory, regs), format_info_mem(t.memory, regs)
    tree = format_tree(PageTableTree(t.memory, regs))
    assert snapshot.memory.page_count == len(snapshot.leaves.table_paddrs) == 6  # PML4; PDPT, PD, PT; PDPT, PD
    t.set(entry_for(t, 0x1000, 1)[0], 1, 0)  # the guest moves on: unmaps 0x1000 and maps more
    assert t.map(0x2000, 0x6000)
    assert snapshot.info_tlb() == tlb and snapshot.info_mem() == mem and format_tree(snapshot.tree()) == tree
    assert snapshot.translate(0x1234) == 0x5234 and snapshot.walk(0x2000).fault is not None
    assert snapshot.mappings() == mappings(snapshot.leaves) and len(snapshot.mappings()) == 2
    assert snapshot.memory.read(t.root - 4, 8) == bytes(4) + t.mem[t.root : t.root + 4]  # other pages read as 0
    later = Snapshot.take(t.memory, cast(Registers, regs))
    assert [leaf.vaddr for leaf in snapshot.diff(later).added] == [0x2000]
    assert [leaf.vaddr for leaf in snapshot.diff(later).removed] == [0x1000]


@pytest.mark.parametrize(
    ("level", "bits", "reason"),
    [(Level.PT, 1 << 45, "bits 51:40 lie beyond this CPU's 40-bit physical addresses (MAXPHYADDR)"),
     (Level.PML4, PS, "PS (bit 7) must be 0 in a PML4E"),
     (Level.PDPT, 1 << 13, "bits 29:13 must be 0 in a PDPTE that maps a 1 GiB page"),
     (Level.PD, 1 << 20, "bits 20:13 must be 0 in a PDE that maps a 2 MiB page")],
)
def test_a_reserved_bit_fault_says_why_the_bit_is_reserved(level: Level, bits: int, reason: str) -> None:
    mode = PagingMode.from_registers(ControlRegisters.long_mode(0x1000), maxphyaddr=40)
    assert mode.reserved_reasons(level, bits) == reason
    assert bits & mode.reserved_mask(level, leaf=level <= Level.PDPT)


def test_the_vectorised_info_tlb_text_equals_the_line_by_line_one() -> None:
    t = Tables()
    assert t.map(0x1000, 0x5000, flags=P | RW | US | ENTRY_ACCESSED | ENTRY_DIRTY | PS)  # PS of a PTE: PAT
    assert t.map(KERNEL, 0x20_0000, PAGE_SIZE_2M, P | RW | XD | ENTRY_GLOBAL | ENTRY_CACHE_DISABLE)
    assert t.map(1 << 39, 0x4000_0000, PAGE_SIZE_1G, P | ENTRY_WRITE_THROUGH | (1 << 45))
    found = leaves(t.memory, t.regs())
    expected = "".join(f"{line}\r\n" for line in tlb_lines(found))
    assert len(found) == 3 and info_tlb_text(found) == expected
    assert info_tlb_text(found, newline="\n") == expected.replace("\r\n", "\n")


def test_qemu_flat_view_is_parsed_into_ram_rom_and_io() -> None:
    from workbench.models.physmap import parse_flat_view  # noqa: PLC0415  # one test only

    text = ('FlatView #1\r\n AS "memory", root: system\r\n Root memory region: system\r\n'
            "  0000000000000000-00000000000effff (prio 0, ram): ram\r\n"
            "  00000000000f0000-00000000000fffff (prio 0, ram): pc.bios\r\n"
            "  0000000000100000-0000000003ffefff (prio 0, ram): ram @0000000000100000\r\n"
            "  00000000fea00000-00000000fea00003 (prio 0, i/o): acpi-ged\r\n")
    regions = parse_flat_view(text)
    assert [(r.start, r.end, r.kind, r.ram_offset) for r in regions] == [
        (0, 0xF0000, "ram", 0), (0xF0000, 0x100000, "rom", None), (0x100000, 0x3FFF000, "ram", 0x100000),
        (0xFEA00000, 0xFEA00004, "io", None)]
