"""The stale-TLB moment as data: what the tables map a page to now, and what each CPU read.

A CPU that reads a page goes through its own TLB: after another CPU moved the page to a new
frame without a shootdown, it may keep reading the old frame. Which frame a CPU read from is
not in any register, so it is found by its value: the word at the page's offset in each frame
compared (the frame mapped now, and the frames the page was mapped to before), the frame whose
word equals what the CPU read last. When that is not the frame the walk ends in, the CPU read
through a translation its TLB kept: stale. The mapped frame is preferred when several hold the
value, so a CPU is called stale only when the tables' frame cannot explain what it read.

`compare()` does it from a walk, guest memory and each CPU's last read; reading those from a
live guest is workbench/guest/stale_tlb.py's work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from workbench.errors import InvalidInput
from workbench.models.paging import PhysicalMemory, Walk

WORD = 8  # a reader reads one 64-bit word


class PageNotMapped(InvalidInput):
    """The tables do not map the page, so there is no frame to compare a read with."""


@dataclass(frozen=True)
class CpuRead:
    """What one CPU read last from the page, and where that CPU is."""

    cpu: int
    value: int
    halted: bool = False
    where: str = ""  # its rip, with a symbol when one covers it


@dataclass(frozen=True)
class ReadSource:
    """One CPU's read, with the frame it came from: None when no frame compared holds the value."""

    read: CpuRead
    frame: int | None
    stale: bool  # the frame is not the one the tables map now


@dataclass(frozen=True)
class StaleTlb:
    """The walk of a page now, the word at the page's offset in each frame compared, each CPU's read."""

    vaddr: int
    walk: Walk
    words: dict[int, int]  # frame paddr -> its word at the page's offset; the frames in the order first seen
    reads: tuple[ReadSource, ...]

    @property
    def frame(self) -> int:
        """The frame the tables map the page to now."""
        assert self.walk.frame_paddr is not None  # compare() refuses a walk that faults
        return self.walk.frame_paddr

    @property
    def paddr(self) -> int:
        assert self.walk.paddr is not None
        return self.walk.paddr

    @property
    def value(self) -> int:
        """The word the mapped frame holds now: what a fresh read returns."""
        return self.words[self.frame]

    @property
    def stale(self) -> bool:
        """Some CPU read a value that the frame the tables map does not hold."""
        return any(source.stale for source in self.reads)

    def summary(self) -> str:
        """One line: what the tables map, what each CPU read and from where, stale or fresh."""
        said = f"the tables map frame {self.frame:#x} holding {self.value:#x}"
        for source in self.reads:
            found = f"from frame {source.frame:#x}" if source.frame is not None else "from no frame compared"
            verdict = "stale: its TLB kept the old translation" if source.stale else "fresh"
            said += f"; cpu {source.read.cpu} read {source.read.value:#x} {found}, {verdict}"
        return said if self.reads else said + "; no CPU reads the page"


def compare(vaddr: int, walk: Walk, memory: PhysicalMemory, reads: Sequence[CpuRead],
            frames: Sequence[int] = ()) -> StaleTlb:
    """Each CPU's read against the frame `walk` ends in and the other `frames` (4 KiB aligned)."""
    if walk.frame_paddr is None or walk.paddr is None:
        reason = walk.fault.message if walk.fault is not None else "the walk ends in no frame"
        raise PageNotMapped(f"the tables do not map {vaddr:#x}: {reason}")
    offset = walk.paddr - walk.frame_paddr
    compared = list(dict.fromkeys([*frames, walk.frame_paddr]))
    words = {frame: int.from_bytes(memory.read(frame + offset, WORD), "little") for frame in compared}
    return StaleTlb(vaddr, walk, words, tuple(_source(read, words, walk.frame_paddr) for read in reads))


def _source(read: CpuRead, words: dict[int, int], mapped: int) -> ReadSource:
    holding = sorted((frame for frame, word in words.items() if word == read.value), key=lambda frame: frame != mapped)
    frame = holding[0] if holding else None
    return ReadSource(read, frame, frame != mapped)
