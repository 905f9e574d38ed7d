"""The translator: one virtual address, its bits sliced, the walk step by step, and the result.

    Translator(snapshot, vaddr="app_main")     on a fixed snapshot
    Translator(machine)                        on the machine's tables as they are now
    Translator(explorer)                       on what an explorer shows; slices open its entries

The bits are sliced as the CPU slices them: the sign extension (63:48, or 63:57 with 5-level
paging), one 9-bit index per level, and the offset inside the page (12, 21 or 30 bits,
depending on the page the walk reached). Each index slice names the walk step it chose.
"""

from __future__ import annotations

from typing import Any

import traitlets

from workbench.errors import WorkbenchError
from workbench.guest.machine import Machine, MachineState
from workbench.kernel.image import Image
from workbench.models.cpu import hex_u64
from workbench.models.paging import PagingKind, Walk, format_walk, size_text, walk
from workbench.models.snapshot import Snapshot
from workbench.views._base import ViewError, box, esc, module
from workbench.views._snapshots import FollowingView, name_of, resolve_vaddr, split_source
from workbench.views.pagetable import PageTableExplorer, path_id

SLICE_COLOURS = {"sign": "#f3f4f6", "bad": "#fecaca", "index": "#e0e7ff", "offset": "#dcfce7", "unused": "#ffffff"}


def slices(result: Walk) -> list[dict[str, Any]]:
    """The vaddr's bit fields, high to low, each with the walk step it selected (or None)."""
    vaddr, mode = result.vaddr, result.mode
    bits = format(vaddr, "064b")

    def field(hi: int, lo: int) -> str:
        return bits[63 - hi: 64 - lo]

    top = mode.vaddr_bits  # 48 or 57
    sign = field(63, top - 1)
    canonical = mode.is_canonical(vaddr)
    out: list[dict[str, Any]] = [{
        "name": "sign extension", "role": "sign" if canonical else "bad", "hi": 63, "lo": top,
        "bits": field(63, top), "step": None,
        "value": ("copies of bit " + str(top - 1)) if canonical else f"not all equal to bit {top - 1}",
        "state": "used" if canonical else "bad", "canonical": canonical, "sign_bit": sign[-1],
    }]
    reached = {step.level: number for number, step in enumerate(result.steps)}
    offset_low_level = None
    if result.page_size is not None:
        offset_low_level = result.page_size.bit_length() - 1  # 12, 21 or 30
    for level in mode.levels:
        hi, lo = level.vaddr_bits
        if offset_low_level is not None and lo < offset_low_level:
            break  # these bits are part of the large page's offset
        step = reached.get(level)
        out.append({"name": f"{level.name} index", "role": "index", "hi": hi, "lo": lo, "bits": field(hi, lo),
                    "value": str(int(field(hi, lo), 2)), "step": step,
                    "state": "used" if step is not None else "unreached"})
    offset_bits = offset_low_level or 12
    out.append({"name": "offset in the page", "role": "offset", "hi": offset_bits - 1, "lo": 0,
                "bits": field(offset_bits - 1, 0), "value": f"{vaddr & ((1 << offset_bits) - 1):#x}",
                "step": None, "state": "used" if result.ok else "unreached"})
    return out


class Translator(FollowingView):
    """Type a vaddr (or a symbol): its bits sliced, each linked to its walk step, and the paddr or fault."""

    _esm = module("translator.js")
    _settable = ("vaddr",)

    vaddr = traitlets.Unicode("", help="What to translate: a vaddr in hex, or a symbol of the image.").tag(sync=True)
    result = traitlets.Dict(help="The translation: vaddr, slices, steps, paddr or fault (hex strings)."
                            ).tag(sync=True)
    source = traitlets.Enum(("snapshot", "machine", "explorer"), default_value="snapshot",
                            help="Whose tables are walked.").tag(sync=True)
    linked = traitlets.Bool(False, help="Slices and steps open their entry in an explorer.").tag(sync=True)

    def __init__(self, source: Snapshot | Machine | PageTableExplorer, vaddr: int | str = "", *,
                 image: Image | None = None, explorer: PageTableExplorer | None = None) -> None:
        if isinstance(source, PageTableExplorer):
            explorer = explorer or source
            self.machine: Machine | None = None
            self._snapshot: Snapshot | None = None
            self.image = image or source.image
            kind = "explorer"
        else:
            machine, snapshot, named = split_source(source, image)
            self.machine, self._snapshot, self.image = machine, (snapshot if machine is None else None), named
            kind = "machine" if machine is not None else "snapshot"
        self.explorer = explorer
        self._walk: Walk | None = None
        super().__init__(source=kind, linked=explorer is not None)
        if isinstance(vaddr, int):
            vaddr = hex_u64(vaddr)
        if vaddr:
            self.vaddr = vaddr
        self._follow_machine()

    @property
    def walk(self) -> Walk | None:
        """The last walk, with every step (None before the first translation)."""
        return self._walk

    def translate(self, vaddr: int | str) -> dict[str, Any]:
        """Translate `vaddr` (hex, an int, or a symbol) and show it; returns the result."""
        self.vaddr = hex_u64(vaddr) if isinstance(vaddr, int) else vaddr
        return dict(self.result)

    @traitlets.validate("vaddr")
    def _valid_vaddr(self, proposal: dict[str, Any]) -> str:
        text = proposal["value"]
        if not text:
            return ""
        try:
            resolve_vaddr(text, self.image)
        except WorkbenchError as problem:  # not hex, too wide, or no such symbol
            raise traitlets.TraitError(str(problem)) from None
        return str(text).strip()

    @traitlets.observe("vaddr")
    def _vaddr_changed(self, change: dict[str, Any]) -> None:
        self._retranslate()

    def _tables(self) -> Snapshot | Machine:
        if self.explorer is not None:
            return self.explorer.snapshot
        if self._snapshot is not None:
            return self._snapshot
        assert self.machine is not None
        return self.machine

    def _retranslate(self) -> None:
        if not self.vaddr:
            self.result = {}
            return
        target = resolve_vaddr(self.vaddr, self.image)
        tables = self._tables()
        if isinstance(tables, Machine):
            if tables.state is MachineState.CREATED or tables.state.terminal:
                raise ViewError(f"the machine is {tables.state.value}; there are no tables to walk")
            found = walk(tables.memory, tables.registers(), target, maxphyaddr=tables.maxphyaddr())
        else:
            found = tables.walk(target)
        with self._lock:
            self._walk = found
            self.result = self._result(found)
            self.error = ""

    def _result(self, found: Walk) -> dict[str, Any]:
        data = found.to_json()
        path: list[int] = []
        for step in data["steps"]:  # type: ignore[attr-defined]
            path.append(step["index"])
            step["id"] = path_id(tuple(path))
            step["level_below"] = {"PML5": "PML4", "PML4": "PDPT", "PDPT": "PD", "PD": "PT"}.get(step["level"], "")
        data["slices"] = slices(found)
        data["symbol"] = name_of(found.vaddr, self.image)
        data["text"] = format_walk(found)
        if found.ok and found.permissions is not None:
            data["summary"] = (f"paddr {hex_u64(found.paddr or 0)}: {size_text(found.page_size or 0)} page, "
                               f"{found.permissions.describe()}")
        elif found.fault is not None:
            where = f" at {found.fault.level.name}" if found.fault.level is not None else ""
            data["summary"] = f"fault{where}: {found.fault.message}"
        else:
            data["summary"] = ""
        data["paging_on"] = found.mode.kind is not PagingKind.OFF
        return data

    def reveal(self, step: int) -> None:
        """Open a walk step's entry in the linked explorer."""
        if self.explorer is None:
            raise ViewError("no explorer is linked: make the translator with Translator(explorer) to open entries")
        steps = self.result.get("steps", [])
        if not 0 <= step < len(steps):
            raise ViewError(f"the walk has steps 0 to {len(steps) - 1}, not {step}")
        entry = steps[step]
        if entry["target"] is None:  # not present: it is not in the tree; show its table instead
            self.explorer.reveal(steps[step - 1]["id"] if step else "", note=self.result.get("summary", ""))
        else:
            self.explorer.reveal(entry["id"])

    def _flush(self) -> None:
        machine = self.machine
        if self.vaddr and machine is not None and not machine.state.terminal:
            try:
                self._retranslate()
            except WorkbenchError:  # the machine went away meanwhile; keep the last result
                pass

    # Messages from the page.

    def _msg_reveal(self, content: dict[str, Any]) -> None:
        step = content.get("step")
        if isinstance(step, int):
            self.reveal(step)

    def _msg_retranslate(self, content: dict[str, Any]) -> None:
        self._retranslate()

    # Output bundle.

    def __repr__(self) -> str:
        if not self.result:
            return "<Translator: nothing translated yet>"
        return f"<Translator {self.result['vaddr']}: {self.result['summary'].split(':')[0]}>"

    def static_html(self) -> str:
        if not self.result:
            return box("Translator", "<i>nothing translated yet</i>")
        r = self.result
        cells = []
        for piece in r["slices"]:
            colour = SLICE_COLOURS["unused" if piece["state"] == "unreached" else piece["role"]]
            cells.append(
                f"<td style='border:1px solid #d1d5db;padding:2px 4px;text-align:center;background:{colour}'>"
                f"<div style='font-size:11px;color:#6b7280'>{esc(piece['name'])} {piece['hi']}:{piece['lo']}</div>"
                f"<div style='font-family:monospace;font-size:11px'>{esc(piece['bits'])}</div>"
                f"<div style='font-family:monospace;font-weight:600'>{esc(piece['value'])}</div></td>")
        symbol = f" &lt;{esc(r['symbol'])}&gt;" if r["symbol"] else ""
        colour = "#b91c1c" if r["fault"] else "#111827"
        body = (f"<table style='border-collapse:collapse;margin-bottom:4px'><tr>{''.join(cells)}</tr></table>"
                f"<pre style='font-size:12px;margin:2px 0'>{esc(r['text'])}</pre>"
                f"<div style='font-weight:600;color:{colour}'>{esc(r['summary'])}</div>")
        return box(f"Translate <code>{esc(r['vaddr'])}</code>{symbol}", body)
