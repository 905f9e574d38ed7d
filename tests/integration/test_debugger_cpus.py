"""The debugger on several CPUs, against QEMU's gdbstub and monitor: each vCPU is a gdb thread.

apps/smp on three CPUs: a breakpoint in `reader` hits on the reader's CPU and the stop says so;
each CPU's backtrace starts where QEMU's `info registers -a` says its rip is; a step of one CPU
moves that CPU alone.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.qemu_registers import blocks, field
from workbench.debug.debugger import Debugger
from workbench.errors import InvalidInput
from workbench.guest.machine import Machine
from workbench.kernel.image import Image
from workbench.resources import kernel_source

pytestmark = pytest.mark.qemu

READER_CPU = 2
LONG_MODE = "kernel/enter_long_mode.h"  # boot.S's steps 6 to 9, which entry.S includes too


@pytest.fixture
def debugger(smp_image: Image) -> Iterator[Debugger]:
    with Machine(smp_image, name="test-debug-cpus", cpus=3, gdb=True) as machine:
        machine.wait_for("> ", timeout=30)
        yield Debugger.attach(machine)


def qemus_rips(machine: Machine) -> dict[int, int]:
    return {n: field("RIP", block) for n, block in blocks(machine.hmp("info registers -a")).items()}


def hit_the_reader(debugger: Debugger) -> None:
    debugger.break_at("reader")
    debugger.machine.send_line(f"reader {READER_CPU}")
    stop = debugger.cont(timeout=60)
    assert (stop.reason, stop.function, stop.cpu) == ("breakpoint", "reader", READER_CPU)
    assert f"on cpu {READER_CPU}" in str(stop) and repr(stop).endswith(f"on cpu {READER_CPU}>")


def test_the_cpus_are_the_gdbstubs_threads(debugger: Debugger) -> None:
    assert debugger.cpus() == (0, 1, 2)
    with pytest.raises(InvalidInput, match="the machine has cpus 0, 1, 2, not 3"):
        debugger.backtrace(3)


def test_a_breakpoint_hits_on_the_readers_cpu_and_each_cpu_has_its_stack(debugger: Debugger) -> None:
    hit_the_reader(debugger)
    rips = qemus_rips(debugger.machine)
    stacks = debugger.backtraces()
    assert sorted(stacks) == [0, 1, 2]
    for cpu, frames in stacks.items():
        assert frames[0].pc == rips[cpu], f"cpu {cpu}: the innermost frame is where QEMU says the cpu is"
    assert stacks[READER_CPU][0].function == "reader"
    assert "app_main" in [frame.function for frame in stacks[0]]  # CPU 0 serves the console
    assert debugger.backtrace()[0].function == "reader"  # without a cpu: the one that stopped


def test_a_step_of_one_cpu_moves_it_alone(debugger: Debugger) -> None:
    hit_the_reader(debugger)
    before = qemus_rips(debugger.machine)
    stop = debugger.stepi(3, cpu=READER_CPU)
    after = qemus_rips(debugger.machine)
    assert stop.cpu == READER_CPU and after[READER_CPU] != before[READER_CPU]
    assert after[0] == before[0] and after[1] == before[1]
    assert debugger.registers()["rip"] == after[READER_CPU]


def qemus_view_of(machine: Machine, cpu: int) -> tuple[str, int]:
    """The CPU's mode and the linear address of its next instruction, from QEMU's monitor."""
    registers = machine.cpus()[cpu].registers
    return registers.mode.value, registers.cs.base + registers.rip


def test_a_woken_cpu_is_followed_from_real_mode_into_long_mode(smp_image: Image) -> None:
    """Lesson 10's bring-up: a breakpoint on the start-up code stops the first CPU to run its
    copy at 0x8000, in real mode, at its line of entry.S; stepping that CPU alone goes through
    each mode, and through the steps into long mode that entry.S includes from the file boot.S
    includes them from, every stop agreeing with the monitor on the mode and the address."""
    debugger = Debugger.boot(smp_image, cpus=2)
    try:
        debugger.break_at("smp_trampoline")
        stop = debugger.cont(timeout=60)
        assert (stop.reason, stop.cpu, stop.pc, stop.mode) == ("breakpoint", 1, 0x8000, "real mode")
        assert (stop.function, stop.path) == ("smp_trampoline", "kernel/smp/entry.S")
        modes, paths = [stop.mode], [stop.path]
        while stop.function != "smp_cpu_entry":
            stop = debugger.stepi(cpu=1)
            assert stop.cpu == 1 and stop.path in ("kernel/smp/entry.S", LONG_MODE)
            assert (stop.mode, stop.pc) == qemus_view_of(debugger.machine, 1)
            if stop.mode != modes[-1]:
                modes.append(stop.mode)
            if stop.path != paths[-1]:
                paths.append(stop.path)
        assert modes == ["real mode", "16-bit protected mode", "32-bit protected mode",
                         "compatibility mode (long mode, 32-bit code)", "64-bit long mode"]
        assert paths == ["kernel/smp/entry.S", LONG_MODE, "kernel/smp/entry.S"]  # in once, out once
        assert stop.pc == smp_image.symbol("smp_cpu_entry").vaddr
    finally:
        debugger.close()


def test_a_line_of_the_shared_steps_stops_the_booting_cpu_and_then_a_woken_one(smp_image: Image) -> None:
    """boot.S and entry.S include the same steps into long mode: a breakpoint on one of its lines
    goes to both places the line runs, CPU 0's at the load address and the copy at 0x8000, and
    each stop loads CR3 as QEMU says, with the page tables its includer names."""
    debugger = Debugger.boot(smp_image, cpus=2)
    try:
        steps = (kernel_source() / LONG_MODE).read_text().splitlines()  # the image was built from it
        cr3 = next(number for number, line in enumerate(steps, 1) if "%eax, %cr3" in line)
        spot = debugger.break_at(f"{LONG_MODE}:{cr3}")
        assert len(spot.vaddrs) == 2 and min(spot.vaddrs) < 0x9000  # one in the copy at 0x8000
        for cpu, tables in ((0, "boot_pml4"), (1, "smp_start_tables")):
            stop = debugger.cont(timeout=60)
            assert (stop.reason, stop.cpu, stop.path, stop.line) == ("breakpoint", cpu, LONG_MODE, cr3)
            assert (stop.mode, stop.pc) == qemus_view_of(debugger.machine, cpu)
            debugger.stepi(cpu=cpu)
            assert debugger.machine.cpus()[cpu].registers.cr3 == smp_image.paddr_of(smp_image.symbol(tables).vaddr)
    finally:
        debugger.close()


def test_code_the_linker_dropped_is_not_found_at_address_0(smp_image: Image) -> None:
    """apps/smp links no timer: the DWARF of timer.c says address 0, which is no code."""
    debugger = Debugger.boot(smp_image, cpus=1)
    try:
        assert "timer_init" not in smp_image.symbols and "timer_init" not in debugger.info.functions
        assert debugger.info.location(0) is None and debugger.info.function_at(0x10) is None
    finally:
        debugger.close()
