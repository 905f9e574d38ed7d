"""A built unikernel image: its ELF sections and symbols, read with pyelftools.

The image is how the workbench names things: addresses shown anywhere are looked up here
by symbol, never written as literals.
"""

from __future__ import annotations

import bisect
import functools
import html
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from workbench.errors import InvalidInput, WorkbenchError, did_you_mean

SHF_WRITE = 0x1
SHF_ALLOC = 0x2
SHF_EXECINSTR = 0x4
PAGE_SIZE = 4096


class SymbolNotFound(InvalidInput):
    """The image has no symbol of that name."""


class NotAnImage(InvalidInput):
    """The path given as an image is missing, unreadable, or not a kernel QEMU can boot."""


def image_file(path: str | Path) -> Path:
    """`path` as a Path when it names a readable regular file; NotAnImage saying why not."""
    if not isinstance(path, (str, Path)):
        raise NotAnImage(f"an image is given by its path (a str or Path), not {type(path).__name__}")
    if "\0" in str(path):
        raise NotAnImage(f"{str(path)!r} is not a path: it contains a NUL character")
    file = Path(path)
    if file.is_dir():
        raise NotAnImage(f"{file} is a directory, not a kernel image; build one with Workspace.build()")
    if not file.is_file():
        raise NotAnImage(f"there is no kernel image at {file}; build one with Workspace.build()")
    if not os.access(file, os.R_OK):
        raise NotAnImage(f"the kernel image {file} cannot be read (permission denied)")
    return file


@dataclass(frozen=True)
class Section:
    """One allocated ELF section: where it lives and what it may do."""

    name: str
    vaddr: int
    size: int
    writable: bool
    executable: bool
    occupies_file: bool  # False for .bss: zero-filled at load, no bytes in the file
    offset: int = 0  # where its bytes are in the ELF file, when it occupies the file

    @property
    def end(self) -> int:
        return self.vaddr + self.size

    @property
    def permissions(self) -> str:
        """Like `ls -l`: r, then w or -, then x or -."""
        return "r" + ("w" if self.writable else "-") + ("x" if self.executable else "-")


@dataclass(frozen=True)
class Symbol:
    """One named address from the ELF symbol table."""

    name: str
    vaddr: int
    size: int
    kind: str  # "function", "object" or "label"

    def __repr__(self) -> str:  # deterministic for notebooks
        return f"Symbol({self.name!r}, vaddr={self.vaddr:#x}, size={self.size}, kind={self.kind!r})"


@dataclass(frozen=True)
class Segment:
    """One PT_LOAD program header: where the loader puts a part of the image."""

    vaddr: int  # where the code is linked (and runs once paging maps it there)
    paddr: int  # where the loader puts it: the address the CPU uses while paging is off
    size: int  # bytes in memory

    def __contains__(self, vaddr: int) -> bool:
        return self.vaddr <= vaddr < self.vaddr + self.size


# st_info's low four bits: the symbol types the workbench names.
_SYMBOL_KINDS = {0: "label", 1: "object", 2: "function"}  # STT_NOTYPE, STT_OBJECT, STT_FUNC
# Elf64_Sym and Elf32_Sym as (name, info, section index, value, size), for struct: each build
# loads a new image, and pyelftools' symbol by symbol parsing took most of Image.load's time.
_SYMBOL_LAYOUTS = {64: ("IBBHQQ", (0, 1, 3, 4, 5)), 32: ("IIIBBH", (0, 3, 5, 1, 2))}


def _read_symbols(elf: ELFFile) -> dict[str, Symbol]:
    """The defined functions, objects and labels of the ELF's .symtab, by name."""
    table = elf.get_section_by_name(".symtab")
    if not isinstance(table, SymbolTableSection):
        return {}
    layout, fields = _SYMBOL_LAYOUTS[elf.elfclass]
    strings = table.stringtable.data()
    symbols: dict[str, Symbol] = {}
    for entry in struct.iter_unpack(("<" if elf.little_endian else ">") + layout, table.data()):
        name_at, info, section, vaddr, size = (entry[i] for i in fields)
        kind = _SYMBOL_KINDS.get(info & 0xF)
        if kind and name_at and section != 0:  # 0: SHN_UNDEF
            name = strings[name_at:strings.index(b"\0", name_at)].decode(errors="replace")
            symbols[name] = Symbol(name, vaddr, size, kind)
    return symbols


@dataclass(frozen=True)
class Image:
    """A unikernel ELF on disk and what the build knows about it."""

    path: Path
    size: int  # bytes of the ELF file
    entry: int
    sections: tuple[Section, ...]
    symbols: dict[str, Symbol] = field(repr=False)
    build_seconds: float = field(default=0.0, compare=False)
    toolchain: str = "gcc"
    scenario: str = "none"
    app: str = "app"  # the application's directory in the source
    components: tuple[str, ...] | None = None  # the kernel components linked in; None: not known
    segments: tuple[Segment, ...] = field(default=(), repr=False)
    source_dir: Path | None = field(default=None, compare=False)  # where make ran; DWARF paths are relative to it

    @classmethod
    def load(cls, path: str | Path, **build_facts: object) -> Image:
        path = image_file(path)
        try:
            return cls._read_elf(path, build_facts)
        except OSError as error:
            raise NotAnImage(f"the kernel image {path} cannot be read: {error.strerror or error}") from error
        # pyelftools reads lazily, so a truncated or garbled file can fail in any section read,
        # and not only with ELFError (struct and construct errors, IndexError, ...).
        except Exception as error:
            what = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise NotAnImage(f"{path} is not an ELF image, or not a complete one ({what}); "
                             "build one with Workspace.build()") from error

    @classmethod
    def _read_elf(cls, path: Path, build_facts: dict[str, object]) -> Image:
        with path.open("rb") as stream:
            elf = ELFFile(stream)
            sections = tuple(
                Section(
                    name=s.name,
                    vaddr=s["sh_addr"],
                    size=s["sh_size"],
                    writable=bool(s["sh_flags"] & SHF_WRITE),
                    executable=bool(s["sh_flags"] & SHF_EXECINSTR),
                    occupies_file=s["sh_type"] != "SHT_NOBITS",
                    offset=s["sh_offset"],
                )
                for s in elf.iter_sections()
                if s["sh_flags"] & SHF_ALLOC and s["sh_size"] > 0
            )
            symbols = _read_symbols(elf)
            entry = elf["e_entry"]
            segments = tuple(Segment(p["p_vaddr"], p["p_paddr"], p["p_memsz"]) for p in elf.iter_segments()
                             if p["p_type"] == "PT_LOAD" and p["p_memsz"] > 0)
        return cls(path, path.stat().st_size, entry, sections, symbols, segments=segments,
                   **build_facts)  # type: ignore[arg-type]

    @classmethod
    def foreign(cls, path: str | Path) -> Image:
        """A kernel the workbench did not build (a Linux bzImage, say), to boot as it is.

        It has no sections and no symbols, so addresses in its reports stay plain hex.
        """
        path = image_file(path)
        return cls(path, path.stat().st_size, 0, (), {}, toolchain="foreign")

    # Looking things up.

    def symbol(self, name: str) -> Symbol:
        """The symbol called `name`; SymbolNotFound names close matches when it is missing."""
        if not isinstance(name, str):
            raise SymbolNotFound(f"a symbol is named by a str such as 'app_main', not {type(name).__name__}")
        try:
            return self.symbols[name]
        except KeyError:
            raise SymbolNotFound(f"the image has no symbol {name!r}.{did_you_mean(name, self.symbols)}") from None

    def initial_bytes(self, vaddr: int, size: int) -> bytes:
        """The `size` bytes at `vaddr` as the image loads them (the value a `const` has before
        the guest runs); zeros in .bss. WorkbenchError when no section holds them all."""
        section = self.section_at(vaddr)
        if section is None or vaddr + size > section.end:
            raise WorkbenchError(f"the image holds no {size} bytes at {vaddr:#x}")
        if not section.occupies_file:
            return bytes(size)
        try:
            with self.path.open("rb") as stream:
                stream.seek(section.offset + vaddr - section.vaddr)
                data = stream.read(size)
        except OSError as error:
            raise NotAnImage(f"the kernel image {self.path} cannot be read: {error.strerror or error}") from error
        if len(data) != size:
            raise NotAnImage(f"the kernel image {self.path} is shorter than its section {section.name}")
        return data

    def section(self, name: str) -> Section:
        for section in self.sections:
            if section.name == name:
                return section
        raise WorkbenchError(f"the image has no section {name!r}")

    def symbolize(self, vaddr: int) -> str:
        """`function+0xoffset` for a code or data address, a label's name at its exact address,
        `label+0xoffset` in code after an assembly label, or the hex address if nothing is known
        there."""
        found = self._containing_symbol(vaddr) or self._code_label_before(vaddr)
        if found is None:
            labels = sorted(s.name for s in self.symbols.values() if s.vaddr == vaddr and s.kind == "label")
            return labels[0] if labels else f"{vaddr:#x}"
        offset = vaddr - found.vaddr
        return found.name if offset == 0 else f"{found.name}+{offset:#x}"

    def _code_label_before(self, vaddr: int) -> Symbol | None:
        """In an executable section, the last symbol at or before `vaddr` if it is a label: an
        assembly label has no size, and the instructions after it are its own (objdump names
        them so). None when the last symbol there is a function that ends before `vaddr`."""
        section = self.section_at(vaddr)
        if section is None or not section.executable:
            return None
        ordered, starts = self._code_symbols
        index = bisect.bisect_right(starts, vaddr) - 1
        if index < 0 or ordered[index].vaddr < section.vaddr or ordered[index].kind != "label":
            return None
        return ordered[index]

    @functools.cached_property
    def _code_symbols(self) -> tuple[list[Symbol], list[int]]:
        """One symbol per address in executable sections, in address order: a function there
        if there is one, else the first label by name."""
        chosen: dict[int, Symbol] = {}
        for symbol in sorted(self.symbols.values(), key=lambda s: (s.kind == "label", s.name)):
            section = self.section_at(symbol.vaddr)
            if section is not None and section.executable:
                chosen.setdefault(symbol.vaddr, symbol)
        ordered = sorted(chosen.values(), key=lambda s: s.vaddr)
        return ordered, [s.vaddr for s in ordered]

    def format_vaddr(self, vaddr: int) -> str:
        """`0xffffffff80101234 <app_main+0x1c>`, or just the hex when no symbol covers it."""
        named = self.symbolize(vaddr)
        return f"{vaddr:#x}" if named.startswith("0x") else f"{vaddr:#x} <{named}>"

    def _containing_symbol(self, vaddr: int) -> Symbol | None:
        ordered, starts = self._sized_symbols
        index = bisect.bisect_right(starts, vaddr) - 1
        while index >= 0:
            candidate = ordered[index]
            if candidate.vaddr <= vaddr < candidate.vaddr + max(candidate.size, 1):
                return candidate
            if candidate.vaddr < vaddr and candidate.size == 0:
                index -= 1
                continue
            return None
        return None

    @functools.cached_property
    def _sized_symbols(self) -> tuple[list[Symbol], list[int]]:
        """Functions and objects in address order, with their start addresses for bisect."""
        ordered = sorted(
            (s for s in self.symbols.values() if s.kind in ("function", "object")),
            key=lambda s: (s.vaddr, s.name),
        )
        return ordered, [s.vaddr for s in ordered]

    def paddr_of(self, vaddr: int) -> int | None:
        """Where the loader put the image's byte at `vaddr` (its load address), or None."""
        for segment in self.segments:
            if vaddr in segment:
                return vaddr - segment.vaddr + segment.paddr
        return None

    def vaddr_of_paddr(self, paddr: int) -> int | None:
        """The linked vaddr of the image's byte the loader put at `paddr`, or None."""
        for segment in self.segments:
            if segment.paddr <= paddr < segment.paddr + segment.size:
                return paddr - segment.paddr + segment.vaddr
        return None

    def section_at(self, vaddr: int) -> Section | None:
        for section in self.sections:
            if section.vaddr <= vaddr < section.end:
                return section
        return None

    def describe_vaddr(self, vaddr: int) -> str | None:
        """Where `vaddr` lies, in words: a guard page, a section and symbol, or None."""
        page = vaddr & ~(PAGE_SIZE - 1)
        for name, symbol in self.symbols.items():
            if name.endswith("_guard") and symbol.vaddr <= vaddr < symbol.vaddr + max(symbol.size, PAGE_SIZE):
                return (f"the guard page {name} at {page:#x}, an unmapped page placed under a stack "
                        "so that a stack overflow faults instead of overwriting other memory")
        section = self.section_at(vaddr)
        if section is None:
            return None
        owner = self._containing_symbol(vaddr)
        inside = f" ({owner.name})" if owner else ""
        return f"the image's {section.name} section{inside}"

    # Display.

    @property
    def loaded_size(self) -> int:
        """Bytes the image occupies in guest memory (every allocated section, .bss included)."""
        return sum(s.size for s in self.sections)

    def __str__(self) -> str:
        rows = [f"{self.path.name}: {self.size} bytes on disk, {self.loaded_size} bytes in memory",
                f"{'section':<16} {'vaddr':>18}  {'size':>7}  perm"]
        rows += [f"{s.name:<16} {s.vaddr:#018x}  {s.size:>7}  {s.permissions}" for s in self.sections]
        return "\n".join(rows)

    def _repr_html_(self) -> str:
        cells = "".join(
            f"<tr><td><code>{html.escape(s.name)}</code></td><td><code>{s.vaddr:#018x}</code></td>"
            f"<td style='text-align:right'>{s.size}</td><td><code>{s.permissions}</code></td></tr>"
            for s in self.sections
        )
        return (f"<p><b>{html.escape(self.path.name)}</b>: {self.size} bytes on disk, "
                f"{self.loaded_size} bytes in memory</p>"
                "<table><tr><th>section</th><th>vaddr</th><th>size</th><th>perm</th></tr>"
                f"{cells}</table>")

    def __repr__(self) -> str:
        return f"Image({self.path.name!r}, size={self.size}, toolchain={self.toolchain!r}, scenario={self.scenario!r})"
