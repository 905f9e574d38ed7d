"""Shared fixtures: workspaces in temporary directories, and one built image per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.kernel.image import Image
from workbench.kernel.workspace import Workspace


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    """A fresh copy of kernel-src of this test's own."""
    return Workspace.open("test", parent=tmp_path)


@pytest.fixture(scope="session")
def built_workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """One workspace shared by the tests that only read and boot; built once."""
    workspace = Workspace.open("shared", parent=tmp_path_factory.mktemp("built"))
    workspace.build()
    return workspace


@pytest.fixture(scope="session")
def image(built_workspace: Workspace) -> Image:
    return built_workspace.build()
