"""The guest's one address space, labelled: what each mapped range is, and what lies between.

Pure: it takes the leaves of a page-table walk and, optionally, the image (ELF sections and
symbols) and names every range: image sections, stacks and their guard pages, the heap, the
direct map, unlabelled mappings, unmapped gaps and the non-canonical hole. It also audits
the mappings: no page both writable and executable (W^X), and every image section mapped
with the permissions its ELF flags ask for.
"""

from __future__ import annotations

import bisect
import html
from dataclasses import dataclass

from .image import Image
from .paging import Leaves, size_text

PAGE_SIZE = 4096
LOWER_HALF_END = 0x0000_8000_0000_0000  # first non-canonical vaddr with 4-level paging
UPPER_HALF_START = 0xFFFF_8000_0000_0000
ADDRESS_SPACE_END = 1 << 64

# Absolute symbols the unikernel's linker script defines for the bases in memory_layout.h.
LAYOUT_SYMBOLS = {"__direct_map_base": ("direct-map", "direct map of all RAM"),
                  "__heap_base": ("heap", "heap")}
# The ring-3 region of the classic path (kernel/syscall.c): one page each, mapped on first use.
USER_PAGE_SYMBOLS = {"__user_code_base": ("user", "ring-3 program (a copy of user_program_start)"),
                     "__user_stack_base": ("stack", "ring-3 stack")}


@dataclass(frozen=True)
class Region:
    """A stretch of the address space with one meaning and, if mapped, one permission."""

    start: int
    end: int
    kind: str  # section, stack, guard, heap, direct-map, user, other, unmapped, non-canonical
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
class AddressSpace:
    """Every region from vaddr 0 to the top of the address space, in order, without gaps."""

    regions: tuple[Region, ...]
    section_mismatches: tuple[str, ...] = ()

    @property
    def mapped(self) -> tuple[Region, ...]:
        return tuple(r for r in self.regions if r.mapped)

    def wx_violations(self) -> tuple[Region, ...]:
        """Regions that are both writable and executable: code that data could overwrite."""
        return tuple(r for r in self.regions if r.writable_and_executable)

    def region_at(self, vaddr: int) -> Region:
        starts = [r.start for r in self.regions]
        return self.regions[bisect.bisect_right(starts, vaddr) - 1]

    def audit(self) -> str:
        """The W^X and section-permission audit in words."""
        lines = []
        violations = self.wx_violations()
        if violations:
            lines += [f"W^X violated: {r.label} {r.start:#x}-{r.end:#x} is {r.permissions}" for r in violations]
        else:
            lines.append("W^X holds: no page is both writable and executable.")
        lines += list(self.section_mismatches) or ["Every image section is mapped as its ELF flags ask."]
        return "\n".join(lines)

    def __str__(self) -> str:
        rows = [f"{'start':>18}  {'end':>18}  {'size':>9}  {'perm':4}  {'pages':>14}  what"]
        for r in self.regions:
            pages = f"{r.pages} x {'/'.join(size_text(s) for s in r.page_sizes)}" if r.pages else ""
            rows.append(f"{r.start:#018x}  {r.end - 1:#018x}  {size_text(r.size):>9}  "
                        f"{r.permissions or '':4}  {pages:>14}  {r.label}")
        return "\n".join(rows)

    def __repr__(self) -> str:
        return f"<AddressSpace: {len(self.mapped)} mapped regions, {len(self.wx_violations())} W^X violations>"

    def _repr_html_(self) -> str:
        colours = {"r-x": "#fde2c8", "r--": "#dbeafe", "rw-": "#dcfce7"}
        rows = []
        for r in self.regions:
            colour = "#fecaca" if r.writable_and_executable else colours.get((r.permissions or "")[-3:], "#f3f4f6")
            pages = f"{r.pages} x {'/'.join(size_text(s) for s in r.page_sizes)}" if r.pages else ""
            rows.append(
                f"<tr style='background:{colour}'><td><code>{r.start:#018x}</code></td>"
                f"<td><code>{r.end - 1:#018x}</code></td><td style='text-align:right'>{size_text(r.size)}</td>"
                f"<td><code>{r.permissions or ''}</code></td><td>{pages}</td><td>{html.escape(r.label)}</td></tr>")
        return ("<table><tr><th>start</th><th>end</th><th>size</th><th>perm</th><th>pages</th><th>what</th></tr>"
                + "".join(rows) + f"</table><pre>{html.escape(self.audit())}</pre>")


def _labels(image: Image | None, ram_size: int) -> list[tuple[int, int, str, str]]:
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
            span = ram_size if kind == "direct-map" else 1 << 39  # one PML4 entry for the heap
            labels.append((base.vaddr, base.vaddr + span, kind, label))
    labels += [(s.vaddr, s.end, "section", f"image {s.name}") for s in image.sections]
    return labels


def build(found: Leaves, image: Image | None = None, *, ram_size: int = 0) -> AddressSpace:
    """Label every mapped page, group runs with equal label and permissions, fill the gaps."""
    labels = _labels(image, ram_size)

    def label_of(vaddr: int) -> tuple[str, str]:
        for start, end, kind, label in labels:
            if start <= vaddr < end:
                return kind, label
        return "other", "mapped, not described by the image"

    regions: list[Region] = []
    run: list[int] = []  # start, end, pages, sizes as a set encoded below
    sizes: set[int] = set()
    current: tuple[str, str, str] | None = None
    for leaf in found:
        perms = leaf.permissions
        text = ("u" if perms.user else "") + "r" + ("w" if perms.writable else "-") + (
            "x" if perms.executable else "-")
        kind, label = label_of(leaf.vaddr)
        key = (kind, label, text)
        if current == key and run and run[1] == leaf.vaddr:
            run[1] = leaf.end
            run[2] += 1
            sizes.add(leaf.size)
            continue
        if current is not None:
            regions.append(Region(run[0], run[1], current[0], current[1], current[2], tuple(sorted(sizes)), run[2]))
        current, run, sizes = key, [leaf.vaddr, leaf.end, 1], {leaf.size}
    if current is not None:
        regions.append(Region(run[0], run[1], current[0], current[1], current[2], tuple(sorted(sizes)), run[2]))

    return AddressSpace(tuple(_with_gaps(regions, image)), tuple(_section_mismatches(regions, image)))


def _with_gaps(mapped: list[Region], image: Image | None) -> list[Region]:
    """Insert the unmapped stretches, naming guard pages and the non-canonical hole."""
    out: list[Region] = []
    cursor = 0
    for region in [*mapped, Region(ADDRESS_SPACE_END, ADDRESS_SPACE_END, "end", "", None)]:
        out.extend(_gap(cursor, region.start, image))
        if region.kind != "end":
            out.append(region)
        cursor = region.end
    return out


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


def _section_mismatches(mapped: list[Region], image: Image | None) -> list[str]:
    """Image sections whose pages are mapped with other permissions than their ELF flags."""
    if image is None:
        return []
    problems = []
    for section in image.sections:
        wanted = section.permissions
        for region in mapped:
            overlaps = region.start < section.end and section.vaddr < region.end
            if overlaps and region.permissions is not None and region.permissions[-3:] != wanted:
                problems.append(f"{section.name} should be {wanted} but {region.start:#x}-{region.end:#x} "
                                f"is mapped {region.permissions}")
    return problems
