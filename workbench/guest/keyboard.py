"""Typing into the guest's serial console, so that no typed byte is lost.

`Keyboard` is the part of a Machine that writes to the guest's serial input. It holds the
Monitor (to run on the machine's event loop), the image, and from `connect` on the serial
pipes and the shared RAM (to see how much typed input the guest has taken): nothing else
of the Machine.
"""

from __future__ import annotations

import asyncio

from workbench.errors import InvalidInput
from workbench.guest.memory import GuestRAM
from workbench.guest.monitor import Monitor
from workbench.guest.outcome import MachineClosed, MachineError
from workbench.guest.protocol import MAX_SEND_LENGTH, clip
from workbench.guest.serial_pipes import SerialPipes
from workbench.guest.status import Status
from workbench.kernel.image import Image

SEND_TIMEOUT = 5.0  # seconds for one send() (at most MAX_SEND_LENGTH characters) to be taken
# While recording, QEMU hands the UART typed bytes in bursts, one burst per read of the
# console pipe, and a burst larger than the UART's 16-byte FIFO loses the rest. So input is
# typed in pieces no larger than the FIFO's interrupt level, each once the guest has taken
# the last (its `input_head` counter, kernel/console.c, has moved on).
RECORDED_INPUT_PIECE = 14
INPUT_COUNTER = "input_head"


class Keyboard:
    """The guest's serial input: what is typed, in pieces it can take."""

    def __init__(self, monitor: Monitor, status: Status, image: Image, *, recording: bool, replaying: bool) -> None:
        self._monitor = monitor
        self._status = status
        self._serial: SerialPipes | None = None
        self._ram: GuestRAM | None = None
        self._recording = recording
        self._replaying = replaying
        # Typed before the guest printed anything; None once it has (see type_on_loop).
        self._held: bytes | None = b""
        counter = image.symbols.get(INPUT_COUNTER)
        self._counter_paddr = image.paddr_of(counter.vaddr) if counter is not None else None

    def connect(self, serial: SerialPipes, ram: GuestRAM | None) -> None:
        """Type into these pipes from now on, and watch the guest's input counter in this RAM."""
        self._serial, self._ram = serial, ram

    def send(self, text: str) -> None:
        """Type `text` into the guest's serial console (a line needs its own newline). What is
        typed before the guest's first output is handed over when that output comes."""
        data = _typeable(text)
        if self._replaying:
            raise InvalidInput("a replay types nothing: its input comes from the recording")
        console = self._status.console
        try:
            self._monitor.run(self.type_on_loop(data), SEND_TIMEOUT)
        except TimeoutError as error:
            raise MachineError(f"the guest did not take typed input within {SEND_TIMEOUT:g} s; it reads its "
                               "console only while it waits for a request", console_tail=console.tail()) from error
        except OSError as error:
            raise MachineClosed(f"typing into the guest failed: the machine is {self._status.state.value} ({error})",
                                console_tail=console.tail()) from error

    def send_line(self, line: str) -> None:
        self.send(line + "\n")

    @property
    def holding(self) -> bool:
        """Typed input still waits for the guest's first output."""
        return self._held is not None

    def stop_holding(self) -> bytes:
        """The guest printed, so its console is set up: what was typed before, to type now."""
        held, self._held = self._held or b"", None
        return held

    async def type_on_loop(self, data: bytes) -> None:
        assert self._serial is not None
        if self._held is not None:
            # The guest prints nothing before its console is set up, and setting up the UART's
            # FIFOs empties them: a byte QEMU hands over meanwhile is lost (QEMU 10 does, now and
            # then). So what is typed that early waits for the guest's first output.
            self._held += data
            return
        if not self._recording:
            await self._serial.write(data)
            return
        for start in range(0, len(data), RECORDED_INPUT_PIECE):
            piece = data[start:start + RECORDED_INPUT_PIECE]
            taken = self._input_taken()
            await self._serial.write(piece)
            if taken is None:  # a guest without the counter: only a pause can help
                await asyncio.sleep(0.05)
                continue
            while (self._input_taken_or_zero() - taken) % (1 << 32) < len(piece):
                await asyncio.sleep(0.0005)

    def _input_taken(self) -> int | None:
        """How many typed bytes the guest has taken from its UART (a u32 that wraps), or None
        when it cannot be read: a guest without the counter, or RAM that is not shared."""
        if self._counter_paddr is None or self._ram is None:
            return None
        return int.from_bytes(self._ram.read(self._counter_paddr, 4), "little")

    def _input_taken_or_zero(self) -> int:
        return self._input_taken() or 0


def _typeable(text: object) -> bytes:
    """`text` as the bytes to type, or InvalidInput saying why it cannot be typed."""
    if not isinstance(text, str):
        raise InvalidInput(f"send() types text (a str), not {type(text).__name__}")
    if len(text) > MAX_SEND_LENGTH:
        raise InvalidInput(f"send() types at most {MAX_SEND_LENGTH} characters at a time (the guest reads "
                           f"them one by one), not {len(text)}")
    try:
        return text.encode()
    except UnicodeEncodeError as error:
        raise InvalidInput(f"{clip(text)} cannot be typed: {error.object[error.start:error.end]!r} "
                           "is not a character (a lone surrogate)") from error
