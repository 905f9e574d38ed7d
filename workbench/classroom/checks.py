"""Checks that grade an exercise and explain a failure in the words of the lessons.

Each `expect_...` function looks at the real guest and returns quietly, or raises `CheckFailed`:
what was expected, what the guest really did (the walk step where a mapping differs, the fault
line the guest printed, the build error at its source line), as text in a terminal and as HTML,
with the lessons' own static views, in a notebook and in nbgrader's feedback.

A `Grade` gives points per part. Its last line in an nbgrader test cell makes the cell's output
the points earned, which nbgrader reads as partial credit, and shows each part passed or failed:

    grade = Grade("Exercise 1")
    with grade.part("the page of .data is writable again", points=1):
        expect_mapping(machine.snapshot(), image.symbol("heap_next").vaddr, permissions="-rw-")
    with grade.part("no page is writable and executable", points=1):
        expect_no_wx(machine.snapshot(), image)
    grade
"""

from __future__ import annotations

import html
import re
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workbench import resources
from workbench.errors import WorkbenchError
from workbench.guest.machine import GuestStopped, GuestTimeout, Machine, MachineError, Outcome
from workbench.kernel.build import BuildError
from workbench.models.paging import Walk, format_walk, size_text
from workbench.models.snapshot import Snapshot
from workbench.views import AddressSpaceMap, Translator

if TYPE_CHECKING:
    from workbench.guest.machine import Reply
    from workbench.kernel.image import Image
    from workbench.kernel.workspace import Workspace

PASSED, FAILED = "#1a7f37", "#b91c1c"
_PACKAGE = str(resources.PACKAGE)


class CheckFailed(WorkbenchError, AssertionError):
    """The guest did not do what the exercise asks; carries the explanation.

    An AssertionError too, so a check fails a cell the way a bare `assert` does.
    """

    def __init__(self, summary: str, *, expected: str = "", found: str = "", details: tuple[str, ...] = (),
                 html_parts: tuple[str, ...] = ()) -> None:
        self.summary, self.expected, self.found = summary, expected, found
        self.details, self.html_parts = details, html_parts
        super().__init__(self.render_text())

    def render_text(self) -> str:
        lines = [self.summary]
        if self.expected:
            lines.append(f"  expected: {self.expected}")
        if self.found:
            lines.append(f"  found:    {self.found}")
        return "\n".join(lines + [detail.rstrip() for detail in self.details])

    def _render_traceback_(self) -> list[str]:
        """What IPython (and so nbgrader's feedback) shows instead of a Python traceback."""
        return [f"CheckFailed: {line}" if number == 0 else line
                for number, line in enumerate(self.render_text().splitlines())]

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td style='padding-right:8px;color:#6b7280'>{name}</td>"
                       f"<td style='font-family:monospace'>{html.escape(value)}</td></tr>"
                       for name, value in (("expected", self.expected), ("found", self.found)) if value)
        details = "".join(f"<pre style='margin:4px 0'>{html.escape(detail)}</pre>" for detail in self.details)
        return (f"<div style='color:{FAILED};font-weight:600'>{html.escape(self.summary)}</div>"
                + (f"<table>{rows}</table>" if rows else "") + (details if not self.html_parts else "")
                + "".join(self.html_parts))


# Grades made of parts.


@dataclass
class Part:
    """One part of a graded check: its points, and why it failed (None when it passed)."""

    name: str
    points: float
    failure: CheckFailed | None = None

    @property
    def passed(self) -> bool:
        return self.failure is None


@dataclass
class Grade:
    """Points per part; displays as the points earned (nbgrader's partial credit) and a table."""

    title: str
    parts: list[Part] = field(default_factory=list)

    @contextmanager
    def part(self, name: str, points: float = 1) -> Iterator[None]:
        """Run the block as one part: any exception in it fails this part only."""
        part = Part(name, float(points))
        self.parts.append(part)
        try:
            yield
        except CheckFailed as failure:
            part.failure = failure
        except Exception as error:
            part.failure = _from_exception(error)

    @property
    def points(self) -> float:
        return sum(part.points for part in self.parts if part.passed)

    @property
    def max_points(self) -> float:
        return sum(part.points for part in self.parts)

    def __str__(self) -> str:
        lines = [f"{self.title}: {self.points:g} of {self.max_points:g} points"]
        for part in self.parts:
            lines.append(f"  {'passed' if part.passed else 'FAILED'} ({part.points:g}) {part.name}")
            if part.failure is not None:
                lines += ["      " + line for line in part.failure.render_text().splitlines()]
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(f"{self.points!r}")

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, str]:
        rows = []
        for part in self.parts:
            mark, colour = ("passed", PASSED) if part.passed else ("failed", FAILED)
            why = part.failure._repr_html_() if part.failure is not None else ""
            rows.append(f"<li><span style='color:{colour};font-weight:600'>{mark}</span> "
                        f"({part.points:g} {'point' if part.points == 1 else 'points'}) "
                        f"{html.escape(part.name)}{why}</li>")
        body = (f"<div><b>{html.escape(self.title)}: {self.points:g} of {self.max_points:g} points</b>"
                f"<ul style='margin:4px 0'>{''.join(rows)}</ul></div>")
        # nbgrader reads text/plain as the points earned; a terminal prints str(grade).
        return {"text/plain": repr(self.points), "text/html": body}


def _from_exception(error: Exception) -> CheckFailed:
    """Any other error in a part, explained by its own message and the line that raised it."""
    if isinstance(error, BuildError):
        return _build_failed(error)
    # The innermost line of the notebook's own code: not the workbench's, not a library's.
    frames = [frame for frame in traceback.extract_tb(error.__traceback__)
              if not frame.filename.startswith((_PACKAGE, sys.prefix, sys.base_prefix))]
    where = f" (in the line `{frames[-1].line}`)" if frames and frames[-1].line else ""
    message = str(error).strip() or type(error).__name__
    return CheckFailed(f"{type(error).__name__}{where}: {message}")


# Values.


def _show(value: object) -> str:
    return f"{value:#x}" if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 9 else repr(value)


def expect_equal(found: object, expected: object, what: str, *, hint: str = "") -> None:
    """`found` must equal `expected`; integers are shown in hex."""
    if found != expected:
        raise CheckFailed(f"{what} is not what the guest says", expected=_show(expected), found=_show(found),
                          details=(hint,) if hint else ())


# Builds.


def _build_failed(error: BuildError) -> CheckFailed:
    first = error.errors[0] if error.errors else None
    found = f"{first.path}:{first.line}: {first.message}" if first else error.summary
    return CheckFailed("The unikernel does not build.", expected="a successful build", found=found,
                       details=(error.render_text(),), html_parts=(error._repr_html_(),))


def expect_build(workspace: Workspace, **options: Any) -> Image:
    """Build `workspace`; a compile error fails with the error at its source line."""
    try:
        return workspace.build(**options)
    except BuildError as error:
        raise _build_failed(error) from error


# The console and requests.


def expect_console(machine: Machine, pattern: str | re.Pattern[str], *, timeout: float = 10.0) -> re.Match[str]:
    """The guest prints `pattern` (a regex) within `timeout` seconds."""
    try:
        return machine.wait_for(pattern, timeout=timeout)
    except (GuestTimeout, GuestStopped) as error:
        shown = pattern if isinstance(pattern, str) else pattern.pattern
        raise CheckFailed(f"The guest did not print {shown!r}.", expected=f"console output matching {shown!r}",
                          found=_what_happened(machine, error), details=(_console_tail(machine),)) from error


def expect_reply(machine: Machine, request: str, *, timeout: float = 10.0, **numbers: int) -> Reply:
    """The application answers `request` with `ok`, and each `numbers` field has that value."""
    try:
        reply = machine.request(request, timeout=timeout)
    except MachineError as error:
        raise CheckFailed(f"The application did not answer {request!r}.", expected="an `ok ...` reply",
                          found=_what_happened(machine, error), details=(_console_tail(machine),)) from error
    if not reply.ok:
        raise CheckFailed(f"The application refused {request!r}.", expected="an `ok ...` reply", found=reply.line)
    for key, value in numbers.items():
        if key not in reply.fields:
            raise CheckFailed(f"The reply to {request!r} has no field {key}=.", expected=f"{key}={_show(value)}",
                              found=reply.line)
        if reply.number(key) != value:
            raise CheckFailed(f"The reply to {request!r} has the wrong {key}.", expected=f"{key}={_show(value)}",
                              found=reply.line)
    return reply


def _console_tail(machine: Machine) -> str:
    tail = machine.console.tail(8).rstrip()
    return "The guest's last lines:\n" + ("\n".join("  " + line for line in tail.splitlines()) or "  (nothing)")


def _what_happened(machine: Machine, error: BaseException) -> str:
    outcome = machine.outcome
    if outcome is not None and outcome.fault is not None:
        return f"the guest faulted: {outcome.fault.line}"
    if outcome is not None:
        return outcome.explanation
    return str(error).splitlines()[0]


# Faults.


def expect_fault(stopped: Outcome | Machine, *, vector: int | None = None, function: str | None = None,
                 cr2: int | None = None, access: str | None = None, present: bool | None = None,
                 timeout: float = 10.0) -> Outcome:
    """The guest stopped with a fault of that kind: `vector` (14 for #PF), in `function`, at `cr2`,
    with `access` ("read", "write" or "instruction-fetch") and `present` from the error code."""
    if isinstance(stopped, Machine):
        machine = stopped
        try:
            outcome = machine.wait(timeout=timeout)
        except GuestTimeout as error:
            raise CheckFailed("The guest did not stop: no fault.", expected="a fault",
                              found=f"the guest still ran after {timeout:g} s",
                              details=(_console_tail(machine),)) from error
    else:
        outcome = stopped
    fault = outcome.fault
    if fault is None:
        raise CheckFailed("The guest stopped without a fault.", expected="a fault", found=outcome.explanation)
    wanted = {"vector": vector, "function": function, "cr2": cr2}
    got: dict[str, object] = {"vector": fault.vector, "function": fault.function, "cr2": fault.cr2}
    if access is not None:
        wanted["access"] = access
        got["access"] = ("instruction-fetch" if "instruction-fetch" in fault.error_decoded
                         else "write" if "write" in fault.error_decoded else "read")
    if present is not None:
        wanted["present"] = present
        got["present"] = "present" in fault.error_decoded
    for key, value in wanted.items():
        if value is not None and got[key] != value:
            raise CheckFailed(f"The guest faulted, but with another {key}.", expected=f"{key} {_show(value)}",
                              found=f"{key} {_show(got[key])}",
                              details=("The guest's report: " + fault.line, outcome.explanation))
    return outcome


# Mappings.


def _snapshot(tables: Snapshot | Machine) -> Snapshot:
    return tables.snapshot("check") if isinstance(tables, Machine) else tables


def _refusing_step(walk: Walk, permissions: str) -> str:
    """The walk step whose entry takes away a right that `permissions` asks for."""
    for step in walk.steps:
        entry = step.entry
        if "w" in permissions and not entry.writable:
            return f"the {step.level.name} entry [{step.index}] has R/W clear: read-only"
        if "x" in permissions and entry.no_execute:
            return f"the {step.level.name} entry [{step.index}] has XD set: no instruction fetch"
        if permissions.startswith("u") and not entry.user:
            return f"the {step.level.name} entry [{step.index}] has U/S clear: kernel only"
    last = walk.steps[-1]
    if "w" not in permissions and last.entry.writable:
        return f"the {last.level.name} entry [{last.index}] has R/W set: writable"
    if "x" not in permissions and not last.entry.no_execute:
        return f"the {last.level.name} entry [{last.index}] has XD clear: executable"
    return "the last entry of the walk decides"


def expect_mapping(tables: Snapshot | Machine, vaddr: int, *, permissions: str | None = None,
                   page_size: int | None = None, frame: int | None = None, image: Image | None = None,
                   what: str = "") -> Walk:
    """`vaddr` is mapped, with `permissions` (as `-rw-`), in a page of `page_size`, to `frame`.

    A difference names the walk step where it comes from and shows the whole walk.
    """
    snapshot = _snapshot(tables)
    walk = snapshot.walk(vaddr)
    name = what or (f"{vaddr:#x} <{image.symbolize(vaddr)}>" if image is not None else f"{vaddr:#x}")
    wanted = ", ".join(part for part in (
        permissions, size_text(page_size) + " page" if page_size else "",
        f"frame {frame:#x}" if frame is not None else "") if part) or "mapped"

    def failed(summary: str, found: str, step: str) -> CheckFailed:
        return CheckFailed(summary, expected=f"{name}: {wanted}", found=found,
                           details=(f"Where it differs: {step}.", format_walk(walk)),
                           html_parts=(_translator_html(snapshot, vaddr, image),))

    if walk.fault is not None:
        raise failed(f"{name} is not mapped.", "no page: " + walk.fault.message, walk.fault.message)
    assert walk.permissions is not None and walk.page_size is not None and walk.paddr is not None
    found = f"{walk.permissions}, {size_text(walk.page_size)} page, frame {walk.paddr - walk.vaddr % walk.page_size:#x}"
    if permissions is not None and str(walk.permissions) != permissions:
        raise failed(f"{name} is mapped with other permissions.", found, _refusing_step(walk, permissions))
    if page_size is not None and walk.page_size != page_size:
        last = walk.steps[-1]
        raise failed(f"{name} is mapped in a page of another size.", found,
                     f"the walk ends at the {last.level.name}, which maps {size_text(walk.page_size)} pages")
    if frame is not None and walk.paddr - walk.vaddr % walk.page_size != frame:
        raise failed(f"{name} is mapped to another frame.", found,
                     f"the {walk.steps[-1].level.name} entry points to another frame")
    return walk


def _translator_html(snapshot: Snapshot, vaddr: int, image: Image | None) -> str:
    view = Translator(snapshot, vaddr, image=image)
    try:
        return view.static_html()
    finally:
        view.close()


def expect_no_wx(tables: Snapshot | Machine, image: Image) -> None:
    """No page is both writable and executable, and every section is mapped as its ELF flags ask."""
    snapshot = _snapshot(tables)
    space = snapshot.address_space(image)
    problems = [f"{region.start:#x}-{region.end:#x} {region.permissions} {region.label}"
                for region in space.wx_violations()] + list(space.section_mismatches)
    if problems:
        view = AddressSpaceMap(snapshot, image)
        try:
            picture = view.static_html()
        finally:
            view.close()
        raise CheckFailed("The audit of the address space fails.",
                          expected="no W+X page, every section as its ELF flags ask",
                          found=f"{len(problems)} problem{'s' if len(problems) != 1 else ''}",
                          details=("\n".join(problems),), html_parts=(picture,))
