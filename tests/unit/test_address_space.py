"""The labelled address space on hand-built tables: the same regions however it is computed,
and, on a guest whose tables hold hundreds of thousands of garbage leaves, text, HTML and the
map view that stay capped and say how much they summarise.
"""

from __future__ import annotations

import itertools
import random
import re

import numpy as np

from tests.unit.test_paging import KERNEL, RW, US, XD, A, P, Tables, _rom_and_device_memory, entry_for
from workbench.models.address_space import ADDRESS_SPACE_END, MAX_ROWS, Region, Summary
from workbench.models.snapshot import Snapshot
from workbench.views import AddressSpaceMap
from workbench.views.address_map import MAX_SEGMENTS

GARBAGE_TABLES = 1700  # page tables of 512 random entries each, 3 in 4 present: about 650,000 leaves


def snapshot(t: Tables) -> Snapshot:
    return Snapshot.take(t.memory, t.regs())  # type: ignore[arg-type]  # registers: duck-typed


def garbage_guest() -> tuple[Tables, int]:
    """A lower half whose page tables are full of random present entries, as a guest's garbage RAM."""
    t = Tables(size=(GARBAGE_TABLES + 64) * 4096 + (8 << 20))
    rng = np.random.default_rng(9)
    present = 1
    for i in range(GARBAGE_TABLES):  # one page in each 2 MiB makes a PT; then fill it with garbage
        assert t.map(i << 21, 0, flags=P)
        table, _ = entry_for(t, i << 21, 1)
        garbage = rng.integers(0, 1 << 63, size=512, dtype=np.uint64)
        garbage[rng.random(512) < 0.75] |= np.uint64(P)
        present += int(np.count_nonzero(garbage & np.uint64(P)))
        garbage &= ~np.uint64(0x7FF0_0000_0000_0000)  # reserved bits clear (such leaves would be listed too)
        np.frombuffer(t.mem, dtype="<u8", count=512, offset=table)[:] = garbage
    assert t.map(KERNEL, 0x10_0000, flags=P | A)
    return t, present


def test_huge_garbage_guest_is_summarised_in_text_html_and_the_map() -> None:
    tables, present = garbage_guest()
    shot = snapshot(tables)
    assert len(shot.leaves) == present > 600_000
    space = shot.address_space()
    assert len(space) > 200_000, f"expected a garbled address space, got {len(space)} regions"

    rows = space.summarised()
    assert len(rows) <= MAX_ROWS
    summaries = [r for r in rows if isinstance(r, Summary)]
    assert summaries, "no row summarises the regions left out"
    # Every region is either shown or counted in a summary, and the rows cover 0..2**64 without gaps.
    assert sum(r.regions if isinstance(r, Summary) else 1 for r in rows) == len(space)
    assert rows[0].start == 0 and rows[-1].end == ADDRESS_SPACE_END
    assert all(a.end == b.start for a, b in itertools.pairwise(rows))
    assert sum(r.mapped for r in summaries) + sum(r.size for r in rows if isinstance(r, Region) and r.mapped) \
        == space.mapped_bytes()
    assert any(r.kind == "non-canonical" for r in rows if isinstance(r, Region))

    text = str(space)
    lines = text.splitlines()
    assert len(lines) <= MAX_ROWS + 1, f"{len(lines)} lines of text"
    assert re.search(r"\d[\d,]* more regions: ", text), text[:2000]
    html = space._repr_html_()
    assert html.count("<tr") <= MAX_ROWS + 1 and "more regions" in html
    assert len(html) < 100_000 and len(space.audit().splitlines()) <= 42

    view = AddressSpaceMap(shot)
    assert len(view.segments) <= MAX_SEGMENTS
    clusters = [s for s in view.segments if s["cluster"]]
    assert sum(s["cluster"]["regions"] for s in clusters) + len(view.segments) - len(clusters) == len(space)
    assert view.summary["regions"] == len(space)
    static = view.static_html()
    assert re.search(r"\d[\d,]* regions, ", static) and len(static) < 200_000
    assert repr(view).startswith("<AddressSpaceMap: ")


def test_small_guest_shows_every_region_and_no_summary() -> None:
    t = Tables(size=16 << 20)
    rng = random.Random(3)  # noqa: S311 - test data, not secrets
    for i in range(40):
        assert t.map(0x40_0000 + 2 * i * 0x1000, 0x10_0000 + i * 0x1000,
                     flags=P | rng.choice([0, RW]) | rng.choice([0, XD]) | rng.choice([0, US]))
    space = snapshot(t).address_space()
    rows = space.summarised()
    assert len(rows) == len(space) and not any(isinstance(r, Summary) for r in rows)
    assert len(str(space).splitlines()) == len(space) + 1 and "more regions" not in str(space)
    assert [r.start for r in space.regions] == sorted(r.start for r in space.regions)
    assert space.region_at(0x40_1000).kind == "unmapped"


def test_pages_that_map_rom_or_device_registers_say_so() -> None:
    """The physical map names what an unlabelled page maps: ROM, device registers, or nothing."""
    t, memory = _rom_and_device_memory()
    for vaddr, frame in ((0x1000, 0x5000), (0x2000, 0xE1000), (0x3000, 0xD0000), (0x4000, 0x7000_0000)):
        assert t.map(vaddr, frame)
    space = Snapshot.take(memory, t.regs()).address_space()  # type: ignore[arg-type]  # registers: duck-typed
    labels = {region.start: (region.kind, region.label) for region in space.regions if region.permissions}
    assert labels == {0x1000: ("other", "mapped, not described by the image"), 0x2000: ("rom", "ROM (bios)"),
                      0x3000: ("device", "device registers (test-device)"),
                      0x4000: ("no-memory", "mapped where the guest has no memory")}
