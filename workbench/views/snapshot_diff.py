"""Two snapshots side by side: which pages appeared, vanished, or changed in between.

    SnapshotDiff(before, after)

Each row is one page (a vaddr and a page size). A page only in `after` was mapped in between
(green on the right), one only in `before` was unmapped (red on the left), and a page in both
whose entry changed shows both sides with the fields that differ marked: the frame, the
effective rights, or the flags (the CPU sets A when it uses a page and D when it writes one).
"""

from __future__ import annotations

from typing import Any

import traitlets

from workbench.models.cpu import hex_u64
from workbench.models.paging import ENTRY_ACCESSED, ENTRY_DIRTY, Leaf, LeafChange, size_text
from workbench.models.snapshot import Snapshot
from workbench.views._base import (
    ADDED_COLOUR,
    CHANGED_COLOUR,
    REMOVED_COLOUR,
    View,
    ViewError,
    box,
    esc,
    module,
)

MAX_ROWS = 2000  # rows sent to the page
STATIC_ROWS = 60


def _side(leaf: Leaf) -> dict[str, Any]:
    return {"paddr": hex_u64(leaf.paddr), "rights": str(leaf.permissions), "flags": " ".join(leaf.flags),
            "entry": hex_u64(leaf.entries[-1])}


def _about(snapshot: Snapshot, name: str) -> dict[str, Any]:
    return {"label": snapshot.label or name, "seconds": round(snapshot.seconds, 3), "pages": len(snapshot.leaves),
            "cr3": hex_u64(snapshot.registers.cr3)}


ACCESSED_DIRTY = ENTRY_ACCESSED | ENTRY_DIRTY
LEVEL_NAMES = ("PML5E", "PML4E", "PDPTE", "PDE", "PTE")


def only_accessed_dirty(change: LeafChange) -> bool:
    """The page's entries, at every level, differ only in their A and D bits."""
    before, after = change.before.entries, change.after.entries
    return len(before) == len(after) and all(b & ~ACCESSED_DIRTY == a & ~ACCESSED_DIRTY
                                             for b, a in zip(before, after, strict=True))


def describe_change(change: LeafChange) -> str:
    """What changed, in a few words: `D set`, `frame`, `rights`, `A set in the PDE above`."""
    words = []
    if change.remapped:
        words.append("frame")
    if change.permissions_changed:
        words.append("rights")
    leaf_before, leaf_after = change.before.entries[-1], change.after.entries[-1]
    for bit, name in ((ENTRY_ACCESSED, "A"), (ENTRY_DIRTY, "D")):
        if (leaf_before ^ leaf_after) & bit:
            words.append(f"{name} {'set' if leaf_after & bit else 'cleared'}")
    names = LEVEL_NAMES[-len(change.after.entries):]
    for name, b, a in zip(names[:-1], change.before.entries[:-1], change.after.entries[:-1], strict=False):
        if b != a:
            bits = "A" if (b ^ a) == ENTRY_ACCESSED else "bits"
            words.append(f"{bits} {'set' if bits == 'A' and a & ENTRY_ACCESSED else 'changed'} in the {name} above")
    if not words:
        words.append("other leaf bits")
    return ", ".join(words)


def _changed_fields(change: LeafChange) -> list[str]:
    fields = []
    if change.remapped:
        fields.append("paddr")
    if change.permissions_changed:
        fields.append("rights")
    if change.before.flags != change.after.flags:
        fields.append("flags")
    if change.before.entries[-1] != change.after.entries[-1]:
        fields.append("entry")
    return fields


class SnapshotDiff(View):
    """Two snapshots side by side, every added, removed and changed page marked."""

    _esm = module("snapshot_diff.js")
    _settable = ("hide_accessed_dirty",)

    before = traitlets.Dict(help="The first snapshot: label, seconds after boot, pages, CR3.").tag(sync=True)
    after = traitlets.Dict(help="The second snapshot, the same way.").tag(sync=True)
    counts = traitlets.Dict(help="Pages added, removed, changed, and changed only in A/D.").tag(sync=True)
    rows: traitlets.List[Any] = traitlets.List(
        help="One row per page that differs, in vaddr order (at most 2,000).").tag(sync=True)
    more = traitlets.Int(0, help="Rows not sent because of the limit.").tag(sync=True)
    hide_accessed_dirty = traitlets.Bool(False, help="Leave out pages whose only change is the A or D bit."
                                         ).tag(sync=True)

    def __init__(self, before: Snapshot, after: Snapshot, *, hide_accessed_dirty: bool = False) -> None:
        if not isinstance(before, Snapshot) or not isinstance(after, Snapshot):
            raise ViewError("SnapshotDiff compares two Snapshots, e.g. machine.snapshot() taken twice")
        self.difference = before.diff(after)
        self._before, self._after = before, after
        super().__init__(hide_accessed_dirty=hide_accessed_dirty)
        d = self.difference
        only_ad = sum(1 for c in d.changed if only_accessed_dirty(c))
        with self.hold_sync():
            self.before = _about(before, "before")
            self.after = _about(after, "after")
            self.counts = {"added": len(d.added), "removed": len(d.removed), "changed": len(d.changed),
                           "accessed_dirty_only": only_ad}
            self._make_rows()

    @traitlets.observe("hide_accessed_dirty")
    def _hide_changed(self, change: dict[str, Any]) -> None:
        if hasattr(self, "difference"):
            self._make_rows()

    def _all_rows(self) -> list[dict[str, Any]]:
        d = self.difference
        rows: list[tuple[int, dict[str, Any]]] = []
        for leaf in d.added:
            rows.append((leaf.vaddr, {"vaddr": hex_u64(leaf.vaddr), "size": size_text(leaf.size), "change": "added",
                                      "before": None, "after": _side(leaf), "fields": [], "what": "mapped"}))
        for leaf in d.removed:
            rows.append((leaf.vaddr, {"vaddr": hex_u64(leaf.vaddr), "size": size_text(leaf.size),
                                      "change": "removed", "before": _side(leaf), "after": None, "fields": [],
                                      "what": "unmapped"}))
        for c in d.changed:
            if self.hide_accessed_dirty and only_accessed_dirty(c):
                continue
            rows.append((c.after.vaddr, {"vaddr": hex_u64(c.after.vaddr), "size": size_text(c.after.size),
                                         "change": "changed", "before": _side(c.before), "after": _side(c.after),
                                         "fields": _changed_fields(c), "what": describe_change(c)}))
        rows.sort(key=lambda pair: pair[0])
        return [row for _vaddr, row in rows]

    def _make_rows(self) -> None:
        rows = self._all_rows()
        with self.hold_sync():
            self.rows = rows[:MAX_ROWS]
            self.more = max(0, len(rows) - MAX_ROWS)

    def __repr__(self) -> str:
        c = self.counts
        return (f"<SnapshotDiff {self.before['label']!r} -> {self.after['label']!r}: {c['added']} added, "
                f"{c['removed']} removed, {c['changed']} changed>")

    def static_html(self) -> str:
        colours = {"added": ADDED_COLOUR, "removed": REMOVED_COLOUR, "changed": CHANGED_COLOUR}

        def side(data: dict[str, Any] | None, fields: list[str]) -> str:
            if data is None:
                return "<td colspan='3' style='padding:0 6px;color:#9ca3af'>(not mapped)</td>"
            out = []
            for name in ("paddr", "rights", "flags"):
                mark = "background:#fde047;" if name in fields else ""
                out.append(f"<td style='padding:0 6px;{mark}'><code>{esc(data[name])}</code></td>")
            return "".join(out)

        lines = []
        for row in self.rows[:STATIC_ROWS]:
            lines.append(f"<tr style='background:{colours[row['change']]}'>"
                         f"<td style='padding:0 6px'><code>{esc(row['vaddr'])}</code></td>"
                         f"<td style='padding:0 6px'>{esc(row['size'])}</td>"
                         f"{side(row['before'], row['fields'])}{side(row['after'], row['fields'])}"
                         f"<td style='padding:0 6px'>{esc(row['what'])}</td></tr>")
        b, a, c = self.before, self.after, self.counts
        head = (f"<tr><th></th><th></th><th colspan='3' style='text-align:left'>{esc(b['label'])} "
                f"({b['pages']} pages)</th><th colspan='3' style='text-align:left'>{esc(a['label'])} "
                f"({a['pages']} pages)</th><th></th></tr><tr><th style='text-align:left'>vaddr</th><th>size</th>"
                + "<th style='text-align:left'>paddr</th><th>rights</th><th style='text-align:left'>flags</th>" * 2
                + "<th style='text-align:left'>what changed</th></tr>")
        hidden = len(self.rows) - STATIC_ROWS + self.more
        note = f"<div style='color:#6b7280'>... and {hidden} more pages</div>" if hidden > 0 else ""
        empty = "" if self.rows else "<div><i>No page changed.</i></div>"
        summary = f"{c['added']} added, {c['removed']} removed, {c['changed']} changed"
        body = (f"<table style='border-collapse:collapse;font-size:12px'>{head}{''.join(lines)}</table>"
                f"{note}{empty}")
        return box(f"Snapshots compared <span style='font-weight:normal'>{esc(summary)}</span>", body)
