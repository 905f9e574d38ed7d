"""A private asyncio event loop on a daemon thread, with a synchronous facade.

qemu.qmp is asyncio, but a Jupyter kernel already runs an event loop on its main thread, so
`asyncio.run` fails there. Each Machine therefore owns one of these loops; notebook cells,
nbval, pytest and scripts all call into it the same way, with a timeout on every call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """One event loop running forever on its own daemon thread until `close()`."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    @property
    def is_current(self) -> bool:
        """True when called from the loop's own thread (where `run` would deadlock)."""
        return threading.current_thread() is self._thread

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run `coroutine` on the loop and wait for its result, at most `timeout` seconds.

        Raises TimeoutError (after cancelling the coroutine) when the deadline passes.
        """
        if self.is_current:
            coroutine.close()
            raise RuntimeError("LoopThread.run called from its own thread")
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"no answer within {timeout:g} s") from None

    def call_soon(self, callback: Callable[..., object], *args: object) -> None:
        """Schedule a plain callback on the loop from any thread."""
        self.loop.call_soon_threadsafe(callback, *args)

    def close(self, timeout: float = 5.0) -> None:
        """Cancel what is still pending, stop the loop and join its thread."""
        if not self._thread.is_alive():
            return

        async def cancel_pending() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            self.run(cancel_pending(), timeout)
        except (TimeoutError, RuntimeError):
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
