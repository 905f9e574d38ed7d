"""Where the inspection views get their snapshots, how they follow a machine, and how they name
addresses.

A view is given either a Snapshot (fixed: the guest at one instant) or a Machine (the view
takes snapshots itself: on every pause, and throttled while the guest runs).
"""

from __future__ import annotations

import re

from workbench.guest.machine import Machine, MachineState
from workbench.kernel.image import Image
from workbench.models.snapshot import Snapshot
from workbench.views._base import View, ViewError, parse_address

SYMBOL = re.compile(r"[A-Za-z_.$][A-Za-z0-9_.$]*")
# QEMU is paused with the guest's memory intact: its tables can be read whole.
HELD_STILL = (MachineState.PAUSED, MachineState.FAULTED, MachineState.TRIPLE_FAULT)


class FollowingView(View):
    """A view of a machine's tables that redraws when the machine stops (the map, the explorer,
    the translator); `machine` is None when it shows a fixed snapshot."""

    machine: Machine | None

    def _follow_machine(self) -> None:
        if self.machine is not None:
            self.machine.add_state_listener(self._on_state)

    def _on_state(self, state: MachineState) -> None:  # on whichever thread changed it
        if state in HELD_STILL:
            self._held_still()
        elif state is MachineState.RUNNING:
            self._running()
        elif state.terminal and self.machine is not None:
            self.machine.remove_state_listener(self._on_state)

    def _held_still(self) -> None:
        """The machine stopped: redraw now."""
        self._mark_dirty(immediately=True)

    def _running(self) -> None:
        """The machine runs (again): a view that follows it live redraws, throttled."""


def take(machine: Machine, *, consistent: bool = True) -> Snapshot:
    """A snapshot of the machine now.

    `consistent=True` pauses a running guest for the moment of the walk (Machine.snapshot).
    `consistent=False` reads a running guest's tables as they are, without pausing it: what a
    live view wants ten times a second (a table the guest is rewriting at that very moment may
    show half-written; the next refresh shows it whole).
    """
    if consistent or machine.state is not MachineState.RUNNING:
        return machine.snapshot()
    return Snapshot.take(machine.memory, machine.registers(), label="live", maxphyaddr=machine.maxphyaddr())


def split_source(source: Snapshot | Machine, image: Image | None) -> tuple[Machine | None, Snapshot, Image | None]:
    """(machine or None, a first snapshot, the image to name addresses with, if it has symbols)."""
    machine, named = source_parts(source, image)
    snapshot = source if isinstance(source, Snapshot) else take(source)
    return machine, snapshot, named


def source_parts(source: Snapshot | Machine, image: Image | None) -> tuple[Machine | None, Image | None]:
    """(machine or None, the image to name addresses with, if it has symbols), taking no snapshot:
    for a view that takes its own at the instant it wants."""
    if isinstance(source, Machine):
        if source.state is MachineState.CREATED or source.state.terminal:
            raise ViewError(f"the machine is {source.state.value}: boot it first, or show a snapshot "
                            "taken while it ran")
        return source, _with_symbols(image or source.image)
    if isinstance(source, Snapshot):
        return None, _with_symbols(image)
    raise ViewError(f"show a Snapshot or a Machine, not {type(source).__name__}")


def _with_symbols(image: Image | None) -> Image | None:
    return image if image is not None and image.symbols else None


def resolve_vaddr(text: object, image: Image | None) -> int:
    """A vaddr from hex text, an int, or (with an image) a symbol name like `app_main`."""
    if isinstance(text, str) and image is not None:
        name = text.strip()
        if SYMBOL.fullmatch(name) and name in image.symbols:
            return image.symbols[name].vaddr
        if SYMBOL.fullmatch(name) and not re.fullmatch(r"(0x)?[0-9a-fA-F_]+", name):
            image.symbol(name)  # raises SymbolNotFound, naming close matches
    return parse_address(text)


def name_of(vaddr: int, image: Image | None) -> str:
    """`app_main+0x10` when the image knows the address, else empty."""
    if image is None:
        return ""
    named = image.symbolize(vaddr)
    return "" if named.startswith("0x") else named
