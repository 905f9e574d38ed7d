"""The grading sandbox of workbench.classroom.sandbox, attacked from inside as a submission would: each
probe runs in the same sandbox a graded kernel gets (the same command line, a probe instead of
the kernel), under the same cgroup and rlimits."""

from __future__ import annotations

import concurrent.futures
import json
import os
import resource
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.support.grading_course import REPOSITORY, host_socket_path, secrets_of_the_course
from workbench import resources
from workbench.classroom import sandbox
from workbench.kernel.prebuilt import PREBUILT_PATH


@pytest.fixture
def course(tmp_path: Path) -> Path:
    course = tmp_path / "course"
    (course / "autograded" / "alice" / "02-single-address-space").mkdir(parents=True)
    (course / "autograded" / "bob").mkdir()
    (course / "gradebook.db").write_text("grades")
    released = course / "release" / "02-single-address-space"
    released.mkdir(parents=True)
    (released / "02-single-address-space.ipynb").write_text('{"cells": []}')
    return course


def sandboxed(course: Path, probe: str, *, connection: dict[str, str] | None = None, student: str = "alice",
              prebuilt: Path | None = None, grader_tasks: int | None = None) -> subprocess.CompletedProcess[str]:
    """Run `probe` (Python) as alice's graded kernel would run; `grader_tasks`, a hard task limit
    the grader itself runs under."""
    submission = course / "autograded" / student / "02-single-address-space"
    submission.mkdir(parents=True, exist_ok=True)
    connection_file = course.parent / "kernel.json"
    connection_file.write_text(json.dumps(connection or {}))
    (submission / "probe.py").write_text(textwrap.dedent(probe))
    facts = sandbox.facts_descriptor(student)
    try:
        argv = sandbox.sandbox_argv(connection_file, submission, course=course, seconds=60, facts=facts,
                                    prebuilt=prebuilt)
        command = [*argv[:argv.index("ipykernel_launcher") - 2], sys.executable, "probe.py"]  # the kernel's place
        launcher = ("import sys; from workbench.classroom import sandbox; "
                    "sys.exit(sandbox.run_sandboxed(sys.argv[2:], pass_fds=(int(sys.argv[1]),)))")
        def limit() -> None:
            if grader_tasks is not None:
                resource.setrlimit(resource.RLIMIT_NPROC, (grader_tasks, grader_tasks))

        return subprocess.run([sys.executable, "-c", launcher, str(facts), *command], capture_output=True,
                              text=True, timeout=120, check=False, cwd=submission, pass_fds=(facts,),
                              preexec_fn=limit)
    finally:
        os.close(facts)


def test_the_student_comes_from_nbgraders_autograded_directory(tmp_path: Path) -> None:
    assert sandbox.student_of(tmp_path / "course" / "autograded" / "alice" / "03-page-tables") == "alice"
    assert sandbox.student_of(tmp_path / "course" / "source" / "03-page-tables") is None


def test_the_course_is_hidden_and_only_the_submission_is_writable(course: Path) -> None:
    done = sandboxed(course, f"""
        import os, pathlib
        c = pathlib.Path({str(course)!r})
        print(sorted(os.listdir(c)), os.listdir(c / 'autograded'), os.getpid(), open('mine', 'w').write('x'))
        try:
            open('/etc/hostname', 'a').write('x')
        except OSError:  # read-only file system, or no permission: either way refused
            print('refused')
        """)
    assert done.stdout.split() == ["['autograded']", "['alice']", "2", "1", "refused"]
    assert (course / "autograded" / "alice" / "02-single-address-space" / "mine").read_text() == "x"
    assert (course / "gradebook.db").read_text() == "grades"


@pytest.mark.slow(32)
def test_no_solution_and_no_hidden_test_is_visible_to_a_submission(course: Path) -> None:
    secrets = secrets_of_the_course()
    assert len(secrets) > 20
    roots = sorted({str(REPOSITORY), str(resources.lessons()), str(resources.kernel_source()), sys.prefix,
                    "/home", "/root", "/tmp", "/srv", "/opt", "/var/tmp", "/run",  # noqa: S108 - looked into
                    str(resources.cache_dir()), str(PREBUILT_PATH),
                    str(course)})
    prebuilt = sandbox.prepare_grading(course)  # the grader's builds of the skeleton: no solution either
    assert prebuilt is not None
    done = sandboxed(course, f"""
        import os, json
        from workbench import Workspace
        secrets, seen, leaks = {sorted(secrets)!r}, 0, []
        for root in {roots!r}:
            for top, directories, files in os.walk(root):
                directories[:] = [d for d in directories if d not in ("site-packages", "dist-packages", "node_modules")]
                for name in files:
                    path = os.path.join(top, name)
                    if path.startswith(os.getcwd()):  # the submission's own files: this probe
                        continue
                    try:
                        if os.path.getsize(path) < 4 << 20:
                            text = open(path, errors="replace").read()
                            seen += 1
                            leaks += [(path, secret) for secret in secrets if secret in text]
                    except OSError:
                        pass
        try:
            Workspace.open("mine").solve("call-vaddr")
            solved = "solved"
        except Exception as error:
            solved = str(error)
        print(json.dumps({{"seen": seen, "leaks": leaks, "solved": solved,
                          "lessons": sorted(os.listdir({str(resources.lessons())!r})),
                          "prebuilt": sorted(os.listdir({str(PREBUILT_PATH / "build")!r}))}}))
        """, prebuilt=prebuilt)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["seen"] > 100 and not result["leaks"], result["leaks"][:5]
    assert result["lessons"] == ["02-single-address-space.ipynb"]  # the released edition only
    assert "not available while a submission is graded" in result["solved"]
    assert "gcc" in result["prebuilt"]  # walked, and nothing in it leaked


def test_who_the_student_is_and_the_machine_cap_come_from_outside(course: Path) -> None:
    done = sandboxed(course, f"""
        import os
        os.environ["WORKBENCH_STUDENT"] = "bob"
        os.environ["WORKBENCH_MAX_MACHINES"] = "99"
        from workbench.classroom import variant
        from workbench.guest.machine import max_machines
        try:
            open({sandbox.FACTS_INSIDE!r}, "w").write('{{"student": "bob", "max_machines": 99}}')
            wrote = "wrote"
        except OSError as error:
            wrote = type(error).__name__
        print(variant.seed(), max_machines(), wrote)
        """)
    assert done.stdout.split() == ["alice", str(sandbox.GRADER_MACHINES), "OSError"]


def test_the_graders_builds_are_there_to_read_and_no_submission_can_change_them(course: Path,
                                                                                tmp_path: Path) -> None:
    tree = tmp_path / "prebuilt"
    (tree / "build" / "gcc").mkdir(parents=True)
    (tree / "build" / "gcc" / "main.c.o").write_bytes(b"the skeleton's object")
    done = sandboxed(course, """
        import os
        from workbench.kernel.prebuilt import PREBUILT_PATH
        built = PREBUILT_PATH / "build" / "gcc"
        print(repr((built / "main.c.o").read_bytes()))
        for name, attempt in [("overwrite", lambda: (built / "main.c.o").write_bytes(b"poisoned")),
                              ("add", lambda: (built / "other.c.o").write_bytes(b"poisoned")),
                              ("remove", lambda: (built / "main.c.o").unlink()),
                              ("rename", lambda: os.rename(built, built.with_name("moved"))),
                              ("chmod", lambda: os.chmod(built / "main.c.o", 0o666))]:
            try:
                attempt()
                print(name, "done")
            except OSError as error:
                print(name, type(error).__name__)
        """, prebuilt=tree)
    lines = done.stdout.splitlines()
    assert lines[0] == "b\"the skeleton's object\"" and len(lines) == 6 and "done" not in done.stdout, done.stdout
    assert sorted(path.name for path in (tree / "build" / "gcc").iterdir()) == ["main.c.o"]
    assert (tree / "build" / "gcc" / "main.c.o").read_bytes() == b"the skeleton's object"


def test_no_host_socket_and_no_network_when_the_kernel_is_on_unix_sockets(course: Path,
                                                                          tmp_path: Path) -> None:
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    host_socket = host_socket_path(tmp_path.name)
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(str(host_socket))
    unix.listen()
    unix.setblocking(False)
    try:
        done = sandboxed(course, f"""
            import socket
            open({str(runtime / 'kernel-1-ipc-5')!r}, 'w').write('socket')
            port = {listener.getsockname()[1]}
            for name, attempt in [("tcp", lambda: socket.create_connection(('127.0.0.1', port), 2)),
                                  ("unix", lambda: socket.socket(socket.AF_UNIX).connect({str(host_socket)!r}))]:
                try:
                    attempt()
                    print(name, "connected")
                except OSError as error:
                    print(name, type(error).__name__)
            """, connection={"transport": "ipc", "ip": str(runtime / "kernel")})
        assert "connected" not in done.stdout and done.stdout.count("Error") == 2, done.stdout
        assert (runtime / "kernel-1-ipc-5").read_text() == "socket"
        for server in (listener, unix):
            with pytest.raises(BlockingIOError):
                server.accept()
    finally:
        listener.close()
        unix.close()
        host_socket.unlink()


def test_processes_and_temporary_files_are_bounded(course: Path) -> None:
    done = sandboxed(course, """
        import os, time
        started = 0
        for _ in range(2000):
            try:
                if os.fork() == 0:
                    time.sleep(30)
                    os._exit(0)
                started += 1
            except OSError:
                break
        written = {}
        for where in ("/tmp", "/dev/shm"):
            written[where] = 0
            try:
                with open(os.path.join(where, "big"), "wb") as file:
                    for _ in range(10 << 10):  # 10 GiB in 1 MiB writes
                        file.write(bytes(1 << 20))
                        written[where] += 1
            except OSError:
                pass
        print(started, written["/tmp"], written["/dev/shm"])
        """)
    started, tmp, shm = map(int, done.stdout.split())
    assert started < 1000, done.stdout  # 2,000 were asked for
    assert tmp <= sandbox.TMPFS_BYTES >> 20 and shm <= sandbox.TMPFS_BYTES >> 20


def test_the_task_cap_is_set_inside_and_never_above_the_graders_own(course: Path) -> None:
    probe = "import resource; print(*resource.getrlimit(resource.RLIMIT_NPROC))"
    assert sandboxed(course, probe).stdout.split() == [str(sandbox.sandbox_limits.MAX_TASKS)] * 2
    raised = sandboxed(course, """
        import resource
        try:
            resource.setrlimit(resource.RLIMIT_NPROC, (100000, 100000))  # a submission raising its own cap
            print("raised")
        except (ValueError, OSError):
            print("refused")
        print(*resource.getrlimit(resource.RLIMIT_NPROC))
        """)
    assert raised.stdout.split() == ["refused", *[str(sandbox.sandbox_limits.MAX_TASKS)] * 2], raised.stderr
    lower = sandboxed(course, probe, grader_tasks=300)
    assert lower.stdout.split() == ["300", "300"], lower.stderr


def test_the_task_budget_is_the_submissions_whatever_else_the_grader_runs(course: Path) -> None:
    """Tasks the grader's user starts elsewhere while a submission runs (a browser, another
    grading) do not come out of the submission's budget. CI once lost a correct submission's
    points so: RLIMIT_NPROC, set outside the sandbox's user namespace, counted every task of the
    user. (Root has no such limit: its cap is a cgroup's, which counts only the submission.)"""
    submission = course / "autograded" / "alice" / "02-single-address-space"
    elsewhere = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import sys, threading
        sys.stdin.readline()  # go
        stop = threading.Event()
        for _ in range(600):
            threading.Thread(target=stop.wait, daemon=True).start()
        print("started", flush=True)
        sys.stdin.readline()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            done = pool.submit(sandboxed, course, """
                import os, threading, time
                threading.stack_size(256 << 10)  # 400 threads of 8 MiB would pass RLIMIT_AS first
                stop = threading.Event()
                def start(count):
                    started = 0
                    for _ in range(count):
                        try:
                            threading.Thread(target=stop.wait, daemon=True).start()
                            started += 1
                        except RuntimeError:
                            break
                    return started
                first = start(100)
                open("ready", "w").close()
                while not os.path.exists("go"):
                    time.sleep(0.01)
                print(first, start(300))
                """)
            while not (submission / "ready").exists() and not done.done():
                time.sleep(0.01)
            elsewhere.stdin.write("go\n")  # type: ignore[union-attr]
            elsewhere.stdin.flush()  # type: ignore[union-attr]
            assert elsewhere.stdout.readline() == "started\n"  # type: ignore[union-attr]
            (submission / "go").touch()
            result = done.result()
    finally:
        elsewhere.kill()
        elsewhere.wait()
    assert result.stdout.split() == ["100", "300"], result.stdout + result.stderr


@pytest.mark.slow(14)
def test_a_submission_graded_beside_a_cpu_hog_keeps_its_share(course: Path) -> None:
    """verify-grades --jobs N grades submissions side by side: one that spins 100 processes must
    not starve its neighbour toward the per-cell timeout. Each sandbox is a session of its own
    (bwrap --new-session), and the kernel's autogroup shares the CPU between sessions, not
    between processes (without it the neighbour got about 2 % here)."""
    work = """
        import time
        start, count = time.monotonic(), 0
        while time.monotonic() - start < 2:
            for _ in range(10000):
                count += 1
        print(count)
        """
    hog = """
        import os, time
        for _ in range(100):
            if os.fork() == 0:
                end = time.monotonic() + 8
                while time.monotonic() < end:
                    pass
                os._exit(0)
        open("spinning", "w").close()
        time.sleep(8)
        """
    alone = int(sandboxed(course, work).stdout)
    spinning = course / "autograded" / "mallory" / "02-single-address-space" / "spinning"
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        hogging = pool.submit(sandboxed, course, hog, student="mallory")
        while not spinning.exists() and not hogging.done():
            time.sleep(0.01)
        beside = int(sandboxed(course, work).stdout)
        assert not hogging.result().stderr
    assert beside > alone / 4, f"{beside:,} steps beside the hog, {alone:,} alone"


def test_a_machine_that_refuses_user_namespaces_stops_the_grader_with_one_line(tmp_path: Path) -> None:
    """As on a distribution that turns unprivileged user namespaces off: here, a user namespace of
    the test's own whose limit on further user namespaces is 0."""
    script = (f"echo 0 > /proc/sys/user/max_user_namespaces && cd {tmp_path} && "
              f"{sys.executable} -m workbench.classroom.sandbox {tmp_path / 'kernel.json'}")
    done = subprocess.run(["unshare", "--user", "--map-root-user", "sh", "-c", script],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "refuses the grading sandbox's user namespace" in lines[0], done.stderr
    assert "user.max_user_namespaces" in lines[0] and "Traceback" not in done.stderr


def test_each_submission_gets_a_cgroup_that_is_removed_afterwards(course: Path) -> None:
    before = _workbench_cgroups()
    done = sandboxed(course, "print('ran')")
    assert done.stdout == "ran\n"
    assert _workbench_cgroups() == before


def _workbench_cgroups() -> list[Path]:
    return sorted(Path("/sys/fs/cgroup").glob(f"**/{sandbox.sandbox_limits.PREFIX}*"))



def test_no_file_handed_in_stands_in_for_a_module_of_the_grader(course: Path) -> None:
    """nbgrader starts the grader's kernel (course/jupyter/kernels/workbench-grader) in the
    submission's directory, outside any sandbox, and the sandbox's runner starts there too: a
    `json.py` handed in must not stand in for the standard library's, or it would run as the
    grader. (`python -m` puts the directory it starts in first on sys.path; `-P` does not.)"""
    submission = course / "autograded" / "alice" / "02-single-address-space"
    (submission / "json.py").write_text("raise SystemExit('the json.py of the submission ran')\n")
    argv = json.loads((REPOSITORY / "course/jupyter/kernels/workbench-grader/kernel.json").read_text())["argv"]
    command = [sys.executable if word == "python" else word for word in argv[:-1]]  # as nbgrader, but:
    done = subprocess.run([*command, "--checks"], input=json.dumps({"cells": [[0, "print(6 * 7)"]], "seconds": 30}),
                          capture_output=True, text=True, timeout=120, check=False, cwd=submission,
                          env={**os.environ, "WORKBENCH_COURSE": str(course)})
    replies = [json.loads(line) for line in done.stdout.splitlines() if line.startswith('{"index"')]
    assert replies == [{"index": 0, "outputs": [{"output_type": "stream", "name": "stdout", "text": "42\n"}]}], \
        done.stdout + done.stderr
