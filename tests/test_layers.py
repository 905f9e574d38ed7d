"""The package's folders are its layers: a module imports only from its own layer or those below,
and no chain of imports comes back to where it started. Across modules, only public names.

Every import counts, also one inside a function or under TYPE_CHECKING: a lazy import is still
an arrow between layers, and the only cycle the package ever had went through one.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "workbench"

# The rule, once: lowest first. "base" is the package's own top-level modules that everything
# may use; "top" is the command line and the package's front door, which may use everything.
LAYERS = ("base", "kernel", "models", "guest", "debug", "timetravel", "compare", "views", "classroom", "top")
TOP_MODULES = {"workbench", "workbench.cli"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def layer_of(module: str) -> str:
    if module in TOP_MODULES:
        return "top"
    folder = module.split(".")[1]
    return folder if folder in LAYERS else "base"


def imports_of(module: str) -> Iterator[str]:
    """The package's modules that `module` imports, resolved to modules (not the names in them)."""
    path = MODULES[module]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: imports are absolute, so that every arrow names its layer"
            targets = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in MODULES else str(node.module)
                       for alias in node.names]
        else:
            continue
        yield from (target for target in targets if target in MODULES and target != module)


GRAPH = {module: set(imports_of(module)) for module in MODULES}


def test_every_module_is_in_a_layer_the_rule_names() -> None:
    folders = {name.split(".")[1] for name in MODULES if name.count(".") >= 2}
    assert folders <= set(LAYERS), f"folders with no place in LAYERS: {sorted(folders - set(LAYERS))}"


def test_imports_point_only_downward() -> None:
    upward = [f"{module} ({layer_of(module)}) imports {target} ({layer_of(target)})"
              for module, targets in sorted(GRAPH.items()) for target in sorted(targets)
              if LAYERS.index(layer_of(target)) > LAYERS.index(layer_of(module))]
    assert not upward, "\n".join(upward)


def test_no_import_cycle() -> None:
    state: dict[str, str] = {}  # "open" while on the current path, "done" after

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = "open"
        for target in sorted(GRAPH[module]):
            if state.get(target) == "open":
                return [*path[path.index(target):], target] if target in path else [*path, target]
            if target not in state and (cycle := visit(target, [*path, target])):
                return cycle
        state[module] = "done"
        return None

    for module in sorted(GRAPH):
        if module not in state and (cycle := visit(module, [module])):
            raise AssertionError("import cycle: " + " -> ".join(cycle))


# The rule for names: a leading underscore makes a name private to the module that defines it,
# and a module (views/_base.py) private to the package that holds it, whose modules may import it.
PRIVATE_PREFIX = "_"


def is_private(part: str) -> bool:
    return part.startswith(PRIVATE_PREFIX) and not (part.startswith("__") and part.endswith("__"))


def may_import(importer: str, dotted: str) -> bool:
    """Whether `importer` may import `dotted` (a module, or a module and a name in it)."""
    parts = dotted.split(".")
    for at, part in enumerate(parts):
        holder, held = ".".join(parts[:at]), ".".join(parts[: at + 1])
        if is_private(part) and not (held in MODULES and (importer + ".").startswith(holder + ".")):
            return False
    return True


def imported_names(module: str) -> Iterator[str]:
    """Everything of the package that `module` imports, as dotted names (`workbench.guest.loop.run`)."""
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.ImportFrom) and str(node.module).split(".")[0] == PACKAGE.name:
            yield from (f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name.split(".")[0] == PACKAGE.name)


def test_no_module_imports_another_modules_private_name() -> None:
    private = [f"{module} imports {name}" for module in sorted(MODULES) for name in imported_names(module)
               if not may_import(module, name)]
    assert not private, "\n".join(private)
