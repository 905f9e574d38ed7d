"""Builds of the students' pristine source, made once by the grader, that a graded workspace's
first build starts from.

Under the grader every workspace is new (nbgrader does not hand in build output), so every build
of every submission would compile the whole kernel again, twice per notebook with verify-grades.
Instead the grader's sandbox launcher (classroom/sandbox.py), outside any sandbox, builds the
skeleton once per content and compiler version into the instructor's cache (`make_prebuilt`),
one build directory per scenario and application, exactly as a workspace names and builds them,
and binds that tree read-only at PREBUILT_PATH in every sandbox. A workspace's first build of a
combination (`seed`) copies from it each object whose source and every file it was compiled
from (its make dependency file) are byte for byte the workspace's own; make compiles the others
and always links anew. What is copied is what compiling the same bytes would make.

No submission can write into what another reads: the tree is made from the skeleton alone before
any sandbox starts, and reaches each sandbox only as a read-only bind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

PREBUILT_PATH = Path("/run/workbench-grader/prebuilt")  # where the grader binds it in a sandbox
BUILD_OUTPUT = "build"
COMPILED = (".c", ".h", ".S", ".s")  # a change here rebuilds only what its dependency files name
PROSE = (".md",)
GENERATED = ("config.h", "selection", "components.h")  # written by make from the build's own variables
LINKER_SCRIPT = "kernel.ld"


def _files(root: Path) -> Iterator[Path]:
    """The source files of a tree, relative to it (never its build output)."""
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if relative.parts[0] != BUILD_OUTPUT and path.is_file() and not path.is_symlink():
            yield relative


def _recipe(root: Path) -> set[Path]:
    """The files that say how to build rather than what: the Makefile, *.mk, the scripts."""
    return {relative for relative in _files(root) if relative.suffix not in (*COMPILED, *PROSE)}


def _same(first: Path, second: Path) -> bool:
    try:
        return first.read_bytes() == second.read_bytes()
    except OSError:
        return False


def _prerequisites(dependency_file: Path) -> list[str]:
    """The files make's dependency file (-MMD) says its target was made from."""
    text = dependency_file.read_text().replace("\\\n", " ")
    first_rule = text.split("\n", 1)[0]
    _, _, prerequisites = first_rule.partition(": ")
    return prerequisites.split()


class _Fit:
    """Which of the prebuilt tree's files a workspace's own source would make the same."""

    def __init__(self, workspace: Path, prebuilt: Path, build_dir: str) -> None:
        self.workspace, self.prebuilt, self.build_dir = workspace, prebuilt, build_dir
        self._sources: dict[str, bool] = {}

    def source(self, relative: str) -> bool:
        """The file `relative` names (as the compiler wrote it: `kernel/x/../internal.h` too) is
        in the workspace itself, reached through no symbolic link, and the same as the tree's."""
        if relative not in self._sources:
            normal = Path(os.path.normpath(relative))
            ours = self.workspace / normal
            self._sources[relative] = (not normal.is_absolute() and normal.parts[0] != ".."
                                       and ours.is_file() and ours.resolve() == self.workspace.resolve() / normal
                                       and _same(ours, self.prebuilt / normal))
        return self._sources[relative]

    def made_from(self, dependency_file: Path) -> bool:
        """True when everything the target of `dependency_file` was made from fits."""
        try:
            prerequisites = _prerequisites(dependency_file)
        except (OSError, UnicodeDecodeError):
            return False
        generated = {f"{self.build_dir}/{name}" for name in GENERATED}
        return bool(prerequisites) and all(name in generated or self.source(name) for name in prerequisites)


def seed(workspace: Path, build_dir: str, prebuilt: Path = PREBUILT_PATH) -> int:
    """Start `workspace`'s build directory `build_dir` (relative, as build_image names it) from
    the prebuilt tree, if it has none yet: each object that fits, with its dependency file, and
    the files make generates. Returns how many objects were copied (0: make builds everything).

    The copies get the newest time of the workspace's own files, so that make takes them as up
    to date and any later edit as newer. Nothing is copied when the recipe differs (the
    Makefile, *.mk, the scripts) or a file's time lies in the future.
    """
    origin, target = prebuilt / build_dir, workspace / build_dir
    if Path(build_dir).is_absolute() or not origin.is_dir() or target.exists():
        return 0
    recipe = _recipe(workspace)
    if recipe != _recipe(prebuilt) or not all(_same(workspace / name, prebuilt / name) for name in recipe):
        return 0
    newest = max((workspace / relative).stat().st_mtime_ns for relative in _files(workspace))
    if newest > time.time_ns():
        return 0
    fit = _Fit(workspace, prebuilt, build_dir)
    chosen = [origin / name for name in GENERATED]
    objects = [path for path in origin.rglob("*.o") if fit.made_from(path.with_suffix(".d"))]
    chosen += [path for obj in objects for path in (obj, obj.with_suffix(".d"))]
    script = origin / LINKER_SCRIPT
    if fit.made_from(script.with_name(LINKER_SCRIPT + ".d")):
        chosen += [script, script.with_name(LINKER_SCRIPT + ".d")]
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".seeding-", dir=target.parent))
        staging.chmod(0o755)  # as make would have made it
    except OSError:
        return 0
    try:
        for path in chosen:
            if path.is_file():
                copy = staging / path.relative_to(origin)
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, copy)
                os.utime(copy, ns=(newest, newest))
        os.rename(staging, target)  # whole or not at all: make never sees half a directory
    except OSError:
        return 0  # make builds it all, as without a prebuilt tree
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return len(objects)
