"""The component smp: several CPUs in the one address space (kernel-src/kernel/smp/, lesson 10's
application apps/smp), built with make and booted for real in QEMU with -smp N.

The machines are the workbench's own (`Machine`, with the machine options it always uses; `-smp`
goes in through `extra_args` until `Machine(cpus=N)` exists). One case needs a CPU that never
arrives: QEMU cannot hold one vCPU back by itself, its gdbstub can (vCont continues the others
only), so that case drives QEMU through a small subprocess harness of its own.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from workbench.guest.machine import Machine
from workbench.kernel.image import Image
from workbench.kernel.skeleton import skeleton_source
from workbench.resources import kernel_source

pytestmark = pytest.mark.qemu

APP = "apps/smp"
KERNEL_VIRTUAL_BASE = 0xFFFF_FFFF_8000_0000
COUNTER_ITERATIONS = 10_000_000  # per thread: tens of ms, so the vCPU threads overlap even on a busy host
LOCKED_ITERATIONS = 20_000  # with the lock: contended spinning under TCG is slow
BOOT_TIMEOUT = 30.0


def make(source: Path, build_dir: Path, *arguments: str) -> Path:
    subprocess.run(["make", "-s", f"BUILD_DIR={build_dir}", *arguments], cwd=source, check=True,
                   capture_output=True, text=True)
    return build_dir / "unikernel.elf"


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make(kernel_source(), tmp_path_factory.mktemp("smp") / "build", f"APP={APP}")


@contextlib.contextmanager
def boot(image: Path, cpus: int, *extra: str) -> Iterator[Machine]:
    with Machine(image, name=f"smp-{cpus}", extra_args=("-smp", str(cpus), *extra)) as machine:
        machine.wait_for("> ", timeout=BOOT_TIMEOUT)
        yield machine


def console_lines(machine: Machine) -> list[str]:
    return machine.console.text.splitlines()


@pytest.mark.parametrize("cpus", [1, 2, 4, 8])
def test_every_cpu_arrives_says_so_and_is_listed(image: Path, cpus: int) -> None:
    with boot(image, cpus) as machine:
        lines = console_lines(machine)
        assert f"kernel: {cpus} CPU{'' if cpus == 1 else 's'} in the ACPI MADT, local APIC at 0xfee00000 " \
               "(xAPIC), start-up code at 0x8000" in lines
        arrivals = [line for line in lines if re.fullmatch(r"kernel: cpu \d+ (up|did not start.*)", line)]
        # One whole line each (console_lock), CPU 0 first; the others arrive together, in any order.
        assert arrivals[:1] == ["kernel: cpu 0 up"]
        in_cpu_order = sorted(arrivals, key=lambda line: int(line.split()[2]))
        assert in_cpu_order == [f"kernel: cpu {cpu} up" for cpu in range(cpus)]
        assert f"app: {cpus} CPU{'' if cpus == 1 else 's'}, one address space" in lines
        every = ",".join(str(cpu) for cpu in range(cpus))
        assert machine.request("cpus").line == f"ok cpus count={cpus} up={every} apic-ids={every}"
        assert machine.request("help").line == "ok help commands=help,cpus,reader,remap,stop,counter,exit"


def hex_field(pattern: str, text: str) -> int:
    found = re.search(pattern, text, re.MULTILINE)
    assert found is not None, f"no {pattern!r} in {text!r}"
    return int(found[1], 16)


def test_every_cpu_runs_in_long_mode_on_the_kernels_page_tables(image: Path) -> None:
    with boot(image, 4) as machine:
        cr3 = hex_field(r"page tables: cr3=0x([0-9a-f]+)", machine.console.text)
        registers = machine.hmp("info registers -a")
        blocks = re.split(r"^CPU#\d+\s*$", registers, flags=re.MULTILINE)[1:]
        assert len(blocks) == 4
        for block in blocks:
            assert hex_field(r"CR3=([0-9a-f]+)", block) == cr3
            assert hex_field(r"EFER=([0-9a-f]+)", block) & 0x400  # LMA: long mode active
            assert " CS64 " in block
        gs_bases = [hex_field(r"^GS =\w+ ([0-9a-f]+)", block) for block in blocks]
        trs = [hex_field(r"^TR =\w+ ([0-9a-f]+)", block) for block in blocks]
        cpus_at = Image.load(image).symbol("cpus").vaddr
        assert gs_bases[0] == cpus_at and len(set(gs_bases)) == 4 and len(set(trs)) == 4  # own block, own TSS


def read_u64(machine: Machine, vaddr: int) -> int:
    """A word of the image's data, by its physical address (the image is loaded at vaddr - base)."""
    return int(machine.hmp(f"xp /1gx {vaddr - KERNEL_VIRTUAL_BASE:#x}").split(":")[1].split()[0], 16)


@pytest.mark.parametrize("cpus", [2, 4, 8])
def test_a_remap_without_a_shootdown_leaves_the_reader_on_the_old_frame(image: Path, cpus: int) -> None:
    symbols = Image.load(image)
    with boot(image, cpus) as machine:
        reader = machine.request(f"reader {cpus - 1}")
        assert reader.line.startswith(f"ok reader cpu={cpus - 1} vaddr=0xffffc00000000000 frame=0x")
        assert reader["value"] == "0x1"
        local = machine.request("remap local")
        assert local["old-frame"] == reader["frame"] and local["new-frame"] != local["old-frame"]
        assert (local["old-value"], local["value"], local["reader"], local["stale"]) == ("0x1", "0x2", "0x1", "yes")
        assert read_u64(machine, symbols.symbol("reader_value").vaddr) == 1  # still the old frame's
        shootdown = machine.request("remap shootdown")
        assert (shootdown["old-value"], shootdown["value"], shootdown["reader"], shootdown["stale"]) == (
            "0x2", "0x3", "0x3", "no")
        assert read_u64(machine, symbols.symbol("reader_value").vaddr) == 3
        stop = machine.request("stop")
        assert stop["cpu"] == str(cpus - 1) and stop.number("reads") > 0 and stop["value"] == "0x3"
        assert machine.request("stop").line == "error stop no reader runs"


@pytest.mark.parametrize("cpus", [2, 4, 8])
def test_the_counter_loses_increments_without_the_lock_and_none_with_it(image: Path, cpus: int) -> None:
    with boot(image, cpus) as machine:
        racy = machine.request(f"counter {cpus} {COUNTER_ITERATIONS} nolock", timeout=120)
        expected = cpus * COUNTER_ITERATIONS
        assert racy.number("expected") == expected and racy.number("threads") == cpus
        assert 0 < racy.number("lost") == expected - racy.number("count")
        locked = machine.request(f"counter {cpus} {LOCKED_ITERATIONS} lock", timeout=120)
        assert locked.line == (f"ok counter threads={cpus} iterations={LOCKED_ITERATIONS} mode=lock "
                               f"expected={cpus * LOCKED_ITERATIONS} count={cpus * LOCKED_ITERATIONS} lost=0")


def test_one_cpu_counts_alone_and_has_no_cpu_for_a_reader(image: Path) -> None:
    with boot(image, 1) as machine:
        assert machine.request("counter 1 100000 nolock").line == (
            "ok counter threads=1 iterations=100000 mode=nolock expected=100000 count=100000 lost=0")
        assert machine.request("reader 1").line == (
            "error reader cpu 1 is not free: it must be up, idle, and not cpu 0")
        assert machine.request("remap local").line == "error remap no reader runs: start one with reader CPU"
        assert machine.request("counter 2 10 lock").line == (
            "error counter threads must be 1 to 1: cpu 0 and the free cpus")


def test_bad_requests_get_error_lines(image: Path) -> None:
    with boot(image, 2) as machine:
        assert machine.request("reader 0").line == "error reader cpu 0 is not free: it must be up, idle, and not cpu 0"
        assert machine.request("reader x").line == "error reader not a number: x"
        assert machine.request("reader 1").line.startswith("ok reader cpu=1 ")
        assert machine.request("reader 1").line == "error reader a reader runs on cpu 1: stop it first"
        assert machine.request("remap everywhere").line == (
            "error remap mode must be shootdown or local, not everywhere")
        assert machine.request("counter 2 10 lock").line == (
            "error counter threads must be 1 to 1: cpu 0 and the free cpus")  # the reader holds cpu 1
        assert machine.request("counter 1 0 lock").line == "error counter iterations must be 1 to 100000000"
        assert machine.request("counter 1 10 maybe").line == "error counter mode must be lock or nolock, not maybe"


def test_without_acpi_the_mp_table_lists_the_cpus(image: Path) -> None:
    with boot(image, 4, "-machine", "acpi=off") as machine:
        assert "kernel: 4 CPUs in the MP table, local APIC at 0xfee00000 (xAPIC), start-up code at 0x8000" \
            in console_lines(machine)
        assert machine.request("cpus").line == "ok cpus count=4 up=0,1,2,3 apic-ids=0,1,2,3"


def test_the_skeleton_builds_and_without_the_shootdown_the_reader_stays_stale(tmp_path: Path) -> None:
    skeleton = make(skeleton_source(), tmp_path / "build", f"APP={APP}")
    with boot(skeleton, 2) as machine:
        machine.request("reader 1")
        assert machine.request("remap shootdown")["stale"] == "yes"


def test_an_image_without_smp_links_none_of_it(tmp_path: Path) -> None:
    hello = Image.load(make(kernel_source(), tmp_path / "hello", "COMPONENTS="))
    default = Image.load(make(kernel_source(), tmp_path / "app"))
    for image in (hello, default):
        assert not {"smp_init", "cpus", "cpu_start", "tlb_shootdown", "smp_trampoline"} & set(image.symbols)
    assert hello.size < 16 * 1024


class StoppedCpuHarness:
    """QEMU with the workbench's machine options and its gdbstub on a socket: the gdbstub continues
    every CPU but one, which stays stopped, as a CPU that never answers INIT-SIPI-SIPI would."""

    def __init__(self, image: Path, cpus: int, stopped: int, directory: Path) -> None:
        gdb_path = directory / "gdb"
        qemu = shutil.which("qemu-system-x86_64")
        assert qemu is not None
        self.process = subprocess.Popen(
            [qemu, "-machine", "microvm,pit=on,pic=on,rtc=off,isa-serial=on", "-accel", "tcg", "-cpu", "qemu64",
             "-m", "64M", "-smp", str(cpus), "-nodefaults", "-no-user-config", "-display", "none",
             "-chardev", "stdio,id=com1,signal=off", "-serial", "chardev:com1",
             "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04", "-kernel", str(image),
             "-chardev", f"socket,id=gdb,path={gdb_path},server=on,wait=off", "-gdb", "chardev:gdb", "-S"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.output = b""
        deadline = time.monotonic() + 10
        while not gdb_path.exists():
            assert time.monotonic() < deadline, "QEMU made no gdbstub socket"
            time.sleep(0.05)
        self.gdb = socket.socket(socket.AF_UNIX)
        self.gdb.connect(str(gdb_path))
        # gdb's thread ids are CPU indices plus one; CPUs that vCont does not name stay stopped.
        running = ";".join(f"c:{cpu + 1:x}" for cpu in range(cpus) if cpu != stopped)
        packet = f"vCont;{running}".encode()
        self.gdb.sendall(b"$%s#%02x" % (packet, sum(packet) & 0xFF))

    def _read(self, deadline: float) -> None:
        assert self.process.stdout is not None
        assert time.monotonic() < deadline, f"timed out; the console said {self.output.decode(errors='replace')!r}"
        console, gdb = self.process.stdout.fileno(), self.gdb.fileno()
        ready, _, _ = select.select([console, gdb], [], [], 0.2)
        if console in ready:
            self.output += os.read(console, 65536)
        if gdb in ready:
            self.gdb.recv(4096)  # the stub's acknowledgement

    def read_until(self, text: str) -> str:
        deadline = time.monotonic() + BOOT_TIMEOUT
        while text.encode() not in self.output:
            self._read(deadline)
        return self.output.decode()

    def request(self, line: str) -> str:
        """The reply line: the next line after the echoed request, once the prompt is back."""
        assert self.process.stdin is not None
        start = len(self.output)
        self.process.stdin.write(line.encode() + b"\n")
        self.process.stdin.flush()
        deadline = time.monotonic() + BOOT_TIMEOUT
        while not (self.output[start:].count(b"\n") >= 2 and self.output.endswith(b"> ")):
            self._read(deadline)
        return self.output[start:].decode().splitlines()[1]

    def close(self) -> None:
        self.gdb.close()
        self.process.kill()
        self.process.wait()


@pytest.mark.usefixtures("cpu_held_back")
def test_a_cpu_that_never_arrives_is_named_and_the_others_go_on(image: Path, tmp_path: Path) -> None:
    harness = StoppedCpuHarness(image, cpus=4, stopped=2, directory=tmp_path)
    try:
        text = harness.read_until("> ")
        arrivals = [line for line in text.splitlines() if line.startswith("kernel: cpu ")]
        # The others arrive together, in any order; the one that did not is named after its second.
        assert arrivals[0] == "kernel: cpu 0 up" and arrivals[-1] == "kernel: cpu 2 did not start (APIC id 2)"
        assert sorted(arrivals[1:-1]) == ["kernel: cpu 1 up", "kernel: cpu 3 up"]
        assert harness.request("cpus") == "ok cpus count=4 up=0,1,3 apic-ids=0,1,2,3"
        assert harness.request("reader 2") == "error reader cpu 2 is not free: it must be up, idle, and not cpu 0"
        assert harness.request("reader 3").startswith("ok reader cpu=3 ")
        assert harness.request("remap shootdown").endswith("stale=no")  # CPU 2 is not asked, so not waited for
        assert harness.request("stop").startswith("ok stop cpu=3 ")
        assert harness.request("counter 3 1000 lock") == (
            "ok counter threads=3 iterations=1000 mode=lock expected=3000 count=3000 lost=0")
    finally:
        harness.close()
