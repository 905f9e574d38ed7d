"""Looking inside a running machine: its registers, its physical memory and QEMU's map of it,
and its memory by vaddr and by C variable.

`Inspector` is the part of a Machine that reads (and writes) the guest rather than running
it. It holds only what that takes: the image (for symbols), the machine's Monitor (QMP) and
the shared guest RAM; it never changes whether the guest runs. Machine offers its methods as
its own (`machine.registers()`, `machine.read_symbol()`).
"""

from __future__ import annotations

import os

from workbench.errors import InvalidInput
from workbench.guest.cpus import CpuState, combine
from workbench.guest.memory import FetchedMemory, GuestRAM, MonitorMemory, PageNeeded
from workbench.guest.monitor import Monitor
from workbench.guest.outcome import MachineError, check_timeout
from workbench.kernel.image import Image, Symbol
from workbench.models import paging
from workbench.models.cpu import Registers, parse_info_registers, parse_info_registers_all
from workbench.models.physmap import PhysicalMap, parse_flat_view

PAGE_SIZE = 4096


class BadGuestAccess(InvalidInput):
    """A read or write of guest memory that cannot be done as asked: a bad range, data, or
    value, or a symbol that is not an integer variable. Nothing was read or written."""


def _check_virtual_range(vaddr: object, length: object, most: int) -> None:
    """A range of vaddrs: ints, inside the 64-bit address space, at most `most` bytes long."""
    for name, value in (("vaddr", vaddr), ("length", length)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadGuestAccess(f"{name} is an int, not {type(value).__name__}")
    assert isinstance(vaddr, int) and isinstance(length, int)
    if not 0 <= vaddr < 1 << 64:
        raise BadGuestAccess(f"vaddr must be from 0 to 0xffffffffffffffff, not {vaddr:#x}")
    if not 0 <= length <= most:
        raise BadGuestAccess(f"length must be from 0 to {most} (the guest's RAM), not {length}")
    if vaddr + length > 1 << 64:
        raise BadGuestAccess(f"{length} bytes from vaddr {vaddr:#x} run past the end of the address space")


class Inspector:
    """Reads (and writes) one guest through its QEMU's monitor and, when shared, its RAM."""

    def __init__(self, image: Image, monitor: Monitor, memory_mib: int) -> None:
        self.image = image
        self.ram: GuestRAM | None = None  # the guest's RAM shared with QEMU (use_ram), else pmemsave copies it
        self._monitor = monitor
        self._ram_size = memory_mib << 20
        self._monitor_memory: MonitorMemory | None = None
        self._maxphyaddr: int | None = None
        self._physical_map: PhysicalMap | None = None

    def use_ram(self, ram: GuestRAM) -> None:
        """Read and write the guest's RAM here, shared with QEMU; released by close()."""
        self.ram = ram

    def close(self) -> None:
        """Release the guest RAM's mapping and descriptor (QEMU has exited)."""
        if self.ram is not None:
            self.ram.close()
        if self._monitor_memory is not None:
            self._monitor_memory.close()

    # The CPU and QEMU's map.

    def registers(self, timeout: float = 5.0) -> Registers:
        """The CPU registers now. Pause first for a consistent snapshot of a running guest."""
        timeout = check_timeout(timeout)
        return parse_info_registers(self._monitor.hmp("info registers", timeout))

    def all_registers(self, timeout: float = 5.0) -> tuple[Registers, ...]:
        """Every CPU's registers (`info registers -a`), CPU 0 first."""
        timeout = check_timeout(timeout)
        return parse_info_registers_all(self._monitor.hmp("info registers -a", timeout))

    def cpus(self, timeout: float = 5.0) -> tuple[CpuState, ...]:
        """Every CPU: QMP's list of them with each one's registers (see cpus.py)."""
        timeout = check_timeout(timeout)
        listed = self._monitor.qmp("query-cpus-fast", timeout)
        return combine(listed, self._monitor.hmp("info registers -a", timeout), self.image)

    def maxphyaddr(self, timeout: float = 5.0) -> int:
        """The CPU's physical-address width (CPUID 0x80000008 EAX[7:0]): 40 for QEMU's qemu64.

        Entry bits 51 down to this are reserved: the CPU faults on them, so every walk needs it.
        Asked of QEMU once (its CPU object's `phys-bits` property) and kept.
        """
        timeout = check_timeout(timeout)
        if self._maxphyaddr is None:
            self._maxphyaddr = self._monitor.run(self.maxphyaddr_on_loop(), timeout)
        return self._maxphyaddr

    async def maxphyaddr_on_loop(self) -> int:
        """maxphyaddr() for the event-loop thread (asked before the guest runs: a fault report needs it)."""
        if self._maxphyaddr is None:
            cpus = await self._monitor.execute("query-cpus-fast")
            bits = await self._monitor.execute("qom-get", {"path": cpus[0]["qom-path"], "property": "phys-bits"})
            if not isinstance(bits, int) or not 36 <= bits <= 52:
                raise MachineError(f"QEMU reports a physical-address width of {bits!r} bits; expected 36 to 52")
            self._maxphyaddr = bits
        return self._maxphyaddr

    def physical_map(self, timeout: float = 5.0) -> PhysicalMap:
        """The guest's physical address space from QEMU (`info mtree -f`): RAM, ROM and devices.

        Asked once and kept: the regions of a machine do not move while it runs.
        """
        timeout = check_timeout(timeout)
        if self._physical_map is None:
            self._physical_map = parse_flat_view(self._monitor.hmp("info mtree -f", timeout))
        return self._physical_map

    async def _physical_map_on_loop(self) -> PhysicalMap:
        """physical_map() for the event-loop thread."""
        if self._physical_map is None:
            self._physical_map = parse_flat_view(await self._monitor.hmp_on_loop("info mtree -f"))
        return self._physical_map

    def read_physical_through_qemu(self, paddr: int, length: int, timeout: float = 30.0) -> bytes:
        """Bytes at `paddr` as the guest sees them, copied by QEMU (pmemsave): ROM included."""
        timeout = check_timeout(timeout)
        scratch = os.memfd_create("pmemsave", os.MFD_CLOEXEC)
        try:
            self._monitor.qmp("pmemsave", timeout, val=paddr, size=length, filename=f"/proc/{os.getpid()}/fd/{scratch}")
            return os.pread(scratch, length, 0)
        finally:
            os.close(scratch)

    async def registers_on_loop(self) -> Registers:
        """registers() for the event-loop thread."""
        return parse_info_registers(await self._monitor.hmp_on_loop("info registers"))

    # Guest memory.

    @property
    def memory(self) -> GuestRAM | MonitorMemory:
        """Guest physical memory: the shared memfd when there is one, else QMP pmemsave."""
        self._monitor.require_live()
        if self.ram is not None:
            if self.ram.map_attached is False:  # once: where ROM or devices cover RAM paddrs
                self.ram.attach_map(self.physical_map(), self.read_physical_through_qemu)
            return self.ram
        if self._monitor_memory is None:
            def pmemsave(paddr: int, length: int, path: str) -> None:
                self._monitor.qmp("pmemsave", 30.0, val=paddr, size=length, filename=path)
            self._monitor_memory = MonitorMemory(self._ram_size, pmemsave, self.physical_map())
        return self._monitor_memory

    def _paddr_of(self, vaddr: int, length: int) -> list[tuple[int, int]]:
        """(paddr, length) pieces of the virtual range, translated by the guest's own tables."""
        _check_virtual_range(vaddr, length, self._ram_size)
        registers = self.registers()
        memory = self.memory
        pieces = []
        while length > 0:
            take = min(length, PAGE_SIZE - vaddr % PAGE_SIZE)
            pieces.append((paging.translate(memory, registers, vaddr, maxphyaddr=self.maxphyaddr()), take))
            vaddr, length = vaddr + take, length - take
        return pieces

    def read_virtual(self, vaddr: int, length: int) -> bytes:
        """Bytes at a guest vaddr, through the guest's current page tables (works while it runs).

        Raises paging.PageFaultError, with the whole walk, when part of the range is unmapped,
        and BadGuestAccess for a range that is not one (at most the guest's RAM size).
        """
        memory = self.memory
        return b"".join(memory.read(paddr, size) for paddr, size in self._paddr_of(vaddr, length))

    def write_virtual(self, vaddr: int, data: bytes) -> None:
        """Store bytes at a guest vaddr; the guest sees them at once.

        All of it or nothing: every page is translated, and checked to be RAM the guest can
        change, before the first byte is written.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            hint = " (encode text first, e.g. 'hi'.encode())" if isinstance(data, str) else ""
            raise BadGuestAccess(f"write_virtual() stores bytes, not {type(data).__name__}{hint}")
        data = memoryview(data).cast("B").tobytes()
        memory = self.memory
        pieces = self._paddr_of(vaddr, len(data))
        if isinstance(memory, GuestRAM):
            for paddr, size in pieces:
                memory.check_writable(paddr, size)
        offset = 0
        for paddr, size in pieces:
            memory.write(paddr, data[offset : offset + size])
            offset += size

    def read_symbol(self, name: str) -> int:
        """The value of a C variable of the unikernel (1, 2, 4 or 8 bytes, little-endian, unsigned)."""
        symbol = self._variable(name)
        return int.from_bytes(self.read_virtual(symbol.vaddr, symbol.size), "little")

    def write_symbol(self, name: str, value: int) -> None:
        """Change a C variable of the unikernel, also while it runs."""
        symbol = self._variable(name)
        if not isinstance(value, int):
            raise BadGuestAccess(f"write_symbol() stores an int in {name}, not {type(value).__name__}")
        if not 0 <= value < 1 << (8 * symbol.size):
            raise BadGuestAccess(
                f"{value} does not fit in {name}, which holds {symbol.size} bytes: 0 to {(1 << 8 * symbol.size) - 1}"
                + (f" (for a negative number write its two's complement, {value & ((1 << 8 * symbol.size) - 1)})"
                   if -(1 << (8 * symbol.size - 1)) <= value < 0 else ""))
        self.write_virtual(symbol.vaddr, value.to_bytes(symbol.size, "little"))

    def _variable(self, name: str) -> Symbol:
        symbol = self.image.symbol(name)
        if symbol.kind != "object" or symbol.size not in (1, 2, 4, 8):
            raise BadGuestAccess(f"{name} is a {symbol.kind} of {symbol.size} bytes, not an integer variable; "
                                 "use read_virtual() for other data")
        return symbol

    # For the event-loop thread, where QMP can only be awaited.

    async def walk_on_loop(self, registers: Registers, vaddr: int) -> paging.Walk | None:
        """The CPU's own view of `vaddr` (a fault's CR2), walked on the event-loop thread.

        QMP cannot be called synchronously here, so the walk reads shared RAM directly and
        every other piece it needs (ROM, or all of it without shared RAM) is fetched with an
        awaited pmemsave, then the walk is tried again: at most one fetch per level.
        """
        memory = FetchedMemory(await self._physical_map_on_loop(), self.ram)
        for _attempt in range(2 * len(paging.Level) + 1):
            try:
                return paging.walk(memory, registers, vaddr, maxphyaddr=self._maxphyaddr or 52)
            except PageNeeded as need:
                memory.add(need.paddr, await self._monitor.pmemsave_on_loop(need.paddr, need.length))
        return None
