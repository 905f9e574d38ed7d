"""Temporary directories removed when this process ends, however it ends.

A finaliser or atexit removes a replay's checkpoints and a recording's log when Python exits
normally; a Jupyter kernel that is killed (nbval stops kernels with SIGKILL, a kernel manager
does after its grace period, the OOM killer at once) runs neither. So the first directory
handed to `remove_at_exit` starts a watcher: a small Python process in a session of its own
(a kill of the kernel's process group does not reach it) that reads a pipe whose writing end
only this process holds (not inherited across exec). When this process ends, however it ends,
the watcher reads the end of the pipe and removes every directory still registered.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

# The watcher: "+ PATH" registers a directory, "- PATH" forgets one already removed.
_WATCHER = """
import shutil, sys
paths = set()
for line in sys.stdin:
    sign, _, path = line.rstrip("\\n").partition(" ")
    (paths.add if sign == "+" else paths.discard)(path)
for path in paths:
    shutil.rmtree(path, ignore_errors=True)
"""

_lock = threading.Lock()
_watcher: subprocess.Popen[str] | None = None


def _tell(line: str) -> None:
    global _watcher  # noqa: PLW0603 - one watcher per process
    with _lock:
        if _watcher is None or _watcher.poll() is not None:
            _watcher = subprocess.Popen([sys.executable, "-I", "-c", _WATCHER], stdin=subprocess.PIPE,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
                                        start_new_session=True, cwd="/")
        pipe: IO[str] = _watcher.stdin  # type: ignore[assignment]
        with contextlib.suppress(OSError):  # a watcher gone: nothing more can be done
            pipe.write(line + "\n")
            pipe.flush()


def remove_at_exit(path: str | Path) -> None:
    """Remove the directory `path` when this process ends, unless `forget(path)` comes first."""
    if "\n" not in str(path):
        _tell(f"+ {Path(path).resolve()}")


def forget(path: str | Path) -> None:
    """`path` was removed already: the watcher leaves it alone (its name may be used again)."""
    with _lock:
        running = _watcher is not None and _watcher.poll() is None
    if running and "\n" not in str(path):
        _tell(f"- {Path(path).resolve()}")
