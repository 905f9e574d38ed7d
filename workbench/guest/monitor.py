"""The machine's one connection to QEMU: QMP commands and the human monitor, from the caller's
thread or from the machine's event-loop thread.

`Monitor` is what the other parts of a Machine hold instead of the Machine: the inspection
reads registers and memory through it, the keyboard runs its typing on its loop. It exists
from the start; `connect` hands it the loop and the QMP client once QEMU runs. A command that
fails because QEMU went away raises what the machine's Status says about that, not a
connection error.
"""

from __future__ import annotations

import os
from collections.abc import Coroutine
from typing import Any, TypeVar

from qemu.qmp import QMPClient, Runstate
from qemu.qmp.error import QMPError

from workbench.guest.loop import LoopThread
from workbench.guest.outcome import ConnectionLost, MachineClosed, MachineError, MachineState, check_timeout
from workbench.guest.status import Status

T = TypeVar("T")
# How long QEMU may take to exit after its connection broke (Machine.close waits as long).
QUIT_GRACE_SECONDS = 2.0


class Monitor:
    """QMP and the human monitor of one QEMU, every call with a timeout."""

    def __init__(self, status: Status) -> None:
        self._status = status
        self._loop: LoopThread | None = None
        self._client: QMPClient | None = None

    def connect(self, loop: LoopThread, client: QMPClient) -> None:
        """Use this loop and this connected client from now on."""
        self._loop, self._client = loop, client

    def require_live(self) -> LoopThread:
        """The machine's loop, or the Status's reason why QEMU cannot be talked to."""
        self._status.require_live()
        if self._loop is None:
            raise MachineClosed(f"the machine is {self._status.state.value}; boot a new one")
        return self._loop

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run `coroutine` on the machine's event loop; raises if QEMU is not there."""
        try:
            loop = self.require_live()
        except BaseException:
            coroutine.close()  # never awaited, and Python would say so
            raise
        return loop.run(coroutine, timeout)

    def qmp(self, command: str, timeout: float = 5.0, **arguments: Any) -> Any:
        """Execute one QMP command and return its result."""
        timeout = check_timeout(timeout)
        return self._execute(command, arguments, timeout, f"the QMP command {command!r}")

    def hmp(self, command_line: str, timeout: float = 5.0, *, cpu: int | None = None) -> str:
        """Run a human-monitor command (`info registers`, `info mem`, ...) and return its text.

        `cpu` is the CPU the command reads (its registers, its page tables): QEMU's `cpu-index`.
        Each command gets a monitor of its own, so HMP's `cpu N` would not outlive its command.
        """
        timeout = check_timeout(timeout)
        arguments: dict[str, Any] = {"command-line": command_line}
        if cpu is not None:
            arguments["cpu-index"] = cpu
        return str(self._execute("human-monitor-command", arguments, timeout, f"the monitor command {command_line!r}"))

    def _execute(self, command: str, arguments: dict[str, Any], timeout: float, what: str) -> Any:
        try:
            return self.run(self.execute(command, arguments), timeout)
        except TimeoutError as error:
            raise MachineError(f"QEMU did not answer {what} within {timeout:g} s") from error
        except (QMPError, OSError, EOFError) as error:
            raise self._failure(what, error) from error

    def _failure(self, what: str, error: Exception) -> MachineError:
        """Why `what` failed: QEMU gone (as the status tells it), or QEMU's own error."""
        assert self._client is not None
        status = self._status
        if self._client.runstate is not Runstate.RUNNING:
            status.await_terminal(QUIT_GRACE_SECONDS + 1.0)
            tail = status.console.tail()
            if status.state is MachineState.DISCONNECTED:
                assert status.outcome is not None
                return ConnectionLost(f"{what} failed. {status.outcome.explanation}", console_tail=tail)
            if status.state.terminal:
                return MachineClosed(f"{what} failed: the machine is {status.state.value}"
                                     + (f". {status.outcome.explanation}" if status.outcome else ""),
                                     console_tail=tail)
        return MachineError(f"{what} failed: {error}")

    # On the event-loop thread, where QMP can only be awaited.

    async def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        assert self._client is not None
        return await self._client.execute(command, arguments or None)

    async def hmp_on_loop(self, command_line: str) -> str:
        return str(await self.execute("human-monitor-command", {"command-line": command_line}))

    async def pmemsave_on_loop(self, paddr: int, length: int) -> bytes:
        """Bytes at `paddr` as the guest sees them, copied by QEMU into a memfd of ours."""
        scratch = os.memfd_create("pmemsave", os.MFD_CLOEXEC)
        try:
            await self.execute("pmemsave", {"val": paddr, "size": length,
                                            "filename": f"/proc/{os.getpid()}/fd/{scratch}"})
            return os.pread(scratch, length, 0)
        finally:
            os.close(scratch)
