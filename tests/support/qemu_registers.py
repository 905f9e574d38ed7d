"""QEMU's own `info registers -a`, read as plain text: the tests' oracle for every CPU's
registers, kept apart from the workbench's parser (workbench/models/cpu.py) that it checks."""

from __future__ import annotations

import re


def blocks(text: str) -> dict[int, str]:
    """The text of each CPU, by its `CPU#N` header."""
    parts = re.split(r"^CPU#(\d+)\s*$", text, flags=re.MULTILINE)[1:]
    assert parts, f"no CPU# blocks in {text[:500]!r}"
    return {int(number): block for number, block in zip(parts[::2], parts[1::2], strict=True)}


def field(name: str, block: str) -> int:
    """A register's hex value, such as RIP=, CR3= or HLT=."""
    found = re.search(rf"\b{name}=([0-9a-f]+)", block)
    assert found is not None, f"no {name}= in {block!r}"
    return int(found[1], 16)
