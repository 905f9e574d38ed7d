"""Every view in a real JupyterLab in real Chromium: it renders, and it answers the student.

The notebook (conftest.VIEW_CELLS) boots the unikernel and shows each view once. The test
runs it top to bottom, then uses each view the way a student would, waiting on the page for
each answer, and saves a screenshot of each view in test-artifacts/.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.lab_notebooks import LESSONS, VIEWS_NOTEBOOK, notebook_opened
from tests.support.jupyterlab_session import Browser, LabServer, NotebookPage

pytestmark = pytest.mark.browser
ANSWER_MS = 15_000  # the longest any view may take to answer a click (QEMU under TCG, a busy CI)


@pytest.fixture(scope="module")
def notebook(lab: LabServer, browser: Browser) -> Iterator[NotebookPage]:
    with notebook_opened(lab, browser, VIEWS_NOTEBOOK) as page:
        yield page


@pytest.fixture(autouse=True)
def no_script_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test of the views notebook: no script threw or logged an error meanwhile."""
    yield
    if "notebook" in request.fixturenames:
        page: NotebookPage = request.getfixturevalue("notebook")
        page.page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
        page.assert_no_script_errors()


def test_the_notebook_runs_without_errors(notebook: NotebookPage) -> None:
    assert notebook.errors() == [], notebook.errors()
    for view in ("wb-machine", "wb-explorer", "wb-translator", "wb-map", "wb-diff", "wb-build"):
        expect(notebook.view(view)).to_be_visible(timeout=ANSWER_MS)


def test_machine_view_pauses_resumes_and_talks(notebook: NotebookPage, artifacts: Path) -> None:
    view = notebook.view("wb-machine")
    view.scroll_into_view_if_needed()
    expect(view).to_have_attribute("data-state", "running", timeout=ANSWER_MS)
    expect(view.locator(".wb-console")).to_contain_text("app: Hello from the unikernel!")

    view.locator("button[data-action=pause]").click()
    expect(view).to_have_attribute("data-state", "paused", timeout=ANSWER_MS)
    expect(view.locator(".wb-badge")).to_have_text("paused")
    expect(view.locator("button[data-action=resume]")).to_be_enabled()
    view.locator("button[data-action=resume]").click()
    expect(view).to_have_attribute("data-state", "running", timeout=ANSWER_MS)

    line = view.locator(".wb-console-input input")
    line.fill("help")
    line.press("Enter")
    expect(view.locator(".wb-console")).to_contain_text("ok help commands=", timeout=ANSWER_MS)
    view.screenshot(path=artifacts / "machine-view.png")


def test_explorer_expands_selects_jumps_and_filters(notebook: NotebookPage, artifacts: Path) -> None:
    view = notebook.view("wb-explorer")
    view.scroll_into_view_if_needed()
    top = view.locator('.wb-row[data-id="511"]')
    expect(top).to_be_visible()
    top.locator(".wb-twisty").click()
    child = view.locator('.wb-row[data-id="511/510"]')
    expect(child).to_be_visible(timeout=ANSWER_MS)
    child.click()
    expect(view.locator(".wb-details")).to_contain_text("PDPT entry 510", timeout=ANSWER_MS)
    expect(view.locator(".wb-details")).to_contain_text("R/W = 1")

    jump = view.locator("input.wb-jump")
    jump.fill("app_main")
    jump.press("Enter")
    expect(view.locator(".wb-row.wb-selected")).to_have_attribute("data-kind", "page", timeout=ANSWER_MS)
    expect(view.locator(".wb-details")).to_contain_text("PT entry")
    expect(view.locator(".wb-row.wb-selected .wb-perm")).to_have_text("-r-x")

    view.locator("select.wb-filter").select_option("w+x")
    expect(view.locator(".wb-hidden-note").first).to_contain_text("matches the filters", timeout=ANSWER_MS)
    view.screenshot(path=artifacts / "page-table-explorer-filtered.png")
    view.locator("button", has_text="Clear").click()
    expect(view.locator("select.wb-filter")).to_have_value("", timeout=ANSWER_MS)
    view.screenshot(path=artifacts / "page-table-explorer.png")


def test_translator_slices_an_address_and_links_to_the_explorer(notebook: NotebookPage, artifacts: Path) -> None:
    view = notebook.view("wb-translator")
    view.scroll_into_view_if_needed()
    expect(view.locator(".wb-result")).to_contain_text("4 KiB page", timeout=ANSWER_MS)
    expect(view.locator(".wb-slice")).to_have_count(6)

    field = view.locator("input.wb-vaddr-input")
    field.fill("0x0")
    field.press("Enter")
    expect(view.locator(".wb-result")).to_contain_text("fault at", timeout=ANSWER_MS)
    expect(view.locator(".wb-result")).to_have_class("wb-result wb-result-fault")

    field.fill("0x8000000000000000")
    field.press("Enter")
    expect(view.locator(".wb-slice-bad")).to_contain_text("not all equal to bit 47", timeout=ANSWER_MS)

    field.fill("app_main")
    field.press("Enter")
    expect(view.locator(".wb-result")).to_contain_text("executable", timeout=ANSWER_MS)
    view.locator('.wb-slice[data-step="2"]').click()  # the PD index: its entry opens in the explorer
    explorer = notebook.view("wb-explorer")
    expect(explorer.locator(".wb-row.wb-selected")).to_have_attribute("data-id", "511/510/0", timeout=ANSWER_MS)
    view.locator('.wb-slice[data-step="1"]').hover()
    expect(view.locator('.wb-step[data-step="1"]')).to_have_class("wb-step wb-hot")
    view.screenshot(path=artifacts / "translator.png")


def test_address_map_draws_hovers_and_opens_a_region(notebook: NotebookPage, artifacts: Path) -> None:
    view = notebook.view("wb-map")
    view.scroll_into_view_if_needed()
    expect(view).to_have_attribute("data-drawn", re.compile(r"[1-9][0-9]*"), timeout=ANSWER_MS)
    canvas = view.locator("canvas")
    box = canvas.bounding_box()
    assert box is not None
    canvas.hover(position={"x": box["width"] * 0.5, "y": 38})
    expect(view.locator(".wb-tooltip")).to_be_visible()
    view.screenshot(path=artifacts / "address-space-map.png")

    view.locator("button", has_text="table").click()
    view.locator("tr.wb-click", has_text="image .text").click()
    explorer = notebook.view("wb-explorer")
    expect(explorer.locator("input.wb-from")).to_have_value("0xffffffff80100000", timeout=ANSWER_MS)
    expect(explorer.locator(".wb-row.wb-selected")).to_have_attribute("data-kind", "page")
    view.locator("button", has_text="table").click()


def test_snapshot_diff_marks_the_new_heap_pages(notebook: NotebookPage, artifacts: Path) -> None:
    view = notebook.view("wb-diff")
    view.scroll_into_view_if_needed()
    added = view.locator('tr[data-change="added"]')
    expect(added).to_have_count(2)
    expect(added.first.locator(".wb-diff-added")).to_be_visible()
    view.screenshot(path=artifacts / "snapshot-diff.png")
    view.locator("input[type=checkbox]").uncheck()
    expect(view.locator('tr[data-change="changed"]').first).to_be_visible(timeout=ANSWER_MS)


def test_build_view_shows_the_error_at_its_line(notebook: NotebookPage, artifacts: Path) -> None:
    view = notebook.view("wb-build")
    view.scroll_into_view_if_needed()
    expect(view).to_have_attribute("data-status", "failed")
    expect(view.locator(".wb-line.wb-marked").first).to_be_visible()
    expect(view.locator(".wb-diag").first).to_contain_text("error")
    expect(view.locator(".wb-source")).to_contain_text('console_printf("app: Hello from the unikernel!\\n")')
    view.screenshot(path=artifacts / "build-view.png")
    folds, lines = view.locator(".wb-fold"), view.locator(".wb-line")
    shown, folded = lines.count(), folds.count()
    hidden = int(folds.first.inner_text().split()[1])  # "⋯ 12 lines (click to show)"
    folds.first.click()  # the whole run opens, not its first line
    expect(folds).to_have_count(folded - 1)
    expect(lines).to_have_count(shown + hidden)


@pytest.mark.slow(30)
@pytest.mark.parametrize("lesson", [p.name for p in LESSONS if "workbench.views" in p.read_text()])
def test_lesson_views_render(lab: LabServer, browser: Browser, artifacts: Path, lesson: str) -> None:
    notebook = NotebookPage(lab, browser, lesson).open()
    try:
        notebook.run_all()
        assert notebook.errors() == [], notebook.errors()
        views = notebook.page.locator(".wb")
        assert views.count() > 0, f"{lesson} imports workbench.views but shows no view"
        for index in range(views.count()):
            view = views.nth(index)
            view.scroll_into_view_if_needed()
            expect(view).to_be_visible()
            view.screenshot(path=artifacts / f"{Path(lesson).stem}-view-{index + 1}.png")
        notebook.assert_no_script_errors()
    finally:
        notebook.close()
