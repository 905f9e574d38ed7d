"""The DWARF of the image as plain values: line rows, types, variables, scopes, functions.

Made by workbench/debug/debuginfo.py (via dwarf_dies.py) when the debug file is read, then only
read: the debugger, the unwinder and the views work on these, never on pyelftools objects.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass(frozen=True)
class LineRow:
    """One row of the line table: the code at `vaddr` comes from `path:line`."""

    vaddr: int
    path: str
    line: int
    is_stmt: bool  # a place to stop: the start of a statement


@dataclass(frozen=True)
class TypeInfo:
    """A C type, as much as printing a value needs."""

    name: str  # as C spells it: `uint64_t`, `const char *`, `struct interrupt_frame`
    size: int  # bytes (0 when unknown, e.g. void)
    kind: str  # base, pointer, struct, union, array, enum, function, void
    encoding: str = ""  # for base types: signed, unsigned, boolean, signed_char, unsigned_char, float
    target: TypeInfo | None = None  # what a pointer points to, an array's element
    count: int = 0  # array elements
    members: tuple[tuple[str, int, TypeInfo], ...] = ()  # struct/union: (name, offset, type)
    enumerators: tuple[tuple[str, int], ...] = ()


VOID = TypeInfo("void", 0, "void")


@dataclass(frozen=True)
class Location:
    """Where a variable lives: one DWARF expression, or a list of them by code range."""

    expression: bytes | None = None  # valid wherever the variable is in scope
    ranges: tuple[tuple[int, int, bytes], ...] = ()  # (low, high, expression): valid where pc is in [low, high)

    def at(self, pc: int) -> bytes | None:
        """The expression that holds at `pc`, or None where the compiler kept the value nowhere."""
        if self.expression is not None:
            return self.expression
        for low, high, expression in self.ranges:
            if low <= pc < high:
                return expression
        return None


@dataclass(frozen=True)
class Variable:
    """A parameter, a local or a global variable."""

    name: str
    type: TypeInfo
    kind: str  # parameter, local, global
    location: Location | None  # None: optimised away entirely
    declared: tuple[str, int] = ("", 0)  # (path, line)
    constant: int | None = None  # DW_AT_const_value: a value known at compile time

    def __repr__(self) -> str:
        return f"<Variable {self.kind} {self.type.name} {self.name}>"


@dataclass(frozen=True)
class Scope:
    """A function, an inlined call of one, or a block `{ ... }` inside them."""

    kind: str  # function, inlined, block
    name: str  # the function's name; empty for a block
    ranges: tuple[tuple[int, int], ...]
    variables: tuple[Variable, ...]
    children: tuple[Scope, ...]
    call_site: tuple[str, int] = ("", 0)  # inlined: the path and line it was called from
    frame_base: bytes | None = None  # functions: DW_AT_frame_base, for DW_OP_fbreg

    def covers(self, pc: int) -> bool:
        return any(low <= pc < high for low, high in self.ranges)

    @property
    def low(self) -> int:
        return min(low for low, _ in self.ranges) if self.ranges else 0

    @property
    def high(self) -> int:
        return max(high for _, high in self.ranges) if self.ranges else 0


@dataclass(frozen=True)
class Function:
    """A function the compiler emitted code for, with the scope tree of its body."""

    name: str
    scope: Scope
    declared: tuple[str, int]  # (path, line) of its definition
    returns: TypeInfo = field(default_factory=lambda: VOID)

    @property
    def parameters(self) -> tuple[Variable, ...]:
        return tuple(v for v in self.scope.variables if v.kind == "parameter")

    @property
    def low(self) -> int:
        return self.scope.low

    @property
    def high(self) -> int:
        return self.scope.high

    def __repr__(self) -> str:
        return f"<Function {self.name} {self.declared[0]}:{self.declared[1]}>"


@dataclass(frozen=True)
class CfaRule:
    """One row of call-frame information: how to find the caller at a pc."""

    cfa_register: int  # DWARF register number
    cfa_offset: int
    saved: dict[int, int] = field(default_factory=dict)  # DWARF register -> offset from the CFA where it is saved


def iter_variables(scope: Scope) -> Iterator[Variable]:
    """Every variable of a scope and of the blocks inside it (not of inlined calls)."""
    yield from scope.variables
    for child in scope.children:
        if child.kind == "block":
            yield from iter_variables(child)
