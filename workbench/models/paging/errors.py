"""The errors of the paging model, all under `WorkbenchError`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench.errors import InvalidInput, WorkbenchError

if TYPE_CHECKING:
    from workbench.models.physmap import PhysicalRegion


class PagingError(WorkbenchError):
    """Root of the errors this module raises."""


class InvalidVaddr(PagingError, InvalidInput):
    """A vaddr that is not an int from 0 to 2**64-1."""


class UnsupportedPagingModeError(PagingError):
    """The registers select a paging mode this model does not walk (32-bit or PAE)."""


class PhysicalMemoryError(PagingError, IndexError):
    """A read of guest physical memory outside RAM."""


class WalkLimitError(PagingError):
    """An enumeration was cut short by its work bound, so exact output cannot be produced."""


class TableInDeviceMemory(PagingError):
    """A page table lies in device memory: its entries would be device registers, which the
    workbench never reads (reading a register can change the device).

    Attributes:
        paddr: the table.
        region: the device's region.
    """

    def __init__(self, paddr: int, region: PhysicalRegion, message: str = "") -> None:
        super().__init__(message or (
            f"the table at paddr {paddr:#018x} lies in device memory ({region.name}, "
            f"{region.start:#x}..{region.end:#x}): its entries would be the device's registers, "
            "which the workbench does not read"))
        self.paddr = paddr
        self.region = region


class MonitorOutputError(PagingError):
    """Text given as QEMU monitor output is not in the expected format."""
