"""Parsing the figures of workbench.compare.calls and the symbol tables of workbench.compare.attack_surface."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.compare.attack_surface import (
    SymbolTableUnavailable,
    linux_system_calls,
    system_calls_in,
    system_calls_in_header,
)
from workbench.compare.calls import (
    PUBLISHED,
    HostMeasurement,
    MeasurementError,
    host_is_virtual_machine,
    parse_bench_reply,
    parse_host_output,
    published_html,
    published_table,
)

BENCH_FIELDS = {
    "unit": "tsc-ticks-per-call", "rounds": "21", "iterations": "1000", "timer": "26",
    "call-q1": "21.60", "call-median": "21.76", "call-q3": "22.02",
    "syscall-q1": "132.23", "syscall-median": "133.45", "syscall-q3": "134.05",
    "syscall-cr3-q1": "9328.41", "syscall-cr3-median": "9389.22", "syscall-cr3-q3": "9447.36",
}


def test_the_bench_reply_becomes_quartiles_labelled_for_what_they_measure() -> None:
    bench = parse_bench_reply(BENCH_FIELDS)
    assert bench.costs["syscall"].median == pytest.approx(133.45)
    assert bench.costs["call"].q1 <= bench.costs["call"].median <= bench.costs["call"].q3
    assert bench.ratio("syscall") == pytest.approx(133.45 / 21.76)
    assert "TCG" in bench.meaning and "not the cycles" in bench.meaning
    assert "real" not in bench.meaning
    assert "KVM" in parse_bench_reply(BENCH_FIELDS, accel="kvm").meaning
    assert "TSC ticks per call" in str(bench)


def test_a_bench_reply_without_its_unit_or_a_field_is_refused() -> None:
    with pytest.raises(MeasurementError, match="unit"):
        parse_bench_reply({**BENCH_FIELDS, "unit": "cycles"})
    with pytest.raises(MeasurementError, match="field"):
        parse_bench_reply({k: v for k, v in BENCH_FIELDS.items() if k != "syscall-q3"})


def test_the_host_program_output_is_read_in_ns_and_ticks() -> None:
    text = "call 1.010 1.510 1.810 2.630 3.930 4.700\nsyscall 127.950 129.090 129.710 332.160 335.140 336.750\n"
    host = parse_host_output(text, rounds=21, iterations=100000, cpu="a CPU")
    assert host.nanoseconds["syscall"].median == pytest.approx(129.09)
    assert host.tsc_ticks is not None and host.tsc_ticks["call"].median == pytest.approx(3.93)
    assert host.ratio() == pytest.approx(129.09 / 1.51)
    no_tsc = text.replace("2.630 3.930 4.700", "0 0 0").replace("332.160 335.140 336.750", "0 0 0")
    without_tsc = parse_host_output(no_tsc, rounds=21, iterations=100000, cpu="another CPU")
    assert without_tsc.tsc_ticks is None
    with pytest.raises(MeasurementError, match="unexpected"):
        parse_host_output("Segmentation fault\n", rounds=1, iterations=1)


def test_the_host_says_when_it_is_a_virtual_machine_and_what_its_loop_costs() -> None:
    flags = "processor\t: 0\nflags\t\t: fpu vme sse2 hypervisor lahf_lm\nmodel name\t: X\n"
    assert host_is_virtual_machine(flags)
    assert not host_is_virtual_machine(flags.replace(" hypervisor", ""))
    assert not host_is_virtual_machine("model name\t: hypervisor-themed CPU\n")  # only the flags line counts
    text = ("call 1.0 1.5 1.8 0 0 0\nsyscall 127.0 129.0 130.0 0 0 0\nloop 0.2 0.3 0.4 0 0 0\n")
    host = HostMeasurement(**{**vars(parse_host_output(text, 21, 100000, cpu="a CPU")), "virtual_machine": True})
    assert host.net("syscall") == pytest.approx(128.7) and host.net("call") == pytest.approx(1.2)
    words = str(host)
    assert "inside a virtual machine" in words and "outside any VM" not in words
    assert "empty loop alone" in words and "counter, compare, branch" in words and "syscall()" in words
    bare = HostMeasurement(**{**vars(host), "virtual_machine": False})
    assert "outside any VM" in str(bare)


def test_the_published_figures_are_the_papers_with_their_conditions() -> None:
    cycles = {f.what: f.cycles for f in PUBLISHED}
    assert cycles == {"function call": 6, "Unikraft system call": 85, "Linux system call, no mitigations": 142,
                      "Linux system call, with mitigations": 605}
    assert all(f.conditions for f in PUBLISHED)
    assert "EuroSys 2021" in published_table() and "mitigations=off" in published_table()
    assert "<table" in published_html()


SYSTEM_MAP = """\
ffffffff81000000 T _text
ffffffff812fc970 T __x64_sys_read
ffffffff8120ed26 t __x64_sys_read.cold
ffffffff812fc990 T __x64_sys_execve
ffffffff812fc9b0 T __x64_sys_ni_syscall
ffffffff8138ce80 W __x64_sys_init_module
ffffffff82000000 D sys_call_table
ffffffff812fc9d0 T __ia32_sys_read
"""


def test_system_calls_are_the_x64_entry_functions_once_each() -> None:
    assert system_calls_in(SYSTEM_MAP) == ("execve", "read")


def test_the_header_numbers_count_when_no_symbol_table_is_readable() -> None:
    header = "#define __NR_read 0\n#define __NR_write 1\n#ifdef X\n#define __NR_execve 59\n#endif\n"
    assert system_calls_in_header(header) == ("execve", "read", "write")


def test_a_debian_stub_system_map_is_recognised_and_reported(tmp_path: Path) -> None:
    stub = tmp_path / "System.map-6.1.0-56-amd64"
    stub.write_text("ffffffffffffffff B The real System.map is in the linux-image-<version>-dbg package\n")
    with pytest.raises(SymbolTableUnavailable, match="stub that points to the -dbg package"):
        linux_system_calls(stub)
    real = tmp_path / "System.map"
    real.write_text(SYSTEM_MAP)
    found = linux_system_calls(real, kernel="a test kernel")
    assert found.count == 2 and "a test kernel" in str(found)
