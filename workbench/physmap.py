"""The guest's physical address space as QEMU lays it out: RAM, ROM and device regions.

Parsed from HMP `info mtree -f` (the flat view of the "memory" address space), never assumed:
microvm's RAM ends at 0x4000000 on QEMU 7.2 and at 0x3fff000 on QEMU 10, and a BIOS ROM covers
RAM at 0xf0000. Pure: `parse_flat_view` takes the monitor's text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import WorkbenchError


class PhysicalMapError(WorkbenchError):
    """QEMU's `info mtree -f` output is not in the expected format."""


@dataclass(frozen=True)
class PhysicalRegion:
    """One range of guest physical addresses and what answers there.

    Attributes:
        start: first paddr.
        end: first paddr after the region.
        kind: "ram" (the machine's RAM, our shared memory), "rom" (firmware or other memory
            that is not the machine's RAM) or "io" (device registers).
        name: QEMU's name of the memory region.
        ram_offset: for "ram", the offset in guest RAM of `start`.
    """

    start: int
    end: int
    kind: str
    name: str
    ram_offset: int | None = None

    @property
    def size(self) -> int:
        return self.end - self.start

    def __str__(self) -> str:
        return f"{self.start:#014x}-{self.end - 1:#014x} {self.kind:<3} {self.name}"


_FLAT_LINE = re.compile(
    r"^\s+([0-9a-f]{16})-([0-9a-f]{16}) \(prio -?\d+, ([a-z/]+)\): (\S+)(?: @([0-9a-f]{16}))?"
)
RAM_REGION_NAMES = ("ram", "pc.ram", "microvm.ram")  # memory-backend id, or QEMU's default names


def parse_flat_view(text: str) -> tuple[PhysicalRegion, ...]:
    """The regions of the flat view whose address spaces include "memory", in paddr order."""
    regions: list[PhysicalRegion] = []
    in_memory = False
    for line in text.replace("\r\n", "\n").split("\n"):
        if line.startswith("FlatView"):
            in_memory = False
        elif line.startswith(' AS "memory"'):
            in_memory = True
        elif in_memory and (match := _FLAT_LINE.match(line)):
            start, last, kind, name = int(match[1], 16), int(match[2], 16), match[3], match[4]
            offset = int(match[5], 16) if match[5] else 0
            if kind == "i/o":
                regions.append(PhysicalRegion(start, last + 1, "io", name))
            elif kind == "ram" and name in RAM_REGION_NAMES:
                regions.append(PhysicalRegion(start, last + 1, "ram", name, offset))
            else:  # rom, romd, or RAM that is not the machine's (a BIOS image)
                regions.append(PhysicalRegion(start, last + 1, "rom", name))
    if not any(region.kind == "ram" for region in regions):
        raise PhysicalMapError("QEMU's `info mtree -f` shows no RAM in the \"memory\" address space:\n" + text[:2000])
    return tuple(regions)
