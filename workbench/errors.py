"""Every error the workbench raises, rooted at one class.

Messages are written for a student: they say what happened, what the workbench saw, and
what to do next. Each subclass carries the context a program may want to inspect.
"""

from __future__ import annotations

from collections.abc import Iterable


class WorkbenchError(Exception):
    """Root of every error raised by the workbench."""


class InvalidInput(WorkbenchError, ValueError):
    """Something the caller passed cannot be used (a value, a name, a path, a file).

    It is raised before anything changes, so nothing is lost; the message says what is
    allowed. It is also a ValueError, which is what such a mistake is in Python.
    """


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """The end of a message about a missing `name`: ` Did you mean: a, b?` with the first five of
    `known` (sorted) that contain it, case aside; empty when none does."""
    close = sorted(other for other in known if name.lower() in other.lower())[:5]
    return f" Did you mean: {', '.join(close)}?" if close else ""
