"""A student's own copy of the unikernel source, next to the lesson that uses it.

Lessons never touch `kernel-src/`; each works in a Workspace, a copy that shows up in
JupyterLab's file browser (in `workspaces/` beside the lesson notebooks). Every path is checked to
stay inside the workspace, and nothing a student wrote is thrown away: `reset()` first saves
the changes as a patch.
"""

from __future__ import annotations

import contextlib
import difflib
import html
import os
import re
import secrets
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from workbench import grader_facts
from workbench.errors import InvalidInput, WorkbenchError
from workbench.kernel import skeleton
from workbench.kernel.build import build_image, build_linux_program
from workbench.kernel.display import SourceView, excerpt
from workbench.kernel.image import Image
from workbench.kernel.toolchains import DEFAULT_TOOLCHAIN

BUILD_OUTPUT = "build"  # inside a workspace; never compared, copied or diffed
SOURCE_SUFFIXES = (".c", ".h", ".S", ".s", ".ld", ".md", ".awk", ".sh", ".mk")
SOURCE_NAMES = ("Makefile",)


_UNFOLLOWABLE = "{!r} cannot be followed: a symbolic link in it points in a loop or nowhere"


def _has_unresolved_link(resolved: Path) -> bool:
    try:
        return any(part.is_symlink() for part in (resolved, *resolved.parents))
    except OSError:  # a name too long to look at: the caller's own checks say so
        return False


class PathOutsideWorkspace(InvalidInput):
    """A path that would leave the workspace."""


class BadPath(InvalidInput):
    """A path inside the workspace that cannot be used as asked (a directory, a loop, ...)."""


class TextNotFound(WorkbenchError):
    """`replace` did not find the text exactly once."""


def workspaces_root() -> Path:
    """Where workspaces live: $WORKBENCH_WORKSPACES (`workbench lab` sets it), else `workspaces/`
    in the current directory, which for a notebook is the directory of the notebook."""
    configured = os.environ.get("WORKBENCH_WORKSPACES")
    return Path(configured) if configured else Path.cwd() / "workspaces"


@dataclass(frozen=True)
class Diff:
    """The unified diff of a workspace against the pristine source."""

    text: str

    def __bool__(self) -> bool:
        return bool(self.text)

    def __str__(self) -> str:
        return self.text or "(no changes)"

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        if not self.text:
            return "<p><i>(no changes)</i></p>"
        colours = {"+": "#1a7f37", "-": "#cf222e", "@": "#8250df"}
        lines = []
        for line in self.text.splitlines():
            colour = colours.get(line[:1]) if not line.startswith(("+++", "---")) else None
            style = f" style='color:{colour}'" if colour else " style='font-weight:bold'"
            lines.append(f"<span{style}>{html.escape(line)}</span>")
        return "<pre style='line-height:1.3'>" + "\n".join(lines) + "</pre>"


class Workspace:
    """A copy of kernel-src that one lesson (or one student) edits and builds."""

    def __init__(self, root: Path, pristine: Path | None = None) -> None:
        self.root = root.resolve()
        self.pristine = (pristine or skeleton.skeleton_source()).resolve()
        if not (self.root / "Makefile").is_file():
            raise WorkbenchError(f"{self.root} is not a workspace (it has no Makefile)")

    @classmethod
    def open(cls, name: str, *, fresh: bool = False, parent: str | Path | None = None) -> Workspace:
        """The workspace called `name`, created if it does not exist yet from the students'
        source: kernel-src without the code that exercises ask for (workbench/kernel/skeleton.py).

        With `fresh=True` it starts from that pristine source; any earlier changes are saved
        as a patch first (see `reset`).
        """
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
            raise InvalidInput(f"a workspace name uses letters, digits, '.', '_' and '-', not {name!r}")
        if parent is not None and (not isinstance(parent, (str, Path)) or not str(parent).strip()):
            raise InvalidInput(f"parent is the directory of the workspaces (a path), not {parent!r}")
        root = (Path(parent) if parent is not None else workspaces_root()) / name
        pristine = skeleton.skeleton_source()
        if not root.exists():
            root.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(pristine, root, ignore=shutil.ignore_patterns(BUILD_OUTPUT))
        workspace = cls(root, pristine)
        if fresh:
            saved = workspace.reset()
            if saved is not None:  # tell the student where their work went
                print(f"Your earlier changes to this workspace were saved in {saved}")
        return workspace

    def __repr__(self) -> str:
        return f"Workspace({self.root.name!r})"

    # Paths.

    def path(self, relative: str | Path) -> Path:
        """The absolute path of `relative`; refuses anything that would leave the workspace."""
        if not isinstance(relative, (str, Path)):
            raise BadPath(f"a path in the workspace is a str such as 'app/main.c', not {type(relative).__name__}")
        if "\0" in str(relative):
            raise BadPath(f"{str(relative)!r} is not a path: it contains a NUL character")
        try:
            candidate = (self.root / relative).resolve()
        except (RuntimeError, OSError) as error:  # RuntimeError: a symlink loop (Python 3.11/3.12)
            raise BadPath(_UNFOLLOWABLE.format(str(relative))) from error
        if _has_unresolved_link(candidate):  # Python 3.13's resolve() leaves a loop as it is
            raise BadPath(_UNFOLLOWABLE.format(str(relative)))
        if candidate != self.root and self.root not in candidate.parents:
            raise PathOutsideWorkspace(
                f"{str(relative)!r} is outside the workspace {self.root}; "
                "only files inside it can be read or changed"
            )
        return candidate

    def files(self) -> list[str]:
        """Every source file, as paths relative to the workspace, sorted."""
        return sorted(
            str(p.relative_to(self.root)) for p in self.root.rglob("*")
            if p.is_file() and BUILD_OUTPUT not in p.relative_to(self.root).parts[:1]
            and (p.suffix in SOURCE_SUFFIXES or p.name in SOURCE_NAMES)
        )

    # Reading and editing.

    def read(self, relative: str) -> str:
        target = self.path(relative)
        try:
            if not target.is_file():
                raise BadPath(f"there is no file {str(relative)!r} in the workspace"
                              + (" (it is a directory)" if target.is_dir() else ""))
            return target.read_text()
        except UnicodeDecodeError as error:
            raise BadPath(f"{str(relative)!r} is not a text file (byte {error.start} is not UTF-8)") from error
        except OSError as error:  # a name too long, a file that cannot be read
            raise BadPath(f"{str(relative)!r} cannot be read: {error.strerror or error}") from error

    def _file_name(self, relative: str | Path) -> str:
        """`relative` as the workspace names its files ('app/main.c'); BadPath for a directory."""
        target = self.path(relative)
        try:
            directory = target.is_dir()
        except OSError as error:
            raise BadPath(f"{str(relative)!r} cannot be used: {error.strerror or error}") from error
        if target == self.root or directory:
            raise BadPath(f"{str(relative)!r} is a directory; reset() takes one file such as 'app/main.c', "
                          "or nothing at all to put back the whole workspace")
        return target.relative_to(self.root).as_posix()

    def write(self, relative: str, text: str) -> None:
        """Replace the whole file (creating it if needed); on any failure the old file stays."""
        target = self.path(relative)
        if target == self.root or target.is_dir():
            raise BadPath(f"{str(relative)!r} is a directory in the workspace; write() needs a file name "
                          "such as 'app/main.c'")
        if not isinstance(text, str):
            raise InvalidInput(f"write() takes the new text as a str, not {type(text).__name__}")
        try:
            data = text.encode()
        except UnicodeEncodeError as error:
            raise InvalidInput(f"the text for {relative!r} cannot be saved as UTF-8: "
                               f"{error.object[error.start:error.end]!r} is not a character") from error
        for parent in reversed(target.relative_to(self.root).parents):
            if (self.root / parent).exists() and not (self.root / parent).is_dir():
                raise BadPath(f"{str(relative)!r} cannot be written: {str(parent)!r} is a file, not a directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        # Write a temporary file beside it, then rename: the old text survives a failed write.
        temporary = target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
        try:
            with os.fdopen(descriptor, "wb") as stream:
                stream.write(data)
            if target.exists():
                shutil.copymode(target, temporary)
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    def replace(self, relative: str, old: str, new: str) -> SourceView:
        """Replace the one occurrence of `old` with `new`; returns the changed lines."""
        if not isinstance(old, str) or not isinstance(new, str):
            raise InvalidInput("replace() takes the old and the new text as str")
        if not old:
            raise InvalidInput("replace() needs the text to replace; it is empty")
        text = self.read(relative)
        count = text.count(old)
        if count != 1:
            where = "does not appear" if count == 0 else f"appears {count} times"
            raise TextNotFound(
                f"the text {old!r} {where} in {relative}; replace() needs it exactly once. "
                "Quote more of the surrounding line to make it unique, or look at the file "
                f"with show({relative!r})."
            )
        start_line = text[: text.index(old)].count("\n") + 1
        self.write(relative, text.replace(old, new))
        end_line = start_line + new.count("\n")
        # Mark only the lines that really changed, not the unchanged text quoted around them.
        matcher = difflib.SequenceMatcher(a=old.split("\n"), b=new.split("\n"), autojunk=False)
        changed = {start_line + line for tag, _, _, first, last in matcher.get_opcodes() if tag != "equal"
                   for line in range(first, last)}
        return self.show(relative, lines=(start_line - 1, end_line + 1), marked=changed)

    def show(self, relative: str, *, function: str | None = None, lines: tuple[int, int] | None = None,
             marked: set[int] | None = None) -> SourceView:
        """A file, one C function (with the comment above it), or a line range, highlighted.

        `lines` is (first, last), 1-based and inclusive; parts beyond the file are left out.
        """
        if function is not None and not isinstance(function, str):
            raise InvalidInput(f"function= names a C function with a str such as 'app_main', not "
                               f"{type(function).__name__}")
        if lines is not None and not (isinstance(lines, tuple) and len(lines) == 2
                                      and all(isinstance(n, int) and not isinstance(n, bool) for n in lines)
                                      and lines[0] <= lines[1]):
            raise InvalidInput(f"lines= is (first, last), two line numbers with first <= last, not {lines!r}")
        if marked is not None and not all(isinstance(n, int) for n in marked):
            raise InvalidInput("marked= is a set of line numbers")
        text = self.read(relative)
        if function is not None:
            first, last = _function_lines(text, function, str(relative))
        elif lines is not None:
            first, last = lines
        else:
            first, last = 1, text.count("\n") + 1
        return excerpt(str(relative), text, first, last, marked=marked)

    def find(self, marker: str) -> list[tuple[str, int, str]]:
        """(path, line number, line) for each source line containing `marker`, e.g. 'EXERCISE(01)'.

        The READMEs, which name the markers to explain them, are not places to edit."""
        found = []
        for relative in self.files():
            if relative.endswith(".md"):
                continue
            for number, line in enumerate(self.read(relative).splitlines(), 1):
                if marker in line:
                    found.append((relative, number, line.strip()))
        return found

    def solve(self, name: str) -> Diff:
        """Put solution `name` from kernel-src into this workspace (the instructor's answer to an
        exercise); returns the workspace's whole diff. A solution already there is left alone.
        Refused under the grader, whose sandbox holds no solution either."""
        if grader_facts.FACTS is not None:
            raise skeleton.SkeletonError("solve() is not available while a submission is graded: the answer must "
                                         "be your own code in the workspace")
        for block in skeleton.solutions(name):
            text = self.read(block.path)
            if block.code in text:
                continue
            lines = text.splitlines(keepends=True)
            bare = [line.rstrip("\n") for line in lines]
            size = len(block.anchor)
            places = [start + size - 1 for start in range(len(bare) - size + 1)
                      if tuple(bare[start:start + size]) == block.anchor]
            if not block.anchor:  # only blank lines above: the block opens the file
                places = [-1]
            if len(places) != 1:
                raise skeleton.SkeletonError(
                    f"solution {name!r} goes after the line {block.anchor[-1].strip()!r} in {block.path}, "
                    f"which this workspace has {'not' if not places else f'{len(places)} times'}; "
                    "reset() it to start from the skeleton")
            lines.insert(places[0] + 1 + block.gap, block.code)
            self.write(block.path, "".join(lines))
        return self.diff()

    # Comparing and resetting.

    def changed_files(self) -> list[str]:
        """Files that differ from the pristine source, were added, or were deleted."""
        ours = set(self.files())
        theirs = {str(p.relative_to(self.pristine)) for p in self.pristine.rglob("*")
                  if p.is_file() and BUILD_OUTPUT not in p.relative_to(self.pristine).parts[:1]}
        changed = [f for f in sorted(ours | theirs)
                   if f not in ours or f not in theirs
                   or (self.root / f).read_bytes() != (self.pristine / f).read_bytes()]
        return changed

    def diff(self) -> Diff:
        """What the student changed, as a unified diff against kernel-src."""
        chunks: list[str] = []
        for relative in self.changed_files():
            before = (self.pristine / relative)
            after = (self.root / relative)
            chunks.extend(difflib.unified_diff(
                before.read_text().splitlines(keepends=True) if before.is_file() else [],
                after.read_text().splitlines(keepends=True) if after.is_file() else [],
                f"a/{relative}", f"b/{relative}",
            ))
        return Diff("".join(chunks))

    def reset(self, relative: str | None = None) -> Path | None:
        """Restore one file, or the whole workspace, to the pristine source.

        Changes are never simply lost: they are saved first as a patch next to the workspace,
        and its path is returned (None when there was nothing to save).
        """
        if relative is None:
            changed = self.changed_files()
        else:
            name = self._file_name(relative)
            if not (self.root / name).is_file() and not (self.pristine / name).is_file():
                raise BadPath(f"there is no file {str(relative)!r} in the workspace, nor in the pristine source")
            changed = [name] if name in self.changed_files() else []
        if not changed:
            return None
        saved = self._save_changes()
        for name in changed:
            ours, theirs = self.path(name), self.pristine / name
            if theirs.is_file():
                ours.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(theirs, ours)  # a fresh mtime, so make rebuilds what depends on it
            else:
                ours.unlink(missing_ok=True)
        return saved

    def _save_changes(self) -> Path:
        backups = self.root.parent / ".saved-changes"
        backups.mkdir(exist_ok=True)
        number = 1 + sum(1 for _ in backups.glob(f"{self.root.name}-*.patch"))
        saved = backups / f"{self.root.name}-{number}.patch"
        saved.write_text(str(self.diff()))
        return saved

    # Building.

    def build(self, *, scenario: str = "none", toolchain: str = DEFAULT_TOOLCHAIN,
              components: Iterable[str] | None = None, app: str = "app", timeout: float = 120.0) -> Image:
        """Build this workspace incrementally; returns the Image or raises BuildError.

        `components` picks the kernel's components (kernel-src/components.mk) instead of the
        application's own selection in its config.mk; `app` picks the application directory.
        """
        return build_image(self.root, scenario=scenario, toolchain=toolchain, components=components, app=app,
                           timeout=timeout)

    def build_linux_program(self, *, app: str, toolchain: str = DEFAULT_TOOLCHAIN, timeout: float = 120.0) -> Path:
        """Build application `app` as a static Linux program (make linux); returns its path."""
        return build_linux_program(self.root, app=app, toolchain=toolchain, timeout=timeout)


def _function_lines(text: str, name: str, relative: str) -> tuple[int, int]:
    """First and last line of C function `name`, including the comment block right above it."""
    lines = text.splitlines()
    head = re.compile(rf"^[A-Za-z_].*\b{re.escape(name)}\s*\(")
    for index, line in enumerate(lines):
        if not head.match(line) or line.rstrip().endswith(";"):
            continue
        depth, seen_body = 0, False
        for end in range(index, len(lines)):
            stripped = lines[end].rstrip()
            if end > index and stripped.endswith(";") and not seen_body and "{" not in stripped:
                break  # a prototype spread over several lines
            depth += stripped.count("{") - stripped.count("}")
            seen_body = seen_body or "{" in stripped
            if seen_body and depth == 0:
                start = index
                while start > 0 and lines[start - 1].lstrip().startswith(("/*", "*", "//")):
                    start -= 1
                return start + 1, end + 1
    raise InvalidInput(f"no definition of the function {name!r} in {relative}")
