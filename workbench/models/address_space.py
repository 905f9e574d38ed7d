"""The guest's one address space, labelled: what each mapped range is, and what lies between.

Pure: it takes the leaves of a page-table walk and, optionally, the image (ELF sections and
symbols) and names every range: image sections, stacks and their guard pages, the heap, the
direct map, pages that map ROM or device registers (from the guest's physical map),
unlabelled mappings, unmapped gaps and the non-canonical hole. It also audits
the mappings: no page both writable and executable (W^X), and every image section mapped
with the permissions its ELF flags ask for.

Any guest, however garbled its tables: the regions are computed as numpy columns (a Linux guest
or a table full of garbage has hundreds of thousands) and made into `Region` objects only when
looked at. Text and HTML show at most `MAX_ROWS` rows; beyond that, runs of small regions
between the largest empty stretches are summarised as one row each ("N more regions: ...").
"""

from __future__ import annotations

import html
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np
import numpy.typing as npt

from workbench.kernel.image import Image
from workbench.models.paging import Leaves, size_text
from workbench.models.physmap import DEVICE, ROM, PhysicalMap

PAGE_SIZE = 4096
LOWER_HALF_END = 0x0000_8000_0000_0000  # first non-canonical vaddr with 4-level paging
UPPER_HALF_START = 0xFFFF_8000_0000_0000
ADDRESS_SPACE_END = 1 << 64
MAX_ROWS = 120  # rows of text or HTML before runs of regions are summarised

# Absolute symbols the unikernel's linker script defines for the bases in memory_layout.h.
LAYOUT_SYMBOLS = {"__direct_map_base": ("direct-map", "direct map of all RAM"),
                  "__heap_base": ("heap", "heap")}
# The ring-3 region of the classic path (kernel/syscall.c): one page each, mapped on first use.
USER_PAGE_SYMBOLS = {"__user_code_base": ("user", "ring-3 program (a copy of user_program_start)"),
                     "__user_stack_base": ("stack", "ring-3 stack")}

_OTHER = ("other", "mapped, not described by the image")
_UNMAPPED = -1  # in the rights column: not mapped
_SIZE_BITS = ((PAGE_SIZE, 1), (2 << 20, 2), (1 << 30, 4))  # page size and its bit in the sizes column


def permissions_text(rights: int) -> str | None:
    """`Leaves.rights` (bit 0 no-execute, bit 1 R/W, bit 2 U/S) as `rw-`, `r-x`, `urw-`...; None if -1."""
    if rights < 0:
        return None
    return ("u" if rights & 4 else "") + "r" + ("w" if rights & 2 else "-") + ("-" if rights & 1 else "x")


@dataclass(frozen=True)
class Region:
    """A stretch of the address space with one meaning and, if mapped, one permission."""

    start: int
    end: int
    kind: str  # section, stack, guard, heap, direct-map, user, device, rom, no-memory, other, unmapped, non-canonical
    label: str
    permissions: str | None  # "r-x", "rw-", "r--" (with "u" prefix if user) or None if unmapped
    page_sizes: tuple[int, ...] = ()
    pages: int = 0

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def mapped(self) -> bool:
        return self.permissions is not None

    @property
    def writable_and_executable(self) -> bool:
        return self.permissions is not None and "w" in self.permissions and "x" in self.permissions

    def to_json(self) -> dict[str, object]:
        """JSON-safe: addresses as hex strings (JavaScript numbers lose bits above 2**53)."""
        return {"start": f"{self.start:#018x}", "end": f"{self.end:#018x}", "size": size_text(self.size),
                "kind": self.kind, "label": self.label, "permissions": self.permissions,
                "page_sizes": [size_text(s) for s in self.page_sizes], "pages": self.pages}


@dataclass(frozen=True)
class Summary:
    """Many neighbouring regions shown as one row: how many, and what they map, by permission."""

    start: int
    end: int
    regions: int
    mapped_regions: int
    mapped: int  # bytes
    pages: int
    wx: int  # regions both writable and executable
    by_permission: tuple[tuple[str, int], ...]  # (permissions, bytes), most bytes first

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def label(self) -> str:
        return f"{self.regions:,} more regions: {size_text(self.mapped)} mapped in {self.mapped_regions:,}"

    @property
    def dominant(self) -> str | None:
        """The permissions that map the most bytes, or None if nothing is mapped."""
        return self.by_permission[0][0] if self.by_permission else None


@dataclass(frozen=True, eq=False)
class _Columns:
    """The regions as columns; region i covers starts[i] up to starts[i + 1] (the last up to 2**64)."""

    starts: npt.NDArray[np.uint64]
    names: npt.NDArray[np.int32]  # index into AddressSpace.names
    rights: npt.NDArray[np.int8]  # as Leaves.rights, or -1 when unmapped
    pages: npt.NDArray[np.int64]
    sizes: npt.NDArray[np.uint8]  # page sizes present, bits as in _SIZE_BITS


class Regions(Sequence[Region]):
    """Some of an AddressSpace's regions, in order, each made into a `Region` when looked at.

    Compares equal to a tuple of the same regions.
    """

    __slots__ = ("_indices", "_space")

    def __init__(self, space: AddressSpace, indices: npt.NDArray[np.int64]) -> None:
        self._space = space
        self._indices = indices

    def __len__(self) -> int:
        return len(self._indices)

    @overload
    def __getitem__(self, index: int) -> Region: ...

    @overload
    def __getitem__(self, index: slice) -> Regions: ...

    def __getitem__(self, index: int | slice) -> Region | Regions:
        if isinstance(index, slice):
            return Regions(self._space, self._indices[index])
        position = range(len(self))[index]  # negative indices, and IndexError beyond the end
        return self._space.region(int(self._indices[position]))

    def __iter__(self) -> Iterator[Region]:
        for i in self._indices.tolist():
            yield self._space.region(i)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Regions | tuple):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"<Regions: {len(self)}>"


class AddressSpace:
    """Every region from vaddr 0 to the top of the address space, in order, without gaps.

    Attributes:
        names: the (kind, label) pairs the regions use.
        section_mismatches: image sections mapped with other permissions than their ELF flags.
    """

    def __init__(self, columns: _Columns, names: Sequence[tuple[str, str]],
                 section_mismatches: tuple[str, ...] = ()) -> None:
        self.columns = columns
        self.names = tuple(names)
        self.section_mismatches = section_mismatches
        self._sizes: npt.NDArray[np.float64] | None = None

    # The columns, and regions made from them.

    def __len__(self) -> int:
        return len(self.columns.starts)

    def end_of(self, index: int) -> int:
        return int(self.columns.starts[index + 1]) if index + 1 < len(self) else ADDRESS_SPACE_END

    def region(self, index: int) -> Region:
        """Region number `index` (0 is the one at vaddr 0)."""
        c = self.columns
        kind, label = self.names[int(c.names[index])]
        bits = int(c.sizes[index])
        return Region(int(c.starts[index]), self.end_of(index), kind, label, permissions_text(int(c.rights[index])),
                      tuple(size for size, bit in _SIZE_BITS if bits & bit), int(c.pages[index]))

    def sizes(self) -> npt.NDArray[np.float64]:
        """Bytes of each region, as floats (a region can span 2**64 - 2**47 bytes); computed once."""
        if self._sizes is None:
            self._sizes = np.diff(self.columns.starts.astype(np.float64), append=float(ADDRESS_SPACE_END))
        return self._sizes

    @property
    def regions(self) -> Regions:
        return Regions(self, np.arange(len(self), dtype=np.int64))

    @property
    def mapped(self) -> Regions:
        return Regions(self, np.flatnonzero(self.columns.rights >= 0))

    def mapped_bytes(self) -> int:
        """Bytes mapped in all."""
        starts = self.columns.starts
        sizes = np.diff(starts, append=np.uint64(0))  # the last wraps round to 2**64 - start
        return int(np.sum(sizes[self.columns.rights >= 0], dtype=np.uint64))

    def wx_violations(self) -> Regions:
        """Regions that are both writable and executable: code that data could overwrite."""
        rights = self.columns.rights
        return Regions(self, np.flatnonzero((rights >= 0) & ((rights & 3) == 2)))

    def region_at(self, vaddr: int) -> Region:
        index = int(np.searchsorted(self.columns.starts, np.uint64(vaddr), side="right")) - 1
        return self.region(index)

    # Words, capped.

    def audit(self, limit: int = 20) -> str:
        """The W^X and section-permission audit in words (at most `limit` lines of each)."""
        lines = []
        violations = self.wx_violations()
        if len(violations):
            lines += [f"W^X violated: {r.label} {r.start:#x}-{r.end:#x} is {r.permissions}"
                      for r in violations[:limit]]
            if len(violations) > limit:
                lines.append(f"... and {len(violations) - limit:,} more W^X violations")
        else:
            lines.append("W^X holds: no page is both writable and executable.")
        mismatches = self.section_mismatches
        lines += list(mismatches[:limit]) or ["Every image section is mapped as its ELF flags ask."]
        if len(mismatches) > limit:
            lines.append(f"... and {len(mismatches) - limit:,} more section mismatches")
        return "\n".join(lines)

    def summarised(self, start: int = 0, end: int = ADDRESS_SPACE_END,
                   limit: int = MAX_ROWS) -> list[Region | Summary]:
        """The regions overlapping start..end (clipped to it), at most `limit` rows.

        When there are more, the largest empty stretches (the non-canonical hole first) stay
        as rows and separate the rest into runs, each run summarised as one `Summary`.
        """
        c = self.columns
        first = max(0, int(np.searchsorted(c.starts, np.uint64(min(start, ADDRESS_SPACE_END - 1)),
                                           side="right")) - 1)
        last = len(self) if end >= ADDRESS_SPACE_END else int(np.searchsorted(c.starts, np.uint64(end), side="left"))
        count = last - first
        if count <= limit:
            return [self._clipped(i, start, end) for i in range(first, last)]
        names = c.names[first:last]
        sizes = self.sizes()[first:last]
        kinds = [kind for kind, _ in self.names]
        guards = np.array([i for i, kind in enumerate(kinds) if kind == "guard"], np.int32)
        holes = np.array([i for i, kind in enumerate(kinds) if kind == "non-canonical"], np.int32)
        candidates = np.flatnonzero((c.rights[first:last] < 0) & ~np.isin(names, guards))
        hole = np.isin(names[candidates], holes)
        order = np.lexsort((candidates, -sizes[candidates], ~hole))
        separators = np.sort(candidates[order[: (limit - 1) // 2]]).tolist()
        out: list[Region | Summary] = []
        previous = 0
        for index in [*separators, count]:
            if index - previous == 1:
                out.append(self._clipped(first + previous, start, end))
            elif index > previous:
                out.append(self._summary(first + previous, first + index, start, end))
            if index < count:
                out.append(self._clipped(first + index, start, end))
            previous = index + 1
        return out

    def _clipped(self, index: int, start: int, end: int) -> Region:
        region = self.region(index)
        if region.start >= start and region.end <= end:
            return region
        low, high = max(region.start, start), min(region.end, end)
        pages = max(1, round(region.pages * (high - low) / region.size)) if region.pages else 0
        return Region(low, high, region.kind, region.label, region.permissions, region.page_sizes, pages)

    def _summary(self, first: int, last: int, start: int, end: int) -> Summary:
        c = self.columns
        rights = c.rights[first:last]
        sizes = self.sizes()[first:last] if last - first > 64 else np.array(
            [self.end_of(i) - int(c.starts[i]) for i in range(first, last)], np.float64)
        low, high = max(int(c.starts[first]), start), min(self.end_of(last - 1), end)
        mapped = rights >= 0
        by_permission = []
        for value in np.unique(rights[mapped]).tolist():
            text = permissions_text(value)
            assert text is not None
            by_permission.append((text, int(np.sum(sizes[rights == value]))))
        merged: dict[str, int] = {}
        for text, size in by_permission:
            merged[text] = merged.get(text, 0) + size
        return Summary(low, high, last - first, int(np.count_nonzero(mapped)),
                       min(int(np.sum(sizes[mapped])), high - low), int(np.sum(c.pages[first:last])),
                       int(np.count_nonzero(mapped & ((rights & 3) == 2))),
                       tuple(sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))))

    def __str__(self) -> str:
        rows = [f"{'start':>18}  {'end':>18}  {'size':>9}  {'perm':4}  {'pages':>14}  what"]
        for r in self.summarised():
            if isinstance(r, Summary):
                perms = ", ".join(f"{p} {size_text(s)}" for p, s in r.by_permission[:4])
                rows.append(f"{r.start:#018x}  {r.end - 1:#018x}  {size_text(r.size):>9}  {'':4}  "
                            f"{r.pages:>14,}  {r.label}" + (f" ({perms})" if perms else ""))
                continue
            pages = f"{r.pages} x {'/'.join(size_text(s) for s in r.page_sizes)}" if r.pages else ""
            rows.append(f"{r.start:#018x}  {r.end - 1:#018x}  {size_text(r.size):>9}  "
                        f"{r.permissions or '':4}  {pages:>14}  {r.label}")
        return "\n".join(rows)

    def __repr__(self) -> str:
        return f"<AddressSpace: {len(self.mapped)} mapped regions, {len(self.wx_violations())} W^X violations>"

    def _repr_html_(self) -> str:
        colours = {"r-x": "#fde2c8", "r--": "#dbeafe", "rw-": "#dcfce7"}
        rows = []
        for r in self.summarised():
            if isinstance(r, Summary):
                perms = ", ".join(f"{p} {size_text(s)}" for p, s in r.by_permission[:4])
                rows.append(
                    f"<tr style='background:#e5e7eb'><td><code>{r.start:#018x}</code></td>"
                    f"<td><code>{r.end - 1:#018x}</code></td><td style='text-align:right'>{size_text(r.size)}</td>"
                    f"<td></td><td>{r.pages:,}</td><td><i>{html.escape(r.label)}</i>"
                    f"{html.escape(f' ({perms})' if perms else '')}</td></tr>")
                continue
            colour = "#fecaca" if r.writable_and_executable else colours.get((r.permissions or "")[-3:], "#f3f4f6")
            pages = f"{r.pages} x {'/'.join(size_text(s) for s in r.page_sizes)}" if r.pages else ""
            rows.append(
                f"<tr style='background:{colour}'><td><code>{r.start:#018x}</code></td>"
                f"<td><code>{r.end - 1:#018x}</code></td><td style='text-align:right'>{size_text(r.size)}</td>"
                f"<td><code>{r.permissions or ''}</code></td><td>{pages}</td><td>{html.escape(r.label)}</td></tr>")
        return ("<table><tr><th>start</th><th>end</th><th>size</th><th>perm</th><th>pages</th><th>what</th></tr>"
                + "".join(rows) + f"</table><pre>{html.escape(self.audit())}</pre>")


def _labels(image: Image | None, ram_end: int) -> list[tuple[int, int, str, str]]:
    """(start, end, kind, label) of what the image says is where, most specific first."""
    if image is None:
        return []
    labels = []
    for name, symbol in sorted(image.symbols.items()):
        if "stack" in name and symbol.kind == "object" and symbol.size:
            labels.append((symbol.vaddr, symbol.vaddr + symbol.size, "stack", name.replace("_", " ")))
    bottom, top = image.symbols.get("boot_stack_bottom"), image.symbols.get("boot_stack_top")
    if bottom and top:
        labels.append((bottom.vaddr, top.vaddr, "stack", "boot stack"))
    for name, (kind, label) in USER_PAGE_SYMBOLS.items():
        base = image.symbols.get(name)
        if base is not None:
            labels.append((base.vaddr, base.vaddr + PAGE_SIZE, kind, label))
    for name, (kind, label) in LAYOUT_SYMBOLS.items():
        base = image.symbols.get(name)
        if base is not None:
            span = ram_end if kind == "direct-map" else 1 << 39  # one PML4 entry for the heap
            labels.append((base.vaddr, base.vaddr + span, kind, label))
    labels += [(s.vaddr, s.end, "section", f"image {s.name}") for s in image.sections]
    return labels


def _label_frames_outside_ram(found: Leaves, physical_map: PhysicalMap, label_ids: npt.NDArray[np.int64],
                              other: int, names: _Names) -> None:
    """Give pages labelled `other` whose frame starts in ROM, in device registers or where
    there is no memory a label saying so."""
    unlabelled = np.flatnonzero(label_ids == other)
    if not len(unlabelled):
        return
    frames = found.paddrs[unlabelled]
    starts = np.array([region.start for region in physical_map], np.uint64)
    ends = np.array([region.end for region in physical_map], np.uint64)
    at = np.searchsorted(starts, frames, side="right").astype(np.int64) - 1
    inside = (at >= 0) & (frames < ends[np.maximum(at, 0)])
    label_ids[unlabelled[~inside]] = names("no-memory", "mapped where the guest has no memory")
    for index, region in enumerate(physical_map):
        if region.kind in (DEVICE, ROM):
            label = f"device registers ({region.name})" if region.kind == DEVICE else f"ROM ({region.name})"
            label_ids[unlabelled[inside & (at == index)]] = names("device" if region.kind == DEVICE else "rom", label)


class _Names:
    def __init__(self) -> None:
        self.pairs: list[tuple[str, str]] = []
        self._ids: dict[tuple[str, str], int] = {}

    def __call__(self, kind: str, label: str) -> int:
        key = (kind, label)
        if key not in self._ids:
            self._ids[key] = len(self.pairs)
            self.pairs.append(key)
        return self._ids[key]


def _in_range(vaddrs: npt.NDArray[np.uint64], start: int, end: int) -> npt.NDArray[np.bool_]:
    above = vaddrs >= np.uint64(min(start, ADDRESS_SPACE_END - 1))
    if start >= ADDRESS_SPACE_END:
        return np.zeros(len(vaddrs), np.bool_)
    return above if end >= ADDRESS_SPACE_END else above & (vaddrs < np.uint64(end))


def build(found: Leaves, image: Image | None = None, *, physical_map: PhysicalMap | None = None) -> AddressSpace:
    """Label every mapped page, group runs with equal label and permissions, fill the gaps.

    `physical_map` (the snapshot's: where RAM, ROM and devices are) sets how far the direct map
    reaches and names pages the image does not describe that map ROM, device registers or
    paddrs where the guest has no memory.
    """
    names = _Names()
    other = names(*_OTHER)
    vaddrs, page_sizes = found.vaddrs, found.sizes
    rights = found.rights.astype(np.int64)
    label_ids = np.full(len(vaddrs), other, np.int64)
    for start, end, kind, label in reversed(_labels(image, physical_map.ram_end if physical_map else 0)):
        label_ids[_in_range(vaddrs, start, end)] = names(kind, label)  # the most specific written last
    if physical_map is not None:
        _label_frames_outside_ram(found, physical_map, label_ids, other, names)

    # Runs of pages that follow each other with the same label and rights: the mapped regions.
    ends = vaddrs + page_sizes  # 0 after the last page of the address space
    keys = label_ids * 8 + rights
    new_run = np.ones(len(vaddrs), np.bool_)
    new_run[1:] = (vaddrs[1:] != ends[:-1]) | (keys[1:] != keys[:-1])
    first = np.flatnonzero(new_run)
    last = np.append(first[1:] - 1, len(vaddrs) - 1).astype(np.int64) if len(first) else first
    size_bits = np.zeros(len(vaddrs), np.uint8)
    for size, bit in _SIZE_BITS:
        size_bits[page_sizes == size] = bit
    run_starts = vaddrs[first]
    run_ends = ends[last]
    mapped = _Columns(run_starts, label_ids[first].astype(np.int32), rights[first].astype(np.int8),
                      (last - first + 1).astype(np.int64),
                      np.bitwise_or.reduceat(size_bits, first) if len(first) else size_bits)

    # The gaps: wherever a run does not start where the previous one ended. The last gap, after
    # the last run, ends at 2**64, which no uint64 holds: it is added as a Python int.
    gap_starts = np.concatenate((np.zeros(1, np.uint64), run_ends[:-1])) if len(first) else np.zeros(0, np.uint64)
    inner = np.flatnonzero(gap_starts != run_starts)
    starts_of_gaps, ends_of_gaps = gap_starts[inner], run_starts[inner]
    tail = int(run_ends[-1]) if len(first) else 0
    plain = names("unmapped", "unmapped")
    gap_names = np.full(len(inner), plain, np.int32)
    special = _special_gaps(starts_of_gaps, ends_of_gaps, image)
    pieces: list[Region] = []
    for index in special.tolist():
        pieces += _gap(int(starts_of_gaps[index]), int(ends_of_gaps[index]), image)
    if not (len(first) and tail == 0):  # a run ending at 2**64 wraps to 0 and leaves no tail gap
        pieces += _gap(tail, ADDRESS_SPACE_END, image)
    keep = np.ones(len(inner), np.bool_)
    keep[special] = False
    extra = len(pieces)
    starts = np.concatenate((mapped.starts, starts_of_gaps[keep], np.array([p.start for p in pieces], np.uint64)))
    order = np.argsort(starts, kind="stable")
    count = int(np.count_nonzero(keep)) + extra
    columns = _Columns(
        starts[order],
        np.concatenate((mapped.names, gap_names[keep],
                        np.array([names(p.kind, p.label) for p in pieces], np.int32)))[order],
        np.concatenate((mapped.rights, np.full(count, _UNMAPPED, np.int8)))[order],
        np.concatenate((mapped.pages, np.zeros(count, np.int64)))[order],
        np.concatenate((mapped.sizes, np.zeros(count, np.uint8)))[order])
    space = AddressSpace(columns, names.pairs)
    space.section_mismatches = tuple(_section_mismatches(space, image))
    return space


def _special_gaps(starts: npt.NDArray[np.uint64], ends: npt.NDArray[np.uint64],
                  image: Image | None) -> npt.NDArray[np.int64]:
    """Indices of the gaps that are not plainly `unmapped`: at 0, in or across the hole, or in the image."""
    lower, upper = np.uint64(LOWER_HALF_END), np.uint64(UPPER_HALF_START)
    special = (starts == 0) | (ends > lower) & (starts < upper)
    for section in image.sections if image is not None else ():
        special |= _in_range(starts, section.vaddr, section.end)
    return np.flatnonzero(special)


def _gap(start: int, end: int, image: Image | None) -> list[Region]:
    if start >= end:
        return []
    if start < LOWER_HALF_END < end or start < UPPER_HALF_START < end or start >= LOWER_HALF_END:
        pieces = []
        if start < LOWER_HALF_END:
            pieces += _gap(start, LOWER_HALF_END, image)
        hole_start, hole_end = max(start, LOWER_HALF_END), min(end, UPPER_HALF_START)
        if hole_start < hole_end:
            pieces.append(Region(hole_start, hole_end, "non-canonical",
                                 "non-canonical hole: any access is a #GP", None))
        if end > UPPER_HALF_START and max(start, UPPER_HALF_START) < end:
            pieces += _unmapped(max(start, UPPER_HALF_START), end, image)
        return pieces
    return _unmapped(start, end, image)


def _unmapped(start: int, end: int, image: Image | None) -> list[Region]:
    """An unmapped stretch; inside the image it is a guard page, named after its symbol."""
    section = image.section_at(start) if image is not None else None
    if image is None or section is None:
        label = "null page and lower half: unmapped" if start == 0 else "unmapped"
        return [Region(start, end, "unmapped", label, None)]
    exact = [s.name for s in image.symbols.values() if s.vaddr == start and not s.name.startswith(".")]
    symbol = image.symbolize(start)
    owner = min(exact) if exact else symbol.split("+")[0] if not symbol.startswith("0x") else section.name
    return [Region(start, end, "guard", f"guard page ({owner}): unmapped so an overflow faults", None)]


def _section_mismatches(space: AddressSpace, image: Image | None) -> list[str]:
    """Image sections whose pages are mapped with other permissions than their ELF flags."""
    if image is None:
        return []
    problems = []
    c = space.columns
    for section in image.sections:
        wanted = section.permissions
        first = max(0, int(np.searchsorted(c.starts, np.uint64(section.vaddr), side="right")) - 1)
        last = int(np.searchsorted(c.starts, np.uint64(min(section.end, ADDRESS_SPACE_END - 1)), side="left"))
        for index in range(first, max(first, last)):
            region = space.region(index)
            overlaps = region.start < section.end and section.vaddr < region.end
            if overlaps and region.permissions is not None and region.permissions[-3:] != wanted:
                problems.append(f"{section.name} should be {wanted} but {region.start:#x}-{region.end:#x} "
                                f"is mapped {region.permissions}")
    return problems
