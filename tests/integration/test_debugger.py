"""The source-level debugger on the real unikernel in real QEMU, through its real gdbstub:
breakpoints of each kind, 32-bit boot code, the switch into long mode, steps, variables by
name against the guest's own memory, unwinding (through an interrupt too), watchpoints, and
how a run ends. The DWARF reading is checked for both compilers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from workbench.debug.debugger import Debugger, DebuggerError
from workbench.debug.debuginfo import DebugInfo, DebugInfoError, NoSuchLine
from workbench.debug.dwarf.expressions import Context, evaluate
from workbench.guest.machine import Machine
from workbench.kernel.image import Image, SymbolNotFound
from workbench.kernel.workspace import Workspace

pytestmark = pytest.mark.qemu
LONG_MODE = "kernel/enter_long_mode.h"  # boot.S's steps 6 to 9, included by boot.S (and smp/entry.S)


@pytest.fixture(params=["gcc", "clang"])
def any_image(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Image:
    return Workspace.open(request.param, parent=tmp_path_factory.mktemp(request.param)).build(toolchain=request.param)


@pytest.fixture
def debugger(image: Image) -> Iterator[Debugger]:
    booted = Debugger.boot(image)
    yield booted
    booted.close()


def line_of(image: Image, path: str, text: str) -> int:
    assert image.source_dir is not None
    lines = (image.source_dir / path).read_text().splitlines()
    return next(number for number, line in enumerate(lines, 1) if text in line)


def test_the_dwarf_maps_lines_and_addresses_both_ways(any_image: Image) -> None:
    info = DebugInfo.load(any_image)
    entry = any_image.symbol("pvh_start32").vaddr
    row = info.location(entry)
    assert row is not None and row.path == "kernel/boot.S" and row.line == line_of(any_image, "kernel/boot.S",
                                                                                  "mov	%ebx, %esi")
    cr4 = line_of(any_image, LONG_MODE, "mov	%eax, %cr4")  # an included file keeps its own lines
    line, vaddrs = info.addresses("enter_long_mode.h", cr4)
    boot = any_image.symbol("pvh_start32")
    assert line == cr4 and len(vaddrs) == 1 and boot.vaddr < vaddrs[0] < boot.vaddr + boot.size
    found = info.location(vaddrs[0])
    assert found is not None and (found.path, found.line) == (LONG_MODE, cr4)
    call = line_of(any_image, "kernel/main.c", "paging_init(ram_ranges")
    with pytest.raises(NoSuchLine, match=r"ambiguous: app/main\.c, kernel/main\.c"):
        info.addresses("main.c", call)
    line, vaddrs = info.addresses("kernel/main.c", call)
    assert line == call and vaddrs
    for vaddr in vaddrs:
        found = info.location(vaddr)
        assert found is not None and (found.path, found.line) == ("kernel/main.c", call)
    function = info.function("paging_init")
    assert [p.name for p in function.parameters] == ["ram_ranges", "range_count"]
    assert function.parameters[0].type.name == "const uint64_t *"
    assert info.function_at(function.low) is function
    rule = info.cfa_rule(function.low)  # at the entry: the CFA is RSP + 8, the return address at CFA - 8
    assert rule is not None and (rule.cfa_register, rule.cfa_offset, rule.saved[16]) == (7, 8, -8)
    assert any(scope.kind == "inlined" for scope in function.scope.children), "an -O2 kernel inlines something here"
    ticks = info.globals["timer_ticks"].location  # clang writes DW_OP_addrx: an index into .debug_addr
    assert ticks is not None and ticks.expression is not None
    place = evaluate(ticks.expression, Context({}, lambda vaddr, length: b""))[0][0]
    assert (place.kind, place.address) == ("memory", any_image.symbol("timer_ticks").vaddr)


def test_a_debug_file_that_does_not_belong_to_the_image_is_refused(image: Image, tmp_path: Path) -> None:
    copy = tmp_path / "unikernel.elf"
    copy.write_bytes(image.path.read_bytes())
    debug = image.path.with_name("unikernel.debug").read_bytes()
    (tmp_path / "unikernel.debug").write_bytes(debug[:-1] + bytes([debug[-1] ^ 1]))
    with pytest.raises(DebugInfoError, match="does not belong"):
        DebugInfo.load(Image.load(copy))
    (tmp_path / "unikernel.debug").unlink()
    with pytest.raises(DebugInfoError, match="cannot be read"):
        DebugInfo.load(Image.load(copy))


@pytest.mark.parametrize(("name", "hint"), [
    ("PAGING_INI", " Did you mean: paging_init?"),  # case aside
    ("command_", " Did you mean: command_alloc, command_bench, command_call, command_exit, command_fault?"),
    ("zzz", ""),
])
def test_a_missing_function_or_symbol_names_up_to_five_close_ones(image: Image, name: str, hint: str) -> None:
    with pytest.raises(DebugInfoError) as missing_function:
        DebugInfo.load(image).function(name)
    assert str(missing_function.value) == f"the debug information has no function {name!r}.{hint}"
    with pytest.raises(SymbolNotFound) as missing_symbol:
        image.symbol(name)
    assert str(missing_symbol.value) == f"the image has no symbol {name!r}.{hint}"


def test_boot_stops_at_the_first_instruction_in_32_bit_mode(debugger: Debugger) -> None:
    stop = debugger.stop
    image = debugger.image
    assert stop is not None and stop.reason == "entry"
    assert stop.pc == image.paddr_of(image.entry) and stop.vaddr == image.entry  # running at its load address
    assert (stop.function, stop.path) == ("pvh_start32", "kernel/boot.S")
    assert stop.mode == "32-bit protected mode"
    assert debugger.registers()["cr0"] & 1 and not debugger.registers()["cr0"] >> 31  # PE on, paging off


def test_breakpoints_by_line_in_32_bit_code_by_function_by_line_and_by_vaddr(debugger: Debugger) -> None:
    image = debugger.image
    cr3_line = line_of(image, LONG_MODE, "mov	%eax, %cr3")  # step 7, included by boot.S
    spots = [debugger.break_at(f"{LONG_MODE}:{cr3_line}"), debugger.break_at("kernel_main"),
             debugger.break_at(f"kernel/main.c:{line_of(image, 'kernel/main.c', 'paging_init(ram_ranges')}"),
             debugger.break_at(image.symbol("app_main").vaddr)]
    seen = []
    for _ in spots:
        stop = debugger.cont()
        assert stop.reason == "breakpoint", stop
        seen.append((stop.number, stop.function, stop.line))
    assert [number for number, _, _ in seen] == [s.number for s in spots]
    assert seen[0][1:] == ("pvh_start32", cr3_line)  # hit in 32-bit code, through the load address
    assert len(spots[0].vaddrs) == 1  # this image has no smp: boot.S is the fragment's one includer
    assert seen[1][1] == "kernel_main" and seen[3][1] == "app_main"
    assert seen[2][2] == line_of(image, "kernel/main.c", "paging_init(ram_ranges")
    with pytest.raises(NoSuchLine):
        debugger.break_at("kernel/no_such_file.c:3")


def test_stepping_through_the_switch_into_long_mode(debugger: Debugger) -> None:
    # Past step 4, whose loop fills 512 directory entries a line at a time.
    debugger.run_to(f"kernel/boot.S:{line_of(debugger.image, 'kernel/boot.S', 'mov	$MSR_APIC_BASE, %ecx')}")
    modes, registers, lines = [], [], []
    stop = debugger.stop
    for _ in range(60):
        assert stop is not None
        lines.append((stop.path, stop.line))  # the line about to run
        stop = debugger.step()
        if not modes or modes[-1] != stop.mode:
            modes.append(stop.mode)
        registers.append(debugger.registers())
        if stop.mode == "64-bit long mode" and stop.vaddr >= 1 << 63:
            break
    # Each change is made by its line of the included steps 6 to 9, as QEMU's registers show it.
    for register, bit, instruction in (("cr4", 5, "mov	%eax, %cr4"), ("efer", 8, "wrmsr"),
                                       ("cr0", 31, "mov	%eax, %cr0")):
        first = next(index for index, after in enumerate(registers) if after[register] >> bit & 1)
        assert lines[first] == (LONG_MODE, line_of(debugger.image, LONG_MODE, instruction)), instruction
    assert modes[0] == "32-bit protected mode" and modes[-1] == "64-bit long mode", modes
    assert any(r["cr4"] >> 5 & 1 for r in registers), "CR4.PAE was never set"
    assert any(r["efer"] >> 8 & 1 for r in registers), "EFER.LME was never set"
    assert any(r["efer"] >> 10 & 1 for r in registers), "EFER.LMA was never active"
    assert registers[-1]["cr0"] >> 31 & 1 and registers[-1]["cr3"] == debugger.image.paddr_of(
        debugger.image.symbol("boot_pml4").vaddr)


def test_parameters_and_locals_by_name_agree_with_the_guest(debugger: Debugger) -> None:
    debugger.break_at("paging_init")
    assert debugger.cont().function == "paging_init"
    count = debugger.variable("range_count")
    ranges = debugger.variable("ram_ranges")
    assert int(count) == int.from_bytes(debugger.read(debugger.image.symbol("ram_range_count").vaddr, 4), "little")
    assert int(ranges) == debugger.image.symbol("ram_ranges").vaddr
    assert {v.name for v in debugger.locals()} >= {"ram_ranges", "range_count"}
    with pytest.raises(DebuggerError, match="no variable"):
        debugger.variable("no_such_variable")
    frames = debugger.backtrace()
    assert [f.function for f in frames if not f.inlined][:3] == ["paging_init", "kernel_main", "pvh_start32"]
    assert "assembly" in frames[-1].end


def test_next_stays_in_the_function_step_goes_in_finish_comes_back(debugger: Debugger) -> None:
    call = line_of(debugger.image, "kernel/main.c", "paging_init(ram_ranges")
    assert debugger.run_to(f"kernel/main.c:{call}").reason == "reached"
    stop = debugger.step()
    assert stop.function == "paging_init", stop  # into the call
    back = debugger.finish()
    assert back.reason == "finish" and back.function == "kernel_main", back
    assert back.detail == "paging_init returned"  # void: no value
    lines = [debugger.next() for _ in range(3)]
    assert all(s.function == "kernel_main" for s in lines), lines  # over pic_init(), timer_init() ...
    assert len({s.line for s in lines}) == 3


def test_unwinding_through_an_interrupt_and_a_write_watchpoint(image: Image) -> None:
    with Machine(image, gdb=True) as machine:
        machine.wait_for("> ")
        debugger = Debugger.attach(machine)
        ticks = debugger.watch("timer_ticks")
        stop = debugger.cont()
        assert stop.reason == "watchpoint" and stop.number == ticks.number
        assert int.from_bytes(stop.new, "little") == int.from_bytes(stop.old, "little") + 1
        frames = debugger.backtrace()
        assert frames[0].function == "interrupt_dispatch"
        interrupted = [f for f in frames if f.interrupted]
        assert len(interrupted) == 1 and interrupted[0].level > 1, [str(f) for f in frames]
        assert [f.function for f in frames][-2:] == ["kernel_main", "pvh_start32"]
        debugger.delete(ticks)
        reads = debugger.watch("timer_ticks", kind="read")
        machine.send_request("ticks")
        stop = debugger.cont()
        assert stop.reason == "watchpoint" and stop.number == reads.number, stop
        debugger.delete(reads)
        debugger.cont(0.3)
        assert machine.wait_for_reply("ticks").ok


def test_a_fault_and_an_exit_end_a_continue_with_their_reason(image: Image) -> None:
    with Machine(image, gdb=True) as machine:
        machine.wait_for("> ")
        debugger = Debugger.attach(machine)  # before the request: a fault before attaching would be missed
        machine.send_line("read 0x10")
        stop = debugger.cont()
        assert stop.reason == "fault" and "Page Fault" in stop.detail
        assert any(f.interrupted and f.function == "command_read" for f in debugger.backtrace())
    with Machine(image, gdb=True) as machine:
        machine.wait_for("> ")
        debugger = Debugger.attach(machine)
        machine.send_line("exit 4")
        stop = debugger.cont()
        assert stop.reason == "exited" and "status 4" in stop.detail


def test_a_machine_without_the_gdbstub_has_no_debugger(image: Image) -> None:
    with Machine(image) as machine, pytest.raises(DebuggerError, match="gdb=True"):
        Debugger.attach(machine)
