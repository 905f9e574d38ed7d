"""The machine view: its state, the buttons that change it, and its live serial console.

    MachineView(machine)            a machine, booted or not
    MachineView(image, name="x")    not booted yet: the Boot button starts it (Machine's options)

Console output arrives on the machine's event-loop thread; the view only notes that there is
some and sends what is new at most ten times a second, as one message. The page keeps the last
`scrollback` lines. Buttons and the input line reach Python as messages; a button that cannot
apply in the current state is disabled, and a refusal is shown as `error`.

Every CPU of a stopped machine (paused, faulted) is listed under the buttons: halted or running,
its rip as a symbol and a source line, its CR3 (`cpus`; read once per stop, never while the
guest runs, since reading every CPU's registers pauses it for an instant).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import traitlets

from workbench.debug.debuginfo import DebugInfo
from workbench.errors import WorkbenchError
from workbench.guest.machine import Machine, MachineState
from workbench.kernel.image import Image
from workbench.views._base import View, ViewError, box, chip, esc, module

STATES = ("not booted", "running", "paused", "faulted", "triple-fault", "exited", "closed")
ACTIONS = ("boot", "pause", "resume", "reset", "stop")
MAX_MESSAGE_CHARS = 64 * 1024  # more new output than this is sent as the scrollback's tail instead
STATIC_LINES = 20  # console lines in the static form

STATE_COLOURS = {"not booted": "#e5e7eb", "running": "#bbf7d0", "paused": "#fde68a", "faulted": "#fecaca",
                 "triple-fault": "#fecaca", "exited": "#e5e7eb", "closed": "#e5e7eb"}


def _state_name(state: MachineState) -> str:
    return "not booted" if state is MachineState.CREATED else state.value


class MachineView(View):
    """A machine's state, buttons for boot, pause, resume, reset and stop, and its console."""

    _esm = module("machine.js")
    _settable = ("scrollback",)

    name = traitlets.Unicode("", help="The machine's name (or its image's file name).").tag(sync=True)
    image_name = traitlets.Unicode("", help="File name of the image the machine boots.").tag(sync=True)
    state = traitlets.Enum(STATES, default_value="not booted",
                           help="Where the machine is in its life.").tag(sync=True)
    status = traitlets.Unicode("not booted", help="The badge text: the state, or 'exited N' with the "
                                                  "guest's exit status.").tag(sync=True)
    explanation = traitlets.Unicode("", help="How the guest stopped, in words (empty while it runs)."
                                    ).tag(sync=True)
    busy = traitlets.Unicode("", help="The button action being carried out, or empty.").tag(sync=True)
    cpus = traitlets.List(traitlets.Dict(), help="Each CPU of the stopped machine: index, state, where, "
                          "line, cr3 (empty while it runs).").tag(sync=True)
    scrollback = traitlets.Int(1000, help="Console lines the page keeps (10 to 100,000).").tag(sync=True)

    def __init__(self, machine: Machine | Image | str | Path, *, scrollback: int = 1000,
                 **machine_options: Any) -> None:
        super().__init__(scrollback=scrollback)
        if isinstance(machine, Machine):
            if machine_options:
                raise ViewError("machine options are for an image; this machine already has its own")
            self._options: dict[str, Any] = _options_of(machine)
            self.machine: Machine | None = machine
            self._image = machine.image
        else:
            self._image = machine if isinstance(machine, Image) else Image.load(machine)
            self._options = machine_options
            self.machine = None
        self._cpus_read_at = -1.0  # the time of the QMP event after which the CPUs were read
        self._sent_upto = 0  # absolute console position (dropped + index) the page has up to
        self._attach()
        self._update_traits()

    @traitlets.validate("scrollback")
    def _valid_scrollback(self, proposal: dict[str, Any]) -> int:
        value = proposal["value"]
        if not isinstance(value, int) or not 10 <= value <= 100_000:
            raise traitlets.TraitError(f"scrollback is a number of lines from 10 to 100,000, not {value!r}")
        return value

    # Following the machine.

    def _attach(self) -> None:
        machine = self.machine
        if machine is None:
            return
        machine.add_state_listener(self._on_state)
        machine.console.add_listener(self._on_output)
        self._sent_upto = machine.console.dropped + len(machine.console.text)

    def _detach(self) -> None:
        machine = self.machine
        if machine is not None:
            machine.remove_state_listener(self._on_state)
            machine.console.remove_listener(self._on_output)

    def _on_state(self, state: MachineState) -> None:  # on whichever thread changed it
        self._mark_dirty()

    def _on_output(self, text: str) -> None:  # on the machine's event-loop thread
        self._mark_dirty()

    def _update_traits(self) -> bool:
        """Set state, status and explanation from the machine; True if any changed."""
        machine = self.machine
        state = machine.state if machine is not None else MachineState.CREATED
        name = _state_name(state)
        outcome = machine.outcome if machine is not None else None
        status = name
        if state is MachineState.EXITED and outcome is not None:
            if outcome.exit_status is not None:
                status = f"exited {outcome.exit_status}"
            elif outcome.qemu_returncode is not None:
                status = f"QEMU exited {outcome.qemu_returncode}"
        explanation = outcome.explanation if outcome is not None and state is not MachineState.RUNNING else ""
        if state is MachineState.CLOSED and (outcome is None or (outcome.state is MachineState.EXITED
                                             and outcome.exit_status is None)):
            explanation = ("The machine was stopped: by its Stop button, by close(), or by a new machine "
                           "with the same name. Press Boot to start a new one.")
        values = {"name": (machine.name if machine is not None else self._options.get("name")) or self._image.path.name,
                  "image_name": self._image.path.name, "state": name, "status": status, "explanation": explanation}
        changed = {k: v for k, v in values.items() if getattr(self, k) != v}
        if changed:
            with self.hold_sync():
                for key, value in changed.items():
                    setattr(self, key, value)
                self.seq = self._next_seq()
        return bool(changed)

    def _flush(self) -> None:
        self._update_traits()
        self._update_cpus()
        self._send_console(reset=False)
        if self.machine is not None and self.machine.state is MachineState.CLOSED:
            self._detach()

    def _update_cpus(self) -> None:
        """Every CPU's place, read once each time the machine stops; empty while it runs."""
        machine = self.machine
        stopped = machine is not None and machine.state in (MachineState.PAUSED, MachineState.FAULTED,
                                                           MachineState.TRIPLE_FAULT)
        if not stopped:
            self._cpus_read_at = -1.0
            if self.cpus:
                self.cpus = []
            return
        assert machine is not None
        stop = machine.events[-1].seconds if machine.events else 0.0
        if stop == self._cpus_read_at:
            return
        self._cpus_read_at = stop
        try:
            self.cpus = cpu_rows(machine)
        except WorkbenchError:
            self.cpus = []

    def _send_console(self, *, reset: bool) -> None:
        """Send the output the page has not seen (or, with reset, the whole scrollback)."""
        machine = self.machine
        if machine is None:
            if reset:
                self._post({"kind": "console", "start": 0, "text": "", "reset": True})
            return
        text, dropped = machine.console.text, machine.console.dropped
        end = dropped + len(text)
        if not reset and end == self._sent_upto:
            return
        new = end - self._sent_upto
        if reset or new > MAX_MESSAGE_CHARS or self._sent_upto < dropped:
            tail = _last_lines(text, self.scrollback)
            message = {"kind": "console", "start": end - len(tail), "text": tail, "reset": True}
        else:
            message = {"kind": "console", "start": self._sent_upto, "text": text[len(text) - new:], "reset": False}
        if not reset:
            message["seq"] = self._next_seq()
        self._sent_upto = end
        self._post(message)

    # The scrollback, as Python sees it.

    @property
    def console_text(self) -> str:
        """The last `scrollback` lines of the console: what the page shows."""
        return _last_lines(self.machine.console.text, self.scrollback) if self.machine is not None else ""

    # Messages from the page.

    def _msg_hello(self, content: dict[str, Any]) -> None:
        with self._lock:
            self._update_traits()
            self._send_console(reset=True)

    def _msg_action(self, content: dict[str, Any]) -> None:
        self.act(str(content.get("action")))

    def _msg_input(self, content: dict[str, Any]) -> None:
        self.type_line(str(content.get("line", "")))

    # What the buttons and the input line do, also callable from Python.

    def act(self, action: str) -> None:
        """Do what a button does: boot, pause, resume, reset or stop."""
        if action not in ACTIONS:
            raise ViewError(f"the machine view's buttons are {', '.join(ACTIONS)}, not {action!r}")
        self.error = ""
        self.busy = action
        try:
            if action == "boot":
                self._boot()
            else:
                machine = self._booted(action)
                if action == "pause":
                    machine.pause()
                elif action == "resume":
                    machine.resume()
                elif action == "reset":
                    machine.reset()
                else:
                    machine.close()
        except WorkbenchError as problem:
            self.error = str(problem)
        finally:
            self.busy = ""
            with self._lock:
                self._flush()

    def type_line(self, line: str) -> None:
        """Send one line to the guest's serial console, as the input line does."""
        self._booted("type into the console").send_line(line)
        self.error = ""

    def _booted(self, what: str) -> Machine:
        machine = self.machine
        if machine is None or machine.state is MachineState.CREATED:
            raise ViewError(f"cannot {what}: the machine has not been booted yet. Press Boot.")
        if machine.state.terminal:
            raise ViewError(f"cannot {what}: the machine is {machine.state.value}. Press Boot for a new one.")
        return machine

    def _boot(self) -> None:
        machine = self.machine
        if machine is not None and machine.state is MachineState.CREATED:
            machine.start()
            return
        if machine is not None and not machine.state.terminal:
            raise ViewError(f"the machine is already {machine.state.value}; stop it first to boot a new one")
        self._detach()
        fresh = Machine(self._image, **self._options)
        with self._lock:
            self.machine = fresh
            self._post({"kind": "console", "start": 0, "text": "", "reset": True})
            self._attach()
            self._sent_upto = 0  # the new boot log is sent by the next flush
        fresh.start()

    # Output bundle.

    def __repr__(self) -> str:
        return f"<MachineView {self.name!r} ({self.image_name}): {self.status}>"

    def static_html(self) -> str:
        lines = _last_lines(self.console_text, STATIC_LINES)
        body = chip(self.status, STATE_COLOURS.get(self.state, "#e5e7eb"))
        if self.explanation:
            body += f"<div style='margin:4px 0'>{esc(self.explanation)}</div>"
        body += _cpu_table(self.cpus)
        body += ("<pre style='background:#111827;color:#e5e7eb;padding:4px 6px;margin:4px 0 0;font-size:12px;"
                 f"white-space:pre-wrap'>{esc(lines) or '&nbsp;'}</pre>")
        return box(f"Machine {esc(self.name)} <span style='font-weight:normal'>({esc(self.image_name)})</span>", body)


def cpu_rows(machine: Machine) -> list[dict[str, Any]]:
    """Each CPU as the view lists it: state, rip as symbol and source line (when the image has
    debug information), CR3."""
    try:
        info: DebugInfo | None = DebugInfo.load(machine.image)
    except WorkbenchError:
        info = None
    rows = []
    for cpu in machine.cpus():
        place = info.location(cpu.rip) if info is not None else None
        rows.append({"index": cpu.index, "state": "halted" if cpu.halted else "running", "where": cpu.where,
                     "line": f"{place.path}:{place.line}" if place is not None else "", "cr3": f"{cpu.cr3:#x}"})
    return rows


def _cpu_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    cells = "".join(f"<tr><td>cpu {row['index']}</td><td>{esc(row['state'])}</td><td><code>{esc(row['where'])}"
                    f"</code></td><td>{esc(row['line'])}</td><td><code>cr3={esc(row['cr3'])}</code></td></tr>"
                    for row in rows)
    return f"<table class='wb-cpus' style='font-size:12px;margin:4px 0'>{cells}</table>"


def _options_of(machine: Machine) -> dict[str, Any]:
    """The options that boot another machine like this one."""
    return {"machine_type": machine.machine_type, "accel": machine.accel, "memory_mib": machine.memory_mib,
            "cpu": machine.cpu, "cpus": machine.cpu_count, "console_limit": machine.console.limit, "name": machine.name,
            "shared_memory": machine.shared_memory, "append": machine.append, "extra_args": machine.extra_args}


def _last_lines(text: str, count: int) -> str:
    """The last `count` lines of `text` (a trailing partial line counts as one)."""
    position = len(text)
    if text.endswith("\n"):
        position -= 1
    for _ in range(count):
        position = text.rfind("\n", 0, position)
        if position < 0:
            return text
    return text[position + 1:]
