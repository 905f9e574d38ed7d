"""Building the real unikernel with both toolchains: sections, size, reproducibility, errors."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from workbench.build import BuildError
from workbench.image import Image
from workbench.workspace import Workspace

MAX_IMAGE_BYTES = 64 * 1024


def test_the_image_is_small_and_each_section_has_its_permissions(image: Image) -> None:
    assert image.size < MAX_IMAGE_BYTES, f"the image grew to {image.size} bytes"
    permissions = {s.name: s.permissions for s in image.sections}
    assert permissions[".text"] == "r-x"
    assert permissions[".rodata"] == "r--"
    assert permissions[".data"] == "rw-"
    assert permissions[".bss"] == "rw-"
    for name in ("kernel_main", "app_main", "timer_ticks"):
        assert image.symbol(name).vaddr >= 0xFFFFFFFF80000000, name
    assert image.symbolize(image.symbol("app_main").vaddr + 1) == "app_main+0x1"


@pytest.mark.parametrize("toolchain", ["gcc", "clang"])
def test_two_clean_builds_give_identical_bytes(tmp_path: Path, toolchain: str) -> None:
    first = Workspace.open("first", parent=tmp_path).build(toolchain=toolchain)
    second = Workspace.open("second-with-a-longer-path", parent=tmp_path).build(toolchain=toolchain)
    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.size < MAX_IMAGE_BYTES


def test_an_edit_rebuilds_only_what_depends_on_it(workspace: Workspace) -> None:
    workspace.build()
    objects = {p: p.stat().st_mtime_ns for p in (workspace.root / "build/gcc").rglob("*.o")}
    workspace.replace("app/main.c", "Hello from the unikernel!", "Hello again!")
    workspace.build()
    rebuilt = sorted(str(p.relative_to(workspace.root)) for p, t in objects.items() if p.stat().st_mtime_ns != t)
    assert any("/app/main." in name for name in rebuilt), rebuilt
    assert not any("/kernel/" in name for name in rebuilt), rebuilt


def test_a_compile_error_names_the_line_and_shows_the_source(workspace: Workspace) -> None:
    text = workspace.read("app/main.c")
    line = 1 + text[: text.index("Hello from the unikernel!")].count("\n")
    workspace.replace("app/main.c", "Hello from the unikernel!\\n\");", "Hello from the unikernel!\\n\")")
    with pytest.raises(BuildError) as caught:
        workspace.build()
    error = caught.value
    assert error.errors, error.output
    first = error.errors[0]
    assert first.path == "app/main.c"
    assert line <= first.line <= line + 2
    rendered = str(error)
    assert "app/main.c" in rendered and "Hello from the unikernel!" in rendered
    assert "<span" in error._repr_html_()


def test_a_link_error_is_reported_in_words(workspace: Workspace) -> None:
    workspace.replace("app/main.c", "void app_main(void)\n{",
                      "void no_such_kernel_service(void);\nvoid app_main(void)\n{\n    no_such_kernel_service();")
    with pytest.raises(BuildError, match="no_such_kernel_service"):
        workspace.build()


def test_switching_scenario_in_one_build_directory_rebuilds(workspace: Workspace) -> None:
    def make(scenario: str) -> bytes:
        subprocess.run(["make", "-s", "BUILD_DIR=build/plain", f"SCENARIO={scenario}"], cwd=workspace.root,
                       check=True, capture_output=True)
        return (workspace.root / "build/plain/unikernel.elf").read_bytes()

    plain = make("none")
    faulty = make("invalid-opcode")
    assert plain != faulty
    assert make("none") == plain


def test_an_unknown_scenario_is_refused_by_the_makefile_in_words(workspace: Workspace) -> None:
    with pytest.raises(BuildError, match="SCENARIO must be one of: none null-write"):
        workspace.build(scenario="no-such-fault")
