"""Fixtures for the browser tests: one JupyterLab and one Chromium for the whole session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.lab_notebooks import ARTIFACTS, DEBUG_CELLS, DEBUG_NOTEBOOK, LESSONS, VIEWS_NOTEBOOK, views_notebook
from tests.support.jupyterlab_session import Browser, LabServer, LabUnavailable, chromium_missing


@pytest.fixture(scope="session")
def lab() -> Iterator[LabServer]:
    missing = chromium_missing()
    if missing:
        pytest.fail(f"the browser tests need Chromium and Playwright: {missing}")
    server = LabServer(LESSONS, extra_files={VIEWS_NOTEBOOK: views_notebook(),
                                             DEBUG_NOTEBOOK: views_notebook(DEBUG_CELLS)})
    try:
        server.start()
    except LabUnavailable as error:
        pytest.fail(str(error))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One Chromium for every browser test: Playwright's sync API allows one at a time per thread."""
    missing = chromium_missing()
    if missing:
        pytest.fail(f"the browser tests need Chromium and Playwright: {missing}")
    chromium = Browser()
    yield chromium
    chromium.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
