"""The difference between the leaves of two snapshots: what was mapped, unmapped, changed."""

from __future__ import annotations

from dataclasses import dataclass

from workbench.models.paging.entries import ENTRY_ACCESSED, ENTRY_DIRTY, size_text
from workbench.models.paging.enumeration import Leaf, Leaves


@dataclass(frozen=True)
class LeafChange:
    """One page present in both snapshots (same vaddr and size) whose entry changed.

    Attributes:
        before: the leaf in the first snapshot.
        after: the leaf in the second.
    """

    before: Leaf
    after: Leaf

    @property
    def remapped(self) -> bool:
        """The frame changed."""
        return self.before.paddr != self.after.paddr

    @property
    def permissions_changed(self) -> bool:
        """Effective rights changed."""
        return self.before.permissions != self.after.permissions

    @property
    def accessed_changed(self) -> bool:
        """The leaf's A bit changed (the CPU sets it on first use)."""
        return self.before.accessed != self.after.accessed

    @property
    def dirty_changed(self) -> bool:
        """The leaf's D bit changed (the CPU sets it on first write)."""
        return self.before.dirty != self.after.dirty

    @property
    def changes(self) -> tuple[str, ...]:
        """Names of what changed: `paddr`, `permissions`, `accessed`, `dirty`, `entries`."""
        names = [n for n, c in (("paddr", self.remapped), ("permissions", self.permissions_changed),
                                ("accessed", self.accessed_changed), ("dirty", self.dirty_changed)) if c]
        mask = ~(ENTRY_ACCESSED | ENTRY_DIRTY)
        last_before = self.before.entries[-1] & mask
        last_after = self.after.entries[-1] & mask
        if (self.before.entries[:-1] != self.after.entries[:-1] or last_before != last_after) and not names:
            names.append("entries")
        return tuple(names)


@dataclass(frozen=True)
class LeafDiff:
    """What changed in the mappings between two snapshots.

    Attributes:
        added: pages only in the second snapshot.
        removed: pages only in the first.
        changed: pages in both whose entries differ.
    """

    added: tuple[Leaf, ...]
    removed: tuple[Leaf, ...]
    changed: tuple[LeafChange, ...]

    @property
    def empty(self) -> bool:
        """Nothing changed."""
        return not (self.added or self.removed or self.changed)

    @property
    def permission_changes(self) -> tuple[LeafChange, ...]:
        """Changes of effective rights."""
        return tuple(c for c in self.changed if c.permissions_changed)

    @property
    def accessed_or_dirty(self) -> tuple[LeafChange, ...]:
        """Pages whose A or D bit changed: what the guest touched in between."""
        return tuple(c for c in self.changed if c.accessed_changed or c.dirty_changed)

    def describe(self) -> str:
        """One line per difference, in vaddr order."""
        lines = [f"+ {leaf.vaddr:#018x} {size_text(leaf.size)} -> {leaf.paddr:#018x} {leaf.permissions}"
                 for leaf in self.added]
        lines += [f"- {leaf.vaddr:#018x} {size_text(leaf.size)} -> {leaf.paddr:#018x} {leaf.permissions}"
                  for leaf in self.removed]
        for c in self.changed:
            parts = []
            if c.remapped:
                parts.append(f"paddr {c.before.paddr:#x} -> {c.after.paddr:#x}")
            if c.permissions_changed:
                parts.append(f"rights {c.before.permissions} -> {c.after.permissions}")
            if c.accessed_changed:
                parts.append("accessed" if c.after.accessed else "accessed cleared")
            if c.dirty_changed:
                parts.append("dirty" if c.after.dirty else "dirty cleared")
            if not parts:
                parts.append("entry bits changed")
            lines.append(f"~ {c.after.vaddr:#018x} {size_text(c.after.size)}: {', '.join(parts)}")
        lines.sort(key=lambda line: int(line.split()[1], 16))
        return "\n".join(lines)


def diff(before: Leaves, after: Leaves) -> LeafDiff:
    """Compare two snapshots' leaves, page by page (a page is its vaddr and size).

    Splitting a 2 MiB page into 4 KiB pages shows as one removal and 512 additions.
    """
    if before.rows == after.rows:
        return LeafDiff((), (), ())
    # Most rows are usually identical: set lookups (in C) leave only the few that differ.
    kept_old = set(before.rows)
    kept_new = set(after.rows)
    gone = [row for row in before.rows if row not in kept_new]
    came = [row for row in after.rows if row not in kept_old]
    # key: the vaddr with the page size's bit length in its (always clear) low 12 bits
    old = {row[0] | row[2].bit_length(): row for row in gone}
    new = {row[0] | row[2].bit_length(): row for row in came}
    added = tuple(Leaf.from_row(row) for key, row in new.items() if key not in old)
    removed = tuple(Leaf.from_row(row) for key, row in old.items() if key not in new)
    changed = tuple(LeafChange(Leaf.from_row(old[key]), Leaf.from_row(row)) for key, row in new.items() if key in old)
    return LeafDiff(
        tuple(sorted(added, key=lambda leaf: leaf.vaddr)),
        tuple(sorted(removed, key=lambda leaf: leaf.vaddr)),
        tuple(sorted(changed, key=lambda c: c.after.vaddr)),
    )


