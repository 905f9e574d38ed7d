"""The C toolchains the unikernel's Makefile supports, and which of their programs are missing."""

from __future__ import annotations

import os
import shutil

DEFAULT_TOOLCHAIN = os.environ.get("WORKBENCH_TOOLCHAIN", "gcc")

# The toolchains the unikernel's Makefile supports, as make variables.
TOOLCHAINS: dict[str, dict[str, str]] = {
    "gcc": {"CC": "gcc", "LD": "ld", "READELF": "readelf", "OBJCOPY": "objcopy"},
    "clang": {"CC": "clang", "LD": "ld.lld", "READELF": "readelf", "OBJCOPY": "objcopy"},
}
TOOLCHAIN_PACKAGES = {"gcc": "gcc binutils make", "clang": "clang lld binutils make"}


def toolchain_missing(name: str) -> list[str]:
    """The programs of toolchain `name` (plus make) that are not on PATH."""
    programs = [*TOOLCHAINS[name].values(), "make"]
    return [p for p in dict.fromkeys(programs) if shutil.which(p) is None]
