"""A real JupyterHub for a class, for the hub test and benchmarks/classroom.py.

`ClassroomHub` starts `jupyterhub` with deploy/jupyterhub_config.py and a few overrides that
let it run here without systemd: the simple local-process spawner (each student's server runs
as this user, with a home of its own under a temporary directory), loopback ports, a short idle
timeout for the culler, and a marker in the environment of every process the hub starts, so that
what it leaves behind can be found. The shipped login (the class list and a shared password from
the hub's environment) stays with `shipped_login=True`; otherwise DummyAuthenticator lets the
test's students in. The proxy is configurable-http-proxy from .venv/proxy (scripts/bootstrap
installs it there).

`Student` talks to the hub's REST API as an admin service (create, spawn, wait, token) and runs
a notebook in the student's own server through a real Jupyter kernel: the Jupyter server's
REST API makes a session, and each code cell goes to the kernel over its websocket.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
DEPLOY_CONFIG = ROOT / "deploy" / "jupyterhub_config.py"
PROXY = Path(sys.prefix) / "proxy" / "node_modules" / ".bin" / "configurable-http-proxy"
MARKER = "WORKBENCH_CLASSROOM_RUN"  # in the environment of every process the hub starts
START_TIMEOUT = 60.0
SPAWN_TIMEOUT = 120.0
CELL_TIMEOUT = 120.0
API_TIMEOUT = 120.0  # one request; the hub answers a spawn within its slow_spawn_timeout (10 s)
# Every simulated student talks at once: tornado's client would queue all but 10 requests.
AsyncHTTPClient.configure(None, max_clients=1000)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


OVERRIDES = '''
c = get_config()
load_subconfig({deploy!r})

# Here: no systemd, only loopback.
{login}c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = {homes!r} + "/{{username}}"
c.JupyterHub.bind_url = "http://127.0.0.1:{port}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.JupyterHub.db_url = "sqlite:///{directory}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = {directory!r} + "/cookie_secret"
c.Spawner.start_timeout = {spawn_timeout}
c.Spawner.http_timeout = {spawn_timeout}
c.Spawner.environment.update({{
    {marker!r}: {run_id!r},
    "TMPDIR": {tmp!r},
    "JUPYTER_RUNTIME_DIR": lambda spawner: {runtime!r} + "/" + spawner.user.name,  # no private /tmp here
    "JUPYTERHUB_ACTIVITY_INTERVAL": "2",  # the culler sees a busy server as busy
}})

# The culler of the deploy configuration, with a short idle timeout.
for service in c.JupyterHub.services:
    if service["name"] == "idle-culler":
        service["command"] = [part for part in service["command"] if not part.startswith(("--timeout", "--cull-every"))]
        service["command"] += ["--timeout={idle_timeout}", "--cull-every=2"]

# The test itself, as an admin service.
c.JupyterHub.services.append({{"name": "classroom-test", "api_token": {token!r}}})
c.JupyterHub.load_roles.append({{
    "name": "classroom-test",
    "scopes": ["admin:users", "admin:servers", "access:servers", "list:users", "read:users"],
    "services": ["classroom-test"],
}})
'''


DUMMY_LOGIN = '''c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
'''


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on a thread of its own: the browser tests' Playwright keeps an event loop
    running on the main thread for the whole session, where asyncio.run refuses to start."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


class ClassroomHub:
    """A running JupyterHub: `with ClassroomHub(idle_timeout=...) as hub: hub.student(name)`."""

    def __init__(self, *, idle_timeout: int = 3600, spawn_timeout: float = SPAWN_TIMEOUT,
                 shipped_login: bool = False, passwords: Mapping[str, str] | None = None) -> None:
        """`passwords`: the hub's WORKBENCH_HUB_* variables (default: a random class password)."""
        if not PROXY.is_file():
            raise FileNotFoundError(f"JupyterHub's proxy is not installed at {PROXY}: run scripts/bootstrap")
        self.spawn_timeout = spawn_timeout
        self.directory = Path(tempfile.mkdtemp(prefix="workbench-hub-"))
        self.homes = self.directory / "home"
        self.tmp = self.directory / "tmp"  # every student server's TMPDIR: must be empty at the end
        self.runtime = self.directory / "runtime"  # JUPYTER_RUNTIME_DIR: one directory per student
        self.homes.mkdir()
        self.tmp.mkdir()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = secrets.token_hex(16)
        self.run_id = secrets.token_hex(8)
        config = self.directory / "jupyterhub_config.py"
        config.write_text(OVERRIDES.format(
            deploy=str(DEPLOY_CONFIG), homes=str(self.homes), port=self.port, hub_port=free_port(),
            proxy_api_port=free_port(), directory=str(self.directory),
            spawn_timeout=int(spawn_timeout), marker=MARKER, run_id=self.run_id, tmp=str(self.tmp),
            runtime=str(self.runtime), login="" if shipped_login else DUMMY_LOGIN,
            idle_timeout=idle_timeout, token=self.token))
        self.passwords = dict(passwords if passwords is not None
                              else {"WORKBENCH_HUB_PASSWORD": secrets.token_urlsafe(16)})
        self.log_path = self.directory / "jupyterhub.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.last_words = ""  # the end of the hub's log as it stopped
        self._config = config

    def __enter__(self) -> ClassroomHub:
        environment = {name: value for name, value in os.environ.items() if not name.startswith("WORKBENCH_HUB_")}
        environment.update(self.passwords, **{MARKER: self.run_id})
        environment.pop("WORKBENCH_WORKSPACES", None)  # each student's workspaces are in their lessons
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "jupyterhub", "-f", str(self._config)], cwd=self.directory,
                stdout=log, stderr=subprocess.STDOUT, env=environment, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                message = f"JupyterHub exited with status {self.process.returncode}:\n{self.log_tail()}"
                self.close()
                raise RuntimeError(message)
            try:
                run_async(self.api("GET", "/hub/api/"))
                return self
            except (OSError, HTTPClientError):
                time.sleep(0.2)
        self.close()
        raise TimeoutError(f"JupyterHub did not answer within {START_TIMEOUT:g} s:\n{self.log_tail()}")

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Stop the hub (it stops the proxy and the culler), then remove its directory."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.last_words = self.log_tail(30)  # the directory, its log with it, goes now
        shutil.rmtree(self.directory, ignore_errors=True)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    async def api(self, method: str, path: str, body: Any = None, *, base: str | None = None,
                  timeout: float = API_TIMEOUT) -> Any:
        """One request to the hub (or, with `base`, to a student's server through the proxy)."""
        request = HTTPRequest(
            (base or self.url) + path, method=method, headers={"Authorization": f"token {self.token}"},
            body=json.dumps(body) if body is not None else ("" if method in ("POST", "PUT", "PATCH") else None),
            request_timeout=timeout, follow_redirects=False)
        response = await AsyncHTTPClient().fetch(request)
        return json.loads(response.body) if response.body else None

    def student(self, name: str) -> Student:
        return Student(self, name)

    def marked_processes(self) -> dict[int, str]:
        """Every live process the hub started, directly or not: pid -> its command line."""
        found = {}
        needle = f"{MARKER}={self.run_id}".encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if needle in (entry / "environ").read_bytes().split(b"\0"):
                    command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
                    found[int(entry.name)] = command.decode(errors="replace")
            except OSError:
                continue  # gone meanwhile
        return found


@dataclass
class CellResult:
    index: int
    source: str
    started: float
    finished: float
    outputs: list[dict[str, Any]] = field(default_factory=list)

    def text(self) -> str:
        parts = []
        for message in self.outputs:
            content = message["content"]
            if message["msg_type"] == "stream":
                parts.append(content["text"])
            elif "data" in content:
                parts.append(content["data"].get("text/plain", ""))
        return "".join(parts)


class CellError(AssertionError):
    """A cell raised: the student's lesson failed."""


class Student:
    """One student of the class: their server, and notebooks run in it by a real kernel."""

    def __init__(self, hub: ClassroomHub, name: str) -> None:
        self.hub = hub
        self.name = name
        self.base = f"{hub.url}/user/{name}"
        self.home = hub.homes / name

    async def spawn(self) -> None:
        """Create the user and start their server; returns once the hub says it is ready."""
        await self.hub.api("POST", f"/hub/api/users/{self.name}")
        await self.hub.api("POST", f"/hub/api/users/{self.name}/server")
        deadline = time.monotonic() + self.hub.spawn_timeout
        while time.monotonic() < deadline:
            model = await self.hub.api("GET", f"/hub/api/users/{self.name}")
            server = model["servers"].get("")
            if server and server["ready"]:
                return
            if not model["servers"]:
                raise RuntimeError(f"{self.name}'s server stopped while starting:\n{self.hub.log_tail()}")
            await asyncio.sleep(0.25)
        raise TimeoutError(f"{self.name}'s server was not ready within {self.hub.spawn_timeout:g} s")

    async def server_running(self) -> bool:
        model = await self.hub.api("GET", f"/hub/api/users/{self.name}")
        return bool(model["servers"])

    async def run_notebook(self, path: str, *, extra_cells: list[str] | None = None,
                           on_cell: Callable[[CellResult], None] | None = None) -> list[CellResult]:
        """Run every code cell of `path` (relative to their server's root, ~/lessons) in a new kernel of their server.

        `extra_cells` run after the notebook's own, in the same kernel. The kernel is left
        running, as a student leaves a notebook open. Raises CellError on the first failing cell.
        """
        notebook = await self.hub.api("GET", f"/api/contents/{path}?content=1", base=self.base)
        cells = [("".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"])
                 for cell in notebook["content"]["cells"] if cell["cell_type"] == "code"]
        cells += extra_cells or []
        session = await self.hub.api("POST", "/api/sessions", {
            "path": path, "type": "notebook", "name": path, "kernel": {"name": "python3"}}, base=self.base)
        kernel = session["kernel"]["id"]
        session_id = uuid.uuid4().hex
        url = f"{self.base}/api/kernels/{kernel}/channels?session_id={session_id}".replace("http://", "ws://")
        connection = await websocket_connect(
            HTTPRequest(url, headers={"Authorization": f"token {self.hub.token}"}), max_message_size=256 << 20)
        results = []
        try:
            for index, source in enumerate(cells):
                result = await _execute(connection, session_id, index, source)
                results.append(result)
                if on_cell is not None:
                    on_cell(result)
        finally:
            connection.close()
        return results


def _request(session_id: str, source: str) -> tuple[str, str]:
    msg_id = uuid.uuid4().hex
    message = {
        "header": {"msg_id": msg_id, "username": "classroom-test", "session": session_id,
                   "msg_type": "execute_request", "version": "5.3", "date": ""},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": source, "silent": False, "store_history": True, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True},
    }
    return msg_id, json.dumps(message)


def _decode(frame: str | bytes) -> dict[str, Any]:
    """A kernel message from the websocket: JSON text, or (with buffers) the binary framing."""
    if isinstance(frame, str):
        return dict(json.loads(frame))
    count = struct.unpack("!I", frame[:4])[0]
    offsets = struct.unpack(f"!{count}I", frame[4:4 + 4 * count])
    end = offsets[1] if count > 1 else len(frame)
    return dict(json.loads(frame[offsets[0]:end]))


async def _execute(connection: WebSocketClientConnection, session_id: str, index: int, source: str) -> CellResult:
    msg_id, request = _request(session_id, source)
    result = CellResult(index, source, time.monotonic(), 0.0)
    await connection.write_message(request)
    reply: dict[str, Any] | None = None
    idle = False
    while reply is None or not idle:
        frame = await asyncio.wait_for(connection.read_message(), CELL_TIMEOUT)
        if frame is None:
            raise CellError(f"cell {index}: the kernel's websocket closed\n{source}")
        message = _decode(frame)
        if message.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind = message["msg_type"]
        if kind == "execute_reply":
            reply = message["content"]
        elif kind == "status":
            idle = message["content"]["execution_state"] == "idle"
        elif kind in ("stream", "execute_result", "display_data", "error"):
            result.outputs.append(message)
    result.finished = time.monotonic()
    if reply["status"] != "ok":
        trace = "\n".join(reply.get("traceback", []))
        raise CellError(f"cell {index} failed: {reply.get('ename')}: {reply.get('evalue')}\n{source}\n{trace}")
    return result
