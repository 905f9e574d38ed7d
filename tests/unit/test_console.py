"""The console transcript: bounded, thread-safe, and a cursor that moves past each match."""

from __future__ import annotations

import re
import threading
import time

from workbench.guest.console import Console


def soon(seconds: float = 1.0) -> float:
    return time.monotonic() + seconds


def test_wait_for_moves_the_cursor_past_each_match() -> None:
    console = Console()
    console.feed(b"> ok ticks ticks=1\n> ok ticks ticks=2\n")
    first = console.wait_for(re.compile(r"ticks=(\d+)"), soon(), lambda: False)
    second = console.wait_for(re.compile(r"ticks=(\d+)"), soon(), lambda: False)
    assert first is not None and second is not None
    assert (first[1], second[1]) == ("1", "2")
    assert console.wait_for("ticks=", time.monotonic() + 0.05, lambda: False) is None


def test_a_literal_string_is_not_a_regex() -> None:
    console = Console()
    console.feed(b"cost: 3+4 (seven)\n")
    assert console.wait_for("3+4 (seven)", soon(), lambda: False) is not None


def test_output_arriving_from_another_thread_wakes_the_waiter() -> None:
    console = Console()
    threading.Timer(0.05, console.feed, [b"app: Hello\n"]).start()
    started = time.monotonic()
    assert console.wait_for("app:", soon(5), lambda: False) is not None
    assert time.monotonic() - started < 2


def test_a_flood_keeps_only_the_newest_text_and_counts_the_rest() -> None:
    console = Console(limit=4096)
    for _ in range(100):
        console.feed(b"x" * 1000)
    assert len(console.text) == 4096
    assert console.dropped == 100 * 1000 - 4096
    console.feed(b"\nend\n")
    assert console.wait_for("end", soon(), lambda: False) is not None


def test_utf8_split_across_chunks_and_crlf_are_decoded() -> None:
    console = Console()
    snowman = "☃".encode()
    console.feed(b"a" + snowman[:1])
    console.feed(snowman[1:] + b"\r\nb\xff\n")
    assert console.text == "a☃\nb\ufffd\n"


def test_should_stop_ends_the_wait_early() -> None:
    console = Console()
    started = time.monotonic()
    assert console.wait_for("never", soon(5), lambda: True) is None
    assert time.monotonic() - started < 1


def test_listeners_see_every_piece() -> None:
    console = Console()
    seen: list[str] = []
    console.add_listener(seen.append)
    console.feed(b"one\n")
    console.feed(b"two\n")
    assert "".join(seen) == "one\ntwo\n"
