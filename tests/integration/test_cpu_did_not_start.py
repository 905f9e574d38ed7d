"""A CPU that never arrives is a one-line error naming it and where it stopped.

As in test_smp_kernel.py's harness, QEMU's gdbstub lets every CPU run but one (a vCont that does
not name it), so that CPU never answers its INIT-SIPI-SIPI: the kernel says `kernel: cpu 2 did
not start (APIC id 2)` and boots on; the machine's wait for the prompt raises CpuDidNotStart,
with the place QEMU's `info registers -a` gives for that CPU, and leaves the machine paused there.
"""

from __future__ import annotations

import re

import pytest

from tests.support.qemu_registers import blocks
from workbench.guest.cpus import CpuDidNotStart, cpus_that_did_not_start
from workbench.guest.machine import Machine, MachineState
from workbench.kernel.image import Image

pytestmark = pytest.mark.qemu

HELD_BACK = 2


@pytest.mark.usefixtures("cpu_held_back")
def test_a_cpu_held_back_is_named_with_where_it_is(smp_image: Image) -> None:
    machine = Machine(smp_image, name="test-did-not-start", cpus=4, gdb=True).start(paused=True)
    try:
        machine.gdb.resume_threads(tuple(cpu + 1 for cpu in range(4) if cpu != HELD_BACK))
        with pytest.raises(CpuDidNotStart) as raised:
            machine.wait_for("> ", timeout=60)
        message = str(raised.value)
        block = blocks(machine.hmp("info registers -a"))[HELD_BACK]
        # In real mode, waiting for its SIPI, QEMU prints EIP= rather than RIP=.
        rip, halted = re.search(r"\b[RE]IP=([0-9a-f]+)", block), re.search(r"\bHLT=(\d)", block)
        assert rip is not None and halted is not None
        state = "halted" if halted[1] == "1" else "stopped"  # an AP that got no SIPI waits halted
        assert message.startswith(f"cpu {HELD_BACK} did not start (APIC id {HELD_BACK}): it is {state} at "
                                  f"{int(rip[1], 16):#x}")
        assert message.endswith("(3 of 4 CPUs up); the machine is paused") and "\n" not in message
        assert machine.state is MachineState.PAUSED
        machine.resume()
        assert machine.request("cpus").line == "ok cpus count=4 up=0,1,3 apic-ids=0,1,2,3"
    finally:
        machine.close()


def test_the_kernels_line_is_read_as_the_contract_says() -> None:
    text = "kernel: cpu 0 up\nkernel: cpu 3 did not start (APIC id 7)\nkernel: cpu 1 up\n"
    assert cpus_that_did_not_start(text) == ((3, 7),)
    assert cpus_that_did_not_start("kernel: cpu 1 up\n") == ()
