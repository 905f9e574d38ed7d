"""What happened when in a recording, and the way back from a crash to its cause.

    timeline = index(replay)             # one pass: samples, checkpoints, marks
    timeline.marks                       # console lines, faults, page-table changes, the end
    mark_breakpoints(replay, timeline)   # where the debugger's breakpoints are hit
    story = rewind_fault(replay)         # the fault, the entry it tripped on, its last write
    replay.go_to(story.write.icount)     # the guest about to execute that write

`index` replays the recording once from the start, stopping every `step` instructions to
note the console's length, CR3 and a fingerprint of the page tables, and leaving checkpoints
behind (workbench/timetravel/replay.py) so that every later jump is quick. A console line or a change of
the page tables is marked at the first sample that shows it: within `step` instructions of
where it happened. Going there shows it exactly, since the replay prints what it re-executes.

`last_write` is exact: it replays with QEMU watchpoints on every vaddr through which the
kernel reaches the memory (the image's vaddr, the direct map, the paddr itself while paging
is off or identity-mapped) and keeps each hit's instruction count. QEMU stops after the
writing instruction, so the count before it (`Write.icount`) is where the guest is about to
write.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from dataclasses import dataclass, field

from workbench.errors import WorkbenchError
from workbench.guest.machine import MachineState
from workbench.models import paging
from workbench.models.faults import FAULT_LINE
from workbench.timetravel.replay import CHECKPOINT_SECONDS, Replay, ReplayError

DEFAULT_STEP = 2000  # instructions between samples
PAGE_SIZE = 4096
MAX_SAMPLES = 5000
MAX_WRITES = 64  # writes to one place that a rewind follows
DIRECT_MAP_SYMBOL = "__direct_map_base"  # kernel.ld.S: DIRECT_MAP_BASE as an absolute symbol


@dataclass(frozen=True)
class Sample:
    """The replay at one instruction count, as the index saw it."""

    icount: int
    console_length: int
    cr3: int
    tables: str  # a fingerprint of every page-table page reachable from CR3 ("" while paging is off)


@dataclass(frozen=True)
class Mark:
    """Something that happened, at (or, for samples, just before) an instruction count."""

    icount: int
    kind: str  # console, fault, page tables, breakpoint, triple fault, exit, end
    label: str

    def to_json(self) -> dict[str, object]:
        return {"icount": self.icount, "kind": self.kind, "label": self.label}


@dataclass(frozen=True)
class Timeline:
    """A recording along its instruction count: samples and marks, start to end."""

    end: int
    samples: tuple[Sample, ...]
    marks: tuple[Mark, ...]
    console: str  # the whole console of the recording
    how_it_ended: str  # end, exit, triple fault

    def of_kind(self, kind: str) -> tuple[Mark, ...]:
        return tuple(m for m in self.marks if m.kind == kind)

    def with_marks(self, extra: list[Mark]) -> Timeline:
        marks = sorted([*(m for m in self.marks if m.kind != "breakpoint"), *extra], key=lambda m: (m.icount, m.kind))
        return Timeline(self.end, self.samples, tuple(marks), self.console, self.how_it_ended)

    def __repr__(self) -> str:  # deterministic: counts of marks, not instruction counts (compiler-dependent)
        kinds = sorted({m.kind for m in self.marks})
        counted = ", ".join(f"{len(self.of_kind(k))} {k}" for k in kinds)
        return f"<Timeline ending in {self.how_it_ended}: {counted}>"


def index(replay: Replay, *, step: int = DEFAULT_STEP, timeout: float = 120.0) -> Timeline:
    """Replay the whole recording once, sampling every `step` instructions and leaving
    checkpoints about every CHECKPOINT_SECONDS of replay time."""
    if step < 100:
        raise ReplayError(f"samples every {step} instructions would take too long; use 100 or more")
    deadline = time.monotonic() + timeout
    replay.go_to(0)
    samples = [_sample(replay)]
    last_checkpoint = time.monotonic()
    while len(samples) < MAX_SAMPLES:
        if time.monotonic() > deadline:
            raise ReplayError(f"indexing the recording took more than {timeout:g} s")
        here = samples[-1].icount
        target = here + step if replay.end is None else min(here + step, replay.end)
        reached = replay.run_until(target, max(deadline - time.monotonic(), 1.0))
        if replay.machine.state.terminal:
            break
        if time.monotonic() - last_checkpoint >= CHECKPOINT_SECONDS and replay._checkpoint() is not None:
            last_checkpoint = time.monotonic()
        samples.append(_sample(replay))
        if reached < target or reached == replay.end:
            break
    if not replay.machine.state.terminal and replay.machine.qmp("query-status")["status"] == "paused":
        replay.run_to_end()  # the last stretch: a fault ends inside an instruction replay-break stops before
        samples.append(_sample(replay))
    end = replay.end if replay.end is not None else samples[-1].icount
    replay.end = end
    how = _how_it_ended(replay)
    if not replay.machine.state.terminal:
        replay.debugger.moved(f"instruction {end}, the end")
    return Timeline(end, tuple(samples), tuple(_marks(samples, replay.console, end, how)), replay.console, how)


def _sample(replay: Replay) -> Sample:
    machine = replay.machine
    registers = machine.registers()
    fingerprint = ""
    if registers.paging:
        try:
            snapshot = replay.snapshot()
            digest = hashlib.blake2b(digest_size=8)
            for paddr in snapshot.leaves.table_paddrs:
                digest.update(snapshot.memory.read(paddr, PAGE_SIZE))
            fingerprint = digest.hexdigest()
        except WorkbenchError:
            fingerprint = "unreadable"
    return Sample(replay.icount, len(replay.console), registers.cr3, fingerprint)


def _how_it_ended(replay: Replay) -> str:
    state = replay.machine.state
    if state is MachineState.TRIPLE_FAULT:
        return "triple fault"
    if state is MachineState.EXITED:
        return "exit"
    return "end"


def _marks(samples: list[Sample], console: str, end: int, how: str) -> list[Mark]:
    marks: list[Mark] = []
    position = 0
    for line in console.splitlines(keepends=True):
        position += len(line)
        if not line.endswith("\n"):
            break
        at = next((s.icount for s in samples if s.console_length >= position), end)
        text = line.rstrip("\n")
        marks.append(Mark(at, "fault" if FAULT_LINE.match(text) else "console", text))
    for before, after in itertools.pairwise(samples):
        if after.tables != before.tables:
            if not before.tables:
                label = "paging on: the first page tables"
            elif after.cr3 != before.cr3:
                label = "CR3 switched to other page tables"
            else:
                label = "page tables changed"
            marks.append(Mark(after.icount, "page tables", label))
    marks.append(Mark(end, how, {"triple fault": "the CPU triple-faulted", "exit": "the guest exited"}.get(
        how, "the end of the recording")))
    return sorted(marks, key=lambda m: (m.icount, m.kind))


def mark_breakpoints(replay: Replay, timeline: Timeline, *, limit: int = 200, timeout: float = 60.0) -> Timeline:
    """The timeline with a mark wherever one of the debugger's breakpoints is hit (at most
    `limit` hits), from a replay of the whole recording."""
    marks: list[Mark] = []
    if replay.debugger.breakpoints:
        deadline = time.monotonic() + timeout
        replay.go_to(0)
        debugger = replay.debugger
        replay.machine.qmp("replay-break", icount=timeline.end)
        while len(marks) < limit and time.monotonic() < deadline:
            stop = debugger.cont(max(deadline - time.monotonic(), 1.0))
            icount = replay.icount
            if stop.reason != "breakpoint" or icount >= timeline.end:
                break
            marks.append(Mark(icount, "breakpoint", f"breakpoint {stop.number}: {stop.where}"))
    return timeline.with_marks(marks)


# Rewinding from a fault.


@dataclass(frozen=True)
class Write:
    """One write to watched memory during a replay."""

    icount: int  # the count just before the writing instruction: go_to(icount) shows it about to run
    vaddr: int  # the vaddr it wrote through
    old: bytes
    new: bytes
    function: str
    path: str
    line: int
    stack: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        return f"{self.function} ({self.path}:{self.line})"

    def __str__(self) -> str:
        old, new = int.from_bytes(self.old, "little"), int.from_bytes(self.new, "little")
        return f"{self.where} wrote {new:#x} over {old:#x}"


def aliases(replay: Replay, paddr: int) -> tuple[int, ...]:
    """The vaddrs through which the kernel reaches `paddr`: the direct map, the image's own
    vaddr for the image's memory, and the paddr itself (paging off, or the boot identity map)."""
    image = replay.recording.image
    found = [paddr]
    if DIRECT_MAP_SYMBOL in image.symbols:
        found.append(image.symbols[DIRECT_MAP_SYMBOL].vaddr + paddr)
    linked = image.vaddr_of_paddr(paddr)
    if linked is not None:
        found.append(linked)
    return tuple(dict.fromkeys(found))


def writes(replay: Replay, paddr: int, length: int = 8, *, before: int | None = None,
           timeout: float = 60.0) -> list[Write]:
    """Every write to `length` bytes at `paddr` from the start of the recording until the
    instruction count `before` (default: the end), each placed at its writing instruction."""
    end = before if before is not None else replay.end
    deadline = time.monotonic() + timeout
    replay.go_to(0)
    debugger = replay.debugger
    memory = replay.machine.memory  # after go_to: going back from the end may have started a new QEMU
    watches = [debugger.watch(vaddr, "write", length) for vaddr in aliases(replay, paddr)]
    hits: list[tuple[int, int, bytes, bytes]] = []  # (icount after the write, vaddr, old, new)
    value = memory.read(paddr, length)
    try:
        if end is not None:
            replay.machine.qmp("replay-break", icount=end)
        while time.monotonic() < deadline and len(hits) < MAX_WRITES:
            stop = debugger.cont(max(deadline - time.monotonic(), 1.0))
            if stop.reason != "watchpoint":
                break
            icount = replay.icount
            if end is not None and icount > end:
                break
            new = memory.read(paddr, length)
            hits.append((icount, debugger.watchpoints[stop.number].vaddr, value, new))
            value = new
    finally:
        if not replay.machine.state.terminal:
            for watch in watches:
                debugger.delete(watch)
    found = []
    for icount, vaddr, old, new in hits:  # QEMU stopped after each write: go to the instruction itself
        replay.go_to(icount - 1)
        there = replay.debugger.stop
        stack = tuple(str(frame) for frame in replay.debugger.backtrace())
        assert there is not None
        found.append(Write(icount - 1, vaddr, old, new, there.function, there.path, there.line, stack))
    return found


def last_write(replay: Replay, paddr: int, length: int = 8, *, before: int | None = None) -> Write | None:
    """The last write to `length` bytes at `paddr` before the instruction count `before`."""
    found = writes(replay, paddr, length, before=before)
    return found[-1] if found else None


@dataclass(frozen=True)
class FaultStory:
    """A crash at the end of a recording, traced back to the write that caused it."""

    kind: str  # triple fault, fault
    icount: int
    rip: int
    function: str
    path: str
    line: int
    vaddr: int  # the address whose translation failed
    walk: paging.Walk | None = field(repr=False, default=None)
    entry_paddr: int | None = None  # the page-table entry the walk stopped at
    write: Write | None = None  # the last write to that entry

    def __str__(self) -> str:
        lines = [f"{self.kind} at instruction {self.icount}, in {self.function} ({self.path}:{self.line})"]
        if self.walk is not None and self.walk.fault is not None:
            lines.append(f"translating {self.vaddr:#x} failed: {self.walk.fault.message}")
        if self.write is not None:
            lines.append(f"the last write to that entry: {self.write} at instruction {self.write.icount}")
        elif self.entry_paddr is not None:
            lines.append("nothing wrote that entry after it was zeroed: it was never filled in")
        return "\n".join(lines)


def rewind_fault(replay: Replay) -> FaultStory:
    """Go to the end of a recording that ended in a fault or a triple fault, find the vaddr
    whose translation failed (CR2, else RIP), the page-table entry that stopped the walk, and
    the last write to that entry."""
    end = replay.run_to_end()
    machine = replay.machine
    if machine.state not in (MachineState.TRIPLE_FAULT, MachineState.PAUSED):
        raise ReplayError(f"the recording did not end in a fault the replay can stay at (the machine is "
                          f"{machine.state.value})")
    kind = "triple fault" if machine.state is MachineState.TRIPLE_FAULT else "fault"
    registers = machine.registers()
    stop = replay.debugger.moved(f"the {kind}")
    snapshot = replay.snapshot()
    walk = None
    for vaddr in (registers.cr2, registers.rip):
        candidate = snapshot.walk(vaddr)
        if candidate.fault is not None:
            walk = candidate
            break
    entry_paddr = None
    if walk is not None and walk.fault is not None and walk.fault.table_paddr is not None \
            and walk.fault.index is not None:
        entry_paddr = walk.fault.table_paddr + 8 * walk.fault.index
    write = last_write(replay, entry_paddr, 8, before=end) if entry_paddr is not None else None
    replay.go_to(end)
    return FaultStory(kind, end, registers.rip, stop.function, stop.path, stop.line,
                      walk.vaddr if walk is not None else registers.rip, walk, entry_paddr, write)
