"""Guest RAM owned by Python: a memfd that QEMU maps as the guest's memory.

The file offset of the memfd is the guest physical address (Machine keeps RAM below the PCI
hole), so reading guest memory is a slice of an mmap: no copy through QEMU, no file on disk.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable, Iterable

from workbench.errors import InvalidInput, WorkbenchError
from workbench.models.physmap import DEVICE, RAM, PhysicalMap, PhysicalRegion, describe_place, regions_of


class PhysicalAddressError(InvalidInput):
    """A physical address range the guest has no readable memory at (or no range at all)."""


def check_range(paddr: object, length: object) -> None:
    """Both are ints, paddr >= 0 and length >= 0 (a bool is not a number here)."""
    for name, value in (("paddr", paddr), ("length", length)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise PhysicalAddressError(f"{name} must be an int, not {type(value).__name__}")
        if value < 0:
            raise PhysicalAddressError(f"{name} must not be negative, but it is {value}")


def _ram_here(region: PhysicalRegion | None, end: int, size: int) -> bool:
    """The region is RAM whose paddr is its offset in the memfd, up to `end`."""
    return region is not None and region.kind == RAM and region.ram_offset == region.start and end <= size


def _refuse_unreadable(paddr: int, end: int, region: PhysicalRegion | None, start: int, stop: int) -> None:
    """Raise PhysicalAddressError unless the piece [start, stop) of [paddr, end) is RAM or ROM."""
    if region is None:
        raise PhysicalAddressError(
            f"paddr range {paddr:#x}..{end:#x} reaches {start:#x}..{stop:#x}, where the guest has no memory "
            "(its CPU reads zeros there, and writes go nowhere)")
    if region.kind == DEVICE:
        raise PhysicalAddressError(
            f"paddr range {paddr:#x}..{end:#x} touches {region.name} at {region.start:#x}..{region.end:#x}, "
            "device registers rather than memory: reading them could change the device, so the "
            "workbench does not")


class GuestRAM:
    """A memfd of `size` bytes, mapped into this process and shared with QEMU.

    Until `attach_map` gives it QEMU's physical map it knows only its own bytes, RAM from paddr
    0 to `size`; with the map, `read` returns what the guest sees at any paddr.
    """

    method = "shared memfd (zero-copy)"

    def __init__(self, size: int, name: str = "guest-ram") -> None:
        self.size = size
        self.fd = os.memfd_create(name, os.MFD_CLOEXEC)
        try:
            os.ftruncate(self.fd, size)
            self._map = mmap.mmap(self.fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except BaseException:
            os.close(self.fd)
            raise
        self.physical_map = PhysicalMap.ram_only(size)
        self._read_rom: Callable[[int, int], bytes] | None = None

    @property
    def map_attached(self) -> bool:
        return self._read_rom is not None

    def attach_map(self, regions: Iterable[PhysicalRegion], read_rom: Callable[[int, int], bytes]) -> None:
        """Learn where RAM, ROM and devices are (QEMU's map), and how to read ROM (through QEMU)."""
        self.physical_map = regions_of(regions)
        self._read_rom = read_rom

    def _check(self, paddr: int, length: int) -> None:
        check_range(paddr, length)
        if paddr + length > self.size:
            raise PhysicalAddressError(
                f"paddr range {paddr:#x}..{paddr + length:#x} lies outside the guest's "
                f"{self.size // (1 << 20)} MiB of RAM (0x0..{self.size:#x})"
            )

    def read(self, paddr: int, length: int) -> bytes:
        """Copy `length` bytes at guest physical address `paddr`, as the guest sees them.

        RAM comes from the shared memory; ROM, also where QEMU maps it over RAM (qboot's BIOS
        at 0xf0000), through QEMU. A range that touches device registers, or a paddr where
        the guest has no memory, is refused: PhysicalAddressError says which.
        """
        check_range(paddr, length)
        end = paddr + length
        pieces = self.physical_map.pieces(paddr, end) if length else []
        if len(pieces) == 1 and _ram_here(pieces[0][2], end, self.size):
            return self._map[paddr:end]
        chunks = []
        for start, stop, region in pieces:
            _refuse_unreadable(paddr, end, region, start, stop)
            assert region is not None
            if region.kind == RAM and _ram_here(region, stop, self.size):
                chunks.append(self._map[start:stop])
            elif self._read_rom is not None:
                chunks.append(self._read_rom(start, stop - start))
            else:
                raise PhysicalAddressError(f"paddr range {start:#x}..{stop:#x} is {describe_place('memory', region)}, "
                                           "which this memory cannot read")
        return b"".join(chunks)

    def view(self, paddr: int, length: int) -> memoryview:
        """A zero-copy, read-only window on the RAM itself; it sees the guest's later writes.

        It shows RAM bytes even where ROM or devices cover them (see `physical_map`): `read` instead.
        """
        self._check(paddr, length)
        return memoryview(self._map)[paddr : paddr + length].toreadonly()

    def write(self, paddr: int, data: bytes) -> None:
        """Store `data` at `paddr` in RAM (the guest sees it at once).

        Only RAM the guest sees can be written: ROM (also over RAM), device registers and
        paddrs where there is no memory raise PhysicalAddressError, and nothing is written.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise PhysicalAddressError(f"data to write must be bytes, not {type(data).__name__}")
        raw = memoryview(data).cast("B")
        self.check_writable(paddr, len(raw))
        self._map[paddr : paddr + len(raw)] = raw

    def check_writable(self, paddr: int, length: int) -> None:
        """PhysicalAddressError unless [paddr, paddr + length) is all RAM the guest sees."""
        self._check(paddr, length)
        end = paddr + length
        for start, stop, region in self.physical_map.pieces(paddr, end) if length else []:
            _refuse_unreadable(paddr, end, region, start, stop)
            if not _ram_here(region, stop, self.size):
                raise PhysicalAddressError(
                    f"paddr range {paddr:#x}..{end:#x} reaches {start:#x}..{stop:#x}, "
                    f"{describe_place('memory', region)}: the guest cannot change it there, so neither does the "
                    "workbench")

    def close(self) -> None:
        """Unmap and close; views still held elsewhere keep the mapping alive until dropped."""
        try:
            self._map.close()
        except BufferError:
            pass  # a memoryview is still exported; the mapping goes when the last view does
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class MonitorMemory:
    """Guest RAM read through QMP `pmemsave`, for when QEMU does not share its RAM with us.

    QEMU writes each range into a memfd of ours, which it opens through /proc: no file on
    disk. About 4 ms per MiB read instead of microseconds; read-only.
    """

    method = "QMP pmemsave (copy through QEMU)"

    def __init__(self, size: int, pmemsave: Callable[[int, int, str], None],
                 physical_map: PhysicalMap | None = None) -> None:
        self.size = size
        self.physical_map = physical_map if physical_map is not None else PhysicalMap.ram_only(size)
        self._pmemsave = pmemsave
        self._scratch = os.memfd_create("pmemsave", os.MFD_CLOEXEC)

    def read(self, paddr: int, length: int) -> bytes:
        """`length` bytes at `paddr` as the guest sees them (RAM or ROM); devices and paddrs where
        the guest has no memory are refused, as by GuestRAM.read."""
        check_range(paddr, length)
        if length == 0:
            return b""
        for start, stop, region in self.physical_map.pieces(paddr, paddr + length):
            _refuse_unreadable(paddr, paddr + length, region, start, stop)
        os.ftruncate(self._scratch, 0)
        self._pmemsave(paddr, length, f"/proc/{os.getpid()}/fd/{self._scratch}")
        return os.pread(self._scratch, length, 0)

    def write(self, paddr: int, data: bytes) -> None:
        raise WorkbenchError(
            "this machine's RAM is not shared with the workbench, so it can only be read; "
            "start the Machine with shared_memory=True to change guest memory"
        )

    def close(self) -> None:
        if self._scratch >= 0:
            os.close(self._scratch)
            self._scratch = -1


class PageNeeded(Exception):  # a request, not an error: it never reaches a caller
    """FetchedMemory lacks the bytes at `paddr`; fetch `length` of them and try again."""

    def __init__(self, paddr: int, length: int) -> None:
        super().__init__(f"{length} bytes at paddr {paddr:#x} are not fetched yet")
        self.paddr = paddr
        self.length = length


class FetchedMemory:
    """Guest memory for a model run on a machine's event-loop thread, where QEMU can only be
    asked with awaited calls: RAM comes from the shared memory, and any other readable piece
    (ROM, or everything without shared memory) must have been fetched with `add`; `read`
    raises PageNeeded for the first piece that was not.
    """

    def __init__(self, physical_map: PhysicalMap, ram: GuestRAM | None) -> None:
        self.physical_map = physical_map
        self._ram = ram
        self._fetched: dict[tuple[int, int], bytes] = {}

    @property
    def size(self) -> int:
        return self._ram.size if self._ram is not None else 0

    def add(self, paddr: int, data: bytes) -> None:
        self._fetched[(paddr, len(data))] = data

    def read(self, paddr: int, length: int) -> bytes:
        check_range(paddr, length)
        chunks = []
        for start, stop, region in self.physical_map.pieces(paddr, paddr + length) if length else []:
            _refuse_unreadable(paddr, paddr + length, region, start, stop)
            if self._ram is not None and _ram_here(region, stop, self._ram.size):
                chunks.append(bytes(self._ram.view(start, stop - start)))
            elif (start, stop - start) in self._fetched:
                chunks.append(self._fetched[(start, stop - start)])
            else:
                raise PageNeeded(start, stop - start)
        return b"".join(chunks)
