"""No QEMU in the unit tests: a test here that starts one fails, and so does one marked to need it.

Tests that boot a guest belong in tests/integration. Two guards keep it so:

- at collection, a test in tests/unit marked `qemu` or `browser` is an error;
- while a unit test runs, an audit hook (PEP 578) sees every program this process starts
  (subprocess, os.posix_spawn, os.exec*, os.system) and refuses any `qemu-system-*` with an error,
  and a `qemu-system-*` stub first on PATH does the same for programs started by its children.
  Either way the test fails, even if the code under test caught the error.
"""

from __future__ import annotations

import os
import shlex
import stat
import sys
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

UNIT = Path(__file__).resolve().parent
QEMU = "qemu-system-"
FORBIDDEN_MARKERS = ("qemu", "browser")
_SPAWN_EVENTS = {"subprocess.Popen", "os.posix_spawn", "os.exec", "os.system", "os.spawn"}


class QemuInUnitTest(RuntimeError):
    """A unit test started QEMU."""


_guard: dict[str, Any] = {"active": False, "started": [], "log": None}  # on only while a unit test runs


def _audit(event: str, args: tuple[Any, ...]) -> None:
    """The audit hook (it cannot be removed, so it does nothing outside a unit test)."""
    if not _guard["active"] or event not in _SPAWN_EVENTS:
        return
    command = _command_of(event, args)
    if any(Path(word).name.startswith(QEMU) for word in command):
        _guard["started"].append(shlex.join(command))
        raise QemuInUnitTest(f"a unit test may not start QEMU (move it to tests/integration): {command}")


def _words(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:  # unbalanced quotes: still look at each word
        return text.split()


def _command_of(event: str, args: tuple[Any, ...]) -> list[str]:
    """The program and its arguments, as words (a shell command is split into its words)."""
    paths = (str, bytes, os.PathLike)
    if event == "os.system":
        executable, argv = None, [args[0]]
    elif event == "os.spawn":  # (mode, path, args, env)
        executable, argv = args[1], args[2]
    else:  # subprocess.Popen (executable, args, cwd, env); os.exec and os.posix_spawn (path, args, env)
        executable, argv = args[0], args[1]
    if isinstance(argv, paths):
        argv = [argv]
    words = [os.fsdecode(word) for word in (argv or []) if isinstance(word, paths)]
    if isinstance(executable, paths):
        words.insert(0, os.fsdecode(executable))
    return [part for word in words for part in _words(word)]  # sh -c "...": the words a shell would run


sys.addaudithook(_audit)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    wrong = [item.nodeid for item in items
             if UNIT in Path(item.path).parents and any(item.get_closest_marker(m) for m in FORBIDDEN_MARKERS)]
    if wrong:
        raise pytest.UsageError("tests/unit runs without QEMU or a browser; move these to tests/integration: "
                                + ", ".join(wrong))


@pytest.fixture(scope="session")
def qemu_stubs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A directory of `qemu-system-*` stubs that log their command line and fail, and the log."""
    stubs = tmp_path_factory.mktemp("no-qemu")
    log = stubs / "started.log"
    names = {"qemu-system-x86_64", "qemu-system-i386"}
    names |= {Path(p).name for d in os.get_exec_path() if Path(d).is_dir() for p in Path(d).glob(QEMU + "*")}
    for name in names:
        stub = stubs / name
        stub.write_text(f'#!/bin/sh\necho "$0 $*" >> {shlex.quote(str(log))}\n'
                        f'echo "a unit test may not start QEMU (move it to tests/integration)" >&2\nexit 1\n')
        stub.chmod(stub.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return stubs, log


@pytest.fixture(autouse=True)
def no_qemu(qemu_stubs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    stubs, log = qemu_stubs
    monkeypatch.setenv("PATH", f"{stubs}{os.pathsep}{os.environ.get('PATH', '')}")
    log.unlink(missing_ok=True)
    _guard.update(active=True, started=[], log=log)
    try:
        yield
    finally:
        _guard["active"] = False


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item,
                              call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A test that started QEMU fails, whatever became of the error its start met."""
    report = yield
    log = _guard.get("log")
    started = [*_guard["started"], *(log.read_text().splitlines() if log is not None and log.exists() else [])]
    if started and report.when in ("setup", "call") and not report.failed:
        report.outcome = "failed"
        report.longrepr = "this unit test started QEMU (it belongs in tests/integration):\n" + "\n".join(started)
    return report
