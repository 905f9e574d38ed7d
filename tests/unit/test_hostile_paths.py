"""Issue 9: Workspace and Image refuse hostile paths and text with one WorkbenchError, and
nothing already in the workspace is lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.errors import InvalidInput
from workbench.image import Image, NotAnImage
from workbench.machine import Machine
from workbench.workspace import BadPath, Workspace


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
