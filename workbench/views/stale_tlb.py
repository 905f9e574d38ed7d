"""The stale-TLB moment: what the page tables map a page to now, beside what the reading CPU read.

    StaleTlbView(machine)                      apps/smp's reader page (the symbol reader_page)
    StaleTlbView(machine, vaddr, frames=[...]) another vaddr; frames it may have been mapped to

Left, the tables: the walk of the vaddr by the model (models/paging), the frame it ends in and
the word there now. Right, the CPU that reads the page (apps/smp's reader): the last value it
read and the frame whose word equals it, the frame it read from; when that is not the frame the
tables map, it is marked stale. The frames compared are the one mapped now, every frame the view
saw mapped at an earlier refresh, and `frames`. The reading and the comparison are
workbench/guest/stale_tlb.py's and workbench/models/stale_tlb.py's; this view shows them, and
refresh() (or the page's button) reads again.
"""

from __future__ import annotations

from typing import Any

import traitlets

from workbench.guest import stale_tlb
from workbench.guest.machine import Machine
from workbench.models.stale_tlb import PageNotMapped, ReadSource, StaleTlb
from workbench.views._base import View, ViewError, box, chip, esc, module


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
    summary = traitlets.Unicode("", help="One line: what the tables map, what each CPU read, stale or "
                                "fresh.").tag(sync=True)

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
        try:
            moment = stale_tlb.read(self.machine, self._vaddr, self._known_frames)
        except (stale_tlb.NoReader, PageNotMapped) as error:
            raise ViewError(str(error)) from None
        self._known_frames = list(moment.words)
        self._show(moment)

    def _show(self, moment: StaleTlb) -> None:
        with self.hold_sync():
            self.tables = {"walk": moment.walk.to_json(), "frame": f"{moment.frame:#x}",
                           "paddr": f"{moment.paddr:#x}", "value": f"{moment.value:#x}"}
            self.frames = [{"frame": f"{frame:#x}", "value": f"{word:#x}", "mapped": frame == moment.frame}
                           for frame, word in moment.words.items()]
            self.readers = [_reader_row(source) for source in moment.reads]
            self.summary = moment.summary()
            self.refreshes += 1

    @property
    def stale(self) -> bool:
        """Some reading CPU read a value that the frame the tables map does not hold."""
        return any(reader["stale"] for reader in self.readers)

    def _msg_refresh(self, content: dict[str, Any]) -> None:
        self.refresh()

    def __repr__(self) -> str:
        return f"<StaleTlbView: {self.vaddr}; {self.summary}>"

    def static_html(self) -> str:
        title = f"Stale TLB <span style='font-weight:normal'>page <code>{esc(self.vaddr)}</code></span>"
        left = _static_tables(self.tables)
        right = "".join(_static_reader(reader) for reader in self.readers) or "No CPU reads the page."
        cell = "<td style='vertical-align:top;padding:0 12px 0 0'>"
        body = (f"<table><tr><th style='text-align:left'>the page tables now</th>"
                f"<th style='text-align:left'>what the CPU read</th></tr>"
                f"<tr>{cell}{left}</td>{cell}{right}</td></tr></table>"
                f"<div>{esc(self.summary)}</div>")
        return box(title, body)


def _reader_row(source: ReadSource) -> dict[str, Any]:
    read = source.read
    return {"cpu": read.cpu, "state": "halted" if read.halted else "running", "where": read.where,
            "value": f"{read.value:#x}", "frame": f"{source.frame:#x}" if source.frame is not None else "",
            "stale": source.stale}


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
    try:
        return stale_tlb.reader_page(machine)
    except stale_tlb.NoReader as error:
        raise ViewError(str(error)) from None


def _checked_vaddr(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 64:
        raise ViewError(f"an address is an int from 0 to 2**64 - 1, not {value!r}")
    return value
