"""The image's instructions as text, for traces: binutils' objdump, run once per image.

objdump is part of binutils, which the unikernel's build needs anyway (nm). Its text depends on
the binutils version, like the instructions depend on the compiler's: show it, never compare it.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from workbench.errors import WorkbenchError

OBJDUMP_TIMEOUT = 30.0
_LINE = re.compile(r"^\s*([0-9a-f]+):\t(.*)$")


class DisassemblyError(WorkbenchError):
    """objdump is missing or could not read the image."""


@functools.lru_cache(maxsize=8)
def _disassemble(path: str, size: int, mtime_ns: int) -> dict[int, str]:
    """vaddr -> instruction text for every instruction in the image's code sections."""
    objdump = shutil.which("objdump")
    if objdump is None:
        raise DisassemblyError("objdump is not installed (it comes with binutils: sudo apt-get install binutils)")
    done = subprocess.run([objdump, "-d", "-w", "--no-show-raw-insn", "-M", "att", path], capture_output=True,
                          text=True, timeout=OBJDUMP_TIMEOUT, check=False)
    if done.returncode != 0:
        raise DisassemblyError(f"objdump could not disassemble {path}: {done.stderr.strip()}")
    instructions = {}
    for line in done.stdout.splitlines():
        match = _LINE.match(line)
        if match:
            instructions[int(match[1], 16)] = " ".join(match[2].split())
    return instructions


def instructions(image_path: Path) -> dict[int, str]:
    """The instructions of the ELF at `image_path`, by vaddr (cached while the file is unchanged)."""
    stat = image_path.stat()
    return _disassemble(str(image_path), stat.st_size, stat.st_mtime_ns)


def disassemble_bytes(data: bytes, vaddr: int = 0) -> list[tuple[int, str]]:
    """(vaddr, instruction) for bytes that are in no image: code written into memory, say."""
    objdump = shutil.which("objdump")
    if objdump is None:
        raise DisassemblyError("objdump is not installed (it comes with binutils: sudo apt-get install binutils)")
    with tempfile.NamedTemporaryFile(suffix=".bin") as raw:
        raw.write(data)
        raw.flush()
        done = subprocess.run([objdump, "-D", "-w", "--no-show-raw-insn", "-M", "att", "-b", "binary",
                               "-m", "i386:x86-64", f"--adjust-vma={vaddr:#x}", raw.name],
                              capture_output=True, text=True, timeout=OBJDUMP_TIMEOUT, check=False)
    if done.returncode != 0:
        raise DisassemblyError(f"objdump could not disassemble the bytes: {done.stderr.strip()}")
    return [(int(match[1], 16), " ".join(match[2].split()))
            for match in map(_LINE.match, done.stdout.splitlines()) if match]
