"""A stock distribution Linux kernel: the real, large guest that the unikernel is compared with.

Used by lesson 09 (the unikernel beside a container on Linux), the tests that check the paging
model on a big guest, and the benchmarks. `stock_kernel()` fetches the kernel behind Debian's
`linux-image-amd64` (or Ubuntu's `linux-image-generic`) through apt, the only network access it
makes, and keeps just `boot/vmlinuz-*` (and `boot/System.map-*` when the package has one) in a
cache outside the repository:

    ${XDG_CACHE_HOME:-~/.cache}/unikernel-workbench/linux/

Once cached it returns at once, without running apt.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from workbench.errors import WorkbenchError

# The distribution's "current kernel" metapackages: Debian, then Ubuntu.
METAPACKAGES = ("linux-image-amd64", "linux-image-generic")
APT_TIMEOUT = 600.0  # seconds for one apt command; a kernel package is 15-75 MB
MANIFEST = "kernel.json"  # written last: its presence means the cache is complete
SYSTEM_CACHE = Path("/var/cache/unikernel-workbench/linux")  # read-only to users, shared by all


class LinuxKernelUnavailable(WorkbenchError):
    """The stock kernel could not be obtained; the message says why and what to do."""


@dataclass(frozen=True)
class LinuxKernel:
    """A distribution kernel unpacked in the cache."""

    package: str  # e.g. linux-image-6.1.0-56-amd64
    version: str  # the package version, e.g. 6.1.192-2
    vmlinuz: Path
    system_map: Path | None  # Debian ships a stub that points to the -dbg package

    @property
    def name(self) -> str:
        return f"{self.package} {self.version}"


def cache_directory() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "unikernel-workbench" / "linux"


def stock_kernel(cache: Path | None = None) -> LinuxKernel:
    """The cached stock kernel, downloaded and unpacked first if the cache has none.

    Without `cache`, the user's cache is tried first, then the machine's (SYSTEM_CACHE, which a
    class image or a grading machine fills once, so that nobody downloads it again: as root,
    `XDG_CACHE_HOME=/var/cache python -c 'from workbench.compare.stock_linux import stock_kernel; stock_kernel()'`).
    """
    found = _cached(cache or cache_directory()) or (_cached(SYSTEM_CACHE) if cache is None else None)
    if found is not None:
        return found
    cache = cache or cache_directory()
    cache.mkdir(parents=True, exist_ok=True)
    with _locked(cache):  # another test run may be filling the cache right now
        found = _cached(cache)
        if found is None:
            found = _download(cache)
    return found


# The cache.


def _cached(cache: Path) -> LinuxKernel | None:
    try:
        facts = json.loads((cache / MANIFEST).read_text())
        kernel = LinuxKernel(facts["package"], facts["version"], cache / facts["vmlinuz"],
                             cache / facts["system_map"] if facts["system_map"] else None)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    files = [kernel.vmlinuz] + ([kernel.system_map] if kernel.system_map else [])
    return kernel if all(path.is_file() for path in files) else None


@contextlib.contextmanager
def _locked(cache: Path) -> Iterator[None]:
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _download(cache: Path) -> LinuxKernel:
    missing = [tool for tool in ("apt-cache", "apt-get", "dpkg-deb") if shutil.which(tool) is None]
    if missing:
        raise LinuxKernelUnavailable(
            f"a stock Linux kernel is fetched with apt, but this machine lacks {', '.join(missing)} "
            "(this needs Debian or Ubuntu). Alternatively unpack a kernel package by hand into "
            f"{cache} and describe it in {cache / MANIFEST}."
        )
    package, version = _resolve()
    with tempfile.TemporaryDirectory(prefix="download-", dir=cache) as scratch:
        _run(["apt-get", "download", "-q", f"{package}={version}"], cwd=Path(scratch))
        debs = list(Path(scratch).glob("*.deb"))
        if len(debs) != 1:
            raise LinuxKernelUnavailable(f"apt-get download {package}={version} left {len(debs)} .deb files")
        unpacked = Path(scratch) / "unpacked"
        unpacked.mkdir()
        vmlinuz, system_map = _extract_boot_files(debs[0], unpacked)
        target = cache / f"{package}_{version}"
        shutil.rmtree(target, ignore_errors=True)
        unpacked.rename(target)
    facts = {
        "package": package,
        "version": version,
        "vmlinuz": f"{target.name}/{vmlinuz}",
        "system_map": f"{target.name}/{system_map}" if system_map else None,
    }
    manifest = cache / f"{MANIFEST}.new"
    manifest.write_text(json.dumps(facts, indent=1) + "\n")
    manifest.replace(cache / MANIFEST)
    kernel = _cached(cache)
    assert kernel is not None
    return kernel


def _resolve() -> tuple[str, str]:
    """The versioned kernel package behind the metapackage, and its version."""
    for attempt in range(2):
        for meta in METAPACKAGES:
            candidate = _candidate(meta)
            if candidate is None:
                continue
            depends = _field(_run(["apt-cache", "show", "--no-all-versions", f"{meta}={candidate}"]), "Depends")
            for alternatives in depends.split(","):
                match = re.match(r"\s*(linux-image-\S+)(?:\s*\(=\s*([^)\s]+)\))?", alternatives.split("|")[0])
                if match:
                    package = match[1]
                    return package, match[2] or _candidate(package) or candidate
            raise LinuxKernelUnavailable(f"{meta} {candidate} depends on no linux-image package: {depends!r}")
        if attempt == 0 and os.geteuid() == 0:
            _run(["apt-get", "update", "-qq"])  # a fresh container has no package lists yet
    raise LinuxKernelUnavailable(
        f"apt knows none of {', '.join(METAPACKAGES)}. Update the package lists first "
        "(as root: apt-get update), then run again."
    )


def _candidate(package: str) -> str | None:
    policy = _run(["apt-cache", "policy", package])
    match = re.search(r"^\s*Candidate:\s*(\S+)", policy, re.MULTILINE)
    return match[1] if match and match[1] != "(none)" else None


def _field(stanza: str, name: str) -> str:
    match = re.search(rf"^{name}:\s*(.*)$", stanza, re.MULTILINE)
    return match[1] if match else ""


def _extract_boot_files(deb: Path, directory: Path) -> tuple[str, str | None]:
    """Stream the package's files and keep only boot/vmlinuz-* and boot/System.map-*.

    dpkg-deb writes the data tarball to a pipe and nothing else touches the disk (Debian's
    package also holds about 400 MB of modules). The entries are sorted, so reading stops once
    the boot/ directory has been passed.
    """
    kept: dict[str, str] = {}
    with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as unpacker:
        assert unpacker.stdout is not None
        stopped_early = False
        with tarfile.open(fileobj=unpacker.stdout, mode="r|") as archive:
            for member in archive:
                parts = PurePosixPath(member.name).parts
                if parts[:1] != ("boot",) and "vmlinuz" in kept:
                    stopped_early = True
                    break
                name = parts[1] if len(parts) == 2 and parts[0] == "boot" and member.isreg() else ""
                kind = next((k for k in ("vmlinuz", "System.map") if name.startswith(k + "-")), None)
                if kind:
                    source = archive.extractfile(member)
                    assert source is not None
                    (directory / name).write_bytes(source.read())
                    kept[kind] = name
        unpacker.stdout.close()  # dpkg-deb stops on the closed pipe if it was not done
        _, errors = unpacker.communicate(timeout=APT_TIMEOUT)
        if not stopped_early and unpacker.returncode != 0:
            raise LinuxKernelUnavailable(f"dpkg-deb could not read {deb.name}: {errors.decode(errors='replace')}")
    if "vmlinuz" not in kept:
        raise LinuxKernelUnavailable(f"{deb.name} has no boot/vmlinuz-* file")
    return kept["vmlinuz"], kept.get("System.map")


def _run(command: list[str], cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=APT_TIMEOUT,
                              check=False, env={**os.environ, "LC_ALL": "C"})
    except subprocess.TimeoutExpired as error:
        raise LinuxKernelUnavailable(f"{' '.join(command)} did not finish within {APT_TIMEOUT:g} s") from error
    if done.returncode != 0:
        raise LinuxKernelUnavailable(f"{' '.join(command)} failed with status {done.returncode}:\n{done.stderr}")
    return done.stdout
