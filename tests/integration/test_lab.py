"""`workbench lab` starts a real JupyterLab that serves the lessons."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_lab_serves_the_lessons_and_stops_on_sigint() -> None:
    port = free_port()
    lab = subprocess.Popen(
        [sys.executable, "-m", "workbench.cli", "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         "--IdentityProvider.token=", "--ServerApp.password="],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        listing = None
        while time.monotonic() < deadline and lab.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents", timeout=2) as response:
                    listing = json.load(response)
                break
            except OSError:
                time.sleep(0.25)
        assert listing is not None, "JupyterLab did not answer within 60 s"
        names = {item["name"] for item in listing["content"]}
        assert "01-hello-unikernel.ipynb" in names, names
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab", timeout=10) as response:
            assert response.status == 200
    finally:
        lab.send_signal(signal.SIGINT)
        lab.send_signal(signal.SIGINT)  # JupyterLab asks for confirmation on the first one
        try:
            lab.wait(15)
        except subprocess.TimeoutExpired:
            lab.kill()
            lab.wait()
            pytest.fail("JupyterLab did not stop on Ctrl-C")
