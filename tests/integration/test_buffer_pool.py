"""Lesson 11's buffer pool (kernel-src/apps/frames) against the frame map and QEMU.

In the students' skeleton `close` gives a frame back while its page still maps it: the next
`open` maps that frame at a second vaddr, which QEMU translates both to the same paddr and the
frame map reports as mapped twice, at that paddr. With the solution `frames-unmap` the closed
page is gone, the new buffer still gets the old frame, and the map has no error at all.
"""

from __future__ import annotations

import pytest

from workbench.guest.machine import Machine
from workbench.kernel.workspace import Workspace
from workbench.models import frames
from workbench.models.frames import ErrorKind

pytestmark = pytest.mark.qemu


def gva2gpa(machine: Machine, vaddr: int) -> str:
    return machine.hmp(f"gva2gpa {vaddr:#x}").strip()


def open_close_open(machine: Machine) -> tuple[list[int], int]:
    vaddrs = [machine.request("open").number("vaddr") for _ in range(3)]
    machine.request("close 1")
    return vaddrs, machine.request("open").number("vaddr")


@pytest.mark.parametrize("solved", [False, True], ids=["skeleton", "solution"])
def test_a_frame_freed_while_mapped_is_mapped_twice(tmp_path_factory: pytest.TempPathFactory, solved: bool) -> None:
    workspace = Workspace.open("pool", parent=tmp_path_factory.mktemp("pool"))
    if solved:
        workspace.solve("frames-unmap")
    image = workspace.build(app="apps/frames")
    with Machine(image, name="buffer-pool") as machine:
        machine.wait_for("> ")
        vaddrs, reopened = open_close_open(machine)
        machine.pause()
        frame_map = frames.classify(machine.snapshot(), image, frames.read_allocator(machine.memory, image))
        new_frame = int(gva2gpa(machine, reopened).split()[-1], 16)
        if solved:
            assert frame_map.errors == ()
            assert "unmapped" in gva2gpa(machine, vaddrs[1]).lower()
            assert [m.direct for m in frame_map.mappings_of(new_frame)] == [True, False]
        else:
            assert gva2gpa(machine, vaddrs[1]) == gva2gpa(machine, reopened)
            assert [(e.kind, e.paddr, e.vaddrs) for e in frame_map.errors] == [
                (ErrorKind.MAPPED_TWICE, new_frame, (vaddrs[1], reopened))]


def test_the_pool_serves_its_table_through_the_kernels_request_loop(tmp_path_factory: pytest.TempPathFactory) -> None:
    image = Workspace.open("requests", parent=tmp_path_factory.mktemp("pool")).build(app="apps/frames")
    with Machine(image, name="buffer-pool-requests") as machine:
        machine.wait_for("> ")
        assert machine.request("help").line == "ok help commands=help,open,close,read,write"
        assert machine.request("close").line == "error close usage: close N"
        assert machine.request("close x").line == "error close not a number: x"
        assert machine.request("close 0x100000000").line == "error close buffer 4294967296 is not open"
        assert machine.request("frobnicate").line == "error frobnicate unknown command"
        vaddr = machine.request("open").number("vaddr")
        assert machine.request(f"write {vaddr:#x} 0x2a").line == f"ok write vaddr={vaddr:#x} value=0x2a"
        assert machine.request(f"read {vaddr:#x}").line == f"ok read vaddr={vaddr:#x} value=0x2a"
