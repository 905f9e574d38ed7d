"""The two ways into the kernel, in the real unikernel under real QEMU: the replies, the traces
through the gdbstub, the instruction counts, the in-guest benchmark, and the host measurement."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from workbench.compare import calls
from workbench.debug.trace import TraceError, trace_call, trace_syscall
from workbench.guest.gdbstub import GdbClient
from workbench.guest.machine import Machine, MachineError, MachineState
from workbench.kernel.image import Image
from workbench.kernel.workspace import Workspace
from workbench.views import TraceView

pytestmark = pytest.mark.qemu


@pytest.fixture(scope="module")
def machine(image: Image) -> Iterator[Machine]:
    """One machine with the gdbstub for the tests that only ask and trace."""
    with Machine(image, gdb=True) as booted:
        booted.wait_for("> ")
        yield booted


def test_each_way_reaches_the_same_service(machine: Machine) -> None:
    for command in ("call", "syscall", "syscall-cr3"):
        assert machine.request(f"{command} noop").line == f"ok {command} service=noop value=0x0"
        ticks = machine.request(f"{command} ticks")
        assert ticks.ok and ticks.number("value") >= 0, ticks
    assert machine.request("syscall nothing").line == "error syscall unknown service nothing"
    assert machine.request("call").line == "error call usage: call SERVICE"


def test_the_ring_3_region_appears_on_first_use_with_user_pages(image: Image) -> None:
    user_code = image.symbol("__user_code_base").vaddr
    user_stack = image.symbol("__user_stack_base").vaddr
    with Machine(image) as fresh:
        fresh.wait_for("> ")
        at_boot = fresh.snapshot()
        assert not at_boot.walk(user_code).ok, "nothing may be mapped in the lower half at boot"
        assert fresh.request("syscall noop").ok
        after = fresh.snapshot()
        code, stack = after.walk(user_code), after.walk(user_stack)
        assert str(code.permissions) == "ur-x" and str(stack.permissions) == "urw-"
        assert not after.walk(user_code + 0x1000).ok, "the gap between code and stack stays unmapped"
        assert not after.address_space(image).wx_violations()
        assert after.registers.efer & 1, "EFER.SCE is set"


def test_a_call_stays_in_ring_0_and_a_syscall_goes_3_0_3(machine: Machine) -> None:
    call = trace_call(machine, "noop")
    assert call.privilege_levels == (0,)
    assert len(call.cr3_values) == 1 and len(set(call.stacks)) == 1
    assert call.steps[0].instruction.startswith("call") and call.steps[-1].instruction.startswith("ret")
    assert call.steps[1].symbol == "kernel_noop"
    assert call.end.rip == call.steps[0].rip + 5  # back at the instruction after the call

    syscall = trace_syscall(machine, "noop")
    assert syscall.privilege_levels == (3, 0, 3)
    assert syscall.stacks == ("ring-3 stack", "syscall stack", "ring-3 stack")
    instructions = [step.instruction for step in syscall.steps]
    assert instructions[0] == "syscall" and instructions[-1].startswith("sysret")
    assert instructions.count("swapgs") == 2
    assert syscall.steps[1].symbol == "syscall_entry"
    assert any(step.symbol == "kernel_noop" for step in syscall.steps)
    assert syscall.steps[0].symbol.startswith("user_call_once")  # the ring-3 copy, named by its original
    assert len(syscall.cr3_values) == 1


def test_the_cr3_variant_switches_page_tables_twice(machine: Machine) -> None:
    trace = trace_syscall(machine, "ticks", switch_cr3=True)
    user, kernel, back = trace.cr3_values
    assert user == back != kernel
    assert trace.steps[1].symbol == "syscall_entry_switching_cr3"
    assert sum(step.instruction.endswith(",%cr3") for step in trace.steps) == 2
    kernel_steps = [step for step in trace.steps if step.cpl == 0 and step.cr3 == kernel]
    assert any(step.symbol == "kernel_get_ticks" for step in kernel_steps)


def test_instruction_counts_are_ordered_and_the_same_every_time(machine: Machine) -> None:
    first = calls.count_instructions(machine)
    second = calls.count_instructions(machine)
    assert first == second
    assert first.call < first.syscall < first.syscall_cr3
    assert first.call <= 5 and first.syscall_cr3 - first.syscall >= 4  # two loads and two CR3 writes
    assert "counted by single-stepping" in str(first)


def test_the_counts_are_the_same_on_another_machine(image: Image, machine: Machine) -> None:
    with Machine(image, gdb=True) as other:
        other.wait_for("> ")
        assert calls.count_instructions(other) == calls.count_instructions(machine)


def test_the_clang_image_takes_the_same_ways(tmp_path: Path) -> None:
    clang_image = Workspace.open("clang", parent=tmp_path).build(toolchain="clang")
    with Machine(clang_image, gdb=True) as clang_machine:
        clang_machine.wait_for("> ")
        counts = calls.count_instructions(clang_machine)
        assert counts.call < counts.syscall < counts.syscall_cr3
        assert trace_syscall(clang_machine, "ticks").privilege_levels == (3, 0, 3)


def test_the_trace_view_has_a_deterministic_repr_and_static_html(machine: Machine) -> None:
    view = TraceView(trace_call(machine), trace_syscall(machine))
    text = repr(view)
    assert "object at" not in text and "CPL (3, 0, 3)" in text
    html = view.static_html()
    assert html.count("<table") == 2 and "swapgs" in html and "sysret" in html
    bundle, _ = view._repr_mimebundle_()
    assert bundle["text/plain"] == text and bundle["text/html"] == html
    view.step = 3
    with pytest.raises(Exception, match="step must be between"):
        view.step = 10_000


def test_tracing_an_unknown_service_fails_at_once(machine: Machine) -> None:
    with pytest.raises(TraceError, match="unknown service"):
        trace_syscall(machine, "nothing", timeout=5.0)
    with pytest.raises(TraceError, match="which kernel function"):
        trace_call(machine, "nothing")
    assert machine.request("call noop").ok  # and the machine still serves


def test_the_guest_benchmark_replies_in_labelled_tsc_ticks(machine: Machine) -> None:
    bench = calls.guest_benchmark(machine, rounds=5, iterations=200)
    assert bench.rounds == 5 and bench.iterations == 200 and bench.accel == "tcg"
    for kind in calls.KINDS:
        quartiles = bench.costs[kind]
        assert 0 <= quartiles.q1 <= quartiles.median <= quartiles.q3
    assert bench.costs["call"].median < bench.costs["syscall"].median < bench.costs["syscall-cr3"].median
    assert machine.request("bench 0 10").line.startswith("error bench ROUNDS must be 1-256")


def test_the_gdbstub_reads_what_the_monitor_reads(machine: Machine) -> None:
    gdb = machine.gdb
    assert isinstance(gdb, GdbClient)
    gdb.interrupt()
    try:
        registers = gdb.registers()
        monitor = machine.registers()
        assert registers["rip"] == monitor.rip and registers["cr3"] == monitor.cr3
        assert registers["rsp"] == monitor.rsp and registers["efer"] == monitor.efer
        text = machine.image.symbol("__text_start").vaddr
        assert gdb.read_memory(text, 16) == machine.read_virtual(text, 16)
    finally:
        gdb.resume()
    assert machine.request("call noop").ok


def test_a_machine_without_gdb_says_how_to_get_it(image: Image) -> None:
    with Machine(image) as plain:
        plain.wait_for("> ")
        with pytest.raises(MachineError, match="gdb=True"):
            _ = plain.gdb


def test_a_gdb_machine_leaves_nothing_behind(image: Image) -> None:
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(3):
        with Machine(image, gdb=True) as traced:
            traced.wait_for("> ")
            trace_syscall(traced, "noop")
        assert traced.state is MachineState.CLOSED
    assert len(os.listdir("/proc/self/fd")) == before


def test_the_host_helper_measures_and_cleans_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))
    host = calls.measure_host(rounds=5, iterations=2000)
    assert host.rounds == 5 and host.cpu
    assert 0 < host.nanoseconds["call"].median < host.nanoseconds["syscall"].median
    assert os.listdir(private_tmp) == [], "the temporary build directory must be removed"
    assert "getppid" in str(host)
