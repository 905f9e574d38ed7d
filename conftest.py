"""Run-wide settings for every test, the lessons included.

Lessons executed by nbval build in workspaces under a temporary directory, so running the
tests never touches a student's own workspaces in lessons/workspaces. The variable is set
here, before any notebook kernel starts, because those kernels inherit the environment. Under
pytest-xdist each worker has a directory of its own (two lessons at once never share one).

How ./run-tests spreads the tests over its workers (pytest-xdist, `-n auto --dist loadscope`,
with the scheduler below): a module's tests stay together on one worker (its module- and
session-scoped fixtures are set up once per worker that runs it), a notebook's cells too (nbval
runs them in order in one kernel), except the tests in SPREAD, each a unit of its own. Units are
handed out longest first, by the seconds each test's `slow` marker says it takes, so that the
longest does not start last. (pytest-xdist's own --dist loadgroup cannot do this with pytest 9:
its groups are a suffix it writes into a node id that pytest 9 no longer lets it change.)
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

import pytest

_created: list[str] = []
_OURS = "WORKBENCH_TEST_WORKSPACES"  # the directory this run made, which workers do not reuse


def pytest_configure(config: pytest.Config) -> None:
    inherited = os.environ.get(_OURS)
    if "WORKBENCH_WORKSPACES" not in os.environ or os.environ["WORKBENCH_WORKSPACES"] == inherited:
        worker = os.environ.get("PYTEST_XDIST_WORKER")
        directory = tempfile.mkdtemp(prefix=f"workbench-test-workspaces-{worker + '-' if worker else ''}")
        _created.append(directory)
        os.environ["WORKBENCH_WORKSPACES"] = os.environ[_OURS] = directory


def pytest_unconfigure(config: pytest.Config) -> None:
    for directory in _created:
        shutil.rmtree(directory, ignore_errors=True)
        os.environ.pop("WORKBENCH_WORKSPACES", None)
        os.environ.pop(_OURS, None)


# Tests that set up everything they use (no module- or session-scoped fixture shared with their
# module's other tests): under pytest-xdist each is a unit of work of its own. Prefixes of node ids.
SPREAD = (
    "tests/integration/test_grading.py::",        # each makes a course of its own
    "tests/integration/test_lesson_checks.py::",  # each makes a course of its own
    "tests/integration/test_wheel.py::",          # each builds and installs its own wheel
    "tests/browser/test_views_in_lab.py::test_lesson_views_render[",  # a page and kernel of its own
)


def unit_of(nodeid: str) -> str:
    """The unit of work a test belongs to: itself if it is spread, else its module or notebook."""
    return nodeid if nodeid.startswith(SPREAD) else nodeid.split("::", maxsplit=1)[0]


def _seconds(item: pytest.Item) -> float:
    marker = item.get_closest_marker("slow")
    return float(marker.args[0]) if marker is not None else 0.0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Longest unit of work first, by the `slow` markers of its tests: a stable sort, so within a
    unit, and among units without a `slow` marker, the collection's order stays."""
    weight: dict[str, float] = {}
    for item in items:
        weight[unit_of(item.nodeid)] = weight.get(unit_of(item.nodeid), 0.0) + _seconds(item)
    items.sort(key=lambda item: -weight[unit_of(item.nodeid)])


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """For --dist loadscope: units of work as unit_of() makes them, in the order collected."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling  # noqa: PLC0415 - only under pytest-xdist

    class Units(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return unit_of(nodeid)

    return Units(config, log)
