"""Every error the workbench raises, rooted at one class.

Messages are written for a student: they say what happened, what the workbench saw, and
what to do next. Each subclass carries the context a program may want to inspect.
"""

from __future__ import annotations


class WorkbenchError(Exception):
    """Root of every error raised by the workbench."""
