"""Parsing the guest's one-line fault report (docs/guest-contract.md)."""

from __future__ import annotations

from workbench.models.faults import GuestFault, decode_page_fault_error, describe_page_fault_error

PAGE_FAULT = (
    'FAULT vector=14 name=#PF "Page Fault" error=0x2 (not-present write supervisor) '
    "rip=0xffffffff80101234 <app_main+0x1c> rsp=0xffffffff80108f40 cr2=0x0"
)
INVALID_OPCODE = (
    'FAULT vector=6 name=#UD "Invalid Opcode" error=none '
    "rip=0xffffffff80100abc <scenario_invalid_opcode+0x4> rsp=0xffffffff80108f40"
)


def test_a_page_fault_line_is_parsed_field_by_field() -> None:
    fault = GuestFault.parse("kernel: noise\n" + PAGE_FAULT + "\n")
    assert fault is not None
    assert (fault.vector, fault.mnemonic, fault.name) == (14, "PF", "Page Fault")
    assert fault.error_code == 2
    assert fault.error_decoded == ("not-present", "write", "supervisor")
    assert (fault.rip, fault.symbol, fault.function) == (0xFFFFFFFF80101234, "app_main+0x1c", "app_main")
    assert (fault.rsp, fault.cr2) == (0xFFFFFFFF80108F40, 0)


def test_a_fault_without_error_code_or_cr2() -> None:
    fault = GuestFault.parse(INVALID_OPCODE)
    assert fault is not None
    assert fault.error_code is None and fault.error_decoded == () and fault.cr2 is None
    assert "does not know" in fault.explain()


def test_a_null_write_is_explained_as_the_null_page() -> None:
    fault = GuestFault.parse(PAGE_FAULT)
    assert fault is not None
    text = fault.explain()
    assert "write to vaddr 0x0" in text and "not mapped" in text and "null page" in text


def test_lines_that_are_not_fault_reports_are_ignored() -> None:
    assert GuestFault.parse("app: FAULT vector=14 is what you would see\n") is None
    assert GuestFault.parse("") is None


def test_every_bit_of_a_page_fault_error_code_is_named() -> None:
    names = [name for name, _, _ in decode_page_fault_error(0)]
    assert names == ["P", "W/R", "U/S", "RSVD", "I/D", "PK", "SS", "SGX"]
    decoded = {name: on for name, on, _ in decode_page_fault_error(0x8061)}  # P, PK, SS, SGX
    assert decoded == {"P": True, "W/R": False, "U/S": False, "RSVD": False, "I/D": False, "PK": True,
                       "SS": True, "SGX": True}
    described = describe_page_fault_error(0x21)
    assert "(P=1 W/R=0 U/S=0 RSVD=0 I/D=0 PK=1 SS=0 SGX=0)" in described
    assert "a protection-key right forbade it" in described and "shadow-stack" not in described


def test_a_reserved_bit_fault_is_not_explained_as_unmapped() -> None:
    line = PAGE_FAULT.replace("error=0x2 (not-present write supervisor)",
                              "error=0x8 (not-present read supervisor reserved-bit)")
    fault = GuestFault.parse(line)
    assert fault is not None
    text = fault.explain()
    assert "not mapped" not in text and "reserved bit set" in text and "RSVD=1" in text
    assert "cannot name the entry" in text  # no walk given
