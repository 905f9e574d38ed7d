"""The stale-TLB moment read from a live guest running apps/smp's reader.

apps/smp's reader (docs/guest-contract.md, `reader CPU`) keeps three C variables: the CPU it
runs on (`reader_cpu`, 0 while none runs: CPU 0 answers requests), the page it reads in a loop
(`reader_page`) and the value it read last (`reader_value`). `read()` pauses the machine for one
instant, walks the page in the reading CPU's tables, reads those variables, the CPU's place and
the words of the frames compared, lets the guest go on, and compares them
(workbench/models/stale_tlb.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from workbench.errors import InvalidInput, WorkbenchError
from workbench.guest.machine import Machine
from workbench.models.stale_tlb import CpuRead, StaleTlb, compare


class NoReader(InvalidInput):
    """The image has no apps/smp reader, or no reader has run yet."""


def reader_page(machine: Machine) -> int:
    """The vaddr apps/smp's reader reads (or read last)."""
    vaddr = _symbol(machine, "reader_page")
    if vaddr == 0:
        raise NoReader("no reader has run yet, so there is no page to show: send 'reader CPU' first")
    return vaddr


def read(machine: Machine, vaddr: int, frames: Sequence[int] = ()) -> StaleTlb:
    """The walk of `vaddr` now beside what the reader read, with the machine paused meanwhile.

    The frames compared are the one mapped now and `frames` (where the page was mapped before).
    """
    with machine.held():
        reads = _reads(machine)
        walk = machine.snapshot("stale TLB", cpu=reads[0].cpu if reads else 0).walk(vaddr)
        return compare(vaddr, walk, machine.memory, reads, frames)


def _reads(machine: Machine) -> tuple[CpuRead, ...]:
    """apps/smp's reader, when one runs: its CPU, its place, and the value it read last."""
    cpu = _symbol(machine, "reader_cpu")
    if cpu == 0:
        return ()
    state = machine.cpus()[cpu]
    return (CpuRead(cpu, _symbol(machine, "reader_value"), state.halted, state.where),)


def _symbol(machine: Machine, name: str) -> int:
    try:
        return machine.read_symbol(name)
    except WorkbenchError as error:
        raise NoReader(f"the stale-TLB view needs apps/smp's reader ({name}): {error}") from None
