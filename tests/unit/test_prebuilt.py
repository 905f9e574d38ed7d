"""The grader's builds of the skeleton (workbench.kernel.prebuilt): a workspace's first build that
starts from them makes exactly the image that building everything makes, and never an object
from bytes the workspace does not have."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from workbench.kernel.build import BuildError, build_image
from workbench.kernel.prebuilt import BUILD_OUTPUT, seed
from workbench.kernel.skeleton import skeleton_source

BUILD_DIR = "build/gcc"


@pytest.fixture(scope="module")
def prebuilt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tree as the grader makes it (one combination): the skeleton, built as a workspace is."""
    tree = tmp_path_factory.mktemp("prebuilt") / "tree"
    shutil.copytree(skeleton_source(), tree, ignore=shutil.ignore_patterns(BUILD_OUTPUT))
    build_image(tree)
    return tree


def copy_of_the_skeleton(directory: Path) -> Path:
    workspace = directory / "workspace"
    shutil.copytree(skeleton_source(), workspace, ignore=shutil.ignore_patterns(BUILD_OUTPUT))
    return workspace


def compiled(workspace: Path) -> int:
    """How many files make would compile now (a dry run)."""
    done = subprocess.run(["make", "-n", f"BUILD_DIR={BUILD_DIR}", "CC=gcc"], cwd=workspace, capture_output=True,
                          text=True, check=True)
    return sum(line.startswith("gcc ") and " -c " in line for line in done.stdout.splitlines())


def test_a_seeded_build_is_the_image_a_full_build_makes(prebuilt: Path, tmp_path: Path) -> None:
    full = build_image(copy_of_the_skeleton(tmp_path / "full"))
    workspace = copy_of_the_skeleton(tmp_path / "seeded")
    assert seed(workspace, BUILD_DIR, prebuilt) == len(list((prebuilt / BUILD_DIR).rglob("*.o")))
    assert compiled(workspace) == 0
    seeded = build_image(workspace)
    assert seeded.path.read_bytes() == full.path.read_bytes()
    assert (seeded.path.parent / "unikernel.debug").read_bytes() == (full.path.parent / "unikernel.debug").read_bytes()


def test_an_edited_file_is_compiled_from_the_workspace_and_later_edits_too(prebuilt: Path, tmp_path: Path) -> None:
    workspace = copy_of_the_skeleton(tmp_path)
    main = workspace / "app" / "main.c"
    main.write_text(main.read_text().replace("Hello from the unikernel!", "Hello, seeded!"))
    copied = seed(workspace, BUILD_DIR, prebuilt)
    assert copied == len(list((prebuilt / BUILD_DIR).rglob("*.o"))) - 1  # all but app/main.c's
    assert b"Hello, seeded!" in build_image(workspace).path.read_bytes()
    main.write_text(main.read_text().replace("Hello, seeded!", "Hello again!"))  # just after: newer still
    assert b"Hello again!" in build_image(workspace).path.read_bytes()
    header = workspace / "include" / "kernel.h"
    header.write_text(header.read_text() + "\n/* a change every file that includes it must see */\n")
    assert compiled(workspace) > 5


def test_a_header_that_differs_keeps_every_object_made_from_it_out(prebuilt: Path, tmp_path: Path) -> None:
    workspace = copy_of_the_skeleton(tmp_path)
    header = workspace / "include" / "x86.h"
    header.write_text(header.read_text() + "\n#define WORKBENCH_TEST_CHANGED 1\n")
    seed(workspace, BUILD_DIR, prebuilt)
    including = [path for path in (prebuilt / BUILD_DIR).rglob("*.d") if "include/x86.h" in path.read_text()]
    assert including
    for dependency_file in including:
        assert not (workspace / dependency_file.relative_to(prebuilt)).with_suffix(".o").exists()
    assert compiled(workspace) >= len([path for path in including if path.name != "kernel.ld.d"])


def test_a_deleted_source_file_is_not_linked(prebuilt: Path, tmp_path: Path) -> None:
    workspace = copy_of_the_skeleton(tmp_path)
    (workspace / "app" / "bench.c").unlink()  # app/main.c calls its bench(): the link must fail
    seed(workspace, BUILD_DIR, prebuilt)
    assert not (workspace / BUILD_DIR / "app" / "bench.c.o").exists()
    with pytest.raises(BuildError, match="undefined reference to `bench'"):
        build_image(workspace)


@pytest.mark.parametrize("change", ["recipe", "future", "built"])
def test_nothing_is_seeded_when_the_recipe_differs_a_time_lies_ahead_or_a_build_exists(
        prebuilt: Path, tmp_path: Path, change: str) -> None:
    workspace = copy_of_the_skeleton(tmp_path)
    if change == "recipe":
        makefile = workspace / "Makefile"
        makefile.write_text(makefile.read_text().replace("-O2", "-O1"))
    elif change == "future":
        ahead = (workspace / "README.md").stat().st_mtime_ns + 3600 * 10**9 * 24 * 365
        os.utime(workspace / "README.md", ns=(ahead, ahead))
    else:
        (workspace / BUILD_DIR).mkdir(parents=True)
    assert seed(workspace, BUILD_DIR, prebuilt) == 0
    assert not list((workspace / BUILD_DIR).rglob("*.o"))


def test_an_absolute_build_directory_or_a_missing_combination_is_left_alone(prebuilt: Path, tmp_path: Path) -> None:
    workspace = copy_of_the_skeleton(tmp_path)
    assert seed(workspace, str(tmp_path / "elsewhere"), prebuilt) == 0
    assert seed(workspace, "build/gcc-null-write", prebuilt) == 0  # this tree has only the default
    assert not (workspace / "build").exists() or not list((workspace / "build").rglob("*.o"))


def test_the_steps_into_long_mode_changed_keep_both_objects_that_include_them_out(tmp_path: Path) -> None:
    """kernel/enter_long_mode.h is included by kernel/boot.S and by kernel/smp/entry.S (as
    `../enter_long_mode.h`): a change to it must compile both again, and nothing else."""
    tree = copy_of_the_skeleton(tmp_path / "prebuilt")
    build_dir = str(build_image(tree, app="apps/smp").path.parent.relative_to(tree))
    workspace = copy_of_the_skeleton(tmp_path)
    steps = workspace / "kernel" / "enter_long_mode.h"
    steps.write_text(steps.read_text() + "\n/* a change both includers must see */\n")
    objects = len(list((tree / build_dir).rglob("*.o")))
    assert seed(workspace, build_dir, tree) == objects - 2
    for including in ("kernel/boot.S.o", "kernel/smp/entry.S.o"):
        assert (tree / build_dir / including).exists() and not (workspace / build_dir / including).exists()
