"""The guest's own CPU as the oracle: we corrupt an entry, the guest touches the page, and the
model's walk must predict exactly what the CPU (QEMU's qemu64, 40-bit physical addresses) did:
a #PF with RSVD, a plain #PF, or a read of the right bytes. Also for memory that is not RAM:
page tables and pages in ROM, and tables where there is no memory."""

from __future__ import annotations

import struct

import pytest

from workbench.guest.machine import Machine, MachineState
from workbench.guest.memory import PhysicalAddressError
from workbench.kernel.image import Image
from workbench.models.faults import PF_PRESENT, PF_RESERVED
from workbench.models.paging import FaultKind, Level

pytestmark = pytest.mark.qemu


def _set_bit(machine: Machine, entry_paddr: int, bit: int) -> int:
    (raw,) = struct.unpack("<Q", machine.memory.read(entry_paddr, 8))
    machine.memory.write(entry_paddr, struct.pack("<Q", raw | 1 << bit))
    return raw | 1 << bit


def _fresh_heap_page(machine: Machine) -> int:
    machine.wait_for("> ")
    return int(machine.request("alloc 1")["vaddr"], 16)


def test_qemu_reports_the_cpu_physical_address_width(image: Image) -> None:
    with Machine(image) as machine:
        assert machine.maxphyaddr() == 40  # qemu64 under TCG, QEMU's TCG_PHYS_ADDR_BITS
        assert machine.snapshot().leaves.mode.maxphyaddr == 40


@pytest.mark.parametrize(("level", "bit"), [(Level.PT, 40), (Level.PT, 45), (Level.PT, 51), (Level.PD, 45)])
def test_a_reserved_address_bit_faults_in_the_guest_and_in_the_model(image: Image, level: Level, bit: int) -> None:
    with Machine(image) as machine:
        vaddr = _fresh_heap_page(machine)
        before = machine.snapshot().walk(vaddr)
        assert before.ok, before.fault
        step = next(s for s in before.steps if s.level == level)
        raw = _set_bit(machine, step.entry_paddr, bit)

        predicted = machine.snapshot().walk(vaddr)
        assert predicted.fault is not None and predicted.fault.kind is FaultKind.RESERVED_BIT, predicted
        assert (predicted.fault.level, predicted.fault.entry, predicted.fault.reserved_bits) == (level, raw, 1 << bit)

        machine.send_line(f"read {vaddr:#x}")
        outcome = machine.wait(timeout=15)
        assert outcome.state is MachineState.FAULTED, outcome
        fault = outcome.fault
        assert fault is not None and fault.vector == 14 and fault.cr2 == vaddr, fault
        # RSVD is set; P is not: QEMU 7.2's TCG leaves it clear, where the SDM says a CPU sets it.
        assert fault.error_code is not None and fault.error_code & PF_RESERVED, fault
        # The explanation names the entry and the bit, from the same walk.
        assert f"{level.entry_name} {step.index} in the {level.name} table at paddr {step.table_paddr:#018x}" \
            in outcome.explanation, outcome.explanation
        assert f"reserved bit(s) {bit} set" in outcome.explanation
        assert "RSVD=1" in outcome.explanation and "not mapped" not in outcome.explanation


def test_the_highest_address_bit_below_maxphyaddr_is_not_reserved(image: Image) -> None:
    """Bit 39 moves the frame beyond RAM: no fault in the guest, a valid walk in the model."""
    with Machine(image) as machine:
        vaddr = _fresh_heap_page(machine)
        step = machine.snapshot().walk(vaddr).steps[-1]
        _set_bit(machine, step.entry_paddr, 39)
        predicted = machine.snapshot().walk(vaddr)
        assert predicted.ok and predicted.paddr is not None and predicted.paddr >> 39 & 1
        assert predicted.paddr_in_ram is False
        reply = machine.request(f"read {vaddr:#x}")
        assert reply.ok, reply
        assert machine.state is MachineState.RUNNING


# Memory that is not RAM: the guest's CPU reads page tables and pages in ROM as ROM, reads
# zeros where there is no memory; the model must predict each outcome.

LARGE_PAGE = 1 << 21
PAGE = 4096


def _rom_pages(machine: Machine) -> list[int]:
    """Every 4 KiB page of ROM below 1 MiB (qboot's BIOS at 0xf0000 on microvm)."""
    return [page for region in machine.physical_map() if region.kind == "rom" and region.end <= 1 << 20
            for page in range(region.start, region.end, PAGE)]


def _tables_in_rom(machine: Machine) -> list[int]:
    """Point PD entries after a fresh heap page's at each ROM page as a PT; return the vaddr of
    every entry of those "page tables" (never touched by the guest, so in no TLB)."""
    heap_page = _fresh_heap_page(machine)
    pd_step = next(s for s in machine.snapshot().walk(heap_page).steps if s.level == Level.PD)
    region_base = heap_page & ~(LARGE_PAGE - 1)
    vaddrs = []
    for number, rom_page in enumerate(_rom_pages(machine), start=1):
        assert pd_step.index + number < 512, "the heap's PD has room after the heap page"
        flags = pd_step.entry.raw & 0xFFF
        machine.memory.write(pd_step.entry_paddr + 8 * number, struct.pack("<Q", rom_page | flags))
        vaddrs += [region_base + number * LARGE_PAGE + index * PAGE for index in range(512)]
    return vaddrs


def test_page_tables_in_rom_are_read_as_the_cpu_reads_them(image: Image) -> None:
    with Machine(image) as machine:
        vaddrs = _tables_in_rom(machine)
        # Compared with QEMU paused: a running guest sets A/D bits in between (its first timer
        # tick dirties the .bss page of timer_ticks, which QEMU 10 showed as X--DA---W).
        machine.pause()
        snapshot = machine.snapshot()
        assert snapshot.info_tlb() == machine.hmp("info tlb"), "QEMU's monitor reads the same ROM tables"
        machine.resume()
        walks = [snapshot.walk(vaddr) for vaddr in vaddrs]
        assert all(w.steps[2].target_place.startswith("in ROM (") for w in walks)  # the PD entries we wrote
        mapped = [w for w in walks if w.ok]
        in_memory = [w for w in mapped if w.paddr_region is not None and w.paddr_region.kind in ("ram", "rom")][:4]
        nowhere = [w for w in mapped if w.paddr_region is None][:2]
        assert in_memory and nowhere, "qboot's code holds entries of both kinds"
        for w in in_memory:  # the guest reads the frame the model found, RAM or ROM
            reply = machine.request(f"read {w.vaddr:#x}")
            assert reply.ok, reply
            assert reply.number("value") == int.from_bytes(machine.memory.read(w.paddr or 0, 8), "little")
            assert machine.read_virtual(w.vaddr, 8) == machine.memory.read(w.paddr or 0, 8)
        for w in nowhere:  # the guest reads zeros; the workbench says there is no memory there
            assert machine.request(f"read {w.vaddr:#x}").number("value") == 0
            assert w.paddr_place == "where the guest has no memory"
            with pytest.raises(PhysicalAddressError, match="no memory"):
                machine.read_virtual(w.vaddr, 8)
        # Last, as it stops the guest: an entry whose reserved bits the CPU refuses, in ROM.
        refused = next(w for w in walks if w.fault is not None and w.fault.kind is FaultKind.RESERVED_BIT
                       and w.fault.level == Level.PT)
        machine.send_line(f"read {refused.vaddr:#x}")
        outcome = machine.wait(timeout=15)
        assert outcome.fault is not None and outcome.fault.cr2 == refused.vaddr, outcome
        assert outcome.fault.error_code is not None and outcome.fault.error_code & PF_RESERVED
        assert refused.fault is not None and refused.fault.message in outcome.explanation
        assert "That table lies in ROM (" in outcome.explanation


def test_an_entry_in_rom_with_p_clear_is_a_plain_page_fault(image: Image) -> None:
    with Machine(image) as machine:
        vaddrs = _tables_in_rom(machine)
        walks = [machine.snapshot().walk(vaddr) for vaddr in vaddrs[:512]]
        absent = next(w for w in walks if w.fault is not None and w.fault.kind is FaultKind.NOT_PRESENT)
        assert absent.fault is not None and absent.fault.level == Level.PT
        machine.send_line(f"read {absent.vaddr:#x}")
        outcome = machine.wait(timeout=15)
        assert outcome.fault is not None and outcome.fault.cr2 == absent.vaddr
        assert outcome.fault.error_code is not None and not outcome.fault.error_code & (PF_PRESENT | PF_RESERVED)


def test_a_table_where_there_is_no_memory_reads_as_zeros(image: Image) -> None:
    """The CPU reads a PT beyond RAM as zeros: a not-present #PF, as the model predicts."""
    with Machine(image) as machine:
        heap_page = _fresh_heap_page(machine)
        pd_step = next(s for s in machine.snapshot().walk(heap_page).steps if s.level == Level.PD)
        nowhere = machine.memory_mib << 21  # twice the RAM: nothing there on microvm
        assert machine.physical_map().region_at(nowhere) is None
        machine.memory.write(pd_step.entry_paddr + 8, struct.pack("<Q", nowhere | pd_step.entry.raw & 0xFFF))
        vaddr = (heap_page & ~(LARGE_PAGE - 1)) + LARGE_PAGE + 5 * PAGE
        predicted = machine.snapshot().walk(vaddr)
        assert predicted.fault is not None and predicted.fault.kind is FaultKind.NOT_PRESENT
        assert predicted.fault.level == Level.PT and "no memory" in predicted.fault.message
        machine.send_line(f"read {vaddr:#x}")
        outcome = machine.wait(timeout=15)
        assert outcome.fault is not None and outcome.fault.cr2 == vaddr
        assert outcome.fault.error_code is not None and not outcome.fault.error_code & (PF_PRESENT | PF_RESERVED)


def test_a_reserved_bit_is_named_without_shared_memory(image: Image) -> None:
    """With guest RAM read through QMP, the fault's explanation still names the entry: the
    walk behind it runs on the machine's event loop and fetches its tables with QMP there."""
    with Machine(image, shared_memory=False) as machine:
        vaddr = _fresh_heap_page(machine)
        step = machine.snapshot().walk(vaddr).steps[-1]
        direct_map = image.symbol("__direct_map_base").vaddr
        corrupted = step.entry.raw | 1 << 45
        assert machine.request(f"write {direct_map + step.entry_paddr:#x} {corrupted:#x}").ok
        machine.send_line(f"read {vaddr:#x}")
        outcome = machine.wait(timeout=15)
        assert outcome.fault is not None and outcome.fault.error_code is not None
        assert outcome.fault.error_code & PF_RESERVED
        assert f"PTE {step.index} in the PT table at paddr {step.table_paddr:#018x}" in outcome.explanation
        assert "reserved bit(s) 45 set" in outcome.explanation
