"""`workbench lab` as a person starts it: a real JupyterLab on a free port, stopped with Ctrl-C."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serve_lab(command: list[str], *, env: dict[str, str] | None = None,
              timeout: float = 90.0) -> Iterator[set[str]]:
    """Run `command` (a `workbench lab ...`) until JupyterLab answers; yield the names it serves.

    On leaving, Ctrl-C twice (JupyterLab asks for confirmation on the first) must stop it.
    """
    port = free_port()
    lab = subprocess.Popen(
        [*command, "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         "--IdentityProvider.token=", "--ServerApp.password="],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )
    try:
        deadline = time.monotonic() + timeout
        listing = None
        while time.monotonic() < deadline and lab.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents", timeout=2) as response:
                    listing = json.load(response)
                break
            except OSError:
                time.sleep(0.25)
        if listing is None:
            lab.kill()
            output = lab.communicate()[0]
            pytest.fail(f"JupyterLab did not answer within {timeout:g} s; it said:\n{output[-3000:]}")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab", timeout=10) as response:
            assert response.status == 200
        yield {item["name"] for item in listing["content"]}
    finally:
        lab.send_signal(signal.SIGINT)
        lab.send_signal(signal.SIGINT)
        try:
            lab.wait(15)
        except subprocess.TimeoutExpired:
            lab.kill()
            lab.wait()
            pytest.fail("JupyterLab did not stop on Ctrl-C")
