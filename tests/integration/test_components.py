"""The unikernel as a library OS: every selection of components that matters builds, boots and
passes its own smoke test; what is not selected is not linked; using it is a build error.

The selections: nothing (the base alone), each component alone, everything, and everything but
one. Each is built once (in one workspace, a build directory per selection) and booted once.
"""

from __future__ import annotations

import re
import time

import pytest

from workbench.guest.machine import Machine, MachineState
from workbench.kernel import components
from workbench.kernel.build import BuildError, link_log
from workbench.kernel.image import Image
from workbench.kernel.workspace import Workspace

pytestmark = pytest.mark.qemu

MENU = components.menu()
EVERYTHING = tuple(MENU)
BANNER = "app: Hello from the unikernel!"
NON_CANONICAL = 0x8000000000000000  # reading it is #GP, whatever the page tables say

# A symbol that is in the image exactly when its component is linked and something uses it. The
# kernel uses most at boot; heap and syscall only the application's requests do (alloc, syscall).
MARKERS = {
    "console-input": "console_read_line",
    "timer": "timer_init",
    "heap": "heap_alloc_pages",
    "page-tables": "paging_init",
    "interrupts": "idt_init",
    "fault-report": "exception_names",
    "symbols": "kernel_symbols",
    "syscall": "syscall_entry",
    "scenarios": "scenario_at_boot",
}
USED_BY_REQUESTS = ("heap", "syscall")


def _selections() -> dict[str, tuple[str, ...]]:
    """Every selection that matters, keyed by a readable name, one per distinct closure."""
    asked = [(), *((name,) for name in EVERYTHING), EVERYTHING,
             *(tuple(n for n in EVERYTHING if n != left_out) for left_out in EVERYTHING)]
    found: dict[tuple[str, ...], str] = {}
    for selection in asked:
        closed = components.closure(selection, MENU)
        found.setdefault(closed, "+".join(selection) if len(selection) < len(EVERYTHING) - 1 else
                         "everything" if selection == EVERYTHING else
                         "all-but-" + next(n for n in EVERYTHING if n not in selection))
    return {name or "nothing": selection for selection, name in found.items()}


SELECTIONS = _selections()


def expected_commands(selected: tuple[str, ...]) -> list[str]:
    """The requests app/main.c serves with this selection, in its table's order."""
    wanted = {"ticks": "timer", "alloc": "heap", "fault": "scenarios", "syscall": "syscall",
              "syscall-cr3": "syscall", "bench": "syscall"}
    table = ["help", "ticks", "alloc", "read", "write", "fault", "exit", "call", "syscall", "syscall-cr3", "bench"]
    return [command for command in table if wanted.get(command, "console-input") in selected]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return Workspace.open("components", parent=tmp_path_factory.mktemp("components"))


def test_the_menu_and_the_makefile_agree(workspace: Workspace) -> None:
    assert EVERYTHING == ("console-input", "timer", "heap", "page-tables", "interrupts", "fault-report",
                          "symbols", "syscall", "scenarios", "smp")
    assert all(MENU[name].description for name in EVERYTHING)
    image = workspace.build()  # the application's own selection: everything but smp (apps/smp has it)
    assert image.components == tuple(name for name in EVERYTHING if name != "smp")
    # The Linux build's hand-written components.h names every component too (0 where it has none):
    # a name it lacks breaks every PART_OF declaration of that component in kernel.h.
    hosted = (workspace.root / "linux" / "components.h").read_text()
    assert set(re.findall(r"#define COMPONENT_(\w+) ", hosted)) == {n.upper().replace("-", "_") for n in EVERYTHING}


def test_the_selections_cover_each_component_alone_and_each_left_out() -> None:
    assert "nothing" in SELECTIONS and "everything" in SELECTIONS
    assert SELECTIONS["timer"] == ("timer", "interrupts")
    assert SELECTIONS["heap"] == ("heap", "page-tables")
    assert SELECTIONS["all-but-console-input"] == tuple(n for n in EVERYTHING if n != "console-input")
    assert len(SELECTIONS) == len(set(SELECTIONS.values())) >= 15


@pytest.mark.parametrize("name", list(SELECTIONS))
def test_each_selection_builds_boots_and_passes_its_smoke_test(workspace: Workspace, name: str) -> None:
    selected = SELECTIONS[name]
    image = workspace.build(components=selected)
    assert image.components == selected  # make added what each needs, as closure() did
    for component, symbol in MARKERS.items():
        used = component in selected and (component not in USED_BY_REQUESTS or "console-input" in selected)
        assert (symbol in image.symbols) == used, f"{symbol} of {component} should be linked: {used}"
    with Machine(image, name=f"components-{name}") as machine:
        machine.wait_for(BANNER)
        if "console-input" not in selected:  # hello, and app_main returns: the kernel exits
            assert machine.wait(timeout=10).exit_status == 0
            return
        machine.wait_for("> ")  # the prompt: only now is a reply told apart from the next prompt
        assert machine.request("help")["commands"] == ",".join(expected_commands(selected))
        smoke_test(machine, image, selected)


def smoke_test(machine: Machine, image: Image, selected: tuple[str, ...]) -> None:
    """Each selected component does its job; the page tables are the boot ones without it."""
    assert machine.request("call noop").number("value") == 0
    snapshot = machine.snapshot()
    text_vaddr = image.symbol("kernel_main").vaddr
    if "page-tables" in selected:
        assert not snapshot.walk(0).ok, "the null page is unmapped"
        assert not snapshot.walk(text_vaddr).permissions.writable
    else:
        assert snapshot.walk(0).ok and snapshot.walk(text_vaddr).permissions.writable  # the boot map: RWX
    if "timer" in selected:
        first = machine.request("ticks").number("ticks")
        time.sleep(0.2)  # 20 ticks at 100 Hz: under TCG the timer follows the host's clock
        assert machine.request("call ticks").number("value") > first
    if "heap" in selected:
        vaddr = machine.request("alloc 1").number("vaddr")
        machine.request(f"write {vaddr:#x} 42")
        assert machine.request(f"read {vaddr:#x}").number("value") == 42
    if "syscall" in selected:
        assert machine.request("syscall noop").number("value") == 0
    if "scenarios" in selected:
        machine.send_line("fault divide-error")
        fault = machine.wait(timeout=10).fault
        assert fault is not None and fault.vector == 0
        assert (fault.function == "provoke_divide_error") == ("symbols" in selected), fault.function
    elif "fault-report" in selected:
        machine.send_line(f"read {NON_CANONICAL:#x}")
        fault = machine.wait(timeout=10).fault
        assert fault is not None and fault.vector == 13
        assert (fault.function == "command_read") == ("symbols" in selected), fault.function
    if "fault-report" in selected:
        assert machine.state is MachineState.FAULTED


def test_using_a_component_that_is_not_selected_fails_naming_both(workspace: Workspace) -> None:
    workspace.replace("app/main.c", 'console_printf("app: Hello from the unikernel!\\n");',
                      'console_printf("app: Hello from the unikernel!\\n");\n    heap_alloc_pages(1);')
    try:
        with pytest.raises(BuildError) as raised:
            workspace.build(components=["console-input"])
        (error,) = raised.value.errors
        assert error.path == "app/main.c" and error.line > 1
        assert "heap_alloc_pages" in error.message and "component heap" in error.message
        assert workspace.build(components=["console-input", "heap"]).components == (
            "console-input", "heap", "page-tables", "interrupts")
    finally:
        workspace.reset()


@pytest.mark.parametrize(("components_", "message"), [
    (["console-input", "teleport"], "unknown component teleport"),
    (["timer"], "SCENARIO=divide-error needs the component scenarios"),
])
def test_an_invalid_selection_is_refused_by_make(workspace: Workspace, components_: list[str], message: str) -> None:
    scenario = "divide-error" if "SCENARIO" in message else "none"
    with pytest.raises(BuildError) as raised:
        workspace.build(components=components_, scenario=scenario)
    assert message in raised.value.summary


def test_what_the_linker_dropped_is_listed(workspace: Workspace) -> None:
    image = workspace.build(components=[])
    log = link_log(image)  # made when asked for, not by every build
    dropped = [line for line in log.splitlines() if "removing unused section" in line]
    assert any("timer_init" in line for line in dropped) and any("idt_init" in line for line in dropped)
    assert not any("console_printf" in line for line in dropped)


def test_smaller_selections_give_smaller_images(workspace: Workspace) -> None:
    sizes = {name: workspace.build(components=SELECTIONS[name]).size for name in ("nothing", "timer", "everything")}
    assert sizes["nothing"] < 16 * 1024, sizes
    assert sizes["nothing"] < sizes["timer"] < sizes["everything"], sizes
