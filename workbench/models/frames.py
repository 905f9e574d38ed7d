"""Every physical frame of a guest: who owns it, who maps it, and what is wrong with it.

WeensyOS's and Chickadee's memory viewer, from the outside: one entry per 4 KiB frame from
paddr 0 to the end of RAM (rounded up to 2 MiB), classified from the snapshot's page tables,
QEMU's physical map and, when there is one, the image's symbols. Pure: `classify` takes a
`Snapshot`, an optional `Image` and the frame allocator's state as `read_allocator` found it.

What needs no symbols, and so works for any guest (the stock Linux guest of lesson 09 too):
page-table pages by level, RAM that is mapped outside the direct map, RAM reached only through
the direct map, unmapped RAM, ROM, device memory and holes; and for each frame how many
mappings reach it and with which rights. With the unikernel's image: the image's sections,
its stacks, low memory (firmware data), heap pages, ring-3 pages, and the frame allocator's
frames, handed out and free, read from its own variables (`next_frame`, `frames_end`).

The direct map. A kernel maps all of RAM once more at a fixed offset, read-write: Linux
(`page_offset_base`) and this unikernel (`DIRECT_MAP_BASE`) alike. So every RAM frame has a
second mapping by design, and a page-table page, or the kernel's text, is writable through it.
Here the direct map is found from the tables, not assumed: it is the vaddr - paddr offset that
maps the most bytes of RAM, when that is at least half of RAM. "The kernel maps a frame once"
then means: once outside the direct map. The errors below count only the other mappings; each
frame's list of mappings still shows its direct-map alias.

The errors, each in the lesson's words with the walks that show it:
    FREE_AND_MAPPED  the allocator holds the frame as free, yet a page maps it (needs symbols)
    MAPPED_TWICE     two pages outside the direct map reach the frame (the unikernel maps a
                     frame once; checked only with the unikernel's image: Linux shares frames)
    TABLE_REACHABLE  a page-table page is reachable from ring 3 at all, or (with the unikernel's
                     image, which writes its tables through the direct map only) writable through
                     a mapping outside the direct map: whoever writes there rewrites the tables.
                     Linux also writes its first tables through its image's own mapping.
    WX_ALIAS         one mapping may execute the frame and another may write it: W^X broken by
                     aliasing (outside the direct map)
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from workbench.errors import WorkbenchError
from workbench.kernel.image import Image, SymbolNotFound
from workbench.models import paging
from workbench.models.paging import PhysicalMemory
from workbench.models.physmap import DEVICE, RAM, ROM, PhysicalMap, PhysicalRegion
from workbench.models.snapshot import Snapshot

FRAME = 4096
LARGE_PAGE = 2 << 20
MAX_WALKED_ERRORS = 200  # errors beyond these keep their vaddrs, not their walks
_Counts = npt.NDArray[np.int32]


class FrameMapError(WorkbenchError):
    """A frame map was asked about something it does not hold."""


class Owner(enum.IntEnum):
    """Who a frame belongs to; the order is the view's legend order."""

    HOLE = 0
    DEVICE = 1
    ROM = 2
    FIRMWARE = 3
    TEXT = 4
    RODATA = 5
    DATA = 6
    BSS = 7
    STACK = 8
    IMAGE = 9
    PML4 = 10
    PDPT = 11
    PD = 12
    PT = 13
    HEAP = 14
    USER = 15
    ALLOCATED = 16
    FREE = 17
    MAPPED = 18
    DIRECT_ONLY = 19
    UNMAPPED = 20

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    Owner.HOLE: "no memory (a hole)", Owner.DEVICE: "device memory", Owner.ROM: "ROM (firmware)",
    Owner.FIRMWARE: "low memory (firmware data)", Owner.TEXT: "kernel .text", Owner.RODATA: "kernel .rodata",
    Owner.DATA: "kernel .data", Owner.BSS: "kernel .bss", Owner.STACK: "a kernel stack",
    Owner.IMAGE: "kernel image (other sections)", Owner.PML4: "page table: PML4", Owner.PDPT: "page table: PDPT",
    Owner.PD: "page table: PD", Owner.PT: "page table: PT", Owner.HEAP: "heap page", Owner.USER: "ring-3 page",
    Owner.ALLOCATED: "handed out by the frame allocator", Owner.FREE: "free in the frame allocator",
    Owner.MAPPED: "RAM, mapped outside the direct map", Owner.DIRECT_ONLY: "RAM, only in the direct map",
    Owner.UNMAPPED: "RAM, not mapped",
}
_TABLE_OWNERS = {5: Owner.PML4, 4: Owner.PML4, 3: Owner.PDPT, 2: Owner.PD, 1: Owner.PT}
_SECTION_OWNERS = {".text": Owner.TEXT, ".rodata": Owner.RODATA, ".data": Owner.DATA, ".bss": Owner.BSS}
_STACK_SYMBOLS = (("boot_stack_bottom", "boot_stack_top"),)
_SIZED_STACKS = ("interrupt_stacks", "syscall_stack", "cpu_stacks")
# The owners a heap page or a ring-3 page takes a frame from
_GIVEN_AWAY = np.array([Owner.ALLOCATED, Owner.DIRECT_ONLY, Owner.MAPPED, Owner.UNMAPPED], np.uint8)


class ErrorKind(enum.Enum):
    FREE_AND_MAPPED = "free and mapped"
    MAPPED_TWICE = "mapped twice"
    TABLE_REACHABLE = "page table reachable"
    WX_ALIAS = "W^X broken by aliasing"


@dataclass(frozen=True)
class AllocatorState:
    """The frame allocator's own view: frames in [next_frame, frames_end) are free."""

    next_frame: int
    frames_end: int
    first_frame: int  # the first frame it ever handed out: the end of the image
    ring3_cr3: int = 0  # user_pml4_paddr (kernel/syscall.c): ring 3's own PML4, once made

    @property
    def free(self) -> tuple[int, int]:
        return self.next_frame, max(self.next_frame, self.frames_end)


def read_allocator(memory: PhysicalMemory, image: Image) -> AllocatorState | None:
    """The allocator's variables, read from guest memory by symbol; None for an image without them.

    Read while the guest is paused, with the snapshot, so that both tell of the same instant.
    """
    try:
        next_frame, frames_end = (image.symbol(name) for name in ("next_frame", "frames_end"))
        kernel_end = image.symbol("__kernel_end").vaddr
    except SymbolNotFound:
        return None
    symbols = [next_frame, frames_end]
    if "user_pml4_paddr" in image.symbols:
        symbols.append(image.symbols["user_pml4_paddr"])
    values = []
    for symbol in symbols:
        paddr = image.paddr_of(symbol.vaddr)
        if paddr is None:
            raise FrameMapError(f"{symbol.name} at {symbol.vaddr:#x} is not loaded by the image, so it cannot be read")
        values.append(int.from_bytes(memory.read(paddr, 8), "little"))
    first = image.paddr_of(kernel_end - 1)
    ring3 = values[2] & ~(FRAME - 1) if len(values) > 2 else 0
    return AllocatorState(values[0], values[1], (first + 1) if first is not None else values[0], ring3)


@dataclass(frozen=True)
class FrameMapping:
    """One page that reaches a frame: the vaddr of the frame's first byte there, and its rights."""

    vaddr: int
    page_size: int
    permissions: paging.Permissions
    direct: bool  # through the direct map

    def __str__(self) -> str:
        where = " (direct map)" if self.direct else ""
        return f"{self.vaddr:#018x} {self.permissions} {paging.size_text(self.page_size)} page{where}"


@dataclass(frozen=True)
class FrameError:
    """Something wrong with one frame, explained, with the walks that show it."""

    kind: ErrorKind
    paddr: int
    message: str
    vaddrs: tuple[int, ...]
    walks: tuple[paging.Walk, ...] = field(default=(), repr=False, compare=False)

    def explain(self) -> str:
        """The message and each walk, for a student."""
        return "\n\n".join([self.message, *(paging.format_walk(walk) for walk in self.walks)])


@dataclass(frozen=True)
class FrameInfo:
    """All the map knows of one frame."""

    paddr: int
    owner: Owner
    region: PhysicalRegion | None
    mappings: tuple[FrameMapping, ...]
    errors: tuple[FrameError, ...]
    table_root: str = ""  # for a page-table page: which CR3 reaches it


@dataclass(frozen=True, eq=False)
class FrameMap:
    """Every frame from paddr 0 to `frame_count * 4096`: owner, mappings and rights, errors.

    Per-frame arrays (read-only): `owners` (Owner values), `mapped` (pages reaching the frame,
    direct map included), `mapped_outside` (outside the direct map), and, outside the direct
    map, `writable`, `executable` and `user` (pages with that right). `beyond` lists the
    physical map's regions above the frames (device registers high up), not classified.
    """

    snapshot: Snapshot = field(repr=False)
    owners: npt.NDArray[np.uint8] = field(repr=False)
    mapped: _Counts = field(repr=False)
    mapped_outside: _Counts = field(repr=False)
    writable: _Counts = field(repr=False)
    executable: _Counts = field(repr=False)
    user: _Counts = field(repr=False)
    errors: tuple[FrameError, ...]
    direct_map_offset: int | None
    allocator: AllocatorState | None
    beyond: tuple[PhysicalRegion, ...] = ()
    table_roots: dict[int, str] = field(default_factory=dict, repr=False)
    with_symbols: bool = False

    @property
    def frame_count(self) -> int:
        return len(self.owners)

    @property
    def physical_map(self) -> PhysicalMap:
        return self.snapshot.physical_map

    def owner_counts(self) -> dict[Owner, int]:
        """How many frames each owner has (owners with none left out)."""
        counts = np.bincount(self.owners, minlength=len(Owner))
        return {owner: int(counts[owner]) for owner in Owner if counts[owner]}

    def errors_at(self, paddr: int) -> tuple[FrameError, ...]:
        frame = paddr // FRAME * FRAME
        return tuple(error for error in self.errors if error.paddr == frame)

    def mappings_of(self, paddr: int) -> tuple[FrameMapping, ...]:
        """Every page reaching the frame of `paddr`, in vaddr order, with its rights."""
        return _mappings_of(self.snapshot.leaves, paddr // FRAME * FRAME, self.direct_map_offset)

    def frame(self, paddr: int) -> FrameInfo:
        """The frame holding `paddr`: owner, region, every mapping, its errors."""
        if not isinstance(paddr, int) or not 0 <= paddr < self.frame_count * FRAME:
            raise FrameMapError(f"paddr {paddr!r} is outside the frames of this map (0 to "
                                f"{self.frame_count * FRAME:#x}); the regions above are in `beyond`")
        number = paddr // FRAME
        return FrameInfo(number * FRAME, Owner(int(self.owners[number])), self.physical_map.region_at(number * FRAME),
                         self.mappings_of(paddr), self.errors_at(paddr), self.table_roots.get(number * FRAME, ""))

    def first_bytes(self, memory: PhysicalMemory, paddr: int, length: int = 64) -> bytes | None:
        """The frame's first bytes, read as the guest reads them; None for device memory and holes."""
        frame = paddr // FRAME * FRAME
        place, _region = self.physical_map.page_place(frame)
        if place in ("device", "none"):
            return None
        return memory.read(frame, length)

    def changed_owners(self, later: FrameMap) -> npt.NDArray[np.intp]:
        """Frame numbers whose owner differs in `later` (frames only one map has count as changed)."""
        common = min(self.frame_count, later.frame_count)
        changed = np.flatnonzero(self.owners[:common] != later.owners[:common])
        extra = np.arange(common, max(self.frame_count, later.frame_count))
        return np.concatenate([changed, extra])

    def __repr__(self) -> str:
        return (f"<FrameMap: {self.frame_count} frames, {len(self.errors)} errors, "
                f"cr3={self.snapshot.registers.cr3:#x}>")


def classify(snapshot: Snapshot, image: Image | None = None, allocator: AllocatorState | None = None) -> FrameMap:
    """Every frame of the snapshot's guest, classified. `image` is the unikernel's (None for any
    other guest); `allocator` is `read_allocator`'s answer, read at the snapshot's instant."""
    if not isinstance(snapshot, Snapshot):
        raise FrameMapError(f"classify takes a Snapshot (machine.snapshot()), not {type(snapshot).__name__}")
    if image is not None and not isinstance(image, Image):
        raise FrameMapError(f"the image is an Image (ws.build()) or None, not {type(image).__name__}")
    leaves = snapshot.leaves
    physical_map = snapshot.physical_map
    count = -(-max(physical_map.ram_end, FRAME) // LARGE_PAGE) * LARGE_PAGE // FRAME
    direct = _direct_map_offset(leaves, physical_map)
    counts = _Rights.count(leaves, count, direct)
    owners = _physical_owners(physical_map, count)
    ram = owners == Owner.UNMAPPED
    owners[ram & (counts.mapped > 0)] = Owner.DIRECT_ONLY
    owners[ram & (counts.outside > 0)] = Owner.MAPPED
    roots: dict[int, str] = {}
    if image is not None:
        _image_owners(owners, ram, image, allocator, leaves)
    _table_owners(owners, roots, snapshot, allocator, count)
    beyond = tuple(region for region in physical_map if region.end > count * FRAME and region.start >= count * FRAME)
    frame_map = FrameMap(snapshot, owners, counts.mapped, counts.outside, counts.writable, counts.executable,
                         counts.user, (), direct, allocator, beyond, roots, image is not None)
    object.__setattr__(frame_map, "errors", _find_errors(frame_map, counts))
    for array in (owners, counts.mapped, counts.outside, counts.writable, counts.executable, counts.user):
        array.flags.writeable = False
    return frame_map


def _direct_map_offset(leaves: paging.Leaves, physical_map: PhysicalMap) -> int | None:
    """The vaddr - paddr offset that maps the most RAM, if it maps at least half of it."""
    if not len(leaves):
        return None
    offsets = leaves.vaddrs - leaves.paddrs  # wraps modulo 2**64, as addresses do
    distinct, which = np.unique(offsets, return_inverse=True)
    weight = np.bincount(which.reshape(-1), weights=leaves.sizes.astype(np.float64))
    best = int(np.argmax(weight))
    ram = sum(region.size for region in physical_map if region.kind == RAM)
    return int(distinct[best]) if ram and weight[best] >= ram / 2 else None


@dataclass(frozen=True)
class _Rights:
    """Per frame: pages reaching it, and outside the direct map those with each right."""

    mapped: _Counts
    outside: _Counts
    writable: _Counts
    executable: _Counts
    user: _Counts
    writes_or_executes: _Counts

    @classmethod
    def count(cls, leaves: paging.Leaves, frames: int, direct: int | None) -> _Rights:
        valid = ~leaves.reserved
        start = np.minimum(leaves.paddrs // np.uint64(FRAME), frames).astype(np.int64)
        stop = np.minimum((leaves.paddrs + leaves.sizes) // np.uint64(FRAME), frames).astype(np.int64)
        outside = valid.copy()
        if direct is not None:
            outside &= (leaves.vaddrs - leaves.paddrs) != np.uint64(direct)
        rights = leaves.rights
        writable = (rights & paging.RIGHTS_WRITABLE) != 0
        executable = (rights & paging.RIGHTS_NO_EXECUTE) == 0
        user = (rights & paging.RIGHTS_USER) != 0

        def per_frame(which: npt.NDArray[np.bool_]) -> _Counts:
            change = (np.bincount(start[which], minlength=frames + 1)
                      - np.bincount(stop[which], minlength=frames + 1))  # bincount: far faster than add.at
            return np.cumsum(change[:-1], dtype=np.int32)

        return cls(per_frame(valid), per_frame(outside), per_frame(outside & writable),
                   per_frame(outside & executable), per_frame(valid & user),
                   per_frame(outside & (writable | executable)))


def _physical_owners(physical_map: PhysicalMap, frames: int) -> npt.NDArray[np.uint8]:
    """HOLE, DEVICE, ROM or UNMAPPED (RAM) per frame, from QEMU's map; device wins a shared frame."""
    owners = np.full(frames, Owner.HOLE, np.uint8)
    kinds = {RAM: Owner.UNMAPPED, ROM: Owner.ROM, DEVICE: Owner.DEVICE}
    for kind in (RAM, ROM, DEVICE):
        for region in physical_map:
            if region.kind == kind and region.start < frames * FRAME:
                owners[region.start // FRAME : min(-(-region.end // FRAME), frames)] = kinds[kind]
    return owners


def _set_vaddr_range(owners: npt.NDArray[np.uint8], image: Image, start: int, end: int, owner: Owner,
                     *, whole: bool = False) -> None:
    """Give the frames of image vaddrs [start, end) to `owner` (with `whole`, only frames wholly inside)."""
    first, last = image.paddr_of(start), image.paddr_of(end - 1)
    if first is None or last is None or end <= start:
        return
    low = -(-first // FRAME) if whole else first // FRAME
    high = (last + 1) // FRAME if whole else last // FRAME + 1
    owners[low : min(high, len(owners))] = owner


def _image_owners(owners: npt.NDArray[np.uint8], ram: npt.NDArray[np.bool_], image: Image,
                  allocator: AllocatorState | None, leaves: paging.Leaves) -> None:
    """Low memory, the image by section and stack, the allocator's frames, heap and ring-3 pages."""
    frames = len(owners)
    lowest = min((paddr for section in image.sections if (paddr := image.paddr_of(section.vaddr)) is not None),
                 default=0)
    low = np.zeros(frames, np.bool_)
    low[: lowest // FRAME] = True
    owners[low & ram] = Owner.FIRMWARE
    for section in sorted(image.sections, key=lambda section: section.name in _SECTION_OWNERS):
        _set_vaddr_range(owners, image, section.vaddr, section.end, _SECTION_OWNERS.get(section.name, Owner.IMAGE))
    for bottom, top in _STACK_SYMBOLS:
        if bottom in image.symbols and top in image.symbols:
            _set_vaddr_range(owners, image, image.symbols[bottom].vaddr, image.symbols[top].vaddr, Owner.STACK)
    for name in _SIZED_STACKS:
        if (symbol := image.symbols.get(name)) is not None:
            _set_vaddr_range(owners, image, symbol.vaddr, symbol.vaddr + symbol.size, Owner.STACK, whole=True)
    if allocator is not None:
        first, (free_start, free_end) = allocator.first_frame // FRAME, allocator.free
        owners[first : min(free_start // FRAME, frames)] = Owner.ALLOCATED
        owners[free_start // FRAME : min(free_end // FRAME, frames)] = Owner.FREE
    _leaf_owners(owners, image, leaves, frames)


def _leaf_owners(owners: npt.NDArray[np.uint8], image: Image, leaves: paging.Leaves, frames: int) -> None:
    """Heap pages (mapped at or above __heap_base, below the image) and ring-3 pages (lower half, user).

    A frame the allocator holds as free stays FREE, mapped or not: that is what the allocator believes."""
    heap_base = image.symbols.get("__heap_base")
    kernel_base = min((section.vaddr for section in image.sections), default=0)
    lower_half = leaves.vaddrs < np.uint64(1 << 47)
    user = lower_half & ((leaves.rights & paging.RIGHTS_USER) != 0)
    picks = [(user, Owner.USER)]
    if heap_base is not None:
        picks.append(((leaves.vaddrs >= np.uint64(heap_base.vaddr)) & (leaves.vaddrs < np.uint64(kernel_base)),
                      Owner.HEAP))
    for which, owner in picks:
        chosen = which & ~leaves.reserved & (leaves.paddrs < np.uint64(frames * FRAME))
        paddrs, sizes = leaves.paddrs[chosen], leaves.sizes[chosen]
        if (sizes == FRAME).all():
            _give_frames(owners, (paddrs // np.uint64(FRAME)).astype(np.int64), owner)
        else:
            _give_ranges(owners, paddrs.tolist(), sizes.tolist(), owner)


def _give_frames(owners: npt.NDArray[np.uint8], numbers: npt.NDArray[np.int64], owner: Owner) -> None:
    """`owner` takes each 4 KiB frame in `numbers` that is still RAM or handed out (thousands of heap
    pages at once: a loop over them cost tens of milliseconds)."""
    owners[numbers[np.isin(owners[numbers], _GIVEN_AWAY)]] = owner


def _give_ranges(owners: npt.NDArray[np.uint8], paddrs: list[int], sizes: list[int], owner: Owner) -> None:
    """`owner` takes each page's frames, in order, when its first frame is still RAM or handed out
    (pages larger than 4 KiB: an earlier page may have claimed a later one's first frame)."""
    frames = len(owners)
    for paddr, size in zip(paddrs, sizes, strict=True):
        if owners[paddr // FRAME] in _GIVEN_AWAY:
            owners[paddr // FRAME : min((paddr + size) // FRAME, frames)] = owner


def _table_owners(owners: npt.NDArray[np.uint8], roots: dict[int, str], snapshot: Snapshot,
                  allocator: AllocatorState | None, frames: int) -> None:
    """Page-table pages by level, with the CR3 that reaches them (and ring 3's PML4, by symbol)."""
    leaves = snapshot.leaves
    cr3 = f"CR3 {snapshot.registers.cr3:#x}"
    for paddr, level in zip(leaves.table_paddrs, leaves.table_levels, strict=True):
        if paddr < frames * FRAME:
            owners[paddr // FRAME] = _TABLE_OWNERS[level]
            roots[paddr] = cr3
    user_root = allocator.ring3_cr3 if allocator is not None else 0
    if user_root and user_root < frames * FRAME and user_root != snapshot.registers.cr3 & ~0xFFF:
        owners[user_root // FRAME] = Owner.PML4
        roots[user_root] = f"ring 3's CR3 {user_root:#x} (user_pml4_paddr); it shares the kernel's tables below"


def _find_errors(frame_map: FrameMap, counts: _Rights) -> tuple[FrameError, ...]:
    """Every error the map shows, in paddr order."""
    owners = frame_map.owners
    tables = (owners >= Owner.PML4) & (owners <= Owner.PT)
    reachable = frame_map.user > 0
    if frame_map.with_symbols:
        reachable |= frame_map.writable > 0
    table_reachable = tables & reachable
    wx = (frame_map.writable > 0) & (frame_map.executable > 0) & (counts.writes_or_executes >= 2)
    found: list[tuple[int, ErrorKind]] = []
    if frame_map.allocator is not None:
        found += [(int(n), ErrorKind.FREE_AND_MAPPED)
                  for n in np.flatnonzero((owners == Owner.FREE) & (frame_map.mapped_outside > 0))]
    if frame_map.with_symbols:
        found += [(int(n), ErrorKind.MAPPED_TWICE) for n in np.flatnonzero(frame_map.mapped_outside >= 2)]
    found += [(int(n), ErrorKind.TABLE_REACHABLE) for n in np.flatnonzero(table_reachable)]
    found += [(int(n), ErrorKind.WX_ALIAS) for n in np.flatnonzero(wx)]
    found.sort(key=lambda found_error: (found_error[0], list(ErrorKind).index(found_error[1])))
    return tuple(_explain(frame_map, number * FRAME, kind, walked=at < MAX_WALKED_ERRORS)
                 for at, (number, kind) in enumerate(found))


def _explain(frame_map: FrameMap, paddr: int, kind: ErrorKind, *, walked: bool) -> FrameError:
    mappings = [m for m in frame_map.mappings_of(paddr) if not m.direct]
    owner = Owner(int(frame_map.owners[paddr // FRAME])).label
    shown = _pages(mappings)
    if kind is ErrorKind.FREE_AND_MAPPED:
        message = (f"frame {paddr:#x} is free in the frame allocator (at or above next_frame "
                   f"{frame_map.allocator.next_frame if frame_map.allocator else 0:#x}), yet {shown} maps it: "
                   "the next frame_alloc() hands it out again while the old page still reaches it")
    elif kind is ErrorKind.MAPPED_TWICE:
        message = (f"frame {paddr:#x} ({owner}) is mapped by {len(mappings)} pages outside the direct map, "
                   f"{shown}: the kernel maps each frame once, so two owners now share its bytes")
    elif kind is ErrorKind.TABLE_REACHABLE:
        reach = [m for m in frame_map.mappings_of(paddr) if m.permissions.user or
                 (m.permissions.writable and not m.direct)]
        mappings = reach
        message = (f"frame {paddr:#x} is a page-table page ({owner}), yet {_pages(reach)} can write it or reach "
                   "it from ring 3: whoever writes there rewrites the page tables")
    else:
        message = (f"frame {paddr:#x} ({owner}) is executable through one page and writable through another, "
                   f"{shown}: W^X is broken by aliasing, code written through one runs through the other")
    walks = tuple(frame_map.snapshot.walk(m.vaddr) for m in mappings[:4]) if walked else ()
    return FrameError(kind, paddr, message, tuple(m.vaddr for m in mappings), walks)


def _pages(mappings: Sequence[FrameMapping]) -> str:
    listed = ", ".join(f"{m.vaddr:#x} ({m.permissions})" for m in mappings[:4])
    more = f" and {len(mappings) - 4} more" if len(mappings) > 4 else ""
    return f"the page{'s' if len(mappings) != 1 else ''} at {listed}{more}"


def _mappings_of(leaves: paging.Leaves, frame: int, direct: int | None) -> tuple[FrameMapping, ...]:
    paddrs, sizes = leaves.paddrs, leaves.sizes
    hits = np.flatnonzero((paddrs <= np.uint64(frame)) & (np.uint64(frame) < paddrs + sizes) & ~leaves.reserved)
    out = []
    for index in hits.tolist():
        vaddr, paddr = int(leaves.vaddrs[index]), int(paddrs[index])
        out.append(FrameMapping(vaddr + frame - paddr, int(sizes[index]),
                                paging.Permissions.from_rights(int(leaves.rights[index])),
                                direct is not None and (vaddr - paddr) % (1 << 64) == direct))
    return tuple(out)
