"""Talking to the guest through its serial console: typing, waiting for its output, and the
application's requests and replies (their format is protocol.py).

`Conversation` is the part of `Machine` that speaks with the running guest; machine.py keeps
the lifetime of the QEMU process. A wait that ends because the guest stopped raises
GuestStopped with the outcome; one that runs out of time stops QEMU (GuestTimeout), since a
guest that does not answer must not outlive the wait.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import TYPE_CHECKING, Any

from workbench.errors import InvalidInput, WorkbenchError
from workbench.guest.console import Console
from workbench.guest.outcome import (
    ConnectionLost,
    GuestStopped,
    GuestTimeout,
    MachineClosed,
    MachineError,
    MachineState,
    Outcome,
    check_timeout,
)
from workbench.guest.protocol import MAX_SEND_LENGTH, NoReply, Reply, check_request, clip, parse_reply, reply_pattern
from workbench.kernel.image import Image
from workbench.models.cpu import Registers

if TYPE_CHECKING:
    from pathlib import Path

    from workbench.guest.loop import LoopThread
    from workbench.guest.memory import GuestRAM
    from workbench.guest.serial_pipes import SerialPipes

SEND_TIMEOUT = 5.0  # seconds for one send() (at most MAX_SEND_LENGTH characters) to be taken
# While recording, QEMU hands the UART typed bytes in bursts, one burst per read of the
# console pipe, and a burst larger than the UART's 16-byte FIFO loses the rest. So input is
# typed in pieces no larger than the FIFO's interrupt level, each once the guest has taken
# the last (its `input_head` counter, kernel/console.c, has moved on).
RECORDED_INPUT_PIECE = 14
INPUT_COUNTER = "input_head"


class Conversation:
    """Machine's methods for talking to the guest (a mixin: `Machine` is the only user)."""

    # What Machine provides.
    image: Image
    console: Console
    outcome: Outcome | None
    request_limit: int
    _state: MachineState
    ram: GuestRAM | None
    record_path: Path | None
    replay_path: Path | None
    _serial: SerialPipes | None
    _held_input: bytes | None
    _input_counter_paddr = 0  # where the guest's input_head is, once looked up

    if TYPE_CHECKING:
        def _require_qemu(self) -> LoopThread: ...
        def qmp(self, command: str, timeout: float = 5.0, **arguments: Any) -> Any: ...
        def registers(self, timeout: float = 5.0) -> Registers: ...
        def close(self, timeout: float = 5.0) -> None: ...
        def _qemu_log_if_failed(self) -> str: ...
        def _scan_for_fault(self, text: str) -> None: ...
        def _keep(self, task: asyncio.Task[None]) -> None: ...

    def send(self, text: str) -> None:
        """Type `text` into the guest's serial console (a line needs its own newline). What is
        typed before the guest's first output is handed over when that output comes."""
        if not isinstance(text, str):
            raise InvalidInput(f"send() types text (a str), not {type(text).__name__}")
        if len(text) > MAX_SEND_LENGTH:
            raise InvalidInput(f"send() types at most {MAX_SEND_LENGTH} characters at a time (the guest reads "
                               f"them one by one), not {len(text)}")
        try:
            data = text.encode()
        except UnicodeEncodeError as error:
            raise InvalidInput(f"{clip(text)} cannot be typed: {error.object[error.start:error.end]!r} "
                               "is not a character (a lone surrogate)") from error
        if self.replay_path is not None:
            raise InvalidInput("a replay types nothing: its input comes from the recording")
        loop = self._require_qemu()
        try:
            loop.run(self._send(data), SEND_TIMEOUT)
        except TimeoutError as error:
            raise MachineError(f"the guest did not take typed input within {SEND_TIMEOUT:g} s; it reads its "
                               "console only while it waits for a request", console_tail=self.console.tail()) from error
        except OSError as error:
            raise MachineClosed(f"typing into the guest failed: the machine is {self._state.value} ({error})",
                                console_tail=self.console.tail()) from error

    async def _send(self, data: bytes) -> None:
        assert self._serial is not None
        if self._held_input is not None:
            # The guest prints nothing before its console is set up, and setting up the UART's
            # FIFOs empties them: a byte QEMU hands over meanwhile is lost (QEMU 10 does, now and
            # then). So what is typed that early waits for the guest's first output.
            self._held_input += data
            return
        if self.record_path is None:
            await self._serial.write(data)
            return
        for start in range(0, len(data), RECORDED_INPUT_PIECE):
            piece = data[start:start + RECORDED_INPUT_PIECE]
            taken = self._input_taken()
            await self._serial.write(piece)
            if taken is None:  # a guest without the counter: only a pause can help
                await asyncio.sleep(0.05)
                continue
            while (self._input_taken_now() - taken) % (1 << 32) < len(piece):
                await asyncio.sleep(0.0005)

    def _input_taken(self) -> int | None:
        """How many typed bytes the guest has taken from its UART (a u32 that wraps), or None
        when it cannot be read: a guest without the counter, or RAM that is not shared."""
        symbol = self.image.symbols.get(INPUT_COUNTER)
        paddr = self.image.paddr_of(symbol.vaddr) if symbol is not None else None
        if paddr is None or self.ram is None:
            return None
        self._input_counter_paddr = paddr
        return self._input_taken_now()

    def _input_taken_now(self) -> int:
        assert self.ram is not None
        return int.from_bytes(self.ram.read(self._input_counter_paddr, 4), "little")

    def drain_console(self, timeout: float = 2.0) -> None:
        """Take in everything the guest has printed so far, now: a paused guest's last output
        may still sit in the pipe, not yet read by the event loop."""
        if self._serial is not None and not self._state.terminal:
            self._require_qemu().run(self._drain(self._serial), timeout)

    async def _drain(self, serial: SerialPipes) -> None:
        data = serial.read_available()  # on the loop thread, in order with _read_serial
        if data:
            self._scan_for_fault(self.console.feed(data))

    def send_line(self, line: str) -> None:
        self.send(line + "\n")

    def wait_for(self, pattern: str | re.Pattern[str], timeout: float = 10.0) -> re.Match[str]:
        """Wait until the guest prints `pattern` (text or regex) after the last match.

        A guest that stops first raises GuestStopped with its outcome (a fault explained);
        one that does not print it in time raises GuestTimeout, and QEMU is stopped.
        """
        timeout = check_timeout(timeout)
        if not isinstance(pattern, (str, re.Pattern)):
            raise InvalidInput(f"wait_for() waits for text (a str) or a compiled regex, not {type(pattern).__name__}")
        awaited = f"{pattern!r}" if isinstance(pattern, str) else f"/{pattern.pattern}/"
        match = self._wait_for_match(pattern, awaited, timeout)
        if match is not None:
            return match
        raise self._timeout(f"The guest did not print {awaited} within {timeout:g} s.")

    def _wait_for_match(self, pattern: str | re.Pattern[str], awaited: str, timeout: float) -> re.Match[str] | None:
        """The match, or None when `timeout` passed with the guest still running."""
        if self._state is MachineState.CREATED:
            raise MachineError("the machine has not been started; call start() first")
        deadline = time.monotonic() + timeout
        match = self.console.wait_for(pattern, deadline, self._stopped)
        if match is not None:
            return match
        if self._state is MachineState.CLOSED:
            raise MachineClosed("the machine was closed while waiting for " + awaited)
        if self._state is MachineState.DISCONNECTED:
            assert self.outcome is not None
            raise ConnectionLost(f"{self.outcome.explanation} (This happened while waiting for {awaited}.)",
                                 console_tail=self.console.tail())
        if self._state.stopped_by_guest:
            self._wait_for_outcome()
            assert self.outcome is not None
            raise GuestStopped(self.outcome, f"the guest to print {awaited}",
                               console_tail=self.console.tail(), qemu_log=self._qemu_log_if_failed())
        return None

    def _stopped(self) -> bool:
        return self._state.stopped_by_guest or self._state.terminal

    def request(self, line: str, timeout: float = 10.0) -> Reply:
        """Send one request of the application's protocol and return its parsed reply.

        `line` is one line of printable ASCII, at most `request_limit` characters, without
        its newline; anything else raises BadRequest before a byte is sent.
        """
        timeout = check_timeout(timeout)
        self.send_request(line)
        return self.wait_for_reply(line, timeout)

    def send_request(self, line: str) -> None:
        """Send a request without waiting: `wait_for_reply(line)` collects its reply later."""
        check_request(line, self.request_limit)
        self.console.skip_to_end()
        self.send_line(line)

    def wait_for_reply(self, line: str, timeout: float = 10.0) -> Reply:
        """The reply to the request `line` sent last with `send_request`.

        If the guest prompts for the next request without having replied, NoReply is raised
        at once and the machine keeps running. A guest still busy with the request after
        `timeout` seconds is stopped, as in `wait_for` (GuestTimeout).
        """
        timeout = check_timeout(timeout)
        command = check_request(line, self.request_limit).split(maxsplit=1)[0]
        awaited = f"a reply to {line!r}"
        match = self._wait_for_match(reply_pattern(command), awaited, timeout)
        if match is None:
            raise self._timeout(f"The guest did not print {awaited} within {timeout:g} s; "
                                "nor did it prompt for another request.")
        reply = parse_reply(match, command)
        if reply is None:
            raise NoReply(f"The guest printed no reply line ('ok {command} ...' or 'error {command} ...') "
                          f"to {line!r} and is waiting for the next request. The machine is still running.",
                          console_tail=self.console.tail())
        return reply

    def wait(self, timeout: float = 10.0) -> Outcome:
        """Wait until the guest stops by itself (exit, fault, triple fault); return how."""
        timeout = check_timeout(timeout)
        deadline = time.monotonic() + timeout
        self.console.wait_for(re.compile(r"(?!)"), deadline, self._stopped)  # (?!) never matches
        if self._state.stopped_by_guest:
            self._wait_for_outcome()
            assert self.outcome is not None
            return self.outcome
        if self._state is MachineState.CLOSED:
            raise MachineClosed("the machine was closed while waiting for the guest to stop")
        if self._state is MachineState.DISCONNECTED:
            assert self.outcome is not None
            raise ConnectionLost(self.outcome.explanation, console_tail=self.console.tail())
        raise self._timeout(f"The guest was still running after {timeout:g} s.")

    def _wait_for_outcome(self, timeout: float = 5.0) -> None:
        """The state flips before the outcome's registers arrive; wait for both."""
        deadline = time.monotonic() + timeout
        while self.outcome is None and time.monotonic() < deadline:
            time.sleep(0.005)

    def _timeout(self, message: str) -> GuestTimeout:
        """Say where the guest was, then stop QEMU: a hung guest must not outlive the wait."""
        registers: Registers | None = None
        try:
            self.qmp("stop", 2.0)
            registers = self.registers(2.0)
            message += f" It was executing rip={self.image.format_vaddr(registers.rip)}."
        except WorkbenchError:
            pass
        tail, log = self.console.tail(), self._qemu_log_if_failed()
        self.close()
        return GuestTimeout(message + " QEMU has been stopped.", registers=registers, console_tail=tail, qemu_log=log)
