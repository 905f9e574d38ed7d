"""What every view shares: the widget base class, throttled updates, and static HTML helpers.

A view is an anywidget whose front-end is one ES module in `widgets/`. Python owns the state:
traits hold what the page shows, custom messages carry what is too big or too transient for a
trait (a table's entries, console output). The page talks back with messages of the form
`{"kind": ..., ...}`, dispatched here to `_msg_<kind>` methods.

Updates that come from a running guest (console output, state changes, live page-table
refreshes) are never sent as they happen, and may come from any thread (the machine's event
loop, often). They mark the view dirty; one scheduler thread flushes each view at least
`Throttle.interval` (0.1 s) after its previous flush ended, so at most ten times a second, with
everything that changed since then in one message. The page stores what arrives and draws at
most once per animation frame, so a page that falls behind skips frames instead of queueing
work. Each update is numbered and the page acknowledges it once drawn; `View.flow` counts both,
for the benchmarks. (Acknowledgements do not gate sending: the kernel reads no message from the
page while a cell runs, which is exactly when a live view matters.) The page sends at most two
acknowledgements a second for each view, each with the last number drawn (widgets/dom.js
sendAck): every message makes the kernel report busy then idle, which JupyterLab redraws, and
those sent while a cell ran queue until it ends; one a drawn update, ten a second from each live
view, kept the kernel and the page busy well after a busy cell, the next cell's output late.

Every view also has a deterministic `__repr__` (text/plain) and a static HTML form (text/html)
in the same output bundle, for GitHub, nbviewer, untrusted notebooks and nbval.
"""

from __future__ import annotations

import heapq
import html
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

import anywidget
import ipywidgets
import traitlets

from workbench import resources
from workbench.errors import WorkbenchError
from workbench.models.cpu import U64_MAX

WIDGETS = resources.widgets()  # the ES modules and their CSS
CSS = WIDGETS / "workbench.css"


def module(name: str) -> str:
    """The ES module widgets/NAME with the shared helpers of widgets/dom.js in front of it.

    anywidget loads each view as one module and resolves no imports, so shared code is
    prepended here rather than copied into every file.
    """
    return (WIDGETS / "dom.js").read_text() + "\n" + (WIDGETS / name).read_text()

UPDATE_INTERVAL = 0.1  # seconds: a live view refreshes at most 10 times a second

log = logging.getLogger(__name__)


class ViewError(WorkbenchError):
    """A view was given something it cannot show."""


# ---------------------------------------------------------------------------------------------
# One scheduler thread for every view's delayed work


class _Scheduler:
    """Runs callbacks at given times on one daemon thread, in order; callbacks never overlap."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._changed = threading.Condition()
        self._counter = itertools.count()
        self._thread: threading.Thread | None = None

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        with self._changed:
            heapq.heappush(self._heap, (time.monotonic() + max(delay, 0.0), next(self._counter), callback))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="workbench-views", daemon=True)
                self._thread.start()
            self._changed.notify()

    @property
    def is_current(self) -> bool:
        return threading.current_thread() is self._thread

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._changed.wait(timeout)
                _due, _order, callback = heapq.heappop(self._heap)
            try:
                callback()
            except Exception:  # a broken view must not stop every other view's updates
                log.exception("a workbench view failed to update")


scheduler = _Scheduler()


class Throttle:
    """Call `function` soon after `trigger()`, at least `interval` seconds after its last call ended.

    Triggers that arrive while a call is pending or running are coalesced into one more call.
    `function` returns False to say "not now" (the page is behind); it is then tried again one
    interval later.
    """

    def __init__(self, function: Callable[[], bool], interval: float = UPDATE_INTERVAL) -> None:
        self.function = function
        self.interval = interval
        self._lock = threading.Lock()
        self._pending = False  # a call is scheduled
        self._running = False
        self._again = False  # triggered while running: call once more, one interval after this call
        self._last = -1e9  # when the last call ended

    def trigger(self, *, immediately: bool = False) -> None:
        with self._lock:
            if self._running:
                self._again = True
                return
            if self._pending:
                return
            self._pending = True
            delay = 0.0 if immediately else self._last + self.interval - time.monotonic()
        scheduler.call_later(delay, self._run)

    def _run(self) -> None:
        with self._lock:
            self._pending = False
            self._running = True
            self._again = False
        done = False
        try:
            done = self.function()
        finally:
            with self._lock:
                self._running = False
                self._last = time.monotonic()
                again = (self._again or not done) and not self._pending
                self._pending = self._pending or again
        if again:
            scheduler.call_later(self.interval, self._run)


# ---------------------------------------------------------------------------------------------
# The widget base class


class View(anywidget.AnyWidget):
    """Base of every workbench view: message dispatch, flow control, and the output bundle."""

    _css = CSS
    error = traitlets.Unicode("", help="What went wrong with the last request from the page, for a student; "
                                       "empty when nothing did.").tag(sync=True)
    seq = traitlets.Int(0, help="Number of the last update batch sent as traits; the page acknowledges "
                                "each batch it drew (custom messages carry their own `seq`).").tag(sync=True)

    # Traits the page may set through a {"kind": "set"} message (validated like any Python set).
    _settable: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **kwargs: Any) -> None:
        self._lock = threading.RLock()
        self._acked = 0
        self._sent = 0
        self._flow = {"sent": 0, "acked": 0}
        self._throttle = Throttle(self._flush_now)
        super().__init__(**kwargs)
        self.on_msg(self._dispatch)

    # Output bundle.

    def __repr__(self) -> str:  # pragma: no cover - every view overrides it
        return f"<{type(self).__name__}>"

    def static_html(self) -> str:
        """The view as static HTML with inline styles: what GitHub and nbviewer show."""
        raise NotImplementedError

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]] | None:
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None:
            return None
        data, metadata = bundle
        data = {**data, "text/plain": repr(self), "text/html": self.static_html()}
        return data, metadata

    # Messages from the page.

    def _dispatch(self, _widget: object, content: object, buffers: object) -> None:
        if not isinstance(content, dict) or not isinstance(content.get("kind"), str):
            return
        handler = getattr(self, f"_msg_{content['kind']}", None)
        if handler is None:
            return
        try:
            handler(content)
        except (WorkbenchError, traitlets.TraitError, ValueError) as problem:
            self.error = str(problem)

    def _msg_ack(self, content: dict[str, Any]) -> None:
        number = content.get("seq")
        if isinstance(number, int):
            with self._lock:
                if number > self._acked:
                    self._acked = number
                    self._flow["acked"] = number

    def _msg_set(self, content: dict[str, Any]) -> None:
        name = content.get("name")
        if name not in self._settable:
            raise ViewError(f"the page may not set {name!r}")
        self.error = ""
        setattr(self, str(name), content.get("value"))

    # Updates to the page.

    def _next_seq(self) -> int:
        """Number a new update batch (with the lock held). The batch carries the number either
        as the `seq` trait (set it inside the same hold_sync) or as `seq` in a custom message."""
        self._sent += 1
        self._flow["sent"] = self._sent
        return self._sent

    def _post(self, message: dict[str, Any]) -> None:
        """Send a custom message to every view of this widget on the page."""
        self.send({**message, "t": time.time()})

    def _mark_dirty(self, *, immediately: bool = False) -> None:
        """Something changed: flush soon, throttled (safe from any thread)."""
        self._throttle.trigger(immediately=immediately)

    def _flush_now(self) -> bool:
        self._prepare()
        with self._lock:
            self._flush()
        return True

    def _prepare(self) -> None:
        """Slow work before a flush (taking a snapshot), done without holding the lock."""

    def _flush(self) -> None:
        """Send what changed since the last flush (called with the lock held)."""

    @property
    def flow(self) -> dict[str, int]:
        """Update batches sent, and the last one the page acknowledged having drawn."""
        with self._lock:
            return dict(self._flow)


class Panel(ipywidgets.VBox):  # type: ignore[misc]  # ipywidgets has no type hints
    """Views shown together in one output, one under the other; statically, their static forms."""

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]] | None:
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None:
            return None
        data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
        html = "".join(child.static_html() for child in self.children)
        return {**data, "text/plain": repr(self), "text/html": html}, metadata


# ---------------------------------------------------------------------------------------------
# Values and static HTML


# One colour per permission everywhere (the CSS in widgets/workbench.css uses the same ones).
PERMISSION_COLOURS = {"r-x": "#fed7aa", "r--": "#bfdbfe", "rw-": "#bbf7d0", "rwx": "#fecaca", None: "#e5e7eb"}
CHANGED_COLOUR = "#fef08a"
ADDED_COLOUR = "#bbf7d0"
REMOVED_COLOUR = "#fecaca"


def parse_address(text: object, *, what: str = "vaddr") -> int:
    """A 64-bit address from `0x...` hex, plain hex digits, or decimal with a `0d` prefix.

    Underscores and spaces are allowed as separators; the value must fit in 64 bits.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    elif isinstance(text, str):
        cleaned = text.strip().replace("_", "").replace(" ", "").lower()
        if not cleaned:
            raise ViewError(f"give a {what}, for example 0xffffffff80100000")
        try:
            value = int(cleaned[2:], 10) if cleaned.startswith("0d") else int(cleaned, 16)
        except ValueError:
            raise ViewError(f"{text!r} is not a {what}: write it in hex, like 0xffffffff80100000") from None
    else:
        raise ViewError(f"a {what} is a hex string or an int, not {type(text).__name__}")
    if not 0 <= value <= U64_MAX:
        raise ViewError(f"{text!r} does not fit in 64 bits, so it cannot be a {what}")
    return value


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def permission_colour(permissions: str | None) -> str:
    """Background colour for a permission text like `rw-` or `urw-` (the `u` is ignored)."""
    if permissions is None:
        return PERMISSION_COLOURS[None]
    rights = permissions[-3:]
    if "w" in rights and "x" in rights:
        return PERMISSION_COLOURS["rwx"]
    return PERMISSION_COLOURS.get(rights, PERMISSION_COLOURS[None])


def box(title: str, body: str) -> str:
    """The frame every static view is drawn in."""
    return ("<div style='border:1px solid #d1d5db;border-radius:4px;padding:6px 8px;margin:2px 0;"
            "font-family:system-ui,sans-serif;font-size:13px;max-width:100%;overflow-x:auto'>"
            f"<div style='font-weight:600;margin-bottom:4px'>{title}</div>{body}</div>")


def chip(text: str, background: str = "#e5e7eb", colour: str = "#111827") -> str:
    return (f"<span style='display:inline-block;padding:0 4px;margin:0 1px;border-radius:3px;"
            f"background:{background};color:{colour};font-family:monospace;font-size:12px'>{esc(text)}</span>")


def table(header: list[str], rows: list[str], *, note: str = "") -> str:
    """An HTML table; each row is a `<tr>` string already."""
    head = "".join(f"<th style='text-align:left;padding:1px 6px'>{esc(h)}</th>" for h in header)
    extra = f"<div style='color:#6b7280;margin-top:2px'>{esc(note)}</div>" if note else ""
    return (f"<table style='border-collapse:collapse;font-size:12px'><tr>{head}</tr>{''.join(rows)}</table>"
            f"{extra}")


def cell(text: str, *, code: bool = False, style: str = "") -> str:
    inner = f"<code>{esc(text)}</code>" if code else esc(text)
    return f"<td style='padding:1px 6px;{style}'>{inner}</td>"
