"""A recording along its instruction count, and the way to any point of it.

    TimelineView(replay, timeline)     timeline = workbench.timetravel.timeline.index(replay)

One bar from instruction 0 to the end of the recording, with a mark for every console line,
fault, change of the page tables and breakpoint hit. A click (or a drag, released) on the bar,
or on a mark, sends the replay there; the debugger moves with it, so a DebuggerView of
`replay.debugger` and its page-table explorer follow. Below the bar: the console as it was at
that instruction count.
"""

from __future__ import annotations

from typing import Any

import traitlets

from workbench.timetravel.replay import Replay
from workbench.timetravel.timeline import Timeline
from workbench.views._base import View, ViewError, box, esc, module

KINDS = ("console", "fault", "page tables", "breakpoint", "triple fault", "exit", "end")
KIND_COLOURS = {"console": "#9ca3af", "fault": "#dc2626", "triple fault": "#dc2626", "page tables": "#16a34a",
                "breakpoint": "#2563eb", "exit": "#111827", "end": "#111827"}
MARK_ROWS = {"page tables": (2, 14), "console": (20, 12), "breakpoint": (10, 14)}  # (top, height) in the bar
CONSOLE_LINES = 12  # console lines shown under the bar
STATIC_WIDTH = 600


class TimelineView(View):
    """A replay's timeline with marks; clicking it moves the replay."""

    _esm = module("timeline.js")

    end = traitlets.Int(0, help="The instruction count at the end of the recording.").tag(sync=True)
    position = traitlets.Int(0, help="The instruction count the replay is at.").tag(sync=True)
    marks = traitlets.List(traitlets.Dict(), help="icount, kind and label of every mark, in order.").tag(sync=True)
    console = traitlets.Unicode("", help="The last lines of the console as it was at `position`.").tag(sync=True)
    where = traitlets.Unicode("", help="The function and source line at `position`.").tag(sync=True)
    ending = traitlets.Unicode("", help="How the recording ends: end, exit or triple fault.").tag(sync=True)

    def __init__(self, replay: Replay, timeline: Timeline) -> None:
        if not isinstance(replay, Replay) or not isinstance(timeline, Timeline):
            raise ViewError("TimelineView shows a replay and its timeline: TimelineView(replay, index(replay))")
        self.replay = replay
        self.timeline = timeline
        super().__init__(end=timeline.end, ending=timeline.how_it_ended,
                         marks=[m.to_json() for m in timeline.marks])
        replay.debugger.add_listener(lambda _stop: self._follow())
        self._follow()

    def show_timeline(self, timeline: Timeline) -> None:
        """Show a newer timeline of the same replay (with breakpoint marks, say)."""
        self.timeline = timeline
        self.marks = [m.to_json() for m in timeline.marks]

    def _follow(self) -> None:
        """Redraw where the replay is (after a go_to from here or from Python)."""
        replay = self.replay
        stop = replay.debugger.stop
        with self._lock, self.hold_sync():
            self.position = replay.icount
            self.console = _last_lines(replay.console, CONSOLE_LINES)
            self.where = f"{stop.function} ({stop.path}:{stop.line})" if stop is not None and stop.path else ""
            self.seq = self._next_seq()

    def _msg_go(self, content: dict[str, Any]) -> None:
        icount = content.get("icount")
        if not isinstance(icount, int):
            raise ViewError("go to an instruction count, a whole number")
        self.go(icount)

    def go(self, icount: int) -> None:
        """Move the replay to `icount`, as a click on the bar does."""
        self.error = ""
        try:
            self.replay.go_to(max(0, min(icount, self.end)))
        finally:
            self._follow()  # the page shows "going" from the click until this update

    # Output bundle.

    def __repr__(self) -> str:
        return f"<TimelineView: {self.timeline!r}>"

    def static_html(self) -> str:
        end = max(self.end, 1)
        ticks = []
        for mark in self.marks:
            x = round(STATIC_WIDTH * mark["icount"] / end, 1)
            top, height = MARK_ROWS.get(mark["kind"], (2, 30))
            ticks.append(f"<rect x='{x}' y='{top}' width='2' height='{height}' fill='{KIND_COLOURS[mark['kind']]}'>"
                         f"<title>{esc(mark['kind'])}: {esc(mark['label'])}</title></rect>")
        here = round(STATIC_WIDTH * self.position / end, 1)
        cursor = f"<line x1='{here}' x2='{here}' y1='0' y2='36' stroke='#1976d2' stroke-width='2'/>"
        svg = (f"<svg width='{STATIC_WIDTH + 4}' height='36' style='background:#f3f4f6;border:1px solid #d1d5db'>"
               f"{''.join(ticks)}{cursor}</svg>")
        legend = " ".join(f"<span style='color:{KIND_COLOURS[k]}'>■</span> {esc(k)}" for k in KINDS
                          if any(m['kind'] == k for m in self.marks))
        console = ("<pre style='background:#111827;color:#e5e7eb;padding:4px 6px;margin:4px 0 0;font-size:12px;"
                   f"white-space:pre-wrap'>{esc(self.console) or '&nbsp;'}</pre>")
        where = f"<div>at <code>{esc(self.where)}</code></div>" if self.where else ""
        return box(f"Timeline <span style='font-weight:normal'>(ends in {esc(self.ending)})</span>",
                   f"{svg}<div style='font-size:12px'>{legend}</div>{where}{console}")


def _last_lines(text: str, count: int) -> str:
    return "\n".join(text.splitlines()[-count:])
