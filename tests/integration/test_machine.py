"""The real unikernel in real QEMU: boot, console protocol, faults, timeouts, lifetime."""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from jupyter_client.manager import KernelManager

from workbench.errors import WorkbenchError
from workbench.guest.machine import GuestStopped, GuestTimeout, Machine, MachineClosed, MachineState, QemuStartError
from workbench.kernel.image import Image
from workbench.kernel.workspace import Workspace

pytestmark = pytest.mark.qemu

HEAP_BASE = 0xFFFFC00000000000
BANNER = "app: Hello from the unikernel!"


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def qemu_children() -> list[int]:
    """PIDs of QEMU processes whose parent is this test process."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        command, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
        if command.startswith("qemu-system") and int(rest[1]) == os.getpid():
            found.append(int(entry.name))
    return found


@pytest.mark.parametrize("machine_type", ["microvm", "pc", "q35"])
def test_boots_to_the_banner_on_every_machine_type(image: Image, machine_type: str) -> None:
    with Machine(image, machine_type=machine_type) as machine:
        machine.wait_for(BANNER)
        assert "kernel: " in machine.console.text
        assert machine.state is MachineState.RUNNING


def test_the_clang_image_boots_and_faults_the_same_way(built_workspace: Workspace) -> None:
    image = built_workspace.build(toolchain="clang")
    with Machine(image) as machine:
        machine.wait_for(BANNER)
        machine.wait_for("> ")
        machine.send_line("fault stack-overflow")
        outcome = machine.wait(timeout=15)
        assert outcome.fault is not None and outcome.fault.vector == 14
        assert "guard page" in outcome.explanation


def test_the_line_protocol(image: Image) -> None:
    with Machine(image) as machine:
        machine.wait_for("> ")
        assert machine.request("help")["commands"].split(",")[:2] == ["help", "ticks"]
        first = machine.request("ticks").number("ticks")
        time.sleep(0.3)
        later = machine.request("ticks")
        assert later.number("ticks") > first, "the timer does not tick"
        assert later["hz"] == "100"
        alloc = machine.request("alloc 3")
        vaddr = alloc.number("vaddr")
        assert vaddr >= HEAP_BASE and alloc.number("pages") == 3
        assert machine.request(f"read {vaddr:#x}").number("value") == 0  # fresh pages are zeroed
        machine.request(f"write {vaddr + 8:#x} 0x1234abcd")
        assert machine.request(f"read {vaddr + 8:#x}").number("value") == 0x1234ABCD
        wrong = machine.request("teleport now")
        assert not wrong.ok and wrong["message"]
        machine.send_line("exit 5")
        outcome = machine.wait(timeout=10)
        assert outcome.state is MachineState.EXITED and outcome.exit_status == 5


EXPECTED_FAULTS = {
    "null-write": (14, "PF"),
    "text-write": (14, "PF"),
    "general-protection": (13, "GP"),
    "invalid-opcode": (6, "UD"),
    "divide-error": (0, "DE"),
    "stack-overflow": (14, "PF"),
}


@pytest.mark.parametrize("scenario", sorted(EXPECTED_FAULTS))
def test_each_fault_scenario_is_reported_and_the_machine_paused(built_workspace: Workspace, scenario: str) -> None:
    image = built_workspace.build(scenario=scenario)
    with Machine(image) as machine:
        outcome = machine.wait(timeout=15)
        assert outcome.state is MachineState.FAULTED, outcome
        assert outcome.fault is not None
        assert (outcome.fault.vector, outcome.fault.mnemonic) == EXPECTED_FAULTS[scenario]
        assert outcome.fault.symbol != "?", "the guest could not name the faulting function"
        assert outcome.registers is not None
        assert machine.qmp("query-status")["running"] is False
        cr2 = outcome.fault.cr2
        if scenario == "null-write":
            assert cr2 == 0 and "null page" in outcome.explanation
        if scenario == "text-write":
            text = image.section(".text")
            assert cr2 is not None and text.vaddr <= cr2 < text.end
            assert "write" in outcome.fault.error_decoded and "present" in outcome.fault.error_decoded
        if scenario == "stack-overflow":
            guard = image.symbol("boot_stack_guard")
            assert cr2 is not None and guard.vaddr <= cr2 < guard.vaddr + 4096
            assert "guard page" in outcome.explanation


def test_a_fault_requested_at_run_time_raises_while_waiting(image: Image) -> None:
    with Machine(image) as machine:
        machine.wait_for("> ")
        machine.send_line("fault null-write")
        with pytest.raises(GuestStopped, match="Page Fault") as caught:
            machine.wait_for("never printed")
        assert caught.value.outcome.fault is not None and caught.value.outcome.fault.cr2 == 0
        assert machine.state is MachineState.FAULTED


def test_a_triple_fault_leaves_the_machine_paused(image: Image) -> None:
    """Break the double-fault and page-fault gates, then touch the null page."""
    idt = image.symbol("idt").vaddr
    with Machine(image) as machine:
        machine.wait_for("> ")
        for vector in (8, 14):
            for word in range(2):
                machine.request(f"write {idt + 16 * vector + 8 * word:#x} 0")
        machine.send_line("read 0x0")
        outcome = machine.wait(timeout=15)
        assert outcome.state is MachineState.TRIPLE_FAULT
        assert "triple-faulted" in outcome.explanation
        assert outcome.registers is not None
        assert any(e.name == "SHUTDOWN" and e.data.get("reason") == "guest-reset" for e in machine.events)


def test_a_guest_that_prints_nothing_times_out_and_qemu_is_stopped(workspace: Workspace) -> None:
    workspace.replace("app/main.c", "void app_main(void)\n{", "void app_main(void)\n{\n    for (;;) {}")
    image = workspace.build()
    machine = Machine(image).start()
    with pytest.raises(GuestTimeout, match=r"did not print 'app:' within 1 s\..*app_main") as caught:
        machine.wait_for("app:", timeout=1)
    assert caught.value.registers is not None
    assert machine.state is MachineState.CLOSED
    assert machine.pid not in qemu_children()
    with pytest.raises(MachineClosed):
        machine.send_line("ticks")


def test_reset_boots_again_and_pause_stops_time(image: Image) -> None:
    with Machine(image) as machine:
        machine.wait_for(BANNER)
        machine.pause()
        assert machine.state is MachineState.PAUSED
        assert machine.qmp("query-status")["running"] is False
        machine.resume()
        assert machine.state is MachineState.RUNNING
        machine.reset()
        machine.wait_for(BANNER)  # a second banner, after the reset
        assert machine.console.text.count(BANNER) == 2


def test_a_snapshot_stops_the_guest_unseen_and_a_pause_is_seen(image: Image) -> None:
    """A read at one instant (snapshot, cpus, a hold) stops QEMU and resumes it without telling
    the listeners, which the views are: one view's read must not make every other view refresh."""
    with Machine(image) as machine:
        machine.wait_for(BANNER)
        seen: list[MachineState] = []
        machine.add_state_listener(seen.append)
        with machine.held():
            assert machine.qmp("query-status")["running"] is False  # QEMU is stopped meanwhile
            with machine.held():  # nested: the outer hold resumes it
                machine.snapshot()
            assert machine.qmp("query-status")["running"] is False
        machine.snapshot()
        machine.cpus()
        time.sleep(0.2)  # QEMU's STOP and RESUME events of the holds arrive meanwhile
        assert machine.qmp("query-status")["running"] is True
        assert (machine.state, seen) == (MachineState.RUNNING, [])
        machine.pause()
        time.sleep(0.2)
        with machine.held():  # a paused guest stays paused
            pass
        assert machine.qmp("query-status")["running"] is False
        machine.resume()
        time.sleep(0.2)
        assert (machine.state, seen) == (MachineState.RUNNING, [MachineState.PAUSED, MachineState.RUNNING])


def test_a_hold_on_another_thread_keeps_the_guest_stopped_until_it_ends(image: Image) -> None:
    """Views read on threads of their own: a hold that outlives the one begun before it, on
    another thread, keeps the guest stopped until it ends, and the last hold resumes it."""
    with Machine(image) as machine:
        machine.wait_for(BANNER)
        seen: list[MachineState] = []
        machine.add_state_listener(seen.append)
        inside, leave = threading.Event(), threading.Event()

        def second_hold() -> None:
            with machine.held():
                inside.set()
                leave.wait(10)

        other = threading.Thread(target=second_hold)
        with machine.held():
            other.start()
            assert inside.wait(10)
        assert machine.qmp("query-status")["running"] is False  # the other thread's hold goes on
        leave.set()
        other.join(10)
        time.sleep(0.2)
        assert machine.qmp("query-status")["running"] is True
        assert (machine.state, seen) == (MachineState.RUNNING, [])


def test_qemu_that_will_not_start_reports_its_own_words(image: Image, tmp_path: Path) -> None:
    with pytest.raises(QemuStartError, match="QEMU said"):
        Machine(image, extra_args=("-no-such-option",)).start()
    not_an_image = tmp_path / "notes.txt"
    not_an_image.write_text("this is not a kernel\n")
    with pytest.raises(WorkbenchError, match="is not an ELF image"):
        Machine(not_an_image).start()
    with pytest.raises(QemuStartError, match="without PVH ELF Note"):
        Machine(sys.executable).start()  # an x86-64 ELF, but not a bootable one
    assert qemu_children() == []


def test_nothing_outlives_many_machines(built_workspace: Workspace, image: Image, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    faulty = built_workspace.build(scenario="divide-error")
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(private_tmp))  # QEMU and Python would put temporary files here
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))

    def snapshot() -> tuple[int, int, list[str]]:
        return (len(os.listdir("/proc/self/fd")), len(qemu_children()), os.listdir(private_tmp))

    before = snapshot()
    for _ in range(4):
        with Machine(image) as machine:  # exits by itself
            machine.wait_for("> ")
            machine.send_line("exit 0")
            machine.wait()
        with Machine(faulty) as machine:  # faults and stays paused until closed
            machine.wait()
        machine = Machine(image).start()  # hangs from the host's point of view
        with pytest.raises(GuestTimeout):
            machine.wait_for("never", timeout=0.5)
        with pytest.raises(QemuStartError):
            Machine(image, extra_args=("-no-such-option",)).start()
    assert snapshot() == before


def readline(stream: IO[str], timeout: float) -> str:
    """One line from a child's pipe, or AssertionError after `timeout` seconds."""
    ready, _, _ = select.select([stream], [], [], timeout)
    assert ready, f"no line from the child within {timeout:g} s"
    return stream.readline()


def qemu_children_of(pid: int) -> list[int]:
    """The QEMU processes among `pid`'s children."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            try:
                if Path(f"/proc/{child}/comm").read_text().startswith("qemu"):
                    found.append(child)
            except OSError:
                continue
    return found


def wait_gone(pid: int, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not alive(pid)


@contextlib.contextmanager
def leave_no_qemu(qemu: list[int]) -> Iterator[None]:
    """Whatever the test asserts, kill every QEMU it recorded that is still there at the end."""
    try:
        yield
    finally:
        for pid in qemu:
            if alive(pid):  # the test has failed already: QEMU outlived its parent; clean up
                os.kill(pid, signal.SIGKILL)


def test_qemu_dies_with_the_python_process_that_started_it(image: Image) -> None:
    script = textwrap.dedent(f"""
        import sys, time
        from workbench.guest.machine import Machine
        machine = Machine({str(image.path)!r}).start()
        machine.wait_for("> ")
        print(machine.pid, flush=True)
        time.sleep(60)
    """)
    qemu: list[int] = []
    with leave_no_qemu(qemu), subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                                               text=True) as parent:
        try:
            assert parent.stdout is not None
            qemu.append(int(readline(parent.stdout, 60)))
            assert alive(qemu[0])
        finally:
            parent.kill()
            parent.wait(timeout=10)
        assert wait_gone(qemu[0]), "QEMU outlived the process that started it"


def test_qemu_dies_with_a_parent_killed_during_start_up(image: Image) -> None:
    script = textwrap.dedent(f"""
        from workbench.guest.machine import Machine
        print("starting", flush=True)
        machine = Machine({str(image.path)!r}).start()
        print("started", flush=True)
        machine.wait_for("> ", timeout=60)
    """)
    qemu: list[int] = []
    with leave_no_qemu(qemu), subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                                               text=True) as parent:
        try:
            assert parent.stdout is not None
            assert readline(parent.stdout, 60) == "starting\n"
            deadline = time.monotonic() + 30
            while not qemu and time.monotonic() < deadline and parent.poll() is None:
                qemu += qemu_children_of(parent.pid)
                time.sleep(0.001)
            assert qemu, "QEMU never appeared as a child of the starting process"
            started_yet = select.select([parent.stdout], [], [], 0)[0]
        finally:
            parent.kill()
            parent.wait(timeout=10)
        assert not started_yet, "the kill came after Machine.start() returned: not during start-up"
        assert wait_gone(qemu[0]), "QEMU outlived the process killed while it started QEMU"


def test_qemu_dies_with_a_jupyter_kernel_killed_by_sigkill(image: Image) -> None:
    manager = KernelManager(kernel_name="python3")
    root = str(Path(__file__).resolve().parents[2])
    manager.start_kernel(env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (
        root, os.environ.get("PYTHONPATH"))))})
    client = manager.client()
    client.start_channels()
    qemu: list[int] = []
    kernel_pid = manager.provisioner.pid if manager.provisioner is not None else None  # type: ignore[attr-defined]
    try:
        with leave_no_qemu(qemu):
            client.wait_for_ready(timeout=60)
            printed: list[str] = []

            def output(message: dict[str, Any]) -> None:
                if message["msg_type"] == "stream":
                    printed.append(message["content"]["text"])

            reply = client.execute_interactive(textwrap.dedent(f"""
                from workbench.guest.machine import Machine
                machine = Machine({str(image.path)!r}).start()
                machine.wait_for("> ", timeout=60)
                print(machine.pid)
            """), timeout=120, output_hook=output)
            assert reply["content"]["status"] == "ok", reply["content"]
            qemu.append(int("".join(printed)))
            assert kernel_pid is not None and alive(qemu[0]) and qemu[0] in qemu_children_of(kernel_pid)
            os.kill(kernel_pid, signal.SIGKILL)  # the Jupyter kernel only, not its process group
            assert wait_gone(qemu[0]), "QEMU outlived the Jupyter kernel that started it"
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
        manager.cleanup_resources()


def test_a_named_machine_replaces_the_one_before(image: Image) -> None:
    first = Machine(image, name="lesson").start()
    second = Machine(image, name="lesson").start()
    try:
        assert first.state is MachineState.CLOSED
        assert second.state is MachineState.RUNNING
        assert re.search(r"lesson", repr(second))
    finally:
        second.close()
