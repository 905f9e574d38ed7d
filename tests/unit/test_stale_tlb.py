"""The stale-TLB comparison on hand-built tables: a page moved from one frame to another, and CPUs
that read the old value, the new one, or a value no frame holds.
"""

from __future__ import annotations

import struct

import pytest

from tests.unit.test_paging import Tables
from workbench.models.paging import walk
from workbench.models.stale_tlb import CpuRead, PageNotMapped, compare

PAGE = 0xFFFF_C000_0000_0000
OLD, NEW = 0x20_0000, 0x30_0000
OFFSET = 0x18  # the word read is not at the page's start


def moved_page() -> Tables:
    """The page mapped to NEW now; OLD still holds the word it held before the move."""
    t = Tables()
    assert t.map(PAGE, NEW)
    struct.pack_into("<Q", t.mem, OLD + OFFSET, 1)
    struct.pack_into("<Q", t.mem, NEW + OFFSET, 2)
    return t


def test_a_cpu_that_read_the_old_frames_word_is_stale_and_one_on_the_new_is_not() -> None:
    t = moved_page()
    reads = [CpuRead(1, 1, where="reader"), CpuRead(2, 2, halted=True)]
    moment = compare(PAGE + OFFSET, walk(t.memory, t.regs(), PAGE + OFFSET), t.memory, reads, frames=[OLD])
    assert (moment.frame, moment.paddr, moment.value) == (NEW, NEW + OFFSET, 2)
    assert moment.words == {OLD: 1, NEW: 2}
    assert [(source.read.cpu, source.frame, source.stale) for source in moment.reads] == [(1, OLD, True),
                                                                                            (2, NEW, False)]
    assert moment.stale
    assert moment.summary() == ("the tables map frame 0x300000 holding 0x2; cpu 1 read 0x1 from frame 0x200000, "
                                "stale: its TLB kept the old translation; cpu 2 read 0x2 from frame 0x300000, fresh")


def test_the_mapped_frame_is_preferred_when_both_hold_the_value() -> None:
    t = moved_page()
    struct.pack_into("<Q", t.mem, OLD + OFFSET, 2)
    moment = compare(PAGE + OFFSET, walk(t.memory, t.regs(), PAGE + OFFSET), t.memory, [CpuRead(1, 2)], [OLD])
    assert moment.reads[0].frame == NEW and not moment.stale


def test_a_value_no_frame_holds_is_stale_from_no_frame() -> None:
    t = moved_page()
    moment = compare(PAGE + OFFSET, walk(t.memory, t.regs(), PAGE + OFFSET), t.memory, [CpuRead(1, 1)])
    assert list(moment.words) == [NEW]  # without the old frame named, only the mapped one is compared
    assert moment.reads[0].frame is None and moment.stale
    assert "cpu 1 read 0x1 from no frame compared, stale" in moment.summary()


def test_no_reader_and_an_unmapped_page() -> None:
    t = moved_page()
    moment = compare(PAGE, walk(t.memory, t.regs(), PAGE), t.memory, [])
    assert not moment.stale and moment.summary().endswith("; no CPU reads the page")
    with pytest.raises(PageNotMapped, match=r"^the tables do not map 0xffffc00000001000: ") as raised:
        compare(PAGE + 0x1000, walk(t.memory, t.regs(), PAGE + 0x1000), t.memory, [CpuRead(1, 1)])
    assert "\n" not in str(raised.value)
