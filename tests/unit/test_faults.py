"""Parsing the guest's one-line fault report (docs/guest-contract.md)."""

from __future__ import annotations

from workbench.faults import GuestFault

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
