"""The views at the Python level: their traits, messages from the page, validation, throttling,
and the text/plain and text/html they put in a notebook.

The inspection views are given hand-built page tables (the `Tables` builder of tests/unit/test_paging.py);
the machine view needs QEMU and says so with its marker. What the page would send is fed to
`_dispatch` exactly as ipywidgets would; what the view sends is caught in `sent`.
"""

from __future__ import annotations

import contextlib
import html as html_module
import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import traitlets

from tests.unit.test_paging import KERNEL, RW, US, XD, A, D, P, Tables
from workbench.guest.machine import Machine
from workbench.kernel.build import BuildError, Diagnostic
from workbench.kernel.image import Image
from workbench.models.paging import PAGE_SIZE_1G, PAGE_SIZE_2M
from workbench.models.snapshot import Snapshot
from workbench.views import (
    AddressSpaceMap,
    BuildView,
    Inspector,
    MachineView,
    PageTableExplorer,
    SnapshotDiff,
    Translator,
    ViewError,
)
from workbench.views._base import Throttle, View, parse_address
from workbench.views.address_map import segments
from workbench.views.build_view import highlight_lines
from workbench.views.translator import slices

DIRECT_MAP = 0xFFFF_8000_0000_0000
USER_PAGE = 0x40_0000
WX_PAGE = 0x60_0000


def guest() -> Tables:
    """A small address space with every kind of page a view must show."""
    t = Tables(size=16 << 20)
    assert t.map(KERNEL, 0x10_0000, flags=P | A)  # text: read-only, executable
    assert t.map(KERNEL + 0x1000, 0x10_1000, flags=P | A)
    assert t.map(KERNEL + 0x2000, 0x10_2000, flags=P | XD)  # rodata
    assert t.map(KERNEL + 0x3000, 0x10_3000, flags=P | RW | XD | A | D)  # data
    assert t.map(USER_PAGE, 0x20_0000, flags=P | RW | US | XD)
    assert t.map(WX_PAGE, 0x20_1000, flags=P | RW)  # writable and executable: the W^X audit's catch
    assert t.map(DIRECT_MAP, 0, size=PAGE_SIZE_2M, flags=P | RW | XD)
    assert t.map(DIRECT_MAP + PAGE_SIZE_1G, 0, size=PAGE_SIZE_1G, flags=P | RW | XD)
    return t


def snapshot(t: Tables, label: str = "hand-built") -> Snapshot:
    return Snapshot.take(t.memory, t.regs(), label=label)  # type: ignore[arg-type]  # registers: duck-typed


class Page:
    """Stands in for the page: catches what a view sends, and sends it messages."""

    def __init__(self, view: View) -> None:
        self.view = view
        self.sent: list[dict[str, Any]] = []
        view.send = self.sent.append  # type: ignore[method-assign]

    def says(self, **content: Any) -> None:
        self.view._dispatch(self.view, content, [])

    def messages(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.sent if m.get("kind") == kind]

    def waits_for_console(self, arrived: Callable[[str], bool], seconds: float = 5) -> None:
        """Wait until the console text the view sent (it sends new output on its own, throttled)
        is `arrived`; fail after `seconds`."""
        deadline = time.monotonic() + seconds
        while not arrived("".join(m["text"] for m in self.messages("console"))):
            assert time.monotonic() < deadline, "the view did not send the console output in time"
            time.sleep(0.02)


def wide_integers(value: Any, where: str = "state") -> list[str]:
    """Paths of integers JavaScript would round (above 2**53)."""
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [where] if abs(value) > 2**53 else []
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in wide_integers(v, f"{where}.{k}")]
    if isinstance(value, list | tuple):
        return [p for i, v in enumerate(value) for p in wide_integers(v, f"{where}[{i}]")]
    return []


def inspection_views() -> list[View]:
    t = guest()
    before = snapshot(t, "before")
    t.set(*_pte(t, USER_PAGE), 0)  # unmap the user page
    assert t.map(USER_PAGE + 0x1000, 0x20_2000, flags=P | RW | XD)
    after = snapshot(t, "after")
    explorer = PageTableExplorer(after)
    return [explorer, Translator(explorer, KERNEL + 0x10), AddressSpaceMap(after), SnapshotDiff(before, after)]


def _pte(t: Tables, vaddr: int) -> tuple[int, int]:
    table = t.root
    for level in (4, 3, 2):
        table = t.get(table, (vaddr >> (12 + 9 * (level - 1))) & 0x1FF) & 0x000F_FFFF_FFFF_F000
    return table, (vaddr >> 12) & 0x1FF


# ---------------------------------------------------------------------------------------------
# What every view shares


@pytest.mark.parametrize("index", range(4))
def test_state_is_json_with_64_bit_values_as_strings(index: int) -> None:
    view = inspection_views()[index]
    state = {k: v for k, v in view.get_state().items() if not k.startswith("_")}
    json.dumps(state)
    assert wide_integers(state) == []


@pytest.mark.parametrize("index", range(4))
def test_repr_and_static_html_are_deterministic_and_in_the_bundle(index: int) -> None:
    first, second = inspection_views()[index], inspection_views()[index]
    assert repr(first) == repr(second)
    assert "object at 0x" not in repr(first)
    assert first.static_html() == second.static_html()
    data, _metadata = first._repr_mimebundle_()
    assert data["text/plain"] == repr(first)
    assert data["text/html"] == first.static_html()
    assert data["application/vnd.jupyter.widget-view+json"]["model_id"] == first.model_id
    for forbidden in ("<script", "<style", "class="):
        assert forbidden not in data["text/html"]


def test_every_view_loads_its_own_module_and_the_shared_css() -> None:
    for view in inspection_views():
        assert "export default" in view._esm
        assert ".wb-toolbar" in view._css


def test_addresses_parse_from_hex_only() -> None:
    assert parse_address("0xffff_ffff_8000_0000") == KERNEL
    assert parse_address("FFFFFFFF80000000") == KERNEL
    assert parse_address("0d4096") == 4096
    assert parse_address(4096) == 4096
    for bad in ("", "0x1" + "0" * 16, "hello", -1, 1.5):
        with pytest.raises(ViewError):
            parse_address(bad)


def test_the_page_may_set_only_what_it_is_allowed_to() -> None:
    explorer = inspection_views()[0]
    page = Page(explorer)
    page.says(kind="set", name="mode", value="hacked")
    assert explorer.mode != "hacked"
    assert "may not set" in explorer.error
    page.says(kind="set", name="range_start", value="not hex")
    assert "not a vaddr" in explorer.error
    assert explorer.range_start == ""
    page.says(kind="set", name="range_start", value="0xffffffff80000000")
    assert explorer.error == ""
    assert explorer.range_start == "0xffffffff80000000"
    page.says(kind="no such kind")
    page.says(unexpected="shape")


def test_throttle_calls_at_most_ten_times_a_second_and_never_loses_the_last_trigger() -> None:
    calls: list[float] = []

    def work() -> bool:
        calls.append(time.monotonic())
        return True

    throttle = Throttle(work, interval=0.1)
    started = last_trigger = time.monotonic()
    while time.monotonic() - started < 0.5:
        last_trigger = time.monotonic()
        throttle.trigger()
        time.sleep(0.001)
    deadline = time.monotonic() + 10.0  # a deadline, not a timing: a loaded CI machine may be slow to schedule it
    while not (calls and calls[-1] >= last_trigger) and time.monotonic() < deadline:
        time.sleep(0.01)
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert len(calls) <= 7, calls
    assert all(gap >= 0.095 for gap in gaps), gaps
    assert calls and calls[-1] >= last_trigger  # a call began after the last trigger: it was not dropped


def test_a_throttled_call_that_triggers_itself_still_waits_a_whole_interval() -> None:
    ends: list[float] = []
    starts: list[float] = []
    done = threading.Event()

    def work() -> bool:
        starts.append(time.monotonic())
        if len(starts) < 5:
            throttle.trigger()  # a live view re-arms itself from inside its flush
        time.sleep(0.03)  # and takes a while (a snapshot)
        ends.append(time.monotonic())
        if len(starts) == 5:
            done.set()
        return True

    throttle = Throttle(work, interval=0.1)
    throttle.trigger()
    assert done.wait(3.0)
    time.sleep(0.25)
    assert len(starts) == 5
    gaps = [start - end for end, start in zip(ends, starts[1:], strict=False)]
    assert all(gap >= 0.095 for gap in gaps), gaps


def test_updates_are_numbered_and_the_page_acknowledges_them() -> None:
    explorer = PageTableExplorer(snapshot(guest()))
    page = Page(explorer)
    explorer.show(snapshot(guest(), "again"))
    explorer.show(snapshot(guest(), "and again"))
    numbers = [m["seq"] for m in page.messages("tables")]
    assert numbers == [1, 2] and explorer.seq == 2
    assert explorer.flow == {"sent": 2, "acked": 0}
    page.says(kind="ack", seq=2)
    page.says(kind="ack", seq=1)  # late and out of order: the highest counts
    assert explorer.flow == {"sent": 2, "acked": 2}


# ---------------------------------------------------------------------------------------------
# Page-table explorer


def test_explorer_shows_the_top_table_at_once_and_the_rest_on_request() -> None:
    explorer = PageTableExplorer(snapshot(guest()))
    page = Page(explorer)
    assert explorer.root["level"] == "PML4"
    assert [e["id"] for e in explorer.root_entries] == ["0", "256", "511"]
    assert explorer.pages == 8
    page.says(kind="expand", id="511")
    assert explorer.expanded == ["511"]
    tables = page.messages("tables")[-1]["tables"]
    assert [e["id"] for e in tables["511"]["entries"]] == ["511/510"]
    page.says(kind="expand", id="511/510")
    page.says(kind="expand", id="511/510/0")
    leaves = explorer.table("511/510/0")[0]
    assert [e["rights"] for e in leaves] == ["-r-x", "-r-x", "-r--", "-rw-"]
    assert all(e["page_size"] == "4 KiB" and not e["huge"] for e in leaves)
    page.says(kind="collapse", id="511/510")
    assert explorer.expanded == ["511"]
    page.says(kind="hello")
    assert set(page.messages("tables")[-1]["tables"]) == {"511"}


def test_explorer_marks_huge_pages_and_decodes_an_entry_bit_by_bit() -> None:
    explorer = PageTableExplorer(snapshot(guest()))
    explorer.expand("256")
    huge = {e["page_size"]: e for e in explorer.table("256")[0] if e["kind"] == "page"}
    assert huge["1 GiB"]["huge"] and huge["1 GiB"]["id"] == "256/1"
    explorer.expand("256/0")
    assert explorer.table("256/0")[0][0]["page_size"] == "2 MiB"
    details = explorer.select("256/1")
    assert details["title"] == "PDPT entry 1 (PDPTE)"
    assert details["bits"] == format(int(details["entry"], 16), "064b")
    fields = {f["bits"]: f for f in details["fields"]}
    assert fields["7"]["name"] == "PS" and fields["7"]["value"] == "1"
    assert fields["51:30"]["name"] == "frame"
    assert fields["63"]["meaning"].startswith("no instruction fetch")
    assert explorer.selected == "256/1" and explorer.details == details
    with pytest.raises(ViewError):
        explorer.select("256/7")


@pytest.mark.parametrize(("permission", "expected"), [
    ("writable", {f"{KERNEL + 0x3000:#018x}", f"{USER_PAGE:#018x}", f"{WX_PAGE:#018x}"}),
    ("executable", {f"{KERNEL:#018x}", f"{KERNEL + 0x1000:#018x}", f"{WX_PAGE:#018x}"}),
    ("user", {f"{USER_PAGE:#018x}"}),
    ("w+x", {f"{WX_PAGE:#018x}"}),
])
def test_permission_filters_keep_only_paths_to_matching_pages(permission: str, expected: set[str]) -> None:
    explorer = PageTableExplorer(snapshot(guest()))
    explorer.permission_filter = permission
    shown = set()

    def visit(path: str) -> None:
        for entry in explorer.table(path)[0]:
            if entry["kind"] == "page":
                shown.add(entry["vaddr"])
            else:
                visit(entry["id"])

    visit("")
    assert {v for v in shown if not v.startswith("0xffff8")} == expected
    if permission != "writable":  # the direct map is never executable or user
        assert "256" not in [e["id"] for e in explorer.root_entries]
        assert explorer.root_hidden >= 1
    assert permission in repr(explorer)


def test_range_filter_and_its_validation() -> None:
    explorer = PageTableExplorer(snapshot(guest()))
    explorer.range_start, explorer.range_end = f"{KERNEL:#x}", f"{KERNEL + 0x2000:#x}"
    assert [e["id"] for e in explorer.root_entries] == ["511"]
    explorer.expand("511")
    explorer.expand("511/510")
    explorer.expand("511/510/0")
    assert [e["vaddr"] for e in explorer.table("511/510/0")[0]] == [f"{KERNEL:#018x}", f"{KERNEL + 0x1000:#018x}"]
    with pytest.raises(traitlets.TraitError):
        explorer.range_end = "0x1" + "0" * 17
    page = Page(explorer)
    page.says(kind="set", name="range_end", value=f"{KERNEL:#x}")
    assert "empty" in explorer.error


def test_jump_opens_the_path_even_through_a_filter_and_explains_a_miss() -> None:
    explorer = PageTableExplorer(snapshot(guest()))
    explorer.permission_filter = "user"
    assert explorer.jump(KERNEL + 0x3008) == "511/510/0/3"
    assert explorer.expanded == ["511", "511/510", "511/510/0"]
    assert explorer.selected == "511/510/0/3"
    assert "is mapped" in explorer.note
    assert "511/510/0/3" in [e["id"] for e in explorer.table("511/510/0")[0]]  # pinned despite the filter
    explorer.permission_filter = ""
    assert explorer.jump(KERNEL + 0x9000) == "511/510/0"
    assert "not mapped" in explorer.note
    explorer.jump("0x1000")  # the PML4 and PDPT entries are there, the PD entry is not
    assert "not mapped" in explorer.note
    with pytest.raises(ViewError):
        explorer.jump("main")  # no image: no symbols


def test_a_later_snapshot_highlights_what_changed() -> None:
    t = guest()
    explorer = PageTableExplorer(snapshot(t, "first"))
    explorer.expand("511")
    explorer.expand("511/510")
    explorer.expand("511/510/0")
    page = Page(explorer)
    t.set(*_pte(t, KERNEL + 0x2000), 0x10_2000 | P | XD | A)  # the CPU read rodata
    assert t.map(KERNEL + 0x5000, 0x10_5000, flags=P | RW | XD)
    explorer.show(snapshot(t, "second"))
    assert explorer.changed == ["511", "511/510", "511/510/0", "511/510/0/2", "511/510/0/5"]
    assert explorer.refreshes == 2 and explorer.snapshot_label.startswith("second")
    message = page.messages("tables")[-1]
    assert set(message["tables"]) == {"511/510", "511/510/0"}  # only tables whose entries changed are sent
    assert message["seq"] == explorer.seq
    explorer.show(snapshot(t, "third"))
    assert explorer.changed == ["511", "511/510", "511/510/0", "511/510/0/2", "511/510/0/5"]  # kept until a change


def test_explorer_static_form_lists_the_tree() -> None:
    explorer = PageTableExplorer(snapshot(guest()))
    html = explorer.static_html()
    assert "PML4[511]" in html and "PT[3]" in html and "1 GiB" in html
    assert html.count("<tr") <= 82


# ---------------------------------------------------------------------------------------------
# Translator


def test_translator_slices_a_4k_page_and_links_each_index_to_its_step() -> None:
    translator = Translator(snapshot(guest()), KERNEL + 0x1234)
    result = translator.result
    assert result["paddr"] == "0x0000000000101234"
    parts = [(s["name"], s["hi"], s["lo"], s["value"], s["step"]) for s in result["slices"]]
    assert parts == [("sign extension", 63, 48, "copies of bit 47", None), ("PML4 index", 47, 39, "511", 0),
                     ("PDPT index", 38, 30, "510", 1), ("PD index", 29, 21, "0", 2), ("PT index", 20, 12, "1", 3),
                     ("offset in the page", 11, 0, "0x234", None)]
    assert "".join(s["bits"] for s in result["slices"]) == format(KERNEL + 0x1234, "064b")
    assert [s["id"] for s in result["steps"]] == ["511", "511/510", "511/510/0", "511/510/0/1"]
    assert repr(translator) == "<Translator 0xffffffff80001234: paddr 0x0000000000101234>"


def test_translator_offsets_of_large_pages_and_faults() -> None:
    translator = Translator(snapshot(guest()), DIRECT_MAP + 0x12_3456)
    names = [s["name"] for s in translator.result["slices"]]
    assert names[-1] == "offset in the page" and translator.result["slices"][-1]["hi"] == 20
    assert "PT index" not in names
    translator.translate(DIRECT_MAP + PAGE_SIZE_1G + 0x1234_5678)
    assert translator.result["slices"][-1]["hi"] == 29
    translator.translate("0x1000")
    assert translator.result["fault"]["level"] == "PD"
    assert translator.result["summary"].startswith("fault at PD:")
    assert [s["state"] for s in translator.result["slices"]][-2:] == ["unreached", "unreached"]
    translator.translate("0x0000800000000000")
    assert translator.result["slices"][0]["state"] == "bad"
    assert translator.walk is not None and translator.walk.fault is not None


def test_translator_validates_what_the_page_types() -> None:
    translator = Translator(snapshot(guest()))
    assert repr(translator) == "<Translator: nothing translated yet>"
    page = Page(translator)
    page.says(kind="set", name="vaddr", value="0xzz")
    assert "not a vaddr" in translator.error and translator.vaddr == ""
    page.says(kind="set", name="vaddr", value=f"{KERNEL:#x}")
    assert translator.error == "" and translator.result["paddr"] == "0x0000000000100000"
    with pytest.raises(ViewError, match="no explorer"):
        translator.reveal(0)


def test_translator_slices_open_entries_in_a_linked_explorer() -> None:
    explorer = PageTableExplorer(snapshot(guest()))
    translator = Translator(explorer, KERNEL + 0x3000)
    assert translator.linked
    Page(translator).says(kind="reveal", step=2)
    assert explorer.selected == "511/510/0"
    assert explorer.expanded == ["511", "511/510"]
    translator.translate(KERNEL + 0x9000)
    translator.reveal(3)  # a not-present PTE is not in the tree: its table is shown instead
    assert explorer.selected == "511/510/0"


def test_slices_with_5_level_paging() -> None:
    t = Tables(la57=True)
    assert t.map(0x1234_5000, 0x5000)
    found = Snapshot.take(t.memory, t.regs()).walk(0x1234_5678)  # type: ignore[arg-type]
    parts = slices(found)
    assert parts[0]["hi"] == 63 and parts[0]["lo"] == 57
    assert [p["name"] for p in parts[1:3]] == ["PML5 index", "PML4 index"]


def test_translator_resolves_symbols_of_the_image(image: Image) -> None:
    t = guest()
    translator = Translator(snapshot(t), image=image)
    main = image.symbol("app_main").vaddr
    translator.vaddr = "app_main"
    assert translator.result["vaddr"] == f"{main:#018x}"
    assert translator.result["symbol"] == "app_main"
    with pytest.raises(traitlets.TraitError, match="no symbol"):
        translator.vaddr = "app_mian"


# ---------------------------------------------------------------------------------------------
# Address-space map


def test_map_strip_has_every_region_with_compressed_gaps() -> None:
    space_map = AddressSpaceMap(snapshot(guest()))
    parts = space_map.segments
    assert parts[0]["start"] == "0x0000000000000000" and parts[-1]["last"] == "0xffffffffffffffff"
    kinds = [p["kind"] for p in parts]
    assert "non-canonical" in kinds
    gaps = [p["weight"] for p in parts if p["permissions"] is None]
    mapped = [p["weight"] for p in parts if p["permissions"] is not None]
    assert max(gaps) < min(mapped) + 1.5  # 128 TiB of nothing is narrower than a 4 KiB page
    assert space_map.summary["wx_violations"] == 1
    assert "W^X violated" in space_map.summary["audit"]
    assert "<svg" in space_map.static_html()


def test_map_clusters_many_regions_and_zooms_into_them() -> None:
    t = Tables(size=32 << 20)
    for i in range(600):  # 600 pages with a hole after each: 1,200 regions
        assert t.map(0x1000_0000 + i * 0x2000, 0x10_0000 + i * 0x1000, flags=P | RW | XD)
    assert t.map(0x7000_0000, 0x50_0000, flags=P)
    space = snapshot(t).address_space()
    parts = segments(space, limit=50)
    assert len(parts) <= 50
    clusters = [p for p in parts if p["cluster"]]
    assert clusters and clusters[0]["cluster"]["regions"] > 100
    space_map = AddressSpaceMap(snapshot(t))
    page = Page(space_map)
    big = max((p for p in space_map.segments if p["cluster"]), key=lambda p: p["cluster"]["regions"], default=None)
    if big is None:  # the default limit showed every region
        assert len(space_map.segments) == len(space.regions)
        return
    page.says(kind="zoom", start=big["start"], last=big["last"])
    assert len(space_map.crumbs) == 2
    assert space_map.segments[0]["start"] == big["start"]
    page.says(kind="zoom_out", depth=0)
    assert len(space_map.crumbs) == 1


def test_map_click_opens_the_region_in_a_linked_explorer() -> None:
    shot = snapshot(guest())
    explorer = PageTableExplorer(shot)
    space_map = AddressSpaceMap(shot, explorer=explorer)
    Page(space_map).says(kind="open", start=f"{KERNEL:#018x}")
    assert space_map.selected["start"] == f"{KERNEL:#018x}"
    assert explorer.range_start == f"{KERNEL:#018x}" and explorer.range_end == f"{KERNEL + 0x2000:#018x}"
    assert explorer.selected == "511/510/0/0"
    with pytest.raises(ViewError):
        space_map.zoom_out(5)


# ---------------------------------------------------------------------------------------------
# Snapshot diff


def test_diff_rows_side_by_side() -> None:
    diff = inspection_views()[3]
    assert diff.counts == {"added": 1, "removed": 1, "changed": 0, "accessed_dirty_only": 0}
    assert [(r["change"], r["vaddr"]) for r in diff.rows] == [("removed", f"{USER_PAGE:#018x}"),
                                                             ("added", f"{USER_PAGE + 0x1000:#018x}")]
    assert diff.rows[0]["after"] is None and diff.rows[1]["before"] is None
    assert diff.rows[1]["after"]["paddr"] == "0x0000000000202000"
    assert "1 added, 1 removed" in diff.static_html()


def test_diff_can_hide_changes_the_cpu_made_to_accessed_and_dirty() -> None:
    t = guest()
    before = snapshot(t, "before")
    t.set(*_pte(t, KERNEL + 0x2000), 0x10_2000 | P | XD | A)
    t.set(*_pte(t, KERNEL), 0x10_0000 | P | A | RW)  # text made writable: not an A/D change
    diff = SnapshotDiff(before, snapshot(t, "after"))
    assert diff.counts["changed"] == 2 and diff.counts["accessed_dirty_only"] == 1
    assert {r["what"] for r in diff.rows} == {"A set", "rights"}
    Page(diff).says(kind="set", name="hide_accessed_dirty", value=True)
    assert [r["what"] for r in diff.rows] == ["rights"]
    assert diff.rows[0]["fields"] == ["rights", "flags", "entry"]
    with pytest.raises(ViewError):
        SnapshotDiff(before, "later")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Build view


def build_error(tmp_path: Path) -> BuildError:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "main.c").write_text("int main(void)\n{\n    return 0 <tag>\n}\n")
    diagnostic = Diagnostic("app/main.c", 3, 13, "error", "expected ';' before '<' token")
    return BuildError("The build failed with 1 error.", diagnostics=(diagnostic, diagnostic),
                      output="app/main.c:3:13: error: expected ';'", source_dir=tmp_path)


def test_build_view_of_an_error_sends_each_file_highlighted_and_escaped(tmp_path: Path) -> None:
    view = BuildView(build_error(tmp_path))
    assert view.status == "failed" and view.workspace == ""
    assert view.diagnostics == [{"path": "app/main.c", "line": 3, "column": 13, "severity": "error",
                                 "message": "expected ';' before '<' token"}]  # the duplicate is shown once
    lines = view.files[0]["lines"]
    assert len(lines) == 4 and "&lt;" in lines[2] and "<tag>" not in lines[2]
    assert repr(view) == "<BuildView: failed, 1 error>"
    assert "expected" in view.static_html()
    with pytest.raises(ViewError, match="cannot build"):
        view.build()


def test_highlighting_keeps_every_character() -> None:
    text = 'int x = 1; /* a < b && "c" */\n#define Y 2\n\nchar *s = "\\n";\n'
    lines = highlight_lines("f.c", text)
    assert len(lines) == 4
    plain = [html_module.unescape(re.sub(r"<[^>]+>", "", line)) for line in lines]
    assert plain == text.split("\n")[:-1]


def test_build_view_builds_a_workspace_and_rebuilds_on_request(workspace: Any) -> None:
    view = BuildView(workspace)
    assert view.status == "ok" and view.image["name"] == "unikernel.elf"
    assert view.last_image is not None and {s["name"] for s in view.image["sections"]} >= {".text", ".data"}
    workspace.replace("app/main.c", "void app_main(void)", "void app_main(void) oops")
    Page(view).says(kind="build")
    assert view.status == "failed" and view.last_error is not None
    assert view.diagnostics[0]["path"] == "app/main.c"
    assert repr(view).startswith("<BuildView 'test': failed")


# ---------------------------------------------------------------------------------------------
# Machine view (QEMU)


@contextlib.contextmanager
def machine_view(image: Image, name: str) -> Iterator[tuple[Machine, MachineView, Page]]:
    """A machine `name` at its prompt, a MachineView of it, and the stand-in page the view talks to."""
    with Machine(image, name=name) as machine:
        machine.wait_for("> ")
        view = MachineView(machine)
        yield machine, view, Page(view)


@pytest.mark.qemu
def test_machine_view_follows_the_machine_and_its_buttons(image: Image) -> None:
    with machine_view(image, "test-views") as (machine, view, page):
        assert (view.state, view.status) == ("running", "running")
        assert "app: Hello" in view.console_text
        page.says(kind="hello")
        assert page.messages("console")[-1]["reset"] and "app: Hello" in page.messages("console")[-1]["text"]

        page.says(kind="action", action="pause")
        assert view.state == "paused" and view.busy == "" and view.error == ""
        page.says(kind="action", action="pause")
        assert view.state == "paused" and view.error == ""  # pausing twice is harmless
        page.says(kind="action", action="resume")
        assert view.state == "running"

        page.says(kind="input", line="ticks")
        machine.wait_for("ok ticks")
        page.waits_for_console(lambda text: "ok ticks" in text)
        appended = [m for m in page.messages("console") if not m["reset"]]
        assert appended and all("seq" in m for m in appended)
        assert "ok ticks" in "".join(m["text"] for m in appended)

        page.says(kind="action", action="frobnicate")
        assert "buttons are" in view.error
        page.says(kind="action", action="stop")
        assert view.state == "closed"
        page.says(kind="input", line="help")
        assert "Press Boot" in view.error
        page.says(kind="action", action="boot")
        assert view.state == "running" and view.machine is not machine
        view.machine.wait_for("> ")
        assert repr(view) == "<MachineView 'test-views' (unikernel.elf): running>"
        assert "Machine test-views" in view.static_html()
        view.machine.close()


@pytest.mark.qemu
def test_machine_view_coalesces_a_flood_of_output(image: Image) -> None:
    with machine_view(image, "test-views-flood") as (machine, _, page):
        started = time.monotonic()
        for _ in range(150):  # as fast as the guest answers: hundreds of small pieces of output
            machine.request("help")
        page.waits_for_console(lambda text: text.count("ok help") >= 150)
        seconds = time.monotonic() - started
        messages = [m for m in page.messages("console") if not m["reset"]]
        assert len(messages) <= 10 * seconds + 2, (len(messages), seconds)  # ten a second, not one per line


@pytest.mark.qemu
def test_live_explorer_and_inspector_of_a_running_machine(image: Image) -> None:
    with Machine(image, name="test-views-live") as machine:
        machine.wait_for("> ")
        inspector = Inspector(machine, vaddr="app_main")
        explorer = inspector.explorer
        assert explorer.source == "machine" and explorer.live
        first = explorer.refreshes
        machine.request("alloc 1")
        deadline = time.monotonic() + 5
        while explorer.refreshes < first + 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert explorer.refreshes >= first + 3  # refreshed while it ran
        machine.pause()
        deadline = time.monotonic() + 5
        while "384" not in [e["id"] for e in explorer.root_entries] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "384" in [e["id"] for e in explorer.root_entries]  # the heap's PML4 entry appeared
        assert inspector.translator.result["symbol"] == "app_main"
        data, _ = inspector._repr_mimebundle_()
        assert data["text/plain"].startswith("<Inspector: <AddressSpaceMap:")
        assert "Page tables" in data["text/html"] and "Translate" in data["text/html"]
