"""The debugger and time travel, measured through the same API lesson 07 uses.

Prints:
  (a) stepping rate through the API: instructions per second (one stepi() call each, and one
      stepi(count) call for many), source lines per second (step() in kernel_main's callees);
  (b) boot to a stop at a breakpoint in paging_init: from asking for the machine (QEMU spawned,
      gdbstub connected, firmware run) to the stop; and from the image's first instruction on;
  (c) recording overhead: boot to the prompt, recorded against not, median of N each;
  (d) a 10-second recording: indexing it once, then going to random instruction counts,
      forwards and backwards, median and worst.
Targets: (b) under 200 ms; (d) every jump under 1 s.

    .venv/bin/python -m benchmarks.debug [--runs 5] [--seconds 10] [--jumps 20]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks._timing import summary, timed
from workbench.debug.debugger import Debugger
from workbench.guest.machine import Machine
from workbench.kernel.workspace import Workspace
from workbench.timetravel.replay import Recorder, Replay
from workbench.timetravel.timeline import index


def stepping(image: object) -> None:
    debugger = Debugger.boot(image)  # type: ignore[arg-type]
    try:
        debugger.run_to("kernel_main")
        count = 300
        seconds = timed(lambda: [debugger.stepi() for _ in range(count)])
        print(f"{'(a) stepi(), one call per instruction':<62} {count / seconds:8.0f} instructions/s")
        seconds = timed(lambda: debugger.stepi(2000))
        print(f"{'(a) stepi(2000), one call':<62} {2000 / seconds:8.0f} instructions/s")
        debugger.run_to("paging_init")
        lines = 40
        seconds = timed(lambda: [debugger.step() for _ in range(lines)])
        print(f"{'(a) step(), source lines in paging_init and its callees':<62} {lines / seconds:8.1f} lines/s")
    finally:
        debugger.close()


def to_paging_init(image: object, runs: int) -> None:
    total, from_entry = [], []
    for _ in range(runs):
        started = time.perf_counter()
        debugger = Debugger.boot(image)  # type: ignore[arg-type]
        at_entry = time.perf_counter()
        debugger.break_at("paging_init")
        stop = debugger.cont()
        done = time.perf_counter()
        assert stop.function == "paging_init", stop
        debugger.close()
        total.append(done - started)
        from_entry.append(done - at_entry)
    print(summary("(b) boot to the paging_init breakpoint, from asking", total, "< 200 ms"))
    print(summary("(b) ... from the image's first instruction", from_entry))


def recording_overhead(image: object, runs: int) -> None:
    plain, recorded = [], []
    for _ in range(runs):
        started = time.perf_counter()
        with Machine(image) as machine:  # type: ignore[arg-type]
            machine.wait_for("> ", timeout=30)
            plain.append(time.perf_counter() - started)
        recorder = Recorder(image)  # type: ignore[arg-type]
        started = time.perf_counter()
        machine = recorder.start()
        machine.wait_for("> ", timeout=30)
        recorded.append(time.perf_counter() - started)
        recorder.stop().close()
    print(summary("(c) boot to the prompt, not recorded", plain))
    print(summary("(c) boot to the prompt, recorded", recorded))
    ratio = statistics.median(recorded) / statistics.median(plain)
    print(f"{'(c) recorded / not recorded, medians':<62} {ratio:8.2f}")


def time_travel(image: object, seconds: float, jumps: int) -> None:
    recorder = Recorder(image)  # type: ignore[arg-type]
    machine = recorder.start()
    machine.wait_for("> ")
    deadline = time.monotonic() + seconds
    requests = ["ticks", "alloc 2", "call noop", "syscall noop", "ticks"]
    while time.monotonic() < deadline:
        machine.request(requests[int(time.monotonic()) % len(requests)])
        time.sleep(0.5)
    recording = recorder.stop()
    replay = Replay(recording)
    try:
        indexing = timed(lambda: index(replay))
        end = replay.end or 0
        print(f"{'(d) a recording of':<62} {seconds:8.1f} s, {end} instructions")
        print(f"{'(d) indexing it once (samples, checkpoints)':<62} {indexing * 1000:8.1f} ms, "
              f"{len(replay.checkpoints)} checkpoints")
        rng = random.Random(12)  # noqa: S311 - reproducible targets, not secrets
        forwards, backwards = [], []
        for _ in range(jumps):
            target = rng.randrange(end)
            here = replay.icount
            spent = timed(lambda target=target: replay.go_to(target))  # type: ignore[misc]
            (forwards if target >= here else backwards).append(spent)
        if forwards:
            print(summary(f"(d) go to a random instruction count, forwards ({len(forwards)})", forwards, "< 1 s"))
        if backwards:
            print(summary(f"(d) go to a random instruction count, backwards ({len(backwards)})", backwards,
                          "< 1 s"))
        to_end = timed(lambda: replay.go_to(end))
        back = timed(lambda: replay.go_to(end // 3))
        print(f"{'(d) to the end, then back from the end (a new QEMU)':<62} {to_end * 1000:8.1f} ms, "
              f"{back * 1000:.1f} ms")
    finally:
        replay.close()
        recording.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the recording in (d)")
    parser.add_argument("--jumps", type=int, default=20)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="workbench-bench-") as directory:
        image = Workspace.open("bench", parent=Path(directory)).build()
        print(f"image {image.path.name}, {image.toolchain}; QEMU TCG on this machine")
        stepping(image)
        to_paging_init(image, options.runs)
        recording_overhead(image, options.runs)
        time_travel(image, options.seconds, options.jumps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
