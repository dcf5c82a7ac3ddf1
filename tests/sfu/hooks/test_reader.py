"""Tests of sfu/hooks/reader.py and sfu/_reader.c: ICE sockets read by a transport of ours, batches into C."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvloop

from sfu.hooks.guard import CompiledDemux, CompiledReader
from sfu.hooks.reader import DATAGRAM_SIZE, READ_LIMIT, PythonReader, SocketTransport, take_over, transport_socket
from sfu.sfu import Sfu
from tests.sfu.helpers import RED, ColorTrack, join, publish, sfu_config, wait_until

pytestmark = pytest.mark.timeout(60)

needs_c = pytest.mark.skipif(CompiledReader is None, reason="sfu._fanout is not built")
IP_RECVERR = 11  # <linux/in.h> (the socket module does not name it)
KINDS = [pytest.param("compiled", marks=needs_c), "python"]

# 0x80 first byte, version 2 and payload type 0: RTP-shaped; no Ingress is armed for it, so C does not keep it
RTP_SHAPED = bytes([0x80, 0x00]) + bytes(10) + b"payload"


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """pair: a non-blocking receiving socket and a sender, both on 127.0.0.1."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    tx.bind(("127.0.0.1", 0))
    rx.setblocking(False)
    yield rx, tx
    rx.close()
    tx.close()


def make_reader(kind: str, sock: socket.socket, deliver: Any, error_received: Any = None) -> Any:
    """make_reader: the C Reader (in front of an empty C Demux) or its Python twin on `sock`."""
    if kind == "compiled":
        return CompiledReader(sock.fileno(), CompiledDemux(deliver), deliver, error_received)
    return PythonReader(sock, deliver, error_received)


@pytest.mark.parametrize("kind", KINDS)
def test_datagrams_c_does_not_keep_reach_the_fallback_with_their_address(kind: str, pair: Any) -> None:
    rx, tx = pair
    got: list[tuple[bytes, tuple[Any, ...]]] = []
    reader = make_reader(kind, rx, lambda data, addr: got.append((data, addr)))
    assert reader.read() == 0  # nothing there: EAGAIN is no error
    sent = [RTP_SHAPED + bytes([i]) for i in range(40)] + [b"\x00\x01stun-like", b"\x16dtls-like", b"x" * 1400]
    for data in sent:
        tx.sendto(data, rx.getsockname())
    assert reader.read() == READ_LIMIT  # one batch of 32 per wake-up
    assert reader.read() == len(sent) - READ_LIMIT  # a short batch: drained
    assert [d for d, _ in got] == sent  # in order, whole
    assert {addr for _, addr in got} == {tx.getsockname()}  # the tuple the socket module gives
    assert reader.read() == 0


@pytest.mark.parametrize("kind", KINDS)
def test_an_oversized_datagram_is_dropped_counted_and_the_next_ones_arrive(kind: str, pair: Any) -> None:
    """A datagram over DATAGRAM_SIZE (nothing an ICE socket carries) is dropped whole, not cut and handed on."""
    rx, tx = pair
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    got: list[bytes] = []
    reader = make_reader(kind, rx, lambda data, addr: got.append(data))
    sent = [b"\x00\x01before", b"x" * (DATAGRAM_SIZE + 100), b"\x00\x01after"]
    for data in sent:
        tx.sendto(data, rx.getsockname())
    assert reader.read() == 3
    assert got == [sent[0], sent[2]]
    assert reader.truncated == 1


@pytest.mark.parametrize("kind", KINDS)
def test_one_wake_up_reads_a_bounded_number_and_leaves_the_rest(kind: str, pair: Any) -> None:
    rx, tx = pair
    got: list[bytes] = []
    reader = make_reader(kind, rx, lambda data, addr: got.append(data))
    for i in range(READ_LIMIT + 20):
        tx.sendto(i.to_bytes(2, "big"), rx.getsockname())
    assert reader.read() == READ_LIMIT  # the loop's other callbacks get their turn
    assert reader.read() == 20
    assert [int.from_bytes(d, "big") for d in got] == list(range(READ_LIMIT + 20))


@pytest.mark.parametrize("kind", KINDS)
def test_close_in_a_callback_stops_reading_at_once(kind: str, pair: Any) -> None:
    rx, tx = pair
    got: list[bytes] = []
    reader: Any = None

    def deliver(data: bytes, addr: Any) -> None:
        got.append(data)
        if len(got) == 3:
            reader.close()

    reader = make_reader(kind, rx, deliver)
    for i in range(10):
        tx.sendto(bytes([i]), rx.getsockname())
    reader.read()
    assert got == [b"\x00", b"\x01", b"\x02"]  # none after close (C: the rest of its batch is dropped)
    assert reader.read() == 0


@pytest.mark.parametrize("kind", KINDS)
def test_a_failing_callback_costs_nothing_else_of_the_batch(kind: str, pair: Any) -> None:
    rx, tx = pair
    got: list[bytes] = []

    def deliver(data: bytes, addr: Any) -> None:
        got.append(data)
        if data == b"\x01":
            raise RuntimeError("a bug in the Python path")

    reader = make_reader(kind, rx, deliver)
    for i in range(4):
        tx.sendto(bytes([i]), rx.getsockname())
    if kind == "compiled":  # C delivers the whole batch, then raises the first exception (the loop logs it)
        with pytest.raises(RuntimeError):
            reader.read()
        assert got == [b"\x00", b"\x01", b"\x02", b"\x03"]
    else:  # the twin raises at once, like asyncio's transport; the next wake-up reads on
        with pytest.raises(RuntimeError):
            reader.read()
        assert reader.read() == 2
        assert got == [b"\x00", b"\x01", b"\x02", b"\x03"]


@pytest.mark.parametrize("kind", KINDS)
def test_icmp_port_unreachable_does_not_stop_the_reader(kind: str, pair: Any) -> None:
    """ECONNREFUSED (a peer gone: ICMP port unreachable, reported with IP_RECVERR) reaches error_received;
    the datagrams behind it are read in the same wake-up."""
    rx, tx = pair
    rx.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
    gone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    gone.bind(("127.0.0.1", 0))
    closed_port = gone.getsockname()
    gone.close()
    rx.sendto(b"to nobody", closed_port)
    got: list[bytes] = []
    errors: list[Exception] = []
    reader = make_reader(kind, rx, lambda data, addr: got.append(data), errors.append)
    tx.sendto(b"after", rx.getsockname())
    time.sleep(0.05)  # loopback's ICMP error and the datagram are queued at once; a margin all the same
    assert reader.read() == 1  # one wake-up: the error, then the datagram behind it
    assert got == [b"after"]
    assert len(errors) == 1 and isinstance(errors[0], ConnectionRefusedError)
    assert reader.errors == 1
    tx.sendto(b"again", rx.getsockname())
    assert reader.read() == 1 and got[-1] == b"again"


class Recording(asyncio.DatagramProtocol):
    """Recording: a datagram protocol like aioice's StunProtocol (its ``transport`` attribute is public)."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.got: list[tuple[bytes, Any]] = []
        self.lost: list[Exception | None] = []

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.got.append((data, addr))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.append(exc)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
@pytest.mark.parametrize("kind", KINDS)
def test_take_over_replaces_the_loops_transport(loop: str, kind: str) -> None:
    factory = uvloop.new_event_loop if loop == "uvloop" else asyncio.SelectorEventLoop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(take_over_round_trip(kind == "compiled"))


async def take_over_round_trip(compiled: bool) -> None:
    loop = asyncio.get_running_loop()
    old, protocol = await loop.create_datagram_endpoint(Recording, local_addr=("127.0.0.1", 0))
    address = old.get_extra_info("sockname")
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.setblocking(False)
    try:
        peer.sendto(b"before", address)  # waits in the socket across the change
        new = take_over(protocol, None, compiled)
        assert isinstance(new, SocketTransport) and protocol.transport is new
        assert take_over(protocol) is new  # once
        assert isinstance(new.reader, CompiledReader if compiled else PythonReader)
        assert old.is_closing() and new.get_extra_info("sockname") == address
        peer.sendto(b"after", address)
        await wait_until(lambda: len(protocol.got) == 2, 5)
        assert protocol.got == [(b"before", peer.getsockname()), (b"after", peer.getsockname())]
        assert protocol.lost == []  # the loop's transport ended, but not towards this protocol
        new.sendto(b"reply", peer.getsockname())  # aioice's and aiortc's sends
        await wait_until(lambda: _recv(peer) == b"reply", 5)
        found = transport_socket(new)
        assert found is not None and found == (new.socket, None)  # wire and feedback send on it as it is
        new.close()
        assert new.is_closing()
        await asyncio.sleep(0.05)
        assert protocol.lost == [None]  # once, as aioice's StunProtocol.close awaits
        assert new.socket.fileno() == -1
        assert new.reader.read() == 0  # closed: never reads (the loop's callback is gone too)
    finally:
        peer.close()


async def test_take_over_leaves_a_transport_without_a_socket_alone() -> None:
    """aioice's TurnTransport (a relayed candidate) has no socket of its own: it keeps its path."""
    from aioice.turn import TurnTransport

    protocol = Recording()
    turn: Any = TurnTransport.__new__(TurnTransport)
    turn.get_extra_info = lambda name, default=None: None  # a relayed address only, no "socket"
    turn.is_closing = lambda: False
    protocol.transport = turn
    assert take_over(protocol) is None and protocol.transport is turn


def _recv(sock: socket.socket) -> bytes | None:
    try:
        return sock.recv(2048)
    except BlockingIOError:
        return None


async def test_transport_socket_duplicates_a_uvloop_descriptor() -> None:
    loop = asyncio.get_running_loop()
    udp, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
    try:
        found = transport_socket(udp)
        assert found is not None
        sock, dup = found
        if isinstance(loop, uvloop.Loop):
            assert dup is sock and sock.getsockname() == udp.get_extra_info("sockname")
            dup.close()
        else:
            assert dup is None
    finally:
        udp.close()


@pytest.mark.parametrize("fast", [True, False])
async def test_media_and_ice_through_our_transport(fast: bool) -> None:
    """A real trainer publishes to a classroom: every ICE socket of the forwarding peers is ours; with the C
    extension armed media stays in C, STUN (the checks, consent) and DTLS reach aioice and aiortc."""
    sfu = Sfu(sfu_config(fast_path=fast, consent_interval=0.3))
    clients = []
    try:
        room = await sfu.room("reader")
        t = await join(room, "t", "trainer", decode=False)
        c = await join(room, "c", "classroom")
        clients = [t, c]
        await publish(room, t, video=ColorTrack(RED), audio=False)
        await wait_until(lambda: len(c.slot_frames("presenter-video")) >= 10, 10)
        up: Any = room.participants["t"].up
        down: Any = room.participants["c"].down
        (consent,) = down.pc.consents
        await wait_until(lambda: consent.confirmed >= 2, 10)  # our checks and their answers, through our sockets
        transports = [p.transport for p in consent._conn._protocols]
        assert transports and all(isinstance(x, SocketTransport) for x in transports)
        readers = [p.transport.reader for tr in up.pc.getTransceivers() for p in _protocols(tr)]
        assert readers and all(isinstance(r, CompiledReader if fast and CompiledReader else PythonReader)
                               for r in readers)
        if fast and CompiledReader is not None:
            await wait_until(lambda: sum(r.kept for r in set(readers)) >= 30, 10)  # the video's packets
            kept = sum(r.kept for r in set(readers))
            assert sum(r.datagrams for r in set(readers)) > kept  # STUN and DTLS (and early media) were not
            assert sum(r.truncated for r in readers) == 0
    finally:
        for cl in clients:
            await cl.close()
        await sfu.close()
    assert all(x.socket.fileno() == -1 for x in transports)


def _protocols(transceiver: Any) -> list[Any]:
    from sfu.hooks.ice import ice_connection

    conn: Any = ice_connection(transceiver.receiver.transport)
    return list(conn._protocols)
