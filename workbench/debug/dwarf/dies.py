"""Reading one compile unit's DIEs into the values of workbench/debug/dwarf/model.py.

The DWARF describes a function as a tree of DIEs: its parameters and variables, the blocks
`{ ... }` inside it, and the calls the compiler inlined into it, each pointing to an abstract
instance that carries the names and types. An optimised kernel keeps most variables in
location lists (a register here, the stack there, nowhere in between); they are kept as lists
of (code range, expression) for workbench/debug/dwarf/expressions.py.
"""

from __future__ import annotations

import os
from typing import Any

from elftools.dwarf.die import DIE
from elftools.dwarf.dwarf_expr import DWARFExprParser
from elftools.dwarf.locationlists import BaseAddressEntry, LocationEntry, LocationExpr, LocationParser
from elftools.dwarf.ranges import BaseAddressEntry as RangeBase
from elftools.dwarf.structs import DWARFStructs

from workbench.debug.dwarf.model import VOID, Function, Location, Scope, TypeInfo, Variable

MAX_TYPE_DEPTH = 8
# DW_OP_addrx, DW_OP_GNU_addr_index -> DW_OP_addr; DW_OP_constx, DW_OP_GNU_const_index -> DW_OP_const8u
_INDEXED = {0xA1: 0x03, 0xFB: 0x03, 0xA2: 0x0E, 0xFC: 0x0E}
_PARSER = DWARFExprParser(DWARFStructs(little_endian=True, dwarf_format=32, address_size=8))


def join_path(directories: list[str], index: int, name: str) -> str:
    directory = directories[index] if 0 <= index < len(directories) else "."
    joined = name if name.startswith("/") else os.path.join(directory, name)
    return os.path.normpath(joined)


def names_of(dwarf: Any, cu: Any) -> list[str]:
    """The file names DW_AT_decl_file and DW_AT_call_file index, for one compile unit."""
    program = dwarf.line_program_for_CU(cu)
    if program is None:
        return []
    directories = [d.decode() for d in program["include_directory"]]
    names = [join_path(directories if program["version"] >= 5 else [".", *directories], e.dir_index, e.name.decode())
             for e in program["file_entry"]]
    return names if program["version"] >= 5 else ["?", *names]


class DieReader:
    """Turns the DIEs of one compile unit into Functions, Scopes, Variables and TypeInfos."""

    def __init__(self, dwarf: Any, cu: Any, locations: LocationParser, ranges: Any, names: list[str]) -> None:
        self.dwarf = dwarf
        self.cu = cu
        self.version = cu.header["version"]
        self.locations = locations
        self.ranges = ranges
        self.names = names
        top = cu.get_top_DIE()
        self.base = top.attributes["DW_AT_low_pc"].value if "DW_AT_low_pc" in top.attributes else 0
        self._types: dict[int, TypeInfo] = {}

    def top_level(self, die: DIE) -> Function | Variable | None:
        """A function with code, or a global variable with a place in memory, or None."""
        if die.tag == "DW_TAG_subprogram":
            scope = self.scope(die, "function")
            if scope is not None and scope.ranges:
                return Function(scope.name, scope, self.declared(die), self.type_of(self.origin(die)))
        elif die.tag == "DW_TAG_variable":
            variable = self.variable(die, "global")
            if variable is not None and variable.location is not None:
                return variable
        return None

    # Names and places, following the abstract origin of inlined and out-of-line copies.

    def origin(self, die: DIE) -> DIE:
        for attribute in ("DW_AT_abstract_origin", "DW_AT_specification"):
            if attribute in die.attributes:
                return self.origin(die.get_DIE_from_attribute(attribute))
        return die

    def attribute(self, die: DIE, name: str) -> Any:
        """An attribute of the DIE or, failing that, of its abstract origin."""
        if name in die.attributes:
            return die.attributes[name].value
        origin = self.origin(die)
        return origin.attributes[name].value if name in origin.attributes else None

    def name(self, die: DIE) -> str:
        value = self.attribute(die, "DW_AT_name")
        return value.decode() if isinstance(value, bytes) else ""

    def file(self, index: int | None) -> str:
        return self.names[index] if index is not None and 0 <= index < len(self.names) else ""

    def declared(self, die: DIE) -> tuple[str, int]:
        return self.file(self.attribute(die, "DW_AT_decl_file")), self.attribute(die, "DW_AT_decl_line") or 0

    # Code ranges.

    def code_ranges(self, die: DIE) -> tuple[tuple[int, int], ...]:
        attributes = die.attributes
        if "DW_AT_low_pc" in attributes and "DW_AT_high_pc" in attributes:
            low = attributes["DW_AT_low_pc"].value
            high = attributes["DW_AT_high_pc"]
            end = high.value if high.form == "DW_FORM_addr" else low + high.value
            return ((low, end),)
        if "DW_AT_ranges" in attributes:
            base = self.base
            found = []
            for entry in self.ranges.get_range_list_at_offset(attributes["DW_AT_ranges"].value, cu=self.cu):
                if isinstance(entry, RangeBase):
                    base = entry.base_address
                elif entry.is_absolute:
                    found.append((entry.begin_offset, entry.end_offset))
                else:
                    found.append((base + entry.begin_offset, base + entry.end_offset))
            return tuple(r for r in found if r[0] < r[1])
        return ()

    # Scopes and variables.

    def scope(self, die: DIE, kind: str) -> Scope | None:
        if "DW_AT_declaration" in die.attributes:
            return None
        variables: list[Variable] = []
        children: list[Scope] = []
        for child in die.iter_children():
            if child.tag == "DW_TAG_formal_parameter":
                variable = self.variable(child, "parameter")
            elif child.tag == "DW_TAG_variable":
                variable = self.variable(child, "local")
            elif child.tag == "DW_TAG_lexical_block":
                block = self.scope(child, "block")
                if block is not None:
                    children.append(block)
                continue
            elif child.tag == "DW_TAG_inlined_subroutine":
                inlined = self.scope(child, "inlined")
                if inlined is not None:
                    children.append(inlined)
                continue
            else:
                continue
            if variable is not None:
                variables.append(variable)
        call_site = ("", 0)
        if kind == "inlined":
            call_site = (self.file(self.attribute(die, "DW_AT_call_file")), self.attribute(die, "DW_AT_call_line") or 0)
        frame_base = None
        if "DW_AT_frame_base" in die.attributes and die.attributes["DW_AT_frame_base"].form == "DW_FORM_exprloc":
            frame_base = bytes(die.attributes["DW_AT_frame_base"].value)
        return Scope(kind, self.name(die) if kind != "block" else "", self.code_ranges(die), tuple(variables),
                     tuple(children), call_site, frame_base)

    def variable(self, die: DIE, kind: str) -> Variable | None:
        name = self.name(die)
        if not name:
            return None
        type_die = self.attribute(die, "DW_AT_type")
        declaration = self.origin(die)
        variable_type = self.type_of(declaration) if type_die is not None else VOID
        constant = die.attributes["DW_AT_const_value"].value if "DW_AT_const_value" in die.attributes else None
        location = self.location(die) if "DW_AT_location" in die.attributes else None
        if kind == "global" and "DW_AT_external" not in die.attributes and location is None:
            return None
        return Variable(name, variable_type, kind, location, self.declared(die),
                        constant if isinstance(constant, int) else None)

    def location(self, die: DIE) -> Location | None:
        attribute = die.attributes["DW_AT_location"]
        try:
            parsed = self.locations.parse_from_attribute(attribute, self.version, die)
        except (NotImplementedError, ValueError, KeyError):
            return None
        if isinstance(parsed, LocationExpr):
            return Location(expression=self.resolve_indexes(bytes(parsed.loc_expr)))
        base = self.base
        entries = []
        for entry in parsed:
            if isinstance(entry, BaseAddressEntry):
                base = entry.base_address
            elif isinstance(entry, LocationEntry):
                low, high = ((entry.begin_offset, entry.end_offset) if entry.is_absolute
                             else (base + entry.begin_offset, base + entry.end_offset))
                entries.append((low, high, self.resolve_indexes(bytes(entry.loc_expr))))
        return Location(ranges=tuple(entries))

    def resolve_indexes(self, expression: bytes) -> bytes:
        """The expression with each DW_OP_addrx / DW_OP_constx (an index into .debug_addr, as
        clang writes global addresses in DWARF 5) replaced by DW_OP_addr / DW_OP_const8u and
        the address itself, so that evaluating it needs no compile unit."""
        if not any(op in expression for op in _INDEXED):
            return expression
        operations = _PARSER.parse_expr(expression)
        out = bytearray()
        for position, operation in enumerate(operations):
            end = operations[position + 1].offset if position + 1 < len(operations) else len(expression)
            replacement = _INDEXED.get(expression[operation.offset])
            if replacement is not None and operation.op_name in ("DW_OP_addrx", "DW_OP_constx",
                                                                  "DW_OP_GNU_addr_index", "DW_OP_GNU_const_index"):
                out.append(replacement)
                out += self.dwarf.get_addr(self.cu, operation.args[0]).to_bytes(8, "little")
            else:
                out += expression[operation.offset:end]
        return bytes(out)

    # Types.

    def type_of(self, die: DIE, depth: int = 0) -> TypeInfo:
        """The type a DIE's DW_AT_type names (void when it names none)."""
        if "DW_AT_type" not in die.attributes:
            return VOID
        target = die.get_DIE_from_attribute("DW_AT_type")
        return self.type_die(target, depth)

    def type_die(self, die: DIE, depth: int = 0) -> TypeInfo:
        cached = self._types.get(die.offset)
        if cached is not None:
            return cached
        if depth > MAX_TYPE_DEPTH:
            return TypeInfo(self.name(die) or "...", die.attributes["DW_AT_byte_size"].value
                            if "DW_AT_byte_size" in die.attributes else 0, "opaque")
        made = self._make_type(die, depth)
        self._types[die.offset] = made
        return made

    def _make_type(self, die: DIE, depth: int) -> TypeInfo:
        tag, name = str(die.tag), self.name(die)
        size = die.attributes["DW_AT_byte_size"].value if "DW_AT_byte_size" in die.attributes else 0
        if tag == "DW_TAG_base_type":
            return TypeInfo(name, size, "base", _ENCODINGS.get(die.attributes["DW_AT_encoding"].value, "unsigned"))
        if tag in _QUALIFIERS:
            return self._qualified(die, tag, name, depth)
        if tag == "DW_TAG_pointer_type":
            inner = self.type_of(die, depth + 1)
            return TypeInfo(f"{inner.name} *", size or 8, "pointer", target=inner)
        if tag in ("DW_TAG_structure_type", "DW_TAG_union_type"):
            return self._aggregate(die, tag, name, size, depth)
        if tag == "DW_TAG_array_type":
            return self._array(die, depth)
        return self._other(die, tag, name, size)

    def _other(self, die: DIE, tag: str, name: str, size: int) -> TypeInfo:
        if tag == "DW_TAG_enumeration_type":
            values = tuple((self.name(child), child.attributes["DW_AT_const_value"].value)
                           for child in die.iter_children() if child.tag == "DW_TAG_enumerator")
            return TypeInfo(f"enum {name}".strip(), size, "enum", "unsigned", enumerators=values)
        return TypeInfo(name or tag[len("DW_TAG_"):], size, "function" if tag == "DW_TAG_subroutine_type" else "opaque")

    def _qualified(self, die: DIE, tag: str, name: str, depth: int) -> TypeInfo:
        """A typedef takes its own name; const, volatile and the like add a word to the type's."""
        inner = self.type_of(die, depth + 1)
        if tag == "DW_TAG_typedef":
            spelled = name
        else:
            qualifier = _QUALIFIERS[tag]
            spelled = f"{inner.name} {qualifier}" if inner.kind == "pointer" else f"{qualifier} {inner.name}"
        return TypeInfo(spelled, inner.size, inner.kind, inner.encoding, inner.target, inner.count,
                        inner.members, inner.enumerators)

    def _aggregate(self, die: DIE, tag: str, name: str, size: int, depth: int) -> TypeInfo:
        keyword = "struct" if tag == "DW_TAG_structure_type" else "union"
        members = []
        for child in die.iter_children():
            if child.tag == "DW_TAG_member" and "DW_AT_name" in child.attributes:
                offset = child.attributes["DW_AT_data_member_location"].value \
                    if "DW_AT_data_member_location" in child.attributes else 0
                if isinstance(offset, int):
                    members.append((self.name(child), offset, self.type_of(child, depth + 1)))
        return TypeInfo(f"{keyword} {name}".strip(), size, keyword, members=tuple(members))

    def _array(self, die: DIE, depth: int) -> TypeInfo:
        element = self.type_of(die, depth + 1)
        count = 0
        for child in die.iter_children():
            if child.tag == "DW_TAG_subrange_type":
                if "DW_AT_count" in child.attributes:
                    count = child.attributes["DW_AT_count"].value
                elif "DW_AT_upper_bound" in child.attributes:
                    count = child.attributes["DW_AT_upper_bound"].value + 1
                break
        count = count if isinstance(count, int) else 0
        return TypeInfo(f"{element.name}[{count or ''}]", element.size * count, "array", target=element, count=count)


_QUALIFIERS = {"DW_TAG_typedef": "", "DW_TAG_const_type": "const", "DW_TAG_volatile_type": "volatile",
               "DW_TAG_restrict_type": "restrict", "DW_TAG_atomic_type": "_Atomic"}
_ENCODINGS = {0x02: "boolean", 0x04: "float", 0x05: "signed", 0x06: "signed_char", 0x07: "unsigned",
              0x08: "unsigned_char", 0x10: "unsigned"}
