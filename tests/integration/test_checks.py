"""The checking API on the real guest: each failure says what was expected, what the guest did,
and where it differs, as text and as HTML with the lessons' views; a Grade gives points per part."""

from __future__ import annotations

import pytest

from workbench import Machine, Workspace
from workbench.classroom.checks import (
    CheckFailed,
    Grade,
    expect_build,
    expect_console,
    expect_fault,
    expect_mapping,
    expect_no_wx,
    expect_reply,
)
from workbench.kernel.image import Image
from workbench.models.paging import PAGE_SIZE_2M, PAGE_SIZE_4K

pytestmark = pytest.mark.qemu


def test_a_mapping_that_differs_names_the_entry_and_shows_the_walk(image: Image) -> None:
    with Machine(image) as machine:
        machine.wait_for("> ")
        snapshot = machine.snapshot()
        rodata = image.symbol("__rodata_start").vaddr
        walk = expect_mapping(snapshot, rodata, permissions="-r--", page_size=PAGE_SIZE_4K, image=image)
        assert walk.ok
        with pytest.raises(CheckFailed) as failed:
            expect_mapping(snapshot, rodata, permissions="-rw-", image=image)
        text = str(failed.value)
        assert "expected: " in text and "-rw-" in text and "found:    -r--" in text
        assert "the PT entry" in text and "R/W clear" in text and "PML4" in text  # the step, then the walk
        assert "Translate" in failed.value._repr_html_()  # the Translator's static view
        with pytest.raises(CheckFailed, match="not mapped"):
            expect_mapping(snapshot, 0, permissions="-rw-")
        direct_map = image.symbol("__direct_map_base").vaddr
        with pytest.raises(CheckFailed, match="ends at the PD, which maps 2 MiB pages"):
            expect_mapping(snapshot, direct_map, page_size=PAGE_SIZE_4K)
        expect_mapping(machine, direct_map, page_size=PAGE_SIZE_2M, frame=0)


def test_faults_console_and_replies(image: Image) -> None:
    with Machine(image) as machine:
        expect_console(machine, "> ")
        expect_reply(machine, "alloc 1", pages=1)
        with pytest.raises(CheckFailed, match="wrong pages"):
            expect_reply(machine, "alloc 2", pages=3)
        with pytest.raises(CheckFailed, match="refused"):
            expect_reply(machine, "no-such-request")
        machine.send_line("write 0x0 1")
        outcome = expect_fault(machine, vector=14, function="command_write", cr2=0, access="write", present=False)
        with pytest.raises(CheckFailed) as failed:
            expect_fault(outcome, access="read")
        assert "FAULT vector=14" in str(failed.value)  # the guest's own line
        with pytest.raises(CheckFailed, match="did not print") as failed:
            expect_console(machine, "never printed", timeout=0.5)
        assert "the guest faulted: FAULT vector=14" in str(failed.value)


def test_a_build_error_is_shown_at_its_line_and_a_grade_counts_parts(workspace: Workspace) -> None:
    workspace.replace("app/main.c", "console_printf(\"app: Hello", "console_printf(\"app: Hello\" x")
    grade = Grade("Exercise")
    with grade.part("it builds", points=2):
        expect_build(workspace)
    with grade.part("a part that passes"):
        assert grade.parts[0].failure is not None
    with grade.part("a student's own mistake"):
        raise NameError("name 'x' is not defined")
    assert (grade.points, grade.max_points) == (1.0, 4.0)
    failure = grade.parts[0].failure
    assert failure is not None and "app/main.c:" in failure.found and "^" in str(failure)
    bundle = grade._repr_mimebundle_()
    assert float(bundle["text/plain"]) == 1.0  # what nbgrader reads as the points earned
    assert "app/main.c" in bundle["text/html"] and "NameError" in bundle["text/html"]
    assert "FAILED (2) it builds" in str(grade)


def test_the_audit_fails_with_the_map(workspace: Workspace) -> None:
    workspace.replace("kernel/paging.c", "map_image(__text_start, __text_end, PTE_PRESENT);",
                      "map_image(__text_start, __text_end, PTE_PRESENT | PTE_WRITABLE);")
    image = workspace.build()
    with Machine(image) as machine:
        machine.wait_for("> ")
        with pytest.raises(CheckFailed) as failed:
            expect_no_wx(machine, image)
    assert "rwx" in str(failed.value) and ".text should be r-x" in str(failed.value)
    assert "mapped regions" in failed.value._repr_html_() or "<svg" in failed.value._repr_html_()
