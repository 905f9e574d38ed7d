"""The guest's serial console as the host sees it: a bounded transcript with a read cursor.

Bytes arrive on the machine's event-loop thread; `wait_for` runs on the caller's thread.
A guest that floods its console cannot exhaust the notebook: only the newest `limit`
characters are kept, and `dropped` counts what was discarded.
"""

from __future__ import annotations

import codecs
import re
import threading
import time
from collections.abc import Callable

DEFAULT_LIMIT = 1 << 20  # characters kept; about a thousand screens of text


class Console:
    """A bounded, thread-safe transcript of everything the guest printed."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        if limit < 1024:
            raise ValueError("a console keeps at least 1024 characters")
        self.limit = limit
        self.dropped = 0  # characters discarded from the front since the start
        self._text = ""
        self._cursor = 0  # index into _text where the next wait_for starts searching
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._changed = threading.Condition()
        self._closed = False
        self._listeners: list[Callable[[str], None]] = []

    # Called on the event-loop thread.

    def feed(self, data: bytes) -> str:
        """Append raw bytes from the guest; returns the decoded text that was added."""
        text = self._decoder.decode(data).replace("\r\n", "\n")
        if not text:
            return text
        with self._changed:
            self._text += text
            excess = len(self._text) - self.limit
            if excess > 0:
                self._text = self._text[excess:]
                self._cursor = max(0, self._cursor - excess)
                self.dropped += excess
            self._changed.notify_all()
        for listener in list(self._listeners):
            listener(text)
        return text

    def close(self) -> None:
        """No more output will come (QEMU is gone); wake every waiter."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def wake(self) -> None:
        """Wake waiters so that they re-check the machine's state."""
        with self._changed:
            self._changed.notify_all()

    def add_listener(self, listener: Callable[[str], None]) -> None:
        """Call `listener(text)` on the loop thread for every piece of new output."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[str], None]) -> None:
        """Stop calling `listener` (nothing happens if it was not added)."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    # Called from any thread.

    @property
    def text(self) -> str:
        """Everything kept so far."""
        with self._changed:
            return self._text

    @property
    def unread(self) -> str:
        """What arrived after the last match of `wait_for`."""
        with self._changed:
            return self._text[self._cursor :]

    def tail(self, lines: int = 10) -> str:
        """The last `lines` lines, for error messages."""
        return "\n".join(self.text.rstrip("\n").splitlines()[-lines:])

    def skip_to_end(self) -> None:
        """Forget unread output, so the next wait_for sees only what comes after now."""
        with self._changed:
            self._cursor = len(self._text)

    def wait_for(
        self,
        pattern: str | re.Pattern[str],
        deadline: float,
        should_stop: Callable[[], bool],
    ) -> re.Match[str] | None:
        """Block until `pattern` appears after the cursor and move the cursor past it.

        A plain string is matched literally. Returns None when `deadline` (time.monotonic)
        passes, the console closes, or `should_stop()` turns true; the caller says why.
        """
        regex = re.compile(re.escape(pattern)) if isinstance(pattern, str) else pattern
        with self._changed:
            while True:
                match = regex.search(self._text, self._cursor)
                if match is not None:
                    self._cursor = match.end()
                    return match
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed or should_stop():
                    return None
                self._changed.wait(min(remaining, 0.25))
