"""Time travel: record a run once, then replay it and go to any instruction count, both ways.

    recorder = Recorder(image)                  # QEMU's deterministic record/replay
    machine = recorder.start()                  # an ordinary Machine, recording
    machine.request("ticks"); ...
    recording = recorder.stop()                 # the log, the console, the instruction count
    replay = Replay(recording)                  # the same run again, as often as needed
    replay.go_to(120_000)                       # forwards or backwards: registers, memory, page
    replay.console                              # tables, source line and console as they were

QEMU records every source of non-determinism (instruction counts between interrupts, clock
readings, typed input) into one log (`-icount shift=auto,rr=record,rrfile=...`); a replay
(`rr=replay`) executes exactly the same instructions and prints exactly the same bytes.

Going to an instruction count uses QEMU's `replay-break` (stop when the count is reached) and
snapshots: a replay keeps a qcow2 file, private to it, in which `savevm` stores the whole
machine at checkpoints, each tagged with its instruction count. Going back loads the nearest
checkpoint before the target (`loadvm`) and replays forward from there; so does going far
forward. QEMU's own `replay-seek` does the same, but QEMU 7.2 aborts when it is asked to seek
from the end of a replay, so this module does the three steps itself. Checkpoints are taken
as the replay first runs through (`index()`, workbench/timetravel/timeline.py), about every
CHECKPOINT_SECONDS of replay time, which bounds how long any jump takes.

The console "as it was then" is kept here: a checkpoint remembers the console at its count,
and the replay prints again what it re-executes after a `loadvm`.

Lifetime: a Replay owns its QEMU and a temporary directory (the checkpoints); `close()`, or
`with`, removes both. A Recorder without a path records into a temporary directory owned by
the Recording it returns, removed when that is closed or collected. Both directories are also
removed when the process ends, even by SIGKILL (janitor.py), and QEMU dies with it (machine.py).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.debug.debugger import Debugger
from workbench.errors import InvalidInput, WorkbenchError
from workbench.guest.machine import Machine, MachineError, MachineState, Outcome
from workbench.janitor import forget, remove_at_exit
from workbench.kernel.image import Image
from workbench.models.snapshot import Snapshot

CHECKPOINT_SECONDS = 0.1  # replay time between checkpoints: what a jump costs at most, roughly
QEMU_IMG = "qemu-img"
SNAPSHOT_DISK_SIZE = "64M"  # qcow2's virtual size; only the snapshots' real size is used
RUN_TIMEOUT = 60.0
# A replay that executes no instruction for this long is stuck, not slow: idle stretches of the
# recording are skipped, not waited out. Seen with QEMU 7.2 on a loaded machine, now and then
# (about one lesson run in four with both cores busy), when a replay that was restarted runs on
# from a loaded checkpoint; a new QEMU replaying from the start goes on.
STALL_SECONDS = 5.0
LOADVM_TIMEOUT = 10.0  # loading a checkpoint takes milliseconds


def _temporary_directory(prefix: str) -> tempfile.TemporaryDirectory[str]:
    """A temporary directory that is removed when this process ends, however it ends."""
    directory = tempfile.TemporaryDirectory(prefix=prefix)
    remove_at_exit(directory.name)
    return directory


def _remove(directory: tempfile.TemporaryDirectory[str]) -> None:
    directory.cleanup()
    forget(directory.name)


class ReplayError(WorkbenchError):
    """A recording cannot be made, replayed, or taken where it was asked to go."""


class _Stalled(Exception):
    """QEMU's replay stopped executing instructions while it was running."""


@dataclass(frozen=True)
class Recording:
    """One recorded run: QEMU's log and what it takes to replay it."""

    path: Path  # the replay log
    image: Image
    settings: dict[str, Any]  # the Machine options it was recorded with (a replay needs the same)
    console: str  # everything the guest printed
    how_it_ended: str  # the machine's outcome, in words
    outcome: Outcome | None = field(default=None, compare=False)  # the machine's outcome, if it stopped
    _owner: Any = field(default=None, repr=False, compare=False)  # the temporary directory, if it owns one

    def __repr__(self) -> str:
        return f"<Recording {self.path.name}: {len(self.console.splitlines())} console lines; {self.how_it_ended}>"

    def close(self) -> None:
        """Remove the log, if the recording owns it (made without a path)."""
        if self._owner is not None:
            _remove(self._owner)


class Recorder:
    """Records one run of a machine: `start()` gives the Machine, `stop()` the Recording."""

    def __init__(self, image: Image, path: str | Path | None = None, *, name: str | None = None,
                 **machine_options: Any) -> None:
        for option in ("record", "replay", "gdb"):
            if option in machine_options:
                raise InvalidInput(f"a recorder sets {option} itself")
        self.image = image
        self._temporary = None if path is not None else _temporary_directory("workbench-recording-")
        self.path = Path(path) if path is not None else Path(self._temporary.name) / "recording.rr"  # type: ignore[union-attr]
        self.name = name
        self.settings = machine_options  # what a replay must repeat (machine type, memory, extra_args ...)
        self.machine: Machine | None = None

    def start(self, timeout: float = 10.0) -> Machine:
        """Boot the image, recording from its first instruction."""
        self.machine = Machine(self.image, record=self.path, name=self.name, **self.settings).start(timeout)
        return self.machine

    def stop(self) -> Recording:
        """End the recording (QEMU quits, which completes the log) and return it."""
        machine = self.machine
        if machine is None:
            raise ReplayError("the recorder has not started a machine yet")
        outcome = machine.outcome
        how = outcome.explanation if outcome is not None else "stopped while running"
        machine.close()
        if not self.path.is_file() or self.path.stat().st_size == 0:
            raise ReplayError(f"QEMU left no recording at {self.path}")
        recording = Recording(self.path, self.image, dict(self.settings), machine.console.text, how,
                              outcome=outcome, _owner=self._temporary)
        if self._temporary is not None:
            weakref.finalize(recording, _remove, self._temporary)
        return recording

    def __enter__(self) -> Machine:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        if self.machine is not None and not self.machine.state.terminal:
            self.machine.close()


@dataclass(frozen=True)
class Checkpoint:
    """A snapshot of the whole machine in the replay's qcow2, at one instruction count."""

    icount: int
    name: str
    console: str  # what the guest had printed by then


class Replay:
    """A recording, replayed in QEMU with its gdbstub, that can go to any instruction count."""

    def __init__(self, recording: Recording, *, name: str | None = None, timeout: float = 10.0) -> None:
        if shutil.which(QEMU_IMG) is None:
            raise ReplayError(f"{QEMU_IMG} is not installed; it makes the file that holds a replay's checkpoints "
                              "(Debian: sudo apt-get install qemu-utils)")
        self.recording = recording
        self.name = name
        self._directory = _temporary_directory("workbench-replay-")
        self._disk = Path(self._directory.name) / "checkpoints.qcow2"
        done = subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", str(self._disk), SNAPSHOT_DISK_SIZE],
                              capture_output=True, text=True, timeout=30, check=False)
        if done.returncode != 0:
            raise ReplayError(f"{QEMU_IMG} could not make the checkpoint file: {done.stderr.strip()}")
        self.checkpoints: list[Checkpoint] = []
        # The count where the recording ends, once a replay got there. (Not what QEMU said while
        # recording: a run that ends in a fault ends inside an instruction that never completes.)
        self.end: int | None = None
        self.console = ""  # what the guest had printed by the current instruction count
        self._mark = 0  # the machine's console position that `console` corresponds to
        self._last_checkpoint_time = 0.0
        self.machine: Machine
        self.debugger: Debugger
        self._machines: list[Machine] = []  # every QEMU this replay started; the finaliser closes them
        self._finalizer = weakref.finalize(self, Replay._cleanup, self._machines, self._directory)
        self._boot(timeout)

    # Life cycle.

    def _boot(self, timeout: float) -> None:
        settings = dict(self.recording.settings)
        extra = (*settings.pop("extra_args", ()),
                 "-drive", f"file={self._disk},if=none,id=checkpoints,format=qcow2,cache=unsafe")
        self.machine = Machine(self.recording.image, replay=self.recording.path, gdb=True, name=self.name,
                               extra_args=extra, **settings)
        self._machines.append(self.machine)
        self.machine.start(timeout, paused=True)
        if hasattr(self, "debugger"):
            self.debugger.move_to(self.machine)  # the same debugger (and the views following it) goes on
        else:
            # After the guest's exit, the debugger's next command starts a new QEMU.
            self.debugger = Debugger.attach(self.machine, revive=self._alive)
        self.console = ""  # a new QEMU replays from instruction 0
        self._mark = self._console_position()
        if not self.checkpoints:
            self._checkpoint()

    def _restart(self, timeout: float = 10.0) -> None:
        """A new QEMU on the same recording and checkpoints (the old one reached the end)."""
        self.machine.close()
        self._machines.remove(self.machine)
        self._boot(timeout)

    @staticmethod
    def _cleanup(machines: list[Machine], directory: tempfile.TemporaryDirectory[str]) -> None:
        for machine in machines:
            machine.close()
        _remove(directory)

    def close(self) -> None:
        """Stop QEMU and remove the checkpoints."""
        self._finalizer()

    def __enter__(self) -> Replay:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # Where the replay is.

    @property
    def icount(self) -> int:
        """The instruction count the replay is at: this many instructions have executed."""
        self._alive()
        return int(self.machine.qmp("query-replay")["icount"])

    def _alive(self) -> None:
        if self.machine.state.terminal:
            self._restart()

    def _console_position(self) -> int:
        console = self.machine.console
        return console.dropped + len(console.text)

    def _take_output(self) -> None:
        """Add what the replay printed since the last look to `console`."""
        self.machine.drain_console()
        console = self.machine.console
        end = self._console_position()
        new = end - self._mark
        if new > 0:
            self.console += console.text[len(console.text) - new:] if new <= len(console.text) else console.text
        self._mark = end

    def _checkpoint(self) -> Checkpoint | None:
        """Save the whole machine here, unless QEMU cannot right now (events pending)."""
        icount = self.icount
        if any(c.icount == icount for c in self.checkpoints):
            return None
        name = f"at-{icount}"
        answer = self.machine.hmp(f"savevm {name}", 30.0)
        if answer.strip():  # "Record/replay does not allow making snapshot right now..."
            return None
        checkpoint = Checkpoint(icount, name, self.console)
        self.checkpoints.append(checkpoint)
        self.checkpoints.sort(key=lambda c: c.icount)
        self._last_checkpoint_time = time.monotonic()
        return checkpoint

    def _load(self, checkpoint: Checkpoint) -> None:
        self._alive()
        if self.machine.qmp("query-status")["status"] in ("shutdown", "guest-panicked"):
            self._restart()  # QEMU refuses to run on from its end state, loaded snapshot or not
        self._take_output()
        try:
            answer = self.machine.hmp(f"loadvm {checkpoint.name}", LOADVM_TIMEOUT)
        except MachineError:
            # QEMU 7.2 hangs in loadvm now and then, on a loaded machine, in a replay it has
            # just restarted: a new QEMU replays from the start to the checkpoint instead.
            self._restart()
            if self.run_until(checkpoint.icount) != checkpoint.icount:
                raise ReplayError(f"the replay could not go back to instruction {checkpoint.icount}") from None
            return
        if answer.strip():
            raise ReplayError(f"QEMU could not go back to instruction {checkpoint.icount}: {answer.strip()}")
        self.machine.snapshot_loaded()
        self.machine.drain_console()
        self.console = checkpoint.console
        self._mark = self._console_position()

    # Going places.

    def go_to(self, icount: int, timeout: float = RUN_TIMEOUT) -> int:
        """Put the replay at `icount` (forwards or backwards); returns the count it reached,
        which is less only when the recording ends before it (`end` then says where)."""
        if not isinstance(icount, int) or isinstance(icount, bool) or icount < 0:
            raise InvalidInput(f"an instruction count is a whole number from 0, not {icount!r}")
        if self.end is not None and icount > self.end:
            raise InvalidInput(f"the recording ends at instruction {self.end}; {icount} is past it")
        self._alive()
        here = self.icount
        base = max((c for c in self.checkpoints if c.icount <= icount), key=lambda c: c.icount)
        if not base.icount <= here <= icount:
            self._load(base)
            here = base.icount
        if icount == self.end:  # the end as it happened: a fault ends inside an instruction
            here = self.run_to_end(timeout)
        elif icount > here:
            here = self.run_until(icount, timeout)
        self.debugger.moved(f"instruction {here}" + (", the end" if here == self.end else ""))
        return here

    def run_until(self, icount: int, timeout: float = RUN_TIMEOUT) -> int:
        """Replay forward to `icount` from where the replay is, ignoring breakpoints; returns the
        count reached (less if the recording ends first)."""
        self._alive()
        deadline = time.monotonic() + timeout
        try:
            reached = self._run_to_break(icount, timeout)
        except _Stalled:
            self._restart()  # from instruction 0, without the checkpoint it stalled after
            try:
                reached = self._run_to_break(icount, max(deadline - time.monotonic(), 1.0))
            except _Stalled as stalled:
                raise ReplayError(f"the replay stopped executing at instruction {stalled} twice, once from "
                                  "the start") from None
        if reached < icount and self.end is None:
            self.end = reached
        return reached

    def _run_to_break(self, icount: int, timeout: float) -> int:
        with self.debugger.points_lifted():
            self.machine.qmp("replay-break", icount=icount)
            return self._resume_and_wait(timeout)

    def _resume_and_wait(self, timeout: float) -> int:
        """Let the replay run until it stops (replay-break, the end, an exit); the count then.
        Raises _Stalled if it executes nothing for STALL_SECONDS while running."""
        machine = self.machine
        deadline = time.monotonic() + timeout
        machine.qmp("cont")
        progress_at, progress = time.monotonic(), -1
        while time.monotonic() < deadline:
            try:
                status = machine.qmp("query-status")["status"]
                if status != "running":
                    count = int(machine.qmp("query-replay")["icount"])
                    self._take_output()
                    self._last_icount = count
                    if status in ("shutdown", "guest-panicked") and self.end is None:
                        self.end = count
                    return count
                self._last_icount = int(machine.qmp("query-replay")["icount"])
                if self._last_icount != progress:
                    progress_at, progress = time.monotonic(), self._last_icount
                elif time.monotonic() - progress_at > STALL_SECONDS:
                    machine.qmp("stop")
                    raise _Stalled(progress)
            except MachineError:
                if not machine.state.terminal:
                    raise
            if machine.state.terminal:  # the guest exited (isa-debug-exit ends QEMU 7.2 at once)
                machine.wait(5.0)  # its last output read
                self._take_output()
                self._keep_recorded_exit()
                return self.end if self.end is not None else self._last_icount
            time.sleep(0.002)
        machine.qmp("stop")
        raise ReplayError(f"the replay did not get there within {timeout:g} s")

    _last_icount = 0

    def _keep_recorded_exit(self) -> None:
        """From QEMU 9.1 on, isa-debug-exit's value is not in the replay log: the replayed QEMU
        exits with status 0. The guest exited the same way as recorded, so say so."""
        recorded, replayed = self.recording.outcome, self.machine.outcome
        if (recorded is not None and recorded.exit_status is not None and replayed is not None
                and replayed.state is MachineState.EXITED and replayed.exit_status is None):
            self.machine.outcome = recorded

    def run_to_end(self, timeout: float = RUN_TIMEOUT) -> int:
        """Replay to the end of the recording, the way it ended (a triple fault, an exit, the
        recording stopped); returns its instruction count. QEMU's end state cannot run on, so
        going back from there starts a new QEMU (on the same checkpoints)."""
        self._alive()
        if self.machine.qmp("query-status")["status"] in ("shutdown", "guest-panicked"):
            return self.icount
        deadline = time.monotonic() + timeout
        for attempt in range(2):
            try:
                with self.debugger.points_lifted():
                    with contextlib.suppress(MachineError):
                        self.machine.qmp("replay-delete-break")
                    reached = self._resume_and_wait(max(deadline - time.monotonic(), 1.0))
                break
            except _Stalled:
                if attempt:
                    raise ReplayError(f"the replay stopped executing at instruction {self._last_icount} twice, "
                                      "once from the start") from None
                self._restart()  # from instruction 0, without the checkpoint it stalled after
        self.end = reached
        return reached

    # What is there.

    def snapshot(self, label: str = "") -> Snapshot:
        """Registers and page tables at the current instruction count."""
        return self.debugger.snapshot(label or f"instruction {self.icount}")

    def __repr__(self) -> str:
        state = self.machine.state.value if hasattr(self, "machine") else "not started"
        return f"<Replay of {self.recording.path.name}: {len(self.checkpoints)} checkpoints, {state}>"
