"""The sandbox command of workbench.grading: what a submission's kernel sees and may write."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.grading import sandbox_argv, student_of


def test_the_student_comes_from_nbgraders_autograded_directory(tmp_path: Path) -> None:
    assert student_of(tmp_path / "course" / "autograded" / "alice" / "03-page-tables") == "alice"
    assert student_of(tmp_path / "course" / "source" / "03-page-tables") is None


def test_the_course_is_hidden_and_only_the_submission_is_writable(tmp_path: Path) -> None:
    course = tmp_path / "course"
    submission = course / "autograded" / "alice" / "03-page-tables"
    submission.mkdir(parents=True)
    (course / "gradebook.db").write_text("grades")
    (course / "autograded" / "bob").mkdir()
    connection = tmp_path / "kernel.json"
    connection.write_text("{}")
    argv = sandbox_argv(connection, submission, course=course, seconds=30)
    assert argv[:3] == ["timeout", "--signal=KILL", "30"]
    assert ["--tmpfs", str(course)] == argv[argv.index(str(course)) - 1:argv.index(str(course)) + 1]
    assert ["--bind", str(submission), str(submission)] == argv[argv.index("--bind"):argv.index("--bind") + 3]
    assert ["--setenv", "WORKBENCH_STUDENT", "alice"] == argv[argv.index("WORKBENCH_STUDENT") - 1:
                                                               argv.index("WORKBENCH_STUDENT") + 2]
    # The same sandbox, running a probe instead of a kernel.
    probe = (f"import os, pathlib; c = pathlib.Path({str(course)!r}); print(sorted(os.listdir(c)),"
             " os.listdir(c / 'autograded'), os.getpid(), open('mine', 'w').write('x'),"
             f" os.path.exists({str(connection)!r}))")
    command = [*argv[:argv.index(sys.executable)], sys.executable, "-c", probe]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=True)
    assert done.stdout.split() == ["['autograded']", "['alice']", "2", "1", "True"]
    assert (submission / "mine").read_text() == "x"
    assert (course / "gradebook.db").read_text() == "grades"


def test_a_kernel_on_unix_sockets_gets_its_runtime_directory_and_no_network(tmp_path: Path) -> None:
    submission = tmp_path / "course" / "autograded" / "alice" / "03-page-tables"
    submission.mkdir(parents=True)
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    connection = runtime / "kernel-1.json"
    connection.write_text(json.dumps({"transport": "ipc", "ip": str(runtime / "kernel")}))
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    argv = sandbox_argv(connection, submission, course=tmp_path / "course", seconds=30)
    assert "--unshare-net" in argv
    probe = (f"import socket; open({str(runtime / 'kernel-1-ipc-5')!r}, 'w').write('socket')\n"
             "try:\n"
             f"    socket.create_connection(('127.0.0.1', {listener.getsockname()[1]}), 2); print('connected')\n"
             "except OSError as error:\n"
             "    print(type(error).__name__)")
    command = [*argv[:argv.index(sys.executable)], sys.executable, "-c", probe]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=True)
    assert done.stdout.strip() in ("ConnectionRefusedError", "OSError")
    assert (runtime / "kernel-1-ipc-5").read_text() == "socket"
    with pytest.raises(BlockingIOError):
        listener.accept()
    listener.close()
    # A kernel on TCP (nbgrader's default) needs localhost: it keeps the network.
    connection.write_text(json.dumps({"transport": "tcp"}))
    assert "--unshare-net" not in sandbox_argv(connection, submission, course=tmp_path / "course", seconds=30)
