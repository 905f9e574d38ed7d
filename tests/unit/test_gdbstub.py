"""The gdbstub client against a scripted stub on a socket pair: framing, acknowledgements,
unasked stop replies, errors and timeouts. The real QEMU stub is in tests/integration/test_calls.py."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from workbench.guest.gdbstub import (
    GdbClient,
    GdbError,
    GdbTimeout,
    StopReply,
    checksum,
    frame,
    parse_target_description,
    unescape,
)

TARGET = '<?xml version="1.0"?><target><xi:include href="core.xml"/></target>'
CORE = """<feature name="core">
  <reg name="rax" bitsize="64" regnum="0"/>
  <!--reg name="hidden" bitsize="64"/-->
  <reg name="rip" bitsize="64"/>
  <reg name="cs" bitsize="32"/>
</feature>"""


def packet(data: str) -> bytes:
    return b"$" + data.encode() + b"#" + checksum(data.encode())


class ScriptedStub:
    """Answers each packet it receives with what `answer(data)` returns (a list of raw chunks)."""

    def __init__(self, answer: Callable[[str], list[bytes]]) -> None:
        self.ours, self.theirs = socket.socketpair()
        self.answer = answer
        self.received: list[str] = []
        self.acks = True
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        buffer = b""
        while True:
            try:
                data = self.theirs.recv(4096)
            except OSError:
                return
            if not data:
                return
            buffer += data
            while True:
                buffer = buffer.lstrip(b"+")
                if buffer[:1] == b"\x03":
                    buffer = buffer[1:]
                    self.received.append("<interrupt>")
                    self.theirs.sendall(packet("T02thread:01;"))
                    continue
                end = buffer.find(b"#")
                if not buffer.startswith(b"$") or end < 0 or len(buffer) < end + 3:
                    break
                body = buffer[1:end].decode()
                assert buffer[end + 1 : end + 3] == checksum(body.encode()), "bad checksum from the client"
                buffer = buffer[end + 3 :]
                self.received.append(body)
                if self.acks:
                    self.theirs.sendall(b"+")
                if body == "QStartNoAckMode":
                    self.theirs.sendall(packet("OK"))
                    self.acks = False
                    continue
                for chunk in self.answer(body):
                    self.theirs.sendall(chunk)

    def close(self) -> None:
        self.theirs.close()
        self.ours.close()


G_REPLY = "0100000000000000" + "00001080ffffffff" + "2b000000"  # rax 1, rip 0xffffffff80100000, cs 0x2b
REPLIES = {  # command prefix -> reply; the first prefix that matches wins
    "qSupported": "PacketSize=1000;qXfer:features:read+",
    "qXfer:features:read:target.xml": "l" + TARGET,
    "qXfer:features:read:core.xml:0,": "m" + CORE[:40],
    "qXfer:features:read:core.xml:": "l" + CORE[40:],
    "g": G_REPLY,
    "m": "E14",
    "s": "T05thread:01;",
}


def standard(body: str) -> list[bytes]:
    reply = next((answer for prefix, answer in REPLIES.items() if body.startswith(prefix)), "OK")
    return [packet(reply)]


@pytest.fixture
def stub() -> Iterator[ScriptedStub]:
    scripted = ScriptedStub(standard)
    yield scripted
    scripted.close()


def connected(stub: ScriptedStub) -> GdbClient:
    client = GdbClient(stub.ours, timeout=2.0)
    client.connect()
    return client


def test_packets_carry_their_checksum_and_refuse_what_needs_escaping() -> None:
    assert frame("g") == b"$g#67"
    assert frame("Z0,ffffffff80100000,1").endswith(b"#" + checksum(b"Z0,ffffffff80100000,1"))
    with pytest.raises(ValueError, match="escaping"):
        frame("X1000,4:$#")


def test_run_length_encoding_and_escapes_are_undone() -> None:
    assert unescape(b"0* ") == b"0" * 4  # ' ' is 32: three more copies
    assert unescape(b"a}\x03b") == b"a#b"


def test_the_target_description_gives_each_register_its_place_in_g() -> None:
    registers = parse_target_description({"target.xml": TARGET, "core.xml": CORE})
    assert [(r.name, r.offset, r.size) for r in registers] == [("rax", 0, 8), ("rip", 8, 8), ("cs", 16, 4)]


def test_connect_negotiates_no_acks_and_reads_the_split_description(stub: ScriptedStub) -> None:
    client = connected(stub)
    assert [r.name for r in client.registers_layout] == ["rax", "rip", "cs"]
    assert "QStartNoAckMode" in stub.received
    assert client.registers() == {"rax": 1, "rip": 0xFFFFFFFF80100000, "cs": 0x2B}


def test_stop_replies_nobody_asked_for_are_skipped(stub: ScriptedStub) -> None:
    client = connected(stub)
    stub.theirs.sendall(packet("T02thread:01;"))  # e.g. a QMP `stop` while nobody was stepping
    assert client.registers()["cs"] == 0x2B
    stub.theirs.sendall(packet("T02thread:01;"))
    assert client.step().signal == 5  # the stale T02 is discarded, the step's own T05 returned


def test_interrupt_waits_for_the_stop(stub: ScriptedStub) -> None:
    client = connected(stub)
    assert client.interrupt().signal == 2
    assert "<interrupt>" in stub.received


def test_an_error_reply_raises_with_the_command() -> None:
    scripted = ScriptedStub(standard)
    try:
        client = connected(scripted)
        with pytest.raises(GdbError, match=r"refused 'm0,8': error 14"):
            client.read_memory(0, 8)
    finally:
        scripted.close()


def test_silence_is_a_timeout_and_a_closed_socket_an_error() -> None:
    silent = ScriptedStub(lambda body: [] if body in {"c", "g"} else standard(body))
    try:
        client = connected(silent)
        client.resume()
        with pytest.raises(GdbTimeout, match="did not stop"):
            client.wait_for_stop(0.2)
        with pytest.raises(GdbTimeout):
            client.command("g", 0.2)
        silent.theirs.close()
        with pytest.raises(GdbError, match="closed"):
            client.command("g", 1.0)
    finally:
        silent.close()


def test_breakpoints_are_remembered_until_removed(stub: ScriptedStub) -> None:
    client = connected(stub)
    client.set_breakpoint(0x400003)
    assert client.breakpoints == {0x400003} and "Z0,400003,1" in stub.received
    client.remove_breakpoint(0x400003)
    assert client.breakpoints == set() and "z0,400003,1" in stub.received


def test_watchpoints_use_z2_z3_z4_and_are_remembered(stub: ScriptedStub) -> None:
    client = connected(stub)
    client.set_watchpoint(0xFFFF800000001000, 8, "write")
    client.set_watchpoint(0x1000, 4, "read")
    client.set_watchpoint(0x2000, 1, "access")
    assert {"Z2,ffff800000001000,8", "Z3,1000,4", "Z4,2000,1"} <= set(stub.received)
    assert client.watchpoints == {("write", 0xFFFF800000001000, 8), ("read", 0x1000, 4), ("access", 0x2000, 1)}
    client.remove_watchpoint(0x1000, 4, "read")
    assert "z3,1000,4" in stub.received and ("read", 0x1000, 4) not in client.watchpoints
    with pytest.raises(GdbError, match="watches write, read, access"):
        client.set_watchpoint(0x1000, 8, "execute")


def test_a_watchpoint_stop_says_what_and_where() -> None:
    assert StopReply("T05watch:ffff800000001000;thread:01;").watch == ("write", 0xFFFF800000001000)
    assert StopReply("T05thread:01;rwatch:1000;").watch == ("read", 0x1000)
    assert StopReply("T05awatch:2000;").watch == ("access", 0x2000)
    assert StopReply("T05thread:01;").watch is None and StopReply("S05").fields == {}


def test_registers_one_by_one_when_the_g_reply_is_shorter_than_described() -> None:
    # A stub that sends 32-bit values for rip in some mode: the g reply no longer fits the layout.
    answers = {"g": "0100000000000000" + "00001000" + "08000000", "p0": "0100000000000000", "p1": "00001000",
               "p2": "08000000"}
    scripted = ScriptedStub(lambda body: [packet(answers[body])] if body in answers else standard(body))
    try:
        client = connected(scripted)
        assert client.registers() == {"rax": 1, "rip": 0x100000, "cs": 8}
        assert {"p0", "p1", "p2"} <= set(scripted.received)
    finally:
        scripted.close()


def test_memory_writes_are_sent_as_hex(stub: ScriptedStub) -> None:
    client = connected(stub)
    client.write_memory(0x1000, b"\x01\xff")
    assert "M1000,2:01ff" in stub.received
