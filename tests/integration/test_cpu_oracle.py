"""The guest's own CPU as the oracle for reserved bits: we corrupt an entry, the guest touches
the page, and the model's walk must predict exactly what the CPU (QEMU's qemu64, 40-bit
physical addresses) did: a #PF with RSVD, or a plain read."""

from __future__ import annotations

import struct

import pytest

from workbench.faults import PF_RESERVED
from workbench.image import Image
from workbench.machine import Machine, MachineState
from workbench.paging import FaultKind, Level

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
