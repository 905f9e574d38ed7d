"""Calls into the kernel side by side, instruction by instruction, as the guest executed them.

    TraceView(trace_call(machine), trace_syscall(machine))

Each column is one trace (workbench/debug/trace.py): a row per instruction, coloured by the privilege
level it ran at, with RSP, the stack it points into, and CR3. Stepping (the buttons, or a click
on a row) moves one marker through every column at once, so a student sees the `call`/`ret`
pair end while the system call is still saving registers.
"""

from __future__ import annotations

from typing import Any

import traitlets

from workbench.debug.trace import Trace, trace_html
from workbench.views._base import View, ViewError, box, module


class TraceView(View):
    """One or more traces side by side, with a step marker shared by all of them."""

    _esm = module("trace.js")
    _settable = ("step",)

    traces: traitlets.List[Any] = traitlets.List(
        help="The traces, each as Trace.to_json(): title, summary, steps and the state after them."
    ).tag(sync=True)
    step = traitlets.Int(0, help="The instruction marked in every trace, from 0; past a trace's end, its end."
                         ).tag(sync=True)

    def __init__(self, *traces: Trace) -> None:
        if not traces or not all(isinstance(t, Trace) for t in traces):
            raise ViewError("TraceView shows traces: TraceView(trace_call(machine), trace_syscall(machine))")
        self._traces = traces
        super().__init__(traces=[t.to_json() for t in traces])

    @traitlets.validate("step")
    def _valid_step(self, proposal: dict[str, Any]) -> int:
        value = proposal["value"]
        longest = max(t.instruction_count for t in self._traces)
        if not isinstance(value, int) or not 0 <= value <= longest:
            raise traitlets.TraitError(f"step must be between 0 and {longest}, not {value!r}")
        return value

    def __repr__(self) -> str:
        return "<TraceView: " + " | ".join(repr(t) for t in self._traces) + ">"

    def static_html(self) -> str:
        columns = "".join(f"<div style='flex:1 1 0;min-width:28em'>{trace_html(t)}</div>" for t in self._traces)
        return box("Calls into the kernel, instruction by instruction",
                   f"<div style='display:flex;gap:12px;align-items:flex-start;flex-wrap:wrap'>{columns}</div>")
