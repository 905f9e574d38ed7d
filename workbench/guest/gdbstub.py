"""A minimal client for QEMU's gdbstub: the GDB remote serial protocol over one socket.

Enough to stop the guest, set breakpoints and watchpoints, single-step it one instruction at a
time and read its registers (QEMU's x86-64 register set includes CR0-CR4, EFER and the GS
bases, which its monitor's `info registers` also prints) and its memory through its own page
tables. workbench/debug/debugger.py builds a source-level debugger on it.

Machine(gdb=True) creates the socket pair and passes one end to QEMU
(`-chardev socket,id=gdb,fd=N -gdb chardev:gdb`); this class speaks over the other end. It is
synchronous and single-threaded: every call blocks for at most its timeout.

What QEMU does that matters here (QEMU 7.2, gdbstub/gdbstub.c):

- A byte arriving while the guest runs stops it and is otherwise dropped; `interrupt()` sends
  the protocol's Ctrl-C for exactly that, and waits for the stop reply.
- Every stop of the guest, whatever caused it (a QMP `stop`, the guest's own fault report),
  is announced with a stop reply, asked for or not. Commands that wait for a stop first discard
  the replies that arrived unasked.
- Single steps run with interrupts and timers masked (QEMU's default `sstep` flags), so a step
  is one guest instruction and a path steps the same way every time.
- Watchpoints (`Z2` write, `Z3` read, `Z4` access) are QEMU's own under TCG: any number, any
  length, on guest vaddrs. A hit stops the guest after the access, before the next
  instruction, with `watch:`, `rwatch:` or `awatch:` and the vaddr in the stop reply.
- Each virtual CPU is a thread, its id its CPU index + 1 (no multiprocess extension is asked
  for): `qfThreadInfo` lists them, every stop reply names the CPU that stopped (`thread:`) and
  makes it the one `g` and `m` read; `Hg` picks another for them. `s` steps one CPU but lets
  the others run meanwhile; `vCont;s:TID` steps that CPU alone, the others stay stopped.
- The register layout is the target description's, in 32-bit code too: QEMU 7.2's x86-64 stub
  sends every register at its 64-bit size in every mode (the upper halves zero). Should a QEMU
  send fewer bytes than the description says, `registers()` reads them one by one with `p`.

Protocol reference: the GDB manual, appendix "GDB Remote Serial Protocol" (packets, `g`, `m`,
`s`, `c`, `Z0`, `qXfer:features:read`, `QStartNoAckMode`).
"""

from __future__ import annotations

import re
import socket
import time
from dataclasses import dataclass

from workbench.errors import WorkbenchError

INTERRUPT = b"\x03"
FEATURE_CHUNK = 0xFFB  # bytes of target description asked for per qXfer packet
SIGTRAP = 5  # the signal of a stop at a breakpoint, a watchpoint or after a step
# Watchpoint kinds and their packet types (the GDB manual: "insert watchpoint").
WATCH_KINDS = {"write": 2, "read": 3, "access": 4}
_STOP_WATCH = {"watch": "write", "rwatch": "read", "awatch": "access"}


class GdbError(WorkbenchError):
    """The gdbstub refused a command, or the connection broke."""


class GdbTimeout(GdbError):
    """The gdbstub did not answer in time (for a stop: the guest did not stop)."""


@dataclass(frozen=True)
class Register:
    """One register of the target description: its place in the `g` packet's bytes."""

    name: str
    offset: int  # in bytes, within the binary form of the `g` reply
    size: int  # in bytes


@dataclass(frozen=True)
class StopReply:
    """Why the guest stopped: `T05...` is a trap (a breakpoint or a finished step)."""

    packet: str

    @property
    def signal(self) -> int:
        return int(self.packet[1:3], 16) if self.packet[:1] in ("S", "T") else -1

    @property
    def exited(self) -> bool:
        return self.packet[:1] in ("W", "X")

    @property
    def fields(self) -> dict[str, str]:
        """The `name:value;` pairs of a `T` reply (`thread`, `watch`, ...)."""
        if self.packet[:1] != "T":
            return {}
        pairs = (field.split(":", 1) for field in self.packet[3:].split(";") if ":" in field)
        return {name: value for name, value in pairs}

    @property
    def thread(self) -> int | None:
        """The thread (CPU index + 1) the stop is about, when the reply names one."""
        value = self.fields.get("thread")
        return int(value.split(".")[-1], 16) if value else None

    @property
    def watch(self) -> tuple[str, int] | None:
        """(kind, vaddr) when a watchpoint stopped the guest: kind is write, read or access."""
        for name, kind in _STOP_WATCH.items():
            if name in self.fields:
                return kind, int(self.fields[name], 16)
        return None


def checksum(data: bytes) -> bytes:
    return f"{sum(data) & 0xFF:02x}".encode()


def frame(data: str) -> bytes:
    """`$data#cs`: one packet. Commands here never contain the characters that need escaping."""
    raw = data.encode()
    if any(byte in raw for byte in b"$#}*"):
        raise ValueError(f"the packet {data!r} would need escaping, which this client does not do")
    return b"$" + raw + b"#" + checksum(raw)


def unescape(data: bytes) -> bytes:
    """Undo run-length encoding (`X*n`) and `}` escapes in a packet's data."""
    if b"}" not in data and b"*" not in data:  # most packets (hex memory and registers): as they are
        return bytes(data)
    out = bytearray()
    index = 0
    while index < len(data):
        byte = data[index]
        if byte == ord("}") and index + 1 < len(data):
            out.append(data[index + 1] ^ 0x20)
            index += 2
        elif byte == ord("*") and out and index + 1 < len(data):
            out.extend(out[-1:] * (data[index + 1] - 29))
            index += 2
        else:
            out.append(byte)
            index += 1
    return bytes(out)


def parse_target_description(documents: dict[str, str], root: str = "target.xml") -> tuple[Register, ...]:
    """Registers in `g` order from the target description and the files it includes.

    Read with a pattern, not an XML parser: QEMU's files use the `xi:` prefix without declaring
    its namespace, which a conforming parser rejects.
    """
    found: list[tuple[str, int]] = []

    def visit(name: str) -> None:
        text = re.sub(r"<!--.*?-->", "", documents[name], flags=re.DOTALL)  # QEMU comments some out
        for tag, attributes in re.findall(r"<(xi:include|reg)\b([^>]*)>", text):
            values = dict(re.findall(r'(\w+)="([^"]*)"', attributes))
            if tag == "xi:include":
                visit(values["href"])
            else:
                found.append((values["name"], int(values["bitsize"]) // 8))

    visit(root)
    registers, offset = [], 0
    for name, size in found:
        registers.append(Register(name, offset, size))
        offset += size
    return tuple(registers)


class GdbClient:
    """One connection to QEMU's gdbstub. Call `connect()` while the guest is stopped."""

    def __init__(self, sock: socket.socket, timeout: float = 5.0) -> None:
        self._sock = sock
        self.timeout = timeout
        self._buffer = bytearray()
        self._acks = True  # until QStartNoAckMode is accepted
        self.registers_layout: tuple[Register, ...] = ()
        self._by_name: dict[str, Register] = {}
        self.breakpoints: set[int] = set()
        self.watchpoints: set[tuple[str, int, int]] = set()  # (kind, vaddr, length)
        self.stop_thread: int | None = None  # the thread the last stop reply named
        self.step_thread: int | None = None  # when set, step() steps this thread alone (vCont)

    # Transport: packets with checksums, acknowledgements until they are switched off.

    def _send(self, data: str) -> None:
        try:
            self._sock.sendall(frame(data))
        except OSError as error:
            raise GdbError(f"could not send {data!r} to QEMU's gdbstub: {error}") from error

    def _fill(self, deadline: float, waiting_for: str) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise GdbTimeout(f"QEMU's gdbstub did not answer {waiting_for} in time")
        self._sock.settimeout(remaining)
        try:
            data = self._sock.recv(65536)
        except TimeoutError:
            raise GdbTimeout(f"QEMU's gdbstub did not answer {waiting_for} in time") from None
        except OSError as error:
            raise GdbError(f"the connection to QEMU's gdbstub broke: {error}") from error
        if not data:
            raise GdbError("QEMU closed the gdbstub connection (has it exited?)")
        self._buffer += data

    def _take_packet(self) -> str | None:
        """The next complete packet in the buffer, or None. Skips acknowledgements."""
        start = self._buffer.find(b"$")
        if start < 0:  # only acknowledgements ("+") so far
            self._buffer.clear()
            return None
        end = self._buffer.find(b"#", start)
        if end < 0 or len(self._buffer) < end + 3:
            return None
        data = bytes(self._buffer[start + 1 : end])
        del self._buffer[: end + 3]
        if self._acks:
            try:
                self._sock.sendall(b"+")
            except OSError as error:  # QEMU exited (the guest's exit, or a quit) after replying
                raise GdbError(f"QEMU's gdbstub is gone: {error}") from error
        return unescape(data).decode("latin-1")

    def _receive(self, deadline: float, waiting_for: str) -> str:
        while True:
            packet = self._take_packet()
            if packet is not None:
                return packet
            self._fill(deadline, waiting_for)

    def _discard_pending(self) -> None:
        """Drop packets that arrived unasked: stop replies for stops someone else caused."""
        self._sock.setblocking(False)
        try:
            while True:
                data = self._sock.recv(65536)
                if not data:
                    break
                self._buffer += data
        except (BlockingIOError, InterruptedError):
            pass
        finally:
            self._sock.setblocking(True)
        while self._take_packet() is not None:
            pass

    def command(self, data: str, timeout: float | None = None) -> str:
        """Send one command and return its reply, skipping stop replies that were not asked for."""
        deadline = time.monotonic() + (timeout or self.timeout)
        self._send(data)
        while True:
            reply = self._receive(deadline, repr(data))
            if not re.fullmatch(r"[TS][0-9a-fA-F]{2}.*", reply):
                return reply

    def _checked(self, data: str, timeout: float | None = None) -> str:
        reply = self.command(data, timeout)
        if re.fullmatch(r"E[0-9a-fA-F]{2}", reply):
            raise GdbError(f"QEMU's gdbstub refused {data!r}: error {reply[1:]}")
        return reply

    # Session.

    def connect(self, timeout: float | None = None) -> None:
        """Negotiate (no acknowledgements from now on) and read the register layout."""
        self.command("qSupported:xmlRegisters=i386", timeout)
        if self.command("QStartNoAckMode", timeout) == "OK":
            self._acks = False
        documents: dict[str, str] = {}
        pending = ["target.xml"]
        while pending:
            name = pending.pop()
            documents[name] = self._read_feature(name, timeout)
            pending += [href for href in re.findall(r'href="([^"]+)"', documents[name]) if href not in documents]
        self.registers_layout = parse_target_description(documents)
        self._by_name = {register.name: register for register in self.registers_layout}

    def _read_feature(self, name: str, timeout: float | None) -> str:
        text, offset = "", 0
        while True:
            reply = self._checked(f"qXfer:features:read:{name}:{offset:x},{FEATURE_CHUNK:x}", timeout)
            if not reply or reply[0] not in "ml":
                raise GdbError(f"QEMU's gdbstub sent no target description for {name}: {reply!r}")
            text += reply[1:]
            offset += len(reply) - 1
            if reply[0] == "l":
                return text

    def close(self) -> None:
        self._sock.close()

    # Execution.

    def interrupt(self, timeout: float | None = None) -> StopReply:
        """Stop a running guest (the protocol's Ctrl-C) and return the stop reply."""
        self._discard_pending()
        try:
            self._sock.sendall(INTERRUPT)
        except OSError as error:
            raise GdbError(f"could not interrupt the guest through the gdbstub: {error}") from error
        return self.wait_for_stop(timeout)

    def resume(self) -> None:
        """Let the guest run; its next stop is reported to `wait_for_stop`."""
        self._discard_pending()
        self._send("c")

    def resume_threads(self, threads: tuple[int, ...]) -> None:
        """Let these threads (CPU index + 1) run; the others stay stopped (`vCont;c:TID;...`)."""
        self._discard_pending()
        self._send("vCont;" + ";".join(f"c:{thread:x}" for thread in threads))

    def wait_for_stop(self, timeout: float | None = None) -> StopReply:
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            reply = self._receive(deadline, "with a stop (the guest did not stop)")
            if re.fullmatch(r"[TSWX][0-9a-fA-F]{2}.*", reply):
                stop = StopReply(reply)
                self.stop_thread = stop.thread or self.stop_thread
                return stop

    def step(self, timeout: float | None = None) -> StopReply:
        """Execute exactly one instruction of the stopped guest."""
        self._discard_pending()
        self._send("s" if self.step_thread is None else f"vCont;s:{self.step_thread:x}")
        stop = self.wait_for_stop(timeout)
        if stop.exited:
            raise GdbError(f"the guest ended while single-stepping ({stop.packet})")
        return stop

    def set_breakpoint(self, vaddr: int) -> None:
        """Stop when the guest is about to execute the instruction at `vaddr`."""
        if self._checked(f"Z0,{vaddr:x},1") != "OK":
            raise GdbError(f"QEMU's gdbstub cannot set a breakpoint at {vaddr:#x}")
        self.breakpoints.add(vaddr)

    def remove_breakpoint(self, vaddr: int) -> None:
        self._checked(f"z0,{vaddr:x},1")
        self.breakpoints.discard(vaddr)

    def set_watchpoint(self, vaddr: int, length: int, kind: str = "write") -> None:
        """Stop after the guest writes (reads, accesses) any of `length` bytes at `vaddr`."""
        if kind not in WATCH_KINDS:
            raise GdbError(f"a watchpoint watches {', '.join(WATCH_KINDS)}, not {kind!r}")
        if self._checked(f"Z{WATCH_KINDS[kind]},{vaddr:x},{length:x}") != "OK":
            raise GdbError(f"QEMU's gdbstub cannot watch {length} bytes at {vaddr:#x} for {kind}s")
        self.watchpoints.add((kind, vaddr, length))

    def remove_watchpoint(self, vaddr: int, length: int, kind: str = "write") -> None:
        self._checked(f"z{WATCH_KINDS[kind]},{vaddr:x},{length:x}")
        self.watchpoints.discard((kind, vaddr, length))

    # Threads: one per virtual CPU.

    def threads(self) -> tuple[int, ...]:
        """Every thread id QEMU lists (CPU index + 1 each), in its order."""
        found: list[int] = []
        reply = self._checked("qfThreadInfo")
        while reply.startswith("m"):
            found += [int(part.split(".")[-1], 16) for part in reply[1:].split(",") if part]
            reply = self._checked("qsThreadInfo")
        return tuple(found)

    def select(self, thread: int) -> None:
        """Make `thread` the one whose registers and memory `g`, `p` and `m` read (`Hg`)."""
        if self._checked(f"Hg{thread:x}") != "OK":
            raise GdbError(f"QEMU's gdbstub has no thread {thread}")

    # State.

    def registers(self) -> dict[str, int]:
        """Every register in the `g` packet, by the target description's names (rip, cs, cr3 ...)."""
        data = bytes.fromhex(self._checked("g"))
        layout = self.registers_layout
        if layout and len(data) != layout[-1].offset + layout[-1].size:
            return self._registers_one_by_one()
        return {r.name: int.from_bytes(data[r.offset : r.offset + r.size], "little") for r in layout}

    def _registers_one_by_one(self) -> dict[str, int]:
        """The `g` reply did not match the layout (a stub that shrinks registers in 32-bit
        code): each register by itself, whatever size it comes in."""
        values = {}
        for number, register in enumerate(self.registers_layout):
            reply = self._checked(f"p{number:x}")
            if reply and not reply.startswith("E"):
                values[register.name] = int.from_bytes(bytes.fromhex(reply), "little")
        return values

    def read_memory(self, vaddr: int, length: int) -> bytes:
        """Bytes at a guest virtual address, through the CPU's current page tables."""
        reply = self._checked(f"m{vaddr:x},{length:x}")
        return bytes.fromhex(reply)

    def write_memory(self, vaddr: int, data: bytes) -> None:
        """Store bytes at a guest virtual address, through the CPU's current page tables."""
        self._checked(f"M{vaddr:x},{len(data):x}:{data.hex()}")
