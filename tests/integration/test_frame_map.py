"""The frame map (workbench.models.frames) against QEMU itself, on real guests.

- Every frame the model calls mapped is one QEMU's own `info tlb` maps, and no other; the
  pages a frame's mappings name translate there per QEMU.
- The allocator's free frames are its variables' values, read by the guest's own symbols.
- Each error detector fires on a unikernel built with the bug planted in its own workspace
  (a frame handed out twice; the PML4 mapped writable; a text frame mapped writable), at the
  frames QEMU says the bug made, and a healthy guest has no error at all.
- The stock Linux guest (lesson 09): what needs no symbols still works.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from tests.support import linux_kernel
from workbench.errors import WorkbenchError
from workbench.guest.machine import Machine
from workbench.kernel.image import Image
from workbench.kernel.workspace import Workspace
from workbench.models import frames
from workbench.models.frames import ErrorKind, Owner
from workbench.models.paging import parse_info_tlb

pytestmark = pytest.mark.qemu

FRAME = 4096
PLANTED_PML4_VADDR = 0xFFFFC00040000000  # far above the heap pages the test allocates
PLANTED_TEXT_VADDR = 0xFFFFC00040001000


def qemu_frames(machine: Machine, frame_count: int) -> np.ndarray:
    """How many of QEMU's `info tlb` pages reach each frame below `frame_count`."""
    counts = np.zeros(frame_count + 1, np.int64)
    for line in parse_info_tlb(machine.hmp("info tlb", timeout=60)):
        size = 2 << 20 if line.flags[2] == "P" else FRAME  # no guest here uses 1 GiB pages
        first, end = min(line.paddr // FRAME, frame_count), min((line.paddr + size) // FRAME, frame_count)
        counts[first] += 1
        counts[end] -= 1
    return np.cumsum(counts[:-1])


def qemu_translation(machine: Machine, vaddr: int) -> int:
    """The paddr QEMU's `gva2gpa` gives for `vaddr` (the current CR3)."""
    reply = machine.hmp(f"gva2gpa {vaddr:#x}")
    return int(reply.split()[-1], 16)


def map_of(machine: Machine, image: Image | None) -> frames.FrameMap:
    snapshot = machine.snapshot()
    allocator = frames.read_allocator(machine.memory, image) if image is not None else None
    return frames.classify(snapshot, image, allocator)


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Machine, Image]]:
    workspace = Workspace.open("healthy", parent=tmp_path_factory.mktemp("frames"))
    image = workspace.build()
    with Machine(image, name="frames-healthy") as machine:
        machine.wait_for("> ")
        machine.request("alloc 3")
        machine.request("syscall-cr3 noop")  # ring 3's pages and its own PML4
        machine.pause()
        yield machine, image


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Machine, Image]]:
    """A unikernel whose heap gives each new page's frame back at once, so the next page gets it
    again; whose PML4 is mapped writable; and whose first text frame is mapped writable."""
    workspace = Workspace.open("planted", parent=tmp_path_factory.mktemp("frames"))
    workspace.replace("kernel/paging.c", "        *entry = frame_alloc() | PTE_PRESENT | PTE_WRITABLE | PTE_NO_EXEC;\n",
                      "        *entry = frame_alloc() | PTE_PRESENT | PTE_WRITABLE | PTE_NO_EXEC;\n"
                      "        next_frame -= PAGE_SIZE;  /* planted: the frame stays free */\n")
    workspace.replace("kernel/paging.c", "    write_cr3(pml4_paddr);\n",
                      "    write_cr3(pml4_paddr);\n"
                      f"    paging_map_page({PLANTED_PML4_VADDR:#x}, pml4_paddr,"
                      " PTE_PRESENT | PTE_WRITABLE | PTE_NO_EXEC);\n"
                      f"    paging_map_page({PLANTED_TEXT_VADDR:#x}, KERNEL_PHYSICAL(__text_start),"
                      " PTE_PRESENT | PTE_WRITABLE | PTE_NO_EXEC);\n")
    image = workspace.build()
    with Machine(image, name="frames-planted") as machine:
        machine.wait_for("> ")
        machine.request("alloc 2")
        machine.pause()
        yield machine, image


def test_mapped_frames_are_the_frames_qemu_maps(healthy: tuple[Machine, Image]) -> None:
    machine, image = healthy
    frame_map = map_of(machine, image)
    assert not (frame_map.snapshot.leaves.sizes == 1 << 30).any()
    assert np.array_equal(frame_map.mapped, qemu_frames(machine, frame_map.frame_count))
    for number in np.flatnonzero(frame_map.mapped_outside)[:64].tolist():
        for mapping in frame_map.mappings_of(number * FRAME):
            assert qemu_translation(machine, mapping.vaddr) == number * FRAME


def test_healthy_unikernel_owners_and_no_errors(healthy: tuple[Machine, Image]) -> None:
    machine, image = healthy
    frame_map = map_of(machine, image)
    assert frame_map.errors == ()
    assert frame_map.direct_map_offset == image.symbol("__direct_map_base").vaddr
    cr3 = machine.registers().cr3 & ~0xFFF
    assert frame_map.frame(cr3).owner is Owner.PML4
    assert frame_map.frame(cr3).table_root == f"CR3 {machine.registers().cr3:#x}"
    ring3 = machine.read_symbol("user_pml4_paddr")
    assert ring3 and frame_map.frame(ring3).owner is Owner.PML4
    heap = image.symbol("__heap_base").vaddr
    for page in range(3):
        assert frame_map.frame(qemu_translation(machine, heap + page * FRAME)).owner is Owner.HEAP
    assert frame_map.frame(qemu_translation(machine, 0x400000)).owner is Owner.USER
    assert frame_map.frame(image.paddr_of(image.symbol("app_main").vaddr) or 0).owner is Owner.TEXT
    counts = frame_map.owner_counts()
    covered = frame_map.frame_count * FRAME  # QEMU's firmware differs in size between releases: ask it
    rom = sum((min(region.end, covered) - region.start) // FRAME
              for region in machine.physical_map() if region.kind == "rom" and region.start < covered)
    assert counts[Owner.ROM] == rom > 0 and counts[Owner.PT] >= 2


def test_free_frames_are_the_allocators_by_symbol(healthy: tuple[Machine, Image]) -> None:
    machine, image = healthy
    frame_map = map_of(machine, image)
    next_frame, frames_end = machine.read_symbol("next_frame"), machine.read_symbol("frames_end")
    free = np.flatnonzero(frame_map.owners == Owner.FREE)
    assert free[0] * FRAME == next_frame and (free[-1] + 1) * FRAME == frames_end
    assert len(free) == (frames_end - next_frame) // FRAME


def test_each_planted_bug_is_an_error_at_the_frame_qemu_names(planted: tuple[Machine, Image]) -> None:
    machine, image = planted
    frame_map = map_of(machine, image)
    kinds = {(error.kind, error.paddr) for error in frame_map.errors}
    heap = image.symbol("__heap_base").vaddr
    twice = qemu_translation(machine, heap)
    assert qemu_translation(machine, heap + FRAME) == twice  # the bug, as the CPU sees it
    assert (ErrorKind.FREE_AND_MAPPED, twice) in kinds
    assert (ErrorKind.MAPPED_TWICE, twice) in kinds
    pml4 = machine.registers().cr3 & ~0xFFF
    assert qemu_translation(machine, PLANTED_PML4_VADDR) == pml4
    assert (ErrorKind.TABLE_REACHABLE, pml4) in kinds
    text = qemu_translation(machine, PLANTED_TEXT_VADDR)
    assert text == image.paddr_of(image.symbol("__text_start").vaddr)
    assert (ErrorKind.WX_ALIAS, text) in kinds
    assert kinds <= {(ErrorKind.FREE_AND_MAPPED, twice), (ErrorKind.MAPPED_TWICE, twice),
                     (ErrorKind.TABLE_REACHABLE, pml4), (ErrorKind.WX_ALIAS, text), (ErrorKind.MAPPED_TWICE, text)}


def test_errors_explain_themselves_with_walks(planted: tuple[Machine, Image]) -> None:
    machine, image = planted
    frame_map = map_of(machine, image)
    error = next(e for e in frame_map.errors if e.kind is ErrorKind.FREE_AND_MAPPED)
    assert "free in the frame allocator" in error.message and "next_frame" in error.message
    assert len(error.walks) == 2 and all(walk.paddr == error.paddr for walk in error.walks)
    twice = next(e for e in frame_map.errors if e.kind is ErrorKind.MAPPED_TWICE and e.paddr == error.paddr)
    assert len(twice.walks) == 2 and {walk.paddr for walk in twice.walks} == {error.paddr}
    assert f"{error.paddr:#x}" in twice.explain()


def test_a_later_map_shows_which_frames_changed_owner(healthy: tuple[Machine, Image]) -> None:
    machine, image = healthy
    before = map_of(machine, image)
    machine.resume()
    machine.request("alloc 1")
    machine.pause()
    after = map_of(machine, image)
    changed = before.changed_owners(after).tolist()
    heap_frame = qemu_translation(machine, image.symbol("__heap_base").vaddr + 3 * FRAME) // FRAME
    assert heap_frame in changed
    assert all(before.owners[n] == Owner.FREE for n in changed)


def test_bad_input_is_one_readable_line(healthy: tuple[Machine, Image]) -> None:
    machine, image = healthy
    frame_map = map_of(machine, image)
    with pytest.raises(WorkbenchError, match="outside the frames"):
        frame_map.frame(1 << 40)
    with pytest.raises(WorkbenchError, match="takes a Snapshot"):
        frames.classify("snapshot")  # type: ignore[arg-type]


def test_the_linux_guest_without_symbols() -> None:
    machine = linux_kernel.boot_paused(linux_kernel.stock_kernel())  # unavailable is a failure, as elsewhere
    try:
        frame_map = map_of(machine, None)
        assert frame_map.frame_count == 512 * 256
        assert frame_map.direct_map_offset is not None
        assert np.array_equal(frame_map.mapped, qemu_frames(machine, frame_map.frame_count))
        counts = frame_map.owner_counts()
        assert counts[Owner.PT] > 10 and counts[Owner.PML4] >= 1
        assert counts[Owner.MAPPED] > 1000 and Owner.FREE not in counts
        assert not any(error.kind in (ErrorKind.FREE_AND_MAPPED, ErrorKind.MAPPED_TWICE) for error in frame_map.errors)
        # Linux writes its first tables through its image's mapping, and lets no user page reach one:
        assert not any(error.kind is ErrorKind.TABLE_REACHABLE for error in frame_map.errors)
    finally:
        machine.close()
