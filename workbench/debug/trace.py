"""One call into the kernel as the guest really executed it, instruction by instruction.

`trace_call` follows the unikernel's way, the application's plain `call` of a kernel function
(the `call SERVICE` request); `trace_syscall` the classic way, the ring-3 program's `syscall`
(the `syscall SERVICE` and `syscall-cr3 SERVICE` requests). Both stop the guest at a breakpoint
through QEMU's gdbstub (Machine(gdb=True)), single-step it, and record at every instruction the
privilege level (CPL, the low two bits of CS), RSP, CR3 and the GS base, from the instruction
that enters the kernel up to the one it returns to. Names come from the image, instruction text
from objdump.

Under TCG a single step is one instruction and interrupts are held off while stepping, so the
same image always steps the same path: the number of instructions is a count to compare, unlike
a time. (Which instructions, and how many, depends on the compiler that built the image.)
"""

from __future__ import annotations

import html
import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from workbench.debug import disassembly
from workbench.debug.disassembly import DisassemblyError
from workbench.errors import WorkbenchError
from workbench.guest.gdbstub import GdbClient
from workbench.guest.machine import Machine, MachineState
from workbench.kernel.image import Image, SymbolNotFound

_Value = TypeVar("_Value")
MAX_STEPS = 5000  # per trace: the paths here take tens of instructions; this bounds a runaway
SERVICES = {"noop": "kernel_noop", "ticks": "kernel_get_ticks"}  # request name -> kernel function
USER_CODE_BASE_SYMBOL = "__user_code_base"  # kernel.ld.S: USER_CODE_BASE as an absolute symbol
CPL_COLOURS = {0: "#fde2c8", 3: "#dbeafe"}


class TraceError(WorkbenchError):
    """A trace could not be captured: the path did not go where it was expected to."""


@dataclass(frozen=True)
class Step:
    """The CPU just before it executes one instruction of the path."""

    rip: int
    cpl: int  # current privilege level: 0 kernel, 3 user
    rsp: int
    cr3: int
    gs_base: int
    symbol: str  # function+offset, from the image (for the ring-3 copy: the original's name)
    instruction: str  # as objdump prints it; "" when unknown
    stack: str  # which stack RSP points into, in words

    def to_json(self) -> dict[str, object]:
        return {"rip": f"{self.rip:#018x}", "cpl": self.cpl, "rsp": f"{self.rsp:#018x}", "cr3": f"{self.cr3:#x}",
                "gs_base": f"{self.gs_base:#x}", "symbol": self.symbol, "instruction": self.instruction,
                "stack": self.stack}


def _each_change_once(values: Iterable[_Value]) -> tuple[_Value, ...]:
    """`values` with each run of equal ones kept once: 3, 3, 0, 0, 3 gives (3, 0, 3)."""
    return tuple(value for value, _ in itertools.groupby(values))


@dataclass(frozen=True)
class Trace:
    """The instructions of one round trip into the kernel, and the state after the last one."""

    title: str
    request: str
    steps: tuple[Step, ...]  # one per instruction executed, in order
    end: Step  # back where the path began: the instruction after the call or syscall

    @property
    def instruction_count(self) -> int:
        return len(self.steps)

    @property
    def privilege_levels(self) -> tuple[int, ...]:
        """The CPL along the path, each change once: (0,) for a call, (3, 0, 3) for a syscall."""
        return _each_change_once(step.cpl for step in (*self.steps, self.end))

    @property
    def cr3_values(self) -> tuple[int, ...]:
        """CR3 along the path, each change once."""
        return _each_change_once(step.cr3 for step in (*self.steps, self.end))

    @property
    def stacks(self) -> tuple[str, ...]:
        """The stacks RSP moved through, each change once."""
        return _each_change_once(step.stack for step in (*self.steps, self.end))

    def summary(self) -> str:
        levels = " → ".join(f"CPL {level}" for level in self.privilege_levels)
        switches = len(self.cr3_values) - 1
        return (f"{self.title}: {self.instruction_count} instructions, {levels}, "
                f"{switches} CR3 switch{'es' if switches != 1 else ''}, stacks: {', '.join(self.stacks)}")

    def __str__(self) -> str:
        rows = [self.summary(), f"{'#':>3}  cpl  {'rip':18}  {'rsp':18}  {'cr3':>8}  instruction"]
        for number, step in enumerate(self.steps, 1):
            rows.append(f"{number:>3}  {step.cpl:>3}  {step.rip:#018x}  {step.rsp:#018x}  {step.cr3:>#8x}  "
                        f"{step.instruction:32}  <{step.symbol}>")
        rows.append(f"{'':>3}  {self.end.cpl:>3}  {self.end.rip:#018x}  {self.end.rsp:#018x}  {self.end.cr3:>#8x}  "
                    f"(back: the next instruction)  <{self.end.symbol}>")
        return "\n".join(rows)

    def __repr__(self) -> str:  # deterministic for notebooks: no addresses, which depend on the compiler
        return f"<Trace {self.request!r}: {self.instruction_count} instructions, CPL {self.privilege_levels}>"

    def _repr_html_(self) -> str:
        return trace_html(self)

    def to_json(self) -> dict[str, object]:
        return {"title": self.title, "request": self.request, "summary": self.summary(),
                "steps": [s.to_json() for s in self.steps], "end": self.end.to_json(),
                "count": self.instruction_count, "levels": list(self.privilege_levels)}


def trace_html(trace: Trace) -> str:
    """The trace as a static HTML table, one row per instruction, coloured by privilege level."""
    cells = "padding:0 6px;font-family:monospace;font-size:12px;white-space:nowrap"
    rows = []
    for number, step in enumerate((*trace.steps, trace.end), 1):
        last = number > len(trace.steps)
        colour = CPL_COLOURS.get(step.cpl, "#f3f4f6")
        instruction = "(back: the next instruction)" if last else step.instruction
        rows.append(
            f"<tr style='background:{colour}'>"
            f"<td style='{cells};text-align:right'>{'' if last else number}</td>"
            f"<td style='{cells}'>{step.cpl}</td><td style='{cells}'>{step.rip:#018x}</td>"
            f"<td style='{cells}'>{html.escape(instruction)}</td>"
            f"<td style='{cells}'>&lt;{html.escape(step.symbol)}&gt;</td>"
            f"<td style='{cells}'>{step.rsp:#018x}</td><td style='{cells}'>{html.escape(step.stack)}</td>"
            f"<td style='{cells}'>{step.cr3:#x}</td></tr>")
    header = "".join(f"<th style='text-align:left;padding:0 6px'>{h}</th>"
                     for h in ("#", "CPL", "rip", "instruction", "where", "rsp", "stack", "cr3"))
    return (f"<div style='font-family:system-ui,sans-serif;font-size:13px'><b>{html.escape(trace.summary())}</b>"
            f"<table style='border-collapse:collapse'><tr>{header}</tr>{''.join(rows)}</table>"
            f"<div style='color:#6b7280'>orange: CPL 0 (kernel), blue: CPL 3 (user)</div></div>")


# Naming what the guest executed.


class _Namer:
    """Symbols, instruction text and stack names for the addresses of one image."""

    def __init__(self, image: Image) -> None:
        self.image = image
        try:
            self.code = disassembly.instructions(image.path)
        except DisassemblyError:
            self.code = {}
        symbols = image.symbols
        self.user_base = symbols[USER_CODE_BASE_SYMBOL].vaddr if USER_CODE_BASE_SYMBOL in symbols else None
        self.user_program = symbols["user_program_start"].vaddr if "user_program_start" in symbols else None
        self.stacks: list[tuple[int, int, str]] = []
        if "syscall_stack" in symbols:
            stack = symbols["syscall_stack"]
            self.stacks.append((stack.vaddr, stack.vaddr + stack.size, "syscall stack"))
        if "boot_stack_bottom" in symbols and "boot_stack_top" in symbols:
            self.stacks.append((symbols["boot_stack_bottom"].vaddr, symbols["boot_stack_top"].vaddr, "boot stack"))
        if "__user_stack_base" in symbols:
            base = symbols["__user_stack_base"].vaddr
            self.stacks.append((base, base + 4096, "ring-3 stack"))

    def image_vaddr(self, rip: int) -> int:
        """Where the instruction at `rip` is in the image: the ring-3 code is a copy of it."""
        base, program = self.user_base, self.user_program
        if base is not None and program is not None and base <= rip < base + 4096:
            return rip - base + program
        return rip

    def step(self, registers: dict[str, int]) -> Step:
        rip, rsp = registers["rip"], registers["rsp"]
        where = self.image_vaddr(rip)
        # rsp points at the last value pushed: the stack it belongs to may end right at rsp.
        stack = next((name for low, high, name in self.stacks if low < rsp <= high), "")
        return Step(rip=rip, cpl=registers["cs"] & 3, rsp=rsp, cr3=registers["cr3"],
                    gs_base=registers.get("gs_base", 0), symbol=self.image.symbolize(where),
                    instruction=self.code.get(where, ""), stack=stack)


# Capturing.


def _capture(machine: Machine, request: str, *, title: str, breakpoint_vaddr: int,
             entered: Callable[[dict[str, int], dict[str, int]], bool], timeout: float) -> Trace:
    """Break at `breakpoint_vaddr` while the guest serves `request`, step until `entered(before,
    now)` says the last instruction entered the kernel, then record until it comes back."""
    if machine.state.terminal or machine.state is MachineState.CREATED or not machine.qmp("query-status")["running"]:
        raise TraceError(f"the machine must be running at its prompt to be traced; it is {machine.state.value}")
    gdb = machine.gdb
    namer = _Namer(machine.image)
    deadline = time.monotonic() + timeout
    gdb.interrupt(timeout)
    gdb.set_breakpoint(breakpoint_vaddr)
    stopped_here = True
    try:
        gdb.resume()
        stopped_here = False
        machine.send_request(request)
        gdb.wait_for_stop(max(deadline - time.monotonic(), 0.1))
        stopped_here = True
        gdb.remove_breakpoint(breakpoint_vaddr)
        trace = _record(gdb, namer, title=title, request=request, entered=entered, deadline=deadline)
    finally:
        if gdb.breakpoints:
            gdb.remove_breakpoint(breakpoint_vaddr)
        if stopped_here:
            gdb.resume()
    reply = machine.wait_for_reply(request, max(deadline - time.monotonic(), 1.0))
    if not reply.ok:
        raise TraceError(f"the guest answered {request!r} with an error: {reply.line}")
    return trace


def _record(gdb: GdbClient, namer: _Namer, *, title: str, request: str,
            entered: Callable[[dict[str, int], dict[str, int]], bool], deadline: float) -> Trace:
    last = gdb.registers()

    def step() -> dict[str, int]:
        """One instruction further. Rarely QEMU reports a step although the CPU was stopped
        before the instruction ran (something else kicked it): nothing changed, so step again."""
        nonlocal last
        while True:
            if time.monotonic() > deadline:
                raise TraceError(f"tracing {request!r} took too long")
            gdb.step(max(deadline - time.monotonic(), 0.1))
            now = gdb.registers()
            if now != last:
                last = now
                return now

    # 1. Up to the instruction that enters the kernel (the call or the syscall).
    before = last
    for _ in range(MAX_STEPS):
        now = step()
        if entered(before, now):
            break
        before = now
    else:
        raise TraceError(f"{request!r} did not enter the kernel within {MAX_STEPS} instructions")
    # 2. Where it comes back to: the instruction after. A call pushed it; syscall saved it in RCX.
    if now["cs"] & 3 != before["cs"] & 3:
        resume_at = now["rcx"]
    else:
        resume_at = int.from_bytes(gdb.read_memory(now["rsp"], 8), "little")
    # 3. Every instruction until it is back there, at the same privilege and stack depth.
    states = [before, now]
    for _ in range(MAX_STEPS):
        now = step()
        states.append(now)
        if now["rip"] == resume_at and now["cs"] & 3 == before["cs"] & 3 and now["rsp"] == before["rsp"]:
            break
    else:
        raise TraceError(f"{request!r} did not return from the kernel within {MAX_STEPS} instructions")
    steps = tuple(namer.step(state) for state in states)
    return Trace(title, request, steps[:-1], steps[-1])


def trace_call(machine: Machine, service: str = "noop", *, function: str | None = None,
               timeout: float = 30.0) -> Trace:
    """The unikernel's way: the application's plain call of the kernel function for `service`.

    Breaks where the application serves `call SERVICE` (command_call), steps to the call of
    the kernel function (`function`, by default the one SERVICES names), and records from that
    call instruction to the instruction after it.
    """
    function = function or SERVICES.get(service)
    if function is None:
        raise TraceError(f"which kernel function serves {service!r}? Say it: trace_call(machine, {service!r}, "
                         "function=\"kernel_...\")")
    image = machine.image
    try:
        start, target = image.symbol("command_call").vaddr, image.symbol(function).vaddr
    except SymbolNotFound as error:
        raise TraceError(f"this image cannot be traced this way: {error}") from error
    request = f"call {service}"
    _try(machine, request, timeout)
    return _capture(machine, request, title=f"{request}: a function call", breakpoint_vaddr=start,
                    entered=lambda _before, now: now["rip"] == target, timeout=timeout)


def trace_syscall(machine: Machine, service: str = "noop", *, switch_cr3: bool = False,
                  timeout: float = 30.0) -> Trace:
    """The classic way: the ring-3 program's `syscall` for `service`, and the kernel's `sysretq`.

    Breaks at the program's syscall instruction (user_syscall_instruction, in its ring-3 copy)
    while the guest serves `syscall SERVICE` (or `syscall-cr3 SERVICE` with switch_cr3), and
    records from it to the instruction after it, back in ring 3.
    """
    image = machine.image
    try:
        user_base = image.symbol(USER_CODE_BASE_SYMBOL).vaddr
        offset = image.symbol("user_syscall_instruction").vaddr - image.symbol("user_program_start").vaddr
    except SymbolNotFound as error:
        raise TraceError(f"this image has no ring-3 program to trace: {error}") from error
    command = "syscall-cr3" if switch_cr3 else "syscall"
    request = f"{command} {service}"
    _try(machine, request, timeout)
    title = f"{request}: a system call" + (" with CR3 switches" if switch_cr3 else "")
    return _capture(machine, request, title=title, breakpoint_vaddr=user_base + offset,
                    entered=lambda before, now: before["cs"] & 3 == 3 and now["cs"] & 3 == 0, timeout=timeout)


def _try(machine: Machine, request: str, timeout: float) -> None:
    """Serve the request once untraced: an unknown service is an error reply now, not a breakpoint
    that is never reached; and the first system call sets the ring-3 region up."""
    reply = machine.request(request, timeout)
    if not reply.ok:
        raise TraceError(f"the guest answered {request!r} with an error: {reply.line}")
