"""Unikernel Workbench: edit, build, boot and look inside a small x86-64 unikernel.

The names a lesson needs are importable from here; everything else lives in its module. They
are imported on first use, so that a process that needs only one small module (the grader's
sandbox launcher, started once per graded notebook) does not pay for QEMU's, the models' and
numpy's imports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.errors import WorkbenchError
    from workbench.guest.machine import GuestStopped, GuestTimeout, Machine, MachineState, Outcome
    from workbench.kernel.build import BuildError
    from workbench.kernel.image import Image
    from workbench.kernel.workspace import Workspace
    from workbench.models.faults import GuestFault

_HOMES = {
    "BuildError": "workbench.kernel.build",
    "GuestFault": "workbench.models.faults",
    "GuestStopped": "workbench.guest.machine",
    "GuestTimeout": "workbench.guest.machine",
    "Image": "workbench.kernel.image",
    "Machine": "workbench.guest.machine",
    "MachineState": "workbench.guest.machine",
    "Outcome": "workbench.guest.machine",
    "WorkbenchError": "workbench.errors",
    "Workspace": "workbench.kernel.workspace",
}

__all__ = [
    "BuildError",
    "GuestFault",
    "GuestStopped",
    "GuestTimeout",
    "Image",
    "Machine",
    "MachineState",
    "Outcome",
    "WorkbenchError",
    "Workspace",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'workbench' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # once: the next lookup finds it without coming here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})
