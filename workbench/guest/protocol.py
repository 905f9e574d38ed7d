"""The application's line protocol, as the host speaks it (docs/guest-contract.md).

A request is one line of printable ASCII that fits the guest's line buffer; its reply is one
line, `ok CMD key=value ...` or `error CMD message`, after which the guest prompts `> ` again.
Pure: Machine (machine.py) sends and waits; this module checks requests, knows the reply's
shape, and reads the line buffer's size from the image.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from workbench.errors import InvalidInput, WorkbenchError
from workbench.guest.outcome import MachineError
from workbench.kernel.image import Image

# The guest reads a request into `char line[LINE_SIZE]` (kernel-src/app/main.c) and keeps
# LINE_SIZE - 1 characters; longer lines are cut without a word. The application exports that
# length as `app_request_limit`, so a student who changes LINE_SIZE gets the right check; an
# image without the symbol (an older or foreign one) is held to kernel-src's LINE_SIZE of 128.
REQUEST_LIMIT_SYMBOL = "app_request_limit"
MAX_REQUEST_LENGTH = 127  # characters, when the image does not say
MAX_SEND_LENGTH = 4096  # characters typed by one Machine.send(): the guest takes them one by one


def request_limit(image: Image) -> int:
    """The longest request the image's application reads whole (`app_request_limit`), else
    MAX_REQUEST_LENGTH."""
    symbol = image.symbols.get(REQUEST_LIMIT_SYMBOL)
    if symbol is None or symbol.kind != "object" or symbol.size not in (1, 2, 4, 8):
        return MAX_REQUEST_LENGTH
    try:
        value = int.from_bytes(image.initial_bytes(symbol.vaddr, symbol.size), "little")
    except WorkbenchError:
        return MAX_REQUEST_LENGTH
    return value if 1 <= value < MAX_SEND_LENGTH else MAX_REQUEST_LENGTH


class BadRequest(InvalidInput):
    """Text the guest's line protocol cannot carry; nothing was sent to the guest."""


class NoReply(MachineError):
    """The guest took a request and is waiting for the next one, but printed no reply line
    for it. The machine is still running and can be used."""


def check_request(line: str, limit: int = MAX_REQUEST_LENGTH) -> str:
    """`line` if it is one request the guest can read whole (at most `limit` characters);
    BadRequest saying why not."""
    if not isinstance(line, str):
        raise BadRequest(f"a request is a str such as 'ticks', not {type(line).__name__}")
    if len(line) > limit:
        raise BadRequest(f"a request is at most {limit} characters (the guest's line buffer holds no more), "
                         f"but this one has {len(line)}")
    breaks = [c for c in line if c in "\r\n"]
    if breaks:
        raise BadRequest(f"a request is one line, but {clip(line)} contains {breaks[0]!r}; "
                         "send each request with a request() call of its own")
    odd = next((c for c in line if not " " <= c <= "~"), None)
    if odd is not None:
        raise BadRequest(f"a request uses printable ASCII (letters, digits, punctuation, spaces) only, "
                         f"but {clip(line)} contains {odd!r}")
    if not line.strip():
        raise BadRequest("an empty request gets no reply (the guest just prints its prompt again); "
                         "send a command such as 'help'")
    return line


def clip(text: str, width: int = 40) -> str:
    """`text` quoted, cut to `width` characters: for messages about what a student typed."""
    return repr(text if len(text) <= width else text[:width] + "...")


@dataclass(frozen=True)
class Reply:
    """One answer of the application's line protocol: `ok CMD k=v ...` or `error CMD msg`."""

    ok: bool
    command: str
    fields: dict[str, str] = field(default_factory=dict)
    line: str = ""

    def __getitem__(self, key: str) -> str:
        return self.fields[key]

    def __repr__(self) -> str:
        return f"Reply({self.line!r})"

    def number(self, key: str) -> int:
        """A field as an int: `0x...` is hex, anything else decimal."""
        value = self.fields[key]
        return int(value, 16) if value.startswith("0x") else int(value)


def reply_pattern(command: str) -> re.Pattern[str]:
    """What ends the wait for a reply to `command`, in the console's text: a whole reply line,
    after a newline or the prompt, never a line still arriving; or else a new prompt at the
    very end, when the guest is done with the request and printed no reply."""
    return re.compile(rf"(?:^|(?<=> ))(ok|error) {re.escape(command)}\b([^\n]*)\n|\n> \Z", re.MULTILINE)


def parse_reply(match: re.Match[str], command: str) -> Reply | None:
    """The reply `reply_pattern(command)` matched; None when it matched the bare prompt."""
    if match[1] is None:
        return None
    ok, rest = match[1] == "ok", match[2].strip()
    fields = dict(pair.split("=", 1) for pair in rest.split() if "=" in pair) if ok else {"message": rest}
    return Reply(ok, command, fields, match[0].strip())
