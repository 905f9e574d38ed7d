"""One QEMU process running the unikernel, owned completely by this Python process.

Machine starts QEMU with guest RAM in a memfd that Python created, QMP on a socket pair and
the serial console on two pipes (no socket files, no races; serial_pipes.py says why pipes),
and `-action reboot=shutdown,shutdown=pause` so a triple fault leaves the machine paused for
inspection. Everything runs on the machine's own
event-loop thread (see _loop.py); the methods here are synchronous and every one has a timeout.

Lifetime: QEMU gets SIGKILL when the thread that started it dies (PR_SET_PDEATHSIG), which
covers a killed Jupyter kernel; `close()` (also from `with`, atexit and the finaliser) quits
it politely, then kills it, and releases every descriptor.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import enum
import logging
import os
import re
import signal
import socket
import subprocess
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qemu.qmp import QMPClient, Runstate
from qemu.qmp.error import QMPError

from . import paging
from ._loop import LoopThread
from .console import DEFAULT_LIMIT, Console
from .cpu import Registers, parse_info_registers
from .errors import InvalidInput, WorkbenchError
from .faults import FAULT_LINE, GuestFault
from .gdbstub import GdbClient, GdbError
from .host import qemu_info
from .image import Image, Symbol
from .memory import GuestRAM, MonitorMemory
from .physmap import PhysicalRegion, parse_flat_view
from .serial_pipes import SerialPipes
from .snapshot import Snapshot

if TYPE_CHECKING:
    from .debugger import Debugger

MACHINE_TYPES = ("microvm", "pc", "q35")
ACCELERATORS = ("tcg", "kvm")
DEBUG_EXIT_PORT = 0xF4
MAX_MEMORY_MIB = 2048  # stays below the PCI hole on every machine type: memfd offset == paddr
QUIT_GRACE_SECONDS = 2.0
PAGE_SIZE = 4096
# The largest legitimate monitor reply: `info tlb` prints one line of about 50 bytes (as JSON)
# per 4 KiB leaf; every page of the largest guest RAM mapped four times over is about 105 MB.
# qemu.qmp's default of 10 MB is less than the 31 MB `info tlb` of some student page tables,
# and a reply over the limit drops the connection for good.
QMP_REPLY_LIMIT = 128 << 20
# The guest reads a request into `char line[LINE_SIZE]` (LINE_SIZE 128 in kernel-src/app/main.c),
# keeping 127 characters and its terminating NUL; longer lines are cut without a word.
MAX_REQUEST_LENGTH = 127
# One send() at most: the guest takes typed bytes one at a time, slowly, through a UART
# without FIFOs; a flood would keep it busy long after the call returned.
MAX_SEND_LENGTH = 4096
SEND_TIMEOUT = 5.0
# While recording, QEMU hands the UART typed bytes in bursts, one burst per read of the
# console pipe, and a burst larger than the UART's 16-byte FIFO loses the rest. So input is
# typed in pieces no larger than the FIFO's interrupt level, each once the guest has taken
# the last (its `input_head` counter, kernel/console.c, has moved on).
RECORDED_INPUT_PIECE = 14
INPUT_COUNTER = "input_head"

# qemu.qmp logs a failed connection at ERROR level, which a notebook shows as red noise; the
# same failure reaches the student as a QemuStartError carrying QEMU's own words instead.
logging.getLogger("qemu.qmp").addHandler(logging.NullHandler())
logging.getLogger("qemu.qmp").propagate = False

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


# Results and errors.


class MachineState(enum.Enum):
    """Where a machine is in its life; `terminal` states have no running QEMU."""

    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    FAULTED = "faulted"  # the guest reported a CPU exception; QEMU is paused
    TRIPLE_FAULT = "triple-fault"  # the CPU reset itself; QEMU is paused
    EXITED = "exited"  # QEMU has exited (the guest asked, or QEMU failed)
    DISCONNECTED = "disconnected"  # the QMP connection broke; QEMU has been stopped
    CLOSED = "closed"  # closed by us

    @property
    def terminal(self) -> bool:
        return self in (MachineState.EXITED, MachineState.DISCONNECTED, MachineState.CLOSED)

    @property
    def stopped_by_guest(self) -> bool:
        return self in (MachineState.FAULTED, MachineState.TRIPLE_FAULT, MachineState.EXITED)


@dataclass(frozen=True)
class Outcome:
    """How a guest stopped: it exited, faulted, or triple-faulted; with what evidence."""

    state: MachineState
    exit_status: int | None = None  # the value the guest wrote to isa-debug-exit
    qemu_returncode: int | None = None
    fault: GuestFault | None = None
    registers: Registers | None = None
    explanation: str = ""

    def __str__(self) -> str:
        return self.explanation

    def __repr__(self) -> str:
        return f"Outcome({self.state.value}: {self.explanation})"


class MachineError(WorkbenchError):
    """Something went wrong with a machine; carries what the console and QEMU last said."""

    def __init__(self, message: str, *, console_tail: str = "", qemu_log: str = "") -> None:
        parts = [message]
        if console_tail:
            parts.append("The guest's last output was:\n" + _indent(console_tail))
        if qemu_log:
            parts.append("QEMU said:\n" + _indent(qemu_log))
        super().__init__("\n".join(parts))
        self.console_tail = console_tail
        self.qemu_log = qemu_log


class QemuStartError(MachineError):
    """QEMU did not start, or exited before the guest could run."""


class GuestTimeout(MachineError):
    """The guest did not do what was awaited in time; QEMU has been stopped."""

    def __init__(self, message: str, *, registers: Registers | None = None, **context: str) -> None:
        super().__init__(message, **context)
        self.registers = registers


class GuestStopped(MachineError):
    """The guest stopped (exit, fault, triple fault) while something was still awaited."""

    def __init__(self, outcome: Outcome, awaited: str, **context: str) -> None:
        super().__init__(f"{outcome.explanation}\n(This happened while waiting for {awaited}.)", **context)
        self.outcome = outcome


class MachineClosed(MachineError):
    """The machine was used after it was closed."""


class ConnectionLost(MachineError):
    """The QMP connection to QEMU broke (a reply over the size limit, say); QEMU was stopped,
    since a machine that cannot be paused, inspected or quit must not run on unseen."""


class NoReply(MachineError):
    """The guest took a request and is waiting for the next one, but printed no reply line
    for it. The machine is still running and can be used."""


class BadMachineSetting(InvalidInput):
    """A Machine setting (machine type, accelerator, memory size) that cannot work."""


class BadRequest(InvalidInput):
    """Text the guest's line protocol cannot carry; nothing was sent to the guest."""


def check_request(line: str) -> str:
    """`line` if it is one request the guest can read whole; BadRequest saying why not."""
    if not isinstance(line, str):
        raise BadRequest(f"a request is a str such as 'ticks', not {type(line).__name__}")
    if len(line) > MAX_REQUEST_LENGTH:
        raise BadRequest(f"a request is at most {MAX_REQUEST_LENGTH} characters (the guest's line buffer "
                         f"holds no more), but this one has {len(line)}")
    breaks = [c for c in line if c in "\r\n"]
    if breaks:
        raise BadRequest(f"a request is one line, but {_clip(line)} contains {breaks[0]!r}; "
                         "send each request with a request() call of its own")
    odd = next((c for c in line if not " " <= c <= "~"), None)
    if odd is not None:
        raise BadRequest(f"a request uses printable ASCII (letters, digits, punctuation, spaces) only, "
                         f"but {_clip(line)} contains {odd!r}")
    if not line.strip():
        raise BadRequest("an empty request gets no reply (the guest just prints its prompt again); "
                         "send a command such as 'help'")
    return line


def _clip(text: str, width: int = 40) -> str:
    return repr(text if len(text) <= width else text[:width] + "...")


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.rstrip().splitlines())


@dataclass(frozen=True)
class Reply:
    """One answer of the application's line protocol: `ok CMD k=v ...` or `error CMD msg`."""

    ok: bool
    command: str
    fields: dict[str, str] = field(default_factory=dict)
    line: str = ""

    def __getitem__(self, key: str) -> str:
        return self.fields[key]

    def __repr__(self) -> str:
        return f"Reply({self.line!r})"

    def number(self, key: str) -> int:
        """A field as an int: `0x...` is hex, anything else decimal."""
        value = self.fields[key]
        return int(value, 16) if value.startswith("0x") else int(value)


@dataclass(frozen=True)
class QmpEvent:
    name: str
    data: dict[str, Any]
    seconds: float  # since the machine started


# The machine.

_live_machines: weakref.WeakSet[Machine] = weakref.WeakSet()
_named_machines: weakref.WeakValueDictionary[str, Machine] = weakref.WeakValueDictionary()


@atexit.register
def close_all() -> None:
    """Close every machine of this process (also called at interpreter exit)."""
    for machine in list(_live_machines):
        machine.close()


class Machine:
    """A unikernel image booted in QEMU.

    Any other kernel QEMU can boot with `-kernel` (a Linux bzImage, say) runs too when given
    as `Image.foreign(path)`, with its command line in `append`; it has no symbols.

    Use it as a context manager, or call `start()` and later `close()`. Passing `name`
    closes an earlier machine of the same name first, so re-running a notebook cell does
    not pile up QEMU processes.

    With `gdb=True`, QEMU's gdbstub listens on a socket pair of its own (no port, no socket
    file), connected before the guest runs: `machine.gdb` stops, steps and reads the guest
    (workbench/gdbstub.py; workbench/trace.py builds on it).

    With `record=PATH`, QEMU records the run (`-icount shift=auto,rr=record`): every
    instruction count, interrupt, clock reading and typed byte goes into that file, which is
    complete once QEMU has exited (close() or the guest's exit). `replay=PATH` runs the same
    image with the same settings through exactly the same instructions again, typed input and
    console output included; workbench/replay.py builds on it.
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
        console_limit: int = DEFAULT_LIMIT,
        name: str | None = None,
        shared_memory: bool = True,
        append: str | None = None,
        extra_args: tuple[str, ...] = (),
        gdb: bool = False,
        record: str | Path | None = None,
        replay: str | Path | None = None,
    ) -> None:
        if machine_type not in MACHINE_TYPES:
            raise BadMachineSetting(f"machine_type must be one of {', '.join(MACHINE_TYPES)}, not {machine_type!r}")
        if accel not in ACCELERATORS:
            raise BadMachineSetting(f"accel must be one of {', '.join(ACCELERATORS)}, not {accel!r}")
        if not isinstance(memory_mib, int) or isinstance(memory_mib, bool) or not 16 <= memory_mib <= MAX_MEMORY_MIB:
            raise BadMachineSetting(f"memory_mib must be a whole number of MiB from 16 to {MAX_MEMORY_MIB}, "
                                    f"not {memory_mib!r}")
        if record is not None and replay is not None:
            raise BadMachineSetting("a machine either records or replays, not both")
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
        self.outcome: Outcome | None = None
        self.ram: GuestRAM | None = None
        self._monitor_memory: MonitorMemory | None = None
        self._state = MachineState.CREATED
        self._state_lock = threading.Lock()
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
        self._maxphyaddr: int | None = None
        self._physical_map: tuple[PhysicalRegion, ...] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._serial_task: asyncio.Task[None] | None = None
        self._state_listeners: list[Callable[[MachineState], None]] = []
        self._closing = False
        self._input_counter_paddr = 0
        self._debugger: Debugger | None = None

    # Life cycle.

    def __enter__(self) -> Machine:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def state(self) -> MachineState:
        return self._state

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
            "-name", self.name or "workbench",
            "-machine", machine,
            "-accel", self.accel,
            "-cpu", self.cpu,
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
        if self._state is not MachineState.CREATED:
            raise MachineError(f"this machine was already started (it is {self._state.value})")
        if self.name is not None:
            earlier = _named_machines.get(self.name)
            if earlier is not None:
                earlier.close()
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
        if self.shared_memory:
            try:
                self.ram = GuestRAM(self.memory_mib << 20, name=f"{self.name or 'workbench'}-ram")
            except OSError as error:
                self.memory_note = f"guest RAM could not be shared ({error}); reading it through QMP instead"
        else:
            self.memory_note = "guest RAM is not shared (shared_memory=False); reading it through QMP"
        qmp_ours, qmp_theirs = socket.socketpair()
        self._serial = serial = SerialPipes()
        gdb_ours, gdb_theirs = socket.socketpair() if self.gdb_enabled else (None, None)
        self._sockets = [sock for sock in (qmp_ours, gdb_ours) if sock is not None]
        self._qemu_log_fd = os.memfd_create("qemu-log", os.MFD_CLOEXEC)
        ram_fd = self.ram.fd if self.ram is not None else None
        gdb_fd = gdb_theirs.fileno() if gdb_theirs is not None else None
        inherited = tuple(fd for fd in (ram_fd, qmp_theirs.fileno(), gdb_fd) if fd is not None)
        parent = os.getpid()

        def die_with_parent() -> None:
            # Runs in the child between fork and exec: tie QEMU's life to this thread's.
            _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != parent:
                os._exit(1)

        try:
            self._process = subprocess.Popen(
                self.command_line(ram_fd, qmp_theirs.fileno(), gdb_fd),
                pass_fds=inherited,
                stdin=serial.theirs[0],
                stdout=serial.theirs[1],
                stderr=self._qemu_log_fd,
                start_new_session=True,  # Ctrl-C in a terminal or Jupyter reaches us, not QEMU
                preexec_fn=die_with_parent,  # noqa: PLW1509 - only a prctl call, fork-safe
            )
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
        self._keep(loop.create_task(self._read_events(self._qmp), name="events"))
        self._keep(loop.create_task(self._watch_connection(self._qmp), name="connection"))
        self._maxphyaddr = await self._ask_maxphyaddr()  # before the guest runs: a fault report needs it
        if paused:
            return
        self._set_state(MachineState.RUNNING)
        try:
            await self._qmp.execute("cont")
        except (QMPError, EOFError, OSError) as error:
            # The guest may run and exit before QEMU answers; _after_exit records how it ended.
            process = self._process
            try:
                await asyncio.to_thread(process.wait, QUIT_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                raise error from None

    def close(self, timeout: float = 5.0) -> None:
        """Stop QEMU (politely, then by force) and release everything. Safe to call twice."""
        if self._state is MachineState.CLOSED:
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
        if self.ram is not None:
            self.ram.close()
        if self._monitor_memory is not None:
            self._monitor_memory.close()
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
        with self._state_lock:
            if self._state is MachineState.CLOSED:
                return
            self._state = state
        self.console.wake()
        self._tell_state_listeners(state)

    def add_state_listener(self, listener: Callable[[MachineState], None]) -> None:
        """Call `listener(state)` after every change of state, on whichever thread made it
        (often the event-loop thread: the listener must not call the machine back there)."""
        self._state_listeners.append(listener)

    def remove_state_listener(self, listener: Callable[[MachineState], None]) -> None:
        with contextlib.suppress(ValueError):
            self._state_listeners.remove(listener)

    def _tell_state_listeners(self, state: MachineState) -> None:
        for listener in list(self._state_listeners):
            try:
                listener(state)
            except Exception:  # a broken listener must not break the machine's own bookkeeping
                logging.getLogger(__name__).exception("a machine state listener failed")

    async def _read_serial(self, serial: SerialPipes) -> None:
        while True:
            data = await serial.read()
            if not data:
                return
            text = self.console.feed(data)
            self._scan_for_fault(text)

    def _scan_for_fault(self, text: str) -> None:
        """Look at each completed line; a fault report pauses the machine at once. (Not in a
        replay: it only shows what was recorded, and workbench/replay.py marks the faults.)"""
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
            registers = await self._read_registers()
        except (QMPError, OSError):
            registers = None
        fault = self._pending_fault
        walk = None
        if fault.cr2 is not None and registers is not None and self.ram is not None and self._maxphyaddr:
            # The CPU's own view of the faulting vaddr; only from shared RAM, which needs no QMP here.
            with contextlib.suppress(paging.PagingError):
                walk = paging.walk(self.ram, registers, fault.cr2, maxphyaddr=self._maxphyaddr)
        self.outcome = Outcome(
            MachineState.FAULTED, fault=fault, registers=registers,
            explanation=fault.explain(self.image, walk) + " The machine is paused so you can inspect it.",
        )
        self._set_state(MachineState.FAULTED)

    async def _read_events(self, qmp: QMPClient) -> None:
        async for event in qmp.events:
            raw_data = event.get("data")
            name, data = str(event["event"]), dict(raw_data) if isinstance(raw_data, dict) else {}
            self.events.append(QmpEvent(name, data, time.monotonic() - self._started_at))
            if name == "SHUTDOWN" and data.get("reason") == "guest-reset":
                try:
                    registers = await self._read_registers()
                except (QMPError, OSError):
                    registers = None
                self.outcome = Outcome(
                    MachineState.TRIPLE_FAULT, registers=registers,
                    explanation=(
                        "The guest triple-faulted: the CPU met a fault while handling a fault "
                        "(often a broken IDT, stack or page table), gave up and reset. "
                        + (f"It was at rip={self.image.format_vaddr(registers.rip)}. "
                           if registers else "")
                        + "The machine is paused in that state."
                    ),
                )
                self._set_state(MachineState.TRIPLE_FAULT)
            elif name == "SHUTDOWN" and data.get("reason") == "guest-shutdown":
                # From QEMU 9.1 on, isa-debug-exit is a shutdown request carrying the exit code,
                # which shutdown=pause turns into a pause (7.2 exits at once, with no event).
                # `quit` lets QEMU exit as the guest asked, with the code it recorded.
                with contextlib.suppress(QMPError, OSError, EOFError):
                    await qmp.execute("quit")
            elif name == "STOP" and self._state is MachineState.RUNNING:
                self._set_state(MachineState.PAUSED)
            elif name == "RESUME" and self._state is MachineState.PAUSED:
                self._set_state(MachineState.RUNNING)

    async def _watch_connection(self, qmp: QMPClient) -> None:
        """A QMP connection that breaks while QEMU lives leaves a machine nobody can pause,
        inspect or quit: record why, and stop QEMU rather than let it run on unseen."""
        while qmp.runstate is Runstate.RUNNING:
            await qmp.runstate_changed()
        process = self._process
        assert process is not None
        try:  # QEMU closes the socket as it exits: that is an exit, recorded by _after_exit
            await asyncio.to_thread(process.wait, QUIT_GRACE_SECONDS)
            return
        except subprocess.TimeoutExpired:
            pass
        if self._closing:
            return
        cause = "QEMU hung up"
        try:
            await qmp.disconnect()
        except ValueError:  # asyncio's StreamReader: a line longer than its limit
            cause = f"QEMU sent a reply larger than the {self.qmp_reply_limit >> 20} MiB the workbench accepts"
        except Exception as error:  # whatever broke the connection is only reported here
            cause = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        self.outcome = Outcome(MachineState.DISCONNECTED, explanation=(
            f"The workbench lost its connection to QEMU's monitor: {cause}. Without it the machine "
            "cannot be paused, inspected or stopped, so QEMU has been stopped; boot a new machine."))
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
        if self._state is not MachineState.DISCONNECTED:  # that outcome says why we killed it
            if self.outcome is None or self.outcome.state is not MachineState.EXITED:
                self.outcome = self._exit_outcome(code)
            self._set_state(MachineState.EXITED)
        self.console.close()

    def _exit_outcome(self, code: int) -> Outcome:
        if code > 0 and code & 1 and self.console.text:
            status = code >> 1  # isa-debug-exit: QEMU exits with (value << 1) | 1
            return Outcome(MachineState.EXITED, exit_status=status, qemu_returncode=code,
                           explanation=f"The guest exited with status {status}.")
        if code < 0:
            how = f"was killed by signal {signal.Signals(-code).name}"
        else:
            how = f"exited with status {code}"
        before = "" if self.console.text else " before the guest printed anything"
        return Outcome(MachineState.EXITED, qemu_returncode=code,
                       explanation=f"QEMU {how}{before}.")

    async def _read_registers(self) -> Registers:
        assert self._qmp is not None
        text = await self._qmp.execute("human-monitor-command", {"command-line": "info registers"})
        return parse_info_registers(str(text))

    # Talking to QEMU.

    def _require_qemu(self) -> LoopThread:
        if self._state is MachineState.CREATED:
            raise MachineError("the machine has not been started; call start() first")
        if self._state is MachineState.DISCONNECTED:
            assert self.outcome is not None
            raise ConnectionLost(self.outcome.explanation, console_tail=self.console.tail())
        if self._state.terminal or self._loop is None:
            raise MachineClosed(f"the machine is {self._state.value}; boot a new one", console_tail=self.console.tail())
        return self._loop

    def qmp(self, command: str, timeout: float = 5.0, **arguments: Any) -> Any:
        """Execute one QMP command and return its result."""
        return self._execute(command, arguments, timeout, f"the QMP command {command!r}")

    def _execute(self, command: str, arguments: dict[str, Any], timeout: float, what: str) -> Any:
        loop = self._require_qemu()
        assert self._qmp is not None
        try:
            return loop.run(self._qmp.execute(command, arguments or None), timeout)
        except TimeoutError as error:
            raise MachineError(f"QEMU did not answer {what} within {timeout:g} s") from error
        except (QMPError, OSError, EOFError) as error:
            if self._qmp.runstate is not Runstate.RUNNING:
                self._await_terminal(QUIT_GRACE_SECONDS + 1.0)
                if self._state is MachineState.DISCONNECTED:
                    assert self.outcome is not None
                    raise ConnectionLost(f"{what} failed. {self.outcome.explanation}",
                                         console_tail=self.console.tail()) from error
                if self._state.terminal:
                    raise MachineClosed(f"{what} failed: the machine is {self._state.value}"
                                        + (f". {self.outcome.explanation}" if self.outcome else ""),
                                        console_tail=self.console.tail()) from error
            raise MachineError(f"{what} failed: {error}") from error

    def _await_terminal(self, timeout: float) -> None:
        """A broken connection is followed by QEMU's exit or our stopping it; wait for either."""
        deadline = time.monotonic() + timeout
        while not self._state.terminal and time.monotonic() < deadline:
            time.sleep(0.01)

    def hmp(self, command_line: str, timeout: float = 5.0) -> str:
        """Run a human-monitor command (`info registers`, `info mem`, ...) and return its text."""
        return str(self._execute("human-monitor-command", {"command-line": command_line}, timeout,
                                 f"the monitor command {command_line!r}"))

    def registers(self, timeout: float = 5.0) -> Registers:
        """The CPU registers now. Pause first for a consistent snapshot of a running guest."""
        return parse_info_registers(self.hmp("info registers", timeout))

    def maxphyaddr(self, timeout: float = 5.0) -> int:
        """The CPU's physical-address width (CPUID 0x80000008 EAX[7:0]): 40 for QEMU's qemu64.

        Entry bits 51 down to this are reserved: the CPU faults on them, so every walk needs it.
        Asked of QEMU once (its CPU object's `phys-bits` property) and kept.
        """
        if self._maxphyaddr is None:
            self._maxphyaddr = self._require_qemu().run(self._ask_maxphyaddr(), timeout)
        return self._maxphyaddr

    async def _ask_maxphyaddr(self) -> int:
        assert self._qmp is not None
        cpus = await self._qmp.execute("query-cpus-fast")
        bits = await self._qmp.execute("qom-get", {"path": cpus[0]["qom-path"], "property": "phys-bits"})  # type: ignore[index]
        if not isinstance(bits, int) or not 36 <= bits <= 52:
            raise MachineError(f"QEMU reports a physical-address width of {bits!r} bits; expected 36 to 52")
        return bits

    def physical_map(self, timeout: float = 5.0) -> tuple[PhysicalRegion, ...]:
        """The guest's physical address space from QEMU (`info mtree -f`): RAM, ROM and devices."""
        if self._physical_map is None:
            self._physical_map = parse_flat_view(self.hmp("info mtree -f", timeout))
        return self._physical_map

    def read_physical_through_qemu(self, paddr: int, length: int, timeout: float = 30.0) -> bytes:
        """Bytes at `paddr` as the guest sees them, copied by QEMU (pmemsave): ROM included."""
        scratch = os.memfd_create("pmemsave", os.MFD_CLOEXEC)
        try:
            self.qmp("pmemsave", timeout, val=paddr, size=length, filename=f"/proc/{os.getpid()}/fd/{scratch}")
            return os.pread(scratch, length, 0)
        finally:
            os.close(scratch)

    def pause(self, timeout: float = 5.0) -> None:
        self.qmp("stop", timeout)
        self._set_state_if(MachineState.RUNNING, MachineState.PAUSED)

    def resume(self, timeout: float = 5.0) -> None:
        if self._state in (MachineState.FAULTED, MachineState.TRIPLE_FAULT):
            raise MachineError(f"the guest is {self._state.value}; it cannot go on. Reset it or boot a new machine.")
        self.qmp("cont", timeout)
        self._set_state_if(MachineState.PAUSED, MachineState.RUNNING)

    def drain_console(self, timeout: float = 2.0) -> None:
        """Take in everything the guest has printed so far, now: a paused guest's last output
        may still sit in the pipe, not yet read by the event loop."""
        if self._serial is not None and not self._state.terminal:
            self._require_qemu().run(self._drain(self._serial), timeout)

    async def _drain(self, serial: SerialPipes) -> None:
        data = serial.read_available()  # on the loop thread, in order with _read_serial
        if data:
            self._scan_for_fault(self.console.feed(data))

    def snapshot_loaded(self) -> None:
        """The guest was put back to an earlier state of itself (QEMU's loadvm, in a replay): it
        is paused, and no longer faulted or ended the way it may have been."""
        self._pending_fault = None
        self._partial_line = ""
        self.outcome = None
        self._set_state(MachineState.PAUSED)

    def reset(self, timeout: float = 5.0) -> None:
        """Reboot the guest from its image, keeping QEMU and the console transcript."""
        self.console.skip_to_end()  # before the reset: the new boot log arrives within milliseconds
        self._pending_fault = None
        self.outcome = None
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
        with self._state_lock:
            if self._state is not expected:
                return
            self._state = new
        self.console.wake()
        self._tell_state_listeners(new)

    # Talking to the guest.

    def send(self, text: str) -> None:
        """Type `text` into the guest's serial console (a line needs its own newline)."""
        if not isinstance(text, str):
            raise InvalidInput(f"send() types text (a str), not {type(text).__name__}")
        if len(text) > MAX_SEND_LENGTH:
            raise InvalidInput(f"send() types at most {MAX_SEND_LENGTH} characters at a time (the guest reads "
                               f"them one by one), not {len(text)}")
        try:
            data = text.encode()
        except UnicodeEncodeError as error:
            raise InvalidInput(f"{_clip(text)} cannot be typed: {error.object[error.start:error.end]!r} "
                               "is not a character (a lone surrogate)") from error
        if self.replay_path is not None:
            raise InvalidInput("a replay types nothing: its input comes from the recording")
        loop = self._require_qemu()
        try:
            loop.run(self._send(data), SEND_TIMEOUT)
        except TimeoutError as error:
            raise MachineError(f"the guest did not take typed input within {SEND_TIMEOUT:g} s; it reads its "
                               "console only while it waits for a request", console_tail=self.console.tail()) from error
        except OSError as error:
            raise MachineClosed(f"typing into the guest failed: the machine is {self._state.value} ({error})",
                                console_tail=self.console.tail()) from error

    async def _send(self, data: bytes) -> None:
        assert self._serial is not None
        if self.record_path is None:
            await self._serial.write(data)
            return
        for start in range(0, len(data), RECORDED_INPUT_PIECE):
            piece = data[start:start + RECORDED_INPUT_PIECE]
            taken = self._input_taken()
            await self._serial.write(piece)
            if taken is None:  # a guest without the counter: only a pause can help
                await asyncio.sleep(0.05)
                continue
            while (self._input_taken_now() - taken) % (1 << 32) < len(piece):
                await asyncio.sleep(0.0005)

    def _input_taken(self) -> int | None:
        """How many typed bytes the guest has taken from its UART (a u32 that wraps), or None
        when it cannot be read: a guest without the counter, or RAM that is not shared."""
        symbol = self.image.symbols.get(INPUT_COUNTER)
        paddr = self.image.paddr_of(symbol.vaddr) if symbol is not None else None
        if paddr is None or self.ram is None:
            return None
        self._input_counter_paddr = paddr
        return self._input_taken_now()

    def _input_taken_now(self) -> int:
        assert self.ram is not None
        return int.from_bytes(self.ram.read(self._input_counter_paddr, 4), "little")

    def send_line(self, line: str) -> None:
        self.send(line + "\n")

    def wait_for(self, pattern: str | re.Pattern[str], timeout: float = 10.0) -> re.Match[str]:
        """Wait until the guest prints `pattern` (text or regex) after the last match.

        A guest that stops first raises GuestStopped with its outcome (a fault explained);
        one that does not print it in time raises GuestTimeout, and QEMU is stopped.
        """
        awaited = f"{pattern!r}" if isinstance(pattern, str) else f"/{pattern.pattern}/"
        match = self._wait_for_match(pattern, awaited, timeout)
        if match is not None:
            return match
        raise self._timeout(f"The guest did not print {awaited} within {timeout:g} s.")

    def _wait_for_match(self, pattern: str | re.Pattern[str], awaited: str, timeout: float) -> re.Match[str] | None:
        """The match, or None when `timeout` passed with the guest still running."""
        if self._state is MachineState.CREATED:
            raise MachineError("the machine has not been started; call start() first")
        deadline = time.monotonic() + timeout
        match = self.console.wait_for(pattern, deadline, self._stopped)
        if match is not None:
            return match
        if self._state is MachineState.CLOSED:
            raise MachineClosed("the machine was closed while waiting for " + awaited)
        if self._state is MachineState.DISCONNECTED:
            assert self.outcome is not None
            raise ConnectionLost(f"{self.outcome.explanation} (This happened while waiting for {awaited}.)",
                                 console_tail=self.console.tail())
        if self._state.stopped_by_guest:
            self._wait_for_outcome()
            assert self.outcome is not None
            raise GuestStopped(self.outcome, f"the guest to print {awaited}",
                               console_tail=self.console.tail(), qemu_log=self._qemu_log_if_failed())
        return None

    def _stopped(self) -> bool:
        return self._state.stopped_by_guest or self._state.terminal

    def request(self, line: str, timeout: float = 10.0) -> Reply:
        """Send one request of the application's protocol and return its parsed reply.

        `line` is one line of printable ASCII, at most MAX_REQUEST_LENGTH characters, without
        its newline; anything else raises BadRequest before a byte is sent.
        """
        self.send_request(line)
        return self.wait_for_reply(line, timeout)

    def send_request(self, line: str) -> None:
        """Send a request without waiting: `wait_for_reply(line)` collects its reply later."""
        check_request(line)
        self.console.skip_to_end()
        self.send_line(line)

    def wait_for_reply(self, line: str, timeout: float = 10.0) -> Reply:
        """The reply to the request `line` sent last with `send_request`.

        If the guest prompts for the next request without having replied, NoReply is raised
        at once and the machine keeps running. A guest still busy with the request after
        `timeout` seconds is stopped, as in `wait_for` (GuestTimeout).
        """
        command = check_request(line).split(maxsplit=1)[0]
        # A whole reply line, after a newline or the prompt, never a line still arriving; or
        # else a new prompt at the very end: the guest is done with the request and silent.
        reply = re.compile(rf"(?:^|(?<=> ))(ok|error) {re.escape(command)}\b([^\n]*)\n|\n> \Z", re.MULTILINE)
        awaited = f"a reply to {line!r}"
        match = self._wait_for_match(reply, awaited, timeout)
        if match is None:
            raise self._timeout(f"The guest did not print {awaited} within {timeout:g} s; "
                                "nor did it prompt for another request.")
        if match[1] is None:
            raise NoReply(f"The guest printed no reply line ('ok {command} ...' or 'error {command} ...') "
                          f"to {line!r} and is waiting for the next request. The machine is still running.",
                          console_tail=self.console.tail())
        ok, rest = match[1] == "ok", match[2].strip()
        fields = dict(pair.split("=", 1) for pair in rest.split() if "=" in pair) if ok else {"message": rest}
        return Reply(ok, command, fields, match[0].strip())

    def wait(self, timeout: float = 10.0) -> Outcome:
        """Wait until the guest stops by itself (exit, fault, triple fault); return how."""
        deadline = time.monotonic() + timeout
        self.console.wait_for(re.compile(r"(?!)"), deadline, self._stopped)  # (?!) never matches
        if self._state.stopped_by_guest:
            self._wait_for_outcome()
            assert self.outcome is not None
            return self.outcome
        if self._state is MachineState.CLOSED:
            raise MachineClosed("the machine was closed while waiting for the guest to stop")
        if self._state is MachineState.DISCONNECTED:
            assert self.outcome is not None
            raise ConnectionLost(self.outcome.explanation, console_tail=self.console.tail())
        raise self._timeout(f"The guest was still running after {timeout:g} s.")

    def _wait_for_outcome(self, timeout: float = 5.0) -> None:
        """The state flips before the outcome's registers arrive; wait for both."""
        deadline = time.monotonic() + timeout
        while self.outcome is None and time.monotonic() < deadline:
            time.sleep(0.005)

    def _timeout(self, message: str) -> GuestTimeout:
        """Say where the guest was, then stop QEMU: a hung guest must not outlive the wait."""
        registers: Registers | None = None
        try:
            self.qmp("stop", 2.0)
            registers = self.registers(2.0)
            message += f" It was executing rip={self.image.format_vaddr(registers.rip)}."
        except WorkbenchError:
            pass
        tail, log = self.console.tail(), self._qemu_log_if_failed()
        self.close()
        return GuestTimeout(message + " QEMU has been stopped.", registers=registers, console_tail=tail, qemu_log=log)

    @property
    def debugger(self) -> Debugger:
        """A source-level debugger on the gdbstub (Machine(gdb=True)): workbench/debugger.py."""
        if self._debugger is None:
            from .debugger import Debugger  # noqa: PLC0415 - debugger.py builds on this module

            self._debugger = Debugger(self)
        return self._debugger

    @property
    def gdb(self) -> GdbClient:
        """QEMU's gdbstub, connected: breakpoints, single steps, registers (Machine(gdb=True))."""
        self._require_qemu()
        if self._gdb is None:
            raise MachineError("this machine has no gdbstub connection; create it with Machine(..., gdb=True)")
        return self._gdb

    # Guest memory.

    @property
    def memory(self) -> GuestRAM | MonitorMemory:
        """Guest physical memory: the shared memfd when there is one, else QMP pmemsave."""
        self._require_qemu()
        if self.ram is not None:
            if self.ram.map_attached is False:  # once: where ROM or devices cover RAM paddrs
                self.ram.attach_map(self.physical_map(), self.read_physical_through_qemu)
            return self.ram
        if self._monitor_memory is None:
            def pmemsave(paddr: int, length: int, path: str) -> None:
                self.qmp("pmemsave", 30.0, val=paddr, size=length, filename=path)
            self._monitor_memory = MonitorMemory(self.memory_mib << 20, pmemsave)
        return self._monitor_memory

    def snapshot(self, label: str = "", timeout: float = 5.0) -> Snapshot:
        """Registers and page tables at one instant; a running guest is paused meanwhile."""
        was_running = self._state is MachineState.RUNNING
        if was_running:
            self.pause(timeout)
        try:
            return Snapshot.take(self.memory, self.registers(timeout), maxphyaddr=self.maxphyaddr(timeout),
                                 seconds=time.monotonic() - self._started_at, label=label)
        finally:
            if was_running:
                self.resume(timeout)

    def _paddr_of(self, vaddr: int, length: int) -> list[tuple[int, int]]:
        """(paddr, length) pieces of the virtual range, translated by the guest's own tables."""
        registers = self.registers()
        memory = self.memory
        pieces = []
        while length > 0:
            take = min(length, PAGE_SIZE - vaddr % PAGE_SIZE)
            pieces.append((paging.translate(memory, registers, vaddr, maxphyaddr=self.maxphyaddr()), take))
            vaddr, length = vaddr + take, length - take
        return pieces

    def read_virtual(self, vaddr: int, length: int) -> bytes:
        """Bytes at a guest vaddr, through the guest's current page tables (works while it runs).

        Raises paging.PageFaultError, with the whole walk, when part of the range is unmapped.
        """
        memory = self.memory
        return b"".join(memory.read(paddr, size) for paddr, size in self._paddr_of(vaddr, length))

    def write_virtual(self, vaddr: int, data: bytes) -> None:
        """Store bytes at a guest vaddr; the guest sees them at once."""
        memory = self.memory
        offset = 0
        for paddr, size in self._paddr_of(vaddr, len(data)):
            memory.write(paddr, data[offset : offset + size])
            offset += size

    def read_symbol(self, name: str) -> int:
        """The value of a C variable of the unikernel (1, 2, 4 or 8 bytes, little-endian)."""
        symbol = self._variable(name)
        return int.from_bytes(self.read_virtual(symbol.vaddr, symbol.size), "little")

    def write_symbol(self, name: str, value: int) -> None:
        """Change a C variable of the unikernel, also while it runs."""
        symbol = self._variable(name)
        if not 0 <= value < 1 << (8 * symbol.size):
            raise MachineError(f"{value} does not fit in {name}, which is {symbol.size} bytes")
        self.write_virtual(symbol.vaddr, value.to_bytes(symbol.size, "little"))

    def _variable(self, name: str) -> Symbol:
        symbol = self.image.symbol(name)
        if symbol.kind != "object" or symbol.size not in (1, 2, 4, 8):
            raise MachineError(f"{name} is a {symbol.kind} of {symbol.size} bytes, not an integer variable; "
                               "use read_virtual() for other data")
        return symbol

    # Evidence.

    def qemu_log(self) -> str:
        """What QEMU printed on stdout and stderr (usually nothing)."""
        if self._qemu_log_fd < 0:
            return ""
        size = os.fstat(self._qemu_log_fd).st_size
        return os.pread(self._qemu_log_fd, min(size, 1 << 16), max(0, size - (1 << 16))).decode(errors="replace")

    def _qemu_log_if_failed(self) -> str:
        code = self._process.returncode if self._process else None
        return self.qemu_log() if code not in (None, 0) and not (code > 0 and code & 1 and self.console.text) else ""

    def __repr__(self) -> str:
        return f"<Machine {self.name or self.image.path.name} {self.machine_type} {self._state.value}>"
