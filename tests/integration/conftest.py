"""What the installed QEMU can do that some tests need, each measured once per session."""

from __future__ import annotations

import subprocess

import pytest

from workbench.guest.machine import GuestTimeout, Machine
from workbench.kernel.image import Image
from workbench.resources import kernel_source


@pytest.fixture(scope="session")
def smp_image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    """apps/smp (lesson 10's application: the smp component and its requests), built once."""
    build = tmp_path_factory.mktemp("smp") / "build"
    subprocess.run(["make", "-s", f"BUILD_DIR={build}", "APP=apps/smp"], cwd=kernel_source(), check=True,
                   capture_output=True, text=True)
    return Image.load(build / "unikernel.elf")


@pytest.fixture(scope="session")
def cpu_held_back(smp_image: Image) -> None:
    """Skip unless QEMU's gdbstub can let some CPUs run while another stays stopped.

    The tests of a CPU that never arrives hold one back that way (`vCont;c:1;c:2;c:4`). QEMU 7.2
    runs the CPUs named; QEMU 10.0 runs none of them (measured: naming every CPU runs them all),
    so there the held-back CPU cannot be made, and the reason is printed with the skip.
    """
    machine = Machine(smp_image, name="held-back-probe", cpus=2, gdb=True)
    machine.start(paused=True)
    try:
        machine.gdb.resume_threads((1,))  # CPU 0 alone: it boots and says so, or nothing runs
        machine.wait_for("kernel: booted", timeout=30)
    except GuestTimeout:
        pytest.skip("this QEMU's gdbstub runs no CPU when a vCont continues only some of them, "
                    "so a CPU cannot be held back (QEMU 10.0 behaves so; 7.2 runs the CPUs named)")
    finally:
        machine.close()
