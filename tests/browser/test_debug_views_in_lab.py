"""The debugger and timeline views in a real JupyterLab in real Chromium: a student steps,
sets a breakpoint with a click on a line number, and moves a replay with a click on its bar."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.lab_notebooks import DEBUG_NOTEBOOK, notebook_opened
from tests.support.jupyterlab_session import Browser, LabServer, NotebookPage

pytestmark = pytest.mark.browser
BOOT_S = Path(__file__).resolve().parents[2] / "kernel-src" / "kernel" / "boot.S"
GDT_LINE = next(n for n, line in enumerate(BOOT_S.read_text().splitlines(), 1) if "lgdt	" in line)  # step 10
ANSWER_MS = 15_000  # the longest a view may take to answer a click (QEMU under TCG, a busy CI)


@pytest.fixture(scope="module")
def notebook(lab: LabServer, browser: Browser) -> Iterator[NotebookPage]:
    with notebook_opened(lab, browser, DEBUG_NOTEBOOK) as page:
        yield page


def test_the_debugger_view_steps_and_takes_a_breakpoint(notebook: NotebookPage, artifacts: Path) -> None:
    assert notebook.errors() == [], notebook.errors()
    view = notebook.view("wb-debugger")
    view.scroll_into_view_if_needed()
    status = view.locator(".wb-explanation")
    expect(status).to_contain_text("entry in pvh_start32 (kernel/boot.S:25)", timeout=ANSWER_MS)
    expect(view.locator(".wb-debug-current")).to_have_attribute("data-line", "25")
    view.locator("button[data-action=step]").click()
    expect(status).to_contain_text(re.compile(r"^step in pvh_start32 \(kernel/boot\.S:\d+\)"), timeout=ANSWER_MS)
    expect(view.locator(".wb-debug-changed").first).to_be_visible()  # rip at least
    gutter = view.locator(f'.wb-debug-line[data-line="{GDT_LINE}"] .wb-debug-gutter')
    gutter.click()
    expect(gutter).to_contain_text("●", timeout=ANSWER_MS)
    view.locator("button[data-action=cont]").click()
    expect(status).to_contain_text(f"breakpoint in pvh_start32 (kernel/boot.S:{GDT_LINE})", timeout=ANSWER_MS)
    view.screenshot(path=artifacts / "debugger-view.png")
    notebook.assert_no_script_errors()


def test_a_click_on_the_timeline_moves_the_replay(notebook: NotebookPage, artifacts: Path) -> None:
    view = notebook.view("wb-timeline")
    view.scroll_into_view_if_needed()
    position = view.locator(".wb-toolbar .wb-note")
    expect(position).to_contain_text("ends in", timeout=ANSWER_MS)
    end = int(re.search(r"of (\d+)", position.text_content() or "")[1])  # type: ignore[index]
    bar = view.locator(".wb-timeline-bar")
    box = bar.bounding_box()
    assert box is not None
    notebook.page.mouse.click(box["x"] + box["width"] * 0.5, box["y"] + box["height"] / 2)
    expect(position).to_contain_text("going", timeout=ANSWER_MS)
    expect(position).not_to_contain_text("going", timeout=ANSWER_MS)
    reached = int(re.search(r"instruction (\d+)", position.text_content() or "")[1])  # type: ignore[index]
    assert abs(reached - end // 2) <= end // 20, (reached, end)  # where the click was, give or take a pixel
    expect(view.locator(".wb-console")).not_to_contain_text("alloc 1")  # the console as it was then
    view.screenshot(path=artifacts / "timeline-view.png")
    notebook.assert_no_script_errors()
