"""The guest's serial console as two pipes: QEMU's stdin and stdout (`-chardev stdio`).

Machine hands QEMU the read end of one pipe as stdin (what the student types) and the write
end of another as stdout (what the guest prints), and keeps the other two ends, non-blocking,
for its event loop.

Why pipes and not a socket pair: the UART passes QEMU one byte per write. On a socket every
byte becomes a buffer of its own, so a few hundred bytes not yet read by Python make QEMU's
write fail with EAGAIN, and the UART retries later, when the host says the socket is writable.
Live, that only delays output; under record/replay it breaks the recording, because QEMU 7.2
records the failed write but not the host's later wake-up, and the replay takes another path
("Missing character write event in the replay log"). A pipe packs the bytes into pages, so
its backlog is 64 KiB (here raised to 1 MiB where the system allows) of output, not a few
hundred bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os

PIPE_BYTES = 1 << 20  # asked for; unprivileged users get up to /proc/sys/fs/pipe-max-size (1 MiB)
READ_CHUNK = 65536


class SerialPipes:
    """Both directions of one serial console; `theirs` go to QEMU, the rest stays here."""

    def __init__(self) -> None:
        self._input_read, self._input_write = os.pipe2(os.O_CLOEXEC)
        self._output_read, self._output_write = os.pipe2(os.O_CLOEXEC)
        with contextlib.suppress(OSError):  # a smaller pipe still works, it just holds less
            fcntl.fcntl(self._output_write, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        os.set_blocking(self._output_read, False)
        os.set_blocking(self._input_write, False)

    @property
    def theirs(self) -> tuple[int, int]:
        """(stdin, stdout) for QEMU."""
        return self._input_read, self._output_write

    def close_theirs(self) -> None:
        """After QEMU has started: its copies are the only ones, so its exit is our EOF."""
        for fd in (self._input_read, self._output_write):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._input_read = self._output_write = -1

    async def read(self) -> bytes:
        """The next output the guest printed; b"" once QEMU has exited (or on an error)."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                return os.read(self._output_read, READ_CHUNK)
            except BlockingIOError:
                await _wait(loop, self._output_read, writing=False)
            except OSError:
                return b""

    def read_available(self) -> bytes:
        """Whatever output is waiting in the pipe now, without waiting for more."""
        chunks = []
        while True:
            try:
                data = os.read(self._output_read, READ_CHUNK)
            except (BlockingIOError, OSError):
                break
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks)

    async def write(self, data: bytes) -> None:
        """Type `data` into the guest's console; raises OSError when QEMU is gone."""
        loop = asyncio.get_running_loop()
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self._input_write, view):]
            except BlockingIOError:
                await _wait(loop, self._input_write, writing=True)

    def close(self) -> None:
        self.close_theirs()
        for fd in (self._input_write, self._output_read):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._input_write = self._output_read = -1


async def _wait(loop: asyncio.AbstractEventLoop, fd: int, *, writing: bool) -> None:
    """Until `fd` is readable (or writable); the loop watches it only meanwhile."""
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    (loop.add_writer if writing else loop.add_reader)(fd, wake)
    try:
        await ready
    finally:
        (loop.remove_writer if writing else loop.remove_reader)(fd)
