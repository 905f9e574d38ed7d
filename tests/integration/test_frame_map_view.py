"""The FrameMap view on a live unikernel: cells, a click, following a pause, a diff, static HTML."""

from __future__ import annotations

import pytest

from workbench.errors import WorkbenchError
from workbench.guest.machine import Machine
from workbench.kernel.image import Image
from workbench.models.frames import Owner
from workbench.views import FrameMap

pytestmark = pytest.mark.qemu


def test_the_view_draws_every_frame_and_answers_a_click(image: Image) -> None:
    with Machine(image, name="frame-view") as machine:
        machine.wait_for("> ")
        view = FrameMap(machine)
        owners = view.owners  # bytes: sent to the page as a binary buffer
        assert len(owners) == len(view.marks) == view.summary["frames"] == 16384 and view.shape == "grid"
        cr3 = machine.registers().cr3 & ~0xFFF
        assert owners[cr3 // 4096] == Owner.PML4
        chosen = view._dispatch(view, {"kind": "open", "frame": cr3 // 4096}, [])
        assert chosen is None and view.selected["owner"] == "page table: PML4"
        assert any("direct map" in line for line in view.selected["mappings"])
        before = view.map
        machine.request("alloc 2")
        view.refresh()
        diff = FrameMap(before, view.map)
        assert diff.summary["changed"] >= 2
        html = view.static_html()
        assert "<svg" in html and "page table: PML4" in html and "<script" not in html
        view._dispatch(view, {"kind": "open", "frame": "x"}, [])
        assert view.error.startswith("a frame number")
        with pytest.raises(WorkbenchError):
            FrameMap("nothing")  # type: ignore[arg-type]
        assert FrameMap(machine, strip=True).shape == "strip"
        assert [entry[4] for entry in view.legend if entry[0] == Owner.PML4] == [True]  # wins a strip's column
        with pytest.raises(WorkbenchError, match="strip is True"):
            FrameMap(machine, strip="yes")  # type: ignore[arg-type]
