"""The page-table explorer: the tables from CR3 down to the pages, as a tree that opens lazily.

    PageTableExplorer(snapshot)          one instant, fixed
    PageTableExplorer(machine)           refreshed on every pause and, throttled, while it runs

Entries are named by their path of indexes from the top table, `"511/510/3"` (the top table
itself is `""`). The top table's entries are a trait, so the first level shows as soon as the
widget does; a deeper table is read when the page asks for it (an `expand` message) and sent
back as a message, so a Linux-sized tree never travels whole. Filters (permission, address
range) are computed here from the snapshot's leaves: a table entry stays visible when some page
below it matches. After a refresh, the entries that changed (their bits, or any page below
them) are listed in `changed`, and the page highlights them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import traitlets

from workbench.errors import WorkbenchError
from workbench.guest.machine import Machine, MachineState
from workbench.kernel.image import Image
from workbench.models.cpu import U64_MAX, Cr3, hex_u64
from workbench.models.paging import (
    EntryKind,
    Level,
    PageTableTree,
    Permissions,
    TableNode,
    TreeEntry,
    effective_permissions,
    size_text,
)
from workbench.models.snapshot import Snapshot
from workbench.views._base import (
    CHANGED_COLOUR,
    UPDATE_INTERVAL,
    ViewError,
    box,
    chip,
    esc,
    module,
    parse_address,
    permission_colour,
)
from workbench.views._snapshots import FollowingView, name_of, resolve_vaddr, split_source, take

Path = tuple[int, ...]
FILTERS = ("", "writable", "executable", "user", "w+x")
_PREDICATES: dict[str, Callable[[Permissions], bool]] = {
    "writable": lambda rights: rights.writable,
    "executable": lambda rights: rights.executable,
    "user": lambda rights: rights.user,
    "w+x": lambda rights: rights.writable and rights.executable,
}
STATIC_ROWS = 80  # entries in the static form
LIVE_DUTY = 4  # a live refresh waits at least this many times as long as the last one took


def path_id(path: Path) -> str:
    return "/".join(str(i) for i in path)


def parse_path(text: object) -> Path:
    if isinstance(text, tuple) and all(isinstance(i, int) for i in text):
        path: Path = text
    elif isinstance(text, str):
        try:
            path = tuple(int(part) for part in text.split("/")) if text else ()
        except ValueError:
            raise ViewError(f"{text!r} is not an entry path like '511/510/3'") from None
    else:
        raise ViewError(f"an entry path is a string like '511/510/3', not {type(text).__name__}")
    if len(path) > 5 or not all(0 <= i < 512 for i in path):
        raise ViewError(f"{text!r} is not an entry path: up to five indexes from 0 to 511")
    return path


_SPANS = {level: size_text(level.entry_span) for level in Level}  # an expansion sends up to 512 entries


class PageTableExplorer(FollowingView):
    """The page tables as a tree: lazy expansion, flags, filters, jump to a vaddr, live refresh."""

    _esm = module("pagetable.js")
    _settable = ("permission_filter", "range_start", "range_end", "live")

    mode = traitlets.Unicode("", help="The paging mode and CR3, in words.").tag(sync=True)
    root = traitlets.Dict(help="The top table: level, paddr and number of present entries.").tag(sync=True)
    root_entries: traitlets.List[Any] = traitlets.List(
        help="The top table's visible entries (JSON, 64-bit values as hex strings).").tag(sync=True)
    root_hidden = traitlets.Int(0, help="Top-level entries the filters hide.").tag(sync=True)
    expanded = traitlets.List(traitlets.Unicode(), help="Paths of the entries whose tables are open, "
                              "in the order they were opened.").tag(sync=True)
    selected = traitlets.Unicode("", help="Path of the entry whose bits are shown, or empty.").tag(sync=True)
    details = traitlets.Dict(help="The selected entry decoded field by field.").tag(sync=True)
    focus = traitlets.Unicode("", help="Path of the entry the page should scroll to (after a jump).").tag(sync=True)
    note = traitlets.Unicode("", help="What the last jump found, in words.").tag(sync=True)
    permission_filter = traitlets.Enum(FILTERS, default_value="", help="Show only what leads to pages that are "
                                       "writable, executable, user, or writable and executable (w+x); "
                                       "empty shows everything.").tag(sync=True)
    range_start = traitlets.Unicode("", help="Show only what maps vaddrs from here (hex; empty: from 0)."
                                    ).tag(sync=True)
    range_end = traitlets.Unicode("", help="... up to here, exclusive (hex; empty: to the top).").tag(sync=True)
    changed = traitlets.List(traitlets.Unicode(), help="Paths of the entries that changed at the last refresh "
                             "that changed anything.").tag(sync=True)
    refreshes = traitlets.Int(0, help="Snapshots taken since the view was made.").tag(sync=True)
    pages = traitlets.Int(0, help="Present pages (leaves) in the snapshot.").tag(sync=True)
    source = traitlets.Enum(("snapshot", "machine"), default_value="snapshot",
                            help="What the view shows: a fixed snapshot, or a machine it refreshes from."
                            ).tag(sync=True)
    live = traitlets.Bool(False, help="Refresh while the machine runs (at most 10 times a second).").tag(sync=True)
    snapshot_label = traitlets.Unicode("", help="Which snapshot is shown, in words.").tag(sync=True)
    cpu_tables: traitlets.List[Any] = traitlets.List(
        help="Each CPU's CR3: the top table it points to, and whether that is the table shown.").tag(sync=True)

    def __init__(self, source: Snapshot | Machine, *, image: Image | None = None, live: bool = True) -> None:
        machine, snapshot, named = split_source(source, image)
        self.machine = machine
        self.image = named
        self._pinned: set[Path] = set()
        self._sent_tables: dict[Path, list[dict[str, Any]]] = {}
        self._pending: Snapshot | None = None
        self._refresh_wanted = False
        self._ready = False  # live refreshes wait until the first snapshot is installed
        super().__init__(source="machine" if machine is not None else "snapshot",
                         live=live and machine is not None)
        self._install(snapshot, previous=None)
        self._ready = True
        if self.live and machine is not None and machine.state is MachineState.RUNNING:
            self._mark_dirty()
        self._follow_machine()

    # The snapshot and its tree.

    def _install(self, snapshot: Snapshot, previous: Snapshot | None) -> None:
        """Show `snapshot`; with `previous`, mark what changed (called with the lock held)."""
        old_loaded = self._loaded_raw() if previous is not None else {}
        self.snapshot = snapshot
        self._tree = PageTableTree(snapshot.memory, snapshot.registers)
        self._nodes: dict[Path, tuple[TableNode, int, int]] = {}
        self._entry_cache: dict[Path, dict[int, TreeEntry]] = {}
        self._matches: dict[int, set[int]] | None = None
        root = self._tree.root
        mode = self._tree.mode
        if root is not None:
            self._nodes[()] = (root, U64_MAX, 0)
        keep = [e for e in self.expanded if self._table_node(parse_path(e)) is not None]
        changed = self._changes(previous, old_loaded) if previous is not None else None
        with self.hold_sync():
            self.mode = mode.describe()
            self.root = {"level": root.level.name, "table_paddr": hex_u64(root.table_paddr),
                         "present": root.present_count, "id": "",
                         "cpus": list(snapshot.cpus_on_table(root.table_paddr))} if root is not None else {}
            self.cpu_tables = _cpu_tables(snapshot, root.table_paddr if root is not None else None)
            self.pages = len(snapshot.leaves)
            self.refreshes += 1
            self.snapshot_label = (f"{snapshot.label or 'snapshot'} #{self.refreshes}"
                                   + (f", {snapshot.seconds:.2f} s after boot" if snapshot.seconds else ""))
            if keep != list(self.expanded):
                self.expanded = keep
            if changed is not None and changed:
                self.changed = sorted(changed)
            self._send_root()
            if self.selected:
                self.details = self._details(parse_path(self.selected)) or {}

    def _table_node(self, path: Path) -> TableNode | None:
        found = self._node(path)
        return found[0] if found is not None else None

    def _node(self, path: Path) -> tuple[TableNode, int, int] | None:
        """The table an entry points to, with the AND and OR of the entries above and at it."""
        if path in self._nodes:
            return self._nodes[path]
        if not path:
            return None
        parent = self._node(path[:-1])
        if parent is None:
            return None
        item = self._entries_of(path[:-1]).get(path[-1])
        if item is None or item.child is None or item.kind is not EntryKind.TABLE:
            return None
        found = (item.child, parent[1] & item.entry.raw, parent[2] | item.entry.raw)
        self._nodes[path] = found
        return found

    def _entries_of(self, path: Path) -> dict[int, TreeEntry]:
        cached = self._entry_cache.get(path)
        if cached is None:
            node = self._table_node(path)
            cached = {item.index: item for item in node.entries()} if node is not None else {}
            self._entry_cache[path] = cached
        return cached

    def _loaded(self) -> list[Path]:
        return [(), *(parse_path(e) for e in self.expanded)]

    def _loaded_raw(self) -> dict[Path, dict[int, int]]:
        return {path: {i: item.entry.raw for i, item in self._entries_of(path).items()} for path in self._loaded()}

    def _changes(self, previous: Snapshot, old_loaded: dict[Path, dict[int, int]]) -> set[str]:
        """Paths of loaded entries whose bits changed, or with a changed page below them."""
        changed: set[str] = set()
        for path, old in old_loaded.items():
            new = {i: item.entry.raw for i, item in self._entries_of(path).items()}
            changed.update(path_id((*path, i)) for i, raw in new.items() if old.get(i) != raw)
        difference = previous.diff(self.snapshot)
        if difference.empty:
            return changed
        touched: dict[int, set[int]] = {}
        levels = self._tree.mode.levels
        leaves = [*difference.added, *difference.removed, *(c.after for c in difference.changed)]
        for level in levels:
            touched[level] = {leaf.vaddr >> level.shift for leaf in leaves if leaf.size <= level.entry_span}
        for path in old_loaded:
            for i, item in self._entries_of(path).items():
                level = item.entry.level
                if item.vaddr >> level.shift in touched.get(level, ()):
                    changed.add(path_id((*path, i)))
        return changed

    # Filters.

    def _match_sets(self) -> dict[int, set[int]] | None:
        """Per level, the (vaddr >> shift) of entries with a matching page below; None: no filter."""
        if not self.permission_filter and not self.range_start and not self.range_end:
            return None
        if self._matches is None:
            start = parse_address(self.range_start) if self.range_start else 0
            end = parse_address(self.range_end) if self.range_end else 1 << 64
            predicate = _PREDICATES.get(self.permission_filter)
            rows = [r for r in self.snapshot.leaves.rows if r[0] < end and r[0] + r[2] > start
                    and (predicate is None or predicate(Permissions.from_rights(r[4])))]
            self._matches = {level: {r[0] >> level.shift for r in rows if r[2] <= level.entry_span}
                             for level in self._tree.mode.levels}
        return self._matches

    def _visible(self, path: Path, item: TreeEntry, matches: dict[int, set[int]] | None) -> bool:
        if matches is None or path in self._pinned:
            return True
        level = item.entry.level
        return item.vaddr >> level.shift in matches.get(level, ())

    # What the page gets.

    def table(self, path: str | Path) -> tuple[list[dict[str, Any]], int]:
        """The visible entries of the table an entry points to (JSON), and how many are hidden."""
        where = parse_path(path)
        found = self._node(where)
        if found is None:
            raise ViewError(f"entry {path_id(where)!r} does not point to a table in this snapshot")
        _node, and_bits, or_bits = found
        matches = self._match_sets()
        nxe = self._tree.mode.nxe
        shown: list[dict[str, Any]] = []
        hidden = 0
        for index, item in sorted(self._entries_of(where).items()):
            entry_path = (*where, index)
            if not self._visible(entry_path, item, matches):
                hidden += 1
                continue
            shown.append(self._entry_json(entry_path, item, and_bits & item.entry.raw, or_bits | item.entry.raw, nxe))
        return shown, hidden

    def _entry_json(self, path: Path, item: TreeEntry, and_bits: int, or_bits: int, nxe: bool) -> dict[str, Any]:
        entry = item.entry
        level = entry.level
        page = item.kind is EntryKind.PAGE
        span = level.entry_span
        return {
            "id": path_id(path),
            "index": item.index,
            "level": level.name,
            "vaddr": hex_u64(item.vaddr),
            "last": hex_u64(item.vaddr + span - 1),
            "entry": hex_u64(entry.raw),
            "flags": list(entry.flag_names),
            "rights": str(effective_permissions(and_bits, or_bits, nxe)) if page else None,
            "kind": item.kind.value,
            "target": hex_u64(item.target_paddr),
            "page_size": _SPANS[level] if page else None,
            "huge": page and level != Level.PT,
            "children": item.child.present_count if item.child is not None and not page else None,
            "recursive": item.recursive,
            "reserved": item.reserved_bits != 0,
            "cpus": list(self.snapshot.cpus_on_table(item.target_paddr)) if item.kind is EntryKind.TABLE else [],
        }

    def _send_root(self) -> None:
        entries, hidden = self.table(()) if self._tree.root is not None else ([], 0)
        if entries != self.root_entries:
            self.root_entries = entries
        self.root_hidden = hidden

    def _send_tables(self, paths: Iterable[Path], *, only_changed: bool, seq: int | None = None) -> None:
        tables = {}
        for path in paths:
            if not path:
                continue
            entries, hidden = self.table(path)
            if only_changed and self._sent_tables.get(path) == entries:
                continue
            self._sent_tables[path] = entries
            tables[path_id(path)] = {"entries": entries, "hidden": hidden}
        if tables or seq is not None:
            message: dict[str, Any] = {"kind": "tables", "tables": tables}
            if seq is not None:
                message["seq"] = seq
            self._post(message)

    def _details(self, path: Path) -> dict[str, Any] | None:
        if not path:
            return None
        found = self._node(path[:-1])
        item = self._entries_of(path[:-1]).get(path[-1])
        if found is None or item is None:
            return None
        node, and_bits, or_bits = found
        entry, mode = item.entry, self._tree.mode
        if item.kind is EntryKind.PAGE:
            target = f"{size_text(entry.level.entry_span)} page, frame at paddr {hex_u64(item.target_paddr)}"
        else:
            target = f"{Level(entry.level - 1).name} table at paddr {hex_u64(item.target_paddr)}"
            if item.kind in (EntryKind.DEVICE_MEMORY, EntryKind.NO_MEMORY):
                target += f" ({item.kind.value})"
            elif item.recursive:
                target += " (recursive: a table already on this path)"
        return {
            "id": path_id(path),
            "title": f"{entry.level.name} entry {item.index} ({entry.level.entry_name})",
            "entry": hex_u64(entry.raw),
            "bits": format(entry.raw, "064b"),
            "fields": [field.to_json() for field in entry.fields(mode)],
            "vaddr": hex_u64(item.vaddr),
            "last": hex_u64(item.vaddr + entry.level.entry_span - 1),
            "span": size_text(entry.level.entry_span),
            "table_paddr": hex_u64(node.table_paddr),
            "entry_paddr": hex_u64(node.table_paddr + 8 * item.index),
            "target": target,
            "rights": str(effective_permissions(and_bits & entry.raw, or_bits | entry.raw, mode.nxe)),
            "page": item.kind is EntryKind.PAGE,
            "reserved_bits": hex_u64(item.reserved_bits) if item.reserved_bits else "",
            "symbol": name_of(item.vaddr, self.image),
        }

    # Actions, from Python or from the page.

    def expand(self, path: str | Path) -> list[dict[str, Any]]:
        """Open the table an entry points to; returns its visible entries."""
        where = parse_path(path)
        with self._lock:
            if self._node(where) is None:
                raise ViewError(f"entry {path_id(where)!r} does not point to a table that can be opened")
            if where and path_id(where) not in self.expanded:
                self.expanded = [*self.expanded, path_id(where)]
            self._send_tables([where], only_changed=False)
            return self._sent_tables.get(where, [])

    def collapse(self, path: str | Path) -> None:
        """Close a table, and every table opened below it."""
        text = path_id(parse_path(path))
        with self._lock:
            self.expanded = [e for e in self.expanded if e != text and not e.startswith(text + "/")]
            for gone in [p for p in self._sent_tables if path_id(p) not in self.expanded]:
                del self._sent_tables[gone]

    def select(self, path: str | Path) -> dict[str, Any]:
        """Show one entry's bits decoded; returns them."""
        where = parse_path(path)
        with self._lock:
            details = self._details(where)
            if details is None:
                raise ViewError(f"there is no present entry {path_id(where)!r} in this snapshot")
            with self.hold_sync():
                self.selected = path_id(where)
                self.details = details
            return details

    def jump(self, vaddr: int | str) -> str:
        """Open the tables on the way to `vaddr` (hex or a symbol) and select its last entry.

        Returns the selected entry's path; `note` says what the walk found.
        """
        target = resolve_vaddr(vaddr, self.image)
        walk = self.snapshot.walk(target)
        path: Path = ()
        for step in walk.steps:
            if not step.entry.present:
                break
            path = (*path, step.index)
        if walk.ok:
            found = f"{hex_u64(target)} is mapped: paddr {hex_u64(walk.paddr or 0)}"
        else:
            found = walk.fault.message if walk.fault is not None else ""
        self.reveal(path, note=found)
        return path_id(path)

    def reveal(self, path: str | Path, *, note: str = "") -> None:
        """Open the tables above an entry, select it and scroll to it (filters never hide it)."""
        where = parse_path(path)
        with self._lock:
            self._pinned = {where[:n] for n in range(1, len(where) + 1)}
            tables = [where[:n] for n in range(1, len(where)) if self._node(where[:n]) is not None]
            opened = list(self.expanded) + [path_id(t) for t in tables if path_id(t) not in self.expanded]
            with self.hold_sync():
                self.expanded = opened
                self._send_root()
                self._send_tables(tables, only_changed=False)
                self.note = note
                if where:
                    self.selected = path_id(where)
                    self.details = self._details(where) or {}
                self.focus = path_id(where)
            self._post({"kind": "focus", "id": path_id(where)})  # scroll there, even to the same entry again

    def show_range(self, start: int | str, end: int | str) -> None:
        """Filter to the vaddrs start..end (end exclusive) and jump to start: the map's click."""
        low = parse_address(start)
        high = 1 << 64 if end in (1 << 64, "") else parse_address(end)
        with self._lock, self.hold_sync():
            self.range_start = hex_u64(low)
            self.range_end = hex_u64(high) if high < 1 << 64 else ""
        self.jump(low)

    def refresh(self) -> None:
        """Take a new snapshot of the machine now (pausing it for a moment if it runs)."""
        if self.machine is None:
            raise ViewError("this explorer shows a fixed snapshot; make it from a Machine to refresh")
        self.show(take(self.machine, consistent=True))

    def show(self, snapshot: Snapshot) -> None:
        """Show a later snapshot of the same guest; what changed since the shown one is highlighted."""
        if not isinstance(snapshot, Snapshot):
            raise ViewError(f"show a Snapshot, not {type(snapshot).__name__}")
        with self._lock:
            self._apply(snapshot)

    def _apply(self, snapshot: Snapshot) -> None:
        previous = self.snapshot
        self._pinned = set()
        with self.hold_sync():
            self._install(snapshot, previous)
            seq = self._next_seq()
            self._send_tables([parse_path(e) for e in self.expanded], only_changed=True, seq=seq)
            self.seq = seq

    # Following a machine.

    def _held_still(self) -> None:
        self._refresh_wanted = True
        super()._held_still()

    def _running(self) -> None:
        if self.live:
            self._mark_dirty()

    @traitlets.observe("live")
    def _live_changed(self, change: dict[str, Any]) -> None:
        machine = getattr(self, "machine", None)
        if change["new"] and machine is not None and machine.state is MachineState.RUNNING:
            self._mark_dirty()

    def _prepare(self) -> None:
        machine = self.machine
        if machine is None or not self._ready:
            return
        running = machine.state is MachineState.RUNNING
        if not (self._refresh_wanted or (self.live and running)) or machine.state.terminal:
            return
        self._refresh_wanted = False
        started = time.monotonic()
        try:
            self._pending = take(machine, consistent=not running)
        except WorkbenchError:
            self._pending = None  # the machine stopped meanwhile; the next state change says how
            return
        self._throttle.interval = max(UPDATE_INTERVAL, LIVE_DUTY * (time.monotonic() - started))

    def _flush(self) -> None:
        if not self._ready:
            return
        snapshot, self._pending = self._pending, None
        if snapshot is not None:
            self._apply(snapshot)
        machine = self.machine
        if self.live and machine is not None and machine.state is MachineState.RUNNING:
            self._mark_dirty()  # and again, one interval from now

    # Messages from the page.

    def _msg_hello(self, content: dict[str, Any]) -> None:
        with self._lock:
            self._send_tables([parse_path(e) for e in self.expanded], only_changed=False)

    def _msg_expand(self, content: dict[str, Any]) -> None:
        self.expand(str(content.get("id", "")))

    def _msg_collapse(self, content: dict[str, Any]) -> None:
        self.collapse(str(content.get("id", "")))

    def _msg_select(self, content: dict[str, Any]) -> None:
        self.select(str(content.get("id", "")))

    def _msg_jump(self, content: dict[str, Any]) -> None:
        self.error = ""
        self.jump(str(content.get("vaddr", "")))

    def _msg_refresh(self, content: dict[str, Any]) -> None:
        self.refresh()

    # Validation and filters.

    @traitlets.validate("range_start", "range_end")
    def _valid_range(self, proposal: dict[str, Any]) -> str:
        text = proposal["value"]
        if text in ("", None):
            return ""
        try:
            return hex_u64(parse_address(text))
        except ViewError as problem:
            raise traitlets.TraitError(str(problem)) from None

    @traitlets.observe("permission_filter", "range_start", "range_end")
    def _filters_changed(self, change: dict[str, Any]) -> None:
        if not hasattr(self, "_tree"):
            return
        if self.range_start and self.range_end and int(self.range_start, 16) >= int(self.range_end, 16):
            self.error = "the range is empty: its start must be below its end"
        with self._lock:
            self._matches = None
            self._pinned = set()
            with self.hold_sync():
                self._send_root()
                self._send_tables([parse_path(e) for e in self.expanded], only_changed=True)

    # Output bundle.

    def __repr__(self) -> str:
        root = self._tree.root
        where = f"{root.level.name} at {root.table_paddr:#x}" if root is not None else "no tables"
        filters = [f for f in (self.permission_filter,
                               f"from {self.range_start}" if self.range_start else "",
                               f"to {self.range_end}" if self.range_end else "") if f]
        shown = f", showing {' '.join(filters)}" if filters else ""
        return f"<PageTableExplorer: {self._tree.mode.kind.value}, {where}, {self.pages} pages{shown}>"

    def static_html(self) -> str:
        rows: list[str] = []
        full = [False]

        def emit(path: Path, depth: int) -> None:
            if self._node(path) is None:
                return
            entries, hidden = self.table(path)
            for entry in entries:
                if len(rows) >= STATIC_ROWS:
                    full[0] = True
                    return
                rows.append(_static_row(entry, depth, entry["id"] in self.changed))
                if entry["kind"] == "table" and not entry["recursive"]:
                    emit(parse_path(entry["id"]), depth + 1)
            if hidden:
                rows.append(f"<tr><td colspan='5' style='padding-left:{12 * depth + 4}px;color:#6b7280'>"
                            f"{hidden} entries hidden by the filters</td></tr>")

        emit((), 0)
        root = self.root
        title = (f"Page tables <span style='font-weight:normal'>{esc(self.mode)}; {root.get('level', '')} at "
                 f"<code>{esc(root.get('table_paddr', ''))}</code>, {self.pages} pages</span>")
        cpus = f"<div>{esc(cpu_tables_text(self.cpu_tables))}</div>"
        note = (f"<div style='color:#6b7280'>The first {STATIC_ROWS} entries; run the notebook to explore "
                "the rest.</div>" if full[0] else "")
        body = ("<table style='border-collapse:collapse;font-size:12px'>"
                "<tr><th style='text-align:left'>entry</th><th style='text-align:left'>vaddr</th>"
                "<th style='text-align:left'>flags</th><th style='text-align:left'>maps</th><th></th></tr>"
                + "".join(rows) + "</table>" + note)
        return box(title, cpus + body)


def _cpu_tables(snapshot: Snapshot, shown_paddr: int | None) -> list[dict[str, Any]]:
    """Each CPU's CR3 and the top table it points to; `shown` when it is the table the view shows."""
    return [{"cpu": cpu, "cr3": hex_u64(cr3), "table_paddr": hex_u64(Cr3(cr3).table_paddr),
             "shown": Cr3(cr3).table_paddr == shown_paddr} for cpu, cr3 in enumerate(snapshot.cpu_cr3)]


def cpu_tables_text(cpu_tables: list[dict[str, Any]]) -> str:
    """`CR3 of cpu 0, 1: this table; cpu 2: the table at 0x...` in one line."""
    on_shown = [str(row["cpu"]) for row in cpu_tables if row["shown"]]
    parts = [f"CR3 of cpu {', '.join(on_shown)}: this table"] if on_shown else []
    parts += [f"cpu {row['cpu']}: the table at {row['table_paddr']}" for row in cpu_tables if not row["shown"]]
    return "; ".join(parts)


def _static_row(entry: dict[str, Any], depth: int, changed: bool) -> str:
    flags = "".join(chip(f) for f in entry["flags"])
    if entry["kind"] == "page":
        maps = (chip(entry["page_size"], "#f9a8d4") if entry["huge"] else esc(entry["page_size"])) + \
            f" frame <code>{esc(entry['target'])}</code>"
        rights = chip(entry["rights"], permission_colour(entry["rights"]))
    else:
        below = {"PML5": "PML4", "PML4": "PDPT", "PDPT": "PD", "PD": "PT"}.get(entry["level"], "")
        maps = f"{below} table <code>{esc(entry['target'])}</code>"
        if entry["children"] is not None:
            maps += f" ({entry['children']} present)"
        rights = ""
    background = f"background:{CHANGED_COLOUR};" if changed else ""
    return (f"<tr style='{background}'><td style='padding:0 6px 0 {12 * depth + 4}px;white-space:nowrap'>"
            f"<code>{entry['level']}[{entry['index']}]</code></td>"
            f"<td style='padding:0 6px'><code>{esc(entry['vaddr'])}</code></td>"
            f"<td style='padding:0 6px;white-space:nowrap'>{flags}</td>"
            f"<td style='padding:0 6px;white-space:nowrap'>{maps}</td><td>{rights}</td></tr>")

