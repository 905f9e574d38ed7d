"""What the debugger hands back: its breakpoints and watchpoints, and each stop of the guest.

Plain frozen values (workbench/debug/debugger.py makes them), printable for a student and with a
deterministic repr for notebooks: a stop names its function and source line, never an
address, since addresses depend on the compiler.
"""

from __future__ import annotations

from dataclasses import dataclass

from workbench.debug.debuginfo import TypeInfo
from workbench.errors import WorkbenchError


class DebuggerError(WorkbenchError):
    """The debugger cannot do what was asked (with the reason, for a student)."""


@dataclass(frozen=True)
class Breakpoint:
    """Where the guest stops: one source place, at one or more code vaddrs."""

    number: int
    spec: str  # as given: "paging_init", "kernel/paging.c:97", "0xffffffff80101c70"
    vaddrs: tuple[int, ...]  # linked vaddrs (an inlined line has one per copy)
    path: str = ""
    line: int = 0

    def __str__(self) -> str:
        where = f" at {self.path}:{self.line}" if self.path else ""
        return f"breakpoint {self.number}: {self.spec}{where}"


@dataclass(frozen=True)
class Watchpoint:
    """Memory the guest is stopped at for writing, reading or both."""

    number: int
    spec: str
    vaddr: int
    length: int
    kind: str  # write, read, access
    type: TypeInfo | None = None  # the watched variable's type, if it is one

    def __str__(self) -> str:
        return f"watchpoint {self.number}: {self.kind}s of {self.spec} ({self.length} bytes at {self.vaddr:#x})"


@dataclass(frozen=True)
class Stop:
    """Why and where the guest stopped."""

    # entry, breakpoint, watchpoint, step, finish, reached (run_to), interrupted, fault, triple fault,
    # exited, position (a replay was moved there)
    reason: str
    pc: int = 0  # the instruction pointer as the CPU has it (a paddr in boot code before paging)
    vaddr: int = 0  # the same instruction's linked vaddr
    function: str = ""
    path: str = ""
    line: int = 0
    mode: str = ""  # the CPU's mode, as cpu.CpuMode names it
    detail: str = ""  # what a watchpoint saw, what a function returned, how the guest ended
    number: int = 0  # the breakpoint's or watchpoint's number
    old: bytes = b""  # a watchpoint's bytes before the access
    new: bytes = b""  # ... and after
    cpu: int | None = None  # the CPU that stopped, on a machine of several CPUs (None with one)

    @property
    def where(self) -> str:
        place = f" ({self.path}:{self.line})" if self.path else ""
        return f"{self.function or hex(self.vaddr)}{place}"

    def __str__(self) -> str:
        what = {"breakpoint": f"breakpoint {self.number}", "watchpoint": f"watchpoint {self.number}"}.get(
            self.reason, self.reason)
        text = f"{what}: {self.where}" if self.reason != "exited" else "exited"
        return text + self._on_cpu + (f"; {self.detail}" if self.detail else "")

    @property
    def _on_cpu(self) -> str:
        return f" on cpu {self.cpu}" if self.cpu is not None else ""

    def __repr__(self) -> str:  # deterministic for notebooks: no addresses, which depend on the compiler
        return f"<Stop {self.reason} in {self.function or '?'} at {self.path}:{self.line}{self._on_cpu}>"
