"""What a kernel offers an attacker, read from its symbols: the unikernel's, and a Linux kernel's.

- `image_surface(image)`: the unikernel's functions, and which of the things an attacker looks
  for (a shell, a way to run another program, processes, files, sockets, loadable code) are
  among them.
- `linux_system_calls()`: the system calls a Linux kernel offers, counted in its symbol table,
  in the `System.map` format (`address type name` per line): a System.map file, or
  /proc/kallsyms, the same table read from the running kernel. On x86-64 each system call has an
  entry function `__x64_sys_NAME`. Debian ships only a stub System.map (the real one is in its
  `-dbg` package), so by default the table of the kernel this computer runs is read. Where no
  symbol table is readable, the last resort is the system call numbers in Linux's own header for
  user programs, `asm/unistd_64.h`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.kernel.image import Image

# What an attacker who runs code in a kernel's context would like to find there, by the words
# their functions are usually named with. Each is a capability of a general-purpose system.
CAPABILITIES: dict[str, tuple[str, ...]] = {
    "a shell": ("shell", "bash", "_sh_"),
    "starting another program": ("exec", "spawn", "elf_load", "load_elf"),
    "processes and threads": ("fork", "clone", "process", "thread", "schedule"),
    "files": ("open", "vfs", "file", "mount"),
    "network sockets": ("socket", "tcp", "udp", "inet"),
    "loading code at run time": ("module", "kexec", "bpf", "dlopen"),
    "inspecting other programs": ("ptrace",),
}
X86_64_ENTRY_PREFIX = "__x64_sys_"
NOT_IMPLEMENTED = "ni_syscall"  # the placeholder behind every unused table slot
CACHE_GLOB = "unikernel-workbench/linux/*/System.map-*"  # where the test fixture keeps Debian's
UNISTD_HEADERS = ("/usr/include/x86_64-linux-gnu/asm/unistd_64.h", "/usr/include/asm/unistd_64.h")


class SymbolTableUnavailable(WorkbenchError):
    """No usable Linux symbol table was found; the message lists where it looked."""


@dataclass(frozen=True)
class ImageSurface:
    """The unikernel's functions, and the capabilities among them."""

    functions: tuple[str, ...]
    found: dict[str, tuple[str, ...]]  # capability -> the functions that suggest it
    system_calls: int  # entries in the classic path's syscall_table, for contrast

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(name for name in CAPABILITIES if not self.found.get(name))

    def __str__(self) -> str:
        rows = [f"{len(self.functions)} functions in the image; its system call table has {self.system_calls} entries"]
        for name in CAPABILITIES:
            hits = self.found.get(name, ())
            rows.append(f"  {name:28} {'yes: ' + ', '.join(hits) if hits else 'none'}")
        return "\n".join(rows)


def image_surface(image: Image) -> ImageSurface:
    functions = tuple(sorted(s.name for s in image.symbols.values() if s.kind == "function"))
    found = {name: tuple(f for f in functions if any(word in f.lower() for word in words))
             for name, words in CAPABILITIES.items()}
    table = image.symbols.get("syscall_table")
    return ImageSurface(functions, {k: v for k, v in found.items() if v}, table.size // 8 if table else 0)


@dataclass(frozen=True)
class LinuxSystemCalls:
    """The system call entry functions of one Linux kernel's symbol table."""

    source: str  # the file they were read from
    kernel: str  # which kernel, in words
    names: tuple[str, ...] = field(repr=False)
    counted: str = f"{X86_64_ENTRY_PREFIX}* functions"  # what was counted

    @property
    def count(self) -> int:
        return len(self.names)

    def __str__(self) -> str:
        about = f", {self.kernel}" if self.kernel and self.kernel != self.source else ""
        return f"{self.count} system calls ({self.counted}) in {self.source}{about}"


def system_calls_in(symbol_table: str) -> tuple[str, ...]:
    """The system calls named by `__x64_sys_NAME` code symbols in System.map-format text.

    Parts the compiler split off a function (`__x64_sys_read.cold`) count once, and the
    not-implemented placeholder not at all.
    """
    names = set()
    for line in symbol_table.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] in ("T", "t") and parts[2].startswith(X86_64_ENTRY_PREFIX):
            name = parts[2][len(X86_64_ENTRY_PREFIX):].split(".", 1)[0]
            if name != NOT_IMPLEMENTED:
                names.add(name)
    return tuple(sorted(names))


def system_calls_in_header(text: str) -> tuple[str, ...]:
    """The system calls `#define __NR_NAME number` lines name, as in asm/unistd_64.h."""
    return tuple(sorted(set(re.findall(r"^#define __NR_(\w+)\s+\d+", text, re.MULTILINE))))


def _candidates() -> list[tuple[Path, str]]:
    release = os.uname().release
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    found = [(Path("/proc/kallsyms"), f"the Linux kernel this computer runs ({release})"),
             (Path(f"/boot/System.map-{release}"), f"the Linux kernel this computer runs ({release})")]
    found += [(path, f"Debian's kernel {re.sub(r'^System.map-', '', path.name)}")
              for path in sorted(cache.glob(CACHE_GLOB))]
    found += [(Path(header), "the system call numbers of Linux's headers for user programs")
              for header in UNISTD_HEADERS]
    return found


def linux_system_calls(path: str | Path | None = None, kernel: str = "") -> LinuxSystemCalls:
    """Count a Linux kernel's system calls in its symbol table.

    With `path`, read that System.map (or kallsyms) file. Without, try /proc/kallsyms, then
    /boot/System.map-RELEASE, then the Debian kernel the tests cache; the first that names any
    system call wins. Nothing is downloaded.
    """
    candidates = [(Path(path), kernel or str(path))] if path is not None else _candidates()
    tried = []
    for candidate, description in candidates:
        try:
            text = candidate.read_text(errors="replace")
        except OSError as error:
            tried.append(f"{candidate}: {error.strerror or error}")
            continue
        header = candidate.name.startswith("unistd")
        names = system_calls_in_header(text) if header else system_calls_in(text)
        if names:
            counted = "#define __NR_* numbers" if header else f"{X86_64_ENTRY_PREFIX}* functions"
            return LinuxSystemCalls(str(candidate), description, names, counted)
        stub = "dbg package" in text
        tried.append(f"{candidate}: " + ("a stub that points to the -dbg package" if stub else "no system calls named"))
    raise SymbolTableUnavailable("no Linux symbol table naming system calls was found. Looked at:\n  "
                                 + "\n  ".join(tried))
