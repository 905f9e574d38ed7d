"""How the debugger runs the guest: single steps, steps over calls and `rep`, run to a return.

The gdb-level machinery under workbench/debug/debugger.py, a part the Debugger is made of.
`Execution` owns the breakpoints it inserts into QEMU (user ones and its own temporary ones,
counted, since both may want the same address) and the registers it read last. What a stop
means is the Debugger's to say: Execution is given that as a `Reporter`, five callables, and
knows nothing else of the Debugger.

What QEMU's gdbstub does that shapes this (workbench/guest/gdbstub.py has more):

- Continuing from an address with a breakpoint stops there again at once, so the
  instruction is first stepped with its breakpoint lifted, as gdb does.
- A single step of a `rep` string instruction executes one iteration (RIP stays), so a line
  step runs the rest of it to the next instruction with a temporary breakpoint: the boot's
  `rep stosb` over 110 KiB of .bss takes one continue, not 110,000 steps.
- Single steps hold interrupts and timers off (QEMU's default `sstep` flags), so a step is one
  instruction of the code being debugged, never an interrupt handler.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from workbench.debug import disassembly
from workbench.debug.debuginfo import DebugInfo, LineRow
from workbench.debug.stops import DebuggerError, Stop
from workbench.debug.unwind import Frame, linear_pc, linked_vaddr
from workbench.errors import WorkbenchError
from workbench.guest.gdbstub import SIGTRAP, GdbClient, GdbError, GdbTimeout, StopReply
from workbench.guest.machine import Machine, MachineState
from workbench.kernel.image import Image

MAX_LINE_STEPS = 200_000  # instructions one source-line step may take before it gives up
STEP_TIMEOUT = 5.0  # seconds for one instruction
INTERRUPT_TIMEOUT = 2.0  # seconds for a running guest to stop when interrupted
SETTLE_SECONDS = 2.0  # after an unasked stop, or a fault report: how long to wait for the machine to say why


@dataclass(frozen=True)
class Reporter:
    """What Execution asks of the Debugger: Stops made of what the guest did, and its memory."""

    after_stop: Callable[[StopReply], Stop]  # a stop reply from the gdbstub, as a Stop
    finish_stop: Callable[..., Stop]  # (reason, *, detail=""): a Stop here, for a reason of ours
    ended: Callable[[], Stop]  # the Stop of a guest that has exited
    user_breakpoint_at: Callable[[int], object]  # the user's breakpoint at a pc, or None
    read: Callable[[int, int], bytes]  # guest memory at a vaddr


class Execution:
    """The running and stopping of one Machine's guest through its gdbstub."""

    def __init__(self, machine: Machine, info: DebugInfo, reporter: Reporter,
                 revive: Callable[[], None] | None = None) -> None:
        self.machine = machine
        self.image: Image = machine.image
        self.info = info
        self.inserted: Counter[int] = Counter()  # gdb breakpoint address -> how many want it
        self.registers: dict[str, int] = {}  # as read last
        self._reporter = reporter
        self._revive = revive  # brings a machine that has ended back (a replay's)

    @property
    def gdb(self) -> GdbClient:
        return self.machine.gdb

    def move_to(self, machine: Machine) -> None:
        """Run this machine from now on; nothing is inserted into its QEMU yet."""
        self.machine = machine
        self.inserted.clear()

    # Breakpoints in QEMU, at the vaddr and at the load address.

    def aliases(self, vaddr: int) -> tuple[int, ...]:
        """The vaddr and, for the image, its load address (where boot code runs before paging)."""
        paddr = self.image.paddr_of(vaddr)
        return (vaddr,) if paddr is None or paddr == vaddr else (vaddr, paddr)

    def insert(self, vaddr: int) -> None:
        for address in self.aliases(vaddr):
            self._insert_raw(address)

    def remove(self, vaddr: int) -> None:
        for address in self.aliases(vaddr):
            self._remove_raw(address)

    # The machinery.

    def stopped(self) -> None:
        """Make sure the guest is stopped (and not gone) before talking to its stub."""
        if self.machine.state.terminal and self._revive is not None:
            self._revive()  # a replay starts a new QEMU on its checkpoints
        state = self.machine.state
        if state.terminal:
            raise DebuggerError(f"the machine is {state.value}; boot a new one")
        # Asked, not taken from Machine.state: that follows QMP events, which may trail a stop.
        if self._running():
            try:
                self._reporter.after_stop(self.gdb.interrupt(INTERRUPT_TIMEOUT))
            except GdbTimeout:
                # QEMU ignores the interrupt of a guest that stopped meanwhile (a fault report
                # pauses it through QMP): then there is no stop reply to wait for.
                if self._running():
                    raise DebuggerError("the guest does not stop: QEMU's gdbstub does not answer") from None
            except GdbError:  # QEMU exited meanwhile (the guest asked it to): the next command says so
                deadline = time.monotonic() + INTERRUPT_TIMEOUT
                while not self.machine.state.terminal and time.monotonic() < deadline:
                    time.sleep(0.01)

    def _running(self) -> bool:
        if self.machine.state.terminal:
            return False
        try:
            return bool(self.machine.qmp("query-status")["running"])
        except WorkbenchError as error:
            deadline = time.monotonic() + INTERRUPT_TIMEOUT  # QEMU exiting just now: it runs no more
            while not self.machine.state.terminal and time.monotonic() < deadline:
                time.sleep(0.01)
            if self.machine.state.terminal:
                return False
            raise DebuggerError(f"the machine cannot be asked whether it runs: {error}") from error

    def _ended_by_guest(self) -> Stop | None:
        """A Stop when the guest reported a fault or triple-faulted: it cannot go on (a gdb
        continue would run it on behind the machine's back, into its halt loop). A fault report
        the machine is still taking in (it paused the guest and reads its registers) is waited for."""
        deadline = time.monotonic() + SETTLE_SECONDS
        while self.machine.reporting_fault and time.monotonic() < deadline:
            time.sleep(0.01)
        state = self.machine.state
        if state.terminal:
            return self._reporter.ended()
        if state is MachineState.FAULTED or state is MachineState.TRIPLE_FAULT:
            outcome = self.machine.outcome
            return self._reporter.finish_stop("fault" if state is MachineState.FAULTED else "triple fault",
                                     detail=outcome.explanation if outcome else "")
        return None

    def vaddr(self) -> int:
        return linked_vaddr(self.image, self.pc())

    def pc(self) -> int:
        self.registers = self.gdb.registers()
        return linear_pc(self.registers)

    def single_step(self) -> StopReply | None:
        """One instruction; a `rep` instruction that did not move on is run to its end. Returns
        a stop reply that is not a plain step (a watchpoint), else None."""
        before = self.pc()
        self._lift_breakpoint_at(before)
        try:
            reply = self.gdb.step(STEP_TIMEOUT)
        except GdbTimeout as error:
            self.gdb.interrupt()  # the stub still waits for the step to end: take the guest back
            raise DebuggerError(f"the instruction at {before:#x} did not finish within {STEP_TIMEOUT:g} s; the "
                                "guest is stopped again") from error
        finally:
            self._restore_breakpoint_at(before)
        if reply.watch is not None:
            return reply
        if self.pc() == before:
            return self._finish_repeat(before)
        return None

    def _finish_repeat(self, pc: int) -> StopReply | None:
        """The rest of a `rep` instruction at `pc`: run to the instruction after it."""
        following = self._next_instruction(pc)
        if following is None:
            return None
        self._insert_raw(following)
        try:
            self.gdb.resume()
            reply = self.gdb.wait_for_stop(STEP_TIMEOUT * 10)
        except GdbTimeout as error:
            self.gdb.interrupt()  # the breakpoint goes only from a stopped guest
            raise DebuggerError(f"the instruction at {pc:#x} did not move on, nor did the guest reach the next one "
                                f"within {STEP_TIMEOUT * 10:g} s; the guest is stopped again") from error
        finally:
            self._remove_raw(following)
        return reply if reply.watch is not None or reply.signal != SIGTRAP else None

    def _next_instruction(self, pc: int) -> int | None:
        """The address of the instruction after the one at `pc`: from the line table (assembly
        has a row per instruction) or from objdump."""
        vaddr = linked_vaddr(self.image, pc)
        rows = [r.vaddr for r in self.info.rows if r.vaddr > vaddr]
        try:
            code = sorted(a for a in disassembly.instructions(self.image.path) if a > vaddr)
        except WorkbenchError:
            code = []
        candidates = [a for a in (min(rows, default=None), code[0] if code else None) if a is not None]
        if not candidates:
            return None
        following = min(candidates)
        return following - vaddr + pc

    def _insert_raw(self, address: int) -> None:
        if self.inserted[address] == 0:
            self.gdb.set_breakpoint(address)
        self.inserted[address] += 1

    def _remove_raw(self, address: int) -> None:
        self.inserted[address] -= 1
        if self.inserted[address] <= 0:
            del self.inserted[address]
            self.gdb.remove_breakpoint(address)

    def _lift_breakpoint_at(self, pc: int) -> None:
        if self.inserted.get(pc):
            self.gdb.remove_breakpoint(pc)

    def _restore_breakpoint_at(self, pc: int) -> None:
        if self.inserted.get(pc):
            self.gdb.set_breakpoint(pc)

    def _step_off_breakpoint(self) -> None:
        """Continuing from a breakpoint's own address would stop there at once: step past it first."""
        pc = self.pc()
        if self.inserted.get(pc):
            self._lift_breakpoint_at(pc)
            try:
                self.gdb.step(STEP_TIMEOUT)
            finally:
                self._restore_breakpoint_at(pc)

    def continue_running(self, timeout: float) -> Stop:
        ended = self._ended_by_guest()
        if ended is not None:
            return ended
        try:
            self._step_off_breakpoint()
            self.gdb.resume()
            reply = self.gdb.wait_for_stop(timeout)
        except GdbTimeout:
            reply = self.gdb.interrupt()
            return self._reporter.finish_stop("interrupted", detail=f"still running after {timeout:g} s; stopped here")
        except GdbError:
            return self._reporter.ended()
        return self._reporter.after_stop(reply)

    def run_until_return(self, return_pc: int, cfa: int, timeout: float) -> Stop | None:
        """Continue until the instruction at `return_pc` runs with RSP back at `cfa` (the call
        returned). Returns a Stop if something else stopped the guest first."""
        address = return_pc
        deadline = time.monotonic() + timeout
        self._insert_raw(address)
        try:
            while True:
                self._step_off_breakpoint()
                stop_reply = self._resume_and_wait(deadline)
                if isinstance(stop_reply, Stop):
                    return stop_reply
                registers = self.gdb.registers()
                self.registers = registers
                if linear_pc(registers) == address and registers["rsp"] >= cfa:
                    return None
                user = self._reporter.user_breakpoint_at(linear_pc(registers))
                if stop_reply.watch is not None or stop_reply.signal != SIGTRAP or user is not None:
                    return self._reporter.after_stop(stop_reply)
        finally:
            if not self.machine.state.terminal:
                self._remove_raw(address)

    def _resume_and_wait(self, deadline: float) -> StopReply | Stop:
        try:
            self.gdb.resume()
            return self.gdb.wait_for_stop(max(deadline - time.monotonic(), 0.05))
        except GdbTimeout:
            self.gdb.interrupt()
            return self._reporter.finish_stop("interrupted", detail="the call did not return in time; stopped here")
        except GdbError:
            return self._reporter.ended()

    def step_over_instruction(self) -> StopReply | None:
        """One instruction, or a whole call if the instruction is one."""
        registers = self.gdb.registers()
        rsp, pc = registers["rsp"], linear_pc(registers)
        reply = self.single_step()
        if reply is not None:
            return reply
        after = self.registers
        if after["rsp"] == rsp - 8:
            return_address = int.from_bytes(self._reporter.read(after["rsp"], 8), "little")
            if pc < return_address <= pc + 16:  # a call pushed the address of the next instruction
                stop = self.run_until_return(return_address, rsp, STEP_TIMEOUT * 10)
                if stop is not None:
                    raise _Stopped(stop)
        return None

    def step_line(self, *, over: bool) -> Stop:
        self.stopped()
        start = self.vaddr()
        span = self.info.row_range(start)
        depth = self.inline_depth(start)
        try:
            for _ in range(MAX_LINE_STEPS):
                reply = self.step_over_instruction() if over else self.single_step()
                if reply is not None:
                    return self._reporter.after_stop(reply)
                vaddr = self.vaddr()
                if span is not None and span[0] <= vaddr < span[1]:
                    continue
                row = self.info.location(vaddr)
                if row is None or row.vaddr != vaddr or not row.is_stmt:
                    continue
                if over and self.inline_depth(vaddr) > depth:
                    continue
                return self._reporter.finish_stop("step")
        except _Stopped as stopped:
            return stopped.stop
        raise DebuggerError(f"no new source line within {MAX_LINE_STEPS} instructions; use cont() or a breakpoint")

    def present(self, vaddr: int) -> tuple[str, str, int, int]:
        """(function, path, line, depth) for a stop at `vaddr`; depth counts the function and
        the inlined calls around vaddr. At the first instruction of an inlined call the guest
        is still, as far as the source goes, at the call in the caller (gdb shows it so too):
        `step` goes into the inlined function, `next` over it."""
        row: LineRow | None = self.info.location(vaddr)
        path, line = (row.path, row.line) if row is not None else ("", 0)
        scopes = [s for s in self.info.scopes_at(vaddr) if s.kind in ("function", "inlined")]
        while len(scopes) > 1 and scopes[-1].kind == "inlined" and scopes[-1].low == vaddr:
            path, line = scopes[-1].call_site
            scopes.pop()
        function = scopes[-1].name if scopes else self.image.symbolize(vaddr).split("+")[0]
        return function, path, line, len(scopes)

    def inline_depth(self, vaddr: int) -> int:
        return self.present(vaddr)[3]


class _Stopped(Exception):
    """Something else stopped the guest in the middle of a step; carries the Stop."""

    def __init__(self, stop: Stop) -> None:
        super().__init__(str(stop))
        self.stop = stop


def enters_inlined_call(frame: Frame) -> bool:
    """The frame is an inlined call at its very first instruction."""
    return frame.inlined and frame.scope is not None and frame.scope.low == frame.pc
