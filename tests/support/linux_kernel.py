"""A stock distribution Linux kernel, for checking the paging model against a real, large guest.

Used by tests/integration/test_paging_oracle.py and benchmarks/pagewalk.py. The kernel itself comes
from `workbench.compare.stock_linux` (apt, cached outside the repository). `boot_paused()` boots it
without an initrd until it panics, with its final page tables in place, and pauses it.
"""

from __future__ import annotations

import re

from workbench.compare.stock_linux import LinuxKernel, LinuxKernelUnavailable, cache_directory, stock_kernel
from workbench.guest.machine import Machine
from workbench.kernel.image import Image

__all__ = ["BOOT_TIMEOUT", "LinuxKernel", "LinuxKernelUnavailable", "boot_paused", "cache_directory", "stock_kernel"]

# The command line: serial console; no reboot after the panic (panic=0 waits forever); and the
# built-in initramfs's /root directory as the "init" to run. Since that path exists, the kernel
# skips mounting a root file system, frees its init memory and write-protects its text and
# rodata (its final page tables), then fails to execute a directory and panics.
COMMAND_LINE = "console=ttyS0 panic=0 rdinit=/root"
FINAL_TABLES = "Write protecting the kernel read-only data"
PANIC = re.compile(r"Kernel panic - not syncing[^\n]*\n")
BOOT_TIMEOUT = 180.0  # about 4 s on 2 cores under TCG; generous for a loaded CI machine


def boot_paused(kernel: LinuxKernel, *, cpu: str = "qemu64", memory_mib: int = 512,
                machine_type: str = "pc", timeout: float = BOOT_TIMEOUT) -> Machine:
    """Boot `kernel` until it panics with its final page tables, pause it and return the machine.

    `qemu64` gives 4-level paging; add `la57=on` for 5-level. The caller closes the machine.
    """
    machine = Machine(Image.foreign(kernel.vmlinuz), machine_type=machine_type, cpu=cpu,
                      memory_mib=memory_mib, append=COMMAND_LINE, name="linux-" + re.sub(r"\W", "-", cpu))
    try:
        machine.start()
        machine.wait_for(PANIC, timeout)
        machine.pause()
        if FINAL_TABLES not in machine.console.text:
            raise LinuxKernelUnavailable(
                f"{kernel.name} panicked before it set up its final page tables "
                f"(no {FINAL_TABLES!r} line); its last output was:\n{machine.console.tail()}"
            )
    except BaseException:
        machine.close()
        raise
    return machine
