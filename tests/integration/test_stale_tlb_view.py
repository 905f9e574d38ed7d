"""StaleTlbView against a live apps/smp guest: `remap local` leaves the reader's CPU on the old
frame (stale), `remap shootdown` (the tree's own tlb_shootdown, the solution) moves it to the
new one. The guest's own reply is the oracle: its old-frame, new-frame, value and reader=.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from workbench.guest.machine import Machine, MachineState
from workbench.kernel.image import Image
from workbench.views import StaleTlbView, ViewError

pytestmark = pytest.mark.qemu

READER_CPU = 2


@pytest.fixture
def machine(smp_image: Image) -> Iterator[Machine]:
    with Machine(smp_image, name="test-stale-tlb", cpus=3) as running:
        running.wait_for("> ", timeout=30)
        yield running


def test_no_reader_yet_is_one_line(machine: Machine) -> None:
    with pytest.raises(ViewError) as raised:
        StaleTlbView(machine)
    assert "send 'reader CPU' first" in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.parametrize(("mode", "stale"), [("local", True), ("shootdown", False)])
def test_the_view_says_what_the_tables_map_and_what_the_reader_read(machine: Machine, mode: str,
                                                                      stale: bool) -> None:
    started = machine.request(f"reader {READER_CPU}")
    view = StaleTlbView(machine)  # before the remap: it sees the first frame mapped
    assert int(view.vaddr, 16) == started.number("vaddr")
    assert int(view.tables["frame"], 16) == started.number("frame") and not view.stale
    moved = machine.request(f"remap {mode}")
    view.refresh()
    assert machine.state is MachineState.RUNNING
    assert int(view.tables["frame"], 16) == moved.number("new-frame")
    assert int(view.tables["value"], 16) == moved.number("value")
    [reader] = view.readers
    assert reader["cpu"] == READER_CPU and reader["state"] == "running" and "<reader" in reader["where"]
    assert int(reader["value"], 16) == moved.number("reader") == machine.read_symbol("reader_value")
    read_from = moved.number("old-frame") if stale else moved.number("new-frame")
    assert int(reader["frame"], 16) == read_from and reader["stale"] is stale and view.stale is stale
    assert {int(row["frame"], 16) for row in view.frames} == {moved.number("old-frame"), moved.number("new-frame")}
    assert ("stale: its TLB kept" in view.static_html()) is stale and "the page tables now" in view.static_html()
    assert "\n" not in repr(view) and f"cpu {READER_CPU} read" in repr(view)


def test_frames_named_beforehand_are_compared_too(machine: Machine) -> None:
    machine.request(f"reader {READER_CPU}")
    moved = machine.request("remap local")
    view = StaleTlbView(machine, moved.number("vaddr"), frames=[moved.number("old-frame")])
    assert int(view.readers[0]["frame"], 16) == moved.number("old-frame") and view.stale


def test_a_bad_address_is_one_line(machine: Machine) -> None:
    with pytest.raises(ViewError, match="an address is an int"):
        StaleTlbView(machine, -1)
