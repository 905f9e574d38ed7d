"""The application's line protocol on the host side: requests checked, replies parsed, and the
request limit read from the image (workbench/guest/protocol.py)."""

from __future__ import annotations

import re

import pytest

from workbench.guest.protocol import (
    MAX_REQUEST_LENGTH,
    BadRequest,
    check_request,
    parse_reply,
    reply_pattern,
    request_limit,
)
from workbench.kernel.image import Image


def test_the_limit_comes_from_the_image_and_defaults_without_it(image: Image) -> None:
    assert request_limit(image) == 127  # kernel-src's LINE_SIZE 128, less the NUL
    assert request_limit(Image.foreign(image.path)) == MAX_REQUEST_LENGTH  # no symbols at all


def test_requests_are_checked_against_the_limit_given() -> None:
    assert check_request("x" * 20, limit=20) == "x" * 20
    with pytest.raises(BadRequest, match="at most 19 characters"):
        check_request("x" * 20, limit=19)
    for bad in ("", "   ", "a\nb", "tab\there", "é", 5):
        with pytest.raises(BadRequest):
            check_request(bad)  # type: ignore[arg-type]


def test_a_reply_is_a_whole_line_after_the_prompt_and_a_bare_prompt_is_none() -> None:
    pattern = reply_pattern("alloc")
    text = "> alloc 2\nok alloc vaddr=0xffffc00000000000 pages=2\n> "
    match = pattern.search(text)
    assert match is not None
    reply = parse_reply(match, "alloc")
    assert reply is not None and reply.ok and reply.number("vaddr") == 0xFFFFC00000000000 and reply["pages"] == "2"
    assert pattern.search("> alloc 2\nok alloc vaddr=0x1") is None  # still arriving
    error = pattern.search("> alloc x\nerror alloc not a number: x\n> ")
    refused = parse_reply(error, "alloc") if error is not None else None
    assert refused is not None and not refused.ok and refused["message"] == "not a number: x"
    silent = pattern.search("> alloc 2\n> ")
    assert silent is not None and parse_reply(silent, "alloc") is None
    assert isinstance(pattern, re.Pattern)
