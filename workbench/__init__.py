"""Unikernel Workbench: edit, build, boot and look inside a small x86-64 unikernel.

The names a lesson needs are importable from here; everything else lives in its module.
"""

from .build import BuildError
from .errors import WorkbenchError
from .faults import GuestFault
from .image import Image
from .machine import GuestStopped, GuestTimeout, Machine, MachineState, Outcome
from .workspace import Workspace

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
