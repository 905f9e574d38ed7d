"""The unikernel's components, as `kernel-src/components.mk` lists them: the menu an application
picks its kernel from.

Each component names the components it needs; make adds those by itself (like Kconfig's
`select`), and `closure()` does the same here, so a notebook can say what a selection will
really link before building it. The menu is read from the source tree it describes, so a
workspace that gains a component lists it too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from workbench import resources
from workbench.errors import InvalidInput, WorkbenchError

MENU_FILE = "components.mk"
# NEEDS.timer         := interrupts               # the 100 Hz tick: timer_ticks, on IRQ 0
_NEEDS = re.compile(r"^NEEDS\.(?P<name>[a-z0-9-]+)\s*:=(?P<needs>[^#\n]*)(?:#\s*(?P<text>.*))?$", re.MULTILINE)


class UnknownComponent(InvalidInput):
    """A selection names a component the menu does not have."""


@dataclass(frozen=True)
class Component:
    """One selectable part of the kernel."""

    name: str
    needs: tuple[str, ...]  # the components it cannot work without
    description: str


def menu(source_dir: Path | None = None) -> dict[str, Component]:
    """Every component of the source at `source_dir` (default: the pristine kernel-src), in order."""
    path = Path(source_dir or resources.kernel_source()) / MENU_FILE
    try:
        text = path.read_text()
    except OSError as error:
        raise WorkbenchError(f"cannot read the component menu {path}: {error.strerror or error}") from error
    found = {m["name"]: Component(m["name"], tuple(m["needs"].split()), (m["text"] or "").strip())
             for m in _NEEDS.finditer(text)}
    if not found:
        raise WorkbenchError(f"{path} names no component (no 'NEEDS.name := ...' lines)")
    return found


def closure(selection: Iterable[str], components: dict[str, Component] | None = None) -> tuple[str, ...]:
    """`selection` with every component it needs, directly or not, in the menu's order."""
    components = components if components is not None else menu()
    wanted = set(selection)
    unknown = sorted(wanted - set(components))
    if unknown:
        raise UnknownComponent(f"there is no component {unknown[0]!r}; the components are: {', '.join(components)}")
    pending = list(wanted)
    while pending:
        for needed in components[pending.pop()].needs:
            if needed not in wanted:
                wanted.add(needed)
                pending.append(needed)
    return tuple(name for name in components if name in wanted)
