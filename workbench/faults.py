"""What the guest reports when it faults, parsed and explained for a student.

The unikernel prints one line per CPU exception (docs/guest-contract.md); this module turns
it into a `GuestFault` and, with the image's symbols, into a sentence about what went wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .image import Image

FAULT_LINE = re.compile(
    r"^FAULT vector=(?P<vector>\d+) name=#(?P<mnemonic>\w+) \"(?P<name>[^\"]*)\""
    r" error=(?P<error>0x[0-9a-f]+|none)(?: \((?P<decoded>[^)]*)\))?"
    r" rip=(?P<rip>0x[0-9a-f]+) <(?P<symbol>[^>]*)>"
    r" rsp=(?P<rsp>0x[0-9a-f]+)"
    r"(?: cr2=(?P<cr2>0x[0-9a-f]+))?\s*$",
    re.MULTILINE,
)

PAGE_FAULT = 14


@dataclass(frozen=True)
class GuestFault:
    """One CPU exception as the guest reported it."""

    vector: int
    mnemonic: str  # "PF", "GP", ...
    name: str  # "Page Fault"
    error_code: int | None
    error_decoded: tuple[str, ...]
    rip: int
    symbol: str  # "app_main+0x1c", or "?" when the guest could not tell
    rsp: int
    cr2: int | None
    line: str

    @classmethod
    def parse(cls, text: str) -> GuestFault | None:
        """The first fault line in `text`, or None."""
        match = FAULT_LINE.search(text)
        if match is None:
            return None
        error = match["error"]
        return cls(
            vector=int(match["vector"]),
            mnemonic=match["mnemonic"],
            name=match["name"],
            error_code=None if error == "none" else int(error, 16),
            error_decoded=tuple((match["decoded"] or "").split()),
            rip=int(match["rip"], 16),
            symbol=match["symbol"],
            rsp=int(match["rsp"], 16),
            cr2=int(match["cr2"], 16) if match["cr2"] else None,
            line=match.group(0).strip(),
        )

    @property
    def function(self) -> str | None:
        """The function the fault happened in, without the offset; None if unknown."""
        return None if self.symbol == "?" else self.symbol.split("+")[0]

    def explain(self, image: Image | None = None) -> str:
        """A few sentences for a student: what the CPU refused, where, and the likely cause."""
        where = f"in {self.function}()" if self.function else f"at rip={self.rip:#x}"
        headline = f"The guest stopped with a {self.name} (#{self.mnemonic}, vector {self.vector}) {where}."
        return " ".join([headline, *self._causes(image)])

    def _causes(self, image: Image | None) -> list[str]:
        if self.vector != PAGE_FAULT or self.cr2 is None:
            return [_CAUSES.get(self.mnemonic, "")]
        access = (
            "fetch an instruction from" if "instruction-fetch" in self.error_decoded
            else "write to" if "write" in self.error_decoded
            else "read from"
        )
        if "not-present" in self.error_decoded:
            why = "which is not mapped"
        else:
            why = "which is mapped, but its page permissions forbid that access"
        sentences = [f"It tried to {access} vaddr {self.cr2:#x}, {why}."]
        region = image.describe_vaddr(self.cr2) if image is not None else None
        if self.cr2 < 0x1000:
            sentences.append(
                "That is the null page, left unmapped on purpose so that a null-pointer "
                "dereference faults instead of silently using address 0."
            )
        elif region is not None:
            sentences.append(f"That address lies in {region}.")
        return sentences


_CAUSES = {
    "DE": "A division by zero (or a quotient too large for the destination register).",
    "UD": "The CPU met an instruction it does not know (ud2 raises this on purpose).",
    "GP": "A general-protection fault: for example a non-canonical address, or a "
          "privileged instruction or segment the code may not use.",
    "DF": "A double fault: the CPU faulted while starting the handler of an earlier fault.",
    "BP": "A breakpoint instruction (int3).",
    "SS": "A stack-segment fault: a bad stack address or stack segment.",
    "NP": "A segment or gate that is not present.",
    "TS": "An invalid task-state segment.",
    "AC": "An unaligned access with alignment checking on.",
}
