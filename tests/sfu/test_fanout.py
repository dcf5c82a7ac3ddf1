"""Tests of the C fan-out (sfu/_fanout.c): same bytes as the Python path, real libsrtp, real UDP sockets."""

from __future__ import annotations

import random
import socket
import struct
from collections.abc import Iterator
from typing import Any

import pylibsrtp
import pytest

from sfu.consumer import COMPILED, Consumer, Inbound, build_header_template
from sfu.hooks.guard import protect_address
from sfu.pacer import SUPERSEDE_AFTER
from sfu.rewriter import HeaderRewriter
from tests.sfu.fakes import FakeSender, FakeWire, context
from tests.sfu.vp8stream import Vp8Stream
from tests.sfu.vp8stream import descriptor as vp8stream_descriptor

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
    unrouted.set_head(bytes(build_header_template(context("video"))[0]), 0, 0, 96)
    not_ready = Slot(90000, 3000, 0, 0, True)  # no header: its sender is not ready, Consumer.forward does nothing
    assert fan((slot, unrouted, not_ready), inbound(11, 0, key=False)) == [1]
    assert s.packets_sent == 0  # type: ignore[attr-defined]
    assert fan((slot, unrouted, not_ready), inbound(12, 0, key=True)) == [1]
    assert fan((not_ready,), inbound(13, 0, key=True)) is None
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


class LayerSource:
    """LayerSource is a Producer as Consumers see it: SSRC, and a keyframe request that the stream honours."""

    participant_id = "a"
    source = "camera"

    def __init__(self, stream: Vp8Stream, layer: int = 0) -> None:
        self.stream = stream
        self.ssrc = stream.ssrc
        self.layer = layer
        self.keyframes_received = 0
        self.sinks: tuple[Any, ...] = ()

    def request_keyframe(self, optional: bool = False) -> bool:
        self.stream.force_key = True
        return True


class UdpWire(FakeWire):
    """UdpWire sends like PacketWire: Python-built packets protected and sent on the socket a C slot is bound to,
    so the receiver reads both paths' packets in the order they were sent."""

    def __init__(self, tx_sock: socket.socket, rx_sock: socket.socket) -> None:
        super().__init__()
        self.tx_sock, self.rx_sock = tx_sock, rx_sock
        self.tx, self.rx = sessions()
        self.addr = rx_sock.getsockname()

    def send_rtp(self, head: bytes | bytearray, payload: bytes, padding: int = 0, audio: bool = False,
                 ast_off: int = 0, cls: int = 0, key: object = None, keyframe: bool = False) -> bool:
        try:
            self.tx_sock.sendto(self.tx.protect(bytes(head) + payload), self.addr)
        except pylibsrtp.Error:  # a sequence number already protected: refused, as the C slot's send
            return False
        return True

    def bind_slot(self, slot: Any) -> bool:
        return bool(slot.set_route(self.tx_sock, int(socket.AF_INET), "127.0.0.1", self.addr[1], self.tx,
                                   srtp_address(self.tx), protect_address()))

    def received(self) -> list[bytes]:
        out = []
        self.rx_sock.setblocking(False)
        while True:
            try:
                out.append(self.rx.unprotect(self.rx_sock.recv(2048)))
            except BlockingIOError:
                return out


class SrtpWire(FakeWire):
    """SrtpWire keeps the packets a libsrtp sender accepts (it refuses a sequence number it already protected)."""

    def __init__(self) -> None:
        super().__init__()
        self.tx, _ = sessions()

    def send_rtp(self, head: bytes | bytearray, payload: bytes, padding: int = 0, audio: bool = False,
                 ast_off: int = 0, cls: int = 0, key: object = None, keyframe: bool = False) -> bool:
        try:
            self.tx.protect(bytes(head) + payload)
        except pylibsrtp.Error:
            return False
        return self.send(bytes(head) + payload)


def consumer_at(wire: FakeWire, clock: Clock, compiled: bool) -> Consumer:
    """consumer_at: a ready VP8 Consumer whose output starts just below every wrap."""
    sender = FakeSender()
    c = Consumer("viewer", "floor-video", "video", sender, lambda ctx: wire, clock,  # type: ignore[arg-type]
                 compiled=compiled)
    sender.on_ready(context("video", rtx=False))
    c._rewriter = HeaderRewriter(90000, 3000, 0xFFF0, 0xFFFFF000, clock, first_pic=0x7FF0, first_tl0=0xF8)
    if c.cslot is not None:
        c.cslot.__init__(90000, 3000, 0xFFF0, 0xFFFFF000, True, True, 0x7FF0, 0xF8)
    return c


STATE = ("max_in", "seq_offset", "ts_offset", "pic_offset", "tl0_offset", "last_pic", "last_tl0", "in_pic",
         "tid_target", "tid_cur", "drop_pic", "runs", "run_floor", "base_seq", "last_seq", "last_ts", "old_drops")


def test_vp8_fanout_matches_the_python_consumer(udp: tuple[socket.socket, socket.socket]) -> None:
    """150 000 random steps of VP8 with temporal layers through the C fan-out (with what it leaves to
    Consumer.forward on the Slot) and through the pure-Python Consumer: the same bytes leave both, and the Slot's
    state is the HeaderRewriter's after every step. Temporal layer changes, hard and seamless switches,
    keyframe requests, losses, reordering and retransmissions (a little and far behind), 7-bit and 15-bit
    PictureIDs and a stream without temporal layers; every counter starts below its wrap and crosses it."""
    from sfu._fanout import fanout

    rnd = random.Random(16)
    clock = Clock()
    py_wire, c_wire = SrtpWire(), UdpWire(*udp)
    py, cc = consumer_at(py_wire, clock, False), consumer_at(c_wire, clock, True)
    sources = [LayerSource(Vp8Stream(0x100 + i, rnd, layers=layers, pic_style=style, kf_every=300))
               for i, (layers, style) in enumerate([(3, "long"), (3, "aiortc"), (1, "short"), (3, "short")])]
    for c in (py, cc):
        c.switch(sources[0])  # type: ignore[arg-type]
    recent: list[Inbound] = []
    held: list[tuple[int, Inbound]] = []
    py_sent = 0
    numbered: dict[int, tuple[bytes, int]] = {}
    counts = {"drops": 0, "switches": 0, "layer_switches": 0, "late": 0, "py_swaps": 0, "c_swaps": 0}
    py.on_switched = lambda c: counts.__setitem__("py_swaps", counts["py_swaps"] + 1)
    cc.on_switched = lambda c: counts.__setitem__("c_swaps", counts["c_swaps"] + 1)

    def deliver(p: Inbound) -> None:
        nonlocal py_sent
        py.forward(p)
        rest = fanout((cc.cslot,), p, p.payload, p.ssrc, p.seq, p.ts, p.marker, p.keyframe, p.ntp, p.padding,
                      p.audio_level, clock.now)
        if rest is not None:
            cc.forward(p)
        mine = py_wire.sent[py_sent:]
        py_sent = len(py_wire.sent)
        for data in mine:  # never one output number for two input packets (within half the sequence space)
            out_seq, tag = struct.unpack_from("!H", data, 2)[0], data[-4:]
            earlier = numbered.get(out_seq)
            assert earlier is None or earlier[0] == tag or py_sent - earlier[1] > 30_000, f"seq {out_seq} reused"
            numbered[out_seq] = (tag, py_sent)
        assert c_wire.received() == mine, f"packet {p.seq} of {p.ssrc:#x}: the paths sent different bytes"
        rw, slot = py._rewriter, cc.cslot
        for name in STATE:
            assert getattr(slot, name) == getattr(rw, name), f"{name} after packet {p.seq} of {p.ssrc:#x}"

    for step in range(150_000):
        clock.now += rnd.random() * 0.02
        r = rnd.random()
        if r < 0.004:
            layer = rnd.choice([None, 0, 1, 2, -1])
            py.max_temporal = cc.max_temporal = layer
        elif r < 0.0045:
            target = rnd.choice(sources)
            counts["switches"] += py.switch(target)  # type: ignore[arg-type]
            cc.switch(target)  # type: ignore[arg-type]
        elif r < 0.0055:
            target = rnd.choice(sources)
            counts["layer_switches"] += py.switch_layer(target)  # type: ignore[arg-type]
            cc.switch_layer(target)  # type: ignore[arg-type]
        assert py.wants == cc.wants
        for src in sources:
            frame = src.stream.frame()
            if src not in py.wants:
                continue
            for p in frame:
                recent = (recent + [p])[-300:]
                q = rnd.random()
                if q < 0.01:
                    continue  # lost upstream
                if q < 0.02:
                    held.append((step + rnd.randrange(1, 4), p))  # overtaken by the next packets
                    continue
                deliver(p)
                if q > 0.995:  # a retransmission from the publisher, a little or far behind
                    counts["late"] += 1
                    deliver(recent[-rnd.choice([2, 5, 40, 250]) if len(recent) >= 250 else 0])
        for due, p in [h for h in held if h[0] <= step]:
            held.remove((due, p))
            deliver(p)
        counts["drops"] += len(py._rewriter.runs) if step % 50 == 0 else 0  # type: ignore[union-attr]
    assert py_sent > 100_000 and cc.cslot.c_sent > py_sent // 2  # the compiled fast path did most of the work
    assert counts["switches"] > 40 and counts["layer_switches"] > 60 and counts["drops"] > 1000, counts
    assert counts["py_swaps"] == counts["c_swaps"] > 30, counts  # seamless switches completed
    assert py.packets_sent == cc.packets_sent and py.bytes_sent == cc.bytes_sent


def test_h264_slots_never_read_the_payload(udp: tuple[socket.socket, socket.socket]) -> None:
    """A slot that is not VP8 forwards the payload as it came, whatever it looks like."""
    tx_sock, rx_sock = udp
    tx, rx = sessions()
    slot: Any = bound_slot("video", tx_sock, rx_sock, tx)
    slot.tid_target = 0
    looks_vp8 = vp8stream_descriptor(pic=5, long_pic=False, tl0=3, tid=2) + b"\x00rest"
    p = inbound(10, 0, payload=looks_vp8)
    assert fan((slot,), p) == [0]
    assert slot.map(p.ssrc, p.seq, p.ts, 0.0) is not None
    for seq in (11, 12):
        assert fan((slot,), inbound(seq, 0, payload=looks_vp8)) is None
        assert rx.unprotect(rx_sock.recv(2048)).endswith(looks_vp8)
    assert not slot.vp8 and slot.runs == []


def test_a_paced_slot_queues_in_c_and_drains_in_order_with_the_time_it_left(
        udp: tuple[socket.socket, socket.socket]) -> None:
    """A keyframe burst over a slow link waits in the C pacer's queue (no slot left to Python), audio arriving behind
    it goes at once, the queue drains oldest first with the abs-send-time of its departure, and what waits when
    the route goes away leaves through Python's `send`."""
    from sfu._fanout import Pacer, Slot

    from sfu.rtp import abs_send_time_now

    tx_sock, rx_sock = udp
    tx, rx = sessions()
    video = bound_slot("video", tx_sock, rx_sock, tx)
    audio = Slot(48000, 960, 100, 1000, False)
    head, ast_off, al_off = build_header_template(context("audio", ssrc=0x33333333))  # its own SRTP stream
    audio.set_head(bytes(head), ast_off, al_off, 111)
    assert audio.set_route(tx_sock, int(socket.AF_INET), "127.0.0.1", rx_sock.getsockname()[1], tx,
                           srtp_address(tx), protect_address())
    pacer = Pacer(100_000.0)
    woken: list[int] = []
    by_python: list[bytes] = []


    def woke() -> None:  # as sfu.pacer.Pacer does: a timer is armed
        woken.append(pacer.queued)
        pacer.armed = True

    pacer.on_queue = woke
    pacer.send = lambda h, payload, padding: by_python.append(bytes(h) + payload) or True
    for slot in (video, audio):
        slot.set_pacer(pacer)  # type: ignore[attr-defined]
    video.map(5, 10, 0, 0.0)  # type: ignore[attr-defined]
    stale = inbound(10, 0).abs_send_time
    for seq in range(11, 31):  # a keyframe: 20 x 1000 bytes, 1.6 s at 100 kbit/s
        assert fan((video,), inbound(seq, 3000, payload=b"\x10" + bytes(999)), now=1.0) is None
    assert pacer.queued > 15 and woken == [1]  # Python was told once, to arm its timer
    first = pacer.queued
    p = inbound(500, 960)
    p.ssrc = 6
    audio.map(6, 499, 0, 0.0)  # type: ignore[attr-defined]
    assert fan((audio,), p, now=1.0) is None
    got = [rx.unprotect(rx_sock.recv(2048)) for _ in range(20 - first + 1)]
    assert struct.unpack_from("!B", got[-1], 1)[0] & 0x7F == 111  # the audio, before the waiting video
    p = inbound(501, 1920)
    p.ssrc = 6
    assert fan((audio,), p, now=1.2) is None  # the media the link receives drains it first, without Python
    drained = pacer.sent_queued
    assert drained >= 2 and pacer.queued == first - drained
    got += [rx.unprotect(rx_sock.recv(2048)) for _ in range(drained + 1)]
    assert got[-1][1] & 0x7F == 111 and all(g[1] & 0x7F == 96 for g in got[-drained - 1:-1])
    audio_packets = 2
    now = 1.2
    while pacer.queued > 3:
        now += 0.05
        pacer.drain(now)
    got += [rx.unprotect(rx_sock.recv(2048)) for _ in range(first - drained - 3)]
    seqs = [struct.unpack_from("!H", g, 2)[0] for g in got if g[1] & 0x7F == 96]
    assert seqs == list(range(101, 118))  # in order, none lost
    waited = [g for g in got[20 - first + 1:] if g[1] & 0x7F == 96]
    assert len(waited) == first - 3 and len(got) == 17 + audio_packets
    for g in waited:  # what waited left with the time it left (the header's extension at ast_off)
        ast = int.from_bytes(g[ast_off_of(video):ast_off_of(video) + 3], "big")
        assert (ast - stale) & 0xFFFFFF != 0 and (abs_send_time_now() - ast) & 0xFFFFFF < 262144 // 4
    assert pacer.sent_queued == first - 3 and video.packets_sent == 20  # type: ignore[attr-defined]
    video.clear_route()  # type: ignore[attr-defined]
    pacer.drain(now + 10.0)  # waited too long: dropped, counted (on the slot too: its receiver sees holes)
    assert pacer.dropped == 3 and pacer.queued == 0 and video.pacer_dropped == 3  # type: ignore[attr-defined]
    video.set_route(tx_sock, int(socket.AF_INET), "127.0.0.1", rx_sock.getsockname()[1], tx,  # type: ignore
                    srtp_address(tx), protect_address())
    for seq in range(31, 36):
        fan((video,), inbound(seq, 6000, payload=b"\x10" + bytes(999)), now=now + 10.0)
    waiting = pacer.queued  # the bucket refilled meanwhile: the first went at once
    assert 1 <= waiting < 5
    video.clear_route()  # type: ignore[attr-defined]
    pacer.drain(now + 12.0)
    assert [struct.unpack_from("!H", b, 2)[0] for b in by_python] == list(range(126 - waiting, 126))  # plain


def test_a_camera_slot_leaves_the_pacer_before_a_screen_keyframe_queued_earlier(
        udp: tuple[socket.socket, socket.socket]) -> None:
    """Two video slots on one paced link: a screen share's keyframe queues in the C pacer, then a camera frame
    arrives; the camera's packets (class 0) leave before the screen's that waited longer (class 1), each slot's in
    order (in one queue the presenter camera of a 300 kbit/s classroom stalled 2.5 s behind the screen's)."""
    from sfu._fanout import Pacer, Slot

    from sfu.pacer import SCREEN

    tx_sock, rx_sock = udp
    tx, rx = sessions()
    camera: Any = bound_slot("video", tx_sock, rx_sock, tx)
    screen: Any = Slot(90000, 3000, 100, 1000, True)
    head, ast_off, al_off = build_header_template(context("video", ssrc=0x44444444))
    screen.set_head(bytes(head), ast_off, al_off, 96)
    assert screen.set_route(tx_sock, int(socket.AF_INET), "127.0.0.1", rx_sock.getsockname()[1], tx,
                            srtp_address(tx), protect_address())
    screen.pace_class = SCREEN
    assert camera.pace_class == 0
    pacer = Pacer(100_000.0)
    pacer.on_queue = lambda: setattr(pacer, "armed", True)
    for slot in (camera, screen):
        slot.set_pacer(pacer)
    camera.map(5, 10, 0, 0.0)
    screen.map(7, 10, 0, 0.0)
    for seq in range(11, 31):  # the slide's keyframe: 20 x 1000 bytes, 1.6 s at 100 kbit/s
        p = inbound(seq, 3000, payload=b"\x10" + bytes(999))
        p.ssrc = 7
        assert fan((screen,), p, now=1.0) is None
    waited = pacer.queued
    assert waited > 15
    for seq in range(11, 14):  # then a camera frame
        assert fan((camera,), inbound(seq, 3000, payload=b"\x10" + bytes(299)), now=1.01) is None
    assert pacer.queued == waited + 3
    now = 1.01
    while pacer.queued:
        now += 0.05
        pacer.drain(now)
    got = [rx.unprotect(rx_sock.recv(2048)) for _ in range(23)]
    ssrcs = [struct.unpack_from("!I", g, 8)[0] for g in got]
    after_burst = ssrcs[20 - waited:]  # what left the queue
    assert after_burst[:3] == [0x11111111] * 3, ssrcs  # the camera's frame first
    seqs = [struct.unpack_from("!H", g, 2)[0] for g, ssrc in zip(got, ssrcs, strict=True) if ssrc == 0x44444444]
    assert seqs == list(range(101, 121))  # the screen's in order, none lost
    assert pacer.dropped_by == (0, 0)


def test_a_keyframe_queued_in_c_drops_the_older_frames_of_its_slot_still_waiting(
        udp: tuple[socket.socket, socket.socket]) -> None:
    """A camera slot that tells keyframes apart (`supersede`: VP8, H.264): its keyframe's first packet, queued in the
    C pacer behind the slot's older frames, drops them (counted as superseded, and on the slot: its receiver sees
    the holes, not its link's loss), a packet Python queued for that slot too; the keyframe then leaves first. A slot
    whose codec's keyframes are not told apart (every packet looks like one) drops nothing."""
    from sfu._fanout import Pacer

    tx_sock, rx_sock = udp
    tx, rx = sessions()
    camera: Any = bound_slot("video", tx_sock, rx_sock, tx)
    camera.supersede = True
    pacer = Pacer(100_000.0)
    pacer.on_queue = lambda: setattr(pacer, "armed", True)
    camera.set_pacer(pacer)
    camera.map(5, 10, 0, 0.0)
    for seq in range(11, 21):  # a keyframe (it goes at once), then deltas over the bucket: most wait
        assert fan((camera,), inbound(seq, 3000 * (seq - 10), key=seq == 11, payload=b"\x10" + bytes(999)),
                   now=1.0) is None
    waiting = pacer.queued
    assert waiting > 5
    assert pacer.push(b"\x80" + bytes(11), b"resend", 0, 0, 1.0, 0, camera)  # Python's path, for this slot
    pacer.tokens = -1e6  # nothing leaves meanwhile: the older frames wait SUPERSEDE_AFTER, then the keyframe comes
    assert fan((camera,), inbound(21, 40000, key=True, payload=b"\x10" + bytes(999)),
               now=1.0 + SUPERSEDE_AFTER) is None
    assert pacer.superseded == waiting + 1 and pacer.queued == 1 and pacer.dropped == 0
    assert camera.pacer_dropped == waiting and camera.packets_sent == 11  # Python's packet is not the slot's
    pacer.tokens = 0.0
    pacer.drain(3.0)
    got = [rx.unprotect(rx_sock.recv(2048)) for _ in range(10 - waiting + 1)]
    seqs = [struct.unpack_from("!H", g, 2)[0] for g in got]
    assert seqs == [*range(101, 101 + 10 - waiting), 111]  # what had left, then the keyframe
    plain: Any = bound_slot("video", tx_sock, rx_sock, tx)  # supersede off: every packet here is a "keyframe"
    plain.set_pacer(pacer)
    plain.map(5, 10, 0, 0.0)
    for seq in range(11, 21):
        fan((plain,), inbound(seq, 3000, payload=b"\x10" + bytes(999)), now=3.0)
    assert pacer.superseded == waiting + 1 and pacer.queued > 5


def ast_off_of(slot: object) -> int:
    """ast_off_of: where the slot's header template holds the abs-send-time."""
    return int(build_header_template(context("video"))[1])


def test_what_the_pacer_sends_through_python_before_a_packet_may_change_its_slot(
        udp: tuple[socket.socket, socket.socket]) -> None:
    """The fan-out drains a slot's pacer before handling a packet for it; a waiting packet of Python's path (a
    resend) is sent by Python, which may change the slot meanwhile (here: its route goes away, as when its
    transport closes). The slot is judged after that drain: the packet is left to Python, not sent through the
    route that went away."""
    from sfu._fanout import Pacer

    tx_sock, rx_sock = udp
    tx, rx = sessions()
    video = bound_slot("video", tx_sock, rx_sock, tx)
    pacer = Pacer(1_000_000.0)
    sent_by_python: list[bytes] = []

    def python_send(head: bytes, payload: bytes, padding: int) -> bool:
        sent_by_python.append(bytes(head) + payload)
        video.clear_route()  # type: ignore[attr-defined]
        return True

    pacer.send = python_send
    video.set_pacer(pacer)  # type: ignore[attr-defined]
    video.map(5, 10, 0, 0.0)  # type: ignore[attr-defined]
    assert pacer.push(b"\x80\x60" + bytes(10), b"resent", 0, 0, 1.0)  # a resend waits
    rest = fan((video,), inbound(11, 3000), now=1.0)
    assert len(sent_by_python) == 1 and pacer.queued == 0  # what waited went first, through Python
    assert rest == [0]  # the slot had no route any more: Python's path takes the packet
    rx_sock.settimeout(0.2)
    with pytest.raises(TimeoutError):
        rx_sock.recv(2048)  # nothing went out through the route that went away
