"""Tests of our outgoing SRTP across the rollover counter: a Consumer's packets crossing 65535 -> 0 several times.

A down Peer (real aiortc, DTLS-SRTP keys negotiated with a loopback client) sends a Consumer's packets through
its real PacketWire: the Python wire path (libsrtp protect in the session's buffer, ``sendto``) and the C Slot
route (``_fanout.fanout``). The client's own libsrtp receive session (pylibsrtp) unprotects what arrives on
its socket: a sender whose rollover counter (RFC 3711 3.3.1) went wrong would fail authentication from the
first wrap on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import time
from typing import Any

import pytest
from aiortc import RTCSessionDescription

from sfu.config import SfuConfig
from sfu.consumer import COMPILED, Consumer
from sfu.hooks.ice import ice_connection
from sfu.hooks.sender import ForwardingSender
from sfu.peer import Peer
from sfu.producer import Producer
from tests.sfu.fakes import FakeReceiver
from tests.sfu.helpers import client_pc, wait_until

pytestmark = pytest.mark.timeout(60)

PACKETS = 140_000  # per Consumer: the output sequence number wraps three times (the SRTP ROC reaches 3)
FIRST_OUT_SEQ = 65530  # the output starts a few packets below the wrap...
FIRST_OUT_TS = 2**32 - 3000 * 7  # ...and so does its timestamp
BATCH = 100  # packets per Consumer sent before draining the client's socket (well within its buffer)


def payload(i: int) -> bytes:
    """payload is packet i's VP8 payload: the first starts a keyframe, every one carries its index."""
    return bytes((0x10, 0x00 if i == 0 else 0x01)) + i.to_bytes(4, "big") + bytes(30)


class Receiver:
    """Receiver reads the client's socket itself (its event loop is held off) and unprotects in place with the
    client's libsrtp session; anything but our SSRCs' RTP (STUN, DTLS, RTCP) goes on to the client's protocol.

    Each SSRC's packets must come in order: output sequence number and timestamp from the slot's start, and
    the payload of packet i (its index); ``got`` counts them, ``bad`` keeps what went wrong.
    """

    def __init__(self, client: Any) -> None:
        from pylibsrtp._binding import ffi, lib

        dtls = client.getTransceivers()[0].receiver.transport
        self.session = dtls._rx_srtp
        pair = ice_connection(dtls)._nominated[1]
        self.protocol = pair.protocol
        fileno = pair.protocol.transport.get_extra_info("socket").fileno()
        self.sock = socket.socket(fileno=os.dup(fileno))  # the same kernel socket (uvloop shows no object)
        self.sock.setblocking(False)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self._cdata = ffi.new("unsigned char[]", 2048)
        self._view = memoryview(ffi.buffer(self._cdata))
        self._len = ffi.new("int *")
        self._unprotect = lib.srtp_unprotect
        self.got: dict[int, int] = {}  # SSRC -> packets received
        self.bad: list[tuple[int, int, Any]] = []  # (SSRC, index expected, what came instead)

    def drain(self) -> None:
        """drain unprotects every datagram waiting on the client's socket and checks it."""
        view, got = self._view, self.got
        srtp = self.session._srtp[0]
        while True:
            try:
                n, addr = self.sock.recvfrom_into(view)
            except BlockingIOError:
                return
            ssrc = struct.unpack_from("!I", view, 8)[0] if n >= 12 else None
            if ssrc not in got or view[0] & 0xC0 != 0x80 or 192 <= view[1] < 224:  # RTCP: 200-204
                self.protocol.datagram_received(bytes(view[:n]), addr)
                continue
            i = got[ssrc]
            got[ssrc] = i + 1
            self._len[0] = n
            if self._unprotect(srtp, self._cdata, self._len):  # authentication, replay or index failure
                self.bad.append((ssrc, i, "unprotect failed"))
                continue
            seq, ts = struct.unpack_from("!HI", view, 2)
            head = 12 + 4 * (view[0] & 0x0F)
            if view[0] & 0x10:
                head += 4 + 4 * struct.unpack_from("!H", view, head + 2)[0]
            index = struct.unpack_from("!I", view, head + 2)[0]
            if (seq, ts, index) != ((FIRST_OUT_SEQ + i) & 0xFFFF, (FIRST_OUT_TS + 3000 * (i // 2)) & 0xFFFFFFFF, i):
                self.bad.append((ssrc, i, (seq, ts, index)))

    def close(self) -> None:
        self.sock.close()


async def test_rollover_counter_follows_the_sequence_wraps() -> None:
    down = Peer("down", True, SfuConfig(ice_addresses=["127.0.0.1"]), "video/vp8", lambda p, s: None)
    client = client_pc()
    receiver: Receiver | None = None
    try:
        senders = [down.add_slot("video"), down.add_slot("video")]
        assert all(isinstance(s, ForwardingSender) for s in senders)
        python_path = Consumer("down", "a", "video", senders[0], down.wire_for, compiled=False)
        c_route = Consumer("down", "b", "video", senders[1], down.wire_for, compiled=COMPILED)
        await client.setRemoteDescription(RTCSessionDescription(sdp=await down.offer(), type="offer"))
        await client.setLocalDescription(await client.createAnswer())
        await down.apply_answer(client.localDescription.sdp)
        await wait_until(lambda: python_path.ready and c_route.ready and down.state == "connected"
                         and client.connectionState == "connected", 10)
        await asyncio.sleep(0.2)  # let both ends settle (DTLS, first consent checks)
        receiver = Receiver(client)
        producers = []
        for consumer in (python_path, c_route):
            # the slot's output starts just below both wraps (as if it had been sending for hours)
            rw = consumer._rewriter
            assert rw is not None and consumer.ctx is not None
            rw.last_seq, rw.last_ts = FIRST_OUT_SEQ - 1, FIRST_OUT_TS
            if consumer.cslot is not None:
                consumer.cslot.__init__(90000, 3000, FIRST_OUT_SEQ, FIRST_OUT_TS, True)
            receiver.got[consumer.ctx.ssrc] = 0
            producer = Producer("up", "camera", "video", "video/vp8", FakeReceiver(),  # type: ignore[arg-type]
                                keyframe_min_interval=3600)
            producer.set_sinks((consumer,))
            producers.append(producer)
        wire = python_path.wire
        assert wire is not None and wire is c_route.wire  # one transport (BUNDLE): one wire, one SRTP session
        to_python = [0]  # packets the C fan-out left to Consumer.forward
        c_forward = c_route.forward

        def counted(p: Any) -> None:
            to_python[0] += 1
            c_forward(p)

        c_route.forward = counted  # type: ignore[method-assign]
        in_seq, in_ts = 1000, 5000
        for start in range(0, PACKETS, BATCH):
            now = time.time()
            for i in range(start, min(start + BATCH, PACKETS)):
                seq, ts, marker = (in_seq + i) & 0xFFFF, (in_ts + 3000 * (i // 2)) & 0xFFFFFFFF, i % 2
                for producer in producers:
                    producer.on_fields(0x5EED, seq, ts, marker, payload(i), 0, 0x7F, now)
            receiver.drain()
            if start % (BATCH * 50) == 0:
                await asyncio.sleep(0)  # the event loop runs now and then (consent, the wire's sender reports)

        def all_received() -> bool:
            assert receiver is not None
            receiver.drain()
            return all(n == PACKETS for n in receiver.got.values())

        with contextlib.suppress(TimeoutError):  # (what is missing shows below)
            await wait_until(all_received, 10)
        assert receiver.bad == []  # every packet unprotected, in order, with its payload, across three wraps
        assert list(receiver.got.values()) == [PACKETS, PACKETS]
        assert python_path.packets_sent == c_route.packets_sent == PACKETS
        if COMPILED:  # the C route sent all but the first packet (a new source's mapping is Python's)
            assert c_route.cslot is not None and c_route.cslot.routed and to_python == [1]
        assert wire.fast_sent >= PACKETS and wire.slow_sent == 0  # the Python wire path, not aiortc's send
    finally:
        if receiver is not None:
            receiver.close()
        await client.close()
        await down.close()
