"""Live views of the machine, its page tables and its address space, for JupyterLab.

Each view is an anywidget whose front-end is one ES module in `widgets/`, plus a static HTML
form in the same output bundle for places that cannot run it (GitHub, nbviewer, nbval).

    MachineView(machine)                    state, buttons, live serial console
    PageTableExplorer(snapshot_or_machine)  the tables as a lazily opened tree
    Translator(snapshot_or_machine, vaddr)  one vaddr's bits, walk and result
    AddressSpaceMap(snapshot, image)        the whole address space as one zoomable strip
    FrameMap(machine)                       every physical frame: owner, mappings, errors
    StaleTlbView(machine)                   a page's frame by the tables beside the frame a CPU read
    SnapshotDiff(before, after)             two snapshots side by side
    BuildView(workspace)                    the source with the compiler's diagnostics
    Inspector(snapshot_or_machine)          map, explorer and translator, linked
    TraceView(trace, ...)                   calls into the kernel, instruction by instruction
    DebuggerView(debugger)                  source, breakpoints, steps, stack, registers
    DebuggerPanel(debugger)                 the debugger view and the page tables at its CR3
    TimelineView(replay, timeline)          a recording along its instruction count; click to go
"""

from __future__ import annotations

from workbench.views._base import ViewError
from workbench.views.address_map import AddressSpaceMap
from workbench.views.build_view import BuildView
from workbench.views.debugger_view import DebuggerPanel, DebuggerView
from workbench.views.frame_map import FrameMap
from workbench.views.inspector import Inspector
from workbench.views.machine_view import MachineView
from workbench.views.pagetable import PageTableExplorer
from workbench.views.snapshot_diff import SnapshotDiff
from workbench.views.stale_tlb import StaleTlbView
from workbench.views.timeline_view import TimelineView
from workbench.views.trace_view import TraceView
from workbench.views.translator import Translator

__all__ = [
    "AddressSpaceMap",
    "BuildView",
    "DebuggerPanel",
    "DebuggerView",
    "FrameMap",
    "Inspector",
    "MachineView",
    "PageTableExplorer",
    "SnapshotDiff",
    "StaleTlbView",
    "TimelineView",
    "TraceView",
    "Translator",
    "ViewError",
]
