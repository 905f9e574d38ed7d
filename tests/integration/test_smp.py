"""Machine(cpus=N): the workbench's side of several CPUs, against QEMU itself.

Each CPU's registers, halted state and place are compared with what QEMU's own monitor prints
(`info registers -a`) and lists over QMP (`query-cpus-fast`); a snapshot's CR3s with the same
text. Bad numbers of CPUs are one-line InvalidInput errors raised before QEMU starts.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.qemu_registers import blocks, field
from workbench.errors import InvalidInput
from workbench.guest.machine import GuestTimeout, Machine, MachineState
from workbench.kernel.image import Image
from workbench.kernel.skeleton import skeleton_source
from workbench.views import MachineView

pytestmark = pytest.mark.qemu

BOOT_TIMEOUT = 30.0


@pytest.fixture
def four(smp_image: Image) -> Iterator[Machine]:
    with Machine(smp_image, name="test-smp-4", cpus=4) as machine:
        machine.wait_for("> ", timeout=BOOT_TIMEOUT)
        yield machine


@pytest.mark.parametrize(("cpus", "says"), [
    (0, "cpus must be a whole number of 1 or more, not 0"),
    (-2, "cpus must be a whole number of 1 or more, not -2"),
    (2.0, "cpus must be a whole number of 1 or more, not 2.0"),
    ("4", "cpus must be a whole number of 1 or more, not '4'"),
    (True, "cpus must be a whole number of 1 or more, not True"),
    (289, "cpus must be at most 288, what QEMU allows the machine type microvm, not 289"),
])
def test_a_bad_number_of_cpus_is_one_line_before_qemu_starts(smp_image: Image, cpus: object, says: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        Machine(smp_image, cpus=cpus)  # type: ignore[arg-type]
    assert str(raised.value) == says and "\n" not in says


def test_the_limit_is_the_machine_types_as_qemu_says(smp_image: Image) -> None:
    listed = subprocess.run(["qemu-system-x86_64", "-machine", "pc", "-smp", "1000", "-display", "none",
                             "-nodefaults", "-S", "-no-user-config"], check=False,
                            capture_output=True, text=True, timeout=30)
    most = int(re.search(r"max CPUs supported by machine '.*' is (\d+)", listed.stderr)[1])  # type: ignore[index]
    with pytest.raises(InvalidInput, match=f"at most {most}, what QEMU allows the machine type pc"):
        Machine(smp_image, machine_type="pc", cpus=most + 1)


def test_several_cpus_cannot_record(smp_image: Image, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="records and replays a machine of one CPU only, not 2"):
        Machine(smp_image, cpus=2, record=tmp_path / "run.rr")


def test_one_cpu_keeps_the_command_line_it_always_had(smp_image: Image) -> None:
    assert "-smp" not in Machine(smp_image).command_line(None, 3)
    assert Machine(smp_image, cpus=3).command_line(None, 3)[5:12].count("-smp") == 1


def test_every_cpus_registers_halted_and_place_are_qemus(four: Machine, smp_image: Image) -> None:
    four.pause()
    cpus = four.cpus()
    said = blocks(four.hmp("info registers -a"))
    listed = four.qmp("query-cpus-fast")
    assert [cpu.index for cpu in cpus] == sorted(said) == sorted(cpu["cpu-index"] for cpu in listed) == [0, 1, 2, 3]
    assert [cpu.thread_id for cpu in cpus] == [cpu["thread-id"] for cpu in sorted(listed, key=lambda c: c["cpu-index"])]
    for cpu in cpus:
        block = said[cpu.index]
        assert (cpu.rip, cpu.cr3, cpu.registers.rsp) == (field("RIP", block), field("CR3", block), field("RSP", block))
        assert cpu.halted == bool(field("HLT", block))
        assert cpu.where == smp_image.format_vaddr(cpu.rip)
        gs_base = re.search(r"^GS =\w+ ([0-9a-f]+)", block, re.MULTILINE)
        assert gs_base is not None and cpu.registers.gs.base == int(gs_base[1], 16)
    cpus_array = smp_image.symbol("cpus").vaddr
    offsets = [cpu.registers.gs.base - cpus_array for cpu in cpus]  # each its own block of cpus[]
    assert offsets == [index * offsets[1] for index in range(4)] and offsets[1] % 64 == 0


def test_idle_cpus_halt_and_the_reader_runs(four: Machine, smp_image: Image) -> None:
    four.request("reader 2")
    cpus = {cpu.index: cpu for cpu in four.cpus()}
    assert four.state is MachineState.RUNNING  # cpus() paused it for one instant only
    assert cpus[1].halted and cpus[3].halted  # idle: waiting in hlt for an IPI
    assert not cpus[2].halted and "<" in cpus[2].where  # the reader, somewhere in the image's code
    assert len({cpu.cr3 for cpu in cpus.values()}) == 1


def test_a_snapshot_keeps_each_cpus_cr3(four: Machine) -> None:
    snapshot = four.snapshot("four")
    four.pause()
    said = blocks(four.hmp("info registers -a"))
    assert snapshot.cpu_cr3 == tuple(field("CR3", said[index]) for index in range(4))
    pml4 = snapshot.registers.cr3_decoded.table_paddr
    assert snapshot.cpus_on_table(pml4) == (0, 1, 2, 3)
    assert snapshot.cpus_on_table(pml4 + 4096) == ()


def test_one_cpus_monitor_and_tables_are_chosen_by_its_index(four: Machine) -> None:
    four.request("reader 2")
    four.pause()
    said = blocks(four.hmp("info registers -a"))
    for index in range(4):  # QEMU's monitor for that CPU alone, and a snapshot of its registers
        assert field("RIP", four.hmp("info registers", cpu=index)) == field("RIP", said[index])
        snapshot = four.snapshot(f"cpu {index}", cpu=index)
        assert snapshot.cpu == index and snapshot.registers.rip == field("RIP", said[index])
    assert len({field("RIP", said[index]) for index in range(4)}) > 1, "the reader is elsewhere than the idle CPUs"


@pytest.mark.parametrize("cpu", [4, -1, True, "1"])
def test_a_cpu_the_machine_does_not_have_is_one_line(four: Machine, cpu: object) -> None:
    for asked in (lambda: four.hmp("info tlb", cpu=cpu), lambda: four.snapshot(cpu=cpu)):  # type: ignore[arg-type]
        with pytest.raises(InvalidInput) as raised:
            asked()
        assert str(raised.value) == f"cpu must be a CPU of this machine, 0 to 3, not {cpu!r}"


def test_one_cpu_snapshot_has_its_cr3(smp_image: Image) -> None:
    with Machine(smp_image, name="test-smp-1") as machine:
        machine.wait_for("> ", timeout=BOOT_TIMEOUT)
        snapshot = machine.snapshot()
        assert snapshot.cpu_cr3 == (snapshot.registers.cr3,)
        assert [cpu.index for cpu in machine.cpus()] == [0]


def test_a_request_that_never_ends_says_where_each_cpu_was(four: Machine) -> None:
    """300 million locked increments under TCG take minutes: as good as a deadlock for a 1 s wait."""
    four.send_request("counter 3 100000000 lock")
    with pytest.raises(GuestTimeout) as raised:
        four.wait_for_reply("counter 3 100000000 lock", timeout=1.0)
    message = str(raised.value)
    first_line = message.splitlines()[0]
    assert "Where each CPU was: cpu 0 " in first_line and "; cpu 3 " in first_line
    assert four.state is MachineState.CLOSED


def test_the_students_skeleton_needs_both_exercises_of_lesson_10(tmp_path: Path) -> None:
    """Without SOLUTION(counter-lock) the mode lock loses increments; without SOLUTION(tlb-shootdown)
    the reader stays on the old frame: lesson 10's checks cannot pass on the skeleton."""
    subprocess.run(["make", "-s", f"BUILD_DIR={tmp_path}", "APP=apps/smp"], cwd=skeleton_source(), check=True,
                   capture_output=True, text=True)
    with Machine(tmp_path / "unikernel.elf", name="test-smp-skeleton", cpus=4) as machine:
        machine.wait_for("> ", timeout=BOOT_TIMEOUT)
        assert machine.request("counter 3 10000000 lock", timeout=120).number("lost") > 0
        machine.request("reader 2")
        assert machine.request("remap shootdown")["stale"] == "yes"


def test_the_machine_view_lists_every_cpu_while_stopped(four: Machine) -> None:
    view = MachineView(four)
    assert view.cpus == []  # running: nothing read, nothing paused
    four.pause()  # the view reads the CPUs on its own thread, once, after the stop
    until(lambda: len(view.cpus) == 4)
    said = blocks(four.hmp("info registers -a"))
    assert [row["index"] for row in view.cpus] == [0, 1, 2, 3]
    for row in view.cpus:
        block = said[row["index"]]
        assert row["cr3"] == f"{field('CR3', block):#x}"
        assert row["state"] == ("halted" if field("HLT", block) else "running")
        assert row["where"].startswith(f"{field('RIP', block):#x} <") and re.fullmatch(r"[\w/]+\.[cS]:\d+", row["line"])
    assert "cpu 3" in view.static_html()
    four.resume()
    until(lambda: view.cpus == [])


def until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the view did not update within 10 s"
        time.sleep(0.05)
