"""Workspaces: copies of kernel-src that refuse to be escaped and never lose a change."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from workbench.errors import WorkbenchError
from workbench.kernel.skeleton import parse
from workbench.kernel.workspace import PathOutsideWorkspace, TextNotFound, Workspace
from workbench.resources import kernel_source


def test_a_new_workspace_is_kernel_src_without_the_solutions(workspace: Workspace) -> None:
    assert "Makefile" in workspace.files()
    assert "app/main.c" in workspace.files()
    solution_lines = [line for line in (kernel_source() / "app/main.c").read_text().splitlines(keepends=True)]
    assert workspace.read("app/main.c") == parse("".join(solution_lines))[0]
    assert "SOLUTION" not in workspace.read("app/main.c") and "EXERCISE(02)" in workspace.read("app/main.c")
    assert not workspace.diff()
    assert str(workspace.diff()) == "(no changes)"


@pytest.mark.parametrize("escape", ["../outside.c", "/etc/passwd", "app/../../x", "app/../../../etc/hostname"])
def test_paths_that_leave_the_workspace_are_refused(workspace: Workspace, escape: str) -> None:
    with pytest.raises(PathOutsideWorkspace, match="outside the workspace"):
        workspace.read(escape)
    with pytest.raises(PathOutsideWorkspace):
        workspace.write(escape, "x")


def test_a_symlink_that_points_out_is_refused(workspace: Workspace, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours")
    os.symlink(secret, workspace.root / "app" / "link.c")
    with pytest.raises(PathOutsideWorkspace):
        workspace.read("app/link.c")


def test_replace_changes_exactly_one_occurrence_and_shows_it(workspace: Workspace) -> None:
    view = workspace.replace("app/main.c", "Hello from the unikernel!", "Hello, class!")
    assert "Hello, class!" in workspace.read("app/main.c")
    assert any("Hello, class!" in line for line in view.lines)
    assert view.marked  # the changed line is highlighted
    diff = str(workspace.diff())
    assert "-" in diff and "+" in diff and "Hello, class!" in diff and "b/app/main.c" in diff


def test_replace_refuses_missing_or_ambiguous_text(workspace: Workspace) -> None:
    before = workspace.read("app/main.c")
    with pytest.raises(TextNotFound, match="does not appear"):
        workspace.replace("app/main.c", "no such text anywhere", "x")
    with pytest.raises(TextNotFound, match=r"appears \d+ times"):
        workspace.replace("app/main.c", "(", "[")
    assert workspace.read("app/main.c") == before


def test_reset_restores_the_source_and_saves_the_changes(workspace: Workspace) -> None:
    workspace.replace("app/main.c", "Hello from the unikernel!", "Edited")
    workspace.write("app/extra.c", "int extra;\n")
    saved = workspace.reset()
    assert saved is not None and saved.is_file()
    assert "Edited" in saved.read_text() and "extra.c" in saved.read_text()
    assert not workspace.diff()
    assert "app/extra.c" not in workspace.files()
    assert workspace.reset() is None  # nothing left to save


def test_reset_of_one_file_leaves_the_others(workspace: Workspace) -> None:
    workspace.replace("app/main.c", "Hello from the unikernel!", "Edited")
    workspace.write("kernel/new.h", "#pragma once\n")
    workspace.reset("app/main.c")
    assert workspace.changed_files() == ["kernel/new.h"]


def test_open_fresh_keeps_earlier_work_as_a_patch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = Workspace.open("lesson", parent=tmp_path)
    first.replace("app/main.c", "Hello from the unikernel!", "Mine")
    again = Workspace.open("lesson", parent=tmp_path)
    assert "Mine" in again.read("app/main.c")  # reopening keeps the edits
    fresh = Workspace.open("lesson", parent=tmp_path, fresh=True)
    assert "Mine" not in fresh.read("app/main.c")
    assert "were saved in" in capsys.readouterr().out
    assert any("Mine" in p.read_text() for p in (tmp_path / ".saved-changes").iterdir())


def test_show_one_function_with_its_comment(workspace: Workspace) -> None:
    view = workspace.show("app/main.c", function="app_main")
    text = str(view)
    assert "app_main" in text and text.rstrip().endswith("}")
    assert "<span" in view._repr_html_()  # pygments highlighting, inline styles
    with pytest.raises(WorkbenchError, match="no definition"):
        workspace.show("app/main.c", function="no_such_function")


def test_exercise_markers_are_found(workspace: Workspace) -> None:
    places = workspace.find("EXERCISE(01)")
    assert ("app/main.c", places[-1][1], places[-1][2]) in places
    assert all("EXERCISE(01)" in line for _, _, line in places)
    assert "EXERCISE(01)" in workspace.read("app/README.md")  # named there, but not a place to edit
    assert not [path for path, _, _ in places if path.endswith(".md")]


def test_workspace_names_are_checked(tmp_path: Path) -> None:
    with pytest.raises(WorkbenchError, match="workspace name"):
        Workspace.open("../escape", parent=tmp_path)


def test_the_parent_directory_may_be_text_and_is_checked(tmp_path: Path) -> None:
    assert Workspace.open("lesson", parent=str(tmp_path)).root == tmp_path / "lesson"
    for bad in (42, "", "  "):
        with pytest.raises(WorkbenchError, match="directory of the workspaces"):
            Workspace.open("lesson", parent=bad)  # type: ignore[arg-type]
