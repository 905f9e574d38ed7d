"""The frame map in a real JupyterLab in real Chromium, on a healthy unikernel, a buggy one and
the stock Linux guest.

The notebook, written into the lab's folder by this module, boots two unikernels: a healthy one,
and one whose heap hands each new page's frame out again (the planted bug of
tests/integration/test_frame_map.py). The test checks on the page itself: the grid paints one
cell per frame in each frame's owner colour, a click on the PML4's cell shows its owner and the
vaddrs that map it, the buggy guest's legend and errors show, and its strip zooms into a grid.
A second notebook boots the stock Linux kernel as the other Linux tests do
(tests/support/linux_kernel.py, 512 MiB: 131,072 frames, no symbols): its strip paints, page
tables winning their pixel columns; clicks zoom it down to a grid; a click on its PML4's cell
shows its owner and its direct-map vaddr, and a click on the frame of the instruction the guest
stopped at shows the first bytes Python reads there.
Screenshots go to test-artifacts/frame-map-*.png.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.lab_notebooks import notebook_run
from tests.support import linux_kernel
from tests.support.jupyterlab_session import Browser, LabServer, NotebookPage
from workbench.models.frames import Owner
from workbench.views.frame_map import COLOURS

pytestmark = pytest.mark.browser
NOTEBOOK = "frame-map.ipynb"
ANSWER_MS = 15_000  # the longest the view may take to answer a click (QEMU under TCG, a busy CI)
HEAP_BUG = ("kernel/paging.c", "        *entry = frame_alloc() | PTE_PRESENT | PTE_WRITABLE | PTE_NO_EXEC;\n",
            "        *entry = frame_alloc() | PTE_PRESENT | PTE_WRITABLE | PTE_NO_EXEC;\n"
            "        next_frame -= PAGE_SIZE;  /* planted: the frame stays free */\n")
CELLS = [
    '''from workbench import Machine, Workspace
from workbench.views import FrameMap

healthy = Workspace.open("browser-frames", fresh=True)
machine = Machine(healthy.build(), name="browser-frames").start()
machine.wait_for("> ")
machine.request("alloc 2")
print("pml4 frame", (machine.registers().cr3 & ~0xFFF) // 4096)
print("last free frame", machine.read_symbol("frames_end") // 4096 - 1)  # the allocator's own end''',
    "FrameMap(machine)",
    f'''buggy = Workspace.open("browser-frames-buggy", fresh=True)
buggy.replace(*{HEAP_BUG!r})
planted = Machine(buggy.build(), name="browser-frames-buggy").start()
planted.wait_for("> ")
planted.request("alloc 2")
FrameMap(planted)''',
    "FrameMap(planted, strip=True)",
]
LINUX_NOTEBOOK = "frame-map-linux.ipynb"
# The notebook's kernel imports tests/support/linux_kernel.py from the lab's folder, its working
# directory, where the fixture copies it (as benchmarks/views.py does).
LINUX_CELLS = [
    '''import linux_kernel
from workbench.views import FrameMap

linux = linux_kernel.boot_paused(linux_kernel.stock_kernel())  # unavailable is a failure, as elsewhere
registers = linux.registers()
code = linux.snapshot().translate(registers.rip) // 4096  # kernel text: its first bytes are not zeros
print("pml4 frame", (registers.cr3 & ~0xFFF) // 4096)
print("code frame", code, "at", hex(registers.rip & ~0xFFF))
print("first bytes", linux.memory.read(code * 4096, 32).hex(" "))''',
    "FrameMap(linux)",
]
TABLE_COLOURS = {COLOURS[owner] for owner in (Owner.PML4, Owner.PDPT, Owner.PD, Owner.PT)}


@pytest.fixture(scope="module")
def notebook(lab: LabServer, browser: Browser) -> Iterator[NotebookPage]:
    with notebook_run(lab, browser, NOTEBOOK, CELLS) as page:
        yield page


@pytest.fixture(scope="module")
def linux_notebook(lab: LabServer, browser: Browser) -> Iterator[NotebookPage]:
    (lab.root / "linux_kernel.py").write_text(Path(linux_kernel.__file__).read_text())
    with notebook_run(lab, browser, LINUX_NOTEBOOK, LINUX_CELLS) as page:  # its close ends the Linux guest
        yield page


def pixel(view: Any, x: float, y: float) -> str:
    """The colour the view's canvas painted at canvas pixel (x, y), as #rrggbb."""
    colour: str = view.locator("canvas").evaluate(
        """(canvas, [x, y]) => {
            const [r, g, b] = canvas.getContext("2d").getImageData(x, y, 1, 1).data;
            return "#" + [r, g, b].map((v) => v.toString(16).padStart(2, "0")).join("");
        }""", [x, y])
    return colour


def cell_centre(view: Any, frame: int) -> tuple[float, float]:
    """Canvas pixel of the centre of `frame`'s cell in a grid view."""
    first, columns, cell = (int(view.get_attribute(f"data-{name}")) for name in ("first", "columns", "cell"))
    index = frame - first
    return (index % columns + 0.5) * cell, (index // columns + 0.5) * cell


def click_canvas(view: Any, x: float, y: float) -> None:
    """Click at canvas pixel (x, y), whatever the canvas's on-screen scale."""
    canvas = view.locator("canvas")
    scale = canvas.evaluate("(c) => c.getBoundingClientRect().width / c.width")
    canvas.click(position={"x": x * scale, "y": y * scale})


def test_the_grid_paints_every_frame_and_a_click_names_its_owner(notebook: NotebookPage, artifacts: Path) -> None:
    view = notebook.view("wb-frame-map")
    view.scroll_into_view_if_needed()
    expect(view).to_have_attribute("data-drawn", re.compile(r"[1-9][0-9]*"), timeout=ANSWER_MS)
    expect(view).to_have_attribute("data-frames", "16384")
    expect(view).to_have_attribute("data-shape", "grid")
    expect(view).to_have_attribute("data-errors", "0")
    # First the frames in use, up to a multiple of 512 (the unikernel's are all below 2 MiB)
    expect(view).to_have_attribute("data-first", "0")
    expect(view).to_have_attribute("data-end", "512")
    columns, cell = int(view.get_attribute("data-columns")), int(view.get_attribute("data-cell"))
    assert view.locator("canvas").evaluate("(c) => [c.width, c.height]") == [columns * cell, 512 // columns * cell]
    printed = notebook.page.locator(".jp-OutputArea-output", has_text="pml4 frame").first.inner_text()
    pml4, last_free = (int(re.search(rf"{what} (\d+)", printed)[1]) for what in ("pml4 frame", "last free frame"))
    assert pixel(view, *cell_centre(view, pml4)) == COLOURS[Owner.PML4]
    view.screenshot(path=artifacts / "frame-map-in-use.png")
    view.locator("button[data-action=whole]").click()
    expect(view).to_have_attribute("data-end", "16384")
    columns, cell = int(view.get_attribute("data-columns")), int(view.get_attribute("data-cell"))
    assert view.locator("canvas").evaluate("(c) => [c.width, c.height]") == [columns * cell, 16384 // columns * cell]
    assert pixel(view, *cell_centre(view, pml4)) == COLOURS[Owner.PML4]
    # Where RAM ends is QEMU's (10.0 ends it 4 KiB short of 64 MiB): the allocator says where free frames end
    assert 16000 < last_free < 16384 and pixel(view, *cell_centre(view, last_free)) == COLOURS[Owner.FREE]
    click_canvas(view, *cell_centre(view, pml4))
    details = view.locator(".wb-frame-details")
    expect(details).to_contain_text(f"frame {pml4 * 4096:#x}: page table: PML4", timeout=ANSWER_MS)
    expect(details).to_contain_text(f"mapped at {0xFFFF800000000000 + pml4 * 4096:#018x} -rw- 2 MiB page (direct map)")
    expect(view.locator(".wb-legend")).to_contain_text("page table: PML4 (")
    view.screenshot(path=artifacts / "frame-map-healthy.png")


def test_the_buggy_guest_shows_its_errors_and_legend(notebook: NotebookPage, artifacts: Path) -> None:
    view = notebook.view("wb-frame-map", 1)
    view.scroll_into_view_if_needed()
    expect(view).to_have_attribute("data-errors", re.compile(r"[1-9][0-9]*"), timeout=ANSWER_MS)
    details = view.locator(".wb-frame-details")
    expect(details).to_contain_text("is free in the frame allocator")
    expect(details).to_contain_text("is mapped by 2 pages outside the direct map")
    legend = view.locator(".wb-legend")
    expect(legend).to_contain_text("page table: PT (")
    expect(legend).to_contain_text("free in the frame allocator (")
    twice = int(re.search(r"frame (0x[0-9a-f]+) is free", details.inner_text()).group(1), 16)  # type: ignore[union-attr]
    x, y = cell_centre(view, twice // 4096)
    cell = int(view.get_attribute("data-cell"))
    assert pixel(view, x - cell / 2, y) == "#dc2626"  # the red outline
    click_canvas(view, x, y)
    expect(details).to_contain_text(f"frame {twice:#x}: free in the frame allocator", timeout=ANSWER_MS)
    expect(details).to_contain_text("mapped at 0xffffc00000000000 -rw- 4 KiB page")
    expect(details).to_contain_text("mapped at 0xffffc00000001000 -rw- 4 KiB page")
    expect(details).to_contain_text("ERROR: frame")
    view.screenshot(path=artifacts / "frame-map-buggy.png")


def test_the_strip_marks_errors_and_zooms_into_a_grid(notebook: NotebookPage, artifacts: Path) -> None:
    view = notebook.view("wb-frame-map", 2)
    view.scroll_into_view_if_needed()
    expect(view).to_have_attribute("data-shape", "strip", timeout=ANSWER_MS)
    width = view.locator("canvas").evaluate("(c) => c.width")
    ticks = view.locator("canvas").evaluate(
        """(c) => { const d = c.getContext("2d").getImageData(0, 0, c.width, 1).data; let n = 0;
                    for (let i = 0; i < d.length; i += 4) if (d[i] === 0xdc && d[i + 1] === 0x26) n++; return n; }""")
    assert ticks > 0, "no red tick over the strip, though the guest has errors"
    view.screenshot(path=artifacts / "frame-map-strip.png")
    click_canvas(view, width / 2, 30)  # an eighth of memory around the middle: small enough for a grid
    expect(view).to_have_attribute("data-shape", "grid", timeout=ANSWER_MS)
    first, end = int(view.get_attribute("data-first")), int(view.get_attribute("data-end"))
    assert 16384 // 8 <= end - first <= 16384 // 8 + 64 and first % 64 == 0 and first <= 8192 < end  # whole rows
    view.locator("button[data-action=whole]").click()
    expect(view).to_have_attribute("data-shape", "strip")
    canvas = view.locator("canvas")
    scale = canvas.evaluate("(c) => c.getBoundingClientRect().width / c.width")
    canvas.hover(position={"x": 10 * scale, "y": 30})
    notebook.page.mouse.down()
    box = canvas.bounding_box()
    assert box is not None
    notebook.page.mouse.move(box["x"] + width / 4 * scale, box["y"] + 30, steps=4)
    notebook.page.mouse.up()
    expect(view).to_have_attribute("data-shape", "grid", timeout=ANSWER_MS)
    view.screenshot(path=artifacts / "frame-map-zoomed.png")


def strip_column(view: Any, frame: int) -> float:
    """Canvas x of the middle of the strip's pixel column that holds `frame`."""
    first, end = int(view.get_attribute("data-first")), int(view.get_attribute("data-end"))
    width: int = view.locator("canvas").evaluate("(c) => c.width")
    per_pixel = (end - first) / width
    # As frame_map.js draws it: column x holds frames first + floor(x * per_pixel) up to, not
    # including, first + floor((x + 1) * per_pixel), so a frame near a boundary may be one further.
    column = int((frame - first) // per_pixel)
    if math.floor((column + 1) * per_pixel) <= frame - first:
        column += 1
    return column + 0.5


def zoom_to(view: Any, frame: int) -> None:
    """From the whole strip, click on `frame`'s column until it shows as a grid's cell."""
    for _click in range(3):  # each click zooms into an eighth: 16,384 frames or so, then 2,048, a grid
        if view.get_attribute("data-shape") == "grid":
            break
        drawn = view.get_attribute("data-drawn")
        click_canvas(view, strip_column(view, frame), 30)
        expect(view).not_to_have_attribute("data-drawn", drawn, timeout=ANSWER_MS)  # drawn again, zoomed
    expect(view).to_have_attribute("data-shape", "grid")
    first, end = int(view.get_attribute("data-first")), int(view.get_attribute("data-end"))
    assert first <= frame < end and end - first <= 16384 and first % 64 == 0


def test_the_linux_strip_paints_zooms_and_a_click_shows_a_frame(linux_notebook: NotebookPage, artifacts: Path) -> None:
    view = linux_notebook.view("wb-frame-map")
    view.scroll_into_view_if_needed()
    expect(view).to_have_attribute("data-drawn", re.compile(r"[1-9][0-9]*"), timeout=ANSWER_MS)
    expect(view).to_have_attribute("data-frames", str(512 * 256))
    expect(view).to_have_attribute("data-shape", "strip")
    expect(view).to_have_attribute("data-first", "0")
    expect(view).to_have_attribute("data-end", str(512 * 256))
    printed = linux_notebook.page.locator(".jp-OutputArea-output", has_text="pml4 frame").first.inner_text()
    found = re.search(r"pml4 frame (\d+)\ncode frame (\d+) at (0x[0-9a-f]+)\nfirst bytes ([0-9a-f ]+)", printed)
    assert found is not None, printed
    pml4, code, code_page, first_bytes = int(found[1]), int(found[2]), int(found[3], 16), found[4].strip()
    assert first_bytes.replace("0", "").strip()  # not all zeros: the bytes shown must be the frame's own
    canvas = view.locator("canvas")
    assert 400 <= canvas.evaluate("(c) => c.width") < 512 * 256  # a pixel column holds a run of frames
    colours = set(canvas.evaluate(
        """(c) => { const d = c.getContext("2d").getImageData(0, 30, c.width, 1).data; const seen = new Set();
                    for (let i = 0; i < d.length; i += 4) seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
                    return [...seen].map((v) => "#" + v.toString(16).padStart(6, "0")); }"""))
    assert len(colours) >= 3 and colours & TABLE_COLOURS, colours  # painted, page tables among its owners
    assert pixel(view, strip_column(view, pml4), 30) in TABLE_COLOURS  # a page table wins its column
    view.screenshot(path=artifacts / "frame-map-linux-strip.png")
    zoom_to(view, pml4)
    x, y = cell_centre(view, pml4)
    assert pixel(view, x, y) == COLOURS[Owner.PML4]
    click_canvas(view, x, y)
    details = view.locator(".wb-frame-details")
    expect(details).to_contain_text(f"frame {pml4 * 4096:#x}: page table: PML4", timeout=ANSWER_MS)
    expect(details).to_contain_text("(direct map)")
    view.screenshot(path=artifacts / "frame-map-linux-grid.png")
    view.locator("button[data-action=whole]").click()
    expect(view).to_have_attribute("data-shape", "strip")
    expect(view).to_have_attribute("data-end", str(512 * 256))
    zoom_to(view, code)
    assert pixel(view, *cell_centre(view, code)) == COLOURS[Owner.MAPPED]  # no symbols: RAM mapped outside
    click_canvas(view, *cell_centre(view, code))
    expect(details).to_contain_text(f"frame {code * 4096:#x}: {Owner.MAPPED.label}", timeout=ANSWER_MS)
    expect(details).to_contain_text(f"mapped at {code_page:#018x} -r-x")  # kernel only, executable
    expect(details).to_contain_text(f"first bytes: {first_bytes}")
