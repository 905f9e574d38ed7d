"""The physical-memory map: every 4 KiB frame of the guest as a cell, coloured by its owner.

    FrameMap(machine)                  redrawn on every pause, like the other views
    FrameMap(snapshot, image)          a fixed snapshot (no allocator state: no free frames)
    FrameMap(before_map, after_map)    two `frames.FrameMap`s: frames that changed owner marked

WeensyOS's memory viewer, from outside the guest: a grid of cells for a small guest (up to
16,384 frames, 64 MiB), frames with an error outlined red. A large one (the Linux guest's
131,072 frames) is a strip one zooms into: each pixel column a run of frames, coloured by its
most important owner (a page table or a ring-3 page, else the majority), with a red tick above
any run that holds an error; a click or a drag zooms in, and a range small enough is a grid
again (`strip=True` shows any guest that way). A grid first shows the frames up to the last one
in use, when those are few ("Whole memory" shows the rest). Clicking a cell shows its owner,
every vaddr that maps it with its rights, its errors explained, and its first bytes. All of it
is asked of `workbench.models.frames`; the view decodes nothing itself.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import traitlets

from workbench.errors import WorkbenchError
from workbench.guest import frames as guest_frames
from workbench.guest.machine import Machine
from workbench.kernel.image import Image
from workbench.models import frames
from workbench.models.frames import Owner
from workbench.models.snapshot import Snapshot
from workbench.views._base import ViewError, box, esc, module
from workbench.views._snapshots import HELD_STILL, FollowingView, source_parts

COLOURS = {
    Owner.HOLE: "#ffffff", Owner.DEVICE: "#6b7280", Owner.ROM: "#a78bfa", Owner.FIRMWARE: "#c4b5fd",
    Owner.TEXT: "#fb923c", Owner.RODATA: "#60a5fa", Owner.DATA: "#34d399", Owner.BSS: "#6ee7b7",
    Owner.STACK: "#fbbf24", Owner.IMAGE: "#93c5fd", Owner.PML4: "#7f1d1d", Owner.PDPT: "#b91c1c",
    Owner.PD: "#ef4444", Owner.PT: "#fca5a5", Owner.HEAP: "#2dd4bf", Owner.USER: "#e879f9",
    Owner.ALLOCATED: "#a3e635", Owner.FREE: "#f3f4f6", Owner.MAPPED: "#4ade80",
    Owner.DIRECT_ONLY: "#e5e7eb", Owner.UNMAPPED: "#f9fafb",
}
SMALL = 16384  # frames: up to this many, a grid; more, a strip to zoom into (widgets/frame_map.js GRID_MAX)
EMPTY = (Owner.HOLE, Owner.FREE, Owner.DIRECT_ONLY, Owner.UNMAPPED)  # a grid first shows the frames below these
IMPORTANT = frozenset({Owner.PML4, Owner.PDPT, Owner.PD, Owner.PT, Owner.USER})  # win a strip's pixel column
STATIC_RUNS = 60
FIRST_BYTES = 32


def runs(owners: np.ndarray[Any, Any]) -> list[tuple[int, int, Owner]]:
    """(first frame, end frame, owner) for each run of frames with one owner."""
    if not len(owners):
        return []
    cuts = np.flatnonzero(owners[1:] != owners[:-1]) + 1
    starts = np.concatenate([[0], cuts])
    ends = np.concatenate([cuts, [len(owners)]])
    return [(int(s), int(e), Owner(int(owners[s]))) for s, e in zip(starts, ends, strict=True)]


class FrameMap(FollowingView):
    """Every physical frame, who owns it and who maps it; live when made from a Machine."""

    _esm = module("frame_map.js")

    # Binary buffers beside the JSON of the message: no base64 to make in Python, nor to undo in the page
    owners = traitlets.Bytes(help="One byte per frame, its Owner.").tag(sync=True)
    marks = traitlets.Bytes(help="One byte per frame: 1 an error, 2 changed owner (diff).").tag(sync=True)
    legend: traitlets.List[Any] = traitlets.List(
        help="[owner value, label, colour, frames, important] for each owner present.").tag(sync=True)
    shape = traitlets.Enum(("grid", "strip"), default_value="grid",
                            help="The whole memory as a grid, or as a strip to zoom into.").tag(sync=True)
    summary = traitlets.Dict(help="Frames, errors and the direct map, in words.").tag(sync=True)
    selected = traitlets.Dict(help="The frame last clicked: owner, mappings, errors, first bytes.").tag(sync=True)
    source = traitlets.Enum(("snapshot", "machine", "diff"), default_value="snapshot").tag(sync=True)

    def __init__(self, source: Snapshot | Machine | frames.FrameMap,
                 image: Image | frames.FrameMap | None = None, *, strip: bool = False) -> None:
        if not isinstance(strip, bool):
            raise ViewError(f"strip is True (a strip to zoom into) or False (a grid when small), not {strip!r}")
        self._strip = strip
        self.machine: Machine | None = None
        self.image: Image | None = None
        self._pending: frames.FrameMap | None = None
        self.before: frames.FrameMap | None = None
        # Milliseconds in this process, for benchmarks/views.py: reading the guest (paused; of
        # which stopping it, reading it, and letting it run again), classifying its frames, and
        # making the widget (its state, and the message to the page).
        self.timings: dict[str, float] = {}
        started = time.perf_counter()
        if isinstance(source, frames.FrameMap):
            if not isinstance(image, frames.FrameMap):
                raise ViewError("a diff shows two frame maps: FrameMap(before, after)")
            self.before = source
            super().__init__(source="diff", **self._state(image))
            self.timings["widget"] = guest_frames.milliseconds_since(started)
            return
        if image is not None and not isinstance(image, Image):
            raise ViewError(f"the image is an Image (ws.build()) or None, not {type(image).__name__}")
        machine, self.image = source_parts(source, image)
        self.machine = machine
        # The map is made before the widget, so that the page gets it with the widget itself: one
        # message, drawn once, instead of an empty map followed by an update.
        if machine is not None:
            frame_map = _take_map(machine, self.image, self.timings)
        else:
            assert isinstance(source, Snapshot)
            frame_map = frames.classify(source, self.image, None)
            self.timings["classify"] = guest_frames.milliseconds_since(started)
        made = time.perf_counter()
        super().__init__(source="machine" if machine is not None else "snapshot", **self._state(frame_map))
        self.timings["widget"] = guest_frames.milliseconds_since(made)
        self._follow_machine()

    def _state(self, frame_map: frames.FrameMap) -> dict[str, Any]:
        """The traits that show `frame_map` (kept as `self.map`, which clicks are answered from)."""
        self.map = frame_map
        marks = np.zeros(frame_map.frame_count, np.uint8)
        for error in frame_map.errors:
            marks[error.paddr // frames.FRAME] = 1
        changed = 0
        if self.before is not None:
            moved = self.before.changed_owners(frame_map)
            moved = moved[moved < frame_map.frame_count]
            marks[moved] |= 2
            changed = len(moved)
        counts = frame_map.owner_counts()
        return {
            "shape": "strip" if self._strip or frame_map.frame_count > SMALL else "grid",
            "owners": np.ascontiguousarray(frame_map.owners, np.uint8).tobytes(),
            "marks": marks.tobytes(),
            "legend": [[int(owner), owner.label, COLOURS[owner], count, owner in IMPORTANT]
                       for owner, count in counts.items()],
            "summary": {"frames": frame_map.frame_count, "errors": len(frame_map.errors), "changed": changed,
                        "direct_map": (f"{frame_map.direct_map_offset:#x}"
                                       if frame_map.direct_map_offset is not None else "none"),
                        "error_lines": [error.message for error in frame_map.errors[:20]],
                        "empty": [int(owner) for owner in EMPTY]},
        }

    def _install(self, frame_map: frames.FrameMap) -> None:
        state = self._state(frame_map)
        with self.hold_sync():
            for name, value in state.items():
                setattr(self, name, value)

    def open_frame(self, paddr: int) -> dict[str, Any]:
        """Select the frame holding `paddr`: what the map knows of it, shown under the grid."""
        info = self.map.frame(paddr)
        memory = self.machine.memory if self.machine is not None else self.map.snapshot.memory
        try:
            data = self.map.first_bytes(memory, info.paddr, FIRST_BYTES)
        except WorkbenchError:
            data = None
        chosen = {"paddr": f"{info.paddr:#x}", "owner": info.owner.label,
                  "region": info.region.name if info.region else "no memory",
                  "table_root": info.table_root,
                  "mappings": [str(mapping) for mapping in info.mappings],
                  "errors": [error.explain() for error in info.errors],
                  "bytes": data.hex(" ") if data is not None else "(not read: device memory or a hole)"}
        self.selected = chosen
        return chosen

    def refresh(self) -> None:
        if self.machine is None:
            raise ViewError("this map shows a fixed snapshot; make it from a Machine to refresh")
        frame_map = _take_map(self.machine, self.image)
        with self._lock:
            self._install(frame_map)

    def _prepare(self) -> None:
        machine = self.machine
        self._pending = None
        if machine is not None and machine.state in HELD_STILL:
            try:
                self._pending = _take_map(machine, self.image)
            except WorkbenchError:
                self._pending = None

    def _flush(self) -> None:
        frame_map, self._pending = self._pending, None
        if frame_map is not None:
            self._install(frame_map)

    def _msg_open(self, content: dict[str, Any]) -> None:
        frame = content.get("frame")
        if not isinstance(frame, int):
            raise ViewError(f"a frame number, not {frame!r}")
        self.open_frame(frame * frames.FRAME)

    def _msg_refresh(self, content: dict[str, Any]) -> None:
        self.refresh()

    def __repr__(self) -> str:
        return f"<FrameMap: {self.summary['frames']} frames, {self.summary['errors']} errors>"

    def static_html(self) -> str:
        parts = runs(self.map.owners)
        total = max(self.map.frame_count, 1)
        shapes, x = [], 0.0
        for first, end, owner in parts:
            width = (end - first) / total * 1000
            shapes.append(f"<rect x='{x:.2f}' y='0' width='{max(width, 0.3):.2f}' height='30' fill='{COLOURS[owner]}'>"
                          f"<title>{esc(f'{first * 4096:#x}-{end * 4096 - 1:#x} {owner.label}')}</title></rect>")
            x += width
        strip = ("<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 1000 30' width='100%' "
                 f"style='max-width:1000px;display:block;border:1px solid #d1d5db'>{''.join(shapes)}</svg>")
        legend = " ".join(f"<span style='display:inline-block;margin-right:8px'><i style='display:inline-block;"
                          f"width:10px;height:10px;background:{colour};border:1px solid #9ca3af'></i> "
                          f"{esc(label)}: {count:,}</span>" for _v, label, colour, count, _i in self.legend)
        rows = "".join(f"<tr><td><code>{first * 4096:#x}</code></td><td><code>{end * 4096 - 1:#x}</code></td>"
                       f"<td style='text-align:right'>{end - first:,}</td><td>{esc(owner.label)}</td></tr>"
                       for first, end, owner in parts[:STATIC_RUNS])
        more = f"<div>... and {len(parts) - STATIC_RUNS:,} more runs</div>" if len(parts) > STATIC_RUNS else ""
        errors = "".join(f"<li style='color:#b91c1c'>{esc(line)}</li>" for line in self.summary["error_lines"])
        body = (strip + f"<div style='font-size:12px;margin:4px 0'>{legend}</div>"
                + (f"<ul style='font-size:12px'>{errors}</ul>" if errors else "")
                + "<table style='border-collapse:collapse;font-size:12px'><tr><th>first</th><th>last</th>"
                  "<th>frames</th><th>owner</th></tr>" + rows + "</table>" + more)
        title = (f"Physical frames <span style='font-weight:normal'>{self.summary['frames']:,} frames, "
                 f"{self.summary['errors']} errors</span>")
        return box(title, body)


def _take_map(machine: Machine, image: Image | None, timings: dict[str, float] | None = None) -> frames.FrameMap:
    """A snapshot and the allocator's state at one instant: the guest paused once for both (not
    again for the classifying, which needs only what was read). `timings` gets the milliseconds
    of each."""
    started = time.perf_counter()
    snapshot, allocator = guest_frames.read(machine, image, timings)
    read = time.perf_counter()
    frame_map = frames.classify(snapshot, image, allocator)
    if timings is not None:
        timings.update(read=guest_frames.milliseconds_since(started, read),
                       classify=guest_frames.milliseconds_since(read))
    return frame_map
