"""The installed QEMU: its binary, version and abilities, and whether KVM can be used.

Machine builds a command line that works on the installed QEMU (7.2 on Debian 12, 10.0 on
Debian 13), and `workbench doctor` tells a student what is missing.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import WorkbenchError

QEMU_BINARY = "qemu-system-x86_64"
QBOOT_CANDIDATES = ("/usr/share/qemu/qboot.rom", "/usr/share/seabios/qboot.rom")
INSTALL_HINT = "sudo apt-get install qemu-system-x86"


class QemuNotFound(WorkbenchError):
    """QEMU is not installed, or is too old to drive."""


@dataclass(frozen=True)
class QemuInfo:
    """The installed QEMU: its path, version and what it can do."""

    path: str
    version: tuple[int, int, int]
    machine_types: frozenset[str]
    has_sandbox: bool
    qboot_rom: str | None

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version))


@functools.lru_cache(maxsize=1)
def qemu_info() -> QemuInfo:
    """Probe the QEMU binary once per process (a few tens of milliseconds)."""
    path = shutil.which(os.environ.get("WORKBENCH_QEMU", QEMU_BINARY))
    if path is None:
        raise QemuNotFound(
            f"{QEMU_BINARY} is not installed, so the unikernel cannot boot. "
            f"Install it with: {INSTALL_HINT}"
        )

    def ask(*args: str) -> str:
        done = subprocess.run([path, *args], capture_output=True, text=True, timeout=30, check=False)
        return done.stdout + done.stderr

    version_match = re.search(r"version (\d+)\.(\d+)\.(\d+)", ask("--version"))
    if version_match is None:
        raise QemuNotFound(f"could not read the version of {path}")
    version = (int(version_match[1]), int(version_match[2]), int(version_match[3]))
    if version < (6, 0, 0):
        raise QemuNotFound(f"QEMU {'.'.join(map(str, version))} is too old; 6.0 or newer is needed (for -action)")
    machine_types = frozenset(
        line.split()[0] for line in ask("-machine", "help").splitlines()[1:] if line.strip()
    )
    has_sandbox = "-sandbox" in ask("-help")
    qboot = next((p for p in QBOOT_CANDIDATES if Path(p).is_file()), None)
    return QemuInfo(path, version, machine_types, has_sandbox, qboot)


def kvm_usable() -> bool:
    """True when /dev/kvm can be opened (it may still be slow nested virtualisation)."""
    return os.access("/dev/kvm", os.R_OK | os.W_OK)


@functools.cache
def max_cpus(machine_type: str) -> int:
    """How many CPUs QEMU allows `machine_type` (QMP `query-machines`'s `cpu-max`: 288 for
    microvm on 7.2), asked once per machine type of a QEMU with no machine (about 0.3 s)."""
    path = qemu_info().path
    commands = b'{"execute":"qmp_capabilities"}\n{"execute":"query-machines"}\n{"execute":"quit"}\n'
    done = subprocess.run([path, "-machine", "none", "-display", "none", "-nodefaults", "-no-user-config",
                           "-qmp", "stdio"], input=commands, capture_output=True, timeout=30, check=False)
    for line in done.stdout.splitlines():
        reply = json.loads(line)
        machines = reply.get("return")
        if isinstance(machines, list):
            for machine in machines:
                if machine_type in (machine.get("name"), machine.get("alias")):
                    return int(machine["cpu-max"])
    raise QemuNotFound(f"{path} did not say how many CPUs the machine type {machine_type} allows")
