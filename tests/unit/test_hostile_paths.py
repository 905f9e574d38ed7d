"""Issue 9: Workspace and Image refuse hostile paths and text with one WorkbenchError, and
nothing already in the workspace is lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.errors import InvalidInput
from workbench.guest.machine import Machine
from workbench.kernel.image import Image, NotAnImage
from workbench.kernel.workspace import BadPath, Workspace


@pytest.mark.parametrize("where", ["/no/such", "/", "/dev/null", "a\0b"])
def test_image_paths_that_are_not_images(where: str) -> None:
    with pytest.raises(NotAnImage):
        Image.load(where)
    with pytest.raises(NotAnImage):
        Image.foreign(where)


@pytest.mark.parametrize("length", [0, 4, 64, 600, 4000])
def test_truncated_elf_files(image: Image, tmp_path: Path, length: int) -> None:
    cut = tmp_path / "cut.elf"
    cut.write_bytes(image.path.read_bytes()[:length])
    with pytest.raises(NotAnImage, match="is not an ELF image") as refused:
        Image.load(cut)
    assert isinstance(refused.value, ValueError) and "\n" not in str(refused.value)


def test_a_symlink_loop_and_a_nul_are_refused(workspace: Workspace) -> None:
    (workspace.root / "loop").symlink_to("loop")
    for name in ("loop", "loop/x.c", "app/ma\0in.c"):
        with pytest.raises(BadPath):
            workspace.read(name)
        with pytest.raises(BadPath):
            workspace.write(name, "x")


@pytest.mark.parametrize("name", ["app", "", ".", "app/"])
def test_writing_a_directory_is_refused(workspace: Workspace, name: str) -> None:
    with pytest.raises(BadPath, match="is a directory"):
        workspace.write(name, "int x;\n")
    assert (workspace.root / "app").is_dir() and (workspace.root / "app" / "main.c").is_file()


def test_a_failed_write_keeps_the_old_file(workspace: Workspace) -> None:
    before = workspace.read("app/main.c")
    for text in ("ok\ud800", b"bytes", None):
        with pytest.raises(InvalidInput):
            workspace.write("app/main.c", text)  # type: ignore[arg-type]
        assert workspace.read("app/main.c") == before
    with pytest.raises(BadPath, match="is a file"):
        workspace.write("app/main.c/x.c", "x")
    assert workspace.read("app/main.c") == before
    assert not [p for p in (workspace.root / "app").iterdir() if p.name.endswith(".tmp")], "a temporary file was left"


def test_write_keeps_the_mode_and_replaces_the_text(workspace: Workspace) -> None:
    target = workspace.root / "app" / "main.c"
    target.chmod(0o640)
    workspace.write("app/main.c", "int main;\n")
    assert target.read_text() == "int main;\n" and target.stat().st_mode & 0o777 == 0o640


def test_replace_and_names_check_their_text(workspace: Workspace, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        workspace.replace("app/main.c", "", "x")
    with pytest.raises(InvalidInput):
        Workspace.open(None, parent=tmp_path)  # type: ignore[arg-type]
    (workspace.root / "app" / "blob.c").write_bytes(b"\xff\xfe")
    with pytest.raises(BadPath, match="not a text file"):
        workspace.read("app/blob.c")


@pytest.mark.parametrize("where", ["/no/such", "/"])
def test_a_machine_of_no_image(where: str) -> None:
    with pytest.raises(NotAnImage):
        Machine(where)


@pytest.mark.parametrize("name", ["", ".", "app", "app/", "../test", "nonexistent.c", "a" * 5000, 5, None,
                                  "app/ma\0in.c", "/etc/passwd"])
def test_show_and_reset_of_what_is_not_a_file_change_nothing(workspace: Workspace, name: object) -> None:
    workspace.replace("app/main.c", "Hello from the unikernel!", "Hello, class!")
    before = workspace.diff()
    with pytest.raises(InvalidInput) as refused:
        workspace.show(name)  # type: ignore[arg-type]
    assert "\n" not in str(refused.value)
    if name is not None:  # reset(None) puts back the whole workspace, as documented
        with pytest.raises(InvalidInput) as refused:
            workspace.reset(name)  # type: ignore[arg-type]
        assert "\n" not in str(refused.value)
    assert workspace.diff() == before


def test_reset_takes_a_path_however_it_is_spelled(workspace: Workspace) -> None:
    workspace.replace("app/main.c", "Hello from the unikernel!", "Hello, class!")
    saved = workspace.reset(Path("app") / "." / "main.c")
    assert saved is not None and "Hello, class!" in saved.read_text()
    assert not workspace.diff()


@pytest.mark.parametrize("options", [{"function": 5}, {"lines": (5, 2)}, {"lines": "1-3"},
                                     {"lines": (1.0, 3)}, {"marked": {"x"}}, {"function": "no_such_function"}])
def test_show_options_are_checked(workspace: Workspace, options: dict[str, object]) -> None:
    with pytest.raises(InvalidInput) as refused:
        workspace.show("app/main.c", **options)  # type: ignore[arg-type]
    assert "\n" not in str(refused.value)
    assert "app_main" in str(workspace.show("app/main.c", function="app_main"))
