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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .debuginfo import CfaRule, DebugInfo, Scope, Variable
from .dwarf_expr import RIP, RSP, Context, Unavailable, evaluate, format_value, read_bytes
from .errors import WorkbenchError
from .image import Image

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

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}" if self.path else f"{self.pc:#x}"

    def __str__(self) -> str:
        inlined = " (inlined)" if self.inlined else ""
        return f"#{self.level} {self.function}{inlined} at {self.where}"


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
    physical_level = 0
    while len(frames) < MAX_FRAMES:
        pc = linked_vaddr(image, known[RIP])
        lookup = pc if physical_level == 0 else pc - 1
        chain = [s for s in info.scopes_at(lookup) if s.kind in ("function", "inlined")]
        rule = info.cfa_rule(lookup)
        cfa = known[rule.cfa_register] + rule.cfa_offset if rule is not None and rule.cfa_register in known else None
        row = info.location(lookup)
        path, line = (row.path, row.line) if row is not None else ("", 0)
        frame_base = chain[0].frame_base if chain else None
        if not chain:  # assembly: name the symbol, not symbol+offset
            frames.append(Frame(len(frames), pc, lookup, image.symbolize(pc).split("+")[0], path, line, cfa=cfa,
                                registers=known))
        for scope in reversed(chain):
            frames.append(Frame(len(frames), pc, lookup, scope.name or "?", path, line, scope.kind == "inlined", cfa,
                                known, scope, frame_base))
            if scope.kind == "inlined":
                path, line = scope.call_site
        caller, why = _caller(known, rule, cfa, read, image)
        if caller is None:
            last = frames[-1]
            frames[-1] = Frame(last.level, last.pc, last.lookup_pc, last.function, last.path, last.line,
                               last.inlined, last.cfa, last.registers, last.scope, last.frame_base, why)
            return frames
        known = caller
        physical_level += 1
    return frames


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


def linked_vaddr(image: Image, pc: int) -> int:
    """Where the instruction at `pc` is linked: boot code runs at its load address before
    paging (and, in boot.S, just after it), which the DWARF does not know."""
    if image.section_at(pc) is not None:
        return pc
    linked = image.vaddr_of_paddr(pc)
    return linked if linked is not None else pc


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
