"""Guest RAM owned by Python: a memfd that QEMU maps as the guest's memory.

The file offset of the memfd is the guest physical address (Machine keeps RAM below the PCI
hole), so reading guest memory is a slice of an mmap: no copy through QEMU, no file on disk.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable, Sequence

from .errors import WorkbenchError
from .physmap import PhysicalRegion


class PhysicalAddressError(WorkbenchError):
    """A physical address range outside the guest's RAM."""


class GuestRAM:
    """A memfd of `size` bytes, mapped into this process and shared with QEMU."""

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

    not_ram: tuple[PhysicalRegion, ...] = ()  # ROM or devices covering RAM paddrs (attach_map)
    _read_rom: Callable[[int, int], bytes] | None = None
    map_attached = False

    def attach_map(self, regions: Sequence[PhysicalRegion], read_rom: Callable[[int, int], bytes]) -> None:
        """Learn which paddrs below `size` the guest does not see as RAM, and how to read ROM there."""
        self.not_ram = tuple(r for r in regions if r.kind != "ram" and r.start < self.size)
        self._read_rom = read_rom
        self.map_attached = True

    def _check(self, paddr: int, length: int) -> None:
        if paddr < 0 or length < 0 or paddr + length > self.size:
            raise PhysicalAddressError(
                f"paddr range {paddr:#x}..{paddr + length:#x} lies outside the guest's "
                f"{self.size // (1 << 20)} MiB of RAM (0x0..{self.size:#x})"
            )

    def read(self, paddr: int, length: int) -> bytes:
        """Copy `length` bytes at guest physical address `paddr`, as the guest sees them.

        Where QEMU maps a ROM over RAM (qboot's BIOS at 0xf0000) the ROM's bytes are read
        through QEMU; a range that touches device registers is refused.
        """
        self._check(paddr, length)
        end = paddr + length
        overlays = [r for r in self.not_ram if r.start < end and paddr < r.end]
        if not overlays:
            return self._map[paddr:end]
        chunks, at = [], paddr
        for region in overlays:
            if region.kind == "io":
                raise PhysicalAddressError(
                    f"paddr range {paddr:#x}..{end:#x} touches {region.name} at {region.start:#x}..{region.end:#x}, "
                    "device registers rather than memory: reading them could change the device, so the "
                    "workbench does not"
                )
            start, stop = max(region.start, paddr), min(region.end, end)
            chunks.append(self._map[at:start])
            assert self._read_rom is not None
            chunks.append(self._read_rom(start, stop - start))
            at = stop
        chunks.append(self._map[at:end])
        return b"".join(chunks)

    def view(self, paddr: int, length: int) -> memoryview:
        """A zero-copy, read-only window on the RAM itself; it sees the guest's later writes.

        It shows RAM bytes even where ROM or devices cover them (`not_ram`): `read` instead.
        """
        self._check(paddr, length)
        return memoryview(self._map)[paddr : paddr + length].toreadonly()

    def write(self, paddr: int, data: bytes) -> None:
        """Store `data` at `paddr` (the guest sees it at once)."""
        self._check(paddr, len(data))
        self._map[paddr : paddr + len(data)] = data

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

    def __init__(self, size: int, pmemsave: Callable[[int, int, str], None]) -> None:
        self.size = size
        self._pmemsave = pmemsave
        self._scratch = os.memfd_create("pmemsave", os.MFD_CLOEXEC)

    def read(self, paddr: int, length: int) -> bytes:
        if paddr < 0 or length < 0 or paddr + length > self.size:
            raise PhysicalAddressError(f"paddr range {paddr:#x}..{paddr + length:#x} lies outside the guest's RAM")
        if length == 0:
            return b""
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
