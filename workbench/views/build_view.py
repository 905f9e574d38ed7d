"""The build view: build a workspace and show each compiler diagnostic at its source line.

    BuildView(workspace)        builds now; the Build button builds again
    BuildView(build_error)      shows a BuildError caught earlier

Each file with a diagnostic is sent whole, highlighted line by line with pygments (inline
styles, every character escaped here); the page folds the lines far from any diagnostic.
"""

from __future__ import annotations

import html
import time
from typing import Any

import traitlets
from pygments.lexers import get_lexer_for_filename
from pygments.styles import get_style_by_name
from pygments.token import _TokenType
from pygments.util import ClassNotFound

from workbench.kernel.build import BuildError
from workbench.kernel.display import STYLE
from workbench.kernel.image import Image
from workbench.kernel.toolchains import DEFAULT_TOOLCHAIN
from workbench.kernel.workspace import Workspace
from workbench.views._base import View, ViewError, box, chip, esc, module

STATES = ("not built", "building", "ok", "failed")
MAX_FILE_LINES = 5000


def highlight_lines(path: str, text: str) -> list[str]:
    """One HTML string per line of `text`, coloured like pygments' `friendly` style."""
    try:
        lexer = get_lexer_for_filename(path, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return [html.escape(line) for line in text.split("\n")]
    style = get_style_by_name(STYLE)
    cache: dict[_TokenType, str] = {}

    def css(kind: _TokenType) -> str:
        if kind not in cache:
            spec = style.style_for_token(kind)
            parts = []
            if spec["color"]:
                parts.append(f"color:#{spec['color']}")
            if spec["bold"]:
                parts.append("font-weight:bold")
            if spec["italic"]:
                parts.append("font-style:italic")
            cache[kind] = ";".join(parts)
        return cache[kind]

    lines: list[str] = [""]
    for kind, value in lexer.get_tokens(text):
        pieces = value.split("\n")
        for number, piece in enumerate(pieces):
            if number:
                lines.append("")
            if piece:
                style_text = css(kind)
                escaped = html.escape(piece)
                lines[-1] += f"<span style='{style_text}'>{escaped}</span>" if style_text else escaped
    if text.endswith("\n") and lines and lines[-1] == "":
        lines.pop()
    return lines


class BuildView(View):
    """The workspace's build: its result, or the source with each diagnostic at its line."""

    _esm = module("build.js")

    workspace = traitlets.Unicode("", help="The workspace's name (empty when showing a BuildError alone)."
                                  ).tag(sync=True)
    status = traitlets.Enum(STATES, default_value="not built", help="Where the build is.").tag(sync=True)
    summary = traitlets.Unicode("", help="One line: what the build did or why it failed.").tag(sync=True)
    seconds = traitlets.Float(0.0, help="How long the last build took.").tag(sync=True)
    image = traitlets.Dict(help="The built image: name, sizes and sections (when the build succeeded)."
                           ).tag(sync=True)
    diagnostics: traitlets.List[Any] = traitlets.List(
        help="Each error and warning: path, line, column, severity, message.").tag(sync=True)
    files: traitlets.List[Any] = traitlets.List(
        help="Each file a diagnostic is about: path and its lines as highlighted HTML.").tag(sync=True)
    output = traitlets.Unicode("", help="The build's last output lines when no diagnostic could be parsed."
                               ).tag(sync=True)

    def __init__(self, source: Workspace | BuildError, *, build: bool = True, scenario: str = "none",
                 toolchain: str = DEFAULT_TOOLCHAIN) -> None:
        super().__init__()
        self.last_image: Image | None = None
        self.last_error: BuildError | None = None
        self._scenario, self._toolchain = scenario, toolchain
        if isinstance(source, Workspace):
            self.ws: Workspace | None = source
            self.workspace = source.root.name
            if build:
                self.build()
        elif isinstance(source, BuildError):
            self.ws = None
            self._show_error(source, seconds=0.0)
        else:
            raise ViewError(f"BuildView shows a Workspace or a BuildError, not {type(source).__name__}")

    def build(self) -> Image | None:
        """Build the workspace now; returns the Image, or None when it failed (see `last_error`)."""
        if self.ws is None:
            raise ViewError("this view shows a BuildError without its workspace; it cannot build again")
        self.status = "building"
        started = time.monotonic()
        try:
            built = self.ws.build(scenario=self._scenario, toolchain=self._toolchain)
        except BuildError as error:
            self._show_error(error, seconds=time.monotonic() - started)
            return None
        except Exception:
            self.status = "not built"
            raise
        self._show_image(built, seconds=time.monotonic() - started)
        return built

    def _show_image(self, built: Image, *, seconds: float) -> None:
        self.last_image, self.last_error = built, None
        with self.hold_sync():
            self.status = "ok"
            self.seconds = round(seconds, 3)
            self.summary = (f"Built {built.path.name}: {built.size:,} bytes on disk, "
                            f"{built.loaded_size:,} bytes in memory.")
            self.image = {"name": built.path.name, "size": built.size, "loaded_size": built.loaded_size,
                          "sections": [{"name": s.name, "vaddr": f"{s.vaddr:#018x}", "size": s.size,
                                        "permissions": s.permissions} for s in built.sections]}
            self.diagnostics = []
            self.files = []
            self.output = ""

    def _show_error(self, error: BuildError, *, seconds: float) -> None:
        self.last_image, self.last_error = None, error
        # A header's error is reported once per file that includes it: show it once.
        shown = list(dict.fromkeys(d for d in error.diagnostics if d.severity != "note"))
        files = []
        for path in dict.fromkeys(d.path for d in shown):
            try:
                text = (error.source_dir / path).read_text(errors="replace")
            except OSError:
                continue
            lines = highlight_lines(path, text)[:MAX_FILE_LINES]
            files.append({"path": path, "lines": lines})
        with self.hold_sync():
            self.status = "failed"
            self.seconds = round(seconds, 3)
            self.summary = error.summary
            self.image = {}
            self.diagnostics = [{"path": d.path, "line": d.line, "column": d.column, "severity": d.severity,
                                 "message": d.message} for d in shown]
            self.files = files
            self.output = "" if shown else "\n".join(error.output.strip().splitlines()[-20:])

    def _msg_build(self, content: dict[str, Any]) -> None:
        self.build()

    def __repr__(self) -> str:
        name = f" {self.workspace!r}" if self.workspace else ""
        if self.status == "failed":
            errors = sum(d["severity"] in ("error", "fatal error") for d in self.diagnostics)
            return f"<BuildView{name}: failed, {errors} error{'s' if errors != 1 else ''}>"
        if self.status == "ok":
            return f"<BuildView{name}: ok, {self.image['name']}>"
        return f"<BuildView{name}: {self.status}>"

    def static_html(self) -> str:
        title = f"Build{' of ' + esc(self.workspace) if self.workspace else ''}"
        colour = {"ok": "#bbf7d0", "failed": "#fecaca"}.get(self.status, "#e5e7eb")
        head = chip(self.status, colour)
        if self.last_error is not None:
            body = self.last_error._repr_html_()  # opens with the summary itself
        elif self.last_image is not None:
            body = self.last_image._repr_html_()
        else:
            body = f"<p>{esc(self.summary)}</p>" if self.summary else ""
        return box(title, f"<div>{head}</div>{body}")
