"""The debugger on several CPUs, against QEMU's gdbstub and monitor: each vCPU is a gdb thread.

apps/smp on three CPUs: a breakpoint in `reader` hits on the reader's CPU and the stop says so;
each CPU's backtrace starts where QEMU's `info registers -a` says its rip is; a step of one CPU
moves that CPU alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from workbench.debug.debugger import Debugger
from workbench.errors import InvalidInput
from workbench.guest.machine import Machine
from workbench.kernel.image import Image

pytestmark = pytest.mark.qemu

READER_CPU = 2


@pytest.fixture(scope="module")
def image(smp_image: Image) -> Image:
    return smp_image


@pytest.fixture
def debugger(image: Image) -> Iterator[Debugger]:
    with Machine(image, name="test-debug-cpus", cpus=3, gdb=True) as machine:
        machine.wait_for("> ", timeout=30)
        yield Debugger.attach(machine)


def qemus_rips(machine: Machine) -> dict[int, int]:
    parts = re.split(r"^CPU#(\d+)\s*$", machine.hmp("info registers -a"), flags=re.MULTILINE)[1:]
    found = {int(n): re.search(r"\bRIP=([0-9a-f]+)", block) for n, block in zip(parts[::2], parts[1::2], strict=True)}
    return {n: int(match[1], 16) for n, match in found.items() if match is not None}


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
