"""Leaves coalesced into ranges of equal rights, like QEMU's `info mem`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np
import numpy.typing as npt

from workbench.models.cpu import hex_u64
from workbench.models.paging.entries import RIGHTS_NO_EXECUTE, RIGHTS_USER, RIGHTS_WRITABLE, Permissions, size_text
from workbench.models.paging.enumeration import Leaves
from workbench.models.paging.tables import Words


@dataclass(frozen=True)
class MappedRange:
    """Contiguous vaddrs with the same effective rights, like one line of QEMU's `info mem`.

    Attributes:
        vaddr: first vaddr.
        size: bytes.
        user: ring 3 may access.
        writable: writes are allowed.
        executable: True or False when the ranges were split on execute rights too; None when
            they were coalesced QEMU's way (which ignores XD), so the range may mix both.
    """

    vaddr: int
    size: int
    user: bool
    writable: bool
    executable: bool | None = None

    @property
    def end(self) -> int:
        """First vaddr after the range."""
        return self.vaddr + self.size

    @property
    def permissions_text(self) -> str:
        """Four letters: `u`/`-`, `r`, `w`/`-`, `x`/`-` (or `?` when execute rights are mixed)."""
        x = "?" if self.executable is None else ("x" if self.executable else "-")
        return f"{'u' if self.user else '-'}r{'w' if self.writable else '-'}{x}"

    def to_json(self) -> dict[str, object]:
        """A JSON-safe dict; addresses and the size as hex strings (a size can reach 2**64)."""
        return {"vaddr": hex_u64(self.vaddr), "end": hex_u64(self.end), "size": hex_u64(self.size),
                "permissions": self.permissions_text}


class MappedRanges(Sequence[MappedRange]):
    """What `mappings()` returns: a tuple-like sequence of `MappedRange`, each made when looked at.

    A large guest has tens of thousands of ranges; they are kept as arrays. It compares equal
    to a tuple of the same ranges (and to another `MappedRanges`); a slice is a `MappedRanges`.
    """

    __slots__ = ("_keys", "_sizes", "_split", "_starts")

    def __init__(self, starts: Words, sizes: Words, keys: npt.NDArray[np.uint8], split_on_execute: bool) -> None:
        self._starts = starts
        self._sizes = sizes
        self._keys = keys  # rights values as in Leaves.rights, RIGHTS_NO_EXECUTE cleared unless split
        self._split = split_on_execute

    def _range(self, start: int, size: int, key: int) -> MappedRange:
        rights = Permissions.from_rights(key)
        return MappedRange(start, size, rights.user, rights.writable, rights.executable if self._split else None)

    def __len__(self) -> int:
        """Number of ranges."""
        return len(self._starts)

    @overload
    def __getitem__(self, index: int) -> MappedRange: ...

    @overload
    def __getitem__(self, index: slice) -> MappedRanges: ...

    def __getitem__(self, index: int | slice) -> MappedRange | MappedRanges:
        """A range, or the ranges of a slice."""
        if isinstance(index, slice):
            return MappedRanges(self._starts[index], self._sizes[index], self._keys[index], self._split)
        position = range(len(self))[index]  # negative indices, and IndexError beyond the end
        return self._range(int(self._starts[position]), int(self._sizes[position]), int(self._keys[position]))

    def __iter__(self) -> Iterator[MappedRange]:
        """Every range in vaddr order."""
        for start, size, key in zip(self._starts.tolist(), self._sizes.tolist(), self._keys.tolist(), strict=True):
            yield self._range(start, size, key)

    def __eq__(self, other: object) -> bool:
        """Equal to a tuple of the same ranges, or to another MappedRanges holding them."""
        if isinstance(other, MappedRanges):
            return len(self) == len(other) and (not len(self) or (
                self._split == other._split and bool(np.array_equal(self._starts, other._starts))
                and bool(np.array_equal(self._sizes, other._sizes)) and bool(np.array_equal(self._keys, other._keys))))
        if isinstance(other, tuple):
            return len(self) == len(other) and tuple(self) == other
        return NotImplemented

    def __hash__(self) -> int:
        """That of the equal tuple."""
        return hash(tuple(self))

    def __repr__(self) -> str:
        """That of the equal tuple."""
        return repr(tuple(self))


def mappings(found: Leaves, *, split_on_execute: bool = False) -> MappedRanges:
    """Coalesce leaves into ranges with QEMU's `info mem` rule.

    Neighbouring pages merge when the second starts where the first ends and both have the same
    effective U/S and R/W. QEMU also merges across the non-canonical hole (its addresses are not
    yet sign-extended when it compares them); these ranges never do: `parse_info_mem` splits
    such a QEMU line in two, so `parse_info_mem(format_info_mem(...)) == mappings(leaves(...))`.

    Args:
        found: the result of `leaves()`.
        split_on_execute: also require equal execute rights, so each range says whether it is
            executable (QEMU's `info mem` does not).
    """
    vaddr = found.vaddrs
    end = vaddr + found.sizes  # 0 after the last page of the address space, never a next vaddr
    keys = found.rights & np.uint8(RIGHTS_USER | RIGHTS_WRITABLE | (RIGHTS_NO_EXECUTE if split_on_execute else 0))
    starts_range = np.ones(len(vaddr), np.bool_)
    starts_range[1:] = (vaddr[1:] != end[:-1]) | (keys[1:] != keys[:-1])
    first = np.flatnonzero(starts_range)
    last = np.empty_like(first)
    last[:-1] = first[1:] - 1
    last[-1:] = len(vaddr) - 1
    starts = vaddr[first]
    sizes = end[last]
    sizes -= starts
    return MappedRanges(starts, sizes, keys[first], split_on_execute)


def format_mappings(ranges: Iterable[MappedRange]) -> str:
    """A table of ranges: start, end, size and rights (`u`, `r`, `w`, `x`)."""
    lines = [f"{'vaddr':<18}  {'end':<18}  {'size':>10}  rights"]
    for r in ranges:
        lines.append(f"{r.vaddr:#018x}  {r.end:#018x}  {size_text(r.size):>10}  {r.permissions_text}")
    return "\n".join(lines)


