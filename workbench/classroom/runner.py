"""A notebook's code cells run in a plain IPython shell, for `workbench verify-grades`.

verify-grades (verify.py) runs the instructor's cells once more for each submission, in a fresh
sandbox (sandbox.py, `--checks`). It needs what a Jupyter kernel would give nbgrader, each
cell's outputs, but not the kernel: no ZeroMQ, no messages per cell, no client. So the sandbox
runs this module as a plain Python process:

    python -m workbench.classroom.runner < cells.json > outputs.jsonl

It reads `{"cells": [[index, source], ...], "seconds": N}` from its standard input, runs each
source in one IPython shell (the same shell, display hook and formatters as ipykernel's, so the
same text/plain and the same errors), and writes one JSON line per cell as soon as it is done:
`{"index": index, "outputs": [...]}`, outputs as nbformat records them (stream, display_data,
execute_result, error). A cell still running after N seconds is interrupted, as nbclient
interrupts a kernel; the next cell runs.

Only the instructor's cells and the answers handed in as plain data run here (verify.py builds
the cells), so nothing in this process is the student's code.
"""

from __future__ import annotations

import io
import json
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, TextIO

from IPython.core.displayhook import DisplayHook
from IPython.core.displaypub import DisplayPublisher
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

Output = dict[str, Any]


class _Cell:
    """The outputs of the cell that runs now."""

    outputs: list[Output] = []  # noqa: RUF012 - one list per cell, replaced by each run
    clear_pending = False
    running = False

    @classmethod
    def add(cls, output: Output) -> None:
        if cls.clear_pending:
            cls.outputs.clear()
            cls.clear_pending = False
        last = cls.outputs[-1] if cls.outputs else None
        if (output["output_type"] == "stream" and last is not None and last["output_type"] == "stream"
                and last["name"] == output["name"]):
            last["text"] += output["text"]  # as nbclient joins a stream's messages
        else:
            cls.outputs.append(output)


class _Stream(io.TextIOBase):
    """sys.stdout or sys.stderr: what is written becomes a stream output of the cell."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if text:
            _Cell.add({"output_type": "stream", "name": self.name, "text": text})
        return len(text)


class _ResultHook(DisplayHook):
    """The cell's last value, as ipykernel sends it: an execute_result with every format."""

    def start_displayhook(self) -> None:
        self._is_active = True

    def write_output_prompt(self) -> None:
        pass

    def write_format_data(self, format_dict: dict[str, Any], md_dict: dict[str, Any] | None = None) -> None:
        _Cell.add({"output_type": "execute_result", "data": format_dict, "metadata": md_dict or {},
                   "execution_count": self.shell.execution_count})  # type: ignore[union-attr]

    def finish_displayhook(self) -> None:
        self._is_active = False


class _Publisher(DisplayPublisher):
    """display(...): a display_data output of the cell."""

    def publish(self, data: dict[str, Any], metadata: dict[str, Any] | None = None, *args: Any,
                **keywords: Any) -> None:
        _Cell.add({"output_type": "display_data", "data": data, "metadata": metadata or {}})

    def clear_output(self, wait: bool = False) -> None:
        if wait:
            _Cell.clear_pending = True
        else:
            _Cell.outputs.clear()


class _Shell(InteractiveShell):
    """An IPython shell whose errors become error outputs, as ipykernel's do."""

    def _showtraceback(self, etype: type[BaseException], evalue: BaseException, stb: list[str]) -> None:
        _Cell.add({"output_type": "error", "ename": etype.__name__, "evalue": str(evalue), "traceback": stb})


def _interrupt(number: int, frame: FrameType | None) -> None:
    if _Cell.running:  # a signal that comes as the cell ends interrupts nothing
        raise KeyboardInterrupt  # what an interrupted kernel raises in the cell


@contextmanager
def _captured() -> Iterator[None]:
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Stream("stdout"), _Stream("stderr")
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


def _plain(outputs: list[Output]) -> list[Output]:
    """Outputs as JSON can carry them: a value of another kind becomes its text."""
    return json.loads(json.dumps(outputs, default=str))  # type: ignore[no-any-return]


def run(cells: list[tuple[int, str]], seconds: float, results: TextIO) -> None:
    """Run each cell's source in one shell; write each cell's outputs to `results` when it is done."""
    config = Config()
    config.HistoryManager.enabled = False  # nothing reads the history of a verification
    shell = _Shell.instance(config=config, displayhook_class=_ResultHook, display_pub_class=_Publisher)
    signal.signal(signal.SIGALRM, _interrupt)
    for index, source in cells:
        _Cell.outputs, _Cell.clear_pending = [], False
        with _captured():
            _Cell.running = True
            signal.setitimer(signal.ITIMER_REAL, seconds)
            try:
                shell.run_cell(source, store_history=True)  # type: ignore[no-untyped-call]
            except KeyboardInterrupt:  # outside the shell's own handling of the cell's code
                _Cell.add({"output_type": "error", "ename": "KeyboardInterrupt", "evalue": "", "traceback": []})
            finally:
                _Cell.running = False
                signal.setitimer(signal.ITIMER_REAL, 0)
        results.write(json.dumps({"index": index, "outputs": _plain(_Cell.outputs)}) + "\n")
        results.flush()


def main() -> int:
    """Cells from standard input, outputs to standard output; whatever else writes to the
    process's own descriptors 1 and 2 goes to its standard error."""
    request = json.load(sys.stdin)
    results = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    cells = [(int(index), str(source)) for index, source in request["cells"]]
    run(cells, float(request["seconds"]), results)
    results.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
