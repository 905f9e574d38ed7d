"""On a machine that refuses unprivileged user namespaces (so the grading sandbox cannot run),
`nbgrader autograde` and `workbench doctor` each say so in one line. Here and not in tests/unit
(with the sandbox's own tests) because `workbench doctor` also asks QEMU for its version."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.grading_course import REPOSITORY


def test_autograde_and_doctor_say_so_too_on_such_a_machine(tmp_path: Path) -> None:
    course = tmp_path / "course"
    course.mkdir()
    shutil.copy(REPOSITORY / "course" / "nbgrader_config.py", course / "nbgrader_config.py")
    script = ("echo 0 > /proc/sys/user/max_user_namespaces && "
              f"{sys.executable} -m nbgrader autograde 02-single-address-space; echo status=$?; "
              f"{sys.executable} -m workbench.cli doctor")
    done = subprocess.run(["unshare", "--user", "--map-root-user", "sh", "-c", script], cwd=course,
                          capture_output=True, text=True, timeout=120, check=False)
    assert "status=1" in done.stdout and "Traceback" not in done.stderr, done.stderr[-2000:]
    said = [line for line in done.stderr.splitlines() if "refuses the grading sandbox" in line]
    assert len(said) == 1 and said[0].startswith("nbgrader autograde: this machine refuses"), done.stderr[-2000:]
    assert "MISSING  grading sandbox: autograding cannot run here" in done.stdout
