"""Unikernel Workbench: edit, build, boot and look inside a small x86-64 unikernel.

The names a lesson needs are importable from here; everything else lives in its module.
"""

from workbench.errors import WorkbenchError
from workbench.guest.machine import GuestStopped, GuestTimeout, Machine, MachineState, Outcome
from workbench.kernel.build import BuildError
from workbench.kernel.image import Image
from workbench.kernel.workspace import Workspace
from workbench.models.faults import GuestFault

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
