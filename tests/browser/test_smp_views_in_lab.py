"""The views of several CPUs in a real JupyterLab in real Chromium, against the live guests.

The notebook, written into the lab's folder by this module, boots apps/smp on three CPUs with a
reader on CPU 2, and lesson 09's Linux guest on two CPUs with a busy process pinned to each (so
each CPU has page tables of its own). On the page: the machine view lists every CPU once paused,
each row as QEMU's monitor and addr2line say; the page-table explorer's CPU line marks the table
each CPU's CR3 points to, as QEMU prints the CR3s; the stale-TLB view, refreshed with its button
after `remap local`, shows the walk's new frame beside the old frame the reader still reads,
and marks that CPU stale. What the tests compare with is asked of the notebook's kernel at that
moment (QEMU's own monitor text), or printed by the guest's replies.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.lab_notebooks import notebook_run
from tests.support.jupyterlab_session import Browser, LabServer, NotebookPage
from tests.support.qemu_registers import blocks, field

pytestmark = pytest.mark.browser
NOTEBOOK = "smp-views.ipynb"
ANSWER_MS = 15_000  # the longest a view may take to answer a click (QEMU under TCG, a busy CI)
READER_CPU = 2
CELLS = [
    '''from workbench import Machine, Workspace
from workbench.views import MachineView, PageTableExplorer, StaleTlbView

ws = Workspace.open("browser-smp", fresh=True)
image = ws.build(app="apps/smp")
machine = Machine(image, cpus=3, name="browser-smp").start()
machine.wait_for("> ", timeout=60)
print(machine.request("reader 2").line)''',
    "MachineView(machine)",
    "PageTableExplorer(machine, live=False)",
    "stale = StaleTlbView(machine)  # before the remap: the reader reads the page's first frame\nstale",
    'print(machine.request("remap local").line)',
    '''from workbench.compare.linux_guest import LinuxGuest, build_initramfs
from workbench.compare.stock_linux import stock_kernel

program = ws.build_linux_program(app="apps/greeter")
files = build_initramfs(program, stock_kernel(), ws.root / "build" / "browser-smp.cpio")
linux = LinuxGuest(files, name="browser-smp-linux", cpus=2).start()
linux.spin()  # a busy process on each CPU: two address spaces
linux.machine.pause()
PageTableExplorer(linux.machine, live=False)''',
    'PageTableExplorer(linux.machine.snapshot("cpu 1", cpu=1))',
]


@pytest.fixture(scope="module")
def notebook(lab: LabServer, browser: Browser) -> Iterator[NotebookPage]:
    with notebook_run(lab, browser, NOTEBOOK, CELLS) as page:
        yield page


def ask_kernel(notebook: NotebookPage, code: str) -> str:
    """What `code` prints when the notebook's kernel runs it now (its error, if it raises)."""
    printed: str = notebook.page.evaluate("""async (code) => {
        const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
        const future = kernel.requestExecute({ code, store_history: false });
        let out = "";
        future.onIOPub = (message) => {
            const kind = message.header.msg_type;
            if (kind === "stream") out += message.content.text;
            if (kind === "error") out += `${message.content.ename}: ${message.content.evalue}`;
        };
        await future.done;
        return out;
    }""", code)
    return printed


def reply(notebook: NotebookPage, request: str) -> dict[str, str]:
    """The fields of the guest's reply line printed in the notebook (`ok reader cpu=2 ...`)."""
    line = notebook.page.locator(".jp-OutputArea-output", has_text=f"ok {request} ").first.inner_text()
    return dict(re.findall(r"([\w-]+)=(\S+)", line))


def qemus_cpus(notebook: NotebookPage, machine: str) -> dict[int, str]:
    """QEMU's monitor's `info registers -a`, asked now, as one block per CPU."""
    return blocks(ask_kernel(notebook, f'print({machine}.hmp("info registers -a"))'))


def source_line(image: str, rip: int) -> str:
    """binutils' addr2line's `file:line` for rip, without a discriminator."""
    done = subprocess.run(["addr2line", "-e", image, f"{rip:#x}"], capture_output=True, text=True, timeout=30,
                          check=True)
    return done.stdout.split()[0]


def has_class(name: str) -> re.Pattern[str]:
    """A class attribute that holds `name` itself (not wb-stale-reader for wb-stale)."""
    return re.compile(rf"(^|\s){re.escape(name)}(\s|$)")


def cells_of(row: Any) -> list[str]:
    return [text.strip() for text in row.locator("td").all_inner_texts()]


def test_the_machine_view_lists_every_cpu_as_qemu_says_once_paused(notebook: NotebookPage, artifacts: Path) -> None:
    view = notebook.view("wb-machine")
    view.scroll_into_view_if_needed()
    rows = view.locator(".wb-cpus tr")
    expect(view).to_have_attribute("data-state", "running", timeout=ANSWER_MS)
    expect(rows).to_have_count(0)  # read once per stop, never while the CPUs run
    view.locator("button[data-action=pause]").click()
    expect(view).to_have_attribute("data-state", "paused", timeout=ANSWER_MS)
    expect(rows).to_have_count(3, timeout=ANSWER_MS)
    said = qemus_cpus(notebook, "machine")
    image = ask_kernel(notebook, "print(image.path)").strip()
    assert sorted(said) == [0, 1, 2]
    for index, block in said.items():
        number, state, where, line, cr3 = cells_of(rows.nth(index))
        rip = field("RIP", block)
        assert number == f"cpu {index}"
        assert state == ("halted" if field("HLT", block) else "running"), block
        assert re.fullmatch(rf"{rip:#x} <\w+\+0x[0-9a-f]+>", where), where
        assert cr3 == f"cr3={field('CR3', block):#x}"
        assert line and source_line(image, rip).endswith("/" + line), (line, source_line(image, rip))
    reader = cells_of(rows.nth(READER_CPU))
    assert reader[1] == "running" and "<reader+" in reader[2] and reader[3].startswith("apps/smp/main.c:")
    view.screenshot(path=artifacts / "machine-view-cpus.png")
    view.locator("button[data-action=resume]").click()
    expect(view).to_have_attribute("data-state", "running", timeout=ANSWER_MS)
    expect(rows).to_have_count(0, timeout=ANSWER_MS)


def test_the_explorer_marks_the_table_every_cpu_is_on(notebook: NotebookPage, artifacts: Path) -> None:
    view = notebook.view("wb-explorer")
    view.scroll_into_view_if_needed()
    said = qemus_cpus(notebook, "machine")
    tables = {field("CR3", block) & ~0xFFF for block in said.values()}
    assert len(tables) == 1, "apps/smp: one address space"
    expect(view.locator("div.wb-cpu-tables")).to_have_text("CR3 of cpu 0, 1, 2: this table", timeout=ANSWER_MS)
    expect(view.locator(".wb-toolbar").first).to_contain_text(f"PML4 at {tables.pop():#x}")
    view.screenshot(path=artifacts / "explorer-cpus-unikernel.png")


def test_the_explorer_names_the_other_cpus_table_on_linux(notebook: NotebookPage, artifacts: Path) -> None:
    said = qemus_cpus(notebook, "linux.machine")
    pml4 = [field("CR3", said[cpu]) & ~0xFFF for cpu in (0, 1)]
    assert pml4[0] != pml4[1], "each CPU runs a process of its own"
    for shown, other in ((0, 1), (1, 0)):  # the machine's tables (CPU 0's), then CPU 1's snapshot
        view = notebook.view("wb-explorer", 1 + shown)
        view.scroll_into_view_if_needed()
        expect(view.locator("div.wb-cpu-tables")).to_have_text(
            f"CR3 of cpu {shown}: this table; cpu {other}: the table at {pml4[other]:#018x}", timeout=ANSWER_MS)
        expect(view.locator(".wb-toolbar").first).to_contain_text(f"PML4 at {pml4[shown]:#x}")
        view.screenshot(path=artifacts / f"explorer-cpus-linux-{shown}.png")


def test_the_stale_tlb_view_puts_the_walk_beside_what_the_reader_read(notebook: NotebookPage,
                                                                        artifacts: Path) -> None:
    started, moved = reply(notebook, "reader"), reply(notebook, "remap")
    assert moved["mode"] == "local" and moved["stale"] == "yes", moved
    view = notebook.view("wb-stale-tlb")
    view.scroll_into_view_if_needed()
    readers = view.locator(".wb-stale-reader")
    mapped = view.locator('.wb-stale-frame[data-mapped="yes"]')
    # As made before the remap: the first frame mapped, and the reader fresh on it
    expect(view.locator(".wb-title")).to_contain_text(f"page {started['vaddr']} · reading 1", timeout=ANSWER_MS)
    expect(mapped).to_have_text(f"frame {started['frame']} holds {started['value']} (mapped by the tables)")
    expect(readers).to_have_count(1)
    expect(readers.first).to_have_class(has_class("wb-fresh"))
    expect(view).to_have_attribute("data-stale", "no")
    view.locator("button", has_text="Refresh").click()
    expect(view.locator(".wb-title")).to_contain_text("reading 2", timeout=ANSWER_MS)
    # Left, the tables now: the walk ends in the new frame, which holds the new value
    tables, read = view.locator(".wb-stale-column").nth(0), view.locator(".wb-stale-column").nth(1)
    expect(tables.locator(".wb-stale-step").last).to_contain_text(f"→ {moved['new-frame']}")
    expect(mapped).to_have_text(f"frame {moved['new-frame']} holds {moved['value']} (mapped by the tables)")
    expect(view.locator('.wb-stale-frame[data-mapped="no"]')).to_have_text(
        f"frame {moved['old-frame']} holds {moved['old-value']} (no longer mapped)")
    # Right, the reader: still the old value, from the old frame, marked stale
    stale = read.locator(f'.wb-stale-reader[data-cpu="{READER_CPU}"]')
    expect(stale).to_have_class(has_class("wb-stale"))
    expect(stale).to_contain_text(f"cpu {READER_CPU} (running at ")
    expect(stale).to_contain_text(f"read {moved['old-value']} from frame {moved['old-frame']} stale")
    expect(view).to_have_attribute("data-stale", "yes")
    expect(view.locator(".wb-stale-summary")).to_contain_text(
        f"cpu {READER_CPU} read {moved['old-value']} from frame {moved['old-frame']}, stale")
    left, right = tables.bounding_box(), read.bounding_box()
    assert left is not None and right is not None
    assert left["x"] + left["width"] <= right["x"] and left["y"] == right["y"], "side by side"
    now = ask_kernel(notebook, 'print(hex(machine.read_symbol("reader_value")), '
                               'hex(machine.snapshot().translate(stale.machine.read_symbol("reader_page"))))')
    assert now.split() == [moved["old-value"], moved["new-frame"]], now  # the guest agrees: still stale
    view.screenshot(path=artifacts / "stale-tlb-view.png")
