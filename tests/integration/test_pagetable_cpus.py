"""The page-table explorer marks the top table each CPU's CR3 points to, as QEMU prints the CR3s.

Against `apps/smp` on three CPUs: every CPU's CR3 from the monitor's `info registers -a` must
be in the view's `cpu_tables`, and the top table shown carries the CPUs whose CR3 points to it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.qemu_registers import blocks, field
from workbench.guest.machine import Machine
from workbench.kernel.image import Image
from workbench.resources import kernel_source
from workbench.views import PageTableExplorer
from workbench.views.pagetable import cpu_tables_text

pytestmark = pytest.mark.qemu


@pytest.fixture(scope="module")
def machine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Machine]:
    build: Path = tmp_path_factory.mktemp("smp-pagetable") / "build"
    subprocess.run(["make", "-s", f"BUILD_DIR={build}", "APP=apps/smp"], cwd=kernel_source(), check=True,
                   capture_output=True, text=True)
    with Machine(Image.load(build / "unikernel.elf"), name="test-pagetable-cpus", cpus=3) as running:
        running.wait_for("> ", timeout=30)
        yield running


def qemus_cr3s(machine: Machine) -> dict[int, int]:
    return {n: field("CR3", block) for n, block in blocks(machine.hmp("info registers -a")).items()}


def test_the_explorer_marks_each_cpus_top_table(machine: Machine) -> None:
    machine.pause()
    view = PageTableExplorer(machine, live=False)
    said = qemus_cr3s(machine)
    assert [row["cpu"] for row in view.cpu_tables] == sorted(said) == [0, 1, 2]
    for row in view.cpu_tables:
        cr3 = said[row["cpu"]]
        assert int(row["cr3"], 16) == cr3
        assert int(row["table_paddr"], 16) == cr3 & ~0xfff & ((1 << 52) - 1)
        assert row["shown"] == (int(row["table_paddr"], 16) == int(view.root["table_paddr"], 16))
    assert view.root["cpus"] == [cpu for cpu, cr3 in said.items() if cr3 & ~0xfff == int(view.root["table_paddr"], 16)]
    assert view.root["cpus"] == [0, 1, 2]  # one address space: every CPU on the kernel's PML4
    assert "CR3 of cpu 0, 1, 2: this table" in view.static_html()
    machine.resume()


def test_a_cpu_on_another_table_is_named_with_it() -> None:
    rows = [{"cpu": 0, "cr3": "0x1000", "table_paddr": "0x1000", "shown": True},
            {"cpu": 1, "cr3": "0x5000", "table_paddr": "0x5000", "shown": False}]
    assert cpu_tables_text(rows) == "CR3 of cpu 0: this table; cpu 1: the table at 0x5000"
