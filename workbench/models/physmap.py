"""The guest's physical address space as QEMU lays it out: RAM, ROM and device regions.

Parsed from HMP `info mtree -f` (the flat view of the "memory" address space), never assumed:
microvm's RAM ends at 0x4000000 on QEMU 7.2 and at 0x3fff000 on QEMU 10, and a BIOS ROM covers
RAM at 0xf0000. Pure: `parse_flat_view` takes the monitor's text.

What the guest's CPU finds at a paddr (QEMU 7.2 and 10, checked by tests/integration): RAM and
ROM hold bytes; device regions answer with their registers (a read can change the device);
where no region is, a read returns zeros and a write is dropped.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import overload

from workbench.errors import WorkbenchError


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


RAM, ROM, DEVICE = "ram", "rom", "io"  # PhysicalRegion.kind
PAGE_SIZE = 4096


@dataclass(frozen=True)
class PhysicalMap(Sequence[PhysicalRegion]):
    """The regions of the guest's physical address space, in paddr order, none overlapping.

    A sequence of `PhysicalRegion`s; a paddr in none of them is where the guest has no memory.
    Memories without a map from QEMU (`BytesMemory`, hand-built tables) are `ram_only(size)`.
    """

    regions: tuple[PhysicalRegion, ...]
    _starts: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.regions, key=lambda region: region.start))
        for before, after in itertools.pairwise(ordered):
            if after.start < before.end:
                raise PhysicalMapError(f"physical regions overlap: {before} and {after}")
        object.__setattr__(self, "regions", ordered)
        object.__setattr__(self, "_starts", tuple(region.start for region in ordered))

    @classmethod
    def ram_only(cls, size: int) -> PhysicalMap:
        """RAM from paddr 0 to `size`, nothing else (no ROM, no devices)."""
        return cls((PhysicalRegion(0, size, RAM, "ram", 0),) if size > 0 else ())

    @overload
    def __getitem__(self, index: int) -> PhysicalRegion: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[PhysicalRegion]: ...

    def __getitem__(self, index: int | slice) -> PhysicalRegion | Sequence[PhysicalRegion]:
        return self.regions[index]

    def __len__(self) -> int:
        return len(self.regions)

    def __iter__(self) -> Iterator[PhysicalRegion]:
        return iter(self.regions)

    def __str__(self) -> str:
        return "\n".join(str(region) for region in self.regions)

    @property
    def ram_end(self) -> int:
        """The first paddr after the highest RAM (0 without RAM)."""
        return max((region.end for region in self.regions if region.kind == RAM), default=0)

    def region_at(self, paddr: int) -> PhysicalRegion | None:
        """The region holding `paddr`, or None where the guest has no memory."""
        at = bisect.bisect_right(self._starts, paddr) - 1
        if at >= 0 and paddr < self.regions[at].end:
            return self.regions[at]
        return None

    def pieces(self, start: int, end: int) -> list[tuple[int, int, PhysicalRegion | None]]:
        """[start, end) cut where regions begin and end: (start, end, region or None) in order."""
        out: list[tuple[int, int, PhysicalRegion | None]] = []
        at = start
        index = max(bisect.bisect_right(self._starts, start) - 1, 0)
        while at < end:
            region = self.regions[index] if index < len(self.regions) else None
            if region is None or region.start >= end:
                out.append((at, end, None))
                break
            if region.end <= at:
                index += 1
                continue
            if region.start > at:
                out.append((at, region.start, None))
            stop = min(region.end, end)
            out.append((max(region.start, at), stop, region))
            at, index = stop, index + 1
        return out

    def page_place(self, paddr: int) -> tuple[str, PhysicalRegion | None]:
        """What the 4 KiB page holding `paddr` is, as a page-table walk meets it:

        - ("device", region): some of it is device registers (the first such region);
        - ("none", None): no region touches it: the guest reads zeros there;
        - ("ram", region): all of it is RAM;
        - ("memory", region): RAM or ROM, perhaps with holes that read as zeros (the first
          ROM region), so it is read as the guest reads it rather than straight from RAM.
        """
        page = paddr - paddr % PAGE_SIZE
        pieces = [piece for piece in self.pieces(page, page + PAGE_SIZE) if piece[2] is not None]
        regions = [region for _start, _end, region in pieces if region is not None]
        device = next((region for region in regions if region.kind == DEVICE), None)
        if device is not None:
            return "device", device
        if not regions:
            return "none", None
        if len(pieces) == 1 and pieces[0][:2] == (page, page + PAGE_SIZE) and regions[0].kind == RAM:
            return "ram", regions[0]
        return "memory", next((region for region in regions if region.kind == ROM), regions[0])

    def ram_pages(self, page_count: int) -> list[tuple[int, int]]:
        """(first, end) page numbers below `page_count` that lie wholly in RAM regions whose
        paddr is their offset in guest RAM (as on every machine the workbench starts)."""
        runs = []
        for region in self.regions:
            if region.kind == RAM and region.ram_offset == region.start:
                first, end = -(-region.start // PAGE_SIZE), min(region.end // PAGE_SIZE, page_count)
                if first < end:
                    runs.append((first, end))
        return runs


def describe_place(place: str, region: PhysicalRegion | None) -> str:
    """A few words for a student on what a paddr's page is: `in ROM (pc.bios)`, `in device memory (ioapic)`."""
    if place == "device" and region is not None:
        return f"in device memory ({region.name})"
    if place == "none":
        return "where the guest has no memory"
    if region is not None and region.kind == ROM:
        return f"in ROM ({region.name})"
    return "in RAM"


def regions_of(regions: Iterable[PhysicalRegion] | PhysicalMap) -> PhysicalMap:
    """`regions` as a PhysicalMap."""
    return regions if isinstance(regions, PhysicalMap) else PhysicalMap(tuple(regions))


_FLAT_LINE = re.compile(
    r"^\s+([0-9a-f]{16})-([0-9a-f]{16}) \(prio -?\d+, ([a-z/]+)\): (\S+)(?: @([0-9a-f]{16}))?"
)
RAM_REGION_NAMES = ("ram", "pc.ram", "microvm.ram")  # memory-backend id, or QEMU's default names


def parse_flat_view(text: str) -> PhysicalMap:
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
                regions.append(PhysicalRegion(start, last + 1, DEVICE, name))
            elif kind == "ram" and name in RAM_REGION_NAMES:
                regions.append(PhysicalRegion(start, last + 1, RAM, name, offset))
            else:  # rom, romd, or RAM that is not the machine's (a BIOS image)
                regions.append(PhysicalRegion(start, last + 1, ROM, name))
    if not any(region.kind == RAM for region in regions):
        raise PhysicalMapError("QEMU's `info mtree -f` shows no RAM in the \"memory\" address space:\n" + text[:2000])
    return PhysicalMap(tuple(regions))
