"""Looking inside the real guest: memory, variables, registers, snapshots, the address space."""

from __future__ import annotations

import time

import pytest
from elftools.elf.elffile import ELFFile

from workbench.guest.machine import Machine, MachineState
from workbench.kernel.image import Image
from workbench.models import paging
from workbench.models.cpu import CpuMode

pytestmark = pytest.mark.qemu


def elf_section_bytes(image: Image, name: str) -> bytes:
    with image.path.open("rb") as stream:
        return bytes(ELFFile(stream).get_section_by_name(name).data())


def test_virtual_memory_reads_what_the_elf_holds(image: Image) -> None:
    with Machine(image) as machine:
        machine.wait_for("> ")
        rodata = image.section(".rodata")
        assert machine.read_virtual(rodata.vaddr, rodata.size) == elf_section_bytes(image, ".rodata")
        text = image.section(".text")
        assert machine.read_virtual(text.vaddr, 4096) == elf_section_bytes(image, ".text")[:4096]


def test_shared_memory_and_the_qmp_fallback_agree(image: Image) -> None:
    with Machine(image) as shared, Machine(image, shared_memory=False) as copied:
        shared.wait_for("> ")
        copied.wait_for("> ")
        assert shared.memory.method.startswith("shared") and not shared.memory_note
        assert copied.memory.method.startswith("QMP") and "not shared" in copied.memory_note
        kernel = 0x100000  # where the loader put the image, its first page is text
        assert shared.memory.read(kernel, 8192) == copied.memory.read(kernel, 8192)
        with pytest.raises(Exception, match="only be read"):
            copied.memory.write(kernel, b"x")


def test_a_kernel_variable_read_and_changed_while_the_guest_runs(image: Image) -> None:
    with Machine(image) as machine:
        machine.wait_for("> ")
        first = machine.read_symbol("timer_ticks")
        time.sleep(0.3)
        assert machine.state is MachineState.RUNNING
        assert machine.read_symbol("timer_ticks") > first
        machine.write_symbol("timer_ticks", 1_000_000)
        assert machine.request("ticks").number("ticks") >= 1_000_000
        with pytest.raises(Exception, match="not an integer variable"):
            machine.read_symbol("app_main")


def test_registers_before_the_first_instruction_and_in_long_mode(image: Image) -> None:
    with Machine(image) as machine:
        machine.wait_for("> ")
        machine.pause()
        registers = machine.registers()
        assert registers.mode is CpuMode.LONG_64
        assert registers.cr0_decoded["PG"] and registers.cr0_decoded["WP"]
        assert registers.efer_decoded["NXE"] and registers.efer_decoded["LMA"]
        assert image.symbolize(registers.rip).split("+")[0] in image.symbols
    machine = Machine(image).start(paused=True)
    try:
        first = machine.registers()
        assert first.mode is CpuMode.REAL and not first.cr0_decoded["PG"]
        machine.resume()
        machine.wait_for("> ")
    finally:
        machine.close()


def test_snapshot_matches_qemu_and_the_address_space_is_labelled(image: Image) -> None:
    with Machine(image) as machine:
        machine.wait_for("> ")
        assert machine.snapshot("running").leaves  # a running guest is paused only while it is taken
        assert machine.state is MachineState.RUNNING
        machine.pause()  # compared with QEMU paused: a running guest sets accessed bits in between
        snapshot = machine.snapshot("after boot")
        assert snapshot.info_tlb() == machine.hmp("info tlb")
        assert snapshot.info_mem() == machine.hmp("info mem")
        space = snapshot.address_space(image)
        assert space.wx_violations() == ()
        assert space.section_mismatches == ()
        assert space.region_at(image.symbol("app_main").vaddr).permissions == "r-x"
        guard = space.region_at(image.symbol("boot_stack_guard").vaddr)
        assert guard.kind == "guard" and not guard.mapped and "boot_stack_guard" in guard.label
        assert space.region_at(0).kind == "unmapped"
        assert space.region_at(0x0000_8000_0000_0000).kind == "non-canonical"
        walk = snapshot.walk(image.symbol("timer_ticks").vaddr)
        assert walk.ok and walk.permissions is not None and walk.permissions.writable
        assert not walk.permissions.executable


def test_the_heap_growing_shows_in_a_snapshot_diff(image: Image) -> None:
    with Machine(image) as machine:
        machine.wait_for("> ")
        before = machine.snapshot("before")
        vaddr = machine.request("alloc 2").number("vaddr")
        after = machine.snapshot("after")
        change = before.diff(after)
        added = sorted(leaf.vaddr for leaf in change.added)
        assert added == [vaddr, vaddr + 4096]
        assert not change.removed
        with pytest.raises(paging.PageFaultError, match="not mapped"):
            before.translate(vaddr)
        frame = after.translate(vaddr)
        aliases = after.vaddrs_for_frame(frame)
        assert vaddr in aliases and len(aliases) == 2, "a heap page and its alias in the direct map"
