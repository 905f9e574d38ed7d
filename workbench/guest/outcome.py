"""How a machine's guest stops, and what can go wrong on the way: states, outcomes explained
for a student, and the errors of `Machine`.

Pure: the machine (machine.py) decides when a state changes; this module says what it means.
The explanations are written here, in one place, so that a lesson, the CLI and the views all
tell a student the same thing.
"""

from __future__ import annotations

import enum
import signal
from dataclasses import dataclass
from typing import TYPE_CHECKING

from workbench.errors import InvalidInput, WorkbenchError

if TYPE_CHECKING:
    from workbench.kernel.image import Image
    from workbench.models.cpu import Registers
    from workbench.models.faults import GuestFault
    from workbench.models.paging import Walk

MAX_TIMEOUT = 86400.0  # seconds: longer than any wait of a lesson or a test; inf and nan are refused


class MachineState(enum.Enum):
    """Where a machine is in its life; `terminal` states have no running QEMU."""

    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    FAULTED = "faulted"  # the guest reported a CPU exception; QEMU is paused
    TRIPLE_FAULT = "triple-fault"  # the CPU reset itself; QEMU is paused
    EXITED = "exited"  # QEMU has exited (the guest asked, or QEMU failed)
    DISCONNECTED = "disconnected"  # the QMP connection broke; QEMU has been stopped
    CLOSED = "closed"  # closed by us

    @property
    def terminal(self) -> bool:
        return self in (MachineState.EXITED, MachineState.DISCONNECTED, MachineState.CLOSED)

    @property
    def stopped_by_guest(self) -> bool:
        return self in (MachineState.FAULTED, MachineState.TRIPLE_FAULT, MachineState.EXITED)


@dataclass(frozen=True)
class Outcome:
    """How a guest stopped: it exited, faulted, or triple-faulted; with what evidence."""

    state: MachineState
    exit_status: int | None = None  # the value the guest wrote to isa-debug-exit
    qemu_returncode: int | None = None
    fault: GuestFault | None = None
    registers: Registers | None = None
    explanation: str = ""

    def __str__(self) -> str:
        return self.explanation

    def __repr__(self) -> str:
        return f"Outcome({self.state.value}: {self.explanation})"


# The outcomes, explained.


def fault_outcome(fault: GuestFault, registers: Registers | None, image: Image, walk: Walk | None) -> Outcome:
    """The guest reported a CPU exception; `walk` is the model's walk of CR2, if there is one."""
    return Outcome(MachineState.FAULTED, fault=fault, registers=registers,
                   explanation=fault.explain(image, walk) + " The machine is paused so you can inspect it.")


def triple_fault_outcome(registers: Registers | None, image: Image) -> Outcome:
    """QEMU reported a guest reset: with `reboot=shutdown`, a triple fault."""
    where = f"It was at rip={image.format_vaddr(registers.rip)}. " if registers else ""
    return Outcome(MachineState.TRIPLE_FAULT, registers=registers, explanation=(
        "The guest triple-faulted: the CPU met a fault while handling a fault (often a broken IDT, "
        f"stack or page table), gave up and reset. {where}The machine is paused in that state."))


def exit_outcome(returncode: int, printed: bool) -> Outcome:
    """QEMU exited with `returncode`; `printed`: the guest printed something first."""
    if returncode > 0 and returncode & 1 and printed:
        status = returncode >> 1  # isa-debug-exit: QEMU exits with (value << 1) | 1
        return Outcome(MachineState.EXITED, exit_status=status, qemu_returncode=returncode,
                       explanation=f"The guest exited with status {status}.")
    if returncode < 0:
        how = f"was killed by signal {signal.Signals(-returncode).name}"
    else:
        how = f"exited with status {returncode}"
    before = "" if printed else " before the guest printed anything"
    return Outcome(MachineState.EXITED, qemu_returncode=returncode, explanation=f"QEMU {how}{before}.")


def disconnected_outcome(cause: str) -> Outcome:
    """The QMP connection broke while QEMU ran, for `cause`; QEMU is being stopped."""
    return Outcome(MachineState.DISCONNECTED, explanation=(
        f"The workbench lost its connection to QEMU's monitor: {cause}. Without it the machine "
        "cannot be paused, inspected or stopped, so QEMU has been stopped; boot a new machine."))


# Errors.


def indent(text: str) -> str:
    return "\n".join("    " + line for line in text.rstrip().splitlines())


class MachineError(WorkbenchError):
    """Something went wrong with a machine; carries what the console and QEMU last said."""

    def __init__(self, message: str, *, console_tail: str = "", qemu_log: str = "") -> None:
        parts = [message]
        if console_tail:
            parts.append("The guest's last output was:\n" + indent(console_tail))
        if qemu_log:
            parts.append("QEMU said:\n" + indent(qemu_log))
        super().__init__("\n".join(parts))
        self.console_tail = console_tail
        self.qemu_log = qemu_log


class QemuStartError(MachineError):
    """QEMU did not start, or exited before the guest could run."""


class GuestTimeout(MachineError):
    """The guest did not do what was awaited in time; QEMU has been stopped."""

    def __init__(self, message: str, *, registers: Registers | None = None, **context: str) -> None:
        super().__init__(message, **context)
        self.registers = registers


class GuestStopped(MachineError):
    """The guest stopped (exit, fault, triple fault) while something was still awaited."""

    def __init__(self, outcome: Outcome, awaited: str, **context: str) -> None:
        super().__init__(f"{outcome.explanation}\n(This happened while waiting for {awaited}.)", **context)
        self.outcome = outcome


class MachineClosed(MachineError):
    """The machine was used after it was closed."""


class ConnectionLost(MachineError):
    """The QMP connection to QEMU broke (a reply over the size limit, say); QEMU was stopped,
    since a machine that cannot be paused, inspected or quit must not run on unseen."""


class BadMachineSetting(InvalidInput):
    """A Machine setting (machine type, accelerator, memory size) that cannot work."""


class BadTimeout(InvalidInput):
    """A timeout that is not a number of seconds above 0 and at most MAX_TIMEOUT."""


def check_timeout(timeout: object) -> float:
    """`timeout` as seconds if it is a finite number above 0 (at most MAX_TIMEOUT); BadTimeout if not.

    Machine checks it before anything is done, so a bad timeout never stops or changes a machine.
    """
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise BadTimeout(f"a timeout is a number of seconds such as 5.0, not {type(timeout).__name__}")
    if not 0 < timeout <= MAX_TIMEOUT:  # also false for nan
        raise BadTimeout(f"a timeout is a number of seconds above 0 and at most {MAX_TIMEOUT:g} (a day), "
                         f"not {timeout!r}")
    return float(timeout)
