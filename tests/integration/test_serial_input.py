"""Typed input on the live console (no recording): any amount, in one go, arrives whole.

The UART has 16-byte FIFOs and QEMU hands it only what fits (flow control), so a burst of
many long lines must neither lose nor reorder a byte. Recorded input is in test_replay.py.
"""

from __future__ import annotations

import re

from workbench.guest.machine import MAX_REQUEST_LENGTH, Machine
from workbench.kernel.image import Image


def test_many_long_lines_typed_at_once_all_arrive(image: Image) -> None:
    heap = image.symbol("__heap_base").vaddr
    with Machine(image) as machine:
        machine.wait_for("> ")
        machine.request("alloc 1")
        lines = [f"write {heap + 8 * i:#x} {0x1111111111111111 * (i % 15 + 1):#x}" for i in range(40)]
        machine.console.skip_to_end()
        machine.send("".join(line + "\n" for line in lines))  # about 1.8 KB in one write
        machine.wait_for(re.compile(rf"ok write vaddr={heap + 8 * 39:#x} value=0x[0-9a-f]+\n"), 30)  # the whole line
        replies = re.findall(r"ok write vaddr=(0x[0-9a-f]+) value=(0x[0-9a-f]+)", machine.console.text)
        assert [(int(v, 16), int(x, 16)) for v, x in replies][-40:] == [
            (heap + 8 * i, 0x1111111111111111 * (i % 15 + 1)) for i in range(40)]
        assert all(f"> {line}\n" in machine.console.text for line in lines), "an echo lost or reordered bytes"


def test_the_longest_request_is_echoed_and_served_whole(image: Image) -> None:
    heap = image.symbol("__heap_base").vaddr
    with Machine(image) as machine:
        machine.wait_for("> ")
        machine.request("alloc 1")
        start = f"write {heap:#x} 0x"
        line = start + "2a".rjust(MAX_REQUEST_LENGTH - len(start), "0")  # zeros up to the guest's limit
        assert len(line) == MAX_REQUEST_LENGTH
        reply = machine.request(line)
        assert reply.ok and reply.number("value") == 0x2A, reply
        assert f"> {line}\n" in machine.console.text


def test_input_typed_before_the_guest_sets_its_console_up_arrives_whole(image: Image) -> None:
    machine = Machine(image).start(paused=True)  # stopped before the first instruction
    try:
        machine.send("ticks\n")  # the UART holds the first byte, QEMU the rest, until console_init
        machine.resume()
        machine.wait_for(re.compile(r"ok ticks ticks=\d+"))
        assert "> ticks\n" in machine.console.text
    finally:
        machine.close()
