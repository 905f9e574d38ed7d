"""Building the real unikernel with both toolchains: sections, size, reproducibility, errors."""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from workbench.errors import WorkbenchError
from workbench.kernel.build import BuildError, link_log
from workbench.kernel.image import Image
from workbench.kernel.toolchains import TOOLCHAINS
from workbench.kernel.workspace import Workspace

MAX_IMAGE_BYTES = 64 * 1024


def test_the_image_is_small_and_each_section_has_its_permissions(image: Image) -> None:
    assert image.size < MAX_IMAGE_BYTES, f"the image grew to {image.size} bytes"
    permissions = {s.name: s.permissions for s in image.sections}
    assert permissions[".text"] == "r-x"
    assert permissions[".rodata"] == "r--"
    assert permissions[".data"] == "rw-"
    assert permissions[".bss"] == "rw-"
    for name in ("kernel_main", "app_main", "timer_ticks"):
        assert image.symbol(name).vaddr >= 0xFFFFFFFF80000000, name
    assert image.symbolize(image.symbol("app_main").vaddr + 1) == "app_main+0x1"


def test_code_after_an_assembly_label_is_named_after_it(smp_image: Image) -> None:
    """Assembly labels have no size: an instruction after one is label+offset, as objdump says;
    past the end of a C function (its size known) nothing is guessed."""
    trampoline_32 = smp_image.symbols["trampoline_32"]
    assert (trampoline_32.kind, trampoline_32.size) == ("label", 0)
    assert smp_image.symbolize(trampoline_32.vaddr + 3) == "trampoline_32+0x3"
    assert smp_image.format_vaddr(trampoline_32.vaddr) == f"{trampoline_32.vaddr:#x} <trampoline_32>"
    strlen = smp_image.symbol("strlen")
    after = strlen.vaddr + strlen.size  # the padding that aligns the next function
    assert not any(symbol.vaddr == after for symbol in smp_image.symbols.values())
    assert smp_image.symbolize(after) == f"{after:#x}"


# Two build environments that differ in everything a build could leak: the source's absolute
# path (and its length), time zone, umask, locale, SOURCE_DATE_EPOCH and the wall-clock time.
ENVIRONMENTS = [
    {"dir": "a", "TZ": "UTC", "umask": "022", "LC_ALL": "C", "LANG": "C", "SOURCE_DATE_EPOCH": "0"},
    {"dir": "second/with-a-much-longer/absolute-path", "TZ": "Pacific/Chatham", "umask": "077",
     "LC_ALL": "C.UTF-8", "LANG": "de_DE.UTF-8", "SOURCE_DATE_EPOCH": "1700000000"},
]


def build_in(root: Path, toolchain: str, environment: dict[str, str]) -> tuple[bytes, bytes]:
    """Copy kernel-src to root/<dir>, run make there in `environment`; the image and its debug file."""
    workspace = Workspace.open("kernel", parent=root / environment["dir"])
    variables = [f"{name}={value}" for name, value in TOOLCHAINS[toolchain].items()]
    env = {**os.environ, **{k: v for k, v in environment.items() if k not in ("dir", "umask")}}
    env.pop("CFLAGS", None)
    done = subprocess.run(["sh", "-c", f'umask {environment["umask"]} && exec make "$@"', "make",
                           "--no-print-directory", "-C", str(workspace.root), *variables],
                          capture_output=True, text=True, timeout=300, env=env, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    build = workspace.root / "build"
    return (build / "unikernel.elf").read_bytes(), (build / "unikernel.debug").read_bytes()


def section_names(elf: bytes) -> set[str]:
    return {section.name for section in ELFFile(io.BytesIO(elf)).iter_sections()}


@pytest.mark.parametrize("toolchain", ["gcc", "clang"])
def test_builds_in_different_places_and_environments_give_identical_bytes(tmp_path: Path, toolchain: str) -> None:
    (image, debug), (image_again, debug_again) = (build_in(tmp_path, toolchain, environment)
                                                  for environment in ENVIRONMENTS)
    assert image == image_again, (f"{toolchain}: the images differ ({len(image)} and {len(image_again)} bytes); "
                                  "a path, time or locale leaked in")
    assert debug == debug_again, (f"{toolchain}: the debug files differ ({len(debug)} and {len(debug_again)} "
                                  "bytes); a path, time or locale leaked into the DWARF")
    assert len(image) < MAX_IMAGE_BYTES
    for name, data in (("image", image), ("debug file", debug)):
        assert str(tmp_path).encode() not in data, f"an absolute build path is in the {name}"


@pytest.mark.parametrize("toolchain", ["gcc", "clang"])
def test_the_debug_information_lives_next_to_the_image_not_in_it(tmp_path: Path, toolchain: str) -> None:
    image, debug = build_in(tmp_path, toolchain, ENVIRONMENTS[0])
    in_image, in_debug = section_names(image), section_names(debug)
    assert not {name for name in in_image if name.startswith(".debug")}, in_image
    assert {".debug_info", ".debug_line", ".debug_frame"} <= in_debug, in_debug
    link = ELFFile(io.BytesIO(image)).get_section_by_name(".gnu_debuglink")
    assert link is not None and link.data().split(b"\0")[0] == b"unikernel.debug"
    assert {".symtab", ".text", ".kernel_symbols"} <= in_image, "stripping the debug sections took more"


def test_an_edit_rebuilds_only_what_depends_on_it(workspace: Workspace) -> None:
    workspace.build()
    objects = {p: p.stat().st_mtime_ns for p in (workspace.root / "build/gcc").rglob("*.o")}
    workspace.replace("app/main.c", "Hello from the unikernel!", "Hello again!")
    workspace.build()
    rebuilt = sorted(str(p.relative_to(workspace.root)) for p, t in objects.items() if p.stat().st_mtime_ns != t)
    assert any("/app/main." in name for name in rebuilt), rebuilt
    assert not any("/kernel/" in name for name in rebuilt), rebuilt


def test_a_compile_error_names_the_line_and_shows_the_source(workspace: Workspace) -> None:
    text = workspace.read("app/main.c")
    line = 1 + text[: text.index("Hello from the unikernel!")].count("\n")
    workspace.replace("app/main.c", "Hello from the unikernel!\\n\");", "Hello from the unikernel!\\n\")")
    with pytest.raises(BuildError) as caught:
        workspace.build()
    error = caught.value
    assert error.errors, error.output
    first = error.errors[0]
    assert first.path == "app/main.c"
    assert line <= first.line <= line + 2
    rendered = str(error)
    assert "app/main.c" in rendered and "Hello from the unikernel!" in rendered
    assert "<span" in error._repr_html_()


def test_a_link_error_is_reported_in_words(workspace: Workspace) -> None:
    workspace.replace("app/main.c", "void app_main(void)\n{",
                      "void no_such_kernel_service(void);\nvoid app_main(void)\n{\n    no_such_kernel_service();")
    with pytest.raises(BuildError, match="no_such_kernel_service"):
        workspace.build()


def test_a_symbol_table_too_large_for_its_space_stops_the_build(workspace: Workspace) -> None:
    workspace.replace("kernel/symbols.S", "SYMBOL_TABLE_SIZE  PAGE_SIZE", "SYMBOL_TABLE_SIZE  256")
    with pytest.raises(BuildError, match=r"^The build failed: the symbol table needs \d+ bytes; "
                                         r"kernel/symbols.S reserves 256 \(SYMBOL_TABLE_SIZE\)"):
        workspace.build()


def test_the_link_log_is_made_when_asked_for_and_only_for_a_built_image(workspace: Workspace, tmp_path: Path) -> None:
    image = workspace.build()
    assert not (image.path.parent / "link.log").exists(), "an edit's build should not write the link log"
    assert "removing unused section" in link_log(image)
    (tmp_path / "foreign").write_bytes(b"\x7fELF")
    with pytest.raises(WorkbenchError, match="was not built by the workbench, so it has no link log"):
        link_log(Image.foreign(tmp_path / "foreign"))


def test_switching_scenario_in_one_build_directory_rebuilds(workspace: Workspace) -> None:
    def make(scenario: str) -> bytes:
        subprocess.run(["make", "-s", "BUILD_DIR=build/plain", f"SCENARIO={scenario}"], cwd=workspace.root,
                       check=True, capture_output=True)
        return (workspace.root / "build/plain/unikernel.elf").read_bytes()

    plain = make("none")
    faulty = make("invalid-opcode")
    assert plain != faulty
    assert make("none") == plain


def test_an_unknown_scenario_is_refused_by_the_makefile_in_words(workspace: Workspace) -> None:
    with pytest.raises(BuildError, match="SCENARIO must be one of: none null-write"):
        workspace.build(scenario="no-such-fault")
