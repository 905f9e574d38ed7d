"""What the guest reports when it faults, parsed and explained for a student.

The unikernel prints one line per CPU exception (docs/guest-contract.md); this module turns
it into a `GuestFault` and, with the image's symbols, into a sentence about what went wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workbench.kernel.image import Image
    from workbench.models.paging import Walk

FAULT_LINE = re.compile(
    r"^FAULT vector=(?P<vector>\d+) name=#(?P<mnemonic>\w+) \"(?P<name>[^\"]*)\""
    r" error=(?P<error>0x[0-9a-f]+|none)(?: \((?P<decoded>[^)]*)\))?"
    r" rip=(?P<rip>0x[0-9a-f]+) <(?P<symbol>[^>]*)>"
    r" rsp=(?P<rsp>0x[0-9a-f]+)"
    r"(?: cr2=(?P<cr2>0x[0-9a-f]+))?\s*$",
    re.MULTILINE,
)

PAGE_FAULT = 14

# Page-fault error code bits, Intel SDM Vol. 3A §4.7 (Figure 4-12): (bit, name, when set, when clear).
PAGE_FAULT_ERROR_BITS = (
    (0, "P", "the page was present: an access-rights or reserved-bit violation",
     "the page was not present (an entry on the way had P clear)"),
    (1, "W/R", "the access was a write", "the access was a read"),
    (2, "U/S", "the access came from user mode (ring 3)", "the access came from supervisor mode"),
    (3, "RSVD", "a paging entry had a reserved bit set", "no reserved bit was set"),
    (4, "I/D", "the access was an instruction fetch", "the access was not an instruction fetch"),
    (5, "PK", "a protection-key right forbade it", "no protection key forbade it"),
    (6, "SS", "the access was a shadow-stack access", "the access was not a shadow-stack access"),
    (15, "SGX", "an SGX-specific access-control rule forbade it", "no SGX rule applied"),
)
PF_PRESENT, PF_WRITE, PF_USER, PF_RESERVED, PF_FETCH, PF_PROTECTION_KEY = (1 << b for b in range(6))


def decode_page_fault_error(error_code: int) -> tuple[tuple[str, bool, str], ...]:
    """Every bit of a #PF error code: (name, set, what it says), low bit first."""
    return tuple((name, bool(error_code >> bit & 1), on if error_code >> bit & 1 else off)
                 for bit, name, on, off in PAGE_FAULT_ERROR_BITS)


def describe_page_fault_error(error_code: int) -> str:
    """Every bit, then what the ones that matter mean: `Error code 0x2 (P=0 W/R=1 ...): the page...`.

    P, W/R and U/S always say something; the other bits only when set.
    """
    bits = decode_page_fault_error(error_code)
    meanings = [meaning for name, on, meaning in bits if on or name in ("P", "W/R", "U/S")]
    if error_code & PF_RESERVED and not error_code & PF_PRESENT:
        # The SDM sets P with RSVD; QEMU's TCG (7.2) does not: the entry was present all the same.
        meanings[0] = "P is clear although RSVD is set, as QEMU's TCG reports it (the entries were present)"
    flags = " ".join(f"{name}={int(on)}" for name, on, _ in bits)
    return f"Error code {error_code:#x} ({flags}): " + "; ".join(meanings) + "."


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

    def explain(self, image: Image | None = None, walk: Walk | None = None) -> str:
        """A few sentences for a student: what the CPU refused, where, and the likely cause.

        `walk`, the model's walk of CR2 in the faulting page tables, lets a reserved-bit fault
        name the entry and the bits.
        """
        where = f"in {self.function}()" if self.function else f"at rip={self.rip:#x}"
        headline = f"The guest stopped with a {self.name} (#{self.mnemonic}, vector {self.vector}) {where}."
        return " ".join([headline, *self._causes(image, walk)])

    def _causes(self, image: Image | None, walk: Walk | None) -> list[str]:
        if self.vector != PAGE_FAULT or self.cr2 is None:
            return [_CAUSES.get(self.mnemonic, "")]
        code = self.error_code if self.error_code is not None else 0
        access = (
            "fetch an instruction from" if code & PF_FETCH
            else "write to" if code & PF_WRITE
            else "read from"
        )
        if code & PF_RESERVED:
            why = "but an entry on the way to it has a reserved bit set, so the CPU refuses the whole walk"
        elif code & PF_PROTECTION_KEY:
            why = "which is mapped, but its protection key forbids that access"
        elif not code & PF_PRESENT:
            why = "which is not mapped"
        else:
            why = "which is mapped, but its page permissions forbid that access"
        sentences = [f"It tried to {access} vaddr {self.cr2:#x}, {why}."]
        if code & PF_RESERVED:
            sentences.append(_reserved_entry(walk))
        sentences.append(describe_page_fault_error(code))
        region = image.describe_vaddr(self.cr2) if image is not None else None
        if self.cr2 < 0x1000:
            sentences.append(
                "That is the null page, left unmapped on purpose so that a null-pointer "
                "dereference faults instead of silently using address 0."
            )
        elif region is not None:
            sentences.append(f"That address lies in {region}.")
        return sentences


def _reserved_entry(walk: Walk | None) -> str:
    """Which entry and which bits, from the model's walk of the same tables."""
    fault = walk.fault if walk is not None else None
    if fault is None or fault.level is None or fault.index is None or not fault.reserved_bits:
        return ("The workbench's walk of the same tables does not find the reserved bit (the tables "
                "may have changed since), so it cannot name the entry.")
    return fault.message


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
