"""The files the workbench ships beside its code: the unikernel source, the views' front-end and
the lessons.

The repository keeps them at its top (`kernel-src/`, `widgets/`, `lessons/`); pyproject.toml
copies them into a wheel as `workbench/kernel_src`, `workbench/widgets` and `workbench/lessons`.
So a wheel installed anywhere finds them inside the package, and a source checkout (the
editable install of ./start-lab, or plain PYTHONPATH) beside it. Nothing here is written to:
builds of the pristine source go to a cache directory, and lessons are copied before they run.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .errors import WorkbenchError

_PACKAGE = Path(__file__).resolve().parent
DEFAULT_LAB_DIR = Path.home() / "unikernel-workbench"


def _shipped(in_wheel: str, in_repository: str) -> Path:
    installed = _PACKAGE / in_wheel
    return installed if installed.is_dir() else _PACKAGE.parent / in_repository


def kernel_source() -> Path:
    """The pristine unikernel source ($WORKBENCH_KERNEL_SRC overrides it, for the tests)."""
    configured = os.environ.get("WORKBENCH_KERNEL_SRC")
    return Path(configured) if configured else _shipped("kernel_src", "kernel-src")


def widgets() -> Path:
    """The views' ES modules and their CSS."""
    return _shipped("widgets", "widgets")


def lessons() -> Path:
    """The lesson notebooks as shipped, with their committed outputs."""
    return _shipped("lessons", "lessons")


def cache_dir() -> Path:
    """Where the workbench keeps what it can make again: $XDG_CACHE_HOME/unikernel-workbench."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "unikernel-workbench"


def copy_lessons(directory: Path) -> list[str]:
    """Copy into `directory` each shipped lesson it does not have yet; returns their names.

    A lesson already there is the student's own and is never overwritten. The shipped lessons'
    own directory (a source checkout's lessons/) is used as it is.
    """
    shipped = lessons().resolve()
    directory = directory.resolve()
    if directory == shipped:
        return []
    if _PACKAGE in directory.parents or directory == _PACKAGE:
        raise WorkbenchError(f"{directory} is inside the installed package; choose a directory of your own")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        copied = []
        for lesson in sorted(shipped.glob("[0-9][0-9]-*.ipynb")):
            if not (directory / lesson.name).exists():
                shutil.copyfile(lesson, directory / lesson.name)
                copied.append(lesson.name)
    except OSError as error:
        raise WorkbenchError(f"cannot put the lessons in {directory}: {error.strerror}") from error
    return copied
