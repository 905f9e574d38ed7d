"""A Linux guest that runs an application in a container: the unikernel's general-purpose rival.

Lesson 09 builds one application (kernel-src/apps/greeter) twice: as the unikernel, and as a
static Linux program (`make linux`). This module puts the second into a Linux guest:

- `build_initramfs()` writes, at build time, a minimal initramfs (a newc cpio archive, made
  here in Python): Debian's static busybox as /bin/busybox with a link per applet, the init
  script below, and /container, the container's root file system: busybox again (a base image
  has a shell, as Alpine's does) and the application.
- `LinuxGuest` boots Debian's stock kernel (`stock_linux`) with it on QEMU's `pc` machine, and
  drives the init script over the serial console: `run_container()` starts the application in
  its own namespaces (`unshare` from busybox: pid, mount, uts, ipc, net) with /container as its
  root (`chroot`), on the console, so the host talks to it with the same requests as to the
  unikernel; when it exits, the guest says how and what its /tmp holds.

The init script reports what the guest offers, measured inside it: the system calls its kernel
has (its `__x64_sys_*` entry functions in /proc/kallsyms), the programs that could be executed,
and, once the application runs, free memory and the processes.
"""

from __future__ import annotations

import re
import shutil
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from elftools.elf.elffile import ELFFile

from workbench.compare.stock_linux import LinuxKernel
from workbench.errors import WorkbenchError
from workbench.guest.machine import Machine
from workbench.kernel.image import Image

BUSYBOX_PACKAGE = "busybox-static"
COMMAND_LINE = "console=ttyS0 loglevel=1 panic=0"  # only emergencies may interleave with the console
MEMORY_MIB = 256
BOOT_TIMEOUT = 180.0  # about 6 s here under TCG; generous for a loaded CI machine
READY = re.compile(r"guest: ready (?P<facts>[^\n]*)\n")
FACTS = re.compile(r"guest: facts (?P<facts>[^\n]*)\n")  # may follow the prompt: printed meanwhile
EXITED = re.compile(r"guest: container exited (?P<facts>[^\n]*)\n")
SPINNING = re.compile(r"guest: spinning on cpu (?P<cpu>\d+)\r?\n")
CONTAINER_ROOT = "container"
PF_EXECUTE = 0x1  # an ELF segment's flag: executable

# PID 1. Busybox's applets are links in /bin; every line meant for the host starts "guest: ".
INIT_SCRIPT = r"""#!/bin/busybox sh
# PID 1 of lesson 09's Linux guest, written by workbench/compare/linux_guest.py. It mounts the kernel's
# file systems, says what the guest offers, then runs what the host types on the console:
#   container   run /greeter in a container, on this console, until it exits: in new pid,
#               mount, uts, ipc and network namespaces, with /container as its root and its
#               own /proc (so it sees its own processes only).
#   spin        start one busy loop per CPU, each pinned to its CPU and saying so once it runs
#               there: every CPU then runs a process of its own, in an address space of its own.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# No address-space randomisation: a request does the same in every run, so a grader can repeat a
# student's attack in a guest of its own. (The greeter tells where its buffer is anyway.)
echo 0 > /proc/sys/kernel/randomize_va_space

echo "guest: ready guest-programs=$(ls /bin | wc -l)"

# Once the application runs (or after 5 s): memory and processes, then and in the container
# (this shell, counting, is one of them); and the system calls the kernel offers, its x86-64
# entry functions, each name once (counted on the first run only: it takes a while).
facts() {
    tries=0
    until pid=$(pidof greeter) || [ $tries -ge 500 ]; do usleep 10000; tries=$((tries + 1)); done
    namespace=$(readlink /proc/$pid/ns/pid)
    processes=0 in_container=0
    for process in /proc/[0-9]*; do
        processes=$((processes + 1))
        [ "$(readlink $process/ns/pid)" = "$namespace" ] && in_container=$((in_container + 1))
    done
    kernel_threads=$(($(grep -l '^PPid:[[:space:]]*2$' /proc/[0-9]*/status | wc -l) + 1))
    [ -f /tmp/system-calls ] || grep ' [Tt] __x64_sys_' /proc/kallsyms | sed 's/.* __x64_sys_//; s/\..*//' |
        grep -vx ni_syscall | sort -u | wc -l > /tmp/system-calls
    echo "guest: facts memory-free-kib=$(awk '/^MemFree:/ {print $2}' /proc/meminfo)" \
         "memory-total-kib=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)" \
         "processes=$processes kernel-threads=$kernel_threads container-processes=$in_container" \
         "container-programs=$(($(ls /container/bin | wc -l) + 1)) system-calls=$(cat /tmp/system-calls)"
}

while read -r command; do
    case "$command" in
    container)
        facts &
        unshare --fork --pid --mount --uts --ipc --net chroot /container \
            /bin/sh -c 'mount -t proc proc /proc && exec /greeter'
        status=$?
        wait
        echo "guest: container exited status=$status tmp=$(ls /container/tmp | tr '\n' ',')"
        ;;
    spin)
        cpu=0 cpus=$(nproc)
        while [ $cpu -lt $cpus ]; do
            taskset $(printf %x $((1 << cpu))) sh -c 'echo "guest: spinning on cpu $0"; while :; do :; done' $cpu &
            cpu=$((cpu + 1))
        done
        ;;
    "") ;;
    *) echo "guest: unknown command $command; the commands are: container, spin" ;;
    esac
done
"""


class LinuxGuestError(WorkbenchError):
    """The Linux guest could not be built or did not behave as its init script promises."""


@dataclass(frozen=True)
class GuestFiles:
    """What the Linux guest boots: the stock kernel, and the initramfs made for it."""

    kernel: LinuxKernel
    initramfs: Path
    program: Path  # the application as a static Linux program
    root_file_system_bytes: int  # the container's root: busybox, the application, its links

    @property
    def kernel_bytes(self) -> int:
        return self.kernel.vmlinuz.stat().st_size

    @property
    def initramfs_bytes(self) -> int:
        return self.initramfs.stat().st_size


def _facts(text: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in text.split() if "=" in pair)


def static_busybox() -> Path:
    """Debian's busybox-static: one statically linked binary with every applet."""
    found = shutil.which("busybox")
    if found is None:
        raise LinuxGuestError(f"busybox is not installed; install it with: sudo apt-get install {BUSYBOX_PACKAGE}")
    path = Path(found).resolve()
    with path.open("rb") as stream:
        if any(segment["p_type"] == "PT_INTERP" for segment in ELFFile(stream).iter_segments()):
            raise LinuxGuestError(f"{path} is linked dynamically and would need its libraries in the guest; "
                                  f"install the static one: sudo apt-get install {BUSYBOX_PACKAGE}")
    return path


def busybox_applets(busybox: Path) -> list[str]:
    """The names busybox answers to (`busybox --list`): one link each in /bin."""
    done = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, timeout=10, check=False)
    names = [name for name in done.stdout.split() if re.fullmatch(r"[A-Za-z0-9_.\[-]+", name)]
    if done.returncode != 0 or not names:
        raise LinuxGuestError(f"{busybox} --list did not name its applets: {done.stderr.strip()}")
    return sorted(names)


def find_code(program: Path, pattern: bytes) -> int | None:
    """The first vaddr in `program`'s executable segments where `pattern`'s bytes are, or None.

    The bytes need not be an instruction the compiler wrote: decoding may start anywhere.
    """
    with Path(program).open("rb") as stream:
        for segment in ELFFile(stream).iter_segments():
            if segment["p_type"] == "PT_LOAD" and segment["p_flags"] & PF_EXECUTE:
                offset = segment.data().find(pattern)
                if offset >= 0:
                    return int(segment["p_vaddr"]) + offset
    return None


class Cpio:
    """A newc ("070701") cpio archive, as the kernel unpacks an initramfs: deterministic (owner
    root, time 0, inodes in order), with device nodes made without being root."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._inode = 0

    def _add(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        self._inode += 1
        encoded = name.encode() + b"\0"
        fields = (self._inode, mode, 0, 0, 2 if stat.S_ISDIR(mode) else 1, 0, len(data), 0, 0, *rdev,
                  len(encoded), 0)
        header = b"070701" + b"".join(b"%08X" % value for value in fields)
        self._parts += [header, encoded, b"\0" * (-(len(header) + len(encoded)) % 4), data, b"\0" * (-len(data) % 4)]

    def directory(self, name: str) -> None:
        self._add(name, stat.S_IFDIR | 0o755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._add(name, stat.S_IFREG | mode, data)

    def symlink(self, name: str, target: str) -> None:
        self._add(name, stat.S_IFLNK | 0o777, target.encode())

    def character_device(self, name: str, major: int, minor: int) -> None:
        self._add(name, stat.S_IFCHR | 0o600, rdev=(major, minor))

    def bytes(self) -> bytes:
        self._add("TRAILER!!!", 0)
        return b"".join(self._parts)


def build_initramfs(program: Path, kernel: LinuxKernel, destination: Path) -> GuestFiles:
    """Write the initramfs for `program` to `destination` (a cpio file); say what it holds."""
    busybox = static_busybox()
    applets = busybox_applets(busybox)
    busybox_bytes, program_bytes = busybox.read_bytes(), Path(program).read_bytes()
    archive = Cpio()
    for directory in ("bin", "dev", "proc", "sys", "tmp", CONTAINER_ROOT):
        archive.directory(directory)
    archive.character_device("dev/console", 5, 1)  # the kernel opens it for init, before devtmpfs
    archive.file("init", INIT_SCRIPT.encode(), 0o755)
    for root in ("", f"{CONTAINER_ROOT}/"):
        if root:
            for directory in ("bin", "proc", "tmp"):
                archive.directory(root + directory)
        archive.file(f"{root}bin/busybox", busybox_bytes, 0o755)
        for applet in applets:
            if applet != "busybox":
                archive.symlink(f"{root}bin/{applet}", "busybox")
    archive.file(f"{CONTAINER_ROOT}/greeter", program_bytes, 0o755)
    destination.parent.mkdir(parents=True, exist_ok=True)
    destination.write_bytes(archive.bytes())
    root_bytes = len(busybox_bytes) + len(program_bytes) + sum(len("busybox") for a in applets if a != "busybox")
    return GuestFiles(kernel, destination, Path(program), root_bytes)


@dataclass(frozen=True)
class ContainerRun:
    """One run of the application in its container: what the guest held while it ran."""

    seconds_to_first_output: float  # from the `container` command to the application's banner
    memory_free_kib: int
    memory_total_kib: int  # what Linux counts as its RAM (without its own code and reserved pages)
    processes: int  # every process in the guest, kernel threads included
    kernel_threads: int
    container_processes: int  # in the container's pid namespace
    container_programs: int  # files in the container that exec could run
    system_calls: int  # the kernel's __x64_sys_* entry functions


class LinuxGuest:
    """The stock Linux kernel, booted with the initramfs of `files`, driven over its console."""

    def __init__(self, files: GuestFiles, *, name: str = "linux-guest", memory_mib: int = MEMORY_MIB,
                 cpus: int = 1) -> None:
        self.files = files
        self.machine = Machine(Image.foreign(files.kernel.vmlinuz), machine_type="pc", memory_mib=memory_mib,
                               cpus=cpus, append=COMMAND_LINE, extra_args=("-initrd", str(files.initramfs)),
                               name=name)
        self.seconds_to_ready = 0.0  # from starting QEMU to the init script's first line
        self.guest_programs = 0  # links and files in the guest's /bin

    def start(self, timeout: float = BOOT_TIMEOUT) -> LinuxGuest:
        """Boot until the init script is ready for commands."""
        started = time.monotonic()
        self.machine.start()
        try:
            facts = _facts(self.machine.wait_for(READY, timeout)["facts"])
        except BaseException:
            self.machine.close()
            raise
        self.seconds_to_ready = time.monotonic() - started
        self.guest_programs = int(facts["guest-programs"])
        return self

    def run_container(self, banner: str = "app: ", timeout: float = 60.0) -> ContainerRun:
        """Start the application in its container and wait until it and the guest's facts are there."""
        self.machine.console.skip_to_end()
        started = time.monotonic()
        self.machine.send_line("container")
        self.machine.wait_for(banner, timeout)
        seconds = time.monotonic() - started
        facts = {key: int(value) for key, value in _facts(self.machine.wait_for(FACTS, timeout)["facts"]).items()}
        return ContainerRun(seconds, facts["memory-free-kib"], facts["memory-total-kib"], facts["processes"],
                            facts["kernel-threads"], facts["container-processes"], facts["container-programs"],
                            facts["system-calls"])

    def spin(self, timeout: float = 60.0) -> None:
        """Put a busy process on every CPU, each pinned to its own, and wait until each runs there.

        Until the guest is closed, each CPU's CR3 is then its own process's page tables.
        """
        self.machine.console.skip_to_end()
        self.machine.send_line("spin")
        arrived = {int(self.machine.wait_for(SPINNING, timeout)["cpu"]) for _ in range(self.machine.cpu_count)}
        if arrived != set(range(self.machine.cpu_count)):
            raise LinuxGuestError(f"the guest's busy loops said they run on CPUs {sorted(arrived)}, "
                                  f"not on each of its {self.machine.cpu_count}")

    def wait_for_exit(self, timeout: float = 60.0) -> tuple[int, list[str]]:
        """After the application ended: its exit status (128 + signal when killed by one), and
        the files its container left in /tmp."""
        facts = _facts(self.machine.wait_for(EXITED, timeout)["facts"])
        return int(facts["status"]), [name for name in facts.get("tmp", "").split(",") if name]

    def close(self) -> None:
        self.machine.close()

    def __enter__(self) -> LinuxGuest:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<LinuxGuest {self.files.kernel.package} {self.machine.state.value}>"
