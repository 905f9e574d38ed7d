"""A real JupyterLab in real Chromium, for the browser tests and benchmarks/views.py.

`LabServer` starts JupyterLab on a free port over a directory of notebooks, with its settings,
workspaces and configuration in temporary directories (so nothing of the user's own JupyterLab
is read or written), and `WORKBENCH_WORKSPACES` pointing to a temporary directory too.
`Browser` drives Debian's Chromium through Playwright for Python; `NotebookPage` opens one
notebook, runs it top to bottom and finds the outputs of its cells. Every wait is on the page
or on the server, with a deadline; nothing sleeps a fixed time.
"""

from __future__ import annotations

import ctypes
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
_PR_SET_PDEATHSIG = 1
START_TIMEOUT = 90.0  # seconds for JupyterLab to answer
RUN_TIMEOUT = 420.0  # seconds for a notebook to run top to bottom: lesson 07 took 45 s alone and
# 186 s beside the hostile-grading test on the other core (its submissions busy-loop on purpose)

# JupyterLab settings for the tests: every cell rendered (no windowing, so locators find
# outputs far down the notebook), no news prompt, no autosave racing the test.
SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                       "checkForUpdates": False},
}


def _stop_with_parent() -> None:
    """In the child between fork and exec: SIGTERM when the test process dies, however it dies.

    JupyterLab then shuts its kernels down, and each kernel's QEMU dies with its kernel.
    """
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class LabUnavailable(Exception):
    """JupyterLab or Chromium could not be started; the message says why."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def chromium_missing() -> str:
    """Why the browser tests cannot run here, or empty when they can."""
    if not Path(CHROMIUM).is_file():
        return f"{CHROMIUM} is missing (install Debian's chromium package; scripts/bootstrap does)"
    try:
        import playwright  # noqa: F401, PLC0415 - only to say clearly that it is missing
    except ImportError:
        return "playwright for Python is not installed (pip install -e '.[test]')"
    return ""


class LabServer:
    """JupyterLab serving `notebooks` (copied into a temporary root directory)."""

    def __init__(self, notebooks: list[Path], *, extra_files: dict[str, str] | None = None) -> None:
        self.scratch = Path(tempfile.mkdtemp(prefix="workbench-lab-"))
        self.root = self.scratch / "root"
        self.root.mkdir()
        for notebook in notebooks:
            shutil.copy(notebook, self.root / notebook.name)
        for name, text in (extra_files or {}).items():
            (self.root / name).write_text(text)
        settings = self.scratch / "settings"
        for name, values in SETTINGS.items():
            target = settings / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(values))
        self.workspaces = self.scratch / "workbench-workspaces"
        self.workspaces.mkdir()
        self.token = secrets.token_hex(16)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = self.scratch / "jupyterlab.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LabServer:
        argv = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={self.port}", "--ip=127.0.0.1",
                f"--ServerApp.token={self.token}", f"--ServerApp.root_dir={self.root}",
                "--ServerApp.open_browser=False", "--LabApp.expose_app_in_browser=True",
                "--ServerApp.disable_check_xsrf=False"]
        if os.geteuid() == 0:
            argv.append("--allow-root")
        env = {**os.environ,
               "WORKBENCH_WORKSPACES": str(self.workspaces),
               "JUPYTERLAB_SETTINGS_DIR": str(self.scratch / "settings"),
               "JUPYTERLAB_WORKSPACES_DIR": str(self.scratch / "lab-workspaces"),
               "JUPYTER_CONFIG_DIR": str(self.scratch / "config"),
               "JUPYTER_RUNTIME_DIR": str(self.scratch / "runtime"),
               "IPYTHONDIR": str(self.scratch / "ipython"),
               "PYTHONUNBUFFERED": "1"}
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                                            start_new_session=True,
                                            preexec_fn=_stop_with_parent)  # noqa: PLW1509 - a prctl only
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LabUnavailable(f"JupyterLab exited with status {self.process.returncode}:\n{self.log_tail()}")
            if self._request("GET", "/api/status", timeout=2.0) == 200:
                return self
            self._wait_a_little()
        self.stop()
        raise LabUnavailable(f"JupyterLab did not answer within {START_TIMEOUT:g} s:\n{self.log_tail()}")

    def _request(self, method: str, path: str, timeout: float) -> int | None:
        """The HTTP status of one request to the server, or None when it does not answer."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, f"{path}?token={self.token}")
            return connection.getresponse().status
        except OSError:
            return None
        finally:
            connection.close()

    def _wait_a_little(self) -> None:
        assert self.process is not None
        try:
            self.process.wait(0.2)  # returns early if it dies
        except subprocess.TimeoutExpired:
            pass

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """Shut down every kernel (and so every QEMU), then JupyterLab; remove the scratch directory."""
        process = self.process
        if process is not None and process.poll() is None:
            try:
                self._request("POST", "/api/shutdown", timeout=10.0)
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
        shutil.rmtree(self.scratch, ignore_errors=True)

    def __enter__(self) -> LabServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()


class Browser:
    """Headless Chromium through Playwright (sync API)."""

    def __init__(self) -> None:
        from playwright.sync_api import sync_playwright  # noqa: PLC0415 - optional test dependency

        self._manager = sync_playwright()
        self.playwright = self._manager.start()
        try:
            self.browser = self.playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except Exception as error:
            self.playwright.stop()
            raise LabUnavailable(f"Chromium did not start: {error}") from error

    def page(self, width: int = 1400, height: int = 1000) -> Any:
        context = self.browser.new_context(viewport={"width": width, "height": height})
        return context.new_page()

    def close(self) -> None:
        try:
            self.browser.close()
        finally:
            self.playwright.stop()


# Console errors JupyterLab itself logs on a healthy page, not caused by any view.
CONSOLE_NOISE: tuple[str, ...] = ()


class NotebookPage:
    """One notebook open in JupyterLab, in its own browser page."""

    def __init__(self, server: LabServer, browser: Browser, name: str) -> None:
        self.server = server
        self.name = name
        self.page = browser.page()
        self.console: list[str] = []
        self.script_errors: list[str] = []  # uncaught exceptions and console.error calls, with their message
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda error: self.script_errors.append(f"pageerror: {error}\n{error.stack}"))

    def _on_console(self, message: Any) -> None:
        text = f"{message.type}: {message.text}"
        self.console.append(text)
        if message.type == "error" and not any(noise in message.text for noise in CONSOLE_NOISE):
            location = message.location
            self.script_errors.append(f"console {text} at {location.get('url', '?')}:{location.get('lineNumber', '?')}")

    def assert_no_script_errors(self) -> None:
        """Fail, with the messages, if any script threw or logged an error since the page opened."""
        errors, self.script_errors = self.script_errors, []
        assert not errors, f"{self.name}: the page reported {len(errors)} script errors:\n" + "\n".join(errors)

    def open(self, timeout: float = START_TIMEOUT) -> NotebookPage:
        # A workspace of its own, so that no other page's open notebooks are restored into this one.
        workspace = f"test-{secrets.token_hex(4)}"
        self.page.goto(f"{self.server.url}/lab/workspaces/{workspace}/tree/{self.name}?token={self.server.token}",
                       timeout=timeout * 1000)
        self.page.wait_for_function(
            """(name) => {
                const app = window.jupyterapp;
                const panel = app && app.shell.currentWidget;
                const session = panel && panel.sessionContext;
                return session && session.path === name && session.session && session.session.kernel
                    && session.session.kernel.status === "idle";
            }""", arg=self.name, timeout=timeout * 1000)
        return self

    def run_all(self, timeout: float = RUN_TIMEOUT) -> float:
        """Run every cell, wait until the kernel is idle again; returns the seconds it took."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout  # noqa: PLC0415 - as in Browser

        started = time.monotonic()
        self.page.evaluate("""() => {
            const panel = window.jupyterapp.shell.currentWidget;
            window.__workbenchRunDone = false;
            for (const cell of panel.content.widgets) {
                if (cell.model.type === "code") cell.model.executionCount = null;
            }
            window.jupyterapp.commands.execute("notebook:run-all-cells")
                .then(() => { window.__workbenchRunDone = true; });
        }""")
        try:
            state = self.page.wait_for_function(
                """() => {
                    const panel = window.jupyterapp.shell.currentWidget;
                    const session = panel.sessionContext.session;
                    if (!session || !session.kernel || session.kernel.status === "dead") return "the kernel died";
                    const cells = panel.content.widgets.filter((cell) => cell.model.type === "code");
                    return window.__workbenchRunDone && session.kernel.status === "idle"
                        && cells.every((cell) => cell.model.executionCount !== null) && "done";
                }""", timeout=timeout * 1000).json_value()
        except PlaywrightTimeout:
            state = f"not done after {timeout:g} s, waiting for: {self._unfinished()}"
        if state != "done":
            raise AssertionError(f"{self.name}: {state} while running it\n{self.server.log_tail()}")
        return time.monotonic() - started

    def _unfinished(self) -> str:
        """The first code cell with no execution count yet, the one a run is stuck in or behind."""
        source: str = self.page.evaluate("""() => {
            const cells = window.jupyterapp.shell.currentWidget.content.widgets
                .filter((cell) => cell.model.type === "code");
            const cell = cells.find((c) => c.model.executionCount === null);
            return cell ? cell.model.sharedModel.getSource().slice(0, 200) : "no cell (the kernel is busy)";
        }""")
        return source

    def errors(self) -> list[str]:
        """Tracebacks shown in cell outputs, widgets that failed to render, and script errors."""
        found: list[str] = self.page.evaluate("""() => {
            const out = [];
            const stderr = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]';
            for (const node of document.querySelectorAll(stderr)) {
                const text = node.textContent;
                if (text.includes("Traceback") || text.includes("Error")) out.push(text.slice(0, 2000));
            }
            for (const node of document.querySelectorAll('.jp-OutputArea-output')) {
                if (node.textContent.includes("Error displaying widget")) out.push(node.textContent.slice(0, 500));
            }
            return out;
        }""")
        return found + self.script_errors

    def view(self, css_class: str, index: int = 0) -> Any:
        """The index-th rendered view with this class (e.g. 'wb-explorer')."""
        return self.page.locator(f".wb.{css_class}").nth(index)

    def close(self) -> None:
        """Shut the notebook's kernel down (and with it every QEMU it started), then close the page.

        Otherwise the kernel, and its guests, idle on until the server stops at the end of the run."""
        from playwright.sync_api import Error  # noqa: PLC0415 - optional test dependency

        try:
            self.page.evaluate("() => window.jupyterapp.shell.currentWidget?.sessionContext.shutdown()")
        except Error:
            pass  # a page that broke: LabServer.stop() shuts every kernel down
        finally:
            self.page.context.close()
