"""The page tables as a tree of tables and entries, read lazily, for the page-table view."""

from __future__ import annotations

from dataclasses import dataclass, field

from workbench.models.cpu import U64_MAX, hex_u64
from workbench.models.paging.entries import Entry, Level, PagingMode, size_text
from workbench.models.paging.inputs import PagingRegisters, PhysicalMemory
from workbench.models.paging.tables import QEMU_TABLE_MASK, TableReader
from workbench.models.paging.translation import EntryKind


@dataclass(frozen=True)
class TableNode:
    """A page table in the tree; its entries are read only when asked for.

    Attributes:
        level: the table's level.
        table_paddr: where it is.
        vaddr: first vaddr its entries cover.
        ancestors: paddrs of the tables above it, root first.
        tree: the tree it belongs to (reads memory on demand).
    """

    level: Level
    table_paddr: int
    vaddr: int
    ancestors: tuple[int, ...]
    tree: PageTableTree = field(compare=False, repr=False)

    @property
    def readable(self) -> bool:
        """The table is in RAM or ROM: not in device memory, not where there is no memory."""
        return self.tree.readable(self.table_paddr)

    @property
    def recursive(self) -> bool:
        """This table is also one of its own ancestors (a recursive mapping)."""
        return self.table_paddr in self.ancestors

    @property
    def present_count(self) -> int:
        """Number of present entries (0 unless `readable`)."""
        return self.tree.present_count(self)

    def entries(self) -> tuple[TreeEntry, ...]:
        """The present entries, read and decoded now."""
        return self.tree.entries(self)


@dataclass(frozen=True)
class TreeEntry:
    """A present entry of a table in the tree.

    Attributes:
        index: position in its table.
        vaddr: first vaddr it covers.
        entry: the raw entry and its level.
        reserved_bits: reserved bits set (0 when none).
        kind: what it points to.
        target_paddr: the next table or the frame.
        child: the next table's node (None for a page, or a table in device memory or where
            there is no memory).
        recursive: the next table is this table or one above it.
    """

    index: int
    vaddr: int
    entry: Entry
    reserved_bits: int
    kind: EntryKind
    target_paddr: int
    child: TableNode | None
    recursive: bool = False

    def to_json(self) -> dict[str, object]:
        """A JSON-safe dict for views: addresses and the entry as hex strings."""
        return {
            "index": self.index,
            "vaddr": hex_u64(self.vaddr),
            "level": self.entry.level.name,
            "entry": hex_u64(self.entry.raw),
            "flags": list(self.entry.flag_names),
            "reserved_bits": hex_u64(self.reserved_bits),
            "kind": self.kind.value,
            "target_paddr": hex_u64(self.target_paddr),
            "page_size": self.entry.page_size,
            "recursive": self.recursive,
            "present_count": self.child.present_count if self.child is not None else None,
        }


class PageTableTree:
    """The page tables reachable from CR3, as a tree whose children are read on request.

    Build it on a paused guest: tables are read once and cached, so a tree is a snapshot.

    Args:
        memory: guest RAM.
        regs: CR0, CR3, CR4 and EFER.
        maxphyaddr: the CPU's physical-address width.

    Raises:
        UnsupportedPagingModeError: the CPU uses 32-bit or PAE paging.
    """

    def __init__(self, memory: PhysicalMemory, regs: PagingRegisters, *, maxphyaddr: int = 52) -> None:
        self.mode = PagingMode.from_registers(regs, maxphyaddr=maxphyaddr)
        self.mode.require_long_mode()
        self._reader = TableReader(memory)
        self.root: TableNode | None = None
        if self.mode.enabled:
            self.root = TableNode(self.mode.top_level, self.mode.root_paddr, 0, (), self)

    def __repr__(self) -> str:
        """Deterministic: mode and root."""
        root = f"{self.root.table_paddr:#018x}" if self.root is not None else "none"
        return f"<PageTableTree {self.mode.kind.value}, root {root}>"

    def readable(self, table_paddr: int) -> bool:
        """The table at `table_paddr` is in RAM or ROM, so its entries can be read."""
        return self._reader.place(table_paddr)[0] in ("ram", "memory")

    def present_count(self, node: TableNode) -> int:
        """Number of present entries in a table (0 if it is not `readable`)."""
        if not self.readable(node.table_paddr):
            return 0
        return self._reader.present_count(node.table_paddr)

    def entries(self, node: TableNode) -> tuple[TreeEntry, ...]:
        """The present entries of a table, decoded, with child nodes for readable tables."""
        if not self.readable(node.table_paddr):
            return ()
        out: list[TreeEntry] = []
        level = node.level
        mode = self.mode
        sign = U64_MAX & ~((1 << mode.vaddr_bits) - 1)
        ancestors = (*node.ancestors, node.table_paddr)
        for index, raw in self._reader.present(node.table_paddr):
            vaddr = node.vaddr + (index << level.shift)
            if level == mode.top_level and index >= 256:
                vaddr |= sign
            entry = Entry(raw, level)
            leaf = entry.maps_page
            reserved = raw & mode.reserved_mask(level, leaf)
            if leaf:
                out.append(TreeEntry(index, vaddr, entry, reserved, EntryKind.PAGE, entry.target_paddr, None))
                continue
            target = raw & QEMU_TABLE_MASK
            place = self._reader.place(target)[0]
            if place in ("device", "none"):
                kind = EntryKind.DEVICE_MEMORY if place == "device" else EntryKind.NO_MEMORY
                out.append(TreeEntry(index, vaddr, entry, reserved, kind, target, None))
                continue
            child = TableNode(Level(level - 1), target, vaddr, ancestors, self)
            out.append(TreeEntry(index, vaddr, entry, reserved, EntryKind.TABLE, target, child,
                                 recursive=target in ancestors))
        return tuple(out)


def format_tree(tree: PageTableTree, *, max_depth: int | None = None, max_lines: int = 10_000) -> str:
    """An indented printout in the spirit of xv6's vmprint: one line per present entry.

    Recursive entries (pointing back at a table on their own path) are shown, not expanded.

    Args:
        tree: the tree.
        max_depth: levels to expand below the root (None: all).
        max_lines: stop after this many lines, saying so.
    """
    if tree.root is None:
        return f"{tree.mode.kind.value}: no page tables"
    root = tree.root
    lines = [f"{root.level.name} table {root.table_paddr:#018x} (from CR3), {root.present_count} present entries"]
    stopped = False

    def emit(node: TableNode, depth: int) -> None:
        nonlocal stopped
        for item in node.entries():
            if len(lines) >= max_lines:
                stopped = True
                return
            indent = " .." * depth
            flags = " ".join(item.entry.flag_names)
            head = f"{indent}{item.index}: {item.entry.level.entry_name} {item.entry.raw:#018x} {flags}"
            if item.kind is EntryKind.PAGE:
                size = size_text(item.entry.page_size or 0)
                tail = f"-> {size} page {item.target_paddr:#018x} at vaddr {item.vaddr:#018x}"
            else:
                below = Level(item.entry.level - 1).name
                tail = f"-> {below} table {item.target_paddr:#018x}"
                if item.kind in (EntryKind.DEVICE_MEMORY, EntryKind.NO_MEMORY):
                    tail += f" ({item.kind.value})"
                elif item.recursive:
                    tail += " (recursive: already on this path, not expanded)"
            if item.reserved_bits:
                tail += f" [reserved bits {item.reserved_bits:#x} set]"
            lines.append(f"{head} {tail}")
            if item.child is not None and not item.recursive and (max_depth is None or depth < max_depth):
                emit(item.child, depth + 1)
                if stopped:
                    return

    emit(root, 1)
    if stopped:
        lines.append(f"... (stopped after {max_lines} lines)")
    return "\n".join(lines)
