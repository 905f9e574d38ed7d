"""Answers handed in as plain data, so that a grade can be checked again without the student's code.

nbgrader runs a notebook's checks in the student's own Jupyter kernel, where an earlier cell can
change anything, the checks included. So each check cell first hands in the exercise's answer:
the variables the exercise names, and the files of the workspaces it asks to edit, as plain data
(JSON) in `answers.json` beside the notebook:

    hand_in("exercise-1", my_paddr=my_paddr, my_page_size=my_page_size)
    hand_in("exercise-2", workspaces=[exercise])        # the files that differ from the skeleton

`workbench verify-grades` (workbench/classroom/verify.py) later runs the instructor's notebook in a fresh
sandbox with each exercise cell replaced by `restore(...)` of what was handed in: the student's
code never runs there, so a grade forged in the student's kernel shows up as a disagreement.
A value handed in is only ever the student's own answer; the checks measure it against the guest.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Iterable, MutableMapping
from pathlib import Path
from typing import Any

from workbench.errors import InvalidInput
from workbench.kernel.workspace import Workspace

ANSWERS_FILE = "answers.json"
MAX_BYTES = 4 << 20  # all answers of one notebook: the C exercises change a few files each
_EXERCISE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class AnswerError(InvalidInput):
    """An answer that cannot be handed in as plain data, or a file of answers that cannot be read."""


def _plain(value: object, where: str) -> object:
    """`value` if it is plain data (None, bool, int, float, str, and lists and str-keyed dicts of
    those); tuples become lists. Anything else is refused with what to hand in instead."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise AnswerError(f"{where} is {value!r}: hand in a finite number")
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(item, f"{where}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise AnswerError(f"{where} is a dict whose keys are not all str: hand in str keys")
        return {key: _plain(item, f"{where}[{key!r}]") for key, item in value.items()}
    if isinstance(value, (bytes, bytearray)):
        raise AnswerError(f"{where} is bytes: hand in its .hex() instead")
    raise AnswerError(f"{where} is a {type(value).__name__}, not plain data: hand in the number, text or "
                      "list the exercise asks for")


def _workspace_files(workspace: Workspace) -> dict[str, str | None]:
    """The files of `workspace` that differ from its pristine source; None for a deleted one."""
    if not isinstance(workspace, Workspace):
        raise AnswerError(f"workspaces= takes Workspace objects, not {type(workspace).__name__}")
    files: dict[str, str | None] = {}
    for relative in workspace.changed_files():
        path = workspace.root / relative
        try:
            files[relative] = path.read_text() if path.is_file() else None
        except UnicodeDecodeError as error:
            raise AnswerError(f"{relative} in {workspace!r} is not text; only source files can be handed in") from error
    return files


def answers_path(directory: str | Path | None = None) -> Path:
    """Where a notebook's answers are kept: `answers.json` in its working directory."""
    return Path(directory if directory is not None else os.getcwd()) / ANSWERS_FILE


def load(directory: str | Path | None = None) -> dict[str, Any]:
    """Every answer handed in from the notebook in `directory`: exercise -> its record."""
    path = answers_path(directory)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as error:
        raise AnswerError(f"the answers in {path} cannot be read: {error.strerror or error}") from error
    try:
        data = json.loads(text)
    except ValueError as error:
        raise AnswerError(f"{path} is not the JSON that hand_in writes: {error}") from error
    if not isinstance(data, dict):
        raise AnswerError(f"{path} is not the JSON that hand_in writes: it holds no record per exercise")
    return data


def hand_in(exercise: str, *, workspaces: Iterable[Workspace] = (), **values: object) -> None:
    """Keep the answer to `exercise`: `values` (plain data) and the changed files of `workspaces`.

    Handing in the same exercise again replaces its earlier answer.
    """
    if not isinstance(exercise, str) or not _EXERCISE.fullmatch(exercise):
        raise AnswerError(f"an exercise is named by its grade id, such as 'exercise-1', not {exercise!r}")
    record = {"values": {name: _plain(value, name) for name, value in values.items()},
              "workspaces": {workspace.root.name: _workspace_files(workspace) for workspace in workspaces}}
    answers = load()
    answers[exercise] = record
    text = json.dumps(answers, indent=1, sort_keys=True)
    if len(text.encode()) > MAX_BYTES:
        raise AnswerError(f"the answers come to more than {MAX_BYTES >> 20} MiB: hand in what the exercise asks "
                          "for, not more")
    path = answers_path()
    descriptor, staging = tempfile.mkstemp(prefix=".answers-", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(text)
        os.replace(staging, path)
    finally:
        Path(staging).unlink(missing_ok=True)


def restore(exercise: str, namespace: MutableMapping[str, Any], names: Iterable[str],
            directory: str | Path | None = None) -> None:
    """Put the answer to `exercise` back: its workspaces' files, and the values called `names`
    (those the exercise's check hands in; nothing else of the notebook's) into `namespace`.

    An exercise never handed in restores nothing, so its check fails as it would on no answer.
    Each workspace is reset to its pristine source first, so only the handed-in files differ.
    """
    record = load(directory).get(exercise)
    if not isinstance(record, dict):
        return
    values, workspaces = record.get("values", {}), record.get("workspaces", {})
    if not isinstance(values, dict) or not isinstance(workspaces, dict):
        raise AnswerError(f"the answer to {exercise} is not the record hand_in writes")
    for name, files in workspaces.items():
        workspace = Workspace.open(name)
        workspace.reset()
        for relative, text in dict(files).items():
            if text is None:
                workspace.path(relative).unlink(missing_ok=True)
            else:
                workspace.write(relative, text)
    wanted = set(names)
    namespace.update({name: value for name, value in values.items() if name in wanted})
