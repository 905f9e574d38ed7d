"""Source code for people: pygments HTML in notebooks, numbered plain text elsewhere.

HTML uses inline styles (no CSS classes), so it reads the same on GitHub, in nbviewer and in
untrusted notebooks, and its bytes depend only on the source and the pygments version.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_for_filename
from pygments.util import ClassNotFound

STYLE = "friendly"


@dataclass(frozen=True)
class SourceView:
    """Lines `first..first+len(lines)-1` of `path`, some of them marked."""

    path: str
    first: int
    lines: tuple[str, ...]
    marked: frozenset[int] = field(default_factory=frozenset)  # line numbers to highlight
    notes: dict[int, str] = field(default_factory=dict)  # line number -> text shown under it

    @property
    def last(self) -> int:
        return self.first + len(self.lines) - 1

    def __str__(self) -> str:
        width = len(str(self.last))
        out = [f"{self.path}:{self.first}-{self.last}"]
        for number, line in enumerate(self.lines, self.first):
            mark = ">" if number in self.marked else " "
            out.append(f"{mark}{number:>{width}} | {line}")
            if number in self.notes:
                out.append(f" {'':>{width}} | {self.notes[number]}")
        return "\n".join(out)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        try:
            lexer = get_lexer_for_filename(self.path, stripnl=False)
        except ClassNotFound:
            lexer = get_lexer_for_filename("x.txt", stripnl=False)
        formatter = HtmlFormatter(
            style=STYLE, noclasses=True, linenos="inline", linenostart=self.first,
            hl_lines=[n - self.first + 1 for n in sorted(self.marked)], wrapcode=True,
        )
        body: str = highlight("\n".join(self.lines) + "\n", lexer, formatter)
        notes = "".join(
            f"<div style='color:#b00;font-family:monospace'>line {n}: {html.escape(text)}</div>"
            for n, text in sorted(self.notes.items())
        )
        title = (f"<div style='font-family:monospace;font-weight:bold'>"
                 f"{html.escape(self.path)}:{self.first}-{self.last}</div>")
        return title + body + notes


def excerpt(path: str, text: str, first: int, last: int, *, marked: set[int] | None = None,
            notes: dict[int, str] | None = None) -> SourceView:
    """Lines first..last (1-based, clamped to the file) of `text` as a SourceView."""
    all_lines = text.splitlines()
    first = max(1, first)
    last = min(len(all_lines), last)
    return SourceView(path, first, tuple(all_lines[first - 1 : last]),
                      frozenset(marked or ()), dict(notes or {}))
