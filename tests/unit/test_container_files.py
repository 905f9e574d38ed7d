"""The files that build images agree: Binder's .binder/Dockerfile is the Containerfile's class image
without `RUN --mount` (scripts/binder-dockerfile makes it), and the image's JupyterHub has the
major version of the hub that the named Zero to JupyterHub chart runs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "binder-dockerfile"


def check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(root / "scripts" / "binder-dockerfile"), "--check"],
                          capture_output=True, text=True, timeout=60, check=False)


def test_binder_builds_from_a_real_file_that_matches_the_containerfile() -> None:
    binder = ROOT / ".binder" / "Dockerfile"
    assert binder.is_file() and not binder.is_symlink(), "BuildKit cannot follow a symlink out of .binder/"
    mount = re.compile(r"^RUN --mount", re.M)
    assert mount.search((ROOT / "Containerfile").read_text()), "the check below would prove nothing"
    assert not mount.search(binder.read_text()), "repo2docker's builder has no RUN --mount"
    done = check(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_containerfile_change_not_carried_to_binder_is_caught(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    shutil.copy(SCRIPT, tmp_path / "scripts")
    shutil.copytree(ROOT / ".binder", tmp_path / ".binder")
    containerfile = (ROOT / "Containerfile").read_text()
    (tmp_path / "Containerfile").write_text(containerfile.replace("busybox-static", "busybox-static strace"))
    done = check(tmp_path)
    assert done.returncode == 1
    assert "+        busybox-static strace" in done.stdout
    assert "out of date: run scripts/binder-dockerfile" in done.stderr


def test_the_images_jupyterhub_is_the_major_version_of_the_charts_hub() -> None:
    image = re.search(r"^ARG JUPYTERHUB_VERSION=(\d+)\.\d+\.\d+$", (ROOT / "Containerfile").read_text(), re.M)
    schema_readme = (ROOT / "deploy" / "schema" / "README.md").read_text()
    chart = re.search(r"chart (\d+\.\d+\.\d+)", schema_readme)
    hub = re.search(r"runs JupyterHub (\d+)\.\d+\.\d+", schema_readme)
    assert image and chart and hub
    assert image[1] == hub[1], f"the image runs JupyterHub {image[1]}.x, chart {chart[1]}'s hub {hub[1]}.x"
    assert f"chart {chart[1]}" in (ROOT / "deploy" / "values.yaml").read_text(), "values.yaml names another chart"
