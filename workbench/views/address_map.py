"""The address-space map: all 2**64 vaddrs as one strip, regions coloured by permission.

    AddressSpaceMap(snapshot, image)
    AddressSpaceMap(machine)                 redrawn on every pause
    AddressSpaceMap(snapshot, image, explorer=explorer)   a click opens the region there

The strip is not to scale: empty stretches (unmapped, the non-canonical hole) are squeezed to a
sliver with their size written on them, and a mapped region's width grows with the logarithm
of its size, so a 4 KiB guard page and a 64 MiB direct map are both visible. A guest with
thousands of regions (Linux has about 130,000) is drawn as at most MAX_SEGMENTS segments: the
largest empty stretches split it into clusters, and clicking a cluster zooms into it (computed
here, on request), with a breadcrumb trail back out.
"""

from __future__ import annotations

import math
from typing import Any

import traitlets

from workbench.errors import WorkbenchError
from workbench.guest.machine import Machine
from workbench.kernel.image import Image
from workbench.models.address_space import AddressSpace, Region, Summary
from workbench.models.cpu import hex_u64
from workbench.models.paging import size_text
from workbench.models.snapshot import Snapshot
from workbench.views._base import (
    PERMISSION_COLOURS,
    ViewError,
    box,
    esc,
    module,
    parse_address,
    permission_colour,
)
from workbench.views._snapshots import HELD_STILL, FollowingView, split_source, take
from workbench.views.pagetable import PageTableExplorer

MAX_SEGMENTS = 240  # per zoom level
TOP = 1 << 64
STATIC_ROWS = 60


def _weight(region: Region) -> float:
    """Width on the strip: log-scaled for mapped regions and guard pages, a sliver for gaps."""
    if region.kind == "non-canonical":
        return 3.0
    if region.mapped or region.kind == "guard":
        return 2.0 + math.log2(max(region.size, 4096) / 4096) / 2
    return 1.2 if region.size >= 1 << 30 else 0.8


def _segment(region: Region) -> dict[str, Any]:
    return {"start": hex_u64(region.start), "last": hex_u64(region.end - 1), "size": size_text(region.size),
            "kind": region.kind, "label": region.label, "permissions": region.permissions,
            "pages": region.pages, "page_sizes": [size_text(s) for s in region.page_sizes],
            "wx": region.writable_and_executable, "weight": round(_weight(region), 3), "cluster": None}


def _cluster(summary: Summary) -> dict[str, Any]:
    """Many regions drawn as one segment: what they hold, by permission."""
    weight = 3.0 + math.log2(max(summary.mapped, 4096) / 4096) / 2 + math.log2(summary.regions) / 2
    label = f"{summary.regions:,} regions, {size_text(summary.mapped)} mapped"
    return {"start": hex_u64(summary.start), "last": hex_u64(summary.end - 1), "size": size_text(summary.size),
            "kind": "cluster", "label": label, "permissions": summary.dominant, "pages": summary.pages,
            "page_sizes": [], "wx": summary.wx > 0, "weight": round(weight, 3),
            "cluster": {"regions": summary.regions, "mapped": size_text(summary.mapped), "wx": summary.wx,
                        "by_permission": [{"permissions": p, "size": size_text(s)} for p, s in summary.by_permission]}}


def segments(space: AddressSpace, start: int = 0, end: int = TOP, limit: int = MAX_SEGMENTS) -> list[dict[str, Any]]:
    """The strip for vaddrs start..end: every region, or clusters split at the largest gaps."""
    return [_cluster(part) if isinstance(part, Summary) else _segment(part)
            for part in space.summarised(start, end, limit)]


class AddressSpaceMap(FollowingView):
    """The canonical address space as one zoomable strip; hover for details, click to explore."""

    _esm = module("address_map.js")

    segments: traitlets.List[Any] = traitlets.List(
        help="The strip at the current zoom, left to right (hex strings; `weight` is a relative width, "
             "`cluster` set when a segment stands for many regions).").tag(sync=True)
    crumbs: traitlets.List[Any] = traitlets.List(
        help="The zoom path, outermost first: start, last and a label each.").tag(sync=True)
    summary = traitlets.Dict(help="Mapped regions, W^X violations and the audit in words.").tag(sync=True)
    selected = traitlets.Dict(help="The region last clicked, as one segment.").tag(sync=True)
    linked = traitlets.Bool(False, help="A click opens the region in an explorer.").tag(sync=True)
    source = traitlets.Enum(("snapshot", "machine"), default_value="snapshot",
                            help="A fixed snapshot, or a machine redrawn on every pause.").tag(sync=True)

    def __init__(self, source: Snapshot | Machine, image: Image | None = None, *,
                 explorer: PageTableExplorer | None = None) -> None:
        machine, snapshot, named = split_source(source, image)
        self.machine = machine
        self.image = named
        self.explorer = explorer
        self._pending: Snapshot | None = None
        super().__init__(linked=explorer is not None, source="machine" if machine is not None else "snapshot")
        self._install(snapshot)
        self._follow_machine()

    def _install(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.space = snapshot.address_space(self.image)
        with self.hold_sync():
            self.summary = {"mapped_regions": len(self.space.mapped), "regions": len(self.space),
                            "mapped": size_text(self.space.mapped_bytes()),
                            "wx_violations": len(self.space.wx_violations()),
                            "audit": self.space.audit(), "pages": len(snapshot.leaves)}
            crumbs = list(self.crumbs) or [{"start": hex_u64(0), "last": hex_u64(TOP - 1), "label": "all of it"}]
            self._zoom_to(crumbs)

    def _zoom_to(self, crumbs: list[dict[str, Any]]) -> None:
        last = crumbs[-1]
        self.segments = segments(self.space, int(last["start"], 16), int(last["last"], 16) + 1)
        self.crumbs = crumbs

    # Zoom and clicks, from Python or from the page.

    def zoom(self, start: int | str, last: int | str) -> list[dict[str, Any]]:
        """Show only the vaddrs start..last (inclusive) on the strip; returns its segments."""
        low, high = parse_address(start), parse_address(last)
        if high < low:
            raise ViewError("zoom to a range whose last address is not below its first")
        with self._lock, self.hold_sync():
            label = f"{size_text(high - low + 1)} from {hex_u64(low)}"
            self._zoom_to([*self.crumbs, {"start": hex_u64(low), "last": hex_u64(high), "label": label}])
        return list(self.segments)

    def zoom_out(self, depth: int = 0) -> None:
        """Back to one of the breadcrumbs (0: the whole address space)."""
        if not 0 <= depth < len(self.crumbs):
            raise ViewError(f"there are breadcrumbs 0 to {len(self.crumbs) - 1}, not {depth}")
        with self._lock, self.hold_sync():
            self._zoom_to(list(self.crumbs[: depth + 1]))

    def open_region(self, start: int | str) -> dict[str, Any]:
        """Select the region containing `start`; with a linked explorer, show it there."""
        vaddr = parse_address(start)
        region = self.space.region_at(vaddr)
        chosen = _segment(region)
        self.selected = chosen
        if self.explorer is not None and region.mapped:
            self.explorer.show_range(region.start, region.end)
        return chosen

    def refresh(self) -> None:
        """Redraw from a new snapshot of the machine (pausing it for a moment if it runs)."""
        if self.machine is None:
            raise ViewError("this map shows a fixed snapshot; make it from a Machine to refresh")
        snapshot = take(self.machine)
        with self._lock:
            self._install(snapshot)

    def _prepare(self) -> None:
        machine = self.machine
        self._pending = None
        if machine is not None and machine.state in HELD_STILL:
            try:
                self._pending = take(machine)
            except WorkbenchError:  # gone meanwhile; keep the last drawing
                self._pending = None

    def _flush(self) -> None:
        snapshot, self._pending = self._pending, None
        if snapshot is not None:
            self._install(snapshot)

    def _msg_zoom(self, content: dict[str, Any]) -> None:
        self.zoom(str(content.get("start")), str(content.get("last")))

    def _msg_zoom_out(self, content: dict[str, Any]) -> None:
        depth = content.get("depth", 0)
        self.zoom_out(depth if isinstance(depth, int) else 0)

    def _msg_open(self, content: dict[str, Any]) -> None:
        self.open_region(str(content.get("start")))

    def _msg_refresh(self, content: dict[str, Any]) -> None:
        self.refresh()

    # Output bundle.

    def __repr__(self) -> str:
        s = self.summary
        return (f"<AddressSpaceMap: {s['mapped_regions']} mapped regions, {s['mapped']} mapped, "
                f"{s['wx_violations']} W^X violations>")

    def static_html(self) -> str:
        return box("Address space " + f"<span style='font-weight:normal'>{esc(self.summary['mapped'])} mapped in "
                   f"{self.summary['mapped_regions']} regions</span>", _static_strip(self.segments)
                   + _static_table(self.segments)
                   + f"<pre style='font-size:12px;margin:4px 0 0'>{esc(self.summary['audit'])}</pre>")


def _static_strip(parts: list[dict[str, Any]]) -> str:
    """The strip as inline SVG: no script, no CSS classes, the same bytes for the same map."""
    total = sum(p["weight"] for p in parts) or 1.0
    width, height = 1000.0, 36.0
    x = 0.0
    shapes = []
    for part in parts:
        w = part["weight"] / total * width
        fill = _fill(part)
        title = f"{part['start']}-{part['last']} {part['size']} {part['label']}"
        shapes.append(f"<rect x='{x:.1f}' y='0' width='{max(w, 0.5):.1f}' height='{height:.0f}' fill='{fill}' "
                      f"stroke='#ffffff' stroke-width='0.5'><title>{esc(title)}</title></rect>")
        text = part["label"] if part["permissions"] or part["kind"] == "guard" else part["size"]
        if len(text) * 6.2 < w - 4:
            shapes.append(f"<text x='{x + w / 2:.1f}' y='22' font-size='11' text-anchor='middle' "
                          f"font-family='sans-serif' fill='#111827'>{esc(text)}</text>")
        x += w
    return (f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width:.0f} {height:.0f}' width='100%' "
            f"style='max-width:1000px;display:block'>{''.join(shapes)}</svg>")


def _fill(part: dict[str, Any]) -> str:
    if part["kind"] == "non-canonical":
        return "#9ca3af"
    if part["kind"] == "guard":
        return "#fca5a5"
    if part["wx"]:
        return PERMISSION_COLOURS["rwx"]
    if part["permissions"] is None:
        return "#f3f4f6"
    return permission_colour(part["permissions"])


def _static_table(parts: list[dict[str, Any]]) -> str:
    rows = []
    for part in parts[:STATIC_ROWS]:
        colour = _fill(part)
        pages = f"{part['pages']} x {'/'.join(part['page_sizes'])}" if part["page_sizes"] else ""
        rows.append(f"<tr style='background:{colour}'><td style='padding:0 6px'><code>{esc(part['start'])}</code></td>"
                    f"<td style='padding:0 6px'><code>{esc(part['last'])}</code></td>"
                    f"<td style='padding:0 6px;text-align:right'>{esc(part['size'])}</td>"
                    f"<td style='padding:0 6px'><code>{esc(part['permissions'] or '')}</code></td>"
                    f"<td style='padding:0 6px'>{esc(pages)}</td>"
                    f"<td style='padding:0 6px'>{esc(part['label'])}</td></tr>")
    rest = sum(p["cluster"]["regions"] if p["cluster"] else 1 for p in parts[STATIC_ROWS:])
    more = (f"<div style='color:#6b7280'>... and {rest:,} more regions (the strip above shows them all)</div>"
            if rest else "")
    return ("<table style='border-collapse:collapse;font-size:12px;margin-top:4px'><tr><th>start</th><th>last</th>"
            "<th>size</th><th>perm</th><th>pages</th><th>what</th></tr>" + "".join(rows) + "</table>" + more)
