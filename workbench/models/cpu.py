"""CPU registers: decode control registers bit by bit and read QEMU's `info registers`.

Pure model, no I/O. The machine layer hands it the text of HMP `info registers` (fetched over
QMP `human-monitor-command`, CRLF line endings); paging and the views read the decoded values.

Sources: Intel SDM Vol. 3A §2.5 (CR0, CR3, CR4), §2.2.1 (IA32_EFER), Vol. 1 §3.4.3 (RFLAGS);
the text format is QEMU 7.2's `x86_cpu_dump_state` (target/i386/cpu-dump.c).

JavaScript numbers lose precision above 2**53, so every 64-bit value also has a hex-string form
(`hex_u64`, `Registers.to_json`); never send the raw ints to a widget.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from workbench.errors import WorkbenchError

__all__ = [
    "CR0_PE",
    "CR0_PG",
    "CR0_WP",
    "CR4_LA57",
    "CR4_PAE",
    "CR4_PCIDE",
    "CR4_PKE",
    "CR4_PKS",
    "CR4_PSE",
    "CR4_SMAP",
    "CR4_SMEP",
    "EFER_LMA",
    "EFER_LME",
    "EFER_NXE",
    "EFER_SCE",
    "RFLAGS_VM",
    "CpuMode",
    "Cr0",
    "Cr3",
    "Cr4",
    "DescriptorTable",
    "Efer",
    "RegisterBit",
    "RegisterParseError",
    "RegisterValueError",
    "Registers",
    "Rflags",
    "SegmentRegister",
    "hex_u64",
    "parse_info_registers",
    "parse_info_registers_all",
]

U64_MAX = (1 << 64) - 1

# The bits other modules test by name (SDM Vol. 3A §2.5, Figure 2-7 and Table 2-1).
CR0_PE = 1 << 0
CR0_WP = 1 << 16
CR0_PG = 1 << 31
CR4_PSE = 1 << 4
CR4_PAE = 1 << 5
CR4_LA57 = 1 << 12
CR4_PCIDE = 1 << 17
CR4_SMEP = 1 << 20
CR4_SMAP = 1 << 21
CR4_PKE = 1 << 22
CR4_PKS = 1 << 24
EFER_SCE = 1 << 0
EFER_LME = 1 << 8
EFER_LMA = 1 << 10
EFER_NXE = 1 << 11
RFLAGS_VM = 1 << 17

# Segment attribute bits as QEMU keeps them (the descriptor's high dword, bits 8-23).
_SEG_TYPE_SHIFT = 8
_SEG_S = 1 << 12
_SEG_DPL_SHIFT = 13
_SEG_P = 1 << 15
_SEG_L = 1 << 21
_SEG_DB = 1 << 22
_SEG_G = 1 << 23
_SEG_CODE = 1 << 11


class RegisterValueError(WorkbenchError, ValueError):
    """A register value is not a 64-bit unsigned integer."""


class RegisterParseError(WorkbenchError):
    """QEMU's `info registers` text could not be read.

    Attributes:
        text: the text that was given (possibly long).
    """

    def __init__(self, message: str, text: str) -> None:
        super().__init__(message)
        self.text = text


def hex_u64(value: int) -> str:
    """Return a 64-bit value as a fixed-width hex string, safe to hand to JavaScript.

    Args:
        value: an unsigned integer below 2**64.

    Returns:
        The form `0x` followed by 16 lowercase hex digits.
    """
    return f"{value:#018x}"


def _check_u64(name: str, value: int) -> None:
    if not 0 <= value <= U64_MAX:
        raise RegisterValueError(f"{name} must be a 64-bit unsigned value, got {value!r}")


@dataclass(frozen=True)
class RegisterBit:
    """One named bit of a register.

    Attributes:
        name: the SDM's name for the bit (`PG`, `LA57`, `NXE`).
        bit: its position.
        meaning: what setting it does, in one line.
    """

    name: str
    bit: int
    meaning: str

    @property
    def mask(self) -> int:
        """The bit as a mask."""
        return 1 << self.bit


@dataclass(frozen=True)
class _BitRegister:
    """A register read as a set of named bits; subclasses give the layout."""

    value: int

    NAME: ClassVar[str] = ""
    LAYOUT: ClassVar[tuple[RegisterBit, ...]] = ()
    HEX_DIGITS: ClassVar[int] = 8
    KNOWN_RESERVED: ClassVar[int] = 0  # bits that are named nowhere but are expected (RFLAGS bit 1)

    def __post_init__(self) -> None:
        _check_u64(self.NAME, self.value)

    @property
    def bits(self) -> Mapping[str, bool]:
        """Every named bit, in layout order (low bit first), mapped to whether it is set."""
        return {b.name: bool(self.value & b.mask) for b in self.LAYOUT}

    @property
    def set_names(self) -> tuple[str, ...]:
        """The names of the set bits, highest bit first (the order of the text form)."""
        return tuple(b.name for b in sorted(self.LAYOUT, key=lambda b: -b.bit) if self.value & b.mask)

    @property
    def unknown_bits(self) -> int:
        """Set bits this model has no name for (reserved, or newer than the model)."""
        known = self.KNOWN_RESERVED
        for b in self.LAYOUT:
            known |= b.mask
        return self.value & ~known

    @property
    def hex(self) -> str:
        """The value as `0x` and 16 hex digits, for JavaScript."""
        return hex_u64(self.value)

    def __getitem__(self, name: str) -> bool:
        """Return whether the named bit is set.

        Raises:
            KeyError: no bit has that name.
        """
        for b in self.LAYOUT:
            if b.name == name:
                return bool(self.value & b.mask)
        raise KeyError(f"{self.NAME} has no bit named {name!r}")

    def _extra_words(self) -> list[str]:
        return []

    def __str__(self) -> str:
        """Return e.g. `CR0=0x80050033 PG AM WP NE ET MP PE`."""
        words = [f"{self.NAME}={self.value:#0{self.HEX_DIGITS + 2}x}", *self.set_names, *self._extra_words()]
        unknown = self.unknown_bits
        words += [f"bit{i}" for i in range(63, -1, -1) if unknown >> i & 1]
        return " ".join(words)

    def describe(self) -> str:
        """Return one line per named bit: name, position, set or clear, and meaning."""
        width = max((len(b.name) for b in self.LAYOUT), default=0)
        lines = [str(self)]
        for b in sorted(self.LAYOUT, key=lambda b: -b.bit):
            state = "1" if self.value & b.mask else "0"
            lines.append(f"  {b.name:<{width}}  bit {b.bit:>2} = {state}  {b.meaning}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Cr0(_BitRegister):
    """CR0: operating mode and protection switches (SDM Vol. 3A §2.5)."""

    NAME: ClassVar[str] = "CR0"
    LAYOUT: ClassVar[tuple[RegisterBit, ...]] = (
        RegisterBit("PE", 0, "protection enable: protected mode (segments have privilege)"),
        RegisterBit("MP", 1, "monitor coprocessor: WAIT/FWAIT honour TS"),
        RegisterBit("EM", 2, "emulation: x87 instructions raise #NM"),
        RegisterBit("TS", 3, "task switched: next x87/SSE use raises #NM (lazy FPU save)"),
        RegisterBit("ET", 4, "extension type: always 1 on modern CPUs"),
        RegisterBit("NE", 5, "numeric error: x87 errors raise #MF, not an external interrupt"),
        RegisterBit("WP", 16, "write protect: the kernel cannot write read-only pages either"),
        RegisterBit("AM", 18, "alignment mask: allows RFLAGS.AC alignment checks in ring 3"),
        RegisterBit("NW", 29, "not write-through: with CD, caches stop writing through"),
        RegisterBit("CD", 30, "cache disable: no new cache fills"),
        RegisterBit("PG", 31, "paging: linear addresses are translated through page tables"),
    )

    @property
    def protected_mode(self) -> bool:
        """PE: protected mode is on."""
        return bool(self.value & CR0_PE)

    @property
    def write_protect(self) -> bool:
        """WP: supervisor writes obey read-only pages."""
        return bool(self.value & CR0_WP)

    @property
    def paging(self) -> bool:
        """PG: paging is on."""
        return bool(self.value & CR0_PG)


@dataclass(frozen=True)
class Cr4(_BitRegister):
    """CR4: architecture extensions (SDM Vol. 3A §2.5)."""

    NAME: ClassVar[str] = "CR4"
    LAYOUT: ClassVar[tuple[RegisterBit, ...]] = (
        RegisterBit("VME", 0, "virtual-8086 mode extensions"),
        RegisterBit("PVI", 1, "protected-mode virtual interrupts"),
        RegisterBit("TSD", 2, "time stamp disable: RDTSC only in ring 0"),
        RegisterBit("DE", 3, "debugging extensions: DR4/DR5 fault, I/O breakpoints"),
        RegisterBit("PSE", 4, "page size extensions: 4 MiB pages in 32-bit paging"),
        RegisterBit("PAE", 5, "physical address extension: 64-bit entries (required for long mode)"),
        RegisterBit("MCE", 6, "machine-check exception enabled"),
        RegisterBit("PGE", 7, "page global enable: G pages survive CR3 writes"),
        RegisterBit("PCE", 8, "performance counters readable with RDPMC in ring 3"),
        RegisterBit("OSFXSR", 9, "OS supports FXSAVE/FXRSTOR (enables SSE)"),
        RegisterBit("OSXMMEXCPT", 10, "OS handles SIMD floating-point exceptions (#XM)"),
        RegisterBit("UMIP", 11, "user-mode instruction prevention: SGDT/SIDT/... only in ring 0"),
        RegisterBit("LA57", 12, "57-bit linear addresses: 5-level paging"),
        RegisterBit("VMXE", 13, "VMX (Intel virtualization) enable"),
        RegisterBit("SMXE", 14, "SMX (trusted execution) enable"),
        RegisterBit("FSGSBASE", 16, "RDFSBASE/WRFSBASE and friends allowed"),
        RegisterBit("PCIDE", 17, "process-context identifiers: CR3 bits 11:0 are a PCID"),
        RegisterBit("OSXSAVE", 18, "OS supports XSAVE and extended states (AVX)"),
        RegisterBit("KL", 19, "Key Locker enable"),
        RegisterBit("SMEP", 20, "supervisor-mode execution prevention: kernel cannot run user pages"),
        RegisterBit("SMAP", 21, "supervisor-mode access prevention: kernel cannot touch user pages"),
        RegisterBit("PKE", 22, "protection keys for user pages (entry bits 62:59, PKRU)"),
        RegisterBit("CET", 23, "control-flow enforcement technology"),
        RegisterBit("PKS", 24, "protection keys for supervisor pages (IA32_PKRS)"),
        RegisterBit("UINTR", 25, "user interrupts enable"),
    )

    @property
    def pae(self) -> bool:
        """PAE: 64-bit page-table entries."""
        return bool(self.value & CR4_PAE)

    @property
    def la57(self) -> bool:
        """LA57: 5-level paging."""
        return bool(self.value & CR4_LA57)

    @property
    def pcide(self) -> bool:
        """PCIDE: CR3 carries a process-context identifier."""
        return bool(self.value & CR4_PCIDE)


@dataclass(frozen=True)
class Efer(_BitRegister):
    """IA32_EFER (MSR 0xC0000080): long mode and no-execute (SDM Vol. 3A §2.2.1)."""

    NAME: ClassVar[str] = "EFER"
    HEX_DIGITS: ClassVar[int] = 16
    LAYOUT: ClassVar[tuple[RegisterBit, ...]] = (
        RegisterBit("SCE", 0, "system call extensions: SYSCALL/SYSRET allowed"),
        RegisterBit("LME", 8, "long mode enable: takes effect when paging is turned on"),
        RegisterBit("LMA", 10, "long mode active (set by the CPU, read-only)"),
        RegisterBit("NXE", 11, "no-execute enable: entry bit 63 (XD) forbids instruction fetch"),
        RegisterBit("SVME", 12, "AMD secure virtual machine enable"),
        RegisterBit("LMSLE", 13, "AMD long mode segment limit enable"),
        RegisterBit("FFXSR", 14, "AMD fast FXSAVE/FXRSTOR"),
        RegisterBit("TCE", 15, "AMD translation cache extension"),
    )

    @property
    def long_mode_active(self) -> bool:
        """LMA: the CPU is in long mode (64-bit or compatibility)."""
        return bool(self.value & EFER_LMA)

    @property
    def no_execute(self) -> bool:
        """NXE: the XD bit of page-table entries is honoured."""
        return bool(self.value & EFER_NXE)


@dataclass(frozen=True)
class Rflags(_BitRegister):
    """RFLAGS: status and control flags (SDM Vol. 1 §3.4.3)."""

    NAME: ClassVar[str] = "RFLAGS"
    KNOWN_RESERVED: ClassVar[int] = (1 << 1) | (3 << 12)  # bit 1 reads as 1; IOPL is a field
    LAYOUT: ClassVar[tuple[RegisterBit, ...]] = (
        RegisterBit("CF", 0, "carry"),
        RegisterBit("PF", 2, "parity of the low byte of the result is even"),
        RegisterBit("AF", 4, "auxiliary carry out of bit 3 (BCD)"),
        RegisterBit("ZF", 6, "result was zero"),
        RegisterBit("SF", 7, "result was negative (sign bit)"),
        RegisterBit("TF", 8, "trap: single-step, #DB after each instruction"),
        RegisterBit("IF", 9, "interrupts enabled"),
        RegisterBit("DF", 10, "direction: string instructions count down"),
        RegisterBit("OF", 11, "signed overflow"),
        RegisterBit("NT", 14, "nested task"),
        RegisterBit("RF", 16, "resume: suppress instruction breakpoints once"),
        RegisterBit("VM", 17, "virtual-8086 mode"),
        RegisterBit("AC", 18, "alignment check / SMAP override (STAC/CLAC)"),
        RegisterBit("VIF", 19, "virtual interrupt flag"),
        RegisterBit("VIP", 20, "virtual interrupt pending"),
        RegisterBit("ID", 21, "CPUID is available (the bit can be toggled)"),
    )

    @property
    def iopl(self) -> int:
        """IOPL (bits 13:12): the privilege level needed for I/O instructions."""
        return (self.value >> 12) & 3

    @property
    def interrupts_enabled(self) -> bool:
        """IF: maskable interrupts are delivered."""
        return bool(self.value & (1 << 9))

    def _extra_words(self) -> list[str]:
        return [f"IOPL={self.iopl}"] if self.iopl else []


@dataclass(frozen=True)
class Cr3:
    """CR3: where the top-level page table is, plus a PCID or two cache bits.

    Attributes:
        value: the raw register.
        pcide: CR4.PCIDE; when set, bits 11:0 are a PCID instead of PWT/PCD.
    """

    value: int
    pcide: bool = False

    _TABLE_MASK: ClassVar[int] = 0x000F_FFFF_FFFF_F000  # bits 51:12 (M-1:12 on a real CPU)

    def __post_init__(self) -> None:
        _check_u64("CR3", self.value)

    @property
    def table_paddr(self) -> int:
        """Paddr of the top-level table (PML4, or PML5 with CR4.LA57)."""
        return self.value & self._TABLE_MASK

    @property
    def pcid(self) -> int | None:
        """The process-context identifier (bits 11:0), or None when CR4.PCIDE is clear."""
        return self.value & 0xFFF if self.pcide else None

    @property
    def write_through(self) -> bool | None:
        """PWT (bit 3) for the top-level table, or None when CR4.PCIDE is set."""
        return None if self.pcide else bool(self.value & (1 << 3))

    @property
    def cache_disable(self) -> bool | None:
        """PCD (bit 4) for the top-level table, or None when CR4.PCIDE is set."""
        return None if self.pcide else bool(self.value & (1 << 4))

    @property
    def hex(self) -> str:
        """The value as `0x` and 16 hex digits, for JavaScript."""
        return hex_u64(self.value)

    def __str__(self) -> str:
        """Return e.g. `CR3=0x0000000000201000 table=0x0000000000201000 PWT=0 PCD=0`."""
        words = [f"CR3={self.value:#018x}", f"table={self.table_paddr:#018x}"]
        if self.pcide:
            words.append(f"PCID={self.value & 0xFFF:#05x}")
        else:
            words.append(f"PWT={int(bool(self.write_through))}")
            words.append(f"PCD={int(bool(self.cache_disable))}")
        return " ".join(words)


@dataclass(frozen=True)
class SegmentRegister:
    """A segment register as QEMU shows it: selector and the cached descriptor.

    Attributes:
        name: `CS`, `DS`, `ES`, `SS`, `FS`, `GS`, `LDT` or `TR`.
        selector: the 16-bit selector.
        base: the segment base (64 bits in long mode).
        limit: the expanded limit (bytes - 1).
        flags: descriptor attribute bits 8-23 as QEMU keeps them (type, S, DPL, P, AVL, L, D/B, G).
        summary: QEMU's own words after the numbers, e.g. `DPL=0 CS64 [-R-]` (empty in real mode).
    """

    name: str
    selector: int
    base: int
    limit: int
    flags: int
    summary: str = ""

    @property
    def index(self) -> int:
        """Descriptor index in the GDT or LDT (selector bits 15:3)."""
        return self.selector >> 3

    @property
    def table(self) -> str:
        """`GDT` or `LDT` (selector bit 2)."""
        return "LDT" if self.selector & 4 else "GDT"

    @property
    def rpl(self) -> int:
        """Requested privilege level (selector bits 1:0)."""
        return self.selector & 3

    @property
    def present(self) -> bool:
        """P: the descriptor is present."""
        return bool(self.flags & _SEG_P)

    @property
    def dpl(self) -> int:
        """Descriptor privilege level."""
        return (self.flags >> _SEG_DPL_SHIFT) & 3

    @property
    def code(self) -> bool:
        """A code segment (S set and type bit 3 set)."""
        return bool(self.flags & _SEG_S) and bool(self.flags & _SEG_CODE)

    @property
    def long(self) -> bool:
        """L: 64-bit code segment."""
        return bool(self.flags & _SEG_L)

    @property
    def default_32(self) -> bool:
        """D/B: 32-bit default operand size (code) or big stack (data)."""
        return bool(self.flags & _SEG_DB)

    @property
    def granularity_4k(self) -> bool:
        """G: the limit counts 4 KiB units."""
        return bool(self.flags & _SEG_G)

    def to_json(self) -> dict[str, object]:
        """Return a JSON-safe dict; the base travels as a hex string."""
        return {
            "name": self.name,
            "selector": self.selector,
            "base": hex_u64(self.base),
            "limit": self.limit,
            "flags": self.flags,
            "summary": self.summary,
        }


@dataclass(frozen=True)
class DescriptorTable:
    """GDTR or IDTR: base linear address and limit (bytes - 1)."""

    base: int
    limit: int

    def to_json(self) -> dict[str, object]:
        """Return a JSON-safe dict; the base travels as a hex string."""
        return {"base": hex_u64(self.base), "limit": self.limit}


class CpuMode(enum.Enum):
    """The processor's operating mode, as a student would name it."""

    REAL = "real mode"
    VIRTUAL_8086 = "virtual-8086 mode"
    PROTECTED_16 = "16-bit protected mode"
    PROTECTED_32 = "32-bit protected mode"
    COMPATIBILITY = "compatibility mode (long mode, 32-bit code)"
    LONG_64 = "64-bit long mode"


_GENERAL_64 = ("RAX", "RBX", "RCX", "RDX", "RSI", "RDI", "RBP", "RSP")
_EXTENDED_64 = ("R8", "R9", "R10", "R11", "R12", "R13", "R14", "R15")
_GENERAL_32 = ("EAX", "EBX", "ECX", "EDX", "ESI", "EDI", "EBP", "ESP")
_SEGMENTS = ("ES", "CS", "SS", "DS", "FS", "GS", "LDT", "TR")
_FIELD_NAMES = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", *(f"r{i}" for i in range(8, 16)))


@dataclass(frozen=True)
class Registers:
    """The CPU state QEMU prints for `info registers`.

    In 32-bit output (QEMU prints `EAX=` whenever CS is not a 64-bit segment) the general
    registers hold the low 32 bits and `r8`..`r15` are None.

    Attributes:
        rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp, r8..r15: general registers.
        rip: instruction pointer.
        rflags: flags register.
        es, cs, ss, ds, fs, gs, ldt, tr: segment registers.
        gdt, idt: descriptor-table registers.
        cr0, cr2, cr3, cr4, efer: control registers and IA32_EFER.
        cpl: current privilege level.
        halted: the CPU is in HLT.
        smm: system-management mode.
        format_width: 64 if QEMU printed 64-bit names (`RAX=`), 32 for `EAX=`.
        cpu_index: the N of QEMU's `CPU#N` header, if there was one.
    """

    rax: int
    rbx: int
    rcx: int
    rdx: int
    rsi: int
    rdi: int
    rbp: int
    rsp: int
    r8: int | None
    r9: int | None
    r10: int | None
    r11: int | None
    r12: int | None
    r13: int | None
    r14: int | None
    r15: int | None
    rip: int
    rflags: int
    es: SegmentRegister
    cs: SegmentRegister
    ss: SegmentRegister
    ds: SegmentRegister
    fs: SegmentRegister
    gs: SegmentRegister
    ldt: SegmentRegister
    tr: SegmentRegister
    gdt: DescriptorTable
    idt: DescriptorTable
    cr0: int
    cr2: int
    cr3: int
    cr4: int
    efer: int
    cpl: int = 0
    halted: bool = False
    smm: bool = False
    format_width: int = 64
    cpu_index: int | None = None

    @property
    def cr0_decoded(self) -> Cr0:
        """CR0 bit by bit."""
        return Cr0(self.cr0)

    @property
    def cr3_decoded(self) -> Cr3:
        """CR3: table paddr and PCID or cache bits."""
        return Cr3(self.cr3, pcide=bool(self.cr4 & CR4_PCIDE))

    @property
    def cr4_decoded(self) -> Cr4:
        """CR4 bit by bit."""
        return Cr4(self.cr4)

    @property
    def efer_decoded(self) -> Efer:
        """IA32_EFER bit by bit."""
        return Efer(self.efer)

    @property
    def rflags_decoded(self) -> Rflags:
        """RFLAGS bit by bit."""
        return Rflags(self.rflags)

    @property
    def paging(self) -> bool:
        """CR0.PG: paging is on."""
        return bool(self.cr0 & CR0_PG)

    @property
    def mode(self) -> CpuMode:
        """The operating mode, from CR0.PE, RFLAGS.VM, EFER.LMA and the CS descriptor."""
        if not self.cr0 & CR0_PE:
            return CpuMode.REAL
        if self.rflags & RFLAGS_VM:
            return CpuMode.VIRTUAL_8086
        if self.efer & EFER_LMA:
            return CpuMode.LONG_64 if self.cs.long else CpuMode.COMPATIBILITY
        return CpuMode.PROTECTED_32 if self.cs.default_32 else CpuMode.PROTECTED_16

    @property
    def fetch_address(self) -> int:
        """The linear address of the next instruction: CS's base plus rip, except in 64-bit
        mode, where CS has no base (a woken CPU starts at base 0x8000, ip 0)."""
        if self.mode is CpuMode.LONG_64:
            return self.rip
        return (self.cs.base + self.rip) & 0xFFFF_FFFF

    @property
    def general(self) -> dict[str, int]:
        """The general registers by lowercase name, in QEMU's order, without absent ones."""
        out: dict[str, int] = {}
        for name in _FIELD_NAMES:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    def to_json(self) -> dict[str, object]:
        """Return a JSON-safe dict: every register value as a `0x` + 16-digit hex string."""
        values = {name: hex_u64(v) for name, v in self.general.items()}
        for name in ("rip", "rflags", "cr0", "cr2", "cr3", "cr4", "efer"):
            values[name] = hex_u64(getattr(self, name))
        return {
            "registers": values,
            "segments": {s.name: s.to_json() for s in self.segments},
            "gdt": self.gdt.to_json(),
            "idt": self.idt.to_json(),
            "cpl": self.cpl,
            "halted": self.halted,
            "smm": self.smm,
            "mode": self.mode.value,
            "paging": self.paging,
            "format_width": self.format_width,
            "cpu_index": self.cpu_index,
        }

    @property
    def segments(self) -> tuple[SegmentRegister, ...]:
        """The eight segment registers in QEMU's order (ES CS SS DS FS GS LDT TR)."""
        return (self.es, self.cs, self.ss, self.ds, self.fs, self.gs, self.ldt, self.tr)


# `NAME=hex` pairs; QEMU pads short names before `=` (`R8 =`). Hex is always lowercase.
_PAIR = re.compile(r"\b([A-Z][A-Z0-9]*) ?=([0-9a-f]+)(?![0-9A-Za-z])")
_SEGMENT = re.compile(
    r"^(ES|CS|SS|DS|FS|GS|LDT|TR) *=([0-9a-f]{4}) ([0-9a-f]{8}|[0-9a-f]{16}) ([0-9a-f]{8}) ([0-9a-f]{8})(.*)$"
)
_TABLE = re.compile(r"^(GDT|IDT)= +([0-9a-f]+) ([0-9a-f]+)\s*$")
_CPU_HEADER = re.compile(r"^CPU#(\d+)\s*$")


def _excerpt(text: str) -> str:
    lines = text.replace("\r\n", "\n").strip("\n").split("\n")
    shown = "\n".join(lines[:4])
    return shown + ("\n..." if len(lines) > 4 else "")


def _parse_block(lines: list[str], cpu_index: int | None, whole: str) -> Registers:
    pairs: dict[str, int] = {}
    segments: dict[str, SegmentRegister] = {}
    tables: dict[str, DescriptorTable] = {}
    for line in lines:
        seg = _SEGMENT.match(line)
        if seg:
            name = seg.group(1)
            segments.setdefault(
                name,
                SegmentRegister(
                    name=name,
                    selector=int(seg.group(2), 16),
                    base=int(seg.group(3), 16),
                    limit=int(seg.group(4), 16),
                    flags=int(seg.group(5), 16),
                    summary=seg.group(6).strip(),
                ),
            )
            continue
        table = _TABLE.match(line)
        if table:
            tables.setdefault(table.group(1), DescriptorTable(int(table.group(2), 16), int(table.group(3), 16)))
            continue
        for m in _PAIR.finditer(line):
            pairs.setdefault(m.group(1), int(m.group(2), 16))

    general: tuple[str, ...]
    wanted: tuple[str, ...]
    if "RAX" in pairs:
        width = 64
        general = _GENERAL_64
        wanted = (*_GENERAL_64, *_EXTENDED_64, "RIP", "RFL")
    elif "EAX" in pairs:
        width = 32
        general = _GENERAL_32
        wanted = (*_GENERAL_32, "EIP", "EFL")
    else:
        raise RegisterParseError(
            "could not read QEMU's `info registers` output: found neither RAX= (long mode) nor "
            f"EAX= (other modes). The text began with:\n{_excerpt(whole)}",
            whole,
        )
    missing = [n for n in (*wanted, "CR0", "CR2", "CR3", "CR4", "EFER") if n not in pairs]
    missing += [f"{n} segment" for n in _SEGMENTS if n not in segments]
    missing += [n for n in ("GDT", "IDT") if n not in tables]
    if missing:
        raise RegisterParseError(
            f"could not read QEMU's `info registers` output: {', '.join(missing)} missing. "
            f"The text began with:\n{_excerpt(whole)}",
            whole,
        )
    low = [pairs[name] for name in general]
    high = [pairs[name] if width == 64 else None for name in _EXTENDED_64]
    return Registers(
        rax=low[0], rbx=low[1], rcx=low[2], rdx=low[3], rsi=low[4], rdi=low[5], rbp=low[6], rsp=low[7],
        r8=high[0], r9=high[1], r10=high[2], r11=high[3], r12=high[4], r13=high[5], r14=high[6], r15=high[7],
        rip=pairs["RIP" if width == 64 else "EIP"],
        rflags=pairs["RFL" if width == 64 else "EFL"],
        es=segments["ES"],
        cs=segments["CS"],
        ss=segments["SS"],
        ds=segments["DS"],
        fs=segments["FS"],
        gs=segments["GS"],
        ldt=segments["LDT"],
        tr=segments["TR"],
        gdt=tables["GDT"],
        idt=tables["IDT"],
        cr0=pairs["CR0"],
        cr2=pairs["CR2"],
        cr3=pairs["CR3"],
        cr4=pairs["CR4"],
        efer=pairs["EFER"],
        cpl=pairs.get("CPL", 0),
        halted=bool(pairs.get("HLT", 0)),
        smm=bool(pairs.get("SMM", 0)),
        format_width=width,
        cpu_index=cpu_index,
    )


def parse_info_registers_all(text: str) -> tuple[Registers, ...]:
    """Read every CPU in HMP `info registers` (or `info registers -a`) output.

    Accepts CRLF or LF line endings, QEMU's `CPU#N` headers, and ignores lines it does not
    know (FPU, XMM/YMM/ZMM, DR, CCS, Code=...).

    Args:
        text: the monitor's output.

    Returns:
        One Registers per CPU, in the order printed.

    Raises:
        RegisterParseError: a CPU block lacks a register the model needs.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    blocks: list[tuple[int | None, list[str]]] = [(None, [])]
    for line in lines:
        header = _CPU_HEADER.match(line.strip())
        if header:
            blocks.append((int(header.group(1)), []))
        else:
            blocks[-1][1].append(line)
    if not any(line.strip() for line in blocks[0][1]):
        blocks.pop(0)
    if not blocks:
        raise RegisterParseError(
            "could not read QEMU's `info registers` output: it is empty.", text
        )
    return tuple(_parse_block(block, index, text) for index, block in blocks)


def parse_info_registers(text: str) -> Registers:
    """Read the first CPU of HMP `info registers` output.

    Args:
        text: the monitor's output (CRLF or LF).

    Returns:
        The registers of the first CPU printed.

    Raises:
        RegisterParseError: the text is not `info registers` output.
    """
    return parse_info_registers_all(text)[0]
