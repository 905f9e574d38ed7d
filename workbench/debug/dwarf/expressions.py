"""DWARF location expressions: where a variable is at one pc, and what value it has there.

Pure: the caller gives the registers it knows (by DWARF number), the frame's CFA and frame
base, and a memory reader. An optimising compiler moves a variable between registers, the
stack and nowhere at all as the code runs, so a variable's location is a list of expressions
by code range (workbench/debug/debuginfo.py picks the one for the pc); this module runs it.

Operations and register numbers: DWARF 5, section 2.5, and the System V x86-64 psABI, figure
3.36 ("DWARF Register Number Mapping").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from elftools.dwarf.dwarf_expr import DWARFExprOp, DWARFExprParser
from elftools.dwarf.structs import DWARFStructs

from workbench.debug.debuginfo import TypeInfo
from workbench.errors import WorkbenchError

# psABI figure 3.36: DWARF register number -> name (16 is the return address, i.e. RIP).
REGISTER_NAMES = ("rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp",
                  "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip")
DWARF_NUMBER = {name: number for number, name in enumerate(REGISTER_NAMES)}
RIP = 16
RSP = 7
U64 = (1 << 64) - 1
MAX_SHOWN_ELEMENTS = 16

_PARSER = DWARFExprParser(DWARFStructs(little_endian=True, dwarf_format=32, address_size=8))


class Unavailable(WorkbenchError):
    """The value exists in the source but not at this pc: optimised out, or in a register
    whose value in this frame is unknown."""


@dataclass(frozen=True)
class Place:
    """Where a variable's bytes are: in memory, in a register, or only as a computed value."""

    kind: str  # memory, register, value
    address: int = 0  # memory: the vaddr
    register: int = 0  # register: the DWARF number
    value: bytes = b""  # value: the bytes (little-endian)

    def describe(self) -> str:
        if self.kind == "memory":
            return f"memory at {self.address:#x}"
        if self.kind == "register":
            return f"register {REGISTER_NAMES[self.register] if self.register < len(REGISTER_NAMES) else self.register}"
        return "computed (in no register or memory)"


@dataclass(frozen=True)
class Context:
    """What an expression may ask about its frame."""

    registers: dict[int, int]  # DWARF number -> value, for the registers known in this frame
    read: Callable[[int, int], bytes]  # (vaddr, length) -> bytes
    cfa: int | None = None
    frame_base: bytes | None = None  # the function's DW_AT_frame_base expression

    def register(self, number: int) -> int:
        if number not in self.registers:
            name = REGISTER_NAMES[number] if number < len(REGISTER_NAMES) else f"register {number}"
            raise Unavailable(f"it is in {name}, whose value in this frame was not saved")
        return self.registers[number]


def evaluate(expression: bytes, context: Context) -> list[tuple[Place, int]]:
    """The pieces of a location: (place, size in bytes; 0 = the whole variable)."""
    return _Evaluation(context).run(_PARSER.parse_expr(expression))


class _Evaluation:
    """DWARF's stack machine, run once over one expression."""

    def __init__(self, context: Context) -> None:
        self.context = context
        self.stack: list[int] = []
        self.pieces: list[tuple[Place, int]] = []
        self.place: Place | None = None

    def pop(self) -> int:
        if not self.stack:
            raise Unavailable("its location expression is malformed (the stack ran empty)")
        return self.stack.pop()

    def run(self, operations: list[DWARFExprOp]) -> list[tuple[Place, int]]:
        for operation in operations:
            self.step(operation.op_name, operation.args)
        if self.pieces:
            return self.pieces
        return [(self.place if self.place is not None else Place("memory", address=self.pop()), 0)]

    def step(self, name: str, args: list[Any]) -> None:
        stack = self.stack
        if name in _BINARY:
            right, left = self.pop(), self.pop()
            stack.append(_BINARY[name](left, right) & U64)
        elif name in _UNARY:
            stack.append(_UNARY[name](self.pop()) & U64)
        elif name in _STACK:
            _STACK[name](stack, args)
        elif name.startswith("DW_OP_lit"):
            stack.append(int(name[len("DW_OP_lit"):]))
        elif name.startswith("DW_OP_const") or name == "DW_OP_addr":
            stack.append(args[0] & U64)
        elif name.startswith(("DW_OP_reg", "DW_OP_breg")):
            self.register_operation(name, args)
        else:
            self.special(name, args)

    def register_operation(self, name: str, args: list[Any]) -> None:
        if name == "DW_OP_regx":
            self.place = Place("register", register=args[0])
        elif name == "DW_OP_bregx":
            self.stack.append((self.context.register(args[0]) + args[1]) & U64)
        elif name.startswith("DW_OP_reg"):
            self.place = Place("register", register=int(name[len("DW_OP_reg"):]))
        else:
            self.stack.append((self.context.register(int(name[len("DW_OP_breg"):])) + args[0]) & U64)

    def special(self, name: str, args: list[Any]) -> None:
        context = self.context
        if name == "DW_OP_fbreg":
            self.stack.append((_frame_base(context) + args[0]) & U64)
        elif name == "DW_OP_call_frame_cfa":
            if context.cfa is None:
                raise Unavailable("it is relative to this frame's CFA, which is unknown here")
            self.stack.append(context.cfa)
        elif name in ("DW_OP_deref", "DW_OP_deref_size"):
            size = args[0] if name == "DW_OP_deref_size" else 8
            self.stack.append(int.from_bytes(context.read(self.pop(), size), "little"))
        elif name == "DW_OP_stack_value":
            self.place = Place("value", value=self.pop().to_bytes(8, "little"))
        elif name == "DW_OP_implicit_value":
            self.place = Place("value", value=bytes(args[0]))
        elif name == "DW_OP_piece":
            self.pieces.append((self.place if self.place is not None else Place("memory", address=self.pop()),
                                args[0]))
            self.place = None
        elif name in ("DW_OP_entry_value", "DW_OP_GNU_entry_value"):
            raise Unavailable("only its value on entry to the function is described, and that register has "
                              "been reused since")
        elif name != "DW_OP_nop":
            raise Unavailable(f"its location uses {name}, which the workbench does not evaluate")


def _frame_base(context: Context) -> int:
    if context.frame_base is None:
        raise Unavailable("it is relative to a frame base that the function does not describe")
    pieces = evaluate(context.frame_base, Context(context.registers, context.read, context.cfa))
    place = pieces[0][0]
    if place.kind == "memory":
        return place.address
    if place.kind == "register":
        return context.register(place.register)
    return int.from_bytes(place.value[:8], "little")


_BINARY: dict[str, Callable[[int, int], int]] = {
    "DW_OP_plus": lambda a, b: a + b, "DW_OP_minus": lambda a, b: a - b, "DW_OP_mul": lambda a, b: a * b,
    "DW_OP_and": lambda a, b: a & b, "DW_OP_or": lambda a, b: a | b, "DW_OP_xor": lambda a, b: a ^ b,
    "DW_OP_shl": lambda a, b: a << (b & 63), "DW_OP_shr": lambda a, b: a >> (b & 63),
    "DW_OP_shra": lambda a, b: (a - (1 << 64) if a >> 63 else a) >> (b & 63),
    "DW_OP_div": lambda a, b: a // b if b else 0, "DW_OP_mod": lambda a, b: a % b if b else 0,
    "DW_OP_eq": lambda a, b: int(a == b), "DW_OP_ne": lambda a, b: int(a != b),
    "DW_OP_lt": lambda a, b: int(a < b), "DW_OP_gt": lambda a, b: int(a > b),
    "DW_OP_le": lambda a, b: int(a <= b), "DW_OP_ge": lambda a, b: int(a >= b),
}


_UNARY: dict[str, Callable[[int], int]] = {
    "DW_OP_neg": lambda a: -a, "DW_OP_not": lambda a: ~a,
    "DW_OP_abs": lambda a: a if a < 1 << 63 else -a,
}


def _drop(stack: list[int]) -> None:
    stack.pop()


def _swap(stack: list[int], args: list[Any]) -> None:
    stack[-1], stack[-2] = stack[-2], stack[-1]


def _rotate(stack: list[int], args: list[Any]) -> None:
    stack[-1], stack[-2], stack[-3] = stack[-2], stack[-3], stack[-1]


_STACK: dict[str, Callable[[list[int], list[Any]], None]] = {
    "DW_OP_dup": lambda stack, args: stack.append(stack[-1]),
    "DW_OP_drop": lambda stack, args: _drop(stack),
    "DW_OP_over": lambda stack, args: stack.append(stack[-2]),
    "DW_OP_pick": lambda stack, args: stack.append(stack[-1 - args[0]]),
    "DW_OP_plus_uconst": lambda stack, args: stack.append((stack.pop() + args[0]) & U64),
    "DW_OP_swap": _swap,
    "DW_OP_rot": _rotate,
}


def read_bytes(pieces: list[tuple[Place, int]], size: int, context: Context) -> bytes:
    """The variable's `size` bytes, gathered from its pieces."""
    out = b""
    for place, piece_size in pieces:
        length = piece_size or size
        if place.kind == "memory":
            out += context.read(place.address, length)
        elif place.kind == "register":
            out += (context.register(place.register) & U64).to_bytes(8, "little")[:length].ljust(length, b"\0")
        else:
            out += place.value[:length].ljust(length, b"\0")
    return out[:size]


# Printing a value as its C type says.


def format_value(data: bytes, kind: TypeInfo, read: Callable[[int, int], bytes] | None = None, depth: int = 0) -> str:
    """`data` as C would show it: decimal integers (64-bit unsigned ones, mostly addresses and
    entries here, in hex), hex pointers, 'c' chars, {...} structs, [...] arrays (the first
    MAX_SHOWN_ELEMENTS); a `char *` also shows its string when `read` can fetch it."""
    if kind.kind in ("base", "enum"):
        return _format_integer(data, kind)
    if kind.kind == "pointer":
        return _format_pointer(int.from_bytes(data, "little"), kind, read)
    if kind.kind in ("struct", "union") and depth < 3:
        fields = [f"{name}={format_value(data[offset:offset + member.size], member, read, depth + 1)}"
                  for name, offset, member in kind.members if offset + member.size <= len(data)]
        return "{" + ", ".join(fields) + "}"
    if kind.kind == "array" and kind.target is not None and kind.target.size and depth < 3:
        element = kind.target
        shown = min(kind.count, MAX_SHOWN_ELEMENTS)
        items = [format_value(data[i * element.size:(i + 1) * element.size], element, read, depth + 1)
                 for i in range(shown) if (i + 1) * element.size <= len(data)]
        more = f", ... {kind.count - shown} more" if kind.count > shown else ""
        return "[" + ", ".join(items) + more + "]"
    return "0x" + data[::-1].hex() if data else "?"


def _format_integer(data: bytes, kind: TypeInfo) -> str:
    value = int.from_bytes(data, "little")
    if kind.kind == "enum":
        names = [n for n, v in kind.enumerators if v == value]
        return names[0] if names else str(value)
    if kind.encoding == "boolean":
        return "true" if value else "false"
    if kind.encoding in ("signed", "signed_char") and data and value >> (8 * len(data) - 1):
        value -= 1 << (8 * len(data))
    if kind.encoding in ("signed_char", "unsigned_char") and len(data) == 1:
        return f"{value} {chr(value)!r}" if 32 <= value < 127 else str(value)
    if kind.encoding == "unsigned" and len(data) == 8:
        return f"{value:#x}"  # 64-bit unsigned: addresses, entries, masks
    return str(value)


def _format_pointer(value: int, kind: TypeInfo, read: Callable[[int, int], bytes] | None) -> str:
    text = f"{value:#x}"
    target = kind.target
    if (read is not None and value and target is not None and target.kind == "base"
            and target.encoding in ("signed_char", "unsigned_char")):
        try:
            raw = read(value, 64).split(b"\0", 1)[0]
            text += f" {raw.decode(errors='replace')!r}"
        except WorkbenchError:
            pass
    return text
