"""The debugger and timeline views on a real guest: their state follows the debugger and the
replay, the page's messages act on them, and the static HTML shows what the widget shows.
Messages go through `_dispatch` exactly as ipywidgets delivers them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from workbench.debug.debugger import Debugger
from workbench.kernel.image import Image
from workbench.timetravel.replay import Recorder, Replay
from workbench.timetravel.timeline import index
from workbench.views import DebuggerPanel, DebuggerView, TimelineView

pytestmark = pytest.mark.qemu
ADDRESS = re.compile(r"0x[0-9a-f]{6,}")


def page_says(view: Any, content: dict[str, Any]) -> None:
    view._dispatch(view, content, [])


@pytest.fixture
def debugger(image: Image) -> Iterator[Debugger]:
    booted = Debugger.boot(image)
    yield booted
    booted.close()


def test_the_debugger_view_follows_every_stop(debugger: Debugger) -> None:
    view = DebuggerView(debugger)
    assert view.stop["reason"] == "entry" and view.path == "kernel/boot.S"
    assert view.lines[view.current - 1].strip().startswith("mov")  # the line shown is the line stopped at
    page_says(view, {"kind": "action", "action": "step"})
    assert view.stop["reason"] == "step" and view.current > 0
    changed = {r["name"] for r in view.registers if r["changed"]}
    assert "rip" in changed and "cr3" not in changed
    assert view.cr3 == ""  # paging is still off
    page_says(view, {"kind": "action", "action": "fly"})
    assert "stepi, step, next, finish, cont" in view.error


def test_clicking_a_line_number_sets_and_clears_a_breakpoint(debugger: Debugger) -> None:
    view = DebuggerView(debugger)
    page_says(view, {"kind": "open", "path": "kernel/paging.c"})
    line = next(n for n, text in enumerate(view.lines, 1) if "write_cr3(pml4_paddr)" in text)
    page_says(view, {"kind": "toggle", "line": line})
    assert view.breakpoint_lines == [line] and len(debugger.breakpoints) == 1
    page_says(view, {"kind": "action", "action": "cont"})
    assert (view.stop["reason"], view.stop["path"], view.stop["line"]) == ("breakpoint", "kernel/paging.c", line)
    assert [f["function"] for f in view.stack if not f["inlined"]][:2] == ["paging_init", "kernel_main"]
    assert any(v["name"] == "pml4_paddr" for v in view.variables)
    page_says(view, {"kind": "toggle", "line": line})
    assert view.breakpoint_lines == [] and not debugger.breakpoints
    page_says(view, {"kind": "open", "path": "no/such.c"})
    assert "no code from" in view.error


def test_the_cr3_link_shows_the_page_tables_in_use(debugger: Debugger) -> None:
    debugger.break_at("app_main")
    debugger.cont()
    panel = DebuggerPanel(debugger)
    before = panel.explorer.refreshes
    page_says(panel.view, {"kind": "explore"})
    assert panel.explorer.refreshes == before + 1
    assert panel.explorer.snapshot.registers.cr3 == int(panel.view.cr3, 16)
    html = panel._repr_mimebundle_()[0]["text/html"]
    assert "app_main" in html and "PML4" in html


def test_the_debugger_views_static_form_and_repr(debugger: Debugger) -> None:
    debugger.break_at("paging_init")
    debugger.cont()
    view = DebuggerView(debugger)
    html = view.static_html()
    current = view.lines[view.current - 1].strip()
    assert "paging_init" in html and "kernel/paging.c" in html and current.split()[0] in html
    assert "background:#dbeafe" in html  # the current line marked
    assert "changed since the stop before" in html
    assert not ADDRESS.search(repr(view)), repr(view)


def test_the_timeline_view_moves_the_replay_and_the_debugger_view_follows(image: Image) -> None:
    recorder = Recorder(image)
    machine = recorder.start()
    machine.wait_for("> ")
    machine.request("alloc 2")
    machine.send_line("exit 0")
    machine.wait()
    recording = recorder.stop()
    with Replay(recording) as replay:
        timeline = index(replay)
        view = TimelineView(replay, timeline)
        follower = DebuggerView(replay.debugger)
        assert view.end == timeline.end and len(view.marks) == len(timeline.marks)
        target = next(m for m in timeline.marks if m.label.startswith("app: "))
        page_says(view, {"kind": "go", "icount": target.icount})
        assert view.position == target.icount == replay.icount
        assert view.console.endswith(target.label) or target.label in view.console
        assert follower.stop["reason"] == "position" and follower.stop["function"]
        page_says(view, {"kind": "go", "icount": 10})
        assert view.position == 10 and view.console == ""
        html = view.static_html()
        assert html.count("<rect") == len(timeline.marks) and "ends in exit" in html
        assert not ADDRESS.search(repr(view)), repr(view)
    recording.close()
