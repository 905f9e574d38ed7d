"""The `workbench` command: the same workbench for people who are not in a notebook.

    workbench lab       JupyterLab on a copy of the lessons (--dir DIR, default ~/unikernel-workbench);
                        with --hub, as a JupyterHub single-user server
    workbench build     build the unikernel, print its sections
    workbench run       build, boot, and connect the terminal to the guest's console
    workbench pagetable the page tables of a freshly booted guest (address space, tree, ...)
    workbench translate VADDR   one page walk, step by step (VADDR may be a symbol)
    workbench doctor    what this machine has, and what to install for what is missing
    workbench student-edition DIR   the lessons without their solutions (nbgrader's release version)
    workbench student-edition --wheel DIR   the students' wheel: no solutions, no hidden tests
    workbench verify-grades COURSE ASSIGNMENT   after nbgrader autograde: each submission's checks
                        again in a fresh sandbox, without the student's code; lists every disagreement
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import select
import shutil
import sys
import termios
import time
import tty
import typing
from pathlib import Path

from workbench import resources
from workbench.classroom import sandbox, sandbox_limits
from workbench.classroom.student_edition import write_student_edition, write_student_wheel
from workbench.errors import InvalidInput, WorkbenchError
from workbench.guest import qemu
from workbench.guest.machine import ACCELERATORS, MACHINE_TYPES, Machine
from workbench.kernel import toolchains
from workbench.kernel.build import SCENARIOS, BuildError, build_image
from workbench.kernel.image import Image, image_file
from workbench.kernel.workspace import Workspace
from workbench.models import paging
from workbench.models.snapshot import Snapshot


class _Parser(argparse.ArgumentParser):
    """argparse, with its complaints on one line like every other bad input."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _seconds(text: str) -> float:
    """An argparse type: a finite number of seconds, not negative."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"seconds must be 0 or more, not {text!r}")
    return value


def _source_dir(given: str | None) -> Path:
    """--source, else the current directory when it is a workspace, else the workspace
    `command-line`, made from the students' kernel-src (workbench/kernel/skeleton.py) on first
    use: a build writes beside its source, and the pristine skeleton every workspace and the
    grader's builds are copied from must stay as it is."""
    if given:
        return Path(given).resolve()
    here = Path.cwd()
    if (here / "Makefile").is_file() and (here / "app").is_dir():
        return here
    return Workspace.open("command-line").root


# The server runs in place of this process (exec), so that whoever stops it (a terminal, a
# container runtime, JupyterHub's spawner) signals the server itself. JupyterHub's local spawners
# stop a server with SIGINT first; a Jupyter server without a terminal takes SIGINT as a
# KeyboardInterrupt and exits at once, leaving its kernels (and their guests) to notice on their
# own and its runtime files behind. SIGTERM it handles fully, so SIGINT is made to mean SIGTERM
# (with a terminal, JupyterLab installs its own Ctrl-C handler over this one).
_SERVER = ("import signal, sys; signal.signal(signal.SIGINT, lambda *_: signal.raise_signal(signal.SIGTERM)); "
           "from {module} import main; sys.exit(main())")


def command_lab(args: argparse.Namespace) -> int:
    if args.hub and importlib.util.find_spec("jupyterhub") is None:
        raise WorkbenchError("--hub needs JupyterHub: pip install 'unikernel-workbench[classroom]'")
    copied = resources.copy_lessons(args.dir)  # checks the directory first: BadDirectory, exit 2
    directory = Path(args.dir).expanduser().resolve()
    for name in copied:
        print(f"workbench: copied {name} into {directory}")
    module = "jupyterhub.singleuser" if args.hub else "jupyterlab.labapp"
    argv = [sys.executable, "-c", _SERVER.format(module=module), f"--ServerApp.root_dir={directory}",
            *args.jupyter_args]
    if os.geteuid() == 0:
        argv.append("--allow-root")  # containers and CI run as root; JupyterLab refuses without this
    # Each lesson's workspace appears beside the notebooks, in JupyterLab's file browser.
    environment = {**os.environ, "WORKBENCH_WORKSPACES": str(directory / "workspaces")}
    if not args.hub:
        print(f"Starting JupyterLab on {directory} (Ctrl-C twice to stop)", flush=True)
    os.execve(sys.executable, argv, environment)  # noqa: S606 - our own argument list


def _build(args: argparse.Namespace) -> Image | None:
    """Build as the command line asks; print the diagnostics and return None if it fails."""
    try:
        return build_image(_source_dir(args.source), scenario=args.scenario, toolchain=args.toolchain,
                           components=args.components, app=args.app)
    except BuildError as error:
        print(error, file=sys.stderr)
        return None


def command_build(args: argparse.Namespace) -> int:
    image = _build(args)
    if image is None:
        return 1
    print(image)
    print(f"built in {image.build_seconds * 1000:.0f} ms with {image.toolchain}: {image.path}")
    return 0


def command_run(args: argparse.Namespace) -> int:
    image = _build(args)
    if image is None:
        return 1
    machine = Machine(image, machine_type=args.machine_type, accel=args.accel, memory_mib=args.memory)
    def echo(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    machine.console.add_listener(echo)
    print(f"[workbench] booting {image.path.name} on {args.machine_type} ({args.accel}); "
          "type requests and Enter, Ctrl-C stops the machine", file=sys.stderr)
    terminal = sys.stdin.isatty()
    saved = termios.tcgetattr(sys.stdin) if terminal else None
    try:
        if terminal:
            tty.setcbreak(sys.stdin)  # keys go to the guest as typed; the guest echoes them
        machine.start()
        while not machine.state.stopped_by_guest:
            ready, _, _ = select.select([sys.stdin], [], [], 0.2)
            if ready:
                typed = os.read(sys.stdin.fileno(), 1024)
                if not typed:  # end of input: let the guest run until it stops or Ctrl-C
                    machine.wait(timeout=args.timeout)
                    break
                machine.send(typed.decode(errors="replace"))
        outcome = machine.wait(timeout=5.0)
        print(f"\n[workbench] {outcome}", file=sys.stderr)
        return outcome.exit_status if outcome.exit_status is not None else 1
    except KeyboardInterrupt:
        print("\n[workbench] stopped by Ctrl-C", file=sys.stderr)
        return 130
    except WorkbenchError as error:
        print(f"\n[workbench] {error}", file=sys.stderr)
        return 1
    finally:
        machine.close()
        if saved is not None:
            termios.tcsetattr(sys.stdin, termios.TCSADRAIN, saved)


def _booted_snapshot(args: argparse.Namespace) -> tuple[Snapshot, Image]:
    """Boot the given image (or build the unikernel), let it settle, and snapshot it."""
    if args.image:
        with image_file(args.image).open("rb") as stream:
            is_elf = stream.read(4) == b"\x7fELF"
        image = Image.load(args.image) if is_elf else Image.foreign(args.image)  # e.g. a Linux bzImage
    else:
        image = build_image(_source_dir(args.source), toolchain=args.toolchain)
    with Machine(image, machine_type=args.machine_type, memory_mib=args.memory, append=args.append) as machine:
        if args.wait_for:
            machine.wait_for(args.wait_for, timeout=args.timeout)
        elif "app_main" in image.symbols:
            machine.wait_for("> ", timeout=args.timeout)  # our unikernel, at its prompt
        else:
            time.sleep(args.settle)
        return machine.snapshot("cli"), image


def command_pagetable(args: argparse.Namespace) -> int:
    snapshot, image = _booted_snapshot(args)
    if args.format == "tree":
        print(paging.format_tree(snapshot.tree(), max_depth=args.depth))
    elif args.format == "mappings":
        print(paging.format_mappings(snapshot.mappings()))
    elif args.format == "tlb":
        print(snapshot.info_tlb().replace("\r\n", "\n"), end="")
    else:
        space = snapshot.address_space(image)
        print(space)
        print(space.audit())
    return 0


def command_translate(args: argparse.Namespace) -> int:
    snapshot, image = _booted_snapshot(args)
    try:
        vaddr = int(args.vaddr, 0)
    except ValueError:
        vaddr = image.symbol(args.vaddr).vaddr  # a symbol name works too
    walk = snapshot.walk(vaddr)
    print(paging.format_walk(walk))
    return 0 if walk.ok else 2


def command_doctor(_: argparse.Namespace) -> int:
    problems = 0

    def report(ok: bool, what: str, fix: str = "") -> None:
        nonlocal problems
        problems += not ok
        print(f"{'ok' if ok else 'MISSING':<8} {what}" + (f"\n         fix: {fix}" if fix and not ok else ""))

    try:
        found = qemu.qemu_info()
        wanted = [t for t in MACHINE_TYPES if t in found.machine_types]
        report(True, f"QEMU {found.version_text} at {found.path}; machine types: {', '.join(wanted)}")
        report(found.qboot_rom is not None, f"qboot firmware for pc/q35: {found.qboot_rom or 'not found'}",
               "sudo apt-get install qemu-system-data (pc/q35 then boot with SeaBIOS, about 2x slower)")
        report(found.has_sandbox, "QEMU seccomp sandbox (-sandbox)", "a QEMU built with seccomp")
    except WorkbenchError as error:
        report(False, str(error), qemu.INSTALL_HINT)
    for name in toolchains.TOOLCHAINS:
        missing = toolchains.toolchain_missing(name)
        report(not missing, f"{name} toolchain" + (f" (missing: {', '.join(missing)})" if missing else ""),
               f"sudo apt-get install {toolchains.TOOLCHAIN_PACKAGES[name]}")
    kvm = qemu.kvm_usable()
    print(f"info     acceleration: TCG (default){'; /dev/kvm is usable with --accel kvm' if kvm else ''}")
    if os.geteuid() == 0:
        print("info     running as root: QEMU runs as the same user; prefer an ordinary account")
    try:
        sandbox.check_sandbox()
        report(True, f"grading sandbox (bubblewrap with a user namespace); {sandbox_limits.cgroup_note()}")
        print(f"info     grading side by side: {sandbox_limits.cpu_note()}")
    except sandbox.SandboxError as error:
        report(False, "grading sandbox: autograding cannot run here", str(error))
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    print(f"info     Chromium for browser tests: {chromium or 'not installed (./run-tests installs it)'}")
    return 1 if problems else 0


def command_verify_grades(args: argparse.Namespace) -> int:
    try:
        from workbench.classroom.verify import report, verify_grades  # noqa: PLC0415 - nbgrader, only for this command
    except ImportError as error:
        raise WorkbenchError(f"verify-grades needs nbgrader ({error}): pip install 'unikernel-workbench[grading]'") \
            from error

    checked, disagreements = verify_grades(args.course, args.assignment, jobs=args.jobs, db_url=args.db)
    for line in report(checked, disagreements):
        print(line)
    return 1 if disagreements else 0


def command_student_edition(args: argparse.Namespace) -> int:
    if args.wheel:
        print(f"{write_student_wheel(args.destination)}: the students' wheel, without solutions or hidden tests")
        return 0
    for name in write_student_edition(resources.lessons(), args.destination):
        print(f"{Path(args.destination) / name}.ipynb: nbgrader's student version")
    return 0


def _add_build_arguments(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
    sub.add_argument("--source", help="unikernel source (default: the workspace here, else workspace command-line)")
    sub.add_argument("--scenario", default="none", help=f"a fault to provoke at boot: {', '.join(SCENARIOS)}")
    sub.add_argument("--toolchain", default=toolchains.DEFAULT_TOOLCHAIN, choices=sorted(toolchains.TOOLCHAINS))
    sub.add_argument("--components", help="the kernel components to link, e.g. 'console-input timer' "
                                           "(default: the application's config.mk; '' for the base alone)")
    sub.add_argument("--app", default="app", help="the application's directory: app (default) or apps/NAME")
    return sub


def _add_lab(commands: typing.Any) -> None:
    lab = commands.add_parser("lab", help="start JupyterLab on a copy of the lessons; other options go to JupyterLab")
    lab.add_argument("--dir", default=str(resources.DEFAULT_LAB_DIR),
                     help="where the lessons and your workspaces live; lessons it lacks are copied in "
                          "(default: %(default)s)")
    lab.add_argument("--hub", action="store_true",
                     help="run as a JupyterHub single-user server (the command a hub's spawner starts)")
    lab.set_defaults(run=command_lab)


def _add_verify(commands: typing.Any) -> None:
    verify = commands.add_parser("verify-grades", help="after nbgrader autograde, check every grade again in a "
                                                      "fresh sandbox without the student's code")
    verify.add_argument("course", help="the nbgrader course directory (with nbgrader_config.py)")
    verify.add_argument("assignment", help="the assignment, as nbgrader names it (03-page-tables)")
    verify.add_argument("--jobs", type=int, default=1, help="submissions checked at once (default 1)")
    verify.add_argument("--db", help="the gradebook's database URL (default: the course's, as nbgrader_config.py says)")
    verify.set_defaults(run=command_verify_grades)


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="workbench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    _add_lab(commands)

    for name, function, text in (("build", command_build, "build the unikernel"),
                                 ("run", command_run, "build and boot, console on this terminal")):
        _add_build_arguments(commands.add_parser(name, help=text)).set_defaults(run=function)
    run = commands.choices["run"]
    run.add_argument("--machine-type", default="microvm", choices=MACHINE_TYPES)
    run.add_argument("--accel", default="tcg", choices=ACCELERATORS)
    run.add_argument("--memory", type=int, default=64, help="guest RAM in MiB")
    run.add_argument("--timeout", type=_seconds, default=3600.0, help="seconds to wait after input ends")

    for name, function, text in (
        ("pagetable", command_pagetable, "boot a guest, pause it, print its page tables"),
        ("translate", command_translate, "boot a guest, pause it, walk one vaddr (hex or symbol)"),
    ):
        sub = commands.add_parser(name, help=text)
        if name == "translate":
            sub.add_argument("vaddr", help="a virtual address (0x...) or a symbol of the image")
        else:
            sub.add_argument("--format", choices=("space", "tree", "mappings", "tlb"), default="space",
                             help="labelled address space (default), xv6-style tree, coalesced mappings, "
                                  "or QEMU's info tlb")
            sub.add_argument("--depth", type=int, default=None, help="tree: levels to show")
        sub.add_argument("--image", help="a kernel to boot instead of building the unikernel: an ELF with a "
                                         "PVH note, or a Linux bzImage (use --machine-type pc)")
        sub.add_argument("--append", help="the kernel command line, for a Linux image (e.g. 'console=ttyS0')")
        sub.add_argument("--source", help="unikernel source (default: the workspace here, else workspace command-line)")
        sub.add_argument("--toolchain", default=toolchains.DEFAULT_TOOLCHAIN, choices=sorted(toolchains.TOOLCHAINS))
        sub.add_argument("--machine-type", default="microvm", choices=MACHINE_TYPES)
        sub.add_argument("--memory", type=int, default=64, help="guest RAM in MiB")
        sub.add_argument("--wait-for", help="console text that means the guest is ready")
        sub.add_argument("--settle", type=_seconds, default=3.0, help="seconds to run a foreign kernel first")
        sub.add_argument("--timeout", type=_seconds, default=30.0)
        sub.set_defaults(run=function)

    doctor = commands.add_parser("doctor", help="check QEMU, toolchains and acceleration")
    doctor.set_defaults(run=command_doctor)

    student = commands.add_parser("student-edition", help="the lessons without their solutions, made by nbgrader")
    student.add_argument("destination", help="directory for the student notebooks (or the wheel)")
    student.add_argument("--wheel", action="store_true",
                         help="build the students' wheel instead: the package with these notebooks and the "
                              "skeleton of kernel-src (from a checkout)")
    student.set_defaults(run=command_student_edition)

    _add_verify(commands)

    args, unknown = parser.parse_known_args(argv)
    if args.command == "lab":
        args.jupyter_args = unknown  # --port, --no-browser, ... belong to JupyterLab
    elif unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return int(args.run(args))
    except InvalidInput as error:  # the user's mistake: one line, and the usage-error status
        print(f"workbench: {_one_line(error)}", file=sys.stderr)
        return 2
    except WorkbenchError as error:
        print(f"workbench: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # a path given on the command line that the system refused
        where = f": {error.filename}" if error.filename else ""
        print(f"workbench: {error.strerror or error}{where}", file=sys.stderr)
        return 2


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


if __name__ == "__main__":
    sys.exit(main())

