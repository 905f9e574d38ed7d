"""Figures of one application built with different selections of kernel components (lesson 08).

`measure()` builds a selection, boots it and says what it costs: the image's size on disk and in
memory, its functions and instructions, the ways into the kernel from outside it (the boot
entry, the interrupt gates the CPU would use, the system call entries), the requests the
application serves, and the time from starting QEMU to the application's first output.
`dropped_sections()` reads what the linker left out; `bar_charts()` draws the figures as SVG,
so a notebook shows them on GitHub too.
"""

from __future__ import annotations

import bisect
import html
import re
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from workbench.debug.disassembly import instructions
from workbench.guest.machine import Machine
from workbench.kernel.build import link_log
from workbench.kernel.image import Image
from workbench.kernel.workspace import Workspace

BANNER = "app: "  # every application's first line (docs/guest-contract.md)
GATE_SIZE = 16  # bytes of a 64-bit IDT gate (SDM Vol. 3A 6.14.1)
GATE_PRESENT = 0x80
KEPT_KINDS = (".text", ".rodata", ".data", ".bss")  # sections that would be in the image; not .comment
SYSCALL_ENTRIES = ("syscall_entry", "syscall_entry_switching_cr3")  # the targets MSR_LSTAR may hold
# GNU ld: "ld: removing unused section '.text.memcmp' in file 'build/gcc/kernel/string.c.o'"
# lld:    "removing unused section build/clang/kernel/string.c.o:(.text.memcmp)"
_GNU_DROPPED = re.compile(r"removing unused section '(?P<section>[^']+)' in file '(?P<file>[^']+)'")
_LLD_DROPPED = re.compile(r"removing unused section (?P<file>\S+?):\((?P<section>[^)]+)\)")


@dataclass(frozen=True)
class Figures:
    """What one selection of components costs, built and booted."""

    name: str
    components: tuple[str, ...]  # linked: the selection and what it needs
    image_bytes: int  # the ELF file
    loaded_bytes: int  # in guest memory, .bss included
    code_bytes: int  # the functions' own bytes (sections are padded to whole pages)
    functions: int
    instructions: int  # in its functions, as objdump decodes them
    entry_points: int  # the boot entry, present interrupt gates into the image, system call entries
    requests: int  # request types the application serves on its console (0: it only says hello)
    boot_seconds: float  # QEMU started to the application's first output, the median of the boots

    @property
    def image_kib(self) -> float:
        return self.image_bytes / 1024


def interrupt_gates(machine: Machine, image: Image) -> int:
    """Gates of the IDT the CPU would use now (IDTR) that are present and lead into the image."""
    idt = machine.registers().idt
    count = min(idt.limit + 1, 256 * GATE_SIZE) // GATE_SIZE
    text = image.section(".text")
    try:
        table = machine.read_virtual(idt.base, count * GATE_SIZE)
    except Exception:  # IDTR points at nothing mapped: no gate the CPU could use
        return 0
    found = 0
    for index in range(count):
        gate = table[index * GATE_SIZE:(index + 1) * GATE_SIZE]
        target = (int.from_bytes(gate[0:2], "little") | int.from_bytes(gate[6:8], "little") << 16
                  | int.from_bytes(gate[8:12], "little") << 32)
        found += bool(gate[5] & GATE_PRESENT) and text.vaddr <= target < text.end
    return found


def stopped_at(image: Image, function: str, *, name: str = "stopped", timeout: float = 30.0) -> Machine:
    """A machine of `image` stopped (by a gdbstub breakpoint) at the first instruction of `function`.

    For a guest that would not wait: an application without console input says hello and
    exits at once. The caller closes the machine.
    """
    machine = Machine(image, name=name, gdb=True).start(paused=True)
    try:
        machine.gdb.set_breakpoint(image.symbol(function).vaddr)
        machine.gdb.resume()
        machine.gdb.wait_for_stop(timeout)
    except BaseException:
        machine.close()
        raise
    return machine


def measure(workspace: Workspace, components: Iterable[str] | None, *, name: str = "", boots: int = 3,
            timeout: float = 30.0) -> Figures:
    """Build `workspace` with `components` (None: the application's own), boot it `boots` times."""
    image = workspace.build(components=components)
    label = name or "+".join(components or ()) or "nothing"
    seconds, requests = [], 0
    for _ in range(boots):
        started = time.monotonic()
        with Machine(image, name=f"specialise-{label}") as machine:
            machine.wait_for(BANNER, timeout)
            seconds.append(time.monotonic() - started)
            if "console_read_line" in image.symbols:  # it serves requests: which?
                machine.wait_for("> ", timeout)
                requests = len(machine.request("help")["commands"].split(","))
    machine = stopped_at(image, "app_main", name=f"specialise-{label}", timeout=timeout)
    try:
        gates = interrupt_gates(machine, image)  # as the kernel hands over to the application
    finally:
        machine.close()
    entries = 1 + gates + sum(entry in image.symbols for entry in SYSCALL_ENTRIES)
    functions = [symbol for symbol in image.symbols.values() if symbol.kind == "function"]
    return Figures(label, image.components or (), image.size, image.loaded_size,
                   sum(function.size for function in functions), len(functions), count_instructions(image),
                   entries, requests, statistics.median(seconds))


def count_instructions(image: Image) -> int:
    """Instructions inside the image's functions (not the padding between them), as objdump decodes them."""
    starts = sorted(instructions(image.path))
    total = 0
    for function in (symbol for symbol in image.symbols.values() if symbol.kind == "function"):
        total += bisect.bisect_left(starts, function.vaddr + function.size) - bisect.bisect_left(starts, function.vaddr)
    return total


def memory_in_use(machine: Machine, image: Image) -> int:
    """Bytes of RAM the unikernel uses: from its image's first byte to the last frame its frame
    allocator handed out (page tables, heap), or to the image's end without page tables. The
    physical addresses come from the guest's own page tables."""
    snapshot = machine.snapshot()
    start = snapshot.translate(image.symbol("__text_start").vaddr)
    end = snapshot.translate(image.symbol("__kernel_end").vaddr - 1) + 1
    if "next_frame" in image.symbols:
        end = max(end, machine.read_symbol("next_frame"))
    return end - start


def dropped_sections(image: Image) -> list[tuple[str, str]]:
    """(object file, section) for every section the image's link dropped, from its link log.

    Object files are named by their source (`kernel/timer.c`), as in the Makefile's build tree.
    """
    build = image.path.parent
    dropped = []
    for line in link_log(image).splitlines():
        match = _GNU_DROPPED.search(line) or _LLD_DROPPED.search(line)
        if match is None:
            continue
        parts = Path(match["file"]).parts  # absolute, or relative to the source directory
        source = parts[parts.index(build.name) + 1:] if build.name in parts else parts
        empty = match["section"] == ".text" and match["file"].endswith(".c.o")  # lld names C's empty .text too
        if match["section"].startswith(KEPT_KINDS) and not empty:
            dropped.append(("/".join(source).removesuffix(".o"), match["section"]))
    return dropped


@dataclass(frozen=True)
class BarChart:
    """Horizontal bars, one per row, as SVG: rendered the same by JupyterLab, nbconvert and GitHub."""

    title: str
    labels: tuple[str, ...]
    values: tuple[float, ...]
    unit: str = ""
    decimals: int = 0
    width: int = 560

    def svg(self) -> str:
        label_width, bar_height, gap, top = 170, 16, 6, 26
        plot = self.width - label_width - 70
        largest = max(self.values, default=0) or 1
        height = top + len(self.labels) * (bar_height + gap) + 4
        parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{self.width}' height='{height}' "
                 "font-family='sans-serif' font-size='12'>",
                 f"<text x='0' y='16' font-weight='bold'>{html.escape(self.title)}</text>"]
        for row, (label, value) in enumerate(zip(self.labels, self.values, strict=True)):
            y = top + row * (bar_height + gap)
            length = max(1.0, plot * value / largest)
            parts += [f"<text x='{label_width - 6}' y='{y + 12}' text-anchor='end'>{html.escape(label)}</text>",
                      f"<rect x='{label_width}' y='{y}' width='{length:.1f}' height='{bar_height}' fill='#4c78a8'/>",
                      f"<text x='{label_width + length + 4:.1f}' y='{y + 12}'>"
                      f"{value:,.{self.decimals}f}{html.escape(self.unit)}</text>"]
        return "".join(parts) + "</svg>"

    def _repr_svg_(self) -> str:
        return self.svg()

    def __repr__(self) -> str:
        return f"BarChart({self.title!r}, {len(self.labels)} bars)"


@dataclass(frozen=True)
class Charts:
    """Several bar charts side by side, as HTML holding their SVG."""

    charts: tuple[BarChart, ...]

    def _repr_html_(self) -> str:
        cells = "".join(f"<div style='display:inline-block;vertical-align:top;margin:0 12px 12px 0'>{chart.svg()}</div>"
                        for chart in self.charts)
        return f"<div>{cells}</div>"

    def __repr__(self) -> str:
        return "Charts(" + ", ".join(chart.title for chart in self.charts) + ")"


def bar_charts(rows: Sequence[Figures]) -> Charts:
    """The figures of `rows` as charts: image size, functions, instructions, entry points, boot time."""
    labels = tuple(row.name for row in rows)
    return Charts((
        BarChart("image size", labels, tuple(row.image_kib for row in rows), " KiB", 1),
        BarChart("functions", labels, tuple(float(row.functions) for row in rows)),
        BarChart("instructions", labels, tuple(float(row.instructions) for row in rows)),
        BarChart("entry points from outside", labels, tuple(float(row.entry_points) for row in rows)),
        BarChart("boot to first output", labels, tuple(row.boot_seconds * 1000 for row in rows), " ms", 1),
    ))


def table(rows: Sequence[Figures]) -> str:
    """The figures as a text table, one selection per line: bytes of the image file, of memory and of
    code; functions, instructions, entry points from outside, requests served; boot time."""
    lines = [f"{'selection':<24} {'image':>8} {'memory':>8} {'code':>7} {'functions':>9} {'instr.':>7} "
             f"{'entries':>7} {'requests':>8} {'boot':>8}"]
    for row in rows:
        lines.append(f"{row.name:<24} {row.image_bytes:>8,} {row.loaded_bytes:>8,} {row.code_bytes:>7,} "
                     f"{row.functions:>9} {row.instructions:>7} {row.entry_points:>7} {row.requests:>8} "
                     f"{row.boot_seconds * 1000:>6.1f}ms")
    return "\n".join(lines)
