"""Record/replay in real QEMU: typed input of any length recorded, replays identical byte for
byte, going to instruction counts both ways, the timeline's marks, and rewinding a triple
fault to the write that planted it (a wrong PML4 index in the classic path's setup)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from workbench.errors import InvalidInput
from workbench.guest.machine import MAX_REQUEST_LENGTH, MachineState
from workbench.kernel.image import Image
from workbench.kernel.workspace import Workspace
from workbench.timetravel.replay import Recorder, Recording, Replay
from workbench.timetravel.timeline import index, mark_breakpoints, rewind_fault

pytestmark = pytest.mark.qemu

PLANTED = ("= kernel_pml4[PT_INDEX(4, KERNEL_VIRTUAL_BASE)]", "= kernel_pml4[PT_INDEX(3, KERNEL_VIRTUAL_BASE)]")


def long_write(image: Image) -> str:
    start = f"write {image.symbol('__heap_base').vaddr:#x} 0x"
    return start + "2a".rjust(MAX_REQUEST_LENGTH - len(start), "0")


@pytest.fixture(scope="module")
def recording(image: Image) -> Iterator[Recording]:
    """A session with input longer than the UART's 16-byte FIFO, ending in the guest's exit."""
    recorder = Recorder(image)
    machine = recorder.start()
    machine.wait_for("> ")
    assert machine.request("alloc 1").ok
    assert machine.request(long_write(image)).number("value") == 0x2A
    assert machine.request("ticks").ok
    machine.send_line("exit 3")
    assert machine.wait().exit_status == 3
    made = recorder.stop()
    yield made
    made.close()


def test_input_longer_than_the_fifo_is_recorded_whole(recording: Recording, image: Image) -> None:
    assert f"> {long_write(image)}\nok write" in recording.console


def test_every_replay_prints_the_same_bytes(recording: Recording) -> None:
    for _ in range(2):
        with Replay(recording) as replay:
            replay.run_to_end()
            assert replay.console == recording.console
            assert replay.machine.console.text == recording.console
            assert replay.machine.state is MachineState.EXITED and replay.machine.outcome is not None
            assert replay.machine.outcome.exit_status == 3


def test_going_back_and_forth_shows_the_same_machine(recording: Recording) -> None:
    with Replay(recording) as replay:
        timeline = index(replay)
        assert len(replay.checkpoints) > 1
        middle, later = timeline.end // 2, timeline.end * 3 // 4
        seen = []
        for target in (later, middle, later, middle):
            assert replay.go_to(target) == target
            registers = replay.machine.registers()
            seen.append((registers.rip, registers.rsp, registers.rax, registers.cr3, replay.console))
        assert seen[0] == seen[2] and seen[1] == seen[3]
        assert seen[0][4].startswith(seen[1][4])  # the console as it was: shorter earlier
        assert recording.console.startswith(seen[0][4])
        with pytest.raises(InvalidInput, match="ends at instruction"):
            replay.go_to(timeline.end + 1)


def test_the_timeline_marks_the_console_the_page_tables_and_the_end(recording: Recording) -> None:
    with Replay(recording) as replay:
        timeline = index(replay)
        lines = [m.label for m in timeline.of_kind("console")]
        assert lines == recording.console.splitlines()[:len(lines)] and len(lines) >= 8
        counts = [m.icount for m in timeline.marks]
        assert counts == sorted(counts) and counts[-1] == timeline.end
        assert timeline.of_kind("page tables"), "the boot builds page tables"
        assert timeline.how_it_ended == "exit"
        replay.debugger.break_at("paging_init")
        marked = mark_breakpoints(replay, timeline)
        hits = marked.of_kind("breakpoint")
        assert len(hits) == 1 and "paging_init" in hits[0].label
        replay.go_to(hits[0].icount)
        assert replay.debugger.backtrace()[0].function == "paging_init"


def test_rewinding_a_triple_fault_finds_the_planted_write(tmp_path: Path) -> None:
    workspace = Workspace.open("planted", parent=tmp_path)
    workspace.replace("kernel/syscall.c", *PLANTED)
    planted_line = next(number for _, number, line in workspace.find(PLANTED[1]))
    image = workspace.build()
    recorder = Recorder(image)
    machine = recorder.start()
    machine.wait_for("> ")
    assert machine.request("syscall noop").ok  # sets ring 3's tables up, with the bad entry
    assert machine.request("ticks").ok
    machine.send_line("syscall-cr3 noop")  # the first use of those tables
    assert machine.wait().state is MachineState.TRIPLE_FAULT
    recording = recorder.stop()
    with Replay(recording) as replay:
        story = rewind_fault(replay)
        assert story.kind == "triple fault" and story.function == "user_run"
        assert story.walk is not None and story.walk.fault is not None
        assert story.walk.fault.level is not None and story.walk.fault.level.name == "PML4"
        assert story.write is not None, str(story)
        assert (story.write.path, story.write.line) == ("kernel/syscall.c", planted_line), str(story)
        assert story.write.icount < story.icount
        replay.go_to(story.write.icount)
        stop = replay.debugger.stop
        assert stop is not None and (stop.path, stop.line) == ("kernel/syscall.c", planted_line)
    recording.close()
    assert not recording.path.exists()
