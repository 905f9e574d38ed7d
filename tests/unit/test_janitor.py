"""Temporary directories of a process killed outright are removed all the same (workbench/janitor.py).

nbval and kernel managers stop a Jupyter kernel with SIGKILL, which runs no finaliser: lesson 07
keeps its replays open until the kernel ends, and their directories must not outlive it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
PROCESS = """
import sys, tempfile, time
from workbench.janitor import forget, remove_at_exit
kept, removed = tempfile.mkdtemp(dir=sys.argv[1]), tempfile.mkdtemp(dir=sys.argv[1])
remove_at_exit(kept)
remove_at_exit(removed)
forget(removed)  # as after close(): the watcher leaves it (and whatever now has its name) alone
print(kept, removed, flush=True)
time.sleep(60)
"""


def gone_within(path: Path, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return not path.exists()


def test_a_killed_process_leaves_no_registered_directory(tmp_path: Path) -> None:
    process = subprocess.Popen([sys.executable, "-c", PROCESS, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(REPOSITORY)}, start_new_session=True)
    assert process.stdout is not None
    kept, removed = (Path(name) for name in process.stdout.readline().split())
    assert kept.is_dir() and removed.is_dir()
    (kept / "checkpoints.qcow2").write_bytes(b"x" * 4096)
    os.killpg(process.pid, signal.SIGKILL)  # the whole group, as a kernel manager kills a kernel
    process.wait()
    assert gone_within(kept, 10)
    assert removed.is_dir()  # forgotten: not the watcher's to remove
