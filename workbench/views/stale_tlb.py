"""The stale-TLB moment: what the page tables map a page to now, beside what the reading CPU read.

    StaleTlbView(machine)                      apps/smp's reader page (the symbol reader_page)
    StaleTlbView(machine, vaddr, frames=[...]) another vaddr; frames it may have been mapped to

Left, the tables: the walk of the vaddr by the model (models/paging), the frame it ends in and
the word there now. Right, the CPU that reads the page (apps/smp's reader, on the CPU in
`reader_cpu`): the last value it read (`reader_value`) and the frame whose word equals it, which
is the frame it read from. When that is not the frame the tables map, the CPU read through a
translation its own TLB kept: stale. The frames compared are the one mapped now, every frame the
view saw mapped at an earlier refresh, and `frames`. Everything is read from guest memory by
symbol, with the machine paused for one instant; refresh() (or the page's button) reads again.
"""

from __future__ import annotations

from typing import Any

import traitlets

from workbench.errors import WorkbenchError
from workbench.guest.machine import Machine, MachineState
from workbench.models.paging import Walk
from workbench.views._base import View, ViewError, box, chip, esc, module

WORD = 8  # the reader reads one 64-bit word


class StaleTlbView(View):
    """Side by side: the frame the tables map a page to, and the frame the reading CPU read."""

    _esm = module("stale_tlb.js")

    vaddr = traitlets.Unicode("", help="The page's vaddr (hex).").tag(sync=True)
    tables = traitlets.Dict(help="What the tables map now: walk (the model's), frame, paddr, value.").tag(sync=True)
    readers = traitlets.List(traitlets.Dict(), help="Each reading CPU: cpu, state, where, value it read last, "
                             "frame holding that value (or empty), stale.").tag(sync=True)
    frames = traitlets.List(traitlets.Dict(), help="Every frame compared: frame, value, mapped (by the tables "
                            "now).").tag(sync=True)
    refreshes = traitlets.Int(0, help="Readings taken since the view was made.").tag(sync=True)

    def __init__(self, machine: Machine, vaddr: int | None = None, *, frames: tuple[int, ...] | list[int] = ()) -> None:
        if not isinstance(machine, Machine):
            raise ViewError(f"StaleTlbView shows a running Machine, not {type(machine).__name__}")
        super().__init__()
        self.machine = machine
        self._vaddr = _page_vaddr(machine) if vaddr is None else _checked_vaddr(vaddr)
        self._known_frames = [_checked_vaddr(frame) & ~0xFFF for frame in frames]
        self.vaddr = f"{self._vaddr:#x}"
        self.refresh()

    def refresh(self) -> None:
        """Read the tables, the reader and the frames again, with the machine paused meanwhile."""
        was_running = self.machine.state is MachineState.RUNNING
        if was_running:
            self.machine.pause()
        try:
            walk = self.machine.snapshot("stale TLB").walk(self._vaddr)
            readers = self._readers()
        finally:
            if was_running:
                self.machine.resume()
        self._show(walk, readers)

    def _readers(self) -> list[dict[str, Any]]:
        """apps/smp's reader, when one runs: its CPU, its place and the value it read last."""
        cpu = _symbol(self.machine, "reader_cpu")
        if cpu == 0:
            return []
        state = self.machine.cpus()[cpu]
        return [{"cpu": cpu, "state": "halted" if state.halted else "running", "where": state.where,
                 "value": _symbol(self.machine, "reader_value")}]

    def _show(self, walk: Walk, readers: list[dict[str, Any]]) -> None:
        if walk.frame_paddr is None or walk.paddr is None:
            raise ViewError(f"the tables do not map {self.vaddr}: {walk.fault.message if walk.fault else ''}")
        offset = walk.paddr - walk.frame_paddr
        if walk.frame_paddr not in self._known_frames:
            self._known_frames.append(walk.frame_paddr)
        words = {frame: self._word(frame + offset) for frame in self._known_frames}
        with self.hold_sync():
            self.tables = {"walk": walk.to_json(), "frame": f"{walk.frame_paddr:#x}", "paddr": f"{walk.paddr:#x}",
                           "value": f"{words[walk.frame_paddr]:#x}"}
            self.frames = [{"frame": f"{frame:#x}", "value": f"{value:#x}", "mapped": frame == walk.frame_paddr}
                           for frame, value in words.items()]
            self.readers = [_reader_row(reader, words, walk.frame_paddr) for reader in readers]
            self.refreshes += 1

    def _word(self, paddr: int) -> int:
        return int.from_bytes(self.machine.memory.read(paddr, WORD), "little")

    @property
    def stale(self) -> bool:
        """Some reading CPU read a value that the frame the tables map does not hold."""
        return any(reader["stale"] for reader in self.readers)

    def _msg_refresh(self, content: dict[str, Any]) -> None:
        self.refresh()

    def __repr__(self) -> str:
        return f"<StaleTlbView: {self.vaddr}; {summary(self.tables, self.readers)}>"

    def static_html(self) -> str:
        title = f"Stale TLB <span style='font-weight:normal'>page <code>{esc(self.vaddr)}</code></span>"
        left = _static_tables(self.tables)
        right = "".join(_static_reader(reader) for reader in self.readers) or "No CPU reads the page."
        cell = "<td style='vertical-align:top;padding:0 12px 0 0'>"
        body = (f"<table><tr><th style='text-align:left'>the page tables now</th>"
                f"<th style='text-align:left'>what the CPU read</th></tr>"
                f"<tr>{cell}{left}</td>{cell}{right}</td></tr></table>"
                f"<div>{esc(summary(self.tables, self.readers))}</div>")
        return box(title, body)


def _reader_row(reader: dict[str, Any], words: dict[int, int], mapped: int) -> dict[str, Any]:
    """The reader's row: the frame whose word is the value it read (the mapped one first)."""
    holding = sorted((frame for frame, word in words.items() if word == reader["value"]),
                     key=lambda frame: frame != mapped)
    frame = holding[0] if holding else None
    return {**reader, "value": f"{reader['value']:#x}", "frame": f"{frame:#x}" if frame is not None else "",
            "stale": frame != mapped}


def summary(tables: dict[str, Any], readers: list[dict[str, Any]]) -> str:
    """One line: what the tables map, what each reader read, and whether it is stale."""
    said = f"the tables map frame {tables.get('frame', '?')} holding {tables.get('value', '?')}"
    for reader in readers:
        source = f"from frame {reader['frame']}" if reader["frame"] else "from no frame the view knows"
        verdict = "stale: its TLB kept the old translation" if reader["stale"] else "fresh"
        said += f"; cpu {reader['cpu']} read {reader['value']} {source}, {verdict}"
    return said if readers else said + "; no CPU reads the page"


def _static_tables(tables: dict[str, Any]) -> str:
    steps = tables.get("walk", {}).get("steps", [])
    lines = [f"<div><code>{esc(step['level'])}[{step['index']}]</code> → <code>{esc(step['target_paddr'])}</code> "
             + "".join(chip(flag) for flag in step["flags"]) + "</div>" for step in steps]
    return "".join(lines) + (f"<div>frame <code>{esc(tables.get('frame', ''))}</code> holds "
                             f"<code>{esc(tables.get('value', ''))}</code></div>")


def _static_reader(reader: dict[str, Any]) -> str:
    colour = "#fecaca" if reader["stale"] else "#bbf7d0"
    return (f"<div>cpu {reader['cpu']} ({esc(reader['state'])} at <code>{esc(reader['where'])}</code>) read "
            f"<code>{esc(reader['value'])}</code> from frame <code>{esc(reader['frame'] or '?')}</code> "
            + chip("stale" if reader["stale"] else "fresh", colour) + "</div>")


def _page_vaddr(machine: Machine) -> int:
    vaddr = _symbol(machine, "reader_page")
    if vaddr == 0:
        raise ViewError("no reader has run yet, so there is no page to show: send 'reader CPU' first")
    return vaddr


def _symbol(machine: Machine, name: str) -> int:
    try:
        return machine.read_symbol(name)
    except WorkbenchError as error:
        raise ViewError(f"StaleTlbView needs apps/smp's reader ({name}): {error}") from None


def _checked_vaddr(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 64:
        raise ViewError(f"an address is an int from 0 to 2**64 - 1, not {value!r}")
    return value
