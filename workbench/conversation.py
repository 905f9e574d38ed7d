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
import socket
import time
from typing import TYPE_CHECKING, Any

from .console import Console
from .cpu import Registers
from .errors import InvalidInput, WorkbenchError
from .image import Image
from .outcome import (
    ConnectionLost,
    GuestStopped,
    GuestTimeout,
    MachineClosed,
    MachineError,
    MachineState,
    Outcome,
    check_timeout,
)
from .protocol import MAX_SEND_LENGTH, NoReply, Reply, check_request, clip, parse_reply, reply_pattern

if TYPE_CHECKING:
    from ._loop import LoopThread

SEND_TIMEOUT = 5.0  # seconds for one send() (at most MAX_SEND_LENGTH characters) to be taken


class Conversation:
    """Machine's methods for talking to the guest (a mixin: `Machine` is the only user)."""

    # What Machine provides.
    image: Image
    console: Console
    outcome: Outcome | None
    request_limit: int
    _state: MachineState
    _sockets: list[socket.socket]

    if TYPE_CHECKING:
        def _require_qemu(self) -> LoopThread: ...
        def qmp(self, command: str, timeout: float = 5.0, **arguments: Any) -> Any: ...
        def registers(self, timeout: float = 5.0) -> Registers: ...
        def close(self, timeout: float = 5.0) -> None: ...
        def _qemu_log_if_failed(self) -> str: ...

    def send(self, text: str) -> None:
        """Type `text` into the guest's serial console (a line needs its own newline)."""
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
        await asyncio.get_running_loop().sock_sendall(self._sockets[1], data)

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
