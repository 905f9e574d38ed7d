"""Unit tests for workbench.models.cpu: register decoding and QEMU's `info registers` text.

The three fixtures were captured from QEMU 7.2.22 (Debian 12) through HMP, CRLF line endings
and all: at reset (real mode), in the 32-bit PVH entry of a tiny guest, and after that guest
entered long mode. The Hypothesis tests render text with the format strings of QEMU's
x86_cpu_dump_state (target/i386/cpu-dump.c) and read it back.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workbench.errors import WorkbenchError
from workbench.models.cpu import (
    CpuMode,
    Cr0,
    Cr3,
    Cr4,
    DescriptorTable,
    Efer,
    RegisterParseError,
    Registers,
    RegisterValueError,
    Rflags,
    SegmentRegister,
    hex_u64,
    parse_info_registers,
    parse_info_registers_all,
)
from workbench.models.paging import PagingKind, PagingMode

FPU_LINES = [
    "FCW=037f FSW=0000 [ST=0] FTW=00 MXCSR=00001f80",
    "FPR0=0000000000000000 0000 FPR1=0000000000000000 0000",
    "FPR2=0000000000000000 0000 FPR3=0000000000000000 0000",
    "FPR4=0000000000000000 0000 FPR5=0000000000000000 0000",
    "FPR6=0000000000000000 0000 FPR7=0000000000000000 0000",
]
XMM_LINES = [
    f"XMM{i:02d}=0000000000000000 0000000000000000 XMM{i + 1:02d}=0000000000000000 0000000000000000"
    for i in range(0, 16, 2)
]
DEBUG_LINES = [
    "DR0=0000000000000000 DR1=0000000000000000 DR2=0000000000000000 DR3=0000000000000000 ",
    "DR6=00000000ffff0ff0 DR7=0000000000000400",
]

LONG_MODE = "\r\n".join([
    "",
    "CPU#0",
    "RAX=1234567890abcdef RBX=00000000000f31e0 RCX=00000000c0000080 RDX=0000000000000000",
    "RSI=00000000000cfeb0 RDI=0000000000204000 RBP=0000000000000007 RSP=0000000000007b60",
    "R8 =0000000000000000 R9 =0000000000000000 R10=0000000000000000 R11=0000000000000000",
    "R12=0000000000000000 R13=0000000000000000 R14=0000000000000000 R15=fedcba9876543210",
    "RIP=0000000000100097 RFL=00000086 [--S--P-] CPL=0 II=0 A20=1 SMM=0 HLT=1",
    "ES =0010 0000000000000000 ffffffff 00cf9300 DPL=0 DS   [-WA]",
    "CS =0008 0000000000000000 ffffffff 00af9a00 DPL=0 CS64 [-R-]",
    "SS =0010 0000000000000000 ffffffff 00cf9300 DPL=0 DS   [-WA]",
    "DS =0010 0000000000000000 ffffffff 00cf9300 DPL=0 DS   [-WA]",
    "FS =0010 0000000000000000 ffffffff 00cf9300 DPL=0 DS   [-WA]",
    "GS =0010 0000000000000000 ffffffff 00cf9300 DPL=0 DS   [-WA]",
    "LDT=0000 0000000000000000 0000ffff 00008200 DPL=0 LDT",
    "TR =0000 0000000000000000 0000ffff 00008b00 DPL=0 TSS64-busy",
    "GDT=     00000000001000a0 00000017",
    "IDT=     0000000000000000 0000ffff",
    "CR0=80010011 CR2=0000000000000000 CR3=0000000000201000 CR4=00000020",
    *DEBUG_LINES,
    "EFER=0000000000000d00",
    *FPU_LINES,
    *XMM_LINES,
    "",
])

REAL_MODE = "\r\n".join([
    "",
    "CPU#0",
    "EAX=00000000 EBX=00000000 ECX=00000000 EDX=00060fb1",
    "ESI=00000000 EDI=00000000 EBP=00000000 ESP=00000000",
    "EIP=0000fff0 EFL=00000002 [-------] CPL=0 II=0 A20=1 SMM=0 HLT=0",
    "ES =0000 00000000 0000ffff 00009300",
    "CS =f000 ffff0000 0000ffff 00009b00",
    "SS =0000 00000000 0000ffff 00009300",
    "DS =0000 00000000 0000ffff 00009300",
    "FS =0000 00000000 0000ffff 00009300",
    "GS =0000 00000000 0000ffff 00009300",
    "LDT=0000 00000000 0000ffff 00008200",
    "TR =0000 00000000 0000ffff 00008b00",
    "GDT=     00000000 0000ffff",
    "IDT=     00000000 0000ffff",
    "CR0=60000010 CR2=00000000 CR3=00000000 CR4=00000000",
    *DEBUG_LINES,
    "EFER=0000000000000000",
    *FPU_LINES,
    *XMM_LINES[:4],
    "",
])

PROTECTED_32 = "\r\n".join([
    "",
    "CPU#0",
    "EAX=deadbeef EBX=000f31e0 ECX=00100000 EDX=00000511",
    "ESI=000cfeb0 EDI=000cff58 EBP=00000007 ESP=00007b60",
    "EIP=00100007 EFL=00000006 [-----P-] CPL=0 II=0 A20=1 SMM=0 HLT=1",
    "ES =0010 00000000 ffffffff 00cf9300 DPL=0 DS   [-WA]",
    "CS =0008 00000000 ffffffff 00cf9b00 DPL=0 CS32 [-RA]",
    "SS =0010 00000000 ffffffff 00cf9300 DPL=0 DS   [-WA]",
    "DS =0010 00000000 ffffffff 00cf9300 DPL=0 DS   [-WA]",
    "FS =0010 00000000 ffffffff 00cf9300 DPL=0 DS   [-WA]",
    "GS =0010 00000000 ffffffff 00cf9300 DPL=0 DS   [-WA]",
    "LDT=0000 00000000 0000ffff 00008200 DPL=0 LDT",
    "TR =0000 00000000 0000ffff 00008b00 DPL=0 TSS32-busy",
    "GDT=     ffffffc1 00000027",
    "IDT=     00000000 0000ffff",
    "CR0=00000011 CR2=00000000 CR3=00000000 CR4=00000000",
    *DEBUG_LINES,
    "EFER=0000000000000000",
    *FPU_LINES,
    *XMM_LINES[:4],
    "",
])


# ------------------------------------------------------------------------------------------
# Decoding single registers


def test_cr0_text_names_set_bits_high_to_low() -> None:
    cr0 = Cr0(0x80050033)
    assert str(cr0) == "CR0=0x80050033 PG AM WP NE ET MP PE"
    assert cr0.set_names == ("PG", "AM", "WP", "NE", "ET", "MP", "PE")
    assert cr0.bits["PG"] and cr0.bits["WP"] and not cr0.bits["CD"]
    assert list(cr0.bits) == ["PE", "MP", "EM", "TS", "ET", "NE", "WP", "AM", "NW", "CD", "PG"]
    assert cr0["NE"] and not cr0["TS"]
    assert cr0.paging and cr0.protected_mode and cr0.write_protect
    assert cr0.hex == "0x0000000080050033"
    with pytest.raises(KeyError, match="CR0 has no bit named 'LA57'"):
        cr0["LA57"]


def test_unknown_bits_are_shown_not_hidden() -> None:
    assert str(Cr0(0x11 | 1 << 27)) == "CR0=0x08000011 ET PE bit27"
    assert Cr0(1 << 27).unknown_bits == 1 << 27
    assert str(Cr4(1 << 40)) == "CR4=0x10000000000 bit40"


def test_cr4_efer_and_rflags() -> None:
    cr4 = Cr4(0x1020 | 1 << 22 | 1 << 17)
    assert str(cr4) == "CR4=0x00421020 PKE PCIDE LA57 PAE"
    assert cr4.pae and cr4.la57 and cr4.pcide
    efer = Efer(0xD01)
    assert str(efer) == "EFER=0x0000000000000d01 NXE LMA LME SCE"
    assert efer.long_mode_active and efer.no_execute
    flags = Rflags(0x3246)
    assert str(flags) == "RFLAGS=0x00003246 IF ZF PF IOPL=3"
    assert flags.iopl == 3 and flags.interrupts_enabled and flags.unknown_bits == 0
    assert str(Rflags(0x2)) == "RFLAGS=0x00000002"


def test_describe_gives_one_line_per_bit_with_its_meaning() -> None:
    lines = Efer(0xD00).describe().splitlines()
    assert lines[0] == "EFER=0x0000000000000d00 NXE LMA LME"
    assert lines[1].split()[:4] == ["TCE", "bit", "15", "="]
    assert any("NXE    bit 11 = 1  no-execute enable" in line for line in lines)
    assert len(lines) == 1 + len(Efer.LAYOUT)


@pytest.mark.parametrize("register", [Cr0, Cr4, Efer, Rflags])
def test_layouts_have_unique_names_and_bits(register: type[Cr0 | Cr4 | Efer | Rflags]) -> None:
    names = [b.name for b in register.LAYOUT]
    bits = [b.bit for b in register.LAYOUT]
    assert len(set(names)) == len(names) and len(set(bits)) == len(bits)
    assert all(b.meaning for b in register.LAYOUT)


def test_sdm_bit_positions() -> None:
    def position(register: type[Cr0 | Cr4 | Efer | Rflags], name: str) -> int:
        return next(b.bit for b in register.LAYOUT if b.name == name)

    assert position(Cr0, "PG") == 31 and position(Cr0, "WP") == 16 and position(Cr0, "PE") == 0
    assert position(Cr4, "PAE") == 5 and position(Cr4, "LA57") == 12 and position(Cr4, "PKE") == 22
    assert position(Cr4, "SMEP") == 20 and position(Cr4, "SMAP") == 21 and position(Cr4, "PKS") == 24
    assert position(Efer, "LME") == 8 and position(Efer, "LMA") == 10 and position(Efer, "NXE") == 11
    assert position(Rflags, "IF") == 9 and position(Rflags, "VM") == 17 and position(Rflags, "AC") == 18


def test_cr3_with_and_without_pcid() -> None:
    plain = Cr3(0x201018)
    assert plain.table_paddr == 0x201000 and plain.write_through and plain.cache_disable and plain.pcid is None
    assert str(plain) == "CR3=0x0000000000201018 table=0x0000000000201000 PWT=1 PCD=1"
    tagged = Cr3(0x201005, pcide=True)
    assert tagged.pcid == 5 and tagged.write_through is None
    assert str(tagged) == "CR3=0x0000000000201005 table=0x0000000000201000 PCID=0x005"
    assert tagged.hex == "0x0000000000201005"


@pytest.mark.parametrize("value", [-1, 1 << 64])
def test_values_must_be_64_bit(value: int) -> None:
    with pytest.raises(RegisterValueError, match="64-bit"):
        Cr0(value)
    with pytest.raises(WorkbenchError):
        Cr3(value)


def test_hex_u64_is_fixed_width() -> None:
    assert hex_u64(0) == "0x0000000000000000"
    assert hex_u64((1 << 64) - 1) == "0xffffffffffffffff"


# ------------------------------------------------------------------------------------------
# `info registers`, captured


def test_long_mode_output() -> None:
    regs = parse_info_registers(LONG_MODE)
    assert regs.format_width == 64 and regs.cpu_index == 0
    assert regs.rax == 0x1234567890ABCDEF and regs.r15 == 0xFEDCBA9876543210 and regs.r8 == 0
    assert regs.rcx == 0xC0000080 and regs.rsp == 0x7B60 and regs.rdi == 0x204000
    assert regs.rip == 0x100097 and regs.rflags == 0x86
    assert regs.cr0 == 0x80010011 and regs.cr2 == 0 and regs.cr3 == 0x201000 and regs.cr4 == 0x20
    assert regs.efer == 0xD00
    assert regs.cpl == 0 and regs.halted and not regs.smm
    assert regs.gdt == DescriptorTable(0x1000A0, 0x17) and regs.idt == DescriptorTable(0, 0xFFFF)
    assert regs.cs == SegmentRegister("CS", 0x8, 0, 0xFFFFFFFF, 0x00AF9A00, "DPL=0 CS64 [-R-]")
    assert regs.cs.long and regs.cs.code and regs.cs.present and regs.cs.dpl == 0 and regs.cs.index == 1
    assert regs.ss.default_32 and not regs.ss.code and regs.ss.granularity_4k
    assert regs.tr.summary == "DPL=0 TSS64-busy" and regs.ldt.summary == "DPL=0 LDT"
    assert [s.name for s in regs.segments] == ["ES", "CS", "SS", "DS", "FS", "GS", "LDT", "TR"]
    assert regs.mode is CpuMode.LONG_64 and regs.paging
    assert str(regs.cr0_decoded) == "CR0=0x80010011 PG WP ET PE"
    assert str(regs.efer_decoded) == "EFER=0x0000000000000d00 NXE LMA LME"
    assert str(regs.cr4_decoded) == "CR4=0x00000020 PAE"
    assert str(regs.rflags_decoded) == "RFLAGS=0x00000086 SF PF"
    assert regs.cr3_decoded.table_paddr == 0x201000
    assert list(regs.general) == ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
                                  "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"]


def test_registers_feed_the_paging_model() -> None:
    regs = parse_info_registers(LONG_MODE)
    assert PagingMode.from_registers(regs).kind is PagingKind.FOUR_LEVEL
    five = parse_info_registers(LONG_MODE.replace("CR4=00000020", "CR4=00001020"))
    assert PagingMode.from_registers(five).kind is PagingKind.FIVE_LEVEL
    assert PagingMode.from_registers(parse_info_registers(REAL_MODE)).kind is PagingKind.OFF


def test_real_mode_output() -> None:
    regs = parse_info_registers(REAL_MODE)
    assert regs.format_width == 32 and regs.mode is CpuMode.REAL and not regs.paging
    assert regs.rdx == 0x60FB1 and regs.rip == 0xFFF0 and regs.rflags == 2
    assert regs.r8 is None and regs.r15 is None and "r8" not in regs.general
    assert regs.cs.selector == 0xF000 and regs.cs.base == 0xFFFF0000 and regs.cs.summary == ""
    assert regs.cr0 == 0x60000010 and str(regs.cr0_decoded) == "CR0=0x60000010 CD NW ET"
    assert not regs.halted


def test_protected_mode_output() -> None:
    regs = parse_info_registers(PROTECTED_32)
    assert regs.mode is CpuMode.PROTECTED_32 and not regs.paging
    assert regs.rax == 0xDEADBEEF and regs.rip == 0x100007
    assert regs.cs.summary == "DPL=0 CS32 [-RA]" and regs.cs.default_32 and not regs.cs.long
    assert regs.gdt == DescriptorTable(0xFFFFFFC1, 0x27)
    assert regs.tr.summary == "DPL=0 TSS32-busy"


def test_lf_endings_and_no_header_read_the_same() -> None:
    crlf = parse_info_registers(LONG_MODE)
    lf = parse_info_registers(LONG_MODE.replace("\r\n", "\n").replace("CPU#0\n", ""))
    assert lf == Registers(**{**crlf.__dict__, "cpu_index": None})


def test_other_modes_from_qemus_format() -> None:
    # Compatibility mode: 32-bit names (CS is not 64-bit) but 64-bit GDT and CR lines (LMA).
    compat = "\n".join([
        "EAX=00000001 EBX=00000002 ECX=00000003 EDX=00000004",
        "ESI=00000005 EDI=00000006 EBP=00000007 ESP=00000008",
        "EIP=00401000 EFL=00000202 [-------] CPL=3 II=0 A20=1 SMM=0 HLT=0",
        *[f"{name:<3}=002b 00000000 ffffffff 00cff300 DPL=3 DS   [-WA]" for name in ("ES", "SS", "DS", "FS", "GS")],
        "CS =0023 00000000 ffffffff 00cffb00 DPL=3 CS32 [-RA]",
        "LDT=0000 0000000000000000 0000ffff 00008200 DPL=0 LDT",
        "TR =0040 fffffe0000003000 00004087 00008b00 DPL=0 TSS64-busy",
        "GDT=     fffffe0000001000 0000007f",
        "IDT=     fffffe0000000000 00000fff",
        "CR0=80050033 CR2=00007f0000001000 CR3=0000000001234000 CR4=00350ef0",
        "EFER=0000000000000d01",
        "CCS=00000000 CCD=00000001 CCO=EFLAGS",
        "Code=90 90 <c3> 90",
    ])
    regs = parse_info_registers(compat)
    assert regs.mode is CpuMode.COMPATIBILITY and regs.cpl == 3 and regs.format_width == 32
    assert regs.tr.base == 0xFFFFFE0000003000 and regs.gdt.base == 0xFFFFFE0000001000
    assert regs.cr2 == 0x7F0000001000
    v86 = compat.replace("EFL=00000202", "EFL=00020202").replace("EFER=0000000000000d01", "EFER=0000000000000000")
    assert parse_info_registers(v86).mode is CpuMode.VIRTUAL_8086
    sixteen = v86.replace("EFL=00020202", "EFL=00000202").replace("00cffb00 DPL=3 CS32", "008ffb00 DPL=3 CS16")
    assert parse_info_registers(sixteen).mode is CpuMode.PROTECTED_16


def test_all_cpus() -> None:
    second = LONG_MODE.replace("CPU#0", "CPU#1").replace("RAX=1234567890abcdef", "RAX=0000000000000042")
    both = parse_info_registers_all(LONG_MODE + second)
    assert [r.cpu_index for r in both] == [0, 1]
    assert [r.rax for r in both] == [0x1234567890ABCDEF, 0x42]
    assert parse_info_registers(LONG_MODE + second).cpu_index == 0


def test_avx_and_other_extra_lines_are_ignored() -> None:
    extra = LONG_MODE.replace("EFER=0000000000000d00", "\r\n".join([
        "CCS=0000000000000000 CCD=0000000000000001 CCO=ADDQ",
        "EFER=0000000000000d00",
        "YMM00=0000000000000000 0000000000000000 0000000000000000 0000000000000000",
        "Opmask00=0000000000000000 Opmask01=0000000000000000 Opmask02=0000000000000000 Opmask03=0000000000000000",
        "Code=00 00 <f4> eb fd",
    ]))
    assert parse_info_registers(extra) == parse_info_registers(LONG_MODE)


def test_json_form_never_sends_big_numbers() -> None:
    data = parse_info_registers(LONG_MODE).to_json()
    registers = data["registers"]
    assert isinstance(registers, dict)
    assert registers["r15"] == "0xfedcba9876543210"
    assert registers["efer"] == "0x0000000000000d00"
    assert all(isinstance(v, str) and len(v) == 18 for v in registers.values())
    assert data["mode"] == "64-bit long mode" and data["paging"] is True
    text = json.dumps(data)

    def big_numbers(value: object) -> bool:
        if isinstance(value, bool):
            return False
        if isinstance(value, int):
            return value > 2**53
        if isinstance(value, dict):
            return any(big_numbers(v) for v in value.values())
        if isinstance(value, list):
            return any(big_numbers(v) for v in value)
        return False

    assert not big_numbers(json.loads(text))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("unknown command: 'info registres'\r\n", "neither RAX="),
        (LONG_MODE.replace("CR3=0000000000201000 ", ""), "CR3 missing"),
        (LONG_MODE.replace("GDT=", "XDT="), "GDT missing"),
        (LONG_MODE.replace("TR =0000", "TX =0000"), "TR segment missing"),
        (REAL_MODE.replace("EIP=0000fff0 ", ""), "EIP missing"),
    ],
)
def test_bad_text_is_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(RegisterParseError, match=message) as caught:
        parse_info_registers(text)
    assert isinstance(caught.value, WorkbenchError) and caught.value.text == text


# ------------------------------------------------------------------------------------------
# Round trips through QEMU's format strings


def render_64(values: dict[str, int], segments: list[tuple[int, int, int, int]]) -> str:
    """x86_cpu_dump_state() with HF_CS64 and HF_LMA set (the 64-bit branch)."""
    v = values
    lines = [
        f"RAX={v['rax']:016x} RBX={v['rbx']:016x} RCX={v['rcx']:016x} RDX={v['rdx']:016x}",
        f"RSI={v['rsi']:016x} RDI={v['rdi']:016x} RBP={v['rbp']:016x} RSP={v['rsp']:016x}",
        f"R8 ={v['r8']:016x} R9 ={v['r9']:016x} R10={v['r10']:016x} R11={v['r11']:016x}",
        f"R12={v['r12']:016x} R13={v['r13']:016x} R14={v['r14']:016x} R15={v['r15']:016x}",
        f"RIP={v['rip']:016x} RFL={v['rflags']:08x} [-------] CPL={v['cpl']} II=0 A20=1 SMM=0 HLT=0",
    ]
    for name, (selector, base, limit, flags) in zip(("ES", "CS", "SS", "DS", "FS", "GS", "LDT", "TR"), segments,
                                                    strict=True):
        lines.append(f"{name:<3}={selector:04x} {base:016x} {limit:08x} {flags & 0x00FFFF00:08x} DPL=0 DS   [-WA]")
    lines += [
        f"GDT=     {v['gdt']:016x} {v['gdt_limit']:08x}",
        f"IDT=     {v['idt']:016x} {v['idt_limit']:08x}",
        f"CR0={v['cr0']:08x} CR2={v['cr2']:016x} CR3={v['cr3']:016x} CR4={v['cr4']:08x}",
        *DEBUG_LINES,
        f"EFER={v['efer']:016x}",
    ]
    return "\r\n".join(["", "CPU#0", *lines, ""])


u64 = st.integers(0, (1 << 64) - 1)
u32 = st.integers(0, (1 << 32) - 1)
segment = st.tuples(st.integers(0, 0xFFFF), u64, u32, u32)
REGISTER_NAMES = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
                  "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip", "cr2", "cr3", "efer", "gdt", "idt")


@given(
    values=st.fixed_dictionaries({
        **{name: u64 for name in REGISTER_NAMES},
        "rflags": u32, "cr0": u32, "cr4": u32, "cpl": st.integers(0, 3),
        "gdt_limit": st.integers(0, 0xFFFF), "idt_limit": st.integers(0, 0xFFFF),
    }),
    segments=st.lists(segment, min_size=8, max_size=8),
)
def test_parse_reads_back_every_value_of_the_64_bit_format(
    values: dict[str, int], segments: list[tuple[int, int, int, int]]
) -> None:
    regs = parse_info_registers(render_64(values, segments))
    for name in (*REGISTER_NAMES[:-2], "rflags", "cr0", "cr4", "cpl"):
        assert getattr(regs, name) == values[name], name
    assert regs.gdt == DescriptorTable(values["gdt"], values["gdt_limit"])
    assert regs.idt == DescriptorTable(values["idt"], values["idt_limit"])
    for parsed, (selector, base, limit, flags) in zip(regs.segments, segments, strict=True):
        assert (parsed.selector, parsed.base, parsed.limit, parsed.flags) == (
            selector, base, limit, flags & 0x00FFFF00)
    registers = regs.to_json()["registers"]
    assert isinstance(registers, dict) and all(len(v) == 18 for v in registers.values())


@given(values=st.lists(u32, min_size=14, max_size=14))
def test_parse_reads_back_every_value_of_the_32_bit_format(values: list[int]) -> None:
    eax, ebx, ecx, edx, esi, edi, ebp, esp, eip, efl, cr0, cr2, cr3, cr4 = values
    text = "\n".join([
        f"EAX={eax:08x} EBX={ebx:08x} ECX={ecx:08x} EDX={edx:08x}",
        f"ESI={esi:08x} EDI={edi:08x} EBP={ebp:08x} ESP={esp:08x}",
        f"EIP={eip:08x} EFL={efl:08x} [-------] CPL=0 II=0 A20=1 SMM=1 HLT=1",
        *[f"{name:<3}=0000 00000000 0000ffff 00009300" for name in ("ES", "CS", "SS", "DS", "FS", "GS", "LDT", "TR")],
        "GDT=     00000000 0000ffff",
        "IDT=     00000000 0000ffff",
        f"CR0={cr0:08x} CR2={cr2:08x} CR3={cr3:08x} CR4={cr4:08x}",
        "EFER=0000000000000000",
    ])
    regs = parse_info_registers(text)
    assert (regs.rax, regs.rbx, regs.rcx, regs.rdx, regs.rsi, regs.rdi, regs.rbp, regs.rsp) == tuple(values[:8])
    assert (regs.rip, regs.rflags, regs.cr0, regs.cr2, regs.cr3, regs.cr4) == tuple(values[8:])
    assert regs.smm and regs.halted and regs.format_width == 32


@given(value=u64)
def test_every_set_bit_appears_once_in_the_text(value: int) -> None:
    for register in (Cr0(value), Cr4(value), Efer(value)):
        words = str(register).split()[1:]
        named = {b.name for b in register.LAYOUT if value & b.mask}
        unknown = {f"bit{i}" for i in range(64) if register.unknown_bits >> i & 1}
        assert set(words) == named | unknown and len(words) == len(named | unknown)
