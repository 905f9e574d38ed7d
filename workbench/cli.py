"""The `workbench` command: the same workbench for people who are not in a notebook.

    workbench lab       JupyterLab on the lessons
    workbench build     build the unikernel, print its sections
    workbench run       build, boot, and connect the terminal to the guest's console
    workbench doctor    what this machine has, and what to install for what is missing
    workbench student-edition DIR   the lessons without their solutions
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import subprocess
import sys
from pathlib import Path

from . import host
from .build import DEFAULT_TOOLCHAIN, SCENARIOS, BuildError, build_image
from .errors import WorkbenchError
from .machine import ACCELERATORS, MACHINE_TYPES, Machine
from .student_edition import write_student_edition
from .workspace import REPOSITORY, pristine_source


def _source_dir(given: str | None) -> Path:
    """--source, else the current directory when it is a workspace, else kernel-src."""
    if given:
        return Path(given).resolve()
    here = Path.cwd()
    if (here / "Makefile").is_file() and (here / "app").is_dir():
        return here
    return pristine_source()


def command_lab(args: argparse.Namespace) -> int:
    lessons = REPOSITORY / "lessons"
    argv = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={lessons}", *args.jupyter_args]
    if os.geteuid() == 0:
        argv.append("--allow-root")  # containers and CI run as root; JupyterLab refuses without this
    print(f"Starting JupyterLab on {lessons} (Ctrl-C twice to stop)", flush=True)
    return subprocess.call(argv)


def command_build(args: argparse.Namespace) -> int:
    try:
        image = build_image(_source_dir(args.source), scenario=args.scenario, toolchain=args.toolchain)
    except BuildError as error:
        print(error, file=sys.stderr)
        return 1
    print(image)
    print(f"built in {image.build_seconds * 1000:.0f} ms with {image.toolchain}: {image.path}")
    return 0


def command_run(args: argparse.Namespace) -> int:
    try:
        image = build_image(_source_dir(args.source), scenario=args.scenario, toolchain=args.toolchain)
    except BuildError as error:
        print(error, file=sys.stderr)
        return 1
    machine = Machine(image, machine_type=args.machine_type, accel=args.accel, memory_mib=args.memory)
    def echo(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    machine.console.add_listener(echo)
    print(f"[workbench] booting {image.path.name} on {args.machine_type} ({args.accel}); "
          "type requests and Enter, Ctrl-C stops the machine", file=sys.stderr)
    try:
        machine.start()
        while not machine.state.stopped_by_guest:
            ready, _, _ = select.select([sys.stdin], [], [], 0.2)
            if ready:
                line = sys.stdin.readline()
                if not line:  # end of input: let the guest run until it stops or Ctrl-C
                    machine.wait(timeout=args.timeout)
                    break
                machine.send(line)
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


def command_doctor(_: argparse.Namespace) -> int:
    problems = 0

    def report(ok: bool, what: str, fix: str = "") -> None:
        nonlocal problems
        problems += not ok
        print(f"{'ok' if ok else 'MISSING':<8} {what}" + (f"\n         fix: {fix}" if fix and not ok else ""))

    try:
        qemu = host.qemu_info()
        wanted = [t for t in MACHINE_TYPES if t in qemu.machine_types]
        report(True, f"QEMU {qemu.version_text} at {qemu.path}; machine types: {', '.join(wanted)}")
        report(qemu.qboot_rom is not None, f"qboot firmware for pc/q35: {qemu.qboot_rom or 'not found'}",
               "sudo apt-get install qemu-system-data (pc/q35 then boot with SeaBIOS, about 2x slower)")
        report(qemu.has_sandbox, "QEMU seccomp sandbox (-sandbox)", "a QEMU built with seccomp")
    except WorkbenchError as error:
        report(False, str(error), host.INSTALL_HINT)
    for name in host.TOOLCHAINS:
        missing = host.toolchain_missing(name)
        report(not missing, f"{name} toolchain" + (f" (missing: {', '.join(missing)})" if missing else ""),
               f"sudo apt-get install {host.TOOLCHAIN_PACKAGES[name]}")
    kvm = host.kvm_usable()
    print(f"info     acceleration: TCG (default){'; /dev/kvm is usable with --accel kvm' if kvm else ''}")
    if os.geteuid() == 0:
        print("info     running as root: QEMU runs as the same user; prefer an ordinary account")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    print(f"info     Chromium for browser tests: {chromium or 'not installed (./run-tests installs it)'}")
    return 1 if problems else 0


def command_student_edition(args: argparse.Namespace) -> int:
    destination = Path(args.destination)
    for name, count in write_student_edition(REPOSITORY / "lessons", destination):
        print(f"{destination / name}: {count} solution cell{'s' if count != 1 else ''} emptied")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="workbench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    lab = commands.add_parser("lab", help="start JupyterLab on the lessons; other options go to JupyterLab")
    lab.set_defaults(run=command_lab)

    for name, function, text in (("build", command_build, "build the unikernel"),
                                 ("run", command_run, "build and boot, console on this terminal")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--source", help="unikernel source directory (default: a workspace here, else kernel-src)")
        sub.add_argument("--scenario", default="none", choices=SCENARIOS, help="a fault to provoke at boot")
        sub.add_argument("--toolchain", default=DEFAULT_TOOLCHAIN, choices=sorted(host.TOOLCHAINS))
        sub.set_defaults(run=function)
    run = commands.choices["run"]
    run.add_argument("--machine-type", default="microvm", choices=MACHINE_TYPES)
    run.add_argument("--accel", default="tcg", choices=ACCELERATORS)
    run.add_argument("--memory", type=int, default=64, help="guest RAM in MiB")
    run.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait after input ends")

    doctor = commands.add_parser("doctor", help="check QEMU, toolchains and acceleration")
    doctor.set_defaults(run=command_doctor)

    student = commands.add_parser("student-edition", help="copy the lessons without their solutions")
    student.add_argument("destination", help="directory for the student notebooks")
    student.set_defaults(run=command_student_edition)

    args, unknown = parser.parse_known_args(argv)
    if args.command == "lab":
        args.jupyter_args = unknown  # --port, --no-browser, ... belong to JupyterLab
    elif unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return int(args.run(args))
    except WorkbenchError as error:
        print(f"workbench: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

