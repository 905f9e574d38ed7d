"""Skeletons from solutions: kernel-src holds the code exercises ask for between markers; the
students' source is kernel-src without it, and `solve` puts it back exactly."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from workbench.kernel.skeleton import SkeletonError, parse, skeleton_source, solutions
from workbench.kernel.workspace import Workspace
from workbench.resources import kernel_source

SOLUTIONS = ("uptime-command", "call-vaddr", "heap-execute", "uptime-service")
MARKER = re.compile(r"^.*SOLUTION\(.*\n", re.MULTILINE)


def test_a_block_goes_markers_and_all_and_the_exercise_comment_stays() -> None:
    text = ("int a;\n/* EXERCISE(09): write b. */\n/* BEGIN SOLUTION(b) */\nint b;\n"
            "/* END SOLUTION(b) */\nint c;\n")
    kept, blocks = parse(text, "x.c")
    assert kept == "int a;\n/* EXERCISE(09): write b. */\nint c;\n"
    assert [(block.name, block.code, block.anchor[-1]) for block in blocks] == [
        ("b", "int b;\n", "/* EXERCISE(09): write b. */")]


@pytest.mark.parametrize("broken", [
    "/* BEGIN SOLUTION(a) */\nx\n",
    "x\n/* END SOLUTION(a) */\n",
    "/* BEGIN SOLUTION(a) */\n/* BEGIN SOLUTION(b) */\n/* END SOLUTION(b) */\n/* END SOLUTION(a) */\n",
    "/* BEGIN SOLUTION(a) */\n/* END SOLUTION(b) */\n",
])
def test_markers_that_do_not_pair_up_are_refused(broken: str) -> None:
    with pytest.raises(SkeletonError, match="SOLUTION"):
        parse(broken, "x.c")


def test_the_skeleton_has_every_exercise_marker_and_no_solution() -> None:
    skeleton = skeleton_source()
    for path in sorted(kernel_source().rglob("*.[chS]")):
        relative = path.relative_to(kernel_source())
        ours = (skeleton / relative).read_text()
        assert "SOLUTION" not in ours
        assert re.findall(r"EXERCISE\(\d+\)", ours) == re.findall(r"EXERCISE\(\d+\)", path.read_text())
    assert "command_uptime" not in (skeleton / "app/main.c").read_text()
    assert skeleton_source() == skeleton  # made once per content


@pytest.mark.parametrize("name", SOLUTIONS)
def test_every_solution_exists(name: str) -> None:
    assert solutions(name)
    with pytest.raises(SkeletonError, match="no solution called"):
        solutions("no-such-exercise")


def test_solving_every_exercise_gives_back_kernel_src(workspace: Workspace) -> None:
    for name in SOLUTIONS:
        workspace.solve(name)
    again = str(workspace.solve(SOLUTIONS[0]))  # a solution already there is left alone
    assert again == str(workspace.diff())
    for relative in workspace.changed_files():
        expected = MARKER.sub("", (kernel_source() / relative).read_text())
        ours = workspace.read(relative)
        # Blocks that share one place come back in another order; the lines are the same.
        assert sorted(ours.splitlines()) == sorted(expected.splitlines()), relative


def test_a_solution_whose_place_is_gone_is_refused_with_the_line(workspace: Workspace) -> None:
    workspace.replace("kernel/scenario.c", '    {"stack-overflow", provoke_stack_overflow},\n', "")
    with pytest.raises(SkeletonError, match="stack-overflow"):
        workspace.solve("heap-execute")


def test_the_skeleton_follows_kernel_src(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "Makefile").write_text("all:\n")
    (source / "a.c").write_text("/* BEGIN SOLUTION(a) */\nint a;\n/* END SOLUTION(a) */\n")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    first = skeleton_source(source)
    assert (first / "a.c").read_text() == ""
    (source / "a.c").write_text("int b;\n")
    assert (skeleton_source(source) / "a.c").read_text() == "int b;\n"
