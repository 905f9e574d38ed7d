"""The notebooks the browser tests open: every lesson, and one that shows every view."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import nbformat

from tests.support.jupyterlab_session import Browser, LabServer, NotebookPage

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
LESSONS = sorted((ROOT / "lessons").glob("[0-9][0-9]-*.ipynb"))
VIEWS_NOTEBOOK = "views.ipynb"

# The notebook the view tests run: every view, on the unikernel, each in its own cell.
VIEW_CELLS = [
    '''from workbench import Machine, Workspace
from workbench.views import (AddressSpaceMap, BuildView, MachineView, PageTableExplorer, SnapshotDiff,
                             Translator)

ws = Workspace.open("browser-views", fresh=True)
image = ws.build()
machine = Machine(image, name="browser-views").start()
machine.wait_for("> ")''',
    "MachineView(machine)",
    '''before = machine.snapshot("before alloc")
machine.request("alloc 2")
after = machine.snapshot("after alloc")
explorer = PageTableExplorer(machine)
explorer''',
    'Translator(explorer, "app_main")',
    "AddressSpaceMap(after, image, explorer=explorer)",
    "SnapshotDiff(before, after, hide_accessed_dirty=True)",
    '''ws.replace("app/main.c", 'console_printf("app: Hello from the unikernel!\\\\n");',
           'console_printf("app: Hello from the unikernel!\\\\n")')
BuildView(ws)''',
]


DEBUG_NOTEBOOK = "debug-views.ipynb"

# The debugger and the timeline, on the unikernel stopped at its first instruction and on a replay.
DEBUG_CELLS = [
    '''from workbench import Workspace
from workbench.debug.debugger import Debugger
from workbench.timetravel.replay import Recorder, Replay
from workbench.timetravel.timeline import index
from workbench.views import DebuggerView, TimelineView

ws = Workspace.open("browser-debug", fresh=True)
image = ws.build()
debugger = Debugger.boot(image, name="browser-debug")''',
    "DebuggerView(debugger)",
    '''recorder = Recorder(image, name="browser-recording")
machine = recorder.start()
machine.wait_for("> ")
machine.request("alloc 1")
recording = recorder.stop()
replay = Replay(recording, name="browser-replay")
TimelineView(replay, index(replay))''',
]


def views_notebook(cells: list[str] = VIEW_CELLS) -> str:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    return str(nbformat.writes(notebook))


@contextlib.contextmanager
def notebook_run(lab: LabServer, browser: Browser, name: str, cells: list[str]) -> Iterator[NotebookPage]:
    """`cells` as the notebook `name` in the lab, run as `notebook_opened` runs it."""
    (lab.root / name).write_text(views_notebook(cells))
    with notebook_opened(lab, browser, name) as page:
        yield page


@contextlib.contextmanager
def notebook_opened(lab: LabServer, browser: Browser, name: str) -> Iterator[NotebookPage]:
    """The lab's notebook `name`, opened and run top to bottom without an error; closed after
    (its kernel shut down with it), no script having failed meanwhile."""
    page = NotebookPage(lab, browser, name).open()
    page.run_all()
    assert page.errors() == [], page.errors()
    yield page
    page.assert_no_script_errors()
    page.close()
