"""The greeter of lesson 09, built both ways: as a unikernel, and as a static Linux program.

The Linux guest with the container boots in lesson 09 itself (once per run: it takes seconds);
here the greeter's two builds, its teaching bug, the attack on the unikernel, and the fix.
"""

from __future__ import annotations

import subprocess

import pytest
from elftools.elf.elffile import ELFFile

from workbench import Machine, Workspace
from workbench.kernel.build import BuildError

pytestmark = pytest.mark.qemu

GREETER = "apps/greeter"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """From the skeleton: the greeter with its bug."""
    return Workspace.open("greeter", parent=tmp_path_factory.mktemp("greeter"))


def attack(name_at: int, return_address_at: int) -> str:
    """A greet request that overwrites the return address with name[]'s own address."""
    payload = b"\xcc" * (return_address_at - name_at) + name_at.to_bytes(8, "little")
    return "greet " + payload.hex()


def test_the_unikernel_links_only_what_its_configuration_selects(workspace: Workspace) -> None:
    image = workspace.build(app=GREETER)
    assert image.components == ("console-input", "page-tables", "interrupts", "fault-report", "symbols")
    assert image.app == GREETER and "greet" in image.symbols and "command_alloc" not in image.symbols
    assert image.symbol("app_request_limit").kind == "object"


def test_the_unikernel_serves_and_its_stack_refuses_to_execute(workspace: Workspace) -> None:
    image = workspace.build(app=GREETER)
    with Machine(image, name="greeter") as machine:
        machine.wait_for("app: greeter, running as a unikernel\n")
        machine.wait_for("> ")
        assert machine.request("hello Ada").line == "ok hello greeting=Hello,Ada!"
        leak = machine.request("greet 416461")
        name_at, return_at = leak.number("name-at"), leak.number("return-address-at")
        assert leak.number("length") == 3 and return_at - name_at >= 32
        assert image.section(".bss").vaddr <= name_at < image.section(".bss").end  # the boot stack
        machine.send_line(attack(name_at, return_at))
        fault = machine.wait(timeout=10).fault
        assert fault is not None and fault.vector == 14 and fault.rip == fault.cr2 == name_at
        assert "instruction-fetch" in fault.error_decoded and "present" in fault.error_decoded
        walk = machine.snapshot().walk(name_at)
        assert "XD" in walk.steps[-1].flags and not walk.permissions.executable


def test_the_fixed_greeter_cuts_the_name_and_goes_on(workspace: Workspace) -> None:
    workspace.solve("greet-bound")
    try:
        with Machine(workspace.build(app=GREETER), name="greeter") as machine:
            machine.wait_for("> ")
            leak = machine.request("greet 41")
            machine.send_line(attack(leak.number("name-at"), leak.number("return-address-at")))
            machine.wait_for("ok greet length=32 ")
            machine.wait_for("> ")
            assert machine.request("hello Ada").ok
    finally:
        workspace.reset()


def test_the_linux_program_is_static_and_answers_the_same(workspace: Workspace) -> None:
    program = workspace.build_linux_program(app=GREETER)
    with program.open("rb") as stream:
        elf = ELFFile(stream)
        assert elf["e_type"] == "ET_EXEC"  # not position-independent: the same addresses every run
        assert not any(segment["p_type"] == "PT_INTERP" for segment in elf.iter_segments())  # static
        stack = next(s for s in elf.iter_segments() if s["p_type"] == "PT_GNU_STACK")
        assert not stack["p_flags"] & 1  # its stack is not executable either
    done = subprocess.run([str(program)], input="hello Ada\ngreet 41\nexit 3\n", capture_output=True, text=True,
                          timeout=10, check=False)
    assert done.returncode == 3
    lines = done.stdout.replace("> ", "").splitlines()
    assert lines[0] == "app: greeter, running as a Linux program"
    assert lines[1] == "ok hello greeting=Hello,Ada!" and lines[2].startswith("ok greet length=1 name-at=0x")


def test_an_application_cannot_use_what_linux_does_not_provide(workspace: Workspace) -> None:
    workspace.write("apps/greeter/extra.c", '#include "kernel.h"\nvoid *grab(void) { return heap_alloc_pages(1); }\n')
    try:
        with pytest.raises(BuildError) as raised:
            workspace.build_linux_program(app=GREETER)
        assert "heap_alloc_pages" in raised.value.errors[0].message
    finally:
        workspace.reset()
