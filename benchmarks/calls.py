"""What a call into the kernel costs, each figure with what it means.

Prints, for the unikernel built from kernel-src/ (gcc, or --toolchain clang):
  (a) instructions executed per round trip (function call, system call, system call with CR3
      switches), counted by single-stepping the guest through QEMU's gdbstub: deterministic;
  (b) the guest's own benchmark (`bench ROUNDS ITERATIONS`) in TSC ticks per call: under TCG
      these time QEMU's emulation on this host; with --kvm, the real CPU inside a KVM guest;
  (c) the CPU this script runs on (outside any VM, or inside one when /proc/cpuinfo has the
      hypervisor flag, as the label then says): a plain function call against getppid() through
      libc's syscall(), in ns and TSC ticks, from a C program compiled on the spot; both include
      the loop around each call, printed alone ("the empty loop") and subtracted in the ratio;
  (d) the published figures (Unikraft, EuroSys 2021) with their conditions.

    .venv/bin/python -m benchmarks.calls [--rounds 21] [--iterations 1000] [--toolchain gcc] [--kvm]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from workbench.compare import calls
from workbench.guest.machine import Machine
from workbench.guest.qemu import kvm_usable
from workbench.kernel.workspace import Workspace


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=21, help="rounds of the in-guest and host benchmarks")
    parser.add_argument("--iterations", type=int, default=1000, help="calls per round in the guest")
    parser.add_argument("--host-iterations", type=int, default=100_000, help="calls per round on the host")
    parser.add_argument("--toolchain", choices=("gcc", "clang"), default="gcc")
    parser.add_argument("--kvm", action="store_true", help="also run the guest benchmark under KVM (real cycles)")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="workbench-bench-calls-") as scratch:
        image = Workspace.open("calls", parent=Path(scratch)).build(toolchain=options.toolchain)
        print(f"image: {image.path.name} built with {options.toolchain}, {image.size} bytes\n")

        with Machine(image, gdb=True) as machine:
            machine.wait_for("> ")
            counts = calls.count_instructions(machine)
            print(f"(a) {counts}")
            print("    the same image always executes the same instructions: a count to compare, not a time;")
            print("    which instructions, and how many, depends on the compiler.\n")
            bench = calls.guest_benchmark(machine, options.rounds, options.iterations)
            print(f"(b) {bench}")
            print(f"    a system call costs {bench.ratio('syscall'):.1f} function calls here, "
                  f"with CR3 switches {bench.ratio('syscall-cr3'):.1f}\n")

        if options.kvm:
            if not kvm_usable():
                print("(b') KVM: /dev/kvm cannot be opened here; skipped\n")
            else:
                with Machine(image, accel="kvm") as machine:
                    machine.wait_for("> ", timeout=120)
                    kvm = calls.guest_benchmark(machine, options.rounds, options.iterations, timeout=600)
                    print(f"(b') {kvm}\n")

    host = calls.measure_host(options.rounds, options.host_iterations)
    print(f"(c) {host}")
    print(f"    a Linux system call costs {host.ratio():.0f} function calls on this CPU "
          f"(loop included); without the empty loop: {host.net('syscall'):.1f} ns against "
          f"{host.net('call'):.2f} ns\n")

    print(f"(d) {calls.published_table()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
