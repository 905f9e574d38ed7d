"""A source-level debugger for the unikernel: breakpoints, watchpoints, steps, stack, variables.

    debugger = Debugger.boot(image)            # stopped at the image's first instruction, 32-bit
    debugger = Debugger.attach(machine)        # or on a Machine(image, gdb=True) that runs already
    debugger.break_at("paging_init")           # a function, "kernel/paging.c:97", or a vaddr
    debugger.cont()                            # Stop: why and where the guest stopped
    debugger.next(); debugger.step(); debugger.finish(); debugger.stepi()
    debugger.backtrace()                       # frames, each with its source line
    debugger.variable("pml4_paddr")            # a parameter or local of the current frame, by name
    debugger.watch("pml4", kind="write")       # a variable or a vaddr: write, read or access

It drives QEMU's gdbstub (workbench/guest/gdbstub.py) of a Machine made with `gdb=True`
and reads the image's DWARF (workbench/debug/debuginfo.py, unwind.py).
The guest stays stopped between calls; every call that runs it has a timeout, after which the
guest is stopped again and the Stop says so.

Boot code runs at its load address until boot.S jumps to the high half: the instruction
pointer is then the image's paddr, not the vaddr the ELF links it at. The debugger shows such
addresses as the linked vaddr (`Stop.vaddr`), and every breakpoint and image watchpoint is
also set at the load address, so that it fires in 32-bit code before paging as well as later.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from workbench.debug.debuginfo import DebugInfo, DebugInfoError, NoSuchLine, TypeInfo
from workbench.debug.dwarf.expressions import DWARF_NUMBER, REGISTER_NAMES, RIP, format_value
from workbench.debug.stepping import MAX_LINE_STEPS, SETTLE_SECONDS, Execution, Reporter, enters_inlined_call
from workbench.debug.stops import Breakpoint, DebuggerError, Stop, Watchpoint
from workbench.debug.unwind import (
    Frame,
    Value,
    backtrace,
    frame_variables,
    linear_pc,
    linked_vaddr,
    read_variable,
    running_address,
)
from workbench.errors import InvalidInput, WorkbenchError
from workbench.guest.gdbstub import SIGTRAP, GdbClient, GdbError, StopReply
from workbench.guest.machine import Machine, MachineState
from workbench.kernel.image import Image, SymbolNotFound
from workbench.models.cpu import Registers, parse_info_registers
from workbench.models.snapshot import Snapshot

__all__ = ["Breakpoint", "Debugger", "DebuggerError", "Stop", "Watchpoint"]

SHOWN_REGISTERS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12",
                   "r13", "r14", "r15", "rip", "eflags", "cs", "ss", "cr0", "cr2", "cr3", "cr4", "efer",
                   "fs_base", "gs_base")


class Debugger:
    """Source-level control of one Machine made with `gdb=True`; see the module docstring.

    Its running and stepping is an `Execution` (stepping.py), which it tells what a stop means
    through a `Reporter`; what is set and what the guest holds are its own.
    """

    def __init__(self, machine: Machine, info: DebugInfo | None = None, *,
                 revive: Callable[[], None] | None = None) -> None:
        if not machine.gdb_enabled:
            raise DebuggerError("the debugger needs QEMU's gdbstub: make the machine with Machine(image, gdb=True)")
        try:
            info = info or DebugInfo.load(machine.image)
        except DebugInfoError as error:
            raise DebuggerError(f"no source-level debugging for this image: {error}") from error
        self.image: Image = machine.image
        self.info = info
        reporter = Reporter(after_stop=self._after_stop, finish_stop=self._finish_stop, ended=self._ended,
                            user_breakpoint_at=self._user_breakpoint_at, read=self.read)
        self._execution = Execution(machine, info, reporter, revive)
        self.breakpoints: dict[int, Breakpoint] = {}
        self.watchpoints: dict[int, Watchpoint] = {}
        self.stop: Stop | None = None
        self._numbers = 0
        self._watched: dict[int, bytes] = {}  # watchpoint number -> its bytes at the last stop
        self._previous: dict[str, int] = {}  # the registers at the stop before the last one
        self._last_stop_registers: dict[str, int] = {}
        self._listeners: list[Callable[[Stop], None]] = []

    @classmethod
    def attach(cls, machine: Machine, *, revive: Callable[[], None] | None = None) -> Debugger:
        """A debugger of a machine made with `gdb=True`, running or not; it stops the guest at
        its first command. The machine knows nothing of it: debugging builds on the guest.

        `revive`, if given, brings an ended machine back before the next command (a replay
        starts a new QEMU on its checkpoints, then calls `move_to`)."""
        return cls(machine, revive=revive)

    @property
    def machine(self) -> Machine:
        return self._execution.machine

    @property
    def gdb(self) -> GdbClient:
        return self._execution.gdb

    @classmethod
    def boot(cls, image: Image, **machine_options: Any) -> Debugger:
        """A new machine, stopped at the image's first instruction (32-bit, paging off)."""
        machine = Machine(image, gdb=True, **machine_options).start(paused=True)
        debugger = cls.attach(machine)
        debugger.run_to_entry()
        return debugger

    def close(self) -> None:
        self.machine.close()

    def move_to(self, machine: Machine) -> None:
        """Go on with another QEMU of the same image (a replay restarted from its checkpoints):
        every breakpoint and watchpoint is set there again; listeners stay."""
        if machine.image.path != self.image.path or not machine.gdb_enabled:
            raise DebuggerError("the debugger can move only to a machine of the same image, made with gdb=True")
        self._execution.move_to(machine)
        for breakpoint_ in self.breakpoints.values():
            for vaddr in breakpoint_.vaddrs:
                self._execution.insert(vaddr)
        for watch in self.watchpoints.values():
            for address in self._execution.aliases(watch.vaddr):
                self.gdb.set_watchpoint(address, watch.length, watch.kind)

    def add_listener(self, listener: Callable[[Stop], None]) -> None:
        """Call `listener(stop)` after every stop (the views follow the debugger this way)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[Stop], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    # Breakpoints and watchpoints.

    def break_at(self, where: str | int) -> Breakpoint:
        """Stop whenever the guest reaches `where`: a function name, `file:line`, or a vaddr."""
        path, line = "", 0
        if isinstance(where, int) and not isinstance(where, bool):
            vaddrs: tuple[int, ...] = (where,)
            row = self.info.location(where)
            path, line = (row.path, row.line) if row is not None else ("", 0)
        elif isinstance(where, str) and ":" in where:
            name, _, number = where.rpartition(":")
            if not number.strip().isdigit():
                raise InvalidInput(f"a source place is file:line, like kernel/paging.c:97, not {where!r}")
            line, vaddrs = self.info.addresses(name.strip(), int(number))
            path = self.info.resolve_file(name.strip())
        elif isinstance(where, str):
            vaddrs = self._function_start(where.strip())
            _function, path, line, _depth = self._execution.present(vaddrs[0])
        else:
            raise InvalidInput(f"a breakpoint is at a function name, file:line or a vaddr, not {where!r}")
        vaddrs = tuple(running_address(self.image, vaddr) for vaddr in vaddrs)
        self._numbers += 1
        found = Breakpoint(self._numbers, str(where) if not isinstance(where, int) else f"{where:#x}", vaddrs,
                           path, line)
        self._execution.stopped()
        for vaddr in vaddrs:
            self._execution.insert(vaddr)
        self.breakpoints[found.number] = found
        return found

    def _function_start(self, name: str) -> tuple[int, ...]:
        """Where a C function's body starts, as gdb finds it: the first statement of a line
        other than the function's opening line (past the prologue). Assembly labels: the label."""
        try:
            vaddr = self.image.symbol(name).vaddr
        except SymbolNotFound:
            try:
                vaddr = self.info.function(name).low
            except DebugInfoError as error:
                raise NoSuchLine(str(error)) from None
        first = next((r for r in self.info.rows if r.vaddr == vaddr), None)  # the opening line, `{`
        function = self.info.function_at(vaddr)
        if first is not None and function is not None and not first.path.endswith(".S"):
            body = next((r for r in self.info.rows if r.vaddr >= vaddr and function.scope.covers(r.vaddr)
                         and r.is_stmt and r.line != first.line), None)
            if body is not None:
                return (body.vaddr,)
        return (vaddr,)

    def watch(self, what: str | int, kind: str = "write", length: int | None = None) -> Watchpoint:
        """Stop after the guest writes (reads, accesses) a variable, or `length` bytes at a vaddr.

        A variable is a global or static one, or a local of the current frame that lives in
        memory (one kept in a register cannot be watched)."""
        if kind not in ("write", "read", "access"):
            raise InvalidInput(f"a watchpoint watches write, read or access, not {kind!r}")
        self._execution.stopped()
        variable_type: TypeInfo | None = None
        if isinstance(what, int) and not isinstance(what, bool):
            vaddr, size, spec = what, length or 8, f"{what:#x}"
        elif isinstance(what, str):
            vaddr, size, variable_type = self._variable_address(what)
            size, spec = length or size, what
        else:
            raise InvalidInput(f"watch a variable name or a vaddr, not {what!r}")
        self._numbers += 1
        found = Watchpoint(self._numbers, spec, vaddr, size, kind, variable_type)
        for address in self._execution.aliases(vaddr):
            self.gdb.set_watchpoint(address, size, kind)
        self.watchpoints[found.number] = found
        self._watched[found.number] = self._read_quietly(vaddr, size)
        return found

    def _variable_address(self, name: str) -> tuple[int, int, TypeInfo | None]:
        variable = self.info.globals.get(name)
        if variable is not None and variable.location is not None and variable.location.expression is not None:
            value = read_variable(variable, None, self.read)
            if value.place.startswith("memory at "):
                return int(value.place.split()[-1], 16), variable.type.size or 8, variable.type
        for value in self.locals():
            if value.name == name:
                if not value.place.startswith("memory at "):
                    raise DebuggerError(f"{name} is in a {value.place or 'place'} here, not in memory, so it cannot "
                                        "be watched; watch the memory it points to, or a global")
                return int(value.place.split()[-1], 16), len(value.raw), None
        try:
            symbol = self.image.symbol(name)
        except SymbolNotFound:
            raise DebuggerError(f"there is no variable {name!r} here: neither a global nor a local of "
                                f"{self._frame_name()}") from None
        return symbol.vaddr, symbol.size or 8, None

    def delete(self, item: Breakpoint | Watchpoint | int) -> None:
        """Remove a breakpoint or watchpoint (or the one with that number)."""
        number = item if isinstance(item, int) else item.number
        self._execution.stopped()
        if number in self.breakpoints:
            for vaddr in self.breakpoints.pop(number).vaddrs:
                self._execution.remove(vaddr)
        elif number in self.watchpoints:
            watch = self.watchpoints.pop(number)
            self._watched.pop(number, None)
            for address in self._execution.aliases(watch.vaddr):
                self.gdb.remove_watchpoint(address, watch.length, watch.kind)
        else:
            raise InvalidInput(f"there is no breakpoint or watchpoint {number}")

    def clear(self) -> None:
        """Remove every breakpoint and watchpoint."""
        for number in [*self.breakpoints, *self.watchpoints]:
            self.delete(number)

    @contextlib.contextmanager
    def points_lifted(self) -> Iterator[None]:
        """Every breakpoint and watchpoint out of QEMU meanwhile: a replay going to an
        instruction count must not stop on the way."""
        self._execution.stopped()
        addresses, watches = list(self._execution.inserted), list(self.gdb.watchpoints)
        for address in addresses:
            self.gdb.remove_breakpoint(address)
        for kind, vaddr, length in watches:
            self.gdb.remove_watchpoint(vaddr, length, kind)
        try:
            yield
        finally:
            if not self.machine.state.terminal:
                for address in addresses:
                    self.gdb.set_breakpoint(address)
                for kind, vaddr, length in watches:
                    self.gdb.set_watchpoint(vaddr, length, kind)

    def moved(self, detail: str) -> Stop:
        """The guest was put somewhere else from outside (a replay went to an instruction count):
        a Stop there, for the views, with every watched value read anew."""
        self._execution.stopped()
        return self._finish_stop("position", detail=detail)

    # Running.

    def run_to_entry(self, timeout: float = 10.0) -> Stop:
        """From reset, through the firmware, to the image's first instruction."""
        entry = self.image.paddr_of(self.image.entry)
        if entry is None:
            raise DebuggerError("the image's entry point is in none of its segments")
        return self._run_to((self.image.entry,), "entry", timeout)

    def cont(self, timeout: float = 10.0) -> Stop:
        """Let the guest run until a breakpoint, a watchpoint, a fault or its end (or `timeout`
        seconds: then it is stopped where it is, reason `interrupted`)."""
        self._execution.stopped()
        return self._execution.continue_running(timeout)

    def run_to(self, where: str | int, timeout: float = 10.0) -> Stop:
        """Run until `where` (as for break_at), without keeping a breakpoint there."""
        spot = self.break_at(where)
        try:
            stop = self.cont(timeout)
        finally:
            self.delete(spot)
        if stop.reason == "breakpoint" and stop.number == spot.number:
            stop = self.stop = replace(stop, reason="reached", number=0, detail=f"ran to {spot.spec}")
        return stop

    def _run_to(self, vaddrs: tuple[int, ...], reason: str, timeout: float) -> Stop:
        for vaddr in vaddrs:
            self._execution.insert(vaddr)
        try:
            stop = self._execution.continue_running(timeout)
        finally:
            if not self.machine.state.terminal:
                for vaddr in vaddrs:
                    self._execution.remove(vaddr)
        if stop.reason == "breakpoint" and stop.vaddr in vaddrs and stop.number == 0:
            stop = self.stop = replace(stop, reason=reason)
        return stop

    def stepi(self, count: int = 1, *, cpu: int | None = None) -> Stop:
        """Execute `count` instructions (one iteration of a `rep` instruction counts as one).
        With `cpu`, on that CPU alone, the others held where they are (a halted CPU does not
        step: the step times out)."""
        if not isinstance(count, int) or count < 1:
            raise InvalidInput(f"stepi executes a positive number of instructions, not {count!r}")
        self._execution.stopped()
        with self._stepping_only(cpu):
            for _ in range(count):
                reply = self._execution.single_step()
                if reply is not None:
                    return self._after_stop(reply)
            return self._finish_stop("step")

    @contextlib.contextmanager
    def _stepping_only(self, cpu: int | None) -> Iterator[None]:
        if cpu is None:
            yield
            return
        thread = self._thread_of(cpu)
        self.gdb.select(thread)
        self.gdb.step_thread = thread
        try:
            yield
        finally:
            self.gdb.step_thread = None

    # CPUs: QEMU's gdbstub shows each as a thread, its id the CPU index + 1.

    def cpus(self) -> tuple[int, ...]:
        """The CPUs of the machine, by index, as the gdbstub lists them."""
        self._execution.stopped()
        return tuple(thread - 1 for thread in self.gdb.threads())

    def _thread_of(self, cpu: int) -> int:
        cpus = self.cpus()
        if isinstance(cpu, bool) or not isinstance(cpu, int) or cpu not in cpus:
            raise InvalidInput(f"the machine has cpus {', '.join(map(str, cpus))}, not {cpu!r}")
        return cpu + 1

    @contextlib.contextmanager
    def _looking_at(self, cpu: int) -> Iterator[None]:
        """Registers and memory of `cpu` meanwhile; then those of the CPU that stopped again."""
        self.gdb.select(self._thread_of(cpu))
        try:
            yield
        finally:
            self.gdb.select(self.gdb.stop_thread or 1)

    def backtraces(self) -> dict[int, list[Frame]]:
        """Each CPU's call stack, innermost first, by CPU index."""
        return {cpu: self.backtrace(cpu) for cpu in self.cpus()}

    def step(self) -> Stop:
        """Run to the start of the next source line, into called functions."""
        return self._execution.step_line(over=False)

    def next(self) -> Stop:
        """Run to the start of the next source line of this function, over calls."""
        return self._execution.step_line(over=True)

    def finish(self, timeout: float = 10.0) -> Stop:
        """Run until the current function returns to its caller; `detail` has what RAX holds."""
        self._execution.stopped()
        frames = self.backtrace()
        if frames[0].inlined and frames[0].scope is not None:
            scope, depth = frames[0].scope, self._execution.inline_depth(frames[0].pc)
            for _ in range(MAX_LINE_STEPS):
                vaddr = self._execution.vaddr()
                if not scope.covers(vaddr) and self._execution.inline_depth(vaddr) < depth:
                    return self._finish_stop("finish", detail=f"left the inlined {frames[0].function}")
                reply = self._execution.step_over_instruction()
                if reply is not None:
                    return self._after_stop(reply)
            raise DebuggerError(f"{frames[0].function} did not finish within {MAX_LINE_STEPS} instructions")
        caller = next((f for f in frames[1:] if f.registers is not frames[0].registers), None)
        if caller is None or frames[0].cfa is None:
            raise DebuggerError(f"{frames[0].function} has no caller to return to: {frames[-1].end or 'unknown'}")
        stop = self._execution.run_until_return(caller.registers[RIP], frames[0].cfa, timeout)
        if stop is not None:
            return stop
        function = self.info.functions.get(frames[0].function)
        detail = f"{frames[0].function} returned"
        if function is not None and function.returns.size:
            value = self._execution.registers.get("rax", 0).to_bytes(8, "little")[:function.returns.size]
            detail += f" {format_value(value, function.returns)}"
        return self._finish_stop("finish", detail=detail)

    # Turning a stop reply into a Stop.

    def _user_breakpoint_at(self, pc: int) -> Breakpoint | None:
        vaddr = linked_vaddr(self.image, pc)
        return next((b for b in self.breakpoints.values() if pc in b.vaddrs or vaddr in b.vaddrs), None)

    def _after_stop(self, reply: StopReply) -> Stop:
        if reply.exited:
            return self._ended()
        if reply.watch is not None:
            return self._watch_stop(*reply.watch)
        if reply.signal == SIGTRAP:
            user = self._user_breakpoint_at(self._execution.pc())
            if user is not None:
                return self._finish_stop("breakpoint", number=user.number)
            if self._execution.inserted.get(self._execution.pc()):
                return self._finish_stop("breakpoint")
            return self._finish_stop("step")
        return self._unasked_stop()

    def _unasked_stop(self) -> Stop:
        """The guest stopped for a reason of its own: a fault report, a triple fault, the end of
        a replay, or someone's `pause`. The machine learns which from QMP, a moment later."""
        # A replay pauses at no fault report (workbench/timetravel/replay.py marks them), and QEMU reports a
        # triple fault before the stop: nothing more to learn by waiting there.
        deadline = time.monotonic() + (0.05 if self.machine.replay_path is not None else SETTLE_SECONDS)
        while time.monotonic() < deadline and self.machine.state not in (
                MachineState.FAULTED, MachineState.TRIPLE_FAULT) and not self.machine.state.terminal:
            if self.machine.outcome is not None:
                break
            time.sleep(0.01)
        outcome = self.machine.outcome
        # The machine records the outcome a moment before it changes state: trust the outcome.
        state = outcome.state if outcome is not None else self.machine.state
        if state.terminal:
            return self._ended()
        if state is MachineState.FAULTED:
            return self._finish_stop("fault", detail=outcome.explanation if outcome else "")
        if state is MachineState.TRIPLE_FAULT:
            return self._finish_stop("triple fault", detail=outcome.explanation if outcome else "")
        return self._finish_stop("interrupted", detail="stopped from outside (a pause)")

    def _ended(self) -> Stop:
        self.machine.wait(5.0) if not self.machine.state.terminal else None
        outcome = self.machine.outcome
        stop = Stop("exited", detail=outcome.explanation if outcome else "QEMU has exited")
        self.stop = stop
        self._announce(stop)
        return stop

    def _watch_stop(self, kind: str, address: int) -> Stop:
        watch = next((w for w in self.watchpoints.values() if any(
            a <= address < a + w.length for a in self._execution.aliases(w.vaddr)) and w.kind in (kind, "access")),
            None)
        if watch is None:
            return self._finish_stop("watchpoint", detail=f"{kind} at {address:#x}")
        old = self._watched.get(watch.number, b"")
        new = self._read_quietly(watch.vaddr, watch.length)
        self._watched[watch.number] = new
        detail = f"{kind} of {watch.spec}: {_show(old, watch.type)} -> {_show(new, watch.type)}"
        return self._finish_stop("watchpoint", detail=detail, number=watch.number, old=old, new=new)

    def _finish_stop(self, reason: str, *, detail: str = "", number: int = 0, old: bytes = b"",
                     new: bytes = b"") -> Stop:
        stop = self._stop_here(reason, detail=detail, number=number, old=old, new=new)
        self._announce(stop)
        return stop

    def _stop_here(self, reason: str, *, detail: str = "", number: int = 0, old: bytes = b"",
                   new: bytes = b"") -> Stop:
        registers = self.gdb.registers()
        self._previous, self._execution.registers = dict(self._last_stop_registers), registers
        cpu = self._stopped_cpu()
        state = self._registers_of(cpu)
        pc = linear_pc(registers) if state is None else state.fetch_address
        vaddr = linked_vaddr(self.image, pc)
        function, path, line, _depth = self._execution.present(vaddr)
        mode = state.mode.value if state is not None else ""
        stop = Stop(reason, pc, vaddr, function, path, line, mode, detail, number, old, new, cpu)
        self.stop = stop
        return stop

    def _registers_of(self, cpu: int | None) -> Registers | None:
        """The stopped CPU's registers with its segments, which gdb's lack: another CPU may still
        be in real mode while CPU 0 is in long mode. Read without a pause: one would resume the
        guest after, and QEMU's STOP event for this stop may not have reached the machine yet."""
        try:
            return parse_info_registers(self.machine.hmp("info registers", cpu=cpu or 0))
        except WorkbenchError:
            return None

    def _stopped_cpu(self) -> int | None:
        """The CPU the last stop reply named, on a machine of several CPUs."""
        thread = self.gdb.stop_thread
        return thread - 1 if self.machine.cpu_count > 1 and thread is not None else None

    def _announce(self, stop: Stop) -> None:
        self._last_stop_registers = dict(self._execution.registers)
        for watch in self.watchpoints.values():
            if stop.reason != "exited" and watch.number != stop.number:
                self._watched[watch.number] = self._read_quietly(watch.vaddr, watch.length)
        for listener in list(self._listeners):
            listener(stop)

    # What the stopped guest holds.

    def registers(self) -> dict[str, int]:
        """The registers now, by gdb's names (rax ... r15, rip, eflags, cs, cr0 ... efer)."""
        self._execution.stopped()
        return {name: value for name, value in self.gdb.registers().items() if name in SHOWN_REGISTERS}

    def changed_registers(self) -> set[str]:
        """The registers whose values differ from the stop before the last one."""
        now = self._last_stop_registers
        return {name for name in SHOWN_REGISTERS if name in now and self._previous.get(name) != now[name]}

    def snapshot(self, label: str = "") -> Snapshot:
        """Registers and page tables now. (Machine.snapshot pauses and resumes a guest it thinks
        runs, which would set a guest the debugger holds going.)"""
        self._execution.stopped()
        machine = self.machine
        return Snapshot.take(machine.memory, machine.registers(), maxphyaddr=machine.maxphyaddr(),
                             label=label or (f"stopped in {self.stop.function}" if self.stop else "stopped"))

    def read(self, vaddr: int, length: int) -> bytes:
        """Guest memory at a vaddr: through the CPU's page tables, or, while paging is off, at the
        load address of an image vaddr."""
        registers = self._execution.registers or self.gdb.registers()
        paging = bool(registers.get("cr0", 0) >> 31 & 1)
        address = vaddr
        if not paging:
            paddr = self.image.paddr_of(vaddr)
            address = paddr if paddr is not None else vaddr
        try:
            return bytes(self.gdb.read_memory(address, length))
        except GdbError as error:
            raise DebuggerError(f"the guest cannot read {length} bytes at {vaddr:#x} now ({error})") from error

    def _read_quietly(self, vaddr: int, length: int) -> bytes:
        try:
            return self.read(vaddr, length)
        except DebuggerError:
            return b""

    def backtrace(self, cpu: int | None = None) -> list[Frame]:
        """The call stack, innermost first; inlined calls are frames too (marked `inlined`). Of
        the CPU that stopped, or of `cpu`."""
        self._execution.stopped()
        if cpu is None:
            registers = self.gdb.registers()
            self._execution.registers = registers
            return self._frames(registers)
        with self._looking_at(cpu):
            return self._frames(self.gdb.registers())

    def _frames(self, registers: dict[str, int]) -> list[Frame]:
        known = {DWARF_NUMBER[name]: registers[name] for name in REGISTER_NAMES if name in registers}
        frames = backtrace(self.info, self.image, known, self.read)
        # As in _present: at an inlined call's first instruction, the caller is the innermost frame.
        skip = 0
        while skip + 1 < len(frames) and frames[skip + 1].pc == frames[skip].pc and enters_inlined_call(frames[skip]):
            skip += 1
        return [replace(frame, level=frame.level - skip) for frame in frames[skip:]]

    def locals(self, frame: int = 0) -> list[Value]:
        """The parameters and local variables in scope in `frame` (0: where the guest stopped)."""
        frames = self.backtrace()
        if not 0 <= frame < len(frames):
            raise InvalidInput(f"there are frames 0 to {len(frames) - 1}, not {frame}")
        return frame_variables(self.info, frames[frame], self.read)

    def variable(self, name: str, frame: int = 0) -> Value:
        """A parameter or local of `frame` by name, else a global or static variable."""
        for value in self.locals(frame):
            if value.name == name:
                return value
        variable = self.info.globals.get(name)
        if variable is not None:
            return read_variable(variable, None, self.read)
        raise DebuggerError(f"there is no variable {name!r} in {self._frame_name(frame)} or among the globals")

    def _frame_name(self, frame: int = 0) -> str:
        frames = self.backtrace()
        return frames[frame].function if frame < len(frames) else "this frame"

    def source(self, path: str | None = None) -> tuple[str, ...]:
        """The lines of a source file (the current one by default)."""
        path = path or (self.stop.path if self.stop else "")
        return self.info.source(path) if path else ()

    def __repr__(self) -> str:
        where = f", stopped: {self.stop!r}" if self.stop else ""
        return f"<Debugger {self.image.path.name} ({self.machine.state.value}){where}>"


def _show(data: bytes, kind: TypeInfo | None) -> str:
    if not data:
        return "?"
    if kind is not None:
        return format_value(data, kind)
    return f"{int.from_bytes(data, 'little'):#x}"
