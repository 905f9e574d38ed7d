"""The lessons as a reader without a kernel sees them: nbconvert's HTML (what nbviewer serves),
opened in Chromium with the network off. Every view's output must show its static form.

A view's output bundle holds the widget mimetype and a static `text/html` of the same view;
the HTML must show the latter, visibly, with the text it holds, and load nothing from the network.
"""

from __future__ import annotations

import html.parser
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tests.browser.lab_notebooks import LESSONS
from tests.support.jupyterlab_session import Browser

pytestmark = pytest.mark.browser


WIDGET = "application/vnd.jupyter.widget-view+json"
VIEW_LESSONS = [p for p in LESSONS if "workbench.views" in p.read_text()]


class _Text(html.parser.HTMLParser):
    """The text of an HTML fragment, as a reader would see it (no <title>/<style>/<script>)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._hidden += tag in ("title", "style", "script")

    def handle_endtag(self, tag: str) -> None:
        self._hidden -= tag in ("title", "style", "script")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)


def visible_words(fragment: str) -> str:
    parser = _Text()
    parser.feed(fragment)
    return " ".join(" ".join(parser.parts).split())


def static_views(notebook: Path) -> list[str]:
    """The static HTML of every view output in the notebook, in order."""
    book = nbformat.read(notebook, as_version=4)
    found = []
    for cell in book.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET in data:
                assert "text/html" in data, f"{notebook.name}: a view output without its static text/html"
                found.append(str(data["text/html"]))
    return found


@pytest.fixture(scope="module")
def offline_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """nbconvert's HTML of every lesson with views, made by one nbconvert (it takes seconds to start)."""
    out_dir = tmp_path_factory.mktemp("offline-html")
    done = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", "--output-dir",
                           str(out_dir), *map(str, VIEW_LESSONS)], capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode == 0, done.stderr
    return out_dir


def check_offline_html(notebook: Path, browser: Browser, page_file: Path) -> None:
    """Open nbconvert's HTML of `notebook` offline, and check every view's static form shows."""
    views = static_views(notebook)
    assert views, f"{notebook.name} imports workbench.views but has no view output"
    context = browser.browser.new_context(offline=True, viewport={"width": 1400, "height": 1000})
    refused: list[str] = []

    def refuse(route: object) -> None:
        request = route.request  # type: ignore[attr-defined]
        if not request.url.startswith(("file:", "data:")):
            refused.append(request.url)
            route.abort()  # type: ignore[attr-defined]
        else:
            route.continue_()  # type: ignore[attr-defined]

    try:
        page = context.new_page()
        page.route("**/*", refuse)
        page.goto(page_file.as_uri(), wait_until="load", timeout=60_000)
        outputs = page.locator('.jp-OutputArea-output[data-mime-type="text/html"]')
        shown = [outputs.nth(i) for i in range(outputs.count())]
        texts = [" ".join(o.inner_text().split()) if o.is_visible() else "" for o in shown]
        widgets = page.locator(f'[data-mime-type="{WIDGET}"]').count()
        for index, fragment in enumerate(views):
            words = visible_words(fragment)
            assert words, f"{notebook.name}: view {index + 1}'s static HTML has no text"
            head = words[:60]
            assert any(head in text for text in texts), (
                f"{notebook.name}: view {index + 1}'s static form is not visible offline; expected text "
                f"starting {head!r}; the page shows {outputs.count()} static HTML outputs and "
                f"{widgets} widget outputs "
                f"(network requests refused: {refused[:3]})")
    finally:
        context.close()


@pytest.mark.parametrize("lesson", VIEW_LESSONS, ids=[p.name for p in VIEW_LESSONS])
def test_views_show_their_static_form_offline(browser: Browser, offline_html: Path, lesson: Path) -> None:
    check_offline_html(lesson, browser, offline_html / f"{lesson.stem}.html")


def test_the_text_of_a_static_view_is_what_a_reader_sees() -> None:
    fragment = "<div><b>Address space</b> <svg><rect><title>hover</title></rect></svg><td>0x1</td></div>"
    assert visible_words(fragment) == "Address space 0x1"
    assert re.fullmatch(r"[\w ]+", visible_words("<style>p {}</style>plain")) is not None
