"""Every CPU of a machine at one instant: its registers, whether it is halted, and where it is.

QEMU says it in two places, and both are read: QMP's `query-cpus-fast` lists the virtual CPUs
(index, QOM path, the host thread that runs each), and the monitor's `info registers -a`
prints each one's registers under a `CPU#N` header, `HLT=1` for a CPU waiting in `hlt`. The
two are matched by index, so a CPU QMP lists but the monitor does not print (or the reverse)
is an error rather than a silent gap. Source lines are the debugger's business
(workbench/debug/cpus.py); here a CPU's place is its rip as `0x... <symbol+0x..>`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from workbench.guest.outcome import MachineError
from workbench.kernel.image import Image
from workbench.models.cpu import Registers, parse_info_registers_all


@dataclass(frozen=True)
class CpuState:
    """One virtual CPU as QEMU reported it: `index` is QEMU's (and, on microvm, the APIC id)."""

    index: int
    qom_path: str
    thread_id: int
    registers: Registers
    where: str  # rip, with the image's symbol when one covers it

    @property
    def halted(self) -> bool:
        """The CPU is waiting in `hlt` (for an interrupt, or for good after `cli; hlt`)."""
        return self.registers.halted

    @property
    def rip(self) -> int:
        return self.registers.rip

    @property
    def cr3(self) -> int:
        return self.registers.cr3

    def describe(self) -> str:
        """`cpu 1 halted at 0xffffffff80101234 <cpu_idle+0x12>, cr3=0x...`: one line."""
        state = "halted" if self.halted else "running"
        return f"cpu {self.index} {state} at {self.where}, cr3={self.cr3:#x}"


def combine(listed: list[dict[str, Any]], registers_text: str, image: Image) -> tuple[CpuState, ...]:
    """The CPUs of `query-cpus-fast` (`listed`) with their blocks of `info registers -a`."""
    printed = {registers.cpu_index if registers.cpu_index is not None else position: registers
               for position, registers in enumerate(parse_info_registers_all(registers_text))}
    indices = sorted(int(cpu["cpu-index"]) for cpu in listed)
    if indices != sorted(printed):
        raise MachineError(f"QEMU lists CPUs {indices} over QMP but printed registers for {sorted(printed)}")
    return tuple(_state(cpu, printed[int(cpu["cpu-index"])], image)
                 for cpu in sorted(listed, key=lambda cpu: int(cpu["cpu-index"])))


def _state(listed: dict[str, Any], registers: Registers, image: Image) -> CpuState:
    return CpuState(index=int(listed["cpu-index"]), qom_path=str(listed.get("qom-path", "")),
                    thread_id=int(listed.get("thread-id", 0)), registers=registers,
                    where=image.format_vaddr(registers.rip))


def positions(cpus: tuple[CpuState, ...]) -> str:
    """Every CPU's place, one clause each: what a hung request reports."""
    return "; ".join(cpu.describe() for cpu in cpus)


# The kernel's line for a CPU that did not answer its INIT-SIPI-SIPI (docs/guest-contract.md).
DID_NOT_START = re.compile(r"^kernel: cpu (\d+) did not start \(APIC id (\d+)\)", re.MULTILINE)


class CpuDidNotStart(MachineError):
    """The machine has fewer CPUs up than it was made with: the kernel said one did not start."""


def cpus_that_did_not_start(console: str) -> tuple[tuple[int, int], ...]:
    """(CPU index, APIC id) of each `kernel: cpu K did not start (APIC id A)` line."""
    return tuple((int(found[1]), int(found[2])) for found in DID_NOT_START.finditer(console))


def did_not_start_message(missing: tuple[tuple[int, int], ...], cpus: tuple[CpuState, ...]) -> str:
    """One line: which CPUs did not start, how many did, and where each missing one is."""
    by_index = {cpu.index: cpu for cpu in cpus}
    said = "; ".join(_missing(index, apic_id, by_index.get(index)) for index, apic_id in missing)
    return f"{said} ({len(cpus) - len(missing)} of {len(cpus)} CPUs up)"


def _missing(index: int, apic_id: int, cpu: CpuState | None) -> str:
    place = "QEMU does not list it" if cpu is None else (
        f"it is {'halted' if cpu.halted else 'stopped'} at {cpu.where}, cr3={cpu.cr3:#x}")
    return f"cpu {index} did not start (APIC id {apic_id}): {place}"
