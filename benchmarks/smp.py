"""Several CPUs: what they cost, each figure printed against its target and labelled as measured.

  (a) boot to the prompt of apps/smp with 4 CPUs, divided by the same with 1 CPU, same run
      (target <= 1.5);
  (b) one IPI round trip (`remap shootdown` with one other CPU up) and one shootdown (three other
      CPUs), in host wall time under TCG: the median of `remap shootdown` minus the median of
      `remap local`, each a whole request over the serial console; the two differ only by
      tlb_shootdown, so the difference is its cost as the host sees it, noise included;
  (c) the same two in guest instructions, counted by single-stepping through QEMU's gdbstub:
      the sender's, from tlb_shootdown's first instruction to its return to command_remap (its
      spin-wait for the acknowledgements included: the other CPUs run freely meanwhile, so this
      count depends on how fast they answer), and the receiver's, from smp_interrupt_entry to
      its return to the interrupted reader (the whole IPI handler, one CPU stepped alone);
  (d) the hello image (the default application with COMPONENTS= , so no smp) from this tree,
      byte for byte against the same build of this tree with kernel/smp/ deleted: a build that
      does not select the component carries nothing of its code.

    .venv/bin/python -m benchmarks.smp [--runs 5] [--rounds 20]
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from benchmarks._timing import summary, timed
from workbench.debug.debugger import Debugger
from workbench.guest.machine import Machine
from workbench.kernel.image import Image
from workbench.resources import kernel_source

MAX_STEPS = 20000
IPI_HANDLER = frozenset({"smp_interrupt_entry", "smp_interrupt", "this_cpu", "invlpg", "apic_write"})


def build(source: Path, directory: Path, *arguments: str) -> Path:
    subprocess.run(["make", "-s", f"BUILD_DIR={directory}", *arguments], cwd=source, check=True,
                   capture_output=True, text=True)
    return directory / "unikernel.elf"


def boot_seconds(image: Image, cpus: int) -> float:
    machine = Machine(image, name=f"bench-smp-{cpus}", cpus=cpus)
    try:
        return timed(lambda: (machine.start(), machine.wait_for("> ", timeout=60)))
    finally:
        machine.close()


def remap_seconds(image: Image, cpus: int, rounds: int) -> dict[str, list[float]]:
    """Wall time of `remap local` and `remap shootdown` with a reader on the last CPU."""
    times: dict[str, list[float]] = {"local": [], "shootdown": []}
    with Machine(image, name=f"bench-remap-{cpus}", cpus=cpus) as machine:
        machine.wait_for("> ", timeout=60)
        machine.request(f"reader {cpus - 1}")
        for _ in range(rounds):
            for mode, seconds in times.items():
                seconds.append(timed(lambda mode=mode: machine.request(f"remap {mode}", timeout=30)))
    return times


def steps_until(debugger: Debugger, arrived: Callable[[str], bool], cpu: int | None) -> int:
    """Single steps (of `cpu` alone, or of the CPU that stopped with the others running) until
    the function it is in is one `arrived` accepts."""
    for count in range(1, MAX_STEPS + 1):
        if arrived(debugger.stepi(cpu=cpu).function):
            return count
    raise RuntimeError(f"not there within {MAX_STEPS} instructions")


def instructions(image: Image, cpus: int) -> tuple[int, int]:
    """(sender's instructions in tlb_shootdown, receiver's in the IPI handler)."""
    with Machine(image, name=f"bench-steps-{cpus}", cpus=cpus, gdb=True) as machine:
        machine.wait_for("> ", timeout=60)
        machine.request(f"reader {cpus - 1}")
        debugger = Debugger.attach(machine)
        handler = debugger.break_at("smp_interrupt_entry")
        machine.send_line("remap shootdown")
        stop = debugger.cont(timeout=60)
        debugger.delete(handler)
        received = steps_until(debugger, lambda function: function not in IPI_HANDLER, stop.cpu)
        debugger.cont(timeout=1)  # the first remap's reply
        debugger.break_at("tlb_shootdown")
        machine.send_line("remap shootdown")
        stop = debugger.cont(timeout=60)
        sent = steps_until(debugger, lambda function: function == "command_remap", None)
        return sent, received


def hello_is_unchanged(directory: Path) -> bool:
    now = build(kernel_source(), directory / "now", "COMPONENTS=")
    without = directory / "without-smp"
    shutil.copytree(kernel_source(), without, ignore=shutil.ignore_patterns("build"))
    shutil.rmtree(without / "kernel" / "smp")
    before = build(without, directory / "without-smp-build", "COMPONENTS=")
    return filecmp.cmp(now, before, shallow=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=20)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-smp-") as temporary:
        directory = Path(temporary)
        image = Image.load(build(kernel_source(), directory / "smp", "APP=apps/smp"))
        boots = {cpus: [boot_seconds(image, cpus) for _ in range(arguments.runs)] for cpus in (1, 4)}
        for cpus, seconds in boots.items():
            print(summary(f"(a) boot to the prompt of apps/smp, {cpus} CPU{'s' if cpus > 1 else ''}", seconds))
        ratio = statistics.median(boots[4]) / statistics.median(boots[1])
        print(f"(a) 4 CPUs / 1 CPU, medians: {ratio:.2f}   target <= 1.5   {'met' if ratio <= 1.5 else 'MISSED'}")
        for cpus, what in ((2, "one IPI round trip (1 other CPU)"), (4, "one shootdown (3 other CPUs)")):
            times = remap_seconds(image, cpus, arguments.rounds)
            cost = (statistics.median(times["shootdown"]) - statistics.median(times["local"])) * 1000
            print(summary(f"(b) remap local, {cpus} CPUs", times["local"]))
            print(summary(f"(b) remap shootdown, {cpus} CPUs", times["shootdown"]))
            print(f"(b) {what}: {cost:.2f} ms host wall time under TCG (difference of the medians)")
            sent, received = instructions(image, cpus)
            print(f"(c) {what}: sender {sent} guest instructions in tlb_shootdown (spin-wait included), "
                  f"receiver {received} in the IPI handler")
        unchanged = hello_is_unchanged(directory)
        print("(d) hello (COMPONENTS=) byte for byte as without kernel/smp/: "
              f"{'yes' if unchanged else 'NO'}   target yes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
