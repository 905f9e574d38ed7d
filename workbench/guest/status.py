"""Where a machine is in its life, how its guest ended, and who wants to hear of a change.

`Status` is the one record every part of a Machine consults before it talks to QEMU: the
conversation asks whether the guest stopped, the monitor whether QEMU is still there, and
each raises the same readable error when it is not (`require_live`). States change on the
event-loop thread and the caller's alike, so a lock keeps each change whole.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable

from workbench.guest.console import Console
from workbench.guest.outcome import ConnectionLost, MachineClosed, MachineError, MachineState, Outcome


class Status:
    """A machine's state and outcome, and the listeners told of every change of state."""

    def __init__(self, console: Console) -> None:
        self.console = console  # woken on every change: a wait on the console ends when the guest stops
        self.outcome: Outcome | None = None
        self._state = MachineState.CREATED
        self._lock = threading.Lock()
        self._listeners: list[Callable[[MachineState], None]] = []

    @property
    def state(self) -> MachineState:
        return self._state

    def set(self, state: MachineState) -> None:
        """Change to `state` (a closed machine stays closed)."""
        with self._lock:
            if self._state is MachineState.CLOSED:
                return
            self._state = state
        self._announce(state)

    def set_if(self, expected: MachineState, new: MachineState) -> None:
        """Change to `new` only from `expected`: a QMP event must not undo a fault, say."""
        with self._lock:
            if self._state is not expected:
                return
            self._state = new
        self._announce(new)

    def add_listener(self, listener: Callable[[MachineState], None]) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[MachineState], None]) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def _announce(self, state: MachineState) -> None:
        self.console.wake()
        for listener in list(self._listeners):
            try:
                listener(state)
            except Exception:  # a broken listener must not break the machine's own bookkeeping
                logging.getLogger(__name__).exception("a machine state listener failed")

    # What the parts ask.

    def require_live(self) -> None:
        """Raise, with a reason a student can act on, unless QEMU runs and can be talked to."""
        if self._state is MachineState.CREATED:
            raise MachineError("the machine has not been started; call start() first")
        if self._state is MachineState.DISCONNECTED:
            assert self.outcome is not None
            raise ConnectionLost(self.outcome.explanation, console_tail=self.console.tail())
        if self._state.terminal:
            raise MachineClosed(f"the machine is {self._state.value}; boot a new one", console_tail=self.console.tail())

    def stopped(self) -> bool:
        """The guest stopped by itself, or QEMU is gone: nothing more will be printed."""
        return self._state.stopped_by_guest or self._state.terminal

    def await_terminal(self, timeout: float) -> None:
        """A broken connection is followed by QEMU's exit or our stopping it; wait for either."""
        deadline = time.monotonic() + timeout
        while not self._state.terminal and time.monotonic() < deadline:
            time.sleep(0.01)

    def await_outcome(self, timeout: float = 5.0) -> None:
        """The state flips before the outcome's registers arrive; wait for both."""
        deadline = time.monotonic() + timeout
        while self.outcome is None and time.monotonic() < deadline:
            time.sleep(0.005)
