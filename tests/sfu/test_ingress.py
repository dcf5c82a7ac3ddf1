"""Tests of the C receive path (sfu/_ingress.c): the same state and output as the Python path, real libsrtp.

Two identical receivers (real ForwardingReceiver, real Producer, real SRTP sessions with one key) get the same
protected packets: one only through the Python path, the other through ``MediaDemux`` (C first, Python for
what C leaves). Everything both paths touch must end equal.
"""

from __future__ import annotations

import asyncio
import random
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import pylibsrtp
import pytest
from aiortc import RTCCertificate, RTCDtlsTransport, RTCIceGatherer, RTCIceTransport
from pylibsrtp import Error as SrtpError

from sfu.codec import is_keyframe_start
from sfu.consumer import COMPILED
from sfu.hooks.demux import MEDIA_DEMUX, MediaDemux
from sfu.hooks.receiver import ForwardingReceiver
from sfu.producer import Producer
from sfu.stats import SequenceTracker
from sfu.tasks import Ticker

pytestmark = pytest.mark.skipif(not COMPILED, reason="sfu._fanout not built")

KEY = bytes(range(30))
SSRC, RTX_SSRC = 0x1234ABCD, 0x0BADCAFE
VP8, RTX = 96, 97
AST_ID = 3


@dataclass
class Recorder:
    """Recorder is a sink without a C slot: it records what the Producer forwards to it."""

    got: list[tuple[Any, ...]] = field(default_factory=list)
    cslot: Any = None

    def forward(self, p: Any) -> None:
        self.got.append((p.ssrc, p.seq, p.ts, p.marker, bytes(p.payload), bool(p.keyframe), p.audio_level,
                         p.padding))


class Side:
    """Side is one receiver + Producer + sink; `python_only` sides never use the C path."""

    def __init__(self, python_only: bool, kind: str = "video", c_estimator: bool = False) -> None:
        certificate = RTCCertificate.generateCertificate()
        self.dtls: Any = RTCDtlsTransport(RTCIceTransport(RTCIceGatherer()), [certificate])
        self.dtls._rx_srtp = pylibsrtp.Session(pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND))
        self.receiver = ForwardingReceiver(kind, self.dtls)
        r: Any = self.receiver
        r._enabled = True
        if kind == "video":
            r.clock_rates = {VP8: 90000, RTX: 90000}
            r.rtx_apt = {RTX: VP8}
            r.rtx_to_media = {RTX_SSRC: SSRC}
            r.abs_send_time_id = AST_ID
        else:
            r.clock_rates = {111: 48000}
        r.media_ssrc = SSRC
        if c_estimator:
            from sfu._fanout import Estimator

            r.remb = Estimator()  # as SfuPeerConnection(compiled=True) sets it
        self.remembs: list[tuple[int, list[int]]] = []
        send_remb = r._send_remb

        def sent(estimate: tuple[int, list[int]]) -> None:
            self.remembs.append(estimate)
            send_remb(estimate)

        r._send_remb = sent
        self.remb_frames: list[tuple[int, int, int]] = []
        remb_frame = r._remb_frame

        def counted(arrival_ms: int, ast: int, ssrc: int) -> None:
            self.remb_frames.append((ast, r._remb_bytes, ssrc))
            remb_frame(arrival_ms, ast, ssrc)

        r._remb_frame = counted
        self.demux = MediaDemux(self.dtls)
        setattr(self.dtls, MEDIA_DEMUX, None if python_only else self.demux)
        self.callback = self.demux.wrap(self.python_path)
        self.producer = Producer("p", "camera" if kind == "video" else "mic", kind,
                                 "video/vp8" if kind == "video" else "audio/opus", self.receiver)
        self.sink = Recorder()
        self.producer.set_sinks((self.sink,))  # type: ignore[arg-type]
        self.python_only = python_only

    def python_path(self, data: bytes, addr: tuple[Any, ...]) -> None:
        """python_path is install_sync_rtp_receive's Python branch for a Producer's media."""
        try:
            plain = self.dtls._rx_srtp.unprotect(data)
        except SrtpError:
            return
        self.receiver.direct_packets += 1
        self.receiver.handle_plain(plain, time.time())

    def feed(self, data: bytes) -> None:
        if self.python_only:
            self.python_path(data, ("127.0.0.1", 1))
        else:
            self.callback(data, ("127.0.0.1", 1))

    def state(self) -> dict[str, Any]:
        r: Any = self.receiver
        streams = {
            ssrc: (s.packets_received, s.base_seq, s.max16, s.cycles, s._last_ts, s.max_seq, s.packets_lost)
            for ssrc, s in r.streams.items()
        }
        p = self.producer
        return {
            "streams": streams,
            "nack": None if r.nack is None else (r.nack.max_seq, sorted(r.nack.missing)),
            "nacks_sent": r.nacks_sent,
            "remb_bytes": r._remb_bytes,
            "remb_frames": self.remb_frames,
            "direct": r.direct_packets,
            "producer": (p.packets, p.bytes, p.keyframes_received, p.frames_received, p._seq.received,
                         p._seq.expected, p._seq.lost),
            "forwarded": self.sink.got,
        }


def rtp(seq: int, ts: int, *, ssrc: int = SSRC, pt: int = VP8, marker: int = 0, payload: bytes = b"",
        ast: int | None = None, padding: int = 0, two_byte: bool = False, csrcs: int = 0) -> bytes:
    """rtp builds a plain RTP packet (one-byte extension block with abs-send-time when `ast` is given)."""
    b0 = 0x80 | csrcs | (0x20 if padding else 0)
    ext = b""
    if ast is not None:
        b0 |= 0x10
        if two_byte:
            body = bytes((AST_ID, 3)) + ast.to_bytes(3, "big") + b"\x00" * 3
            ext = struct.pack("!HH", 0x1000, len(body) // 4) + body
        else:
            ext = struct.pack("!HH", 0xBEDE, 1) + bytes(((AST_ID << 4) | 2,)) + ast.to_bytes(3, "big")
    head = struct.pack("!BBHII", b0, (marker << 7) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
    head += b"\x00\x00\x00\x01" * csrcs
    pad = bytes(padding - 1) + bytes((padding,)) if padding else b""
    return head + ext + payload + pad


def payload_of(plain: bytes) -> bytes:
    """payload_of is the payload of a plain RTP packet (after CSRCs and extensions, before padding)."""
    pos = 12 + 4 * (plain[0] & 0x0F)
    if plain[0] & 0x10:
        pos += 4 + 4 * struct.unpack("!H", plain[pos + 2:pos + 4])[0]
    end = len(plain) - (plain[-1] if plain[0] & 0x20 else 0)
    return plain[pos:end]


def vp8(key: bool, size: int, rng: random.Random) -> bytes:
    return bytes((0x10, 0x00 if key else 0x01)) + rng.randbytes(size)


def protector() -> pylibsrtp.Session:
    return pylibsrtp.Session(pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))


def scenario(rng: random.Random) -> list[bytes]:
    """scenario: frames in order with gaps, reordering, duplicates, RTX, padding, odd headers and a wrap."""
    tx = protector()
    out: list[bytes] = []
    seq, ts = 65500, 1000
    sent: list[bytes] = []  # plain packets, for RTX and duplicates
    for frame in range(60):
        n = rng.randint(1, 3)
        for i in range(n):
            plain = rtp(seq, ts, marker=int(i == n - 1), payload=vp8(frame % 20 == 0 and i == 0, 40, rng),
                        ast=(frame * 1000) & 0xFFFFFF, padding=rng.choice([0, 0, 0, 4]))
            if frame == 25 and i == 0:  # a two-byte extension block and CSRCs: the Python parser's job
                plain = rtp(seq, ts, marker=int(i == n - 1), payload=vp8(False, 40, rng), ast=frame * 1000,
                            two_byte=True, csrcs=1)
            sent.append(plain)
            seq = (seq + 1) & 0xFFFF
        ts += 3000
    lost = {10: 14, 11: 14, 40: 43, 90: None}  # lost packet -> recovered by RTX after this one (None: never)
    order = [i for i in range(len(sent)) if i not in lost]
    order[20], order[21] = order[21], order[20]  # reordered
    order.insert(30, order[29])  # a duplicate: the same ciphertext again, which SRTP's replay check drops
    protected: dict[int, bytes] = {}
    rtx_seq = 500
    for i in order:
        if i not in protected:
            protected[i] = tx.protect(sent[i])
        out.append(protected[i])
        for missing in [m for m, after in lost.items() if after == i]:  # RTX: OSN + the original payload
            original = sent[missing]
            out.append(tx.protect(rtp(rtx_seq, struct.unpack("!I", original[4:8])[0], ssrc=RTX_SSRC, pt=RTX,
                                      payload=original[2:4] + payload_of(original), ast=0)))
            rtx_seq += 1
    out.append(tx.protect(rtp(seq, ts, pt=100, payload=b"x")))  # unknown payload type: dropped by both
    forged = bytearray(tx.protect(rtp((seq + 1) & 0xFFFF, ts, payload=vp8(False, 10, rng))))
    forged[-1] ^= 1  # fails authentication: dropped by both
    out.append(bytes(forged))
    for k in range(5):  # after all that, in order again
        out.append(tx.protect(rtp((seq + 2 + k) & 0xFFFF, ts + 3000, marker=1, payload=vp8(False, 30, rng),
                                  ast=99)))
    return out


def test_c_path_leaves_the_same_state_and_output_as_the_python_path() -> None:
    rng = random.Random(7)
    packets = scenario(rng)
    python, compiled = Side(python_only=True), Side(python_only=False)
    for data in packets:
        python.feed(data)
        compiled.feed(data)
    ingress = compiled.receiver.ingress
    assert ingress is not None and ingress.armed
    assert ingress.packets > len(packets) // 2  # most packets took the C path...
    assert ingress.to_python > 0  # ...and gaps, RTX, odd headers went to Python
    assert python.receiver.ingress is not None and not python.receiver.ingress.armed
    a, b = python.state(), compiled.state()
    assert a["forwarded"] == b["forwarded"]
    assert a == b
    assert len(a["forwarded"]) > 100 and a["remb_frames"]
    assert 55 <= compiled.producer.frames_received <= 65  # 60 frames (marker bit; RTX-repaired too), 5 at the end
    # jitter is computed from arrival times (different runs), but both paths produce some
    assert all(s._jitter_q4 >= 0 for s in compiled.receiver.streams.values())


def test_c_path_counts_past_one_two_and_three_digits_as_python_does() -> None:
    """Counters the C path reads and writes beyond 2^30, 2^60 and 2^62 (CPython stores ints in 30-bit digits, and
    the C path converts several-digit values its own way), and across -2^30: the same state as the Python path."""
    packets = scenario(random.Random(13))
    python, compiled = Side(python_only=True), Side(python_only=False)
    for side in (python, compiled):
        side.producer.packets = 2**30 - 3
        side.producer.bytes = 2**62 - 1000
        side.receiver.direct_packets = 2**60 - 7
        side.producer.frames_received = -(2**30) - 2  # (not a count a stream reaches: the signs of one digit and two)
    for data in packets:
        python.feed(data)
        compiled.feed(data)
    assert compiled.receiver.ingress is not None and compiled.receiver.ingress.packets > len(packets) // 2
    assert python.state() == compiled.state()
    assert compiled.producer.packets > 2**30 and compiled.producer.bytes > 2**62
    assert compiled.receiver.direct_packets > 2**60
    assert -(2**30) < compiled.producer.frames_received < 0


class DictTracker:
    """DictTracker is a SequenceTracker without __slots__: the C path then reads and writes it by name."""

    def __init__(self) -> None:
        self.base: int | None = None
        self.max_ext = 0
        self.received = 0

    add = SequenceTracker.add
    expected = SequenceTracker.expected
    lost = SequenceTracker.lost


def test_c_path_reads_and_writes_attributes_by_name_where_they_are_not_slots() -> None:
    packets = scenario(random.Random(3))
    python, compiled = Side(python_only=True), Side(python_only=False)
    for side in (python, compiled):
        side.producer._seq = DictTracker()  # type: ignore[assignment]
    for data in packets:
        python.feed(data)
        compiled.feed(data)
    assert compiled.receiver.ingress is not None and compiled.receiver.ingress.packets > len(packets) // 2
    assert python.state() == compiled.state()
    assert compiled.producer._seq.received == compiled.producer.packets > 100


def test_c_path_feeds_the_c_estimator_what_the_python_path_feeds_it() -> None:
    rng = random.Random(11)
    packets = scenario(rng)
    aiortc_side = Side(python_only=True)  # aiortc's estimator, through _remb_frame
    python, compiled = Side(python_only=True, c_estimator=True), Side(python_only=False, c_estimator=True)
    for data in packets:
        aiortc_side.feed(data)
        python.feed(data)
        compiled.feed(data)
    frames = aiortc_side.state()["remb_frames"]
    assert python.remb_frames == frames
    assert len(compiled.remb_frames) < len(frames) // 2  # the C path's frames did not go through Python...
    est_py, est_c = python.receiver.remb, compiled.receiver.remb
    assert est_c.added == est_py.added == len(frames) > 20  # ...and fed the estimator all the same
    assert est_c.octets == est_py.octets == sum(size for _, size, _ in frames)
    assert python.state()["remb_bytes"] == compiled.state()["remb_bytes"] == aiortc_side.state()["remb_bytes"]


def test_c_path_sends_the_c_estimators_remb() -> None:
    side = Side(python_only=False, c_estimator=True)
    est = side.receiver.remb
    t0 = int((time.time() + 2208988800) * 1000)
    for i in range(1, 200):  # 4 s of frames 20 ms apart, ending 1 s ago: past its 3 s start and 500 ms pace
        est.add(t0 - 5000 + 20 * i, (i * 20 * 262) & 0xFFFFFF, 1000, SSRC)  # (fed directly: history)
    tx = protector()
    ast = (200 * 20 * 262) & 0xFFFFFF
    side.feed(tx.protect(rtp(1, 0, marker=0, payload=vp8(True, 50, random.Random(1)), ast=ast)))
    ingress = side.receiver.ingress
    assert ingress is not None and ingress.armed and ingress.packets == 0  # the first packet armed it
    side.feed(tx.protect(rtp(2, 0, marker=1, payload=vp8(False, 50, random.Random(2)), ast=ast)))
    assert ingress.packets == 1 and side.remb_frames == []  # the frame's end took the C path, no Python
    assert len(side.remembs) == 1  # the new estimate reached _send_remb
    bitrate, ssrcs = side.remembs[0]
    assert bitrate > 0 and ssrcs == [SSRC] and est.added == 200


def test_audio_c_path_keeps_audio_level_and_counts_no_keyframes() -> None:
    tx = protector()
    python, compiled = Side(True, "audio"), Side(False, "audio")
    for i in range(50):
        plain = struct.pack("!BBHII", 0x90, 111, i, i * 960, SSRC) + struct.pack("!HH", 0xBEDE, 1)
        plain += bytes(((1 << 4) | 0, 0x80 | (i % 127), 0, 0)) + b"opus" * 10
        compiled.receiver.audio_level_id = python.receiver.audio_level_id = 1
        data = tx.protect(plain)
        python.feed(data)
        compiled.feed(data)
    assert compiled.receiver.ingress.packets >= 48
    assert python.state() == compiled.state()
    assert compiled.producer.keyframes_received == 0
    assert [g[6] for g in compiled.sink.got] == [0x80 | (i % 127) for i in range(50)]


def test_c_path_hands_packets_to_python_once_disarmed() -> None:
    tx = protector()
    side = Side(False)
    rng = random.Random(1)
    for i in range(10):
        side.feed(tx.protect(rtp(i, i * 3000, marker=1, payload=vp8(i == 0, 20, rng), ast=i)))
    ingress = side.receiver.ingress
    assert ingress.armed and ingress.packets == 9  # the first packet (Python path) arms it
    side.producer.close()
    assert not ingress.armed and ingress not in side.demux.ingresses
    for i in range(10, 15):
        side.feed(tx.protect(rtp(i, i * 3000, marker=1, payload=vp8(False, 20, rng), ast=i)))
    assert ingress.packets == 9
    assert side.receiver.streams[SSRC].packets_received == 15  # the Python path kept counting
    assert len(side.sink.got) == 10  # a closed Producer has no sinks


async def test_c_path_polls_the_room_ticker_when_due() -> None:
    tx = protector()
    side = Side(False)
    runs: list[float] = []
    ticker = Ticker(lambda: 0.005, grace=5.0)  # the fallback timer would fire far later than the test
    side.receiver.ticker = ticker
    ticker.add(lambda: runs.append(time.monotonic()))
    rng = random.Random(2)
    try:
        for i in range(40):
            side.feed(tx.protect(rtp(i, i * 3000, marker=1, payload=vp8(i == 0, 20, rng), ast=i)))
            await asyncio.sleep(0.002)
        assert side.receiver.ingress.packets >= 38
        assert len(runs) >= 5  # polled from C (the timer has not fired)
    finally:
        ticker.close()


def test_demux_hands_everything_else_to_its_fallback() -> None:
    from sfu._fanout import Demux

    got: list[bytes] = []
    demux = Demux(lambda data, addr: got.append(data))
    stun = b"\x00\x01\x00\x00" + bytes(16)
    rtcp = bytes((0x80, 200)) + bytes(26)
    unknown = rtp(1, 1)  # no Ingress for this SSRC
    for data in (stun, rtcp, unknown, b"", b"\x80"):
        demux.datagram_received(data, ("127.0.0.1", 1))
    assert got == [stun, rtcp, unknown, b"", b"\x80"]
    assert demux.take_counts() == (0, 0)
    with pytest.raises(TypeError):
        demux.add(object())
    with pytest.raises(TypeError):
        Demux(None)


def test_keyframe_start_matches_the_python_test() -> None:
    from sfu._fanout import keyframe_start

    rng = random.Random(3)
    samples = [b"", b"\x10", b"\x90", b"\x90\x80", b"\x90\x80\x80", b"\x7c\x85", b"\x18\x00\x02\x65\x00"]
    for _ in range(5000):
        n = rng.choice([1, 2, 3, 4, 6, 10])
        samples.append(bytes(rng.choice([0x10, 0x90, 0x80, 0x00, 0x11, 0x7c, 0x18, 0x65, 0x67, 0x41, 0x85,
                                         0x05, rng.randrange(256)]) for _ in range(n)))
    for payload in samples:
        assert keyframe_start(1, payload) == is_keyframe_start("video/vp8", payload), payload
        assert keyframe_start(2, payload) == is_keyframe_start("video/h264", payload), payload
        assert keyframe_start(0, payload) is True
        assert keyframe_start(3, payload) == is_keyframe_start("video/av1", payload)


def wrapping_stream() -> list[tuple[int, int]]:
    """wrapping_stream: (extended seq, ts) in arrival order across four 16-bit sequence wraps and the 32-bit
    timestamp wrap: runs in order, small gaps (some recovered by a late packet), reordering, long losses."""
    out: list[tuple[int, int]] = []
    ext = 65520  # the timestamp wraps in the first run, the sequence soon after
    for _ in range(4):
        for i in range(60):
            if i == 30:  # two lost, one arrives late, then two swapped
                out += [(ext + 2, 0), (ext + 1, 0), (ext + 4, 0), (ext + 3, 0)]
                ext += 5
            out.append((ext, 0))
            ext += 1
        target = ext - ext % 65536 + 2 * 65536 - 20  # 20 packets before the next wrap but one
        while ext < target:  # long losses: jumps beyond the NACK window, within SRTP's index estimate
            ext = min(ext + 30000, target)
            out.append((ext, 0))
        ext += 1
    first_frame = 2**32 // 3000 - 12
    return [(e, ((first_frame + n // 2) * 3000) & 0xFFFFFFFF) for n, (e, _) in enumerate(out)]


def test_c_and_python_statistics_are_identical_across_wraps() -> None:
    from sfu.stats import RtpStreamStats

    tx = protector()
    rng = random.Random(5)
    stream = wrapping_stream()
    plain = {e: rtp(e & 0xFFFF, ts, marker=n % 2, payload=vp8(n == 0, 30, rng), ast=n)
             for n, (e, ts) in enumerate(stream)}
    protected = {e: tx.protect(plain[e]) for e in sorted(plain)}  # protected in sending order
    python, compiled = Side(python_only=True), Side(python_only=False)
    twin = RtpStreamStats(90000)  # fed what the compiled side's stats saw, arrival times included
    c_wraps = c_seq_wraps = 0
    for n, (ext, ts) in enumerate(stream):
        python.feed(protected[ext])
        before = compiled.receiver.streams.get(SSRC)
        last_ts = None if before is None else before._last_ts
        ingress = compiled.receiver.ingress
        handled = 0 if ingress is None else ingress.packets
        compiled.feed(protected[ext])
        st = compiled.receiver.streams[SSRC]
        arrival = 0.0  # (not read: no jitter sample)
        if last_ts != ts and st._last_ts == ts:  # a jitter sample: its arrival in timestamp units from transit
            assert st._last_transit is not None
            arrival = (st._last_transit + ts + 0.5) / 90000
        twin.add(ext & 0xFFFF, ts, arrival)
        if ingress is not None and ingress.packets > handled and last_ts is not None and ts < last_ts:
            c_wraps += 1  # the timestamp wrapped on a packet the C path handled
        if ingress is not None and ingress.packets > handled and ext & 0xFFFF == 0:
            c_seq_wraps += 1  # and so did the sequence number
        assert (st.packets_received, st.max_seq, st.packets_lost, st._jitter_q4, st._last_transit) == (
            twin.packets_received, twin.max_seq, twin.packets_lost, twin._jitter_q4, twin._last_transit), n
    st, ref = compiled.receiver.streams[SSRC], python.receiver.streams[SSRC]
    assert c_wraps == 1 and c_seq_wraps == 4 and compiled.receiver.ingress.packets > 4 * 20
    fields = ("packets_received", "base_seq", "max16", "cycles", "max_seq", "packets_expected", "packets_lost")
    assert [getattr(st, f) for f in fields] == [getattr(ref, f) for f in fields] == [getattr(twin, f) for f in fields]
    first, last = stream[0][0], max(e for e, _ in stream)
    assert st.cycles == last & ~0xFFFF >= 4 * 65536
    assert st.max_seq == last and st.packets_expected == last - first + 1
    assert st.packets_lost == last - first + 1 - len(stream) > 0
    assert st.fraction_lost == ref.fraction_lost == twin.fraction_lost > 0
    assert st.jitter < 90000 and ref.jitter < 90000  # not 2^28: the timestamp wrap is no 2^32 jump
    assert python.state() == compiled.state()
