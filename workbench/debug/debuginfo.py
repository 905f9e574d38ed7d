"""The image's DWARF, read once with pyelftools: source lines, functions, variables, types.

`make` writes the debug information into `unikernel.debug` next to `unikernel.elf` (the image
names it in `.gnu_debuglink`, with a CRC that must match). `DebugInfo.load(image)` reads it into
plain frozen dataclasses, so the debugger never touches pyelftools while the guest is stopped:

- the line table: the source line of any code vaddr, the vaddrs of any line;
- functions with their scopes: parameters, local variables and lexical blocks, and the
  functions the compiler inlined into them (each with the line it was called from);
- file-scope and static variables;
- types, enough to print a value the way the C source declares it;
- `.debug_frame`, the call-frame information workbench/debug/unwind.py walks the stack with.

Paths are relative to the source directory `make` ran in (the Makefile maps the absolute path
to `.`), such as `kernel/paging.c`. Addresses are the ELF's vaddrs, where the code is linked;
boot code that runs before paging uses its load address, which the debugger translates.
"""

from __future__ import annotations

import bisect
import functools
import zlib
from pathlib import Path
from typing import Any

from elftools.dwarf.callframe import FDE
from elftools.dwarf.locationlists import LocationParser
from elftools.elf.elffile import ELFFile

from workbench.debug.dwarf.dies import DieReader, join_path, names_of
from workbench.debug.dwarf.model import (
    VOID,
    CfaRule,
    Function,
    LineRow,
    Location,
    Scope,
    TypeInfo,
    Variable,
    iter_variables,
)
from workbench.errors import InvalidInput, WorkbenchError, did_you_mean
from workbench.kernel.image import Image

__all__ = ["VOID", "CfaRule", "DebugInfo", "DebugInfoError", "Function", "LineRow", "Location", "NoSuchLine",
           "Scope", "TypeInfo", "Variable", "iter_variables"]

DEBUG_SUFFIX = ".debug"
KEPT = 8  # debug files kept read, newest last


class DebugInfoError(WorkbenchError):
    """The debug information is missing, stale, or does not know what was asked."""


class NoSuchLine(InvalidInput):
    """A `file:line` that has no code (or names no file of the image)."""


# ---------------------------------------------------------------------------------------------
# What the DWARF says, as plain values


# ---------------------------------------------------------------------------------------------
# Reading

_loaded: dict[tuple[str, int, int, str], DebugInfo] = {}


def debug_file_of(image: Image) -> Path:
    """The debug file the image names (`.gnu_debuglink`), checked against its CRC."""
    try:
        with image.path.open("rb") as stream:
            link = ELFFile(stream).get_section_by_name(".gnu_debuglink")
            data = link.data() if link is not None else None
    except OSError as error:
        raise DebugInfoError(f"cannot read {image.path}: {error}") from error
    if data is None:
        raise DebugInfoError(f"{image.path.name} names no debug file (no .gnu_debuglink): build it with the "
                             "workbench's Makefile, which writes unikernel.debug next to it")
    name = data.split(b"\0", 1)[0].decode()
    crc = int.from_bytes(data[-4:], "little")
    path = image.path.with_name(name)
    try:
        actual = zlib.crc32(path.read_bytes())
    except OSError as error:
        raise DebugInfoError(f"the debug file {path} of {image.path.name} cannot be read ({error.strerror}); "
                             "rebuild the image") from error
    if actual != crc:
        raise DebugInfoError(f"{path.name} does not belong to this {image.path.name} (its CRC differs): "
                             "rebuild the image")
    return path


class DebugInfo:
    """Lines, functions, variables and frames of one image. Load it with `DebugInfo.load`."""

    def __init__(self, image: Image, path: Path, source_dir: Path | None) -> None:
        self.image = image
        self.path = path
        self.source_dir = source_dir
        self.rows: list[LineRow] = []
        self._sequences: list[tuple[int, int, int, int]] = []  # (low, high, first row, end row)
        self.functions: dict[str, Function] = {}
        self._function_list: list[Function] = []
        self.globals: dict[str, Variable] = {}
        self._cfi: list[tuple[int, int, list[tuple[int, CfaRule]]]] = []
        with path.open("rb") as stream:
            elf = ELFFile(stream)
            if not elf.has_dwarf_info():
                raise DebugInfoError(f"{path.name} holds no DWARF")
            dwarf = elf.get_dwarf_info()
            self._read(dwarf)

    @classmethod
    def load(cls, image: Image) -> DebugInfo:
        """The debug information of `image` (kept while the debug file is unchanged)."""
        path = debug_file_of(image)
        source_dir = image.source_dir or _find_source_dir(image.path)
        stat = path.stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size, str(source_dir))
        found = _loaded.get(key)
        if found is None:
            try:
                found = cls(image, path, source_dir)
            except DebugInfoError:
                raise
            except Exception as error:  # pyelftools reads lazily; a damaged file fails anywhere
                raise DebugInfoError(f"the DWARF in {path.name} cannot be read: {error}") from error
            while len(_loaded) >= KEPT:
                _loaded.pop(next(iter(_loaded)))
            _loaded[key] = found
        return found

    # The line table.

    def _read(self, dwarf: Any) -> None:
        rows: list[LineRow] = []
        for cu in dwarf.iter_CUs():
            program = dwarf.line_program_for_CU(cu)
            if program is None:
                continue
            version = program["version"]
            directories = [d.decode() for d in program["include_directory"]]
            if version < 5:
                directories.insert(0, ".")
            names = [join_path(directories, entry.dir_index, entry.name.decode()) for entry in program["file_entry"]]
            start = len(rows)
            for entry in program.get_entries():
                state = entry.state
                if state is None:
                    continue
                index = state.file if version >= 5 else state.file - 1
                name = names[index] if 0 <= index < len(names) else "?"
                if state.end_sequence:
                    low = rows[start].vaddr if start < len(rows) else state.address
                    if self.image.section_at(low) is None:
                        del rows[start:]  # code the linker dropped (--gc-sections): its rows say 0
                    else:
                        self._sequences.append((low, state.address, start, len(rows)))
                    start = len(rows)
                    continue
                rows.append(LineRow(state.address, name, state.line, bool(state.is_stmt)))
        self.rows = rows
        self._row_vaddrs = [r.vaddr for r in rows]
        self._sequences.sort()
        self._sequence_lows = [low for low, _, _, _ in self._sequences]
        self._read_functions_and_globals(dwarf)
        self._read_cfi(dwarf)

    def _read_functions_and_globals(self, dwarf: Any) -> None:
        locations = LocationParser(dwarf.location_lists())
        ranges = dwarf.range_lists()
        for cu in dwarf.iter_CUs():
            reader = DieReader(dwarf, cu, locations, ranges, names_of(dwarf, cu))
            for die in cu.get_top_DIE().iter_children():
                found = reader.top_level(die)
                if isinstance(found, Function):
                    if self.image.section_at(found.low) is None:
                        continue  # dropped by the linker, as above
                    self._function_list.append(found)
                    self.functions.setdefault(found.name, found)
                elif found is not None:
                    self.globals.setdefault(found.name, found)
        self._function_list.sort(key=lambda f: f.low)
        self._function_lows = [f.low for f in self._function_list]

    def _row_at(self, vaddr: int) -> tuple[int, int, int, int] | None:
        """(index of the last row at or before `vaddr`, its sequence's first row, end row and
        high address), or None when no sequence covers `vaddr`."""
        at = bisect.bisect_right(self._sequence_lows, vaddr) - 1
        if at < 0:
            return None
        low, high, first, end = self._sequences[at]
        if not low <= vaddr < high:
            return None
        index = bisect.bisect_right(self._row_vaddrs, vaddr, first, end) - 1
        return (index, first, end, high) if index >= first else None

    def location(self, vaddr: int) -> LineRow | None:
        """The line-table row for the code at `vaddr` (the statement it belongs to), or None."""
        found = self._row_at(vaddr)
        if found is None:
            return None
        index, first, _end, _high = found
        rows = self.rows
        # Several rows may share the address: the last statement among them is the line that
        # starts there (the others are the tail of the line before, or not statements).
        at = rows[index].vaddr
        candidate = index
        while candidate >= first and rows[candidate].vaddr == at:
            if rows[candidate].is_stmt:
                return rows[candidate]
            candidate -= 1
        return rows[index]

    def row_range(self, vaddr: int) -> tuple[int, int] | None:
        """[low, high) of the code with the same source line as `vaddr`, around it."""
        place = self._row_at(vaddr)
        if place is None:
            return None
        index, first, end, high = place
        rows = self.rows
        found = self.location(vaddr)
        line = (found.path, found.line) if found is not None else (rows[index].path, rows[index].line)
        start = index
        while start > first and (rows[start - 1].path, rows[start - 1].line) == line:
            start -= 1
        stop = index + 1
        while stop < end and (rows[stop].path, rows[stop].line) == line:
            stop += 1
        return rows[start].vaddr, rows[stop].vaddr if stop < end else high

    @functools.cached_property
    def files(self) -> tuple[str, ...]:
        """The source files with code in the image, in the source directory (not system headers)."""
        return tuple(sorted({r.path for r in self.rows if not r.path.startswith("/")}))

    def resolve_file(self, name: str) -> str:
        """The file path the line table uses for `name` (`paging.c` or `kernel/paging.c`)."""
        files = self.files
        if name in files:
            return name
        matches = [f for f in files if f.endswith("/" + name)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise NoSuchLine(f"{name!r} is ambiguous: {', '.join(matches)}")
        raise NoSuchLine(f"the image has no code from a file {name!r}; its files are: {', '.join(files)}")

    def addresses(self, path: str, line: int) -> tuple[int, tuple[int, ...]]:
        """(line, vaddrs) where execution of `path:line` starts: one per function that holds code
        of it (an inlined function has one per caller). A line without code moves to the next
        line that has some, as gdb does; the line returned says which."""
        path = self.resolve_file(path)
        lines = sorted({r.line for r in self.rows if r.path == path and r.is_stmt and r.line >= line})
        if not lines:
            raise NoSuchLine(f"{path} has no code at line {line} or after it")
        found = lines[0]
        first: dict[str, int] = {}
        for row in self.rows:
            if row.path == path and row.line == found and row.is_stmt:
                owner = self.function_at(row.vaddr)
                key = owner.name if owner is not None else hex(row.vaddr)
                if key not in first or row.vaddr < first[key]:
                    first[key] = row.vaddr
        return found, tuple(sorted(first.values()))

    # Functions and scopes.

    def function_at(self, vaddr: int) -> Function | None:
        index = bisect.bisect_right(self._function_lows, vaddr) - 1
        while index >= 0:
            function = self._function_list[index]
            if function.scope.covers(vaddr):
                return function
            if function.high <= vaddr and index < len(self._function_list) - 1:
                break
            index -= 1
        return None

    def function(self, name: str) -> Function:
        try:
            return self.functions[name]
        except KeyError:
            raise DebugInfoError(f"the debug information has no function {name!r}.{did_you_mean(name, self.functions)}"
                                 ) from None

    def scopes_at(self, vaddr: int) -> list[Scope]:
        """The scopes around `vaddr`, outermost (the function) first, innermost last."""
        function = self.function_at(vaddr)
        if function is None:
            return []
        chain = [function.scope]
        while True:
            inner = next((child for child in chain[-1].children if child.covers(vaddr)), None)
            if inner is None:
                return chain
            chain.append(inner)

    # Call-frame information.

    def _read_cfi(self, dwarf: Any) -> None:
        if not dwarf.has_CFI():
            return
        for entry in dwarf.CFI_entries():
            if not isinstance(entry, FDE):
                continue
            low = entry.header["initial_location"]
            high = low + entry.header["address_range"]
            rows = []
            for row in entry.get_decoded().table:
                cfa = row["cfa"]
                saved = {number: rule.arg for number, rule in row.items()
                         if isinstance(number, int) and rule.type == "OFFSET"}
                rows.append((row["pc"], CfaRule(cfa.reg, cfa.offset, saved)))
            self._cfi.append((low, high, rows))
        self._cfi.sort(key=lambda item: item[0])

    def cfa_rule(self, vaddr: int) -> CfaRule | None:
        """How to find the caller's frame from code at `vaddr`, or None where no CFI covers it
        (assembly without .cfi directives)."""
        for low, high, rows in self._cfi:
            if low <= vaddr < high:
                rule = None
                for pc, candidate in rows:
                    if pc > vaddr:
                        break
                    rule = candidate
                return rule
        return None

    # Source text.

    @functools.lru_cache(maxsize=64)  # noqa: B019 - one DebugInfo per image, kept for its life
    def source(self, path: str) -> tuple[str, ...]:
        """The lines of a source file (line N is index N - 1); empty when it cannot be read."""
        if self.source_dir is None or path.startswith("/"):
            return ()
        try:
            return tuple((self.source_dir / path).read_text(errors="replace").splitlines())
        except OSError:
            return ()

    def __repr__(self) -> str:
        return (f"<DebugInfo {self.path.name}: {len(self.functions)} functions, {len(self.files)} files, "
                f"{len(self.rows)} line rows>")


def _find_source_dir(image_path: Path) -> Path | None:
    """The directory make ran in: the nearest parent of the image with a Makefile."""
    for parent in image_path.parents:
        if (parent / "Makefile").is_file() and (parent / "kernel").is_dir():
            return parent
    return None
