"""workbench.models.frames without QEMU: how heap and ring-3 pages take their frames.

Thousands of 4 KiB heap pages take theirs in one numpy step (`_give_frames`); pages larger than
4 KiB go through the ordered loop (`_give_ranges`). The step must mean what the loop means.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from workbench.models import frames
from workbench.models.frames import FRAME, Owner


@given(owners=st.lists(st.sampled_from(list(Owner)), min_size=1, max_size=64),
       pages=st.lists(st.integers(0, 63), max_size=80), owner=st.sampled_from([Owner.HEAP, Owner.USER]))
def test_4_kib_pages_take_the_frames_the_loop_gives_them(owners: list[Owner], pages: list[int], owner: Owner) -> None:
    numbers = [page for page in pages if page < len(owners)]  # a frame may be mapped by several pages
    stepped, looped = np.array(owners, np.uint8), np.array(owners, np.uint8)
    frames._give_frames(stepped, np.array(numbers, np.int64), owner)
    frames._give_ranges(looped, [number * FRAME for number in numbers], [FRAME] * len(numbers), owner)
    assert np.array_equal(stepped, looped)


def test_only_ram_and_handed_out_frames_are_taken() -> None:
    owners = np.array([Owner.ALLOCATED, Owner.DIRECT_ONLY, Owner.MAPPED, Owner.UNMAPPED, Owner.FREE,
                       Owner.PT, Owner.TEXT, Owner.USER], np.uint8)
    frames._give_frames(owners, np.arange(len(owners), dtype=np.int64), Owner.HEAP)
    assert owners.tolist() == [Owner.HEAP] * 4 + [Owner.FREE, Owner.PT, Owner.TEXT, Owner.USER]


def test_a_large_page_whose_first_frame_an_earlier_page_took_takes_nothing() -> None:
    owners = np.full(1024, Owner.MAPPED, np.uint8)
    frames._give_ranges(owners, [512 * FRAME, 512 * FRAME], [FRAME, 2 << 20], Owner.HEAP)
    assert owners[512] == Owner.HEAP and (owners[513:] == Owner.MAPPED).all() and (owners[:512] == Owner.MAPPED).all()
