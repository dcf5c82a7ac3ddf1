import asyncio

from aiortc.rtp import RtpPacket

from sfu.producer import NTP_OFFSET, Producer, link_layers, ntp_now
from tests.sfu.fakes import FakeReceiver


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Sink:
    def __init__(self) -> None:
        self.got: list = []

    def forward(self, p: object) -> None:
        self.got.append(p)


async def test_keyframe_requests_are_throttled_and_coalesced() -> None:
    clock = Clock()
    rx = FakeReceiver(media_ssrc=42)
    p = Producer("a", "camera", "video", "video/vp8", rx, 0.5, clock)  # type: ignore[arg-type]
    assert p.request_keyframe()
    assert not p.request_keyframe()
    assert not p.request_keyframe()
    await asyncio.sleep(0)
    assert rx.plis == [42]
    clock.now = 0.5  # the deferred request fires at the end of the interval (real timer, 0.5 s)
    await asyncio.sleep(0.6)
    assert rx.plis == [42, 42]  # the two throttled requests became one
    assert p.keyframe_throttle.dropped == 2
    clock.now = 0.7
    assert not p.request_keyframe()
    p.close()
    await asyncio.sleep(0.6)
    assert rx.plis == [42, 42]


async def test_audio_never_asks_for_keyframes() -> None:
    rx = FakeReceiver()
    p = Producer("a", "mic", "audio", "audio/opus", rx)  # type: ignore[arg-type]
    assert not p.request_keyframe()


async def test_fan_out_and_inbound_stats() -> None:
    rx = FakeReceiver()
    p = Producer("a", "camera", "video", "video/vp8", rx)  # type: ignore[arg-type]
    sinks = (Sink(), Sink())
    p.set_sinks(sinks)  # type: ignore[arg-type]
    for seq in (1, 2, 4):
        pkt = RtpPacket(payload_type=96, sequence_number=seq, timestamp=seq, ssrc=9, payload=b"\x10\x00\x00")
        rx.on_rtp(pkt)
    assert [len(s.got) for s in sinks] == [3, 3]
    assert sinks[0].got[0] is sinks[1].got[0]  # parsed once per inbound packet
    assert sinks[0].got[0].keyframe
    s = p.stats()
    assert (s.packets, s.packets_lost, s.consumers) == (3, 1, 2)


async def test_arrival_times_after_the_ntp_era_wrap() -> None:
    """From 2036-02-07 NTP seconds wrap (era 1): arrival NTP times stay 64-bit, the era's offset dropped."""
    era1 = (1 << 32) - NTP_OFFSET  # the first second of NTP era 1, as Unix time
    assert ntp_now(lambda: era1 + 0.5) == (0 << 32) | (1 << 31)
    assert ntp_now(lambda: era1 - 0.25) == (0xFFFFFFFF << 32) | (3 << 30)
    rx = FakeReceiver()
    p = Producer("a", "camera", "video", "video/vp8", rx)  # type: ignore[arg-type]
    sink = Sink()
    p.set_sinks((sink,))  # type: ignore[arg-type]
    p.on_fields(9, 1, 1, 0, b"\x10\x00\x00", 0, 0x7F, era1 + 2.5)
    assert sink.got[0].ntp == (2 << 32) | (1 << 31)
    assert sink.got[0].abs_send_time == ((2 << 32) | (1 << 31)) >> 14 & 0xFFFFFF


def test_a_track_without_simulcast_is_its_own_only_layer() -> None:
    p = Producer("a", "camera", "video", "video/vp8", FakeReceiver())  # type: ignore[arg-type]
    assert (p.layers, p.layer, p.rid, p.track) == ((p,), 0, None, p)


async def test_layers_have_their_own_counters_keyframe_requests_and_arrival() -> None:
    clock = Clock()
    receivers = [FakeReceiver(media_ssrc=ssrc) for ssrc in (11, 22, 33)]
    layers = tuple(Producer("a", "camera", "video", "video/vp8", rx, 0.5, clock, rid=rid)  # type: ignore[arg-type]
                   for rx, rid in zip(receivers, "qhf", strict=True))
    track = link_layers(layers)
    assert track is layers[0]
    assert [(p.layers, p.layer, p.rid, p.track) for p in layers] == [(layers, i, r, track) for i, r in enumerate("qhf")]
    assert track.arriving_layers == ()  # nothing came yet
    # q and f send, h does not (Chromium may send fewer layers than negotiated)
    for seq in range(1, 11):
        clock.now = seq * 0.1
        for p, ssrc in ((layers[0], 11), (layers[2], 33)):
            p.on_fields(ssrc, seq, seq * 3000, 1, b"\x10\x00\x00" + bytes(97 if p is layers[0] else 997), 0, 0x7F,
                        0.0)
        for p in layers:
            p.sample()
    assert track.arriving_layers == (layers[0], layers[2]) == layers[1].arriving_layers
    assert [p.packets for p in layers] == [10, 0, 10]
    assert 7000 < layers[0].recent_bitrate < 9000 and 70000 < layers[2].recent_bitrate < 90000
    assert layers[1].recent_bitrate == 0
    assert layers[2].request_keyframe() and layers[0].request_keyframe()  # one throttle per layer
    assert not layers[2].request_keyframe()
    await asyncio.sleep(0)
    assert [rx.plis for rx in receivers] == [[11], [], [33]]  # each to its layer's SSRC
    clock.now = 2.5  # q stopped more than a second ago: only f arrives
    layers[2].on_fields(33, 11, 33000, 1, b"\x10\x00\x00", 0, 0x7F, 0.0)
    assert track.arriving_layers == (layers[2],)
    s = layers[2].stats()
    assert (s.rid, s.layer, s.arriving, s.packets) == ("f", 2, True, 11)
    for p in layers:
        p.close()


async def test_optional_keyframe_requests_share_one_gate_per_track() -> None:
    """Layer switches and congested subscribers' requests (*optional*) pass one per switch_keyframe_interval
    for the whole track (a VP8 simulcast keyframe comes on every layer), two at once after a calm; one held back
    is sent when the gate opens unless a keyframe of its layer came meanwhile; a subscriber's required request is
    never held."""
    clock = Clock()
    receivers = [FakeReceiver(media_ssrc=ssrc) for ssrc in (11, 22, 33)]
    layers = tuple(Producer("a", "camera", "video", "video/vp8", rx, 0.0, clock, rid=rid,  # type: ignore[arg-type]
                            switch_keyframe_interval=0.3)
                   for rx, rid in zip(receivers, "qhf", strict=True))
    link_layers(layers)
    assert layers[2].request_keyframe(optional=True)  # the gate is open: two at once
    assert layers[2].request_keyframe(optional=True)
    assert not layers[0].request_keyframe(optional=True)  # another layer of the same track: held back
    assert not layers[1].request_keyframe(optional=True)
    assert layers[1].request_keyframe()  # required: a subscriber with nothing to show
    await asyncio.sleep(0)
    assert [rx.plis for rx in receivers] == [[], [22], [33, 33]]
    # q's keyframe arrives before the gate opens (the required request on h made Chromium key every layer)
    layers[0].on_fields(11, 1, 3000, 1, b"\x10\x00\x00", 0, 0x7F, 0.0)
    clock.now = 0.3
    await asyncio.sleep(0.4)
    assert [rx.plis for rx in receivers] == [[], [22, 22], [33, 33]]  # h's held request went out, q's was served
    assert (layers[0].keyframes_deferred, layers[1].keyframes_deferred) == (1, 1)
    assert not layers[2].request_keyframe(optional=True)  # the gate closed again at 0.3
    layers[2].close()
    await asyncio.sleep(0.4)
    assert receivers[2].plis == [33, 33]  # a closed layer's held request is dropped
    assert layers[0].stats().keyframes_deferred == 1


async def test_without_a_gate_optional_requests_pass_like_any_other() -> None:
    clock = Clock()
    rx = FakeReceiver(media_ssrc=7)
    p = Producer("a", "camera", "video", "video/vp8", rx, 0.0, clock)  # type: ignore[arg-type]
    assert p.request_keyframe(optional=True) and p.request_keyframe(optional=True)
    await asyncio.sleep(0)
    assert rx.plis == [7, 7] and p.keyframes_deferred == 0
