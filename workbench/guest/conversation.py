"""Talking with the guest through its serial console: waiting for its output, and the
application's requests and replies (their format is protocol.py).

`Conversation` is the part of a Machine that speaks with the running guest. It holds the
machine's Status (has the guest stopped? its console transcript), the Keyboard, the image's
request limit, and two callbacks of the machine: one that gives up on a guest that does not
answer (it stops QEMU: a guest that does not answer must not outlive the wait) and one for
QEMU's own log. A wait that ends because the guest stopped raises GuestStopped with the
outcome; one that runs out of time raises the machine's GuestTimeout.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from workbench.errors import InvalidInput
from workbench.guest.keyboard import Keyboard
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
from workbench.guest.protocol import NoReply, Reply, check_request, parse_reply, reply_pattern
from workbench.guest.status import Status


class Conversation:
    """Waiting for the guest's words, and its requests and replies."""

    def __init__(self, status: Status, keyboard: Keyboard, request_limit: int, *,
                 give_up: Callable[[str], GuestTimeout], qemu_log: Callable[[], str]) -> None:
        self.request_limit = request_limit
        self._console = status.console
        self._status = status
        self._keyboard = keyboard
        self._give_up = give_up  # stops QEMU and says where the guest was
        self._qemu_log = qemu_log

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
        raise self._give_up(f"The guest did not print {awaited} within {timeout:g} s.")

    def _wait_for_match(self, pattern: str | re.Pattern[str], awaited: str, timeout: float) -> re.Match[str] | None:
        """The match, or None when `timeout` passed with the guest still running."""
        if self._status.state is MachineState.CREATED:
            raise MachineError("the machine has not been started; call start() first")
        deadline = time.monotonic() + timeout
        match = self._console.wait_for(pattern, deadline, self._status.stopped)
        if match is not None:
            return match
        if self._status.state is MachineState.CLOSED:
            raise MachineClosed("the machine was closed while waiting for " + awaited)
        if self._status.state is MachineState.DISCONNECTED:
            assert self._status.outcome is not None
            raise ConnectionLost(f"{self._status.outcome.explanation} (This happened while waiting for {awaited}.)",
                                 console_tail=self._console.tail())
        if self._status.state.stopped_by_guest:
            self._status.await_outcome()
            assert self._status.outcome is not None
            raise GuestStopped(self._status.outcome, f"the guest to print {awaited}",
                               console_tail=self._console.tail(), qemu_log=self._qemu_log())
        return None

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
        self._console.skip_to_end()
        self._keyboard.send_line(line)

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
            raise self._give_up(f"The guest did not print {awaited} within {timeout:g} s; "
                                "nor did it prompt for another request.")
        reply = parse_reply(match, command)
        if reply is None:
            raise NoReply(f"The guest printed no reply line ('ok {command} ...' or 'error {command} ...') "
                          f"to {line!r} and is waiting for the next request. The machine is still running.",
                          console_tail=self._console.tail())
        return reply

    def wait(self, timeout: float = 10.0) -> Outcome:
        """Wait until the guest stops by itself (exit, fault, triple fault); return how."""
        timeout = check_timeout(timeout)
        deadline = time.monotonic() + timeout
        self._console.wait_for(re.compile(r"(?!)"), deadline, self._status.stopped)  # (?!) never matches
        if self._status.state.stopped_by_guest:
            self._status.await_outcome()
            assert self._status.outcome is not None
            return self._status.outcome
        if self._status.state is MachineState.CLOSED:
            raise MachineClosed("the machine was closed while waiting for the guest to stop")
        if self._status.state is MachineState.DISCONNECTED:
            assert self._status.outcome is not None
            raise ConnectionLost(self._status.outcome.explanation, console_tail=self._console.tail())
        raise self._give_up(f"The guest was still running after {timeout:g} s.")
