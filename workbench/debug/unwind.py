"""The call stack of a stopped guest, from `.debug_frame`, and the variables of each frame.

Pure: it takes the registers, a memory reader and the DebugInfo. The kernel is built with
`-O2 -fno-asynchronous-unwind-tables`, so it keeps no frame pointers and no `.eh_frame`; `-g`
makes the compilers emit `.debug_frame` instead, which lives only in the debug file. That
call-frame information (CFI) says, for every instruction of a C function, where the caller's
stack pointer (the CFA) and return address are, so the stack unwinds correctly at any
instruction, in a function's prologue too. Assembly without `.cfi_` directives (boot.S,
interrupts.S) has none: the stack ends there, and says so.

Functions the compiler inlined have no frame of their own, but the DWARF records them, so
they are listed as frames like gdb lists them (`inlined` is True), each with the line it
was called from.

An interrupt or exception enters through assembly stubs that save every register and call a
C function with a pointer to what they saved (kernel/interrupts.S: `mov %rsp, %rdi; call
interrupt_dispatch`). Where the stack ends in such a stub and the C function's first parameter
points to a struct with `rip` and `rsp` members, the unwinder reads the interrupted registers
from that struct (through the parameter, or at the C function's CFA, where the stub's `mov`
put it) and goes on into the code that was interrupted: the frame there is marked
`interrupted`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace

from workbench.debug.debuginfo import CfaRule, DebugInfo, Scope, Variable
from workbench.debug.dwarf.expressions import (
    DWARF_NUMBER,
    RIP,
    RSP,
    Context,
    Unavailable,
    evaluate,
    format_value,
    read_bytes,
)
from workbench.errors import WorkbenchError
from workbench.kernel.image import Image

MAX_FRAMES = 64
CALLEE_SAVED = (3, 6, 12, 13, 14, 15)  # rbx, rbp, r12-r15: a callee keeps them (psABI 3.2.1)

Reader = Callable[[int, int], bytes]


@dataclass(frozen=True)
class Frame:
    """One function call on the stack (or an inlined call inside one)."""

    level: int  # 0 is where the guest stopped
    pc: int  # the linked vaddr of the instruction (for callers: the return address)
    lookup_pc: int  # the pc for lines and variables: a caller's is its call instruction (pc - 1)
    function: str
    path: str
    line: int
    inlined: bool = False  # the compiler inlined this call: no frame of its own
    cfa: int | None = None  # the caller's stack pointer before the call (None: unknown)
    registers: dict[int, int] = field(default_factory=dict, repr=False)  # known in this frame, DWARF numbers
    scope: Scope | None = field(default=None, repr=False)  # the function or inlined call
    frame_base: bytes | None = field(default=None, repr=False)
    end: str = ""  # for the last frame: why the stack ends here
    interrupted: bool = False  # an interrupt or exception stopped this code here (rip is exact)

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}" if self.path else f"{self.pc:#x}"

    def __str__(self) -> str:
        inlined = " (inlined)" if self.inlined else ""
        interrupted = " (interrupted here)" if self.interrupted else ""
        return f"#{self.level} {self.function}{inlined} at {self.where}{interrupted}"


@dataclass(frozen=True)
class Value:
    """A variable read in one frame: its value as C shows it, or why it is unavailable."""

    name: str
    kind: str  # parameter, local, global
    type: str
    text: str  # the value as C would print it, or "<unavailable: why>"
    raw: bytes = b""
    place: str = ""  # where it was found

    @property
    def available(self) -> bool:
        return bool(self.raw)

    def __int__(self) -> int:
        if not self.raw:
            raise Unavailable(f"{self.name} is {self.text}")
        return int.from_bytes(self.raw, "little")

    def __str__(self) -> str:
        return f"{self.type} {self.name} = {self.text}"


def backtrace(info: DebugInfo, image: Image, registers: dict[int, int], read: Reader) -> list[Frame]:
    """The frames from the stopped instruction outwards. `registers` are by DWARF number
    and must include RIP and RSP; the pc may be a load address (boot code before paging)."""
    frames: list[Frame] = []
    known = dict(registers)
    exact = True  # the pc is the instruction itself, not a return address after a call
    interrupted = False
    while len(frames) < MAX_FRAMES:
        pc = linked_vaddr(image, known[RIP])
        lookup = pc if exact else pc - 1
        level_start = len(frames)
        chain = [s for s in info.scopes_at(lookup) if s.kind in ("function", "inlined")]
        rule = info.cfa_rule(lookup)
        cfa = known[rule.cfa_register] + rule.cfa_offset if rule is not None and rule.cfa_register in known else None
        row = info.location(lookup)
        path, line = (row.path, row.line) if row is not None else ("", 0)
        frame_base = chain[0].frame_base if chain else None
        if not chain:  # assembly: name the symbol, not symbol+offset
            frames.append(Frame(len(frames), pc, lookup, image.symbolize(pc).split("+")[0], path, line, cfa=cfa,
                                registers=known, interrupted=interrupted))
        for scope in reversed(chain):
            frames.append(Frame(len(frames), pc, lookup, scope.name or "?", path, line, scope.kind == "inlined", cfa,
                                known, scope, frame_base, interrupted=interrupted and len(frames) == level_start))
            if scope.kind == "inlined":
                path, line = scope.call_site
        caller, why = _caller(known, rule, cfa, read, image)
        exact = interrupted = False
        if caller is None and rule is None and level_start > 0:
            caller = _interrupted(info, frames[level_start - 1], read)
            exact = interrupted = caller is not None
        if caller is None:
            frames[-1] = replace(frames[-1], end=why)
            return frames
        known = caller
    return frames


def _interrupted(info: DebugInfo, callee: Frame, read: Reader) -> dict[int, int] | None:
    """The registers an interrupt stub saved, if `callee` (the C function the stub called)
    takes a pointer to them as its first parameter; else None."""
    function = callee.scope if callee.scope is not None and callee.scope.kind == "function" else None
    parameters = [v for v in function.variables if v.kind == "parameter"] if function is not None else []
    if not parameters or parameters[0].type.kind != "pointer" or parameters[0].type.target is None:
        return None
    saved = parameters[0].type.target
    members = {name: (offset, member.size) for name, offset, member in saved.members}
    if not {"rip", "rsp"} <= members.keys():
        return None
    value = read_variable(parameters[0], callee, read)
    address = int(value) if value.available else callee.cfa  # the stub passed its RSP: the callee's CFA
    if address is None:
        return None
    try:
        data = read(address, saved.size)
    except WorkbenchError:
        return None
    return {DWARF_NUMBER[name]: int.from_bytes(data[offset:offset + size], "little")
            for name, (offset, size) in members.items() if name in DWARF_NUMBER and size == 8}


def _caller(known: dict[int, int], rule: CfaRule | None, cfa: int | None, read: Reader,
            image: Image) -> tuple[dict[int, int] | None, str]:
    """The caller's registers, or (None, why the stack ends here)."""
    if rule is None:
        return None, "no call-frame information here (assembly): the stack ends"
    if cfa is None:
        return None, "the frame's CFA register is not known here"
    try:
        return_address = int.from_bytes(read(cfa + rule.saved.get(RIP, -8), 8), "little")
        caller = {number: known[number] for number in CALLEE_SAVED if number in known}
        for number, offset in rule.saved.items():
            if number != RIP:
                caller[number] = int.from_bytes(read(cfa + offset, 8), "little")
    except WorkbenchError as error:
        return None, f"the stack cannot be read at {cfa:#x} ({error})"
    if return_address == 0:
        return None, "the return address is 0: the outermost frame"
    if image.section_at(linked_vaddr(image, return_address)) is None:
        return None, f"the return address {return_address:#x} is not in the image's code"
    caller[RIP] = return_address
    caller[RSP] = cfa
    return caller, ""


# Code the kernel copies before it runs it, by symbols around the copied bytes and the address
# the copy runs at (docs/guest-contract.md): the DWARF knows it where it is linked.
COPIED_CODE = (("smp_trampoline", "smp_trampoline_end", 0x8000),)  # the other CPUs' start-up code
CR0_PE = 1


def linear_pc(registers: Mapping[str, int]) -> int:
    """The address the CPU fetches from, which breakpoints match. In real mode that is CS:IP,
    CS's base being CS * 16 (a woken CPU starts at 0800:0000); otherwise rip, on the flat
    segments every kernel here sets up."""
    if "cr0" in registers and not registers["cr0"] & CR0_PE:
        return (registers.get("cs", 0) << 4) + (registers["rip"] & 0xFFFF)
    return registers["rip"]


def linked_vaddr(image: Image, pc: int) -> int:
    """Where the instruction at `pc` is linked: boot code runs at its load address before
    paging (and, in boot.S, just after it), copied code where it was copied to; the DWARF
    knows neither."""
    if image.section_at(pc) is not None:
        return pc
    linked = image.vaddr_of_paddr(pc)
    if linked is not None:
        return linked
    for source, size, runs_at in _copies(image):
        if runs_at <= pc < runs_at + size:
            return source + pc - runs_at
    return pc


def running_address(image: Image, vaddr: int) -> int:
    """Where the code linked at `vaddr` runs, where a breakpoint on it must go: the copy's
    address for copied code, else `vaddr`."""
    for source, size, runs_at in _copies(image):
        if source <= vaddr < source + size:
            return runs_at + vaddr - source
    return vaddr


def _copies(image: Image) -> Iterator[tuple[int, int, int]]:
    """(linked vaddr, size, address it runs at) of each copied piece of code the image has."""
    for start, end, runs_at in COPIED_CODE:
        if start in image.symbols and end in image.symbols:
            yield image.symbols[start].vaddr, image.symbols[end].vaddr - image.symbols[start].vaddr, runs_at


def frame_variables(info: DebugInfo, frame: Frame, read: Reader) -> list[Value]:
    """The parameters and locals in scope at the frame's pc, innermost block first."""
    if frame.scope is None:
        return []
    pc = frame.lookup_pc
    seen: set[str] = set()
    values = []
    for variable in _in_scope(frame.scope, pc):
        if variable.name in seen:
            continue  # an inner block's variable hides an outer one of the same name
        seen.add(variable.name)
        values.append(read_variable(variable, frame, read))
    values.sort(key=lambda v: v.kind != "parameter")
    return values


def _in_scope(scope: Scope, pc: int) -> list[Variable]:
    """Variables of the scope and its blocks around pc (not of inlined calls), innermost first."""
    inner: list[Variable] = []
    for child in scope.children:
        if child.kind == "block" and child.covers(pc):
            inner = _in_scope(child, pc)
    return [*inner, *scope.variables]


def read_variable(variable: Variable, frame: Frame | None, read: Reader) -> Value:
    """One variable's value in `frame` (None: a global, which needs no frame)."""
    type_name = variable.type.name
    if variable.constant is not None:
        raw = (variable.constant & ((1 << 64) - 1)).to_bytes(8, "little")[:variable.type.size or 8]
        return Value(variable.name, variable.kind, type_name, format_value(raw, variable.type, read), raw, "constant")
    pc = frame.lookup_pc if frame is not None else 0
    expression = variable.location.at(pc) if variable.location is not None else None
    if expression is None:
        return Value(variable.name, variable.kind, type_name, "<optimised out here>")
    context = Context(frame.registers if frame is not None else {}, read,
                      frame.cfa if frame is not None else None, frame.frame_base if frame is not None else None)
    try:
        pieces = evaluate(expression, context)
        raw = read_bytes(pieces, variable.type.size or 8, context)
    except Unavailable as why:
        return Value(variable.name, variable.kind, type_name, f"<unavailable: {why}>")
    except WorkbenchError as error:
        return Value(variable.name, variable.kind, type_name, f"<unreadable: {error}>")
    return Value(variable.name, variable.kind, type_name, format_value(raw, variable.type, read), raw,
                 pieces[0][0].describe())
