"""Build the unikernel with its own Makefile and turn the result into an Image or a BuildError.

`make` does the incremental work; this module picks the toolchain and build directory, runs
make with a timeout, and parses compiler and linker diagnostics so a notebook can show each
one next to the source line it is about.
"""

from __future__ import annotations

import hashlib
import html
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench import grader_facts, resources
from workbench.errors import InvalidInput, WorkbenchError
from workbench.kernel.display import SourceView, excerpt
from workbench.kernel.image import Image
from workbench.kernel.prebuilt import seed
from workbench.kernel.toolchains import DEFAULT_TOOLCHAIN, TOOLCHAIN_PACKAGES, TOOLCHAINS, toolchain_missing

IMAGE_NAME = "unikernel.elf"
# The scenarios kernel-src ships with; a workspace's Makefile may add more, and checks the name.
SCENARIOS = ("none", "null-write", "text-write", "general-protection", "invalid-opcode",
             "divide-error", "stack-overflow")

# GCC and clang: "app/main.c:14:5: error: expected ';' before 'return'"
_DIAGNOSTIC = re.compile(
    r"^(?P<path>[^\s:][^:\n]*):(?P<line>\d+):(?:(?P<column>\d+):)? "
    r"(?P<severity>fatal error|error|warning|note): (?P<message>.*)$",
    re.MULTILINE,
)
# GNU ld and lld: "ld: ...: undefined reference to `x'", "ld.lld: error: undefined symbol: x";
# the Makefile's scripts: "symbols.awk: the symbol table needs ..."; make itself:
# "Makefile:27: *** SCENARIO must be one of: ...  Stop."
_LINKER_ERROR = re.compile(
    r"^(?:\S*ld(?:\.lld)?|\S+\.awk|make|Makefile:\d+): (?:\*\*\* )?(?:error: )?(?P<message>.*?)(?:\.\s+Stop\.)?$",
    re.MULTILINE)


@dataclass(frozen=True)
class Diagnostic:
    """One compiler message about one place in the source."""

    path: str  # relative to the source directory
    line: int
    column: int | None
    severity: str  # "error", "fatal error", "warning" or "note"
    message: str

    def __str__(self) -> str:
        column = f"{self.column}:" if self.column else ""
        return f"{self.path}:{self.line}:{column} {self.severity}: {self.message}"


class BuildError(WorkbenchError):
    """The unikernel did not build. `diagnostics` holds each error with its place."""

    def __init__(self, summary: str, *, diagnostics: tuple[Diagnostic, ...], output: str,
                 source_dir: Path) -> None:
        self.summary = summary
        self.diagnostics = diagnostics
        self.output = output
        self.source_dir = source_dir
        super().__init__(self.render_text())

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity in ("error", "fatal error"))

    def excerpts(self, context: int = 2) -> list[tuple[Diagnostic, SourceView | None]]:
        """Each error or warning with the source lines around it (None if unreadable)."""
        shown: list[tuple[Diagnostic, SourceView | None]] = []
        for diagnostic in self.diagnostics:
            if diagnostic.severity == "note":
                continue
            try:
                text = (self.source_dir / diagnostic.path).read_text(errors="replace")
            except OSError:
                shown.append((diagnostic, None))
                continue
            caret = " " * ((diagnostic.column or 1) - 1) + "^ " + diagnostic.message
            shown.append((diagnostic, excerpt(
                diagnostic.path, text, diagnostic.line - context, diagnostic.line + context,
                marked={diagnostic.line}, notes={diagnostic.line: caret},
            )))
        return shown

    def render_text(self) -> str:
        parts = [self.summary]
        for diagnostic, view in self.excerpts():
            parts.append(str(diagnostic))
            if view is not None:
                parts.append(str(view))
        if not self.diagnostics:
            parts.append("\n".join(self.output.strip().splitlines()[-20:]))
        return "\n\n".join(parts)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython's text/plain
        printer.text(self.render_text())

    def _repr_html_(self) -> str:
        parts = [f"<p><b>{html.escape(self.summary)}</b></p>"]
        for diagnostic, view in self.excerpts():
            parts.append(f"<p style='font-family:monospace;color:#b00'>{html.escape(str(diagnostic))}</p>")
            if view is not None:
                parts.append(view._repr_html_())
        if not self.diagnostics:
            parts.append(f"<pre>{html.escape(self.output[-4000:])}</pre>")
        return "".join(parts)


def parse_diagnostics(output: str) -> tuple[Diagnostic, ...]:
    """Every `path:line:column: severity: message` in compiler output, in order."""
    return tuple(
        Diagnostic(m["path"], int(m["line"]), int(m["column"]) if m["column"] else None,
                   m["severity"], m["message"].strip())
        for m in _DIAGNOSTIC.finditer(output)
    )


def _component_names(components: Iterable[str] | None) -> tuple[str, ...] | None:
    """The names, sorted and checked for form (the Makefile knows which components exist)."""
    if components is None:
        return None
    if isinstance(components, str):
        components = components.split()
    try:
        names = tuple(sorted(set(components)))
    except TypeError as error:
        raise InvalidInput(f"components are a list of names such as ['console-input', 'timer'], "
                           f"not {components!r}") from error
    for name in names:
        if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9-]*", name):
            raise InvalidInput(f"a component name uses lowercase letters, digits and '-', not {name!r}")
    return names


def _selected_components(build_path: Path) -> tuple[str, ...]:
    """The selection make used, the needed components added: from the components.h it wrote."""
    try:
        match = re.search(r'^#define COMPONENTS_SELECTED "([^"]*)"', (build_path / "components.h").read_text(),
                          re.MULTILINE)
    except OSError:
        return ()
    return tuple(match[1].split()) if match else ()


def _check_arguments(source_dir: Path, toolchain: str, scenario: str, app: str) -> None:
    """InvalidInput saying what is wrong with the arguments of build_image, if anything."""
    if toolchain not in TOOLCHAINS:
        raise InvalidInput(f"unknown toolchain {toolchain!r}; choose one of {', '.join(TOOLCHAINS)}")
    if not isinstance(scenario, str) or not re.fullmatch(r"[a-z0-9-]+", scenario):  # the Makefile checks names
        raise InvalidInput(f"a scenario name uses lowercase letters, digits and '-', not {scenario!r}")
    if not isinstance(app, str) or not re.fullmatch(r"app|apps/[a-z0-9][a-z0-9-]*", app):
        raise InvalidInput(f"an application is the directory 'app' or 'apps/NAME' (lowercase), not {app!r}")
    if not source_dir.is_dir():
        raise InvalidInput(f"there is no unikernel source directory at {source_dir}")
    if not (source_dir / "Makefile").is_file():
        raise InvalidInput(f"{source_dir} is not a unikernel source directory (it has no Makefile)")
    if not (source_dir / app / "config.mk").is_file():
        raise InvalidInput(f"there is no application {app!r} in {source_dir} (no {app}/config.mk)")


def _build_directory(source_dir: Path, toolchain: str, scenario: str, app: str,
                     selection: tuple[str, ...] | None) -> str:
    """One directory per combination, so that switching between them stays incremental."""
    build_root = "build"
    if source_dir.resolve() == resources.kernel_source().resolve():  # one cache per installed copy
        tag = hashlib.sha256(str(source_dir.resolve()).encode()).hexdigest()[:12]
        build_root = str(resources.cache_dir() / "build" / tag)
    return (f"{build_root}/{toolchain}" + ("" if scenario == "none" else f"-{scenario}")
            + ("" if app == "app" else "-" + app.replace("/", "-"))
            + ("" if selection is None else "-with-" + ("+".join(selection) or "nothing")))


def _make(source_dir: Path, toolchain: str, variables: dict[str, str], targets: list[str],
          timeout: float) -> float:
    """Run make for `targets` with the toolchain's and these variables; the seconds it took.

    Raises BuildError with the diagnostics when make fails.
    """
    missing = toolchain_missing(toolchain)
    if missing:
        raise WorkbenchError(
            f"the {toolchain} toolchain is incomplete here: {', '.join(missing)} not found. "
            f"Install it with: sudo apt-get install {TOOLCHAIN_PACKAGES[toolchain]}"
        )
    command = ["make", "--no-print-directory", f"-j{os.cpu_count() or 1}",
               *(f"{k}={v}" for k, v in {**TOOLCHAINS[toolchain], **variables}.items()), *targets]
    started = time.monotonic()
    process = subprocess.Popen(
        command, cwd=source_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={**os.environ, "LC_ALL": "C"},  # plain ASCII quotes in diagnostics
        start_new_session=True,  # so a timeout can stop make and every compiler it started
    )
    try:
        output_bytes, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise WorkbenchError(f"the build took longer than {timeout:g} s and was stopped") from None
    seconds = time.monotonic() - started
    output = output_bytes.decode(errors="replace")
    if process.returncode != 0:
        diagnostics = parse_diagnostics(output)
        count = sum(d.severity in ("error", "fatal error") for d in diagnostics)
        if count == 1:
            summary = "The build failed with 1 error."
        elif count:
            summary = (f"The build failed with {count} errors. Fix the first one first: "
                       "the others often follow from it.")
        else:
            linker = [m["message"] for m in _LINKER_ERROR.finditer(output)]
            summary = "The build failed" + (f": {linker[0]}" if linker else ".")
        raise BuildError(summary, diagnostics=diagnostics, output=output, source_dir=source_dir)
    return seconds


def build_linux_program(source_dir: Path, *, app: str, toolchain: str = DEFAULT_TOOLCHAIN,
                        timeout: float = 120.0) -> Path:
    """Build application `app` as a static Linux program (make linux); returns its path.

    The same source as the unikernel's application, with linux/kernel_api.c in place of the
    kernel: kernel.h's API on Linux's system calls. Raises BuildError like build_image.
    """
    source_dir = Path(source_dir)
    _check_arguments(source_dir, toolchain, "none", app)
    build_dir = _build_directory(source_dir, toolchain, "none", app, None)
    _make(source_dir, toolchain, {"BUILD_DIR": build_dir, "APP": app}, ["linux"], timeout)
    return source_dir / build_dir / "linux" / Path(app).name


def link_log(image: Image, *, timeout: float = 120.0) -> str:
    """The messages of `image`'s link with --print-gc-sections: each section it dropped.

    make writes them to link.log beside the image only when asked, here, by linking again, so
    that an edit's build skips it. It asks with the image's own build facts; the build directory
    is brought up to date first, like a build.
    """
    if image.source_dir is None or image.components is None:
        raise InvalidInput(f"{image.path.name} was not built by the workbench, so it has no link log")
    build_dir = image.path.parent
    if build_dir.is_relative_to(image.source_dir):  # as build_image named it, so make's names match
        build_dir = build_dir.relative_to(image.source_dir)
    variables = {"BUILD_DIR": str(build_dir), "SCENARIO": image.scenario, "APP": image.app,
                 "COMPONENTS": " ".join(image.components)}
    _make(image.source_dir, image.toolchain, variables, [f"{build_dir}/link.log"], timeout)
    return (image.source_dir / build_dir / "link.log").read_text()


def build_image(
    source_dir: Path,
    *,
    scenario: str = "none",
    toolchain: str = DEFAULT_TOOLCHAIN,
    components: Iterable[str] | None = None,
    app: str = "app",
    timeout: float = 120.0,
) -> Image:
    """Run make in `source_dir` and return the Image, or raise BuildError.

    `components` selects the kernel's components (kernel-src/components.mk) instead of those the
    application's own config.mk names; an empty list builds the base alone. `app` is the
    application's directory, `app` or one under `apps/`. Each combination builds in its own
    directory under `build/`, so switching between them stays incremental. The pristine source
    shipped with the workbench is never written to: it builds under the cache directory instead.
    """
    source_dir = Path(source_dir)
    _check_arguments(source_dir, toolchain, scenario, app)
    selection = _component_names(components)
    build_dir = _build_directory(source_dir, toolchain, scenario, app, selection)
    variables = {"BUILD_DIR": build_dir, "SCENARIO": scenario, "APP": app}
    if selection is not None:
        variables["COMPONENTS"] = " ".join(selection)
    if grader_facts.FACTS is not None:  # under the grader: start from its build of the skeleton
        seed(source_dir, build_dir)
    seconds = _make(source_dir, toolchain, variables, ["all"], timeout)
    return Image.load(source_dir / build_dir / IMAGE_NAME, build_seconds=seconds, toolchain=toolchain,
                      scenario=scenario, app=app, components=_selected_components(source_dir / build_dir),
                      source_dir=source_dir)
