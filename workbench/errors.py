"""Every error the workbench raises, rooted at one class.

Messages are written for a student: they say what happened, what the workbench saw, and
what to do next. Each subclass carries the context a program may want to inspect.
"""

from __future__ import annotations


class WorkbenchError(Exception):
    """Root of every error raised by the workbench."""


class InvalidInput(WorkbenchError, ValueError):
    """Something the caller passed cannot be used (a value, a name, a path, a file).

    It is raised before anything changes, so nothing is lost; the message says what is
    allowed. It is also a ValueError, which is what such a mistake is in Python.
    """
