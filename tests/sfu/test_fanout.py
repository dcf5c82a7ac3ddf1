"""Tests of the C fan-out (sfu/_fanout.c): same bytes as the Python path, real libsrtp, real UDP sockets."""

from __future__ import annotations

import random
import socket
import struct
from collections.abc import Iterator
from typing import Any

import pylibsrtp
import pytest

from sfu.consumer import COMPILED, HeaderRewriter, Inbound, build_header_template
from sfu.hooks.guard import protect_address
from tests.sfu.fakes import context

pytestmark = pytest.mark.skipif(not COMPILED, reason="sfu._fanout not built")

KEY = bytes(range(30))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def udp() -> Iterator[tuple[socket.socket, socket.socket]]:
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.bind(("127.0.0.1", 0))
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(2)
    yield tx, rx
    tx.close()
    rx.close()


def sessions() -> tuple[pylibsrtp.Session, pylibsrtp.Session]:
    tx = pylibsrtp.Session(pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
    rx = pylibsrtp.Session(pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND))
    return tx, rx


def srtp_address(session: pylibsrtp.Session) -> int:
    from pylibsrtp._binding import ffi

    return int(ffi.cast("uintptr_t", session._srtp[0]))  # type: ignore[attr-defined]


def inbound(seq: int, ts: int, key: bool = True, payload: bytes = b"\x10abc", padding: int = 0) -> Inbound:
    ntp = (3_900_000_000 << 32) | 0x12345678
    return Inbound(ssrc=5, seq=seq, ts=ts, marker=1, payload=payload, keyframe=key, ntp=ntp,
                   abs_send_time=(ntp >> 14) & 0xFFFFFF, audio_level=0x85, padding=padding)


def fan(slots: tuple[object, ...], p: Inbound, now: float = 0.0) -> list[int] | None:
    from sfu._fanout import fanout

    result: list[int] | None = fanout(slots, p, p.payload, p.ssrc, p.seq, p.ts, p.marker, p.keyframe, p.ntp,
                                      p.padding, p.audio_level, now)
    return result


def expected(kind: str, p: Inbound, seq: int, ts: int) -> bytes:
    ctx = context(kind)
    head, ast_off, al_off = build_header_template(ctx)
    struct.pack_into("!BHI", head, 1, (p.marker << 7) | ctx.payload_type, seq, ts)
    if ast_off:
        struct.pack_into("!HB", head, ast_off, p.abs_send_time >> 8, p.abs_send_time & 0xFF)
    if al_off:
        head[al_off] = p.audio_level
    pad = bytes(p.padding - 1) + bytes((p.padding,)) if p.padding else b""
    if p.padding:
        head[0] |= 0x20
    return bytes(head) + p.payload + pad


def bound_slot(kind: str, tx_sock: socket.socket, rx_sock: socket.socket, session: pylibsrtp.Session) -> object:
    from sfu._fanout import Slot

    ctx = context(kind)
    slot = Slot(ctx.clock_rate, 3000, 100, 1000, kind == "video")
    head, ast_off, al_off = build_header_template(ctx)
    slot.set_head(bytes(head), ast_off, al_off, ctx.payload_type)
    port = rx_sock.getsockname()[1]
    assert slot.set_route(tx_sock, int(socket.AF_INET), "127.0.0.1", port, session, srtp_address(session),
                          protect_address())
    assert slot.routed
    return slot


@pytest.mark.parametrize("kind", ["video", "audio"])
def test_fanout_sends_the_python_paths_bytes_protected(udp: tuple[socket.socket, socket.socket], kind: str) -> None:
    tx_sock, rx_sock = udp
    tx, rx = sessions()
    slot: object = bound_slot(kind, tx_sock, rx_sock, tx)
    s: object = slot
    first = inbound(40000, 555)
    assert fan((slot,), first) == [0]  # a new source: Python maps the first packet
    assert s.map(first.ssrc, first.seq, first.ts, 0.0) == (100, 1000)  # type: ignore[attr-defined]
    for i, p in enumerate([inbound(40001, 555), inbound(40002, 3555, padding=4), inbound(40004, 6555)]):
        assert fan((slot,), p, now=float(i)) is None
        seq, ts = (p.seq - 40000 + 100) & 0xFFFF, p.ts - 555 + 1000
        assert rx.unprotect(rx_sock.recv(2048)) == expected(kind, p, seq, ts)
        assert s.recall(seq) == (seq, ts, p, float(i), -1, -1)  # type: ignore[attr-defined]
    assert s.packets_sent == 3 and s.bytes_sent == 12  # type: ignore[attr-defined]
    assert s.take_counts()[0] == 3 and s.take_counts() == (0, 0)  # type: ignore[attr-defined]
    assert s.last_seq == 104 and s.last_out_ts == 6555 - 555 + 1000  # type: ignore[attr-defined]
    assert fan((slot,), inbound(39999, 0)) == [0]  # older than the source's start: Python drops it


def test_fanout_waits_for_keyframe_and_leaves_unrouted_slots_to_python(
    udp: tuple[socket.socket, socket.socket],
) -> None:
    from sfu._fanout import Slot

    tx_sock, rx_sock = udp
    tx, rx = sessions()
    slot: object = bound_slot("video", tx_sock, rx_sock, tx)
    s: object = slot
    s.map(5, 10, 0, 0.0)  # type: ignore[attr-defined]
    s.waiting_keyframe = True  # type: ignore[attr-defined]
    unrouted = Slot(90000, 3000, 0, 0, True)
    assert fan((slot, unrouted), inbound(11, 0, key=False)) == [1]
    assert s.packets_sent == 0  # type: ignore[attr-defined]
    assert fan((slot, unrouted), inbound(12, 0, key=True)) == [1]
    assert rx.unprotect(rx_sock.recv(2048))[2:4] == struct.pack("!H", 102)
    tx_sock.close()  # a closed socket is never written: the route is dropped, Python rebinds
    assert fan((slot,), inbound(13, 0)) is None
    assert not s.routed and s.send_errors == 1  # type: ignore[attr-defined]
    assert fan((slot,), inbound(14, 0)) == [0]


@pytest.mark.parametrize("seed", [7, 8])
def test_slot_map_matches_header_rewriter(seed: int) -> None:
    """The C Slot and HeaderRewriter are twins: the same packets give the same mapping and the same state,
    over several wraps of the sequence space, with switches, new SSRCs, reordering, late packets and restarts."""
    from sfu._fanout import Slot

    rnd = random.Random(seed)
    clock = Clock()
    rw = HeaderRewriter(90000, 3000, first_seq=0xFFF0, first_ts=0xFFFFF000, clock=clock)
    slot: Any = Slot(90000, 3000, 0xFFF0, 0xFFFFF000, True)
    ssrc, seq, ts = 1, rnd.randrange(0x10000), rnd.getrandbits(32)
    dropped = 0
    for _ in range(150_000):
        clock.now += rnd.random() * 0.02
        r = rnd.random()
        if r < 0.0001:
            rw.switch()
            slot.switch()
        elif r < 0.0002:
            ssrc, seq, ts = ssrc + 1, rnd.randrange(0x10000), rnd.getrandbits(32)
        elif r < 0.0003:
            seq = (seq + 0x9000) & 0xFFFF  # the source restarts its numbering
        if rnd.random() < 0.02:  # a late packet: a little, a lot or very much behind the newest
            late = (seq - rnd.choice([1, 3, 4000, 5000, 20000])) & 0xFFFF
            assert slot.steady(ssrc, late) == rw.steady(ssrc, late)
            mapped = rw.map(ssrc, late, ts)
            dropped += mapped is None
            assert slot.map(ssrc, late, ts, clock.now) == mapped
        seq = (seq + rnd.choice([1] * 20 + [2])) & 0xFFFF
        ts = (ts + 3000) & 0xFFFFFFFF
        assert slot.steady(ssrc, seq) == rw.steady(ssrc, seq)
        mapped = rw.map(ssrc, seq, ts)
        dropped += mapped is None
        assert slot.map(ssrc, seq, ts, clock.now) == mapped
        assert (slot.base_seq, slot.old_drops, slot.last_seq, slot.last_ts) == (
            rw.base_seq, rw.old_drops, rw.last_seq, rw.last_ts)
    assert 500 < dropped < 3000  # far-behind late packets and restarts were dropped, the stream was not


def test_bad_header_template_is_refused() -> None:
    from sfu._fanout import Slot

    slot: object = Slot(90000, 3000, 0, 0)
    with pytest.raises(ValueError):
        slot.set_head(b"short", 0, 0, 96)  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        fan_args: tuple[object, ...] = ((slot,), None)
        from sfu._fanout import fanout

        fanout(*fan_args)


def test_bad_arguments_never_reach_the_stack_buffers() -> None:
    """fanout refuses padding outside 0..255; set_head refuses offsets outside the extension and a payload
    type over 7 bits (each would write outside the packet buffer or corrupt the header)."""
    from sfu._fanout import Slot, fanout

    slot: Any = Slot(90000, 3000, 0, 0)
    head, ast_off, al_off = build_header_template(context("audio"))
    for bad in [(-1, 0, 96), (1, 0, 96), (len(head) - 2, 0, 96), (0, -4, 96), (0, 5, 96), (0, len(head), 96),
                (0, 0, 128), (0, 0, -1)]:
        with pytest.raises(ValueError):
            slot.set_head(bytes(head), *bad)
    slot.set_head(bytes(head), 0, al_off, 111)
    p = inbound(1, 0)
    for padding in (-1, -200, 256):
        with pytest.raises(ValueError):
            fanout((slot,), p, p.payload, p.ssrc, p.seq, p.ts, p.marker, p.keyframe, p.ntp, padding,
                   p.audio_level, 0.0)
    assert fanout((slot,), p, p.payload, p.ssrc, p.seq, p.ts, p.marker, p.keyframe, p.ntp, 255, p.audio_level,
                  0.0) == [0]
