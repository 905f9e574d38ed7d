"""The debugger view: source with the current line, breakpoints, steps, stack, registers.

    DebuggerView(debugger)                 follows the debugger: every stop redraws it
    DebuggerPanel(debugger)                the view and a page-table explorer at the current CR3

A click on a line number sets or clears a breakpoint there; the buttons step an instruction,
a line, over a call, out of the function, or continue. Registers that changed since the stop
before are marked; the CR3 link shows the page tables the CPU is using now in the panel's
explorer. Python owns the state: the page sends `{"kind": "action"|"toggle"|"open"|"explore"}`
and draws the traits it gets back.
"""

from __future__ import annotations

from typing import Any

import traitlets

from workbench.debug.debugger import Debugger
from workbench.debug.stops import Stop
from workbench.errors import WorkbenchError
from workbench.views._base import CHANGED_COLOUR, Panel, View, ViewError, box, cell, esc, module, table

ACTIONS = ("stepi", "step", "next", "finish", "cont")
CONTINUE_TIMEOUT = 5.0  # a Continue button press runs the guest this long at most
STATIC_CONTEXT = 6  # source lines above and below the current one in the static form


class DebuggerView(View):
    """A stopped guest at source level; see the module docstring."""

    _esm = module("debugger.js")

    path = traitlets.Unicode("", help="The source file shown (relative to the source directory).").tag(sync=True)
    lines = traitlets.List(traitlets.Unicode(), help="That file's lines.").tag(sync=True)
    current = traitlets.Int(0, help="The line the guest is stopped at in that file (0: elsewhere).").tag(sync=True)
    breakpoint_lines = traitlets.List(traitlets.Int(), help="Lines of that file with a breakpoint.").tag(sync=True)
    files = traitlets.List(traitlets.Unicode(), help="The source files with code in the image.").tag(sync=True)
    stop = traitlets.Dict(help="Why and where the guest stopped: reason, function, path, line, mode, detail."
                          ).tag(sync=True)
    stack = traitlets.List(traitlets.Dict(), help="The frames: level, function, where, inlined, interrupted."
                           ).tag(sync=True)
    registers = traitlets.List(traitlets.Dict(), help="name, value (hex string) and whether it changed since "
                               "the stop before.").tag(sync=True)
    variables = traitlets.List(traitlets.Dict(), help="The current frame's parameters and locals: name, type, "
                               "value text.").tag(sync=True)
    cr3 = traitlets.Unicode("", help="CR3 now, hex (empty while paging is off).").tag(sync=True)
    busy = traitlets.Unicode("", help="The action being carried out, or empty.").tag(sync=True)

    def __init__(self, debugger: Debugger, *, explorer: Any = None) -> None:
        if not isinstance(debugger, Debugger):
            raise ViewError("DebuggerView shows a Debugger: Debugger.attach(machine) or Debugger.boot(image)")
        self.debugger = debugger
        self.explorer = explorer  # a PageTableExplorer the CR3 link updates, if any
        super().__init__(files=list(debugger.info.files))
        debugger.add_listener(self._on_stop)
        self._refresh()

    # Following the debugger.

    def _on_stop(self, stop: Stop) -> None:
        self._refresh()

    def _refresh(self) -> None:
        debugger = self.debugger
        stop = debugger.stop
        with self._lock, self.hold_sync():
            if stop is None or stop.reason == "exited":
                self.stop = {"reason": stop.reason if stop else "", "detail": stop.detail if stop else ""}
                self.stack, self.registers, self.variables = [], [], []
                self.seq = self._next_seq()
                return
            self.stop = {"reason": stop.reason, "function": stop.function, "path": stop.path, "line": stop.line,
                         "mode": stop.mode, "detail": stop.detail, "vaddr": f"{stop.vaddr:#018x}"}
            if stop.path and stop.path != self.path:
                self._show_file(stop.path)
            self.current = stop.line if stop.path == self.path else 0
            try:
                frames = debugger.backtrace()
                values = debugger.locals() if frames else []
                now = debugger.registers()
            except WorkbenchError as problem:
                self.error = str(problem)
                return
            self.stack = [{"level": f.level, "function": f.function, "where": f.where, "inlined": f.inlined,
                           "interrupted": f.interrupted, "end": f.end} for f in frames]
            self.variables = [{"name": v.name, "type": v.type, "text": v.text, "kind": v.kind} for v in values]
            changed = debugger.changed_registers()
            self.registers = [{"name": name, "value": f"{value:#018x}", "changed": name in changed}
                              for name, value in now.items()]
            paging = bool(now.get("cr0", 0) >> 31 & 1)
            self.cr3 = f"{now.get('cr3', 0):#x}" if paging else ""
            self._update_breakpoint_lines()
            self.seq = self._next_seq()
        if self.explorer is not None and self.cr3:
            self.explore()

    def _show_file(self, path: str) -> None:
        self.path = path
        self.lines = list(self.debugger.source(path))
        self._update_breakpoint_lines()

    def _update_breakpoint_lines(self) -> None:
        self.breakpoint_lines = sorted({b.line for b in self.debugger.breakpoints.values() if b.path == self.path})

    # Messages from the page, and the same actions from Python.

    def _msg_hello(self, content: dict[str, Any]) -> None:
        self._refresh()

    def _msg_action(self, content: dict[str, Any]) -> None:
        self.act(str(content.get("action")))

    def _msg_toggle(self, content: dict[str, Any]) -> None:
        line = content.get("line")
        if not isinstance(line, int):
            raise ViewError("a breakpoint goes on a line number")
        self.toggle(line)

    def _msg_open(self, content: dict[str, Any]) -> None:
        path = str(content.get("path", ""))
        if path not in self.debugger.info.files:
            raise ViewError(f"the image has no code from {path!r}")
        with self.hold_sync():
            self._show_file(path)
            stop = self.debugger.stop
            self.current = stop.line if stop is not None and stop.path == path else 0

    def _msg_explore(self, content: dict[str, Any]) -> None:
        self.explore()

    def act(self, action: str) -> Stop:
        """What a button does: stepi, step, next, finish or cont."""
        if action not in ACTIONS:
            raise ViewError(f"the debugger's buttons are {', '.join(ACTIONS)}, not {action!r}")
        self.error = ""
        self.busy = action
        try:
            debugger = self.debugger
            if action == "cont":
                return debugger.cont(CONTINUE_TIMEOUT)
            return {"stepi": debugger.stepi, "step": debugger.step, "next": debugger.next,
                    "finish": debugger.finish}[action]()
        finally:
            self.busy = ""

    def toggle(self, line: int) -> None:
        """Set a breakpoint on `line` of the file shown, or clear the one there."""
        self.error = ""
        existing = [b for b in self.debugger.breakpoints.values() if b.path == self.path and b.line == line]
        if existing:
            for found in existing:
                self.debugger.delete(found)
        else:
            self.debugger.break_at(f"{self.path}:{line}")
        self._update_breakpoint_lines()

    def explore(self) -> None:
        """Show the page tables at the current CR3 in the linked explorer."""
        if self.explorer is None:
            raise ViewError("this view has no page-table explorer; use DebuggerPanel(debugger)")
        if not self.cr3:
            raise ViewError("paging is off: there are no page tables yet")
        self.explorer.show(self.debugger.snapshot())

    # Output bundle.

    def __repr__(self) -> str:
        stop = self.stop
        where = f"{stop.get('function', '?')} ({stop.get('path', '')}:{stop.get('line', 0)})" if stop else "not stopped"
        return f"<DebuggerView: {stop.get('reason', '')} at {where}, {len(self.debugger.breakpoints)} breakpoints>"

    def static_html(self) -> str:
        stop = self.stop
        head = (f"<div style='margin-bottom:4px'><b>{esc(stop.get('reason', ''))}</b> in "
                f"<code>{esc(stop.get('function', ''))}</code> at <code>{esc(self.path)}:{self.current}</code>"
                f" <span style='color:#6b7280'>{esc(stop.get('mode', ''))}</span>"
                + (f"<div>{esc(stop.get('detail', ''))}</div>" if stop.get("detail") else "") + "</div>")
        source = self._static_source()
        stack = table(["#", "function", "where"], [
            f"<tr>{cell(str(f['level']))}{cell(f['function'] + (' (inlined)' if f['inlined'] else ''), code=True)}"
            f"{cell(f['where'], code=True)}</tr>" for f in self.stack])
        variables = table(["variable", "type", "value"], [
            f"<tr>{cell(v['name'], code=True)}{cell(v['type'], code=True)}{cell(v['text'], code=True)}</tr>"
            for v in self.variables])
        registers = table(["register", "value"], [
            f"<tr>{cell(r['name'], code=True)}"
            f"{cell(r['value'], code=True, style=f'background:{CHANGED_COLOUR}' if r['changed'] else '')}</tr>"
            for r in self.registers], note="yellow: changed since the stop before")
        columns = (f"<div style='display:flex;gap:12px;flex-wrap:wrap;align-items:flex-start'>"
                   f"<div>{source}</div><div>{stack}{variables}</div><div>{registers}</div></div>")
        return box(f"Debugger <span style='font-weight:normal'>({esc(self.debugger.image.path.name)})</span>",
                   head + columns)

    def _static_source(self) -> str:
        if not self.lines or not self.current:
            return ""
        low = max(1, self.current - STATIC_CONTEXT)
        high = min(len(self.lines), self.current + STATIC_CONTEXT)
        rows = []
        for number in range(low, high + 1):
            mark = "●" if number in self.breakpoint_lines else ""
            style = "background:#dbeafe" if number == self.current else ""
            rows.append(f"<tr style='{style}'><td style='color:#b91c1c;padding:0 2px'>{mark}</td>"
                        f"<td style='color:#6b7280;text-align:right;padding:0 6px'>{number}</td>"
                        f"<td style='white-space:pre;font-family:monospace;font-size:12px'>"
                        f"{esc(self.lines[number - 1])}</td></tr>")
        return f"<table style='border-collapse:collapse'>{''.join(rows)}</table>"


class DebuggerPanel(Panel):
    """A DebuggerView and the page-table explorer its CR3 link fills in."""

    def __init__(self, debugger: Debugger) -> None:
        from workbench.views.pagetable import PageTableExplorer  # noqa: PLC0415 - only the panel needs it

        self.explorer = PageTableExplorer(debugger.snapshot(), image=debugger.image)
        self.view = DebuggerView(debugger, explorer=self.explorer)
        super().__init__(children=[self.view, self.explorer])

    def __repr__(self) -> str:
        return f"<DebuggerPanel: {self.view!r}, {self.explorer!r}>"
