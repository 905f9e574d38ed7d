"""The files the workbench ships beside its code: the unikernel source, the views' front-end and
the lessons.

The repository keeps them at its top (`kernel-src/`, `widgets/`, `lessons/`); pyproject.toml
copies them into a wheel as `workbench/kernel_src`, `workbench/widgets` and `workbench/lessons`.
So a wheel installed anywhere finds them inside the package, and a source checkout (the
editable install of ./start-lab, or plain PYTHONPATH) beside it. Nothing here is written to:
builds of the pristine source go to a cache directory, and lessons are copied before they run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from workbench.errors import InvalidInput

PACKAGE = Path(__file__).resolve().parent  # the installed or checked-out `workbench` folder
DEFAULT_LAB_DIR = Path.home() / "unikernel-workbench"


def _shipped(in_wheel: str, in_repository: str) -> Path:
    installed = PACKAGE / in_wheel
    return installed if installed.is_dir() else PACKAGE.parent / in_repository


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


class BadDirectory(InvalidInput):
    """A directory to write into that cannot be used: none given, a file, inside the package, ..."""


def own_directory(given: str | Path, purpose: str, *, refuse: Path | None = None) -> Path:
    """`given`, resolved, as a directory of the user's own to write into, created if missing.

    `purpose` says what it is for, in the messages ("the lessons"); `refuse` is a directory
    it must not be (the lessons themselves, for their student edition).
    """
    if not isinstance(given, (str, Path)) or not str(given).strip():
        raise BadDirectory(f"{purpose} need a directory: give its name")
    if "\0" in str(given):
        raise BadDirectory(f"{str(given)!r} is not a directory name: it contains a NUL character")
    try:
        directory = Path(given).expanduser().resolve()
    except (OSError, RuntimeError) as error:  # RuntimeError: a symlink loop (Python 3.11/3.12)
        raise BadDirectory(f"{given} cannot be used for {purpose}: a symbolic link in it points in a loop") from error
    if refuse is not None and directory == refuse.resolve():
        raise BadDirectory(f"{directory} holds the lessons themselves; choose another directory for {purpose}")
    if directory == PACKAGE or PACKAGE in directory.parents:
        raise BadDirectory(f"{directory} is inside the installed workbench package; choose a directory of your own "
                           f"for {purpose}")
    try:
        if directory.exists() and not directory.is_dir():
            raise BadDirectory(f"{directory} is a file, not a directory; choose a directory for {purpose}")
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BadDirectory(f"cannot put {purpose} in {directory}: {error.strerror or error}") from error
    return directory


def copy_lessons(directory: str | Path) -> list[str]:
    """Copy into `directory` each shipped lesson it does not have yet; returns their names.

    A lesson already there is the student's own and is never overwritten. The shipped lessons'
    own directory (a source checkout's lessons/) is used as it is.
    """
    shipped = lessons().resolve()
    with contextlib.suppress(TypeError, ValueError, OSError, RuntimeError):  # own_directory says what is wrong
        if str(directory).strip() and Path(directory).expanduser().resolve() == shipped:
            return []
    target = own_directory(directory, "the lessons")
    copied = []
    try:
        for lesson in sorted(shipped.glob("[0-9][0-9]-*.ipynb")):
            if not (target / lesson.name).exists():
                shutil.copyfile(lesson, target / lesson.name)
                copied.append(lesson.name)
    except OSError as error:
        raise BadDirectory(f"cannot put the lessons in {target}: {error.strerror or error}") from error
    return copied
