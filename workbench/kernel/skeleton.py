"""The students' unikernel source, made from kernel-src by taking the solutions out.

kernel-src holds the code that exercises ask students to write, each piece between two lines

    /* BEGIN SOLUTION(name) */
    ...
    /* END SOLUTION(name) */

next to the `EXERCISE(NN)` comment that says what to write. The skeleton is kernel-src without
those blocks, markers and all, as Linux Kernel Labs makes its skeletons from its solutions: one
source, and the students' copy is never kept by hand. Workspaces start from the skeleton; the
instructor's lesson puts a solution back with `Workspace.solve(name)`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from workbench import resources
from workbench.errors import WorkbenchError

BLOCK = re.compile(r"^[ \t]*/\* (?P<end>BEGIN|END) SOLUTION\((?P<name>[a-z0-9-]+)\) \*/[ \t]*\n", re.MULTILINE)
TEXT_SUFFIXES = (".c", ".h", ".S", ".ld", ".md")
BUILD_OUTPUT = "build"
ANCHOR_LINES = 3  # a block goes back after these lines of the skeleton: enough to be unique


class SkeletonError(WorkbenchError):
    """The solution markers of a file do not pair up, or a solution cannot be put back."""


@dataclass(frozen=True)
class Block:
    """One solution block: its file, its code, and the skeleton line it follows."""

    path: str
    name: str
    code: str  # the lines between the markers
    anchor: tuple[str, ...]  # the skeleton's last lines above the block, the last one not blank
    gap: int = 0  # blank lines between the anchor and the block


def parse(text: str, path: str = "") -> tuple[str, list[Block]]:
    """The skeleton of one file's text, and its solution blocks in order."""
    kept: list[str] = []
    blocks: list[Block] = []
    position, open_name, open_at = 0, "", 0
    for marker in BLOCK.finditer(text):
        if marker["end"] == "BEGIN":
            if open_name:
                raise SkeletonError(f"{path}: SOLUTION({marker['name']}) begins inside SOLUTION({open_name})")
            kept.append(text[position:marker.start()])
            open_name, open_at = marker["name"], marker.end()
        else:
            if marker["name"] != open_name:
                raise SkeletonError(f"{path}: END SOLUTION({marker['name']}) without its BEGIN")
            above = "".join(kept).splitlines()
            gap = 0
            while above and not above[-1].strip():
                above.pop()
                gap += 1
            anchor = tuple(above[-ANCHOR_LINES:])
            blocks.append(Block(path, open_name, text[open_at:marker.start()], anchor, gap))
            open_name = ""
        position = marker.end()
    if open_name:
        raise SkeletonError(f"{path}: SOLUTION({open_name}) has no END")
    kept.append(text[position:])
    return "".join(kept), blocks


def _text_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES
                  and BUILD_OUTPUT not in p.relative_to(root).parts[:1])


def solutions(name: str, source: Path | None = None) -> list[Block]:
    """Every block of solution `name` in the solution source (kernel-src)."""
    root = source or resources.kernel_source()
    found = [block for path in _text_files(root)
             for block in parse(path.read_text(), str(path.relative_to(root)))[1] if block.name == name]
    if not found:
        if not any(BLOCK.search(path.read_text()) for path in _text_files(root)):
            raise SkeletonError(f"there is no solution {name!r} to put back: this copy of the workbench is "
                                "the students' edition, which carries no solutions")
        raise SkeletonError(f"kernel-src has no solution called {name!r}")
    return found


def skeleton_source(source: Path | None = None) -> Path:
    """The skeleton of `source` (kernel-src), made once per content under the cache directory."""
    root = (source or resources.kernel_source()).resolve()
    digest = hashlib.sha256()
    files = sorted(p for p in root.rglob("*") if p.is_file() and BUILD_OUTPUT not in p.relative_to(root).parts[:1])
    for path in files:
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    target = resources.cache_dir() / "skeleton" / digest.hexdigest()[:16]
    if (target / "Makefile").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".making-", dir=target.parent))
    try:
        for path in files:
            relative = path.relative_to(root)
            (staging / relative).parent.mkdir(parents=True, exist_ok=True)
            if path.suffix in TEXT_SUFFIXES:
                (staging / relative).write_text(parse(path.read_text(), str(relative))[0])
            else:
                shutil.copy2(path, staging / relative)
            shutil.copymode(path, staging / relative)
        with contextlib.suppress(OSError):  # another process made it first: theirs is the same
            os.rename(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
