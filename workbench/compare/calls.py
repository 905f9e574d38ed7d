"""What a call into the kernel costs, measured honestly: each figure says what it is.

- `count_instructions(machine)`: instructions executed per round trip (a function call, a
  system call, a system call with CR3 switches), counted by single-stepping the guest through
  QEMU's gdbstub (see trace.py). Deterministic for a given image, under TCG as under KVM.
- `guest_benchmark(machine)`: the unikernel's own microbenchmark (the `bench` request), in TSC
  ticks per call. Under TCG the TSC follows the host's clock, so these ticks time QEMU's
  emulation of each path on this host, not any CPU's cycles; under KVM (`Machine(accel="kvm")`,
  only when asked for) they are the real CPU's TSC ticks.
- `measure_host()`: the same comparison on the CPU the Jupyter kernel runs on: a tiny C
  program, compiled on the spot in a temporary directory (removed afterwards), times a plain
  function call against a trivial Linux system call (getppid through libc's syscall()), and an
  empty loop (counter, compare, branch) whose cost both figures include. When the CPU reports
  the `hypervisor` flag (/proc/cpuinfo), this host is itself a virtual machine, and the labels
  say so: its system calls may then cost more than on bare metal.
- `PUBLISHED`: the figures of the Unikraft paper (EuroSys 2021), with their conditions.
"""

from __future__ import annotations

import html
import os
import platform
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from workbench.debug.trace import trace_call, trace_syscall
from workbench.errors import WorkbenchError
from workbench.guest.machine import Machine

KINDS = ("call", "syscall", "syscall-cr3")
KIND_TITLES = {"call": "function call", "syscall": "system call", "syscall-cr3": "system call + CR3 switches"}


class MeasurementError(WorkbenchError):
    """A measurement could not be made; the message says why."""


# Instruction counts: deterministic.


@dataclass(frozen=True)
class InstructionCounts:
    """Instructions the guest executed for one round trip into the kernel and back, by path."""

    call: int
    syscall: int
    syscall_cr3: int
    service: str = "noop"

    def as_dict(self) -> dict[str, int]:
        return {"call": self.call, "syscall": self.syscall, "syscall-cr3": self.syscall_cr3}

    def __str__(self) -> str:
        rows = [f"instructions per round trip (service {self.service}), counted by single-stepping the guest:"]
        rows += [f"  {KIND_TITLES[kind]:28} {count:>5}" for kind, count in self.as_dict().items()]
        return "\n".join(rows)


def count_instructions(machine: Machine, service: str = "noop", timeout: float = 30.0) -> InstructionCounts:
    """Trace one round trip of each kind on `machine` (Machine(gdb=True), at its prompt)."""
    return InstructionCounts(
        call=trace_call(machine, service, timeout=timeout).instruction_count,
        syscall=trace_syscall(machine, service, timeout=timeout).instruction_count,
        syscall_cr3=trace_syscall(machine, service, switch_cr3=True, timeout=timeout).instruction_count,
        service=service,
    )


# The guest's own benchmark: TSC ticks.


@dataclass(frozen=True)
class Quartiles:
    q1: float
    median: float
    q3: float

    def __str__(self) -> str:
        return f"{self.median:10.2f}  ({self.q1:.2f} .. {self.q3:.2f})"


@dataclass(frozen=True)
class GuestBenchmark:
    """The `bench` reply: TSC ticks per call by kind, quartiles over the rounds."""

    rounds: int
    iterations: int
    timer: int  # ticks of reading the TSC twice, median; already subtracted from each round
    costs: dict[str, Quartiles]
    accel: str  # "tcg" or "kvm": what the ticks mean

    @property
    def meaning(self) -> str:
        if self.accel == "kvm":
            return ("TSC ticks on this computer's CPU, inside a KVM virtual machine "
                    "(the TSC counts at the CPU's nominal frequency)")
        return ("TSC ticks under TCG: QEMU emulates each instruction in software and the guest's TSC "
                "follows the host's clock, so this times QEMU's emulation of each path on this host, "
                "not the cycles of any CPU")

    def ratio(self, kind: str) -> float:
        """How many times a function call one kind costs, by median."""
        call = self.costs["call"].median
        return self.costs[kind].median / call if call else float("inf")

    def __str__(self) -> str:
        rows = [f"in-guest benchmark: {self.rounds} rounds x {self.iterations} calls, median (quartiles), "
                "TSC ticks per call",
                f"  ({self.meaning})"]
        rows += [f"  {KIND_TITLES[kind]:28} {self.costs[kind]}" for kind in KINDS]
        return "\n".join(rows)


def parse_bench_reply(fields: dict[str, str], accel: str = "tcg") -> GuestBenchmark:
    """The fields of `ok bench unit=tsc-ticks-per-call rounds=.. iterations=.. timer=.. call-q1=..`."""
    if fields.get("unit") != "tsc-ticks-per-call":
        raise MeasurementError(f"the bench reply has unit {fields.get('unit')!r}, not tsc-ticks-per-call")
    try:
        costs = {kind: Quartiles(*(float(fields[f"{kind}-{name}"]) for name in ("q1", "median", "q3")))
                 for kind in KINDS}
        return GuestBenchmark(int(fields["rounds"]), int(fields["iterations"]), int(fields["timer"]), costs, accel)
    except (KeyError, ValueError) as error:
        raise MeasurementError(f"the bench reply lacks a field or a number: {error}") from error


def guest_benchmark(machine: Machine, rounds: int = 21, iterations: int = 1000,
                    timeout: float = 120.0) -> GuestBenchmark:
    """Run the unikernel's `bench ROUNDS ITERATIONS` request and read its reply."""
    reply = machine.request(f"bench {rounds} {iterations}", timeout)
    if not reply.ok:
        raise MeasurementError(f"the guest refused the benchmark: {reply.line}")
    return parse_bench_reply(reply.fields, machine.accel)


# The host: the CPU this Python runs on (itself inside a VM when it reports the hypervisor flag).

HOST_PROGRAM = r"""
/* Times a plain function call against a trivial Linux system call, as the unikernel's bench
 * does: a warm-up round, then ROUNDS rounds of ITERATIONS calls; per round the cost of reading
 * the clock is subtracted and the rest divided by ITERATIONS. Prints one line per kind:
 * KIND ns-q1 ns-median ns-q3 ticks-q1 ticks-median ticks-q3 (ticks: the TSC, x86 only).
 * Each iteration also pays the loop itself (counter, compare, branch): kind "loop" times that
 * alone, an iteration whose body is an empty asm statement, so it can be subtracted. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

__attribute__((noinline)) long function_noop(void)
{
    __asm__ volatile("");   /* keep the call: the compiler may not drop an asm volatile */
    return 0;
}

static uint64_t ticks(void)
{
#if defined(__x86_64__)
    uint32_t low, high;
    __asm__ volatile("lfence; rdtsc" : "=a"(low), "=d"(high) : : "memory");
    return (uint64_t)high << 32 | low;
#else
    return 0;
#endif
}

static double nanoseconds(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec * 1e9 + now.tv_nsec;
}

static int compare(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void quartiles(const char *kind, double *ns, double *tsc, int rounds)
{
    qsort(ns, rounds, sizeof(double), compare);
    qsort(tsc, rounds, sizeof(double), compare);
    int q1 = (rounds - 1) / 4, median = (rounds - 1) / 2, q3 = 3 * (rounds - 1) / 4;
    printf("%s %.3f %.3f %.3f %.3f %.3f %.3f\n", kind, ns[q1], ns[median], ns[q3],
           tsc[q1], tsc[median], tsc[q3]);
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 21;
    long iterations = argc > 2 ? atol(argv[2]) : 100000;
    double *ns[3], *tsc[3];
    for (int kind = 0; kind < 3; kind++) {
        ns[kind] = calloc(rounds, sizeof(double));
        tsc[kind] = calloc(rounds, sizeof(double));
    }
    for (int round = -1; round < rounds; round++) {     /* round -1 warms up */
        double timer_ns0 = nanoseconds(), timer_ns = nanoseconds() - timer_ns0;
        uint64_t timer_tsc0 = ticks(), timer_tsc = ticks() - timer_tsc0;
        for (int kind = 0; kind < 3; kind++) {
            double start_ns = nanoseconds();
            uint64_t start_tsc = ticks();
            for (long i = 0; i < iterations; i++) {
                if (kind == 0)
                    function_noop();
                else if (kind == 1)
                    syscall(SYS_getppid);
                else
                    __asm__ volatile("");   /* the loop alone */
            }
            uint64_t spent_tsc = ticks() - start_tsc;
            double spent_ns = nanoseconds() - start_ns;
            if (round >= 0) {
                ns[kind][round] = (spent_ns - timer_ns) / iterations;
                tsc[kind][round] = (double)(spent_tsc - timer_tsc) / iterations;
            }
        }
    }
    quartiles("call", ns[0], tsc[0], rounds);
    quartiles("syscall", ns[1], tsc[1], rounds);
    quartiles("loop", ns[2], tsc[2], rounds);
    return 0;
}
"""


@dataclass(frozen=True)
class HostMeasurement:
    """A function call against getppid() on the CPU this Python runs on.

    Both figures include the loop around each call (counter, compare, branch), timed alone as
    "loop" when the program printed it; the system call goes through libc's syscall() wrapper.
    """

    cpu: str
    rounds: int
    iterations: int
    nanoseconds: dict[str, Quartiles]  # "call", "syscall", and "loop" (the empty loop) if measured
    tsc_ticks: dict[str, Quartiles] | None  # on x86-64 only
    virtual_machine: bool = False  # the CPU reports the hypervisor flag

    @property
    def where(self) -> str:
        """Where the figures come from, in words."""
        if self.virtual_machine:
            return (f"this computer ({self.cpu}), itself inside a virtual machine (its CPU reports the "
                    "hypervisor flag)")
        return f"this computer ({self.cpu}), outside any VM"

    def ratio(self) -> float:
        call = self.nanoseconds["call"].median
        return self.nanoseconds["syscall"].median / call if call > 0 else float("inf")

    def __str__(self) -> str:
        rows = [f"{self.where}: {self.rounds} rounds x {self.iterations} calls, median (quartiles) per call, "
                "each including the loop around it (counter, compare, branch)",
                f"  {'function call':34} {self.nanoseconds['call']} ns",
                f"  {'getppid() via libc syscall()':34} {self.nanoseconds['syscall']} ns"]
        if "loop" in self.nanoseconds:
            rows.append(f"  {'the empty loop alone':34} {self.nanoseconds['loop']} ns")
        if self.tsc_ticks:
            rows += [f"  {'function call':34} {self.tsc_ticks['call']} TSC ticks",
                     f"  {'getppid() via libc syscall()':34} {self.tsc_ticks['syscall']} TSC ticks"]
            if "loop" in self.tsc_ticks:
                rows.append(f"  {'the empty loop alone':34} {self.tsc_ticks['loop']} TSC ticks")
        return "\n".join(rows)

    def net(self, kind: str) -> float:
        """Median nanoseconds of `kind` ("call" or "syscall") with the empty loop's median subtracted."""
        loop = self.nanoseconds["loop"].median if "loop" in self.nanoseconds else 0.0
        return max(self.nanoseconds[kind].median - loop, 0.0)


def host_is_virtual_machine(cpuinfo: str | None = None) -> bool:
    """Whether this CPU reports the `hypervisor` flag: the OS runs inside a virtual machine."""
    try:
        text = Path("/proc/cpuinfo").read_text() if cpuinfo is None else cpuinfo
    except OSError:
        return False
    return any(line.startswith("flags") and "hypervisor" in line.split(":", 1)[-1].split()
               for line in text.splitlines())


def host_cpu() -> str:
    """The CPU's model name, from /proc/cpuinfo (or what Python knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measure_host(rounds: int = 21, iterations: int = 100_000, timeout: float = 120.0,
                 compiler: str | None = None) -> HostMeasurement:
    """Compile HOST_PROGRAM in a private temporary directory, run it, and remove it all again."""
    cc = compiler or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        raise MeasurementError("no C compiler found (install gcc): the host measurement compiles a small program")
    with tempfile.TemporaryDirectory(prefix="workbench-host-calls-") as directory:
        source, program = Path(directory) / "calls.c", Path(directory) / "calls"
        source.write_text(HOST_PROGRAM)
        try:
            built = subprocess.run([cc, "-O2", "-o", str(program), str(source)], capture_output=True, text=True,
                                   timeout=timeout, check=False)
            if built.returncode != 0:
                raise MeasurementError(f"{cc} could not compile the host program:\n{built.stderr}")
            done = subprocess.run([str(program), str(rounds), str(iterations)], capture_output=True, text=True,
                                  timeout=timeout, check=False, env={**os.environ, "LC_ALL": "C"})
        except subprocess.TimeoutExpired as error:
            raise MeasurementError(f"the host measurement did not finish within {timeout:g} s") from error
    if done.returncode != 0:
        raise MeasurementError(f"the host program failed with status {done.returncode}:\n{done.stderr}")
    return parse_host_output(done.stdout, rounds, iterations)


def parse_host_output(text: str, rounds: int, iterations: int, cpu: str | None = None) -> HostMeasurement:
    values: dict[str, list[float]] = {}
    for line in text.splitlines():
        match = re.fullmatch(r"(call|syscall|loop)((?: -?[0-9.]+){6})", line.strip())
        if match:
            values[match[1]] = [float(v) for v in match[2].split()]
    if not {"call", "syscall"} <= set(values):
        raise MeasurementError(f"the host program printed something unexpected:\n{text}")
    has_tsc = any(v[4] > 0 for v in values.values())
    return HostMeasurement(
        cpu=cpu or host_cpu(), rounds=rounds, iterations=iterations,
        nanoseconds={k: Quartiles(*v[:3]) for k, v in values.items()},
        tsc_ticks={k: Quartiles(*v[3:]) for k, v in values.items()} if has_tsc else None,
        virtual_machine=host_is_virtual_machine(),
    )


# What was published.


@dataclass(frozen=True)
class PublishedFigure:
    what: str
    cycles: float  # TSC ticks, median
    nanoseconds: float
    conditions: str


UNIKRAFT_SOURCE = ("Kuenzer et al., \"Unikraft: Fast, Specialized Unikernels the Easy Way\", EuroSys 2021, table 1; "
                   "data: github.com/unikraft/eurosys21-artifacts, experiments/tab_01_bincompat-syscalls/"
                   "results/table.txt")
UNIKRAFT_METHOD = ("QEMU/KVM guests on one x86-64 host, TSC at a fixed frequency (the table's ns/cycle ratio "
                   "gives 2.6 GHz); one static benchmark binary calling a no-op; 1 warm-up round, 20 rounds of "
                   "1,000,000 calls, the TSC's own cost subtracted; median")
PUBLISHED = (
    PublishedFigure("function call", 6, 2.31,
                    "a call to an empty noinline function; the same in all three guests"),
    PublishedFigure("Unikraft system call", 85, 32.69,
                    "syscall instruction into Unikraft's binary-compatibility layer (syscall shim); the "
                    "application runs in the kernel's address space, at its privilege level"),
    PublishedFigure("Linux system call, no mitigations", 142, 54.62,
                    "Linux 5.11 guest with an added no-op system call (number 500), booted with "
                    "mitigations=off"),
    PublishedFigure("Linux system call, with mitigations", 605, 232.69,
                    "the same Linux guest with its default mitigations against Meltdown and Spectre "
                    "(page-table isolation: a CR3 switch on every entry and exit, among others)"),
)


def published_table() -> str:
    rows = [f"{f.what:36} {f.cycles:>5.0f} cycles {f.nanoseconds:>8.2f} ns  {f.conditions}" for f in PUBLISHED]
    return "\n".join([f"Published: {UNIKRAFT_SOURCE}", f"Method: {UNIKRAFT_METHOD}", *rows])


def published_html() -> str:
    cells = "padding:1px 6px;vertical-align:top"
    rows = "".join(f"<tr><td style='{cells}'>{html.escape(f.what)}</td><td style='{cells};text-align:right'>"
                   f"{f.cycles:.0f}</td><td style='{cells};text-align:right'>{f.nanoseconds:.2f}</td>"
                   f"<td style='{cells}'>{html.escape(f.conditions)}</td></tr>" for f in PUBLISHED)
    return (f"<table style='border-collapse:collapse;font-size:13px'><tr><th>what</th><th>cycles</th><th>ns</th>"
            f"<th>conditions</th></tr>{rows}</table><p style='font-size:12px'>{html.escape(UNIKRAFT_METHOD)}. "
            f"Source: {html.escape(UNIKRAFT_SOURCE)}.</p>")
