"""One QEMU process running the unikernel, owned completely by this Python process.

Machine starts QEMU with guest RAM in a memfd that Python created, QMP on a socket pair and
the serial console on two pipes (no socket files, no races; serial_pipes.py says why pipes),
and `-action reboot=shutdown,shutdown=pause` so a triple fault leaves the machine paused for
inspection. Everything runs on the machine's own
event-loop thread (see loop.py); the methods here are synchronous and every one has a timeout,
checked before anything is done (outcome.check_timeout).

Lifetime: QEMU gets SIGKILL when the thread that started it dies (PR_SET_PDEATHSIG), which
covers a killed Jupyter kernel; `close()` (also from `with`, atexit and the finaliser) quits
it politely, then kills it, and releases every descriptor.

A Machine is made of parts, each holding only what it needs, over the one QEMU connection:
status.py (its state and outcome), monitor.py (QMP and the human monitor), inspection.py
(registers and memory), keyboard.py (typing) and conversation.py (waiting and requests). The
machine's own verbs (`registers()`, `read_symbol()`, `send_line()`, `request()`, ...) hand the
work to them; this module keeps the QEMU process and what happens on its event loop. Beside
them, outcome.py says what a stop means and protocol.py is the application's line protocol.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import logging
import os
import re
import signal
import socket
import subprocess
import threading
import time
import weakref
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qemu.qmp import QMPClient, Runstate
from qemu.qmp.error import QMPError

from workbench import grader_facts
from workbench.errors import WorkbenchError
from workbench.guest.console import DEFAULT_LIMIT, Console
from workbench.guest.conversation import Conversation
from workbench.guest.cpus import CpuDidNotStart, CpuState, cpus_that_did_not_start, did_not_start_message, positions
from workbench.guest.gdbstub import GdbClient, GdbError
from workbench.guest.inspection import BadGuestAccess, Inspector
from workbench.guest.keyboard import Keyboard
from workbench.guest.loop import LoopThread
from workbench.guest.memory import GuestRAM, MonitorMemory
from workbench.guest.monitor import QUIT_GRACE_SECONDS, Monitor
from workbench.guest.outcome import (
    MAX_TIMEOUT,
    BadMachineSetting,
    BadTimeout,
    ConnectionLost,
    GuestStopped,
    GuestTimeout,
    MachineClosed,
    MachineError,
    MachineState,
    Outcome,
    QemuStartError,
    check_timeout,
    disconnected_outcome,
    exit_outcome,
    fault_outcome,
    triple_fault_outcome,
)
from workbench.guest.protocol import (
    MAX_REQUEST_LENGTH,
    BadRequest,
    NoReply,
    Reply,
    check_request,
    request_limit,
)
from workbench.guest.qemu import max_cpus, qemu_info
from workbench.guest.serial_pipes import SerialPipes
from workbench.guest.status import Status
from workbench.kernel.image import Image
from workbench.models import paging
from workbench.models.cpu import Registers
from workbench.models.faults import FAULT_LINE, GuestFault
from workbench.models.physmap import PhysicalMap
from workbench.models.snapshot import Snapshot

__all__ = [  # Machine, and the names of its results and errors, which callers import from here
    "ACCELERATORS", "MACHINE_TYPES", "MAX_MEMORY_MIB", "MAX_REQUEST_LENGTH", "MAX_TIMEOUT",
    "BadGuestAccess", "BadMachineSetting", "BadRequest", "BadTimeout", "ConnectionLost", "GuestStopped",
    "GuestTimeout", "Machine", "MachineClosed", "MachineError", "MachineState", "NoReply", "Outcome",
    "QemuStartError", "QmpEvent", "Reply", "check_request", "close_all",
]

MACHINE_TYPES = ("microvm", "pc", "q35")
ACCELERATORS = ("tcg", "kvm")
DEBUG_EXIT_PORT = 0xF4
MAX_MEMORY_MIB = 2048  # stays below the PCI hole on every machine type: memfd offset == paddr
# The largest legitimate monitor reply: `info tlb` prints one line of about 50 bytes (as JSON)
# per 4 KiB leaf; every page of the largest guest RAM mapped four times over is about 105 MB.
# qemu.qmp's default of 10 MB is less than the 31 MB `info tlb` of some student page tables,
# and a reply over the limit drops the connection for good.
QMP_REPLY_LIMIT = 128 << 20
HOLD_EVENT_SECONDS = 1.0  # how long the end of a hold waits for QEMU's RESUME event (it comes within ms)
# Machines one process may run at once ($WORKBENCH_MAX_MACHINES): a runaway loop, or a graded
# submission, cannot start QEMUs without end. 32 machines answer within 2.3 s here.
DEFAULT_MAX_MACHINES = 16

# qemu.qmp logs a failed connection at ERROR level, which a notebook shows as red noise; the
# same failure reaches the student as a QemuStartError carrying QEMU's own words instead.
logging.getLogger("qemu.qmp").addHandler(logging.NullHandler())
logging.getLogger("qemu.qmp").propagate = False

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


async def _exits_within(process: subprocess.Popen[bytes] | None, seconds: float) -> bool:
    """Whether `process` exits within `seconds`. Polled on the loop, not waited for on a worker
    thread: at interpreter exit (close_all) asyncio can start no more threads."""
    deadline = time.monotonic() + seconds
    while process is not None and process.poll() is None:
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.01)
    return True


@dataclass(frozen=True)
class QmpEvent:
    """One event QEMU sent over QMP (STOP, RESUME, SHUTDOWN, ...), kept in `Machine.events`."""

    name: str
    data: dict[str, Any]
    seconds: float  # since the machine started


# The machine.

class TooManyMachines(MachineError):
    """This process already runs as many machines as it may."""


def max_machines() -> int:
    """How many machines one process may run at once: under the grader, the number its read-only
    facts file sets (a submission cannot raise it); else $WORKBENCH_MAX_MACHINES, else 16."""
    if grader_facts.FACTS is not None:
        return grader_facts.FACTS.max_machines
    configured = os.environ.get("WORKBENCH_MAX_MACHINES", "")
    if not configured:
        return DEFAULT_MAX_MACHINES
    if not configured.isdigit() or int(configured) < 1:
        raise BadMachineSetting(f"WORKBENCH_MAX_MACHINES must be a whole number of 1 or more, not {configured!r}")
    return int(configured)


_live_machines: weakref.WeakSet[Machine] = weakref.WeakSet()
_named_machines: weakref.WeakValueDictionary[str, Machine] = weakref.WeakValueDictionary()


@atexit.register
def close_all() -> None:
    """Close every machine of this process (also called at interpreter exit)."""
    for machine in list(_live_machines):
        machine.close()


def _check_settings(machine_type: str, accel: str, memory_mib: int, record: object, replay: object) -> None:
    """BadMachineSetting, saying what is allowed, for a setting QEMU would refuse or misread
    (the number of CPUs: _check_cpus)."""
    if machine_type not in MACHINE_TYPES:
        raise BadMachineSetting(f"machine_type must be one of {', '.join(MACHINE_TYPES)}, not {machine_type!r}")
    if accel not in ACCELERATORS:
        raise BadMachineSetting(f"accel must be one of {', '.join(ACCELERATORS)}, not {accel!r}")
    if not isinstance(memory_mib, int) or isinstance(memory_mib, bool) or not 16 <= memory_mib <= MAX_MEMORY_MIB:
        raise BadMachineSetting(f"memory_mib must be a whole number of MiB from 16 to {MAX_MEMORY_MIB}, "
                                f"not {memory_mib!r}")
    if record is not None and replay is not None:
        raise BadMachineSetting("a machine either records or replays, not both")


def _check_cpus(cpus: object, machine_type: str, recording: bool) -> int:
    """The number of CPUs, checked: a whole number from 1 to what QEMU allows the machine type,
    and 1 for a recording or a replay (QEMU refuses record/replay with more: docs/design.md)."""
    if not isinstance(cpus, int) or isinstance(cpus, bool) or cpus < 1:
        raise BadMachineSetting(f"cpus must be a whole number of 1 or more, not {cpus!r}")
    if cpus == 1:
        return cpus
    most = max_cpus(machine_type)
    if cpus > most:
        raise BadMachineSetting(f"cpus must be at most {most}, what QEMU allows the machine type "
                                f"{machine_type}, not {cpus}")
    if recording:
        raise BadMachineSetting(f"QEMU records and replays a machine of one CPU only, not {cpus}: "
                                "leave out record= or replay=, or use cpus=1")
    return cpus


class Machine:
    """A unikernel image booted in QEMU.

    Any other kernel QEMU can boot with `-kernel` (a Linux bzImage, say) runs too when given
    as `Image.foreign(path)`, with its command line in `append`; it has no symbols.

    Use it as a context manager, or call `start()` and later `close()`. Passing `name`
    closes an earlier machine of the same name first, so re-running a notebook cell does
    not pile up QEMU processes.

    With `gdb=True`, QEMU's gdbstub listens on a socket pair of its own (no port, no socket
    file), connected before the guest runs: `machine.gdb` stops, steps and reads the guest
    (workbench/guest/gdbstub.py; workbench/debug/trace.py builds on it), and
    `Debugger.attach(machine)` works at the level of the source (workbench/debug/debugger.py).

    With `record=PATH`, QEMU records the run (`-icount shift=auto,rr=record`): every
    instruction count, interrupt, clock reading and typed byte goes into that file, which is
    complete once QEMU has exited (close() or the guest's exit). `replay=PATH` runs the same
    image with the same settings through exactly the same instructions again, typed input and
    console output included; workbench/timetravel/replay.py builds on it.

    With `cpus=N` QEMU gives the guest N CPUs (`-smp N`): `cpus()` reads each one's registers,
    whether it is halted and where it is, a snapshot keeps each one's CR3, and a request that
    times out says where every CPU was (a deadlock is then a report, not a hang).

    Requests are checked against the image's own line length (`request_limit`, from its
    `app_request_limit` symbol), so a student who changes LINE_SIZE gets the right check.
    """

    qmp_reply_limit = QMP_REPLY_LIMIT  # bytes of one QMP message; set before start() to change

    def __init__(
        self,
        image: Image | str | Path,
        *,
        machine_type: str = "microvm",
        accel: str = "tcg",
        memory_mib: int = 64,
        cpu: str = "qemu64",
        cpus: int = 1,
        console_limit: int = DEFAULT_LIMIT,
        name: str | None = None,
        shared_memory: bool = True,
        append: str | None = None,
        extra_args: tuple[str, ...] = (),
        gdb: bool = False,
        record: str | Path | None = None,
        replay: str | Path | None = None,
    ) -> None:
        _check_settings(machine_type, accel, memory_mib, record, replay)
        self.cpu_count = _check_cpus(cpus, machine_type, record is not None or replay is not None)
        self.record_path = Path(record) if record is not None else None
        self.replay_path = Path(replay) if replay is not None else None
        if self.replay_path is not None and not self.replay_path.is_file():
            raise BadMachineSetting(f"there is no recording at {self.replay_path}")
        self.image = image if isinstance(image, Image) else Image.load(image)
        self.machine_type = machine_type
        self.accel = accel
        self.memory_mib = memory_mib
        self.cpu = cpu
        self.name = name
        self.append = append  # a kernel command line, for foreign kernels such as Linux
        self.extra_args = extra_args
        self.shared_memory = shared_memory
        self.gdb_enabled = gdb  # QEMU's gdbstub on a private socket pair: see the `gdb` property
        self.memory_note = ""  # why guest RAM is not shared, when it is not
        self.console = Console(console_limit)
        self.events: deque[QmpEvent] = deque(maxlen=1000)
        self._hold_lock = threading.Lock()
        self._hold_turns = threading.Lock()  # taken around a hold's stop or resume, never by the event loop
        self._hold_done = threading.Condition(self._hold_lock)  # a hold's RESUME event has come
        self._holds = 0  # held()'s depth
        self._quiet_events: Counter[str] = Counter()  # QEMU events of holds, not to be announced
        self._add_parts()
        self._loop: LoopThread | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._qmp: QMPClient | None = None
        self._qemu_log_fd = -1
        self._pidfd = -1
        self._sockets: list[socket.socket] = []
        self._serial: SerialPipes | None = None
        self._gdb: GdbClient | None = None
        self._started_at = 0.0
        self._partial_line = ""
        self._pending_fault: GuestFault | None = None
        self._missing_cpus_reported = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._serial_task: asyncio.Task[None] | None = None
        self._closing = False

    def _add_parts(self) -> None:
        """The parts that do the machine's work, each given only what it needs."""
        self._status = Status(self.console)
        self._monitor = Monitor(self._status)
        self._inspector = Inspector(self.image, self._monitor, self.memory_mib)
        self._keyboard = Keyboard(self._monitor, self._status, self.image,
                                  recording=self.record_path is not None, replaying=self.replay_path is not None)
        self._conversation = Conversation(self._status, self._keyboard, request_limit(self.image),
                                          give_up=self._give_up, qemu_log=self._qemu_log_if_failed)

    # Life cycle.

    def __enter__(self) -> Machine:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def state(self) -> MachineState:
        return self._status.state

    @property
    def outcome(self) -> Outcome | None:
        """How the guest stopped, once it has (exited, faulted, triple-faulted, disconnected)."""
        return self._status.outcome

    @outcome.setter
    def outcome(self, outcome: Outcome | None) -> None:  # a replay knows how the recorded run ended
        self._status.outcome = outcome

    @property
    def request_limit(self) -> int:
        """Characters of one request the guest reads whole (from the image's own line length)."""
        return self._conversation.request_limit

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def command_line(self, ram_fd: int | None, qmp_fd: int, gdb_fd: int | None = None) -> list[str]:
        """The QEMU command line for this machine, given the descriptors QEMU inherits (the
        serial console is QEMU's stdin and stdout)."""
        info = qemu_info()
        machine = self.machine_type + (",memory-backend=ram" if ram_fd is not None else "")
        if self.machine_type == "microvm":
            machine += ",pit=on,pic=on,rtc=off,isa-serial=on"  # the legacy timer and serial the guest uses
        args = [
            info.path,
            "-name", (self.name or "workbench").replace(",", ",,"),  # QEMU reads a comma as the next option
            "-machine", machine,
            "-accel", self.accel,
            "-cpu", self.cpu,
            *(("-smp", str(self.cpu_count)) if self.cpu_count > 1 else ()),
            "-m", f"{self.memory_mib}M",
            "-nodefaults", "-no-user-config", "-display", "none",
            "-chardev", f"socket,id=qmp,fd={qmp_fd}", "-mon", "chardev=qmp,mode=control",
            "-chardev", "stdio,id=com1,signal=off", "-serial", "chardev:com1",  # Ctrl-C is a byte
            "-device", f"isa-debug-exit,iobase={DEBUG_EXIT_PORT:#x},iosize=0x04",
            "-action", "reboot=shutdown,shutdown=pause",  # a triple fault pauses, state intact
            "-kernel", str(self.image.path),
            *(("-append", self.append) if self.append is not None else ()),
            "-S",  # start paused: QMP is connected before the first guest instruction
        ]
        if self.record_path is not None or self.replay_path is not None:
            mode, path = ("record", self.record_path) if self.record_path is not None else ("replay", self.replay_path)
            args += ["-icount", f"shift=auto,rr={mode},rrfile={path}"]
        if gdb_fd is not None:  # the gdbstub on a connected socket: no port, no socket file
            args += ["-chardev", f"socket,id=gdb,fd={gdb_fd}", "-gdb", "chardev:gdb"]
        if ram_fd is not None:  # guest RAM is our memfd: its file offset is the guest paddr
            args += ["-object", f"memory-backend-file,id=ram,size={self.memory_mib}M,"
                                f"mem-path=/proc/self/fd/{ram_fd},share=on"]
        if self.machine_type != "microvm" and info.qboot_rom:
            args += ["-bios", info.qboot_rom]  # qboot boots PVH in half the time of SeaBIOS
        if info.has_sandbox:
            args += ["-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"]
        return [*args, *self.extra_args]

    def start(self, timeout: float = 10.0, *, paused: bool = False) -> Machine:
        """Start QEMU and let the guest run. Raises QemuStartError with QEMU's own words.

        With `paused=True` the CPU waits at its very first instruction until `resume()`.
        """
        timeout = check_timeout(timeout)
        if self.state is not MachineState.CREATED:
            raise MachineError(f"this machine was already started (it is {self.state.value})")
        if self.name is not None:
            earlier = _named_machines.get(self.name)
            if earlier is not None:
                earlier.close()
        running = sum(1 for machine in _live_machines if not machine.state.terminal)
        if running >= max_machines():
            raise TooManyMachines(
                f"this Jupyter kernel already runs {running} machines, as many as it may "
                f"(the limit is {max_machines()}): close() the ones you no longer need, or give "
                "machines a name= so that a new one replaces the old")
        if self.name is not None:
            _named_machines[self.name] = self
        _live_machines.add(self)
        try:
            self._loop = LoopThread(f"machine-{self.name or id(self)}")
            # The gdbstub handshake needs a stopped guest: a byte that reaches it while the
            # guest runs only stops the guest.
            self._loop.run(self._start(paused or self.gdb_enabled), timeout)
            if self.gdb_enabled:
                self._gdb = GdbClient(self._sockets[1], timeout)
                self._gdb.connect()
                if not paused:
                    self.resume(timeout)
        except BaseException as error:
            log = self.qemu_log()
            self.close()
            if isinstance(error, TimeoutError):
                raise QemuStartError(f"QEMU did not become ready within {timeout:g} s.", qemu_log=log) from error
            if isinstance(error, (OSError, QMPError, EOFError, GdbError)):
                status = self._process.returncode if self._process else None
                raise QemuStartError(
                    f"QEMU exited with status {status} before the guest ran." if status is not None
                    else f"could not talk to QEMU: {error}",
                    qemu_log=log,
                ) from error
            raise
        return self

    async def _start(self, paused: bool) -> None:
        loop = asyncio.get_running_loop()
        self._share_ram()
        qmp_ours, qmp_theirs = socket.socketpair()
        self._serial = serial = SerialPipes()
        self._keyboard.connect(serial, self._inspector.ram)
        gdb_ours, gdb_theirs = socket.socketpair() if self.gdb_enabled else (None, None)
        self._sockets = [sock for sock in (qmp_ours, gdb_ours) if sock is not None]
        self._qemu_log_fd = os.memfd_create("qemu-log", os.MFD_CLOEXEC)
        ram_fd = self._inspector.ram.fd if self._inspector.ram is not None else None
        gdb_fd = gdb_theirs.fileno() if gdb_theirs is not None else None
        try:
            self._process = self._launch(ram_fd, qmp_theirs.fileno(), gdb_fd, serial)
        finally:
            qmp_theirs.close()
            serial.close_theirs()
            if gdb_theirs is not None:
                gdb_theirs.close()
        self._started_at = time.monotonic()
        self._set_state(MachineState.PAUSED)

        self._pidfd = os.pidfd_open(self._process.pid)  # readable once QEMU has exited
        loop.add_reader(self._pidfd, self._on_qemu_exit)
        self._serial_task = loop.create_task(self._read_serial(serial), name="serial")

        self._qmp = QMPClient(self.name or "workbench", readbuflen=self.qmp_reply_limit)
        await self._qmp.connect(qmp_ours)
        assert self._loop is not None
        self._monitor.connect(self._loop, self._qmp)
        self._keep(loop.create_task(self._read_events(self._qmp), name="events"))
        self._keep(loop.create_task(self._watch_connection(self._qmp), name="connection"))
        await self._inspector.maxphyaddr_on_loop()  # before the guest runs: a fault report needs it
        if paused:
            return
        self._set_state(MachineState.RUNNING)
        try:
            await self._qmp.execute("cont")
        except (QMPError, EOFError, OSError) as error:
            # The guest may run and exit before QEMU answers; _after_exit records how it ended.
            if not await _exits_within(self._process, QUIT_GRACE_SECONDS):
                raise error from None

    def _share_ram(self) -> None:
        """Guest RAM in a memfd of ours, which QEMU maps too; else it is read through QMP."""
        if not self.shared_memory:
            self.memory_note = "guest RAM is not shared (shared_memory=False); reading it through QMP"
            return
        try:
            self._inspector.use_ram(GuestRAM(self.memory_mib << 20, name=f"{self.name or 'workbench'}-ram"))
        except OSError as error:
            self.memory_note = f"guest RAM could not be shared ({error}); reading it through QMP instead"

    def _launch(self, ram_fd: int | None, qmp_fd: int, gdb_fd: int | None,
                serial: SerialPipes) -> subprocess.Popen[bytes]:
        """QEMU, started with these descriptors and dying with the thread that started it."""
        parent = os.getpid()

        def die_with_parent() -> None:
            # Runs in the child between fork and exec: tie QEMU's life to this thread's.
            _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != parent:
                os._exit(1)

        return subprocess.Popen(
            self.command_line(ram_fd, qmp_fd, gdb_fd),
            pass_fds=tuple(fd for fd in (ram_fd, qmp_fd, gdb_fd) if fd is not None),
            stdin=serial.theirs[0],
            stdout=serial.theirs[1],
            stderr=self._qemu_log_fd,
            start_new_session=True,  # Ctrl-C in a terminal or Jupyter reaches us, not QEMU
            preexec_fn=die_with_parent,  # noqa: PLW1509 - only a prctl call, fork-safe
        )

    def close(self, timeout: float = 5.0) -> None:
        """Stop QEMU (politely, then by force) and release everything. Safe to call twice."""
        timeout = check_timeout(timeout)
        if self.state is MachineState.CLOSED:
            return
        self._closing = True
        loop, process = self._loop, self._process
        if loop is not None and process is not None and process.poll() is None:
            with contextlib.suppress(TimeoutError, QMPError, OSError, RuntimeError):
                loop.run(self._quit(), QUIT_GRACE_SECONDS)  # a polite quit; killed below if ignored
            try:
                process.wait(QUIT_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        if loop is not None:
            if self._qmp is not None:
                with contextlib.suppress(Exception):  # QEMU is gone; the connection's last error is moot
                    loop.run(self._qmp.disconnect(), 1.0)
            loop.close(timeout)
        for sock in self._sockets:
            sock.close()
        self._sockets = []
        if self._serial is not None:
            self._serial.close()
        self._gdb = None
        if self._pidfd >= 0:
            os.close(self._pidfd)
            self._pidfd = -1
        if self._qemu_log_fd >= 0:
            os.close(self._qemu_log_fd)
            self._qemu_log_fd = -1
        self._inspector.close()
        self._set_state(MachineState.CLOSED)
        self.console.close()
        _live_machines.discard(self)

    def __del__(self) -> None:
        if getattr(self, "_state", MachineState.CLOSED) not in (MachineState.CREATED, MachineState.CLOSED):
            self.close()

    async def _quit(self) -> None:
        if self._qmp is not None and self._qmp.runstate.name == "RUNNING":
            await self._qmp.execute("quit")

    # Background tasks on the loop thread.

    def _keep(self, task: asyncio.Task[None]) -> None:
        """Hold a reference until the task ends (the loop itself keeps only weak ones)."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _set_state(self, state: MachineState) -> None:
        self._status.set(state)

    def add_state_listener(self, listener: Callable[[MachineState], None]) -> None:
        """Call `listener(state)` after every change of state, on whichever thread made it
        (often the event-loop thread: the listener must not call the machine back there)."""
        self._status.add_listener(listener)

    def remove_state_listener(self, listener: Callable[[MachineState], None]) -> None:
        self._status.remove_listener(listener)

    async def _read_serial(self, serial: SerialPipes) -> None:
        while True:
            data = await serial.read()
            if not data:
                return
            if self._keyboard.holding:  # the guest's first output: its console is set up
                held = self._keyboard.stop_holding()
                if held:
                    self._keep(asyncio.get_running_loop().create_task(self._keyboard.type_on_loop(held),
                                                                      name="held input"))
            text = self.console.feed(data)
            self._scan_for_fault(text)

    def _scan_for_fault(self, text: str) -> None:
        """Look at each completed line; a fault report pauses the machine at once. (Not in a
        replay: it only shows what was recorded, and workbench/timetravel/replay.py marks the faults.)"""
        if self.replay_path is not None:
            return
        lines = (self._partial_line + text).split("\n")
        self._partial_line = lines.pop()[-4096:]
        for line in lines:
            if self._pending_fault is None and FAULT_LINE.match(line):
                self._pending_fault = GuestFault.parse(line)
                self._keep(asyncio.get_running_loop().create_task(self._on_guest_fault(), name="fault"))

    async def _on_guest_fault(self) -> None:
        assert self._qmp is not None and self._pending_fault is not None
        try:
            await self._qmp.execute("stop")
            registers: Registers | None = await self._inspector.registers_on_loop()
        except (QMPError, OSError):
            registers = None
        fault = self._pending_fault
        walk = None
        if fault.cr2 is not None and registers is not None:
            with contextlib.suppress(paging.PagingError, QMPError, OSError, MachineError):
                walk = await self._inspector.walk_on_loop(registers, fault.cr2)
        self._status.outcome = fault_outcome(fault, registers, self.image, walk)
        self._set_state(MachineState.FAULTED)

    async def _read_events(self, qmp: QMPClient) -> None:
        async for event in qmp.events:
            raw_data = event.get("data")
            name, data = str(event["event"]), dict(raw_data) if isinstance(raw_data, dict) else {}
            self.events.append(QmpEvent(name, data, time.monotonic() - self._started_at))
            if name == "SHUTDOWN" and data.get("reason") == "guest-reset":
                try:
                    registers: Registers | None = await self._inspector.registers_on_loop()
                except (QMPError, OSError):
                    registers = None
                self._status.outcome = triple_fault_outcome(registers, self.image)
                self._set_state(MachineState.TRIPLE_FAULT)
            elif name == "SHUTDOWN" and data.get("reason") == "guest-shutdown":
                # From QEMU 9.1 on, isa-debug-exit is a shutdown request carrying the exit code,
                # which shutdown=pause turns into a pause (7.2 exits at once, with no event).
                # `quit` lets QEMU exit as the guest asked, with the code it recorded.
                with contextlib.suppress(QMPError, OSError, EOFError):
                    await qmp.execute("quit")
            elif name in ("STOP", "RESUME") and self._quiet_event(name):
                pass
            elif name == "STOP" and self.state is MachineState.RUNNING:
                self._set_state(MachineState.PAUSED)
            elif name == "RESUME" and self.state is MachineState.PAUSED:
                self._set_state(MachineState.RUNNING)

    def _quiet_event(self, name: str) -> bool:
        """A STOP or RESUME of a hold (held()): taken here, not announced."""
        with self._hold_lock:
            if self._quiet_events[name] <= 0:
                return False
            self._quiet_events[name] -= 1
            self._hold_done.notify_all()
            return True

    async def _watch_connection(self, qmp: QMPClient) -> None:
        """A QMP connection that breaks while QEMU lives leaves a machine nobody can pause,
        inspect or quit: record why, and stop QEMU rather than let it run on unseen."""
        while qmp.runstate is Runstate.RUNNING:
            await qmp.runstate_changed()
        process = self._process
        assert process is not None
        if await _exits_within(process, QUIT_GRACE_SECONDS):  # QEMU closes the socket as it exits:
            return  # that is an exit, recorded by _after_exit
        if self._closing:
            return
        cause = "QEMU hung up"
        try:
            await qmp.disconnect()
        except ValueError:  # asyncio's StreamReader: a line longer than its limit
            cause = f"QEMU sent a reply larger than the {self.qmp_reply_limit >> 20} MiB the workbench accepts"
        except Exception as error:  # whatever broke the connection is only reported here
            cause = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        self._status.outcome = disconnected_outcome(cause)
        self._set_state(MachineState.DISCONNECTED)
        process.kill()  # _after_exit reaps it and keeps the outcome above

    def _on_qemu_exit(self) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(self._pidfd)
        self._keep(loop.create_task(self._after_exit(), name="exit"))

    async def _after_exit(self) -> None:
        """Read the guest's last words from the serial pipe, then record the exit."""
        assert self._process is not None
        code = self._process.wait()
        if self._serial_task is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._serial_task), 2.0)
        if self.state is not MachineState.DISCONNECTED:  # that outcome says why we killed it
            if self.outcome is None or self.outcome.state is not MachineState.EXITED:
                self._status.outcome = exit_outcome(code, printed=bool(self.console.text))
            self._set_state(MachineState.EXITED)
        self.console.close()

    # Talking to QEMU.

    def qmp(self, command: str, timeout: float = 5.0, **arguments: Any) -> Any:
        """Execute one QMP command and return its result."""
        return self._monitor.qmp(command, timeout, **arguments)

    def hmp(self, command_line: str, timeout: float = 5.0, *, cpu: int = 0) -> str:
        """Run a human-monitor command (`info registers`, `info tlb`, ...) and return its text.

        `cpu` chooses the CPU whose registers and page tables the command reads (QEMU's
        `cpu-index`, as HMP's `cpu N` would for a monitor of its own): CPU 0 unless said.
        """
        return self._monitor.hmp(command_line, timeout, cpu=self._checked_cpu(cpu) or None)

    def _checked_cpu(self, cpu: object) -> int:
        """`cpu` if this machine has a CPU of that index; else one line saying which it has."""
        if isinstance(cpu, bool) or not isinstance(cpu, int) or not 0 <= cpu < self.cpu_count:
            raise BadMachineSetting(f"cpu must be a CPU of this machine, 0 to {self.cpu_count - 1}, not {cpu!r}")
        return cpu

    @contextlib.contextmanager
    def held(self, timeout: float = 5.0) -> Iterator[None]:
        """A running guest stopped for the moment of a read, unseen by the state's listeners (the
        views): for them it runs on, so one view's snapshot does not make every other view
        refresh. Holds nest, on one thread or several: the first stops the guest, a later one
        waits for that stop, and the last to end resumes it. A guest not running stays as it is."""
        timeout = check_timeout(timeout)
        with self._hold_turns:  # a stop and a resume of holds never interleave
            with self._hold_lock:
                counted = self._holds > 0 or self.state is MachineState.RUNNING
                if counted and self._holds == 0:
                    self._quiet_events.update(("STOP", "RESUME"))  # QEMU's events for the stop and cont
                self._holds += counted
            if counted and self._holds == 1:
                try:
                    self.qmp("stop", timeout)
                except BaseException:
                    self._release_hold(timeout)
                    raise
        try:
            yield
        finally:
            if counted:
                with self._hold_turns:
                    self._release_hold(timeout)

    def _release_hold(self, timeout: float) -> None:
        """One hold fewer; the last resumes the guest (called with the turn held)."""
        with self._hold_lock:
            self._holds -= 1
            last = self._holds == 0
        if last:
            self._end_hold(timeout)

    def _end_hold(self, timeout: float) -> None:
        """Resume, unless the guest faulted, ended or was paused meanwhile. Once the RESUME has
        come, so has the STOP before it, if the stop made one (a guest the debugger had just
        stopped makes none): no later event is taken for the hold's."""
        if self.state is MachineState.RUNNING:
            self.qmp("cont", timeout)
            with self._hold_done:
                self._hold_done.wait_for(lambda: self._quiet_events["RESUME"] <= 0, timeout=HOLD_EVENT_SECONDS)
        with self._hold_lock:
            self._quiet_events.clear()

    def pause(self, timeout: float = 5.0) -> None:
        timeout = check_timeout(timeout)
        self.qmp("stop", timeout)
        self._set_state_if(MachineState.RUNNING, MachineState.PAUSED)

    def resume(self, timeout: float = 5.0) -> None:
        timeout = check_timeout(timeout)
        if self.state in (MachineState.FAULTED, MachineState.TRIPLE_FAULT):
            raise MachineError(f"the guest is {self.state.value}; it cannot go on. Reset it or boot a new machine.")
        self.qmp("cont", timeout)
        self._set_state_if(MachineState.PAUSED, MachineState.RUNNING)

    @property
    def reporting_fault(self) -> bool:
        """The guest printed a fault report that the machine is still taking in (pausing the
        guest, reading its registers): it is FAULTED a moment later."""
        return self._pending_fault is not None and self.outcome is None and not self.state.terminal

    def snapshot_loaded(self) -> None:
        """The guest was put back to an earlier state of itself (QEMU's loadvm, in a replay): it
        is paused, and no longer faulted or ended the way it may have been."""
        self._pending_fault = None
        self._partial_line = ""
        self._status.outcome = None
        self._set_state(MachineState.PAUSED)

    def reset(self, timeout: float = 5.0) -> None:
        """Reboot the guest from its image, keeping QEMU and the console transcript."""
        timeout = check_timeout(timeout)
        self.console.skip_to_end()  # before the reset: the new boot log arrives within milliseconds
        self._pending_fault = None
        self._status.outcome = None
        # With reboot=shutdown every reset request would pause; allow this one through.
        self.qmp("set-action", timeout, reboot="reset")
        try:
            self.qmp("system_reset", timeout)
        finally:
            self.qmp("set-action", timeout, reboot="shutdown")
        if self.qmp("query-status", timeout)["status"] != "running":
            self.qmp("cont", timeout)
        self._set_state(MachineState.RUNNING)

    def _set_state_if(self, expected: MachineState, new: MachineState) -> None:
        self._status.set_if(expected, new)

    @property
    def gdb(self) -> GdbClient:
        """QEMU's gdbstub, connected: breakpoints, single steps, registers (Machine(gdb=True))."""
        self._monitor.require_live()
        if self._gdb is None:
            raise MachineError("this machine has no gdbstub connection; create it with Machine(..., gdb=True)")
        return self._gdb

    # Looking inside: the Inspector's work (inspection.py).

    def registers(self, timeout: float = 5.0) -> Registers:
        """The CPU registers now. Pause first for a consistent snapshot of a running guest."""
        return self._inspector.registers(timeout)

    def cpus(self, timeout: float = 5.0) -> tuple[CpuState, ...]:
        """Every CPU at one instant (a running guest is paused meanwhile): its registers, whether
        it is halted, where it is; from QMP's `query-cpus-fast` and `info registers -a`."""
        timeout = check_timeout(timeout)
        with self.held(timeout):
            return self._inspector.cpus(timeout)

    def maxphyaddr(self, timeout: float = 5.0) -> int:
        """The CPU's physical-address width (40 for QEMU's qemu64): walks need it."""
        return self._inspector.maxphyaddr(timeout)

    def physical_map(self, timeout: float = 5.0) -> PhysicalMap:
        """The guest's physical address space from QEMU (`info mtree -f`): RAM, ROM and devices."""
        return self._inspector.physical_map(timeout)

    def read_physical_through_qemu(self, paddr: int, length: int, timeout: float = 30.0) -> bytes:
        """Bytes at `paddr` as the guest sees them, copied by QEMU (pmemsave): ROM included."""
        return self._inspector.read_physical_through_qemu(paddr, length, timeout)

    @property
    def memory(self) -> GuestRAM | MonitorMemory:
        """Guest physical memory: the shared memfd when there is one, else QMP pmemsave."""
        return self._inspector.memory

    def read_virtual(self, vaddr: int, length: int) -> bytes:
        """Bytes at a guest vaddr, through the guest's current page tables (works while it runs)."""
        return self._inspector.read_virtual(vaddr, length)

    def write_virtual(self, vaddr: int, data: bytes) -> None:
        """Store bytes at a guest vaddr, all of it or nothing; the guest sees them at once."""
        self._inspector.write_virtual(vaddr, data)

    def read_symbol(self, name: str) -> int:
        """The value of a C variable of the unikernel (1, 2, 4 or 8 bytes, little-endian, unsigned)."""
        return self._inspector.read_symbol(name)

    def write_symbol(self, name: str, value: int) -> None:
        """Change a C variable of the unikernel, also while it runs."""
        self._inspector.write_symbol(name, value)

    def snapshot(self, label: str = "", timeout: float = 5.0, *, cpu: int = 0) -> Snapshot:
        """Registers and page tables at one instant; a running guest is paused meanwhile.

        The tables walked are those of `cpu`'s CR3 (CPU 0's unless said); every CPU's CR3 is kept.
        """
        timeout = check_timeout(timeout)
        cpu = self._checked_cpu(cpu)
        with self.held(timeout):
            inspector = self._inspector
            every_cpu = inspector.all_registers(timeout)
            return Snapshot.take(inspector.memory, every_cpu[cpu], maxphyaddr=inspector.maxphyaddr(timeout),
                                 seconds=time.monotonic() - self._started_at, label=label,
                                 cpu_cr3=tuple(registers.cr3 for registers in every_cpu), cpu=cpu)

    # Talking with the guest: the Keyboard's and the Conversation's work.

    def send(self, text: str) -> None:
        """Type `text` into the guest's serial console (a line needs its own newline)."""
        self._keyboard.send(text)

    def send_line(self, line: str) -> None:
        """Type `line` and a newline."""
        self._keyboard.send_line(line)

    def wait_for(self, pattern: str | re.Pattern[str], timeout: float = 10.0) -> re.Match[str]:
        """Wait until the guest prints `pattern` (text or regex) after the last match; a guest
        that stops first raises GuestStopped, one that takes too long GuestTimeout (and is stopped).
        On a machine of several CPUs, a CPU the kernel says did not start raises CpuDidNotStart,
        once, naming it and where it is; the machine is left paused there, to be looked at."""
        found = self._conversation.wait_for(pattern, timeout)
        self._report_cpus_that_did_not_start()
        return found

    def _report_cpus_that_did_not_start(self) -> None:
        if self.cpu_count == 1 or self._missing_cpus_reported:
            return
        missing = cpus_that_did_not_start(self.console.text)
        if missing:
            self._missing_cpus_reported = True
            if self.state is MachineState.RUNNING:
                self.pause()  # resuming would set going a CPU that something holds back
            raise CpuDidNotStart(did_not_start_message(missing, self.cpus()) + "; the machine is paused")

    def request(self, line: str, timeout: float = 10.0) -> Reply:
        """Send one request of the application's protocol and return its parsed reply."""
        return self._conversation.request(line, timeout)

    def send_request(self, line: str) -> None:
        """Send a request without waiting: `wait_for_reply(line)` collects its reply later."""
        self._conversation.send_request(line)

    def wait_for_reply(self, line: str, timeout: float = 10.0) -> Reply:
        """The reply to the request `line` sent last with `send_request` (NoReply if none came)."""
        return self._conversation.wait_for_reply(line, timeout)

    def wait(self, timeout: float = 10.0) -> Outcome:
        """Wait until the guest stops by itself (exit, fault, triple fault); return how."""
        return self._conversation.wait(timeout)

    def drain_console(self, timeout: float = 2.0) -> None:
        """Take in everything the guest has printed so far, now: a paused guest's last output
        may still sit in the pipe, not yet read by the event loop."""
        if self._serial is not None and not self.state.terminal:
            self._monitor.run(self._drain(self._serial), timeout)

    async def _drain(self, serial: SerialPipes) -> None:
        data = serial.read_available()  # on the loop thread, in order with _read_serial
        if data:
            self._scan_for_fault(self.console.feed(data))

    def _give_up(self, message: str) -> GuestTimeout:
        """Say where the guest was, then stop QEMU: a hung guest must not outlive the wait."""
        registers: Registers | None = None
        try:
            self.qmp("stop", 2.0)
            registers = self.registers(2.0)
            if self.cpu_count > 1:
                message += f" Where each CPU was: {positions(self._inspector.cpus(2.0))}."
            else:
                message += f" It was executing rip={self.image.format_vaddr(registers.rip)}."
        except WorkbenchError:
            pass
        tail, log = self.console.tail(), self._qemu_log_if_failed()
        self.close()
        return GuestTimeout(message + " QEMU has been stopped.", registers=registers, console_tail=tail, qemu_log=log)

    # Evidence.

    def qemu_log(self) -> str:
        """What QEMU printed on stderr (usually nothing; its stdout is the serial console)."""
        if self._qemu_log_fd < 0:
            return ""
        size = os.fstat(self._qemu_log_fd).st_size
        return os.pread(self._qemu_log_fd, min(size, 1 << 16), max(0, size - (1 << 16))).decode(errors="replace")

    def _qemu_log_if_failed(self) -> str:
        code = self._process.returncode if self._process else None
        return self.qemu_log() if code not in (None, 0) and not (code > 0 and code & 1 and self.console.text) else ""

    def __repr__(self) -> str:
        return f"<Machine {self.name or self.image.path.name} {self.machine_type} {self.state.value}>"
