"""Issue 9: hostile input to the machine gets one clear WorkbenchError and loses nothing.

Real QEMU throughout: large monitor replies come from page tables written into guest RAM,
and every refused request is checked against a guest that still answers afterwards.
"""

from __future__ import annotations

import math
import struct
import time

import pytest

from workbench.errors import InvalidInput, WorkbenchError
from workbench.guest.machine import (
    MAX_REQUEST_LENGTH,
    BadMachineSetting,
    BadRequest,
    ConnectionLost,
    Machine,
    MachineClosed,
    MachineState,
    NoReply,
)
from workbench.kernel.image import Image
from workbench.kernel.workspace import Workspace
from workbench.models.paging import PageFaultError

pytestmark = pytest.mark.qemu

PRESENT_WRITABLE = 0x3
HUGE = 0x80
SPARE = 0x3000000  # 48 MiB into a 64 MiB guest: free RAM for hand-made tables


def dense_tables(machine: Machine, pml4_slots: int) -> None:
    """Point `pml4_slots` unused PML4 entries at one PDPT whose 512 entries each point to one
    PD of 512 2 MiB pages: 262,144 lines of `info tlb` per slot, about 12 MB of reply each."""
    cr3 = machine.registers().cr3 & ~0xFFF
    pdpt, pd = SPARE, SPARE + 0x1000
    machine.memory.write(pdpt, struct.pack("<512Q", *[pd | PRESENT_WRITABLE] * 512))
    machine.memory.write(pd, struct.pack("<512Q", *[(i << 21) | HUGE | PRESENT_WRITABLE for i in range(512)]))
    for slot in range(1, 1 + pml4_slots):
        assert machine.memory.read(cr3 + 8 * slot, 8) == bytes(8), "PML4 slot already in use"
        machine.memory.write(cr3 + 8 * slot, struct.pack("<Q", pdpt | PRESENT_WRITABLE))


# §4: large monitor replies.


def test_a_31_mb_info_tlb_arrives_and_the_machine_goes_on(image: Image) -> None:
    with Machine(image) as machine:
        machine.wait_for("> ")
        machine.pause()
        dense_tables(machine, 3)
        tlb = machine.hmp("info tlb", timeout=60)
        assert len(tlb) > 31_000_000 and tlb.count("\n") >= 3 * 512 * 512
        assert machine.qmp("query-status")["status"] == "paused"
        machine.resume()
        assert machine.request("ticks").ok


def test_a_lost_connection_says_so_and_stops_qemu(image: Image) -> None:
    machine = Machine(image)
    machine.qmp_reply_limit = 1 << 20  # the real limit, lowered so that one slot exceeds it
    with machine:
        machine.wait_for("> ")
        machine.pause()
        dense_tables(machine, 1)
        pid = machine.pid
        assert pid is not None
        with pytest.raises(ConnectionLost, match="larger than the 1 MiB") as lost:
            machine.hmp("info tlb", timeout=60)
        assert "info tlb" in str(lost.value) and "QEMU has been stopped" in str(lost.value)
        assert machine.state is MachineState.DISCONNECTED, "a broken connection must not pass for paused"
        assert machine.outcome is not None and machine.outcome.state is MachineState.DISCONNECTED
        with pytest.raises(ConnectionLost, match="lost its connection"):
            machine.qmp("query-status")
        with pytest.raises(ConnectionLost):
            machine.wait_for("never", timeout=1)
        deadline = time.monotonic() + 5
        while machine.pid is not None and _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid), "QEMU outlived its lost connection"
    assert machine.state is MachineState.CLOSED


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            text = stat.read()
    except OSError:
        return False
    return text[text.rindex(")") + 2] != "Z"


# §5: requests.

BAD_REQUESTS = {
    "empty": "",
    "spaces": "   ",
    "two lines": "ticks\nexit 7",
    "carriage return": "help\rticks",
    "backspaces": "tickz\b\bks",
    "tab": "alloc\t1",
    "NUL": "ticks\0",
    "escape": "\x1b[Aticks",
    "non-ASCII": "tîcks",
    "lone surrogate": "ticks\ud800",
    "one too long": "x" * (MAX_REQUEST_LENGTH + 1),
    "1 MB": "x" * (1 << 20),
}


def test_bad_requests_are_refused_before_anything_is_sent(image: Image) -> None:
    with Machine(image) as machine:
        machine.wait_for("> ")
        for name, line in BAD_REQUESTS.items():
            before = machine.console.text
            started = time.monotonic()
            with pytest.raises(BadRequest) as refused:
                machine.request(line, timeout=5)
            assert time.monotonic() - started < 1, f"{name}: refusing took a timeout"
            assert isinstance(refused.value, (InvalidInput, ValueError))
            assert "\n" not in str(refused.value), f"{name}: not one line: {refused.value}"
            assert machine.console.text == before, f"{name}: something reached the guest"
        with pytest.raises(BadRequest):
            machine.request(b"ticks", timeout=5)  # type: ignore[arg-type]
        assert machine.state is MachineState.RUNNING
        longest = machine.request("y" * MAX_REQUEST_LENGTH)  # the longest line the guest keeps whole
        assert not longest.ok and longest.command == "y" * MAX_REQUEST_LENGTH
        assert machine.request("  ticks  ").ok


@pytest.mark.parametrize("line_size", [64, 256])
def test_the_request_limit_follows_the_guests_line_buffer(workspace: Workspace, line_size: int) -> None:
    """A student who changes LINE_SIZE gets requests checked against the new buffer."""
    workspace.replace("app/main.c", "#define LINE_SIZE  128", f"#define LINE_SIZE  {line_size}")
    with Machine(workspace.build()) as machine:
        assert machine.request_limit == line_size - 1
        machine.wait_for("> ")
        longest = machine.request("z" * (line_size - 1))  # read whole: the guest names the command
        assert not longest.ok and longest.command == "z" * (line_size - 1)
        with pytest.raises(BadRequest, match=f"at most {line_size - 1} characters"):
            machine.request("z" * line_size)
        assert machine.request("help" + " " * (line_size - 5)).ok


def test_send_refuses_a_flood_and_what_cannot_be_typed(image: Image) -> None:
    with Machine(image) as machine:
        machine.wait_for("> ")
        for text in ("x" * (1 << 20), "ticks\ud800\n", 42):
            with pytest.raises(InvalidInput):
                machine.send(text)  # type: ignore[arg-type]
        assert machine.request("ticks").ok, "the guest stopped answering after a refused send"


def test_a_guest_that_prompts_without_replying_stays_alive(workspace: Workspace) -> None:
    workspace.replace("kernel/console-input/requests.c", 'console_printf("ok help commands=%s", help.name);',
                      'console_printf("help: commands=%s", help.name);')
    with Machine(workspace.build()) as machine:
        machine.wait_for("> ")
        started = time.monotonic()
        with pytest.raises(NoReply, match="still running"):
            machine.request("help", timeout=10)
        assert time.monotonic() - started < 5, "NoReply waited for the whole timeout"
        assert machine.state is MachineState.RUNNING
        assert machine.request("ticks").ok


def test_a_guest_busy_with_a_request_is_still_stopped(image: Image) -> None:
    with Machine(image) as machine:
        machine.wait_for("> ")
        with pytest.raises(WorkbenchError, match="nor did it prompt"):
            machine.request("bench 256 100000000", timeout=1)
        assert machine.state is MachineState.CLOSED


# §6: settings.


@pytest.mark.parametrize("setting", [{"machine_type": "vax"}, {"accel": "hvf"}, {"memory_mib": 99999},
                                     {"memory_mib": 8}, {"memory_mib": "64"}, {"memory_mib": 64.5}])
def test_bad_machine_settings(image: Image, setting: dict[str, object]) -> None:
    with pytest.raises(BadMachineSetting) as refused:
        Machine(image, **setting)  # type: ignore[arg-type]
    assert isinstance(refused.value, ValueError) and "\n" not in str(refused.value)


def test_a_machine_used_before_start_or_after_close(image: Image) -> None:
    machine = Machine(image)
    with pytest.raises(WorkbenchError, match="not been started"):
        machine.request("ticks")
    machine.start().close()
    with pytest.raises(MachineClosed):
        machine.request("ticks")
    with pytest.raises(MachineClosed):
        machine.send("ticks\n")


# Guest memory, symbols, timeouts and walks: every public entry point refuses what it cannot
# use with one InvalidInput line, before anything changes, and the machine goes on.


def _one_line(error: pytest.ExceptionInfo[BaseException]) -> None:
    assert isinstance(error.value, InvalidInput), repr(error.value)
    assert str(error.value) and "\n" not in str(error.value), str(error.value)


def test_guest_memory_ranges_data_and_symbols_are_checked(image: Image) -> None:
    with Machine(image) as machine:
        machine.wait_for("> ")
        ticks = image.symbol("timer_ticks")
        for vaddr, length in ((ticks.vaddr, -1), (ticks.vaddr, 1 << 40), (ticks.vaddr, 1.5), (ticks.vaddr, "8"),
                              (ticks.vaddr, True), (ticks.vaddr, None), (-1, 8), (1 << 64, 8), ("app_main", 8),
                              ((1 << 64) - 4, 8)):
            with pytest.raises(InvalidInput) as refused:
                machine.read_virtual(vaddr, length)  # type: ignore[arg-type]
            _one_line(refused)
        for data in ("text", 5, None, [1, 2]):
            with pytest.raises(InvalidInput) as refused:
                machine.write_virtual(ticks.vaddr, data)  # type: ignore[arg-type]
            _one_line(refused)
        for name in ("no_such_variable", 5, "app_main"):
            with pytest.raises(InvalidInput) as refused:
                machine.read_symbol(name)  # type: ignore[arg-type]
            _one_line(refused)
        for value in ("5", 1.5, None, -1, 1 << 64):
            with pytest.raises(InvalidInput) as refused:
                machine.write_symbol("timer_ticks", value)  # type: ignore[arg-type]
            _one_line(refused)
        # All or nothing: a write that runs from a mapped page into the unmapped one after it
        # changes neither page.
        heap = machine.request("alloc 1").number("vaddr")
        machine.write_virtual(heap + 4096 - 4, b"\x11" * 4)
        with pytest.raises(PageFaultError):
            machine.write_virtual(heap + 4096 - 4, b"\x22" * 8)
        assert machine.read_virtual(heap + 4096 - 4, 4) == b"\x11" * 4
        machine.write_symbol("timer_ticks", 0)  # good input still works, and the guest goes on
        assert machine.request("ticks").ok and machine.state is MachineState.RUNNING


@pytest.mark.parametrize("timeout", [math.nan, math.inf, -1, 0, "5", None, True])
def test_timeouts_that_are_not_seconds_change_nothing(image: Image, timeout: object) -> None:
    machine = Machine(image)
    with pytest.raises(InvalidInput) as refused:
        machine.start(timeout=timeout)  # type: ignore[arg-type]
    _one_line(refused)
    assert machine.state is MachineState.CREATED and machine.pid is None
    with machine:
        machine.wait_for("> ")
        calls = {"wait_for": lambda: machine.wait_for("never printed", timeout=timeout),  # type: ignore[arg-type]
                 "request": lambda: machine.request("ticks", timeout=timeout),  # type: ignore[arg-type]
                 "wait": lambda: machine.wait(timeout=timeout),  # type: ignore[arg-type]
                 "snapshot": lambda: machine.snapshot(timeout=timeout),  # type: ignore[arg-type]
                 "pause": lambda: machine.pause(timeout=timeout),  # type: ignore[arg-type]
                 "hmp": lambda: machine.hmp("info registers", timeout=timeout),  # type: ignore[arg-type]
                 "close": lambda: machine.close(timeout=timeout)}  # type: ignore[arg-type]
        for name, call in calls.items():
            with pytest.raises(InvalidInput) as refused:
                call()
            _one_line(refused)
            assert machine.state is MachineState.RUNNING, f"{name} changed the machine"
        assert machine.request("ticks").ok


def test_walks_of_vaddrs_that_are_not_vaddrs(image: Image) -> None:
    with Machine(image) as machine:
        machine.wait_for("> ")
        snapshot = machine.snapshot()
        for vaddr in (-1, 1 << 64, 1.5, "0x10", None, True):
            for call in (snapshot.walk, snapshot.translate):
                with pytest.raises(InvalidInput) as refused:
                    call(vaddr)  # type: ignore[arg-type]
                _one_line(refused)
        assert snapshot.walk(image.symbol("app_main").vaddr).ok
