"""The grader's builds of the students' skeleton, made once and bound read-only into every
sandbox, where a workspace's first build starts from them (workbench/kernel/prebuilt.py).

`prebuilt_tree(skeleton)` runs in the sandbox's launcher, outside the sandbox, before the
submission's code: it returns the tree for this skeleton and toolchain from the instructor's
cache (hidden from submissions), making it first if it is not there. Made from the skeleton
alone, it holds nothing a submission wrote, and sandboxes only ever read it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from workbench import resources
from workbench.errors import WorkbenchError
from workbench.kernel.prebuilt import BUILD_OUTPUT
from workbench.kernel.toolchains import DEFAULT_TOOLCHAIN, TOOLCHAINS

FORMAT = b"prebuilt-1"  # part of the key: a new layout of the tree makes a new tree
TOOL_SECONDS = 10


def _versions(programs: list[str]) -> bytes:
    """The first line of each program's --version: an upgraded compiler makes a new tree."""
    found = b""
    for program in programs:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            done = subprocess.run([program, "--version"], capture_output=True, timeout=TOOL_SECONDS, check=False)
            found += program.encode() + b"\0" + done.stdout.split(b"\n", 1)[0] + b"\0"
    return found


def _combinations(skeleton: Path) -> Iterator[tuple[str, str]]:
    """(scenario, app) for each build directory made: every scenario of the application, and
    every other application as it is."""
    from workbench.kernel.build import SCENARIOS  # noqa: PLC0415 - build loads the ELF reader: only to build

    for scenario in SCENARIOS:
        yield scenario, "app"
    for app in sorted((skeleton / "apps").glob("*/config.mk")):
        yield "none", f"apps/{app.parent.name}"


def _make(skeleton: Path, tree: Path, toolchain: str) -> None:
    """Build every combination of a copy of `skeleton`, as a workspace would, into `tree`."""
    from workbench.kernel.build import build_image  # noqa: PLC0415 - build loads the ELF reader: only to build

    staging = Path(tempfile.mkdtemp(prefix=".making-", dir=tree.parent))
    try:
        staging.chmod(0o755)
        shutil.copytree(skeleton, staging, dirs_exist_ok=True, ignore=shutil.ignore_patterns(BUILD_OUTPUT))
        for scenario, app in _combinations(skeleton):
            build_image(staging, scenario=scenario, app=app, toolchain=toolchain)
        staging.rename(tree)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def prebuilt_tree(skeleton: Path) -> Path | None:
    """The prebuilt tree of `skeleton` for this machine's toolchain, made if missing; None when
    it cannot be made here (no cache to write, a build that fails): grading then builds all."""
    toolchain = DEFAULT_TOOLCHAIN
    key = hashlib.sha256(FORMAT + b"\0" + str(skeleton.resolve()).encode() + b"\0" + toolchain.encode() + b"\0"
                         + _versions([*TOOLCHAINS.get(toolchain, {}).values(), "make"])).hexdigest()[:16]
    root = resources.cache_dir() / "grader-builds"
    tree = root / key
    if tree.is_dir():
        return tree
    try:
        root.mkdir(parents=True, exist_ok=True)
        with (root / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # two graders at once: the second waits, then finds it
            if not tree.is_dir():
                _make(skeleton, tree, toolchain)
    except (OSError, WorkbenchError):
        return None
    return tree
