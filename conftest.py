"""Run-wide settings for every test, the lessons included.

Lessons executed by nbval build in workspaces under a temporary directory, so running the
tests never touches a student's own workspaces in lessons/workspaces. The variable is set
here, before any notebook kernel starts, because those kernels inherit the environment.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

_created: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    if "WORKBENCH_WORKSPACES" not in os.environ:
        directory = tempfile.mkdtemp(prefix="workbench-test-workspaces-")
        _created.append(directory)
        os.environ["WORKBENCH_WORKSPACES"] = directory


def pytest_unconfigure(config: pytest.Config) -> None:
    for directory in _created:
        shutil.rmtree(directory, ignore_errors=True)
        os.environ.pop("WORKBENCH_WORKSPACES", None)
