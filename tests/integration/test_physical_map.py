"""The guest's physical memory map comes from QEMU, and reads there match what the guest sees."""

from __future__ import annotations

import re
import struct

import pytest

from workbench.guest.machine import Machine
from workbench.guest.memory import PhysicalAddressError
from workbench.kernel.image import Image
from workbench.models.physmap import PhysicalMap, PhysicalRegion

pytestmark = pytest.mark.qemu


def _xp_bytes(machine: Machine, paddr: int, words: int) -> bytes:
    """QEMU's own reading of guest physical memory: HMP `xp /Nxg`."""
    text = machine.hmp(f"xp /{words}xg {paddr:#x}")
    values = [int(v, 16) for v in re.findall(r"0x([0-9a-f]{16})", text)]
    assert len(values) == words, text
    return struct.pack(f"<{words}Q", *values)


def test_the_map_shows_the_bios_rom_over_ram_and_reads_see_the_rom(image: Image) -> None:
    with Machine(image) as machine:
        machine.wait_for("> ")
        regions = machine.physical_map()
        ram = [r for r in regions if r.kind == "ram"]
        assert ram[0].start == 0 and ram[-1].end <= machine.memory_mib << 20  # QEMU 10's microvm: 0x3fff000
        rom = next(r for r in regions if r.start <= 0xF0000 < r.end)
        assert rom.kind == "rom", regions
        assert machine.memory.read(0xF0000, 32) == _xp_bytes(machine, 0xF0000, 4)
        # The top of the BIOS area holds the real-mode reset vector: qboot's code, never zeros
        # (where else its code lies differs between QEMU 7.2 and 10).
        seen = machine.memory.read(rom.end - 32, 32)
        assert seen == _xp_bytes(machine, rom.end - 32, 4) and any(seen), rom
        # a read across the RAM/ROM boundary is stitched the same way
        assert machine.memory.read(0xEFFF0, 32) == _xp_bytes(machine, 0xEFFF0, 4)
        assert machine.memory.read(0x100000, 16) == _xp_bytes(machine, 0x100000, 2)


def test_device_registers_are_refused_not_read(image: Image) -> None:
    with Machine(image) as machine:
        machine.wait_for("> ")
        ram = machine.memory
        # No device lies below RAM's end on microvm, so claim one there, as QEMU's flat view
        # would show it: RAM on either side.
        low = machine.physical_map()[0]
        assert low.kind == "ram" and low.start == 0 and low.end > 0x3000
        fake = (PhysicalRegion(0, 0x2000, "ram", low.name, 0), PhysicalRegion(0x2000, 0x3000, "io", "test-device"),
                PhysicalRegion(0x3000, low.end, "ram", low.name, 0x3000))
        ram.attach_map(PhysicalMap((*fake, *machine.physical_map()[1:])), machine.read_physical_through_qemu)
        with pytest.raises(PhysicalAddressError, match="test-device"):
            ram.read(0x1FF0, 32)
        with pytest.raises(PhysicalAddressError, match="test-device"):
            ram.write(0x2FF0, bytes(32))


def test_memory_that_is_not_ram_is_neither_read_nor_written_as_ram(image: Image) -> None:
    with Machine(image) as machine:
        machine.wait_for("> ")
        nowhere = machine.memory_mib << 21  # twice the RAM: no region on microvm
        with pytest.raises(PhysicalAddressError, match="no memory"):
            machine.memory.read(nowhere, 8)
        with pytest.raises(PhysicalAddressError, match="ROM"):  # the guest cannot change its BIOS
            machine.memory.write(0xF0000, b"\x90")
        assert machine.memory.read(0xF0000, 8) == _xp_bytes(machine, 0xF0000, 1)
        high = next(r for r in machine.physical_map() if r.kind == "rom" and r.start >= machine.memory.size)
        assert machine.memory.read(high.start, 16) == _xp_bytes(machine, high.start, 2)  # beyond RAM too
        device = next(r for r in machine.physical_map() if r.kind == "io")
        with pytest.raises(PhysicalAddressError, match=device.name):
            machine.memory.read(device.start, 4)


def test_without_shared_memory_the_map_is_respected_too(image: Image) -> None:
    with Machine(image, shared_memory=False) as machine:
        machine.wait_for("> ")
        assert machine.memory.read(0xF0000, 16) == _xp_bytes(machine, 0xF0000, 2)
        device = next(r for r in machine.physical_map() if r.kind == "io")
        with pytest.raises(PhysicalAddressError, match=device.name):
            machine.memory.read(device.start, 4)
        with pytest.raises(PhysicalAddressError, match="no memory"):
            machine.memory.read(machine.memory_mib << 21, 8)
