"""How one vaddr is walked, as the CPU does it: `walk`, `translate`, `format_walk`.

The walk stops at the first entry that is not present or has a reserved bit, and returns every
step so that views and lessons can show where and why.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from workbench.models.cpu import U64_MAX, hex_u64
from workbench.models.paging.entries import (
    ENTRY_ADDRESS_BITS,
    ENTRY_PRESENT,
    Entry,
    Level,
    PagingMode,
    Permissions,
    effective_permissions,
    size_text,
)
from workbench.models.paging.errors import InvalidVaddr, PagingError
from workbench.models.paging.inputs import PagingRegisters, PhysicalMemory, physical_map_of
from workbench.models.physmap import RAM, PhysicalMap, PhysicalRegion, describe_place


class FaultKind(enum.Enum):
    """Why a walk stopped, or (in `TableProblem`s) what is odd about an entry."""

    NOT_PRESENT = "not present"
    RESERVED_BIT = "reserved bit set"
    NON_CANONICAL = "non-canonical address"
    DEVICE_MEMORY = "table in device memory"  # not read: its entries would be device registers
    NO_MEMORY = "table where there is no memory"  # TableProblem only: it reads as zeros, a walk goes on


class EntryKind(enum.Enum):
    """What a present entry points to."""

    TABLE = "table"
    PAGE = "page"
    DEVICE_MEMORY = "table in device memory"
    NO_MEMORY = "table where there is no memory"


@dataclass(frozen=True)
class PageFault:
    """Why a walk found no translation: a normal result to show, not an exception.

    Attributes:
        kind: the reason.
        vaddr: the vaddr being translated.
        level: the level whose entry stopped the walk (None for a non-canonical vaddr).
        table_paddr: the table holding that entry (or the table that could not be read).
        index: the entry's index in its table.
        entry: the raw entry (None if it could not be read).
        reserved_bits: for RESERVED_BIT, the reserved bits that are set.
        mode: the paging mode of the walk.
        place: where the table holding the entry lies when it is not plain RAM ("in ROM
            (pc.bios)", "where the guest has no memory"), or for DEVICE_MEMORY where the table
            that could not be read lies ("in device memory (ioapic)"); empty for RAM.
    """

    kind: FaultKind
    vaddr: int
    level: Level | None
    table_paddr: int | None
    index: int | None
    entry: int | None
    mode: PagingMode
    reserved_bits: int = 0
    place: str = ""

    @property
    def message(self) -> str:
        """What happened, for a student."""
        vaddr = f"vaddr {self.vaddr:#018x}"
        if self.kind is FaultKind.NON_CANONICAL and not self.mode.enabled:
            return (
                f"{vaddr} is beyond 4 GiB: with paging off the CPU is not in long mode and its "
                "linear addresses are 32 bits wide."
            )
        if self.kind is FaultKind.NON_CANONICAL:
            top = self.mode.vaddr_bits - 1
            return (
                f"{vaddr} is not canonical: with {self.mode.kind.value} bits 63:{top} must all equal "
                f"bit {top}. The CPU does not even start a page walk; the access raises a general "
                "protection fault (#GP), or a stack fault (#SS) for a stack access."
            )
        assert self.level is not None and self.table_paddr is not None
        where = f"the {self.level.name} table at paddr {self.table_paddr:#018x}"
        if self.kind is FaultKind.DEVICE_MEMORY:
            devices = ("The CPU would read the device's registers as entries; the workbench does not "
                       "read devices, since a read can change them.")
            if self.index is None:
                return f"{vaddr} cannot be walked here: CR3 points to {where}, {self.place}. {devices}"
            return (
                f"{vaddr} cannot be walked here: {self.level.entry_name} {self.index} in {where} points "
                f"to a table at paddr {(self.entry or 0) & ENTRY_ADDRESS_BITS:#018x}, {self.place}. {devices}"
            )
        table_note = f" That table lies {self.place}." if self.place else ""
        if self.place == describe_place("none", None):
            table_note = " There is no memory at that table's paddr: the CPU reads zeros there."
        entry = f"{self.level.entry_name} {self.index} in {where} (value {self.entry or 0:#018x})"
        if self.kind is FaultKind.NOT_PRESENT:
            return (
                f"{vaddr} is not mapped: {entry} has its present bit P clear.{table_note} The CPU stops "
                "the walk there and raises a page fault (#PF, vector 14) with CR2 set to the vaddr."
            )
        bits = ", ".join(str(i) for i in range(64) if self.reserved_bits >> i & 1)
        why = self.mode.reserved_reasons(self.level, self.reserved_bits)
        return (
            f"{vaddr} faults: {entry} has reserved bit(s) {bits} set ({why}).{table_note} The CPU raises "
            "a page fault (#PF) with the RSVD bit set in the error code."
        )


@dataclass(frozen=True)
class WalkStep:
    """One level of a walk: which entry the vaddr selected, and what it says.

    Attributes:
        level: the table's level.
        table_paddr: paddr of the table.
        index: the entry's index, the 9 vaddr bits `vaddr_bits` (high, low).
        vaddr_bits: which vaddr bits chose the entry, e.g. (47, 39).
        entry: the raw entry.
        reserved_bits: reserved bits set in it (0 when none).
        target: what the entry points to (None when it is not present).
        target_paddr: the next table or the frame.
        recursive: the target table is one this walk already used (a self-reference).
        target_place: where the target lies when not in RAM: "in ROM (pc.bios)", "where the
            guest has no memory", "in device memory (ioapic)"; empty in RAM.
    """

    level: Level
    table_paddr: int
    index: int
    vaddr_bits: tuple[int, int]
    entry: Entry
    reserved_bits: int
    target: EntryKind | None
    target_paddr: int | None
    recursive: bool = False
    target_place: str = ""

    @property
    def entry_paddr(self) -> int:
        """Where the entry itself is in memory."""
        return self.table_paddr + 8 * self.index

    @property
    def flags(self) -> tuple[str, ...]:
        """SDM names of the set bits."""
        return self.entry.flag_names


@dataclass(frozen=True)
class Walk:
    """A whole translation of one vaddr, the way the CPU does it.

    Attributes:
        vaddr: the vaddr translated.
        mode: the paging mode.
        steps: one per level visited, top first (empty when paging is off).
        fault: why it stopped, or None if it reached a page.
        paddr: the translation, or None.
        page_size: size of the page reached.
        permissions: effective rights across all levels.
        protection_key: the leaf's key when CR4.PKE (user page) or CR4.PKS (kernel page) is on.
        paddr_region: the physical region holding paddr (RAM, ROM or a device's registers such
            as the local APIC), or None: none, or no paddr.
    """

    vaddr: int
    mode: PagingMode
    steps: tuple[WalkStep, ...]
    fault: PageFault | None
    paddr: int | None
    page_size: int | None
    permissions: Permissions | None
    protection_key: int | None = None
    paddr_region: PhysicalRegion | None = None

    @property
    def paddr_in_ram(self) -> bool | None:
        """Whether paddr is in guest RAM (None without a paddr)."""
        if self.paddr is None:
            return None
        return self.paddr_region is not None and self.paddr_region.kind == RAM

    @property
    def paddr_place(self) -> str:
        """Where paddr lies, in words: "in RAM", "in ROM (pc.bios)", "in device memory (ioapic)"
        or "where the guest has no memory"; "" without a paddr."""
        if self.paddr is None:
            return ""
        region = self.paddr_region
        return describe_place("none" if region is None else "device" if region.kind == "io" else "memory", region)

    @property
    def ok(self) -> bool:
        """The walk reached a page."""
        return self.fault is None

    @property
    def identity(self) -> bool:
        """Paging is off: the paddr is the vaddr itself."""
        return not self.mode.enabled

    @property
    def page_vaddr(self) -> int | None:
        """First vaddr of the page reached."""
        if self.page_size is None:
            return None
        return self.vaddr & ~(self.page_size - 1)

    @property
    def frame_paddr(self) -> int | None:
        """First paddr of the frame reached."""
        if self.paddr is None or self.page_size is None:
            return None
        return self.paddr & ~(self.page_size - 1)

    def to_json(self) -> dict[str, object]:
        """A JSON-safe dict for views: every address and entry as a hex string."""
        return {
            "vaddr": hex_u64(self.vaddr),
            "mode": self.mode.kind.value,
            "cr3": hex_u64(self.mode.cr3),
            "steps": [
                {
                    "level": step.level.name,
                    "table_paddr": hex_u64(step.table_paddr),
                    "index": step.index,
                    "vaddr_bits": list(step.vaddr_bits),
                    "entry": hex_u64(step.entry.raw),
                    "flags": list(step.flags),
                    "reserved_bits": hex_u64(step.reserved_bits),
                    "target": step.target.value if step.target is not None else None,
                    "target_paddr": hex_u64(step.target_paddr) if step.target_paddr is not None else None,
                    "recursive": step.recursive,
                    "target_place": step.target_place,
                }
                for step in self.steps
            ],
            "fault": None if self.fault is None else {
                "kind": self.fault.kind.value,
                "level": self.fault.level.name if self.fault.level is not None else None,
                "message": self.fault.message,
            },
            "paddr": hex_u64(self.paddr) if self.paddr is not None else None,
            "page_size": self.page_size,
            "permissions": str(self.permissions) if self.permissions is not None else None,
            "protection_key": self.protection_key,
            "paddr_in_ram": self.paddr_in_ram,
            "paddr_place": self.paddr_place,
        }


class PageFaultError(PagingError):
    """`translate` found no translation; the walk says where and why.

    Attributes:
        fault: what stopped the walk.
        walk: the whole walk, steps included.
    """

    def __init__(self, walk: Walk) -> None:
        assert walk.fault is not None
        super().__init__(walk.fault.message)
        self.fault = walk.fault
        self.walk = walk


_ENTRY = struct.Struct("<Q")
_IDENTITY_RIGHTS = Permissions(user=True, writable=True, executable=True)  # paging off: nothing is checked


def _check_vaddr(vaddr: int) -> None:
    if isinstance(vaddr, bool) or not isinstance(vaddr, int):
        raise InvalidVaddr(f"a vaddr is an int such as 0xffffffff80100000, not {type(vaddr).__name__}")
    if not 0 <= vaddr <= U64_MAX:
        raise InvalidVaddr(f"vaddr must be a 64-bit unsigned value, 0 to 0xffffffffffffffff, got {vaddr!r}")


def _table_place(physical_map: PhysicalMap, table: int) -> tuple[str, PhysicalRegion | None, str]:
    """Where the table at `table` lies: PhysicalMap.page_place, and the words for a student ("" in RAM)."""
    place, region = physical_map.page_place(table)
    return place, region, "" if place == "ram" or (region is not None and region.kind == RAM) else \
        describe_place(place, region)


def _read_entry(memory: PhysicalMemory, physical_map: PhysicalMap, paddr: int) -> int:
    """The 8-byte entry at `paddr` as the CPU reads it: RAM or ROM, zeros where there is no memory."""
    data = bytearray(8)
    for start, end, region in physical_map.pieces(paddr, paddr + 8):
        if region is not None:
            data[start - paddr : end - paddr] = memory.read(start, end - start)
    value: int = _ENTRY.unpack(data)[0]
    return value


def walk(memory: PhysicalMemory, regs: PagingRegisters, vaddr: int, *, maxphyaddr: int = 52) -> Walk:
    """Translate one vaddr step by step, as the CPU would, and return the whole walk.

    Never raises for anything found in memory: a missing entry, a reserved bit, a table in
    device memory or a non-canonical vaddr end the walk with a `PageFault` in `Walk.fault`. A
    table where the guest has no memory reads as zeros, as the CPU reads it. Where RAM, ROM
    and devices are comes from the memory's physical map (`physical_map_of`).

    Args:
        memory: guest physical memory.
        regs: CR0, CR3, CR4 and EFER.
        vaddr: the virtual (linear) address, 0 to 2**64-1.
        maxphyaddr: the CPU's physical-address width.

    Raises:
        UnsupportedPagingModeError: the CPU uses 32-bit or PAE paging.
        PagingError: vaddr is not a 64-bit unsigned value.
    """
    _check_vaddr(vaddr)
    mode = PagingMode.from_registers(regs, maxphyaddr=maxphyaddr)
    mode.require_long_mode()
    physical_map = physical_map_of(memory)
    if not mode.enabled and not vaddr >> 32:
        return Walk(vaddr, mode, (), None, vaddr, None, _IDENTITY_RIGHTS, None, physical_map.region_at(vaddr))
    if not mode.enabled or not mode.is_canonical(vaddr):
        fault = PageFault(FaultKind.NON_CANONICAL, vaddr, None, None, None, None, mode)
        return Walk(vaddr, mode, (), fault, None, None, None)
    return _walk_tables(memory, physical_map, mode, vaddr)


def _walk_tables(memory: PhysicalMemory, physical_map: PhysicalMap, mode: PagingMode, vaddr: int) -> Walk:
    """The table part of `walk`, for a canonical vaddr with 4- or 5-level paging."""
    steps: list[WalkStep] = []
    used_tables: list[int] = []
    table = mode.root_paddr
    and_bits = U64_MAX
    or_bits = 0
    fault: PageFault | None = None
    for level in mode.levels:
        index = (vaddr >> level.shift) & 0x1FF
        place, _region, words = _table_place(physical_map, table)
        if place == "device":
            if steps:  # the previous entry points into device memory: blame it
                prev = steps[-1]
                fault = PageFault(FaultKind.DEVICE_MEMORY, vaddr, prev.level, prev.table_paddr, prev.index,
                                  prev.entry.raw, mode, place=words)
            else:  # CR3 itself does
                fault = PageFault(FaultKind.DEVICE_MEMORY, vaddr, level, table, None, None, mode, place=words)
            break
        raw = _read_entry(memory, physical_map, table + 8 * index)
        used_tables.append(table)
        entry = Entry(raw, level)
        if not raw & ENTRY_PRESENT:
            steps.append(WalkStep(level, table, index, level.vaddr_bits, entry, 0, None, None))
            fault = PageFault(FaultKind.NOT_PRESENT, vaddr, level, table, index, raw, mode, place=words)
            break
        leaf = entry.maps_page
        reserved = raw & mode.reserved_mask(level, leaf)
        target_paddr = entry.target_paddr & ((1 << mode.maxphyaddr) - 1)
        if leaf:
            kind, target_words = EntryKind.PAGE, ""
        else:
            target_place, _target_region, target_words = _table_place(physical_map, target_paddr)
            kind = {"device": EntryKind.DEVICE_MEMORY, "none": EntryKind.NO_MEMORY}.get(target_place, EntryKind.TABLE)
        steps.append(WalkStep(level, table, index, level.vaddr_bits, entry, reserved, kind, target_paddr,
                              recursive=not leaf and target_paddr in used_tables, target_place=target_words))
        if reserved:
            fault = PageFault(FaultKind.RESERVED_BIT, vaddr, level, table, index, raw, mode, reserved, place=words)
            break
        and_bits &= raw
        or_bits |= raw
        if leaf:
            size = 1 << level.shift
            paddr = target_paddr | (vaddr & (size - 1))
            permissions = effective_permissions(and_bits, or_bits, mode.nxe)
            key_on = mode.pke if permissions.user else mode.pks
            key = entry.protection_key if key_on else None
            return Walk(vaddr, mode, tuple(steps), None, paddr, size, permissions, key, physical_map.region_at(paddr))
        table = target_paddr
    assert fault is not None, "a PT entry always maps a page"
    return Walk(vaddr, mode, tuple(steps), fault, None, None, None)


def translate(memory: PhysicalMemory, regs: PagingRegisters, vaddr: int, *, maxphyaddr: int = 52) -> int:
    """Return the paddr a vaddr translates to.

    Args:
        memory: guest RAM.
        regs: CR0, CR3, CR4 and EFER.
        vaddr: the virtual address.
        maxphyaddr: the CPU's physical-address width.

    Raises:
        PageFaultError: the walk found no translation; `.walk` has every step.
        UnsupportedPagingModeError: the CPU uses 32-bit or PAE paging.
    """
    result = walk(memory, regs, vaddr, maxphyaddr=maxphyaddr)
    if result.fault is not None or result.paddr is None:
        raise PageFaultError(result)
    return result.paddr


def _format_step(step: WalkStep, width: int) -> str:
    head = (f"{step.level.name:<4}  table {step.table_paddr:#018x}  [{step.index:>3}] = "
            f"{step.entry.raw:#018x}  {' '.join(step.flags):<{width}}")
    if step.target is None:
        tail = "not present"
    elif step.target is EntryKind.PAGE:
        tail = f"-> {size_text(step.entry.page_size or 0)} frame {step.target_paddr or 0:#018x}"
    else:
        tail = f"-> {Level(step.level - 1).name} table {step.target_paddr or 0:#018x}"
        if step.target_place:
            tail += f" ({step.target_place})"
        if step.recursive:
            tail += " (recursive: a table this walk already used)"
    if step.reserved_bits:
        tail += f"  reserved bits {step.reserved_bits:#x} set"
    return f"{head}  {tail}".rstrip()


def _format_outcome(result: Walk) -> str:
    if result.fault is not None:
        where = f" at {result.fault.level.name}" if result.fault.level is not None else ""
        return f"fault{where}: {result.fault.message}"
    assert result.paddr is not None and result.permissions is not None
    line = (f"paddr {result.paddr:#018x}: {size_text(result.page_size or 0)} page, "
            f"{result.permissions.describe()}")
    if result.protection_key is not None:
        line += f", protection key {result.protection_key}"
    if not result.paddr_in_ram:
        line += f" ({result.paddr_place})"
    return line


def format_walk(result: Walk) -> str:
    """Print a walk: CR3, the vaddr's bit fields, one line per level, then the frame or fault."""
    mode = result.mode
    lines = [f"vaddr {result.vaddr:#018x}, {mode.kind.value}"]
    if not mode.enabled:
        if result.fault is not None:
            lines.append(result.fault.message)
        else:
            lines.append(f"paging is off: paddr = vaddr = {result.vaddr:#018x} (identity)")
        return "\n".join(lines)
    lines[0] += f", CR3={mode.cr3:#018x} ({mode.top_level.name} table at paddr {mode.root_paddr:#018x})"
    if result.steps:
        fields = [f"63:{mode.vaddr_bits} sign"]
        fields += [f"{s.vaddr_bits[0]}:{s.vaddr_bits[1]} {s.level.name} {s.index}" for s in result.steps]
        if result.page_size is not None:
            offset = result.vaddr & (result.page_size - 1)
            fields.append(f"{result.page_size.bit_length() - 2}:0 offset {offset:#x}")
        lines.append("vaddr bits: " + " | ".join(fields))
    width = max((len(" ".join(s.flags)) for s in result.steps), default=0)
    lines += [_format_step(step, width) for step in result.steps]
    lines.append(_format_outcome(result))
    return "\n".join(lines)


