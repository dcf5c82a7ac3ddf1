"""Tests of the C RTCP path (sfu/_rtcp.c): routine reports reach the senders as aiortc's parser reads them."""

from __future__ import annotations

import struct
import time
from typing import Any

import pylibsrtp
import pytest
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_RTPFB_NACK,
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSourceInfo,
    RtcpSrPacket,
    pack_remb_fci,
    unpack_remb_fci,
)

from sfu.consumer import COMPILED

pytestmark = pytest.mark.skipif(not COMPILED, reason="sfu._fanout not built")

KEY = bytes(range(30))
OURS, ALSO_OURS, OTHER = 0x11111111, 0x22222222, 0x33333333


class Sink:
    """Sink records what the C path calls on a sender."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.direct_rtcp = 0

    def report_block(self, *args: int) -> None:
        self.calls.append(("report", *args))

    def remb(self, bitrate: int) -> None:
        self.calls.append(("remb", bitrate))


class NotASender:
    def report_block(self, *args: int) -> None:
        raise AssertionError("only instances of the sender type are called")


def route(senders: dict[int, Any] | None = None, sender_type: type = Sink, receivers: dict[int, Any] | None = None,
          receiver_type: type | None = None) -> tuple[Any, dict[int, Any], list[bytes], pylibsrtp.Session]:
    from pylibsrtp._binding import ffi, lib
    from sfu._fanout import Demux, RtcpRoute

    rx = pylibsrtp.Session(pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND))
    tx = pylibsrtp.Session(pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
    if senders is None:
        senders = {OURS: Sink(), ALSO_OURS: Sink(), OTHER: NotASender()}
    plain_to_python: list[bytes] = []
    r = RtcpRoute(rx, int(ffi.cast("uintptr_t", rx._srtp[0])),  # type: ignore[attr-defined]
                  int(ffi.cast("uintptr_t", ffi.addressof(lib, "srtp_unprotect_rtcp"))), senders, sender_type,
                  plain_to_python.append, *((receivers, receiver_type) if receivers is not None else ()))
    unread: list[bytes] = []
    demux = Demux(lambda data, addr: unread.append(data))
    demux.set_rtcp(r)
    return (demux, r), senders, plain_to_python, tx  # type: ignore[return-value]


def rr(*blocks: tuple[int, int, int]) -> RtcpRrPacket:
    return RtcpRrPacket(ssrc=9, reports=[
        RtcpReceiverInfo(ssrc=ssrc, fraction_lost=fl, packets_lost=lost, highest_sequence=70000 + i,
                         jitter=900 + i, lsr=0x01020304 + i, dlsr=65536 // (i + 1))
        for i, (ssrc, fl, lost) in enumerate(blocks)
    ])


def expected_calls(compound: bytes, senders: dict[int, Any]) -> dict[int, list[tuple[Any, ...]]]:
    """expected_calls is what each sender should see, read with aiortc's parser."""
    out: dict[int, list[tuple[Any, ...]]] = {ssrc: [] for ssrc, s in senders.items() if isinstance(s, Sink)}
    for packet in RtcpPacket.parse(compound):
        if isinstance(packet, (RtcpRrPacket, RtcpSrPacket)):  # (aiortc's router: an SR's blocks too)
            for b in packet.reports:
                if b.ssrc in out:
                    out[b.ssrc].append(("report", b.fraction_lost, b.packets_lost, b.jitter, b.lsr, b.dlsr))
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            from aiortc.rtp import unpack_remb_fci

            bitrate, ssrcs = unpack_remb_fci(packet.fci)
            for ssrc in ssrcs:
                if ssrc in out:
                    out[ssrc].append(("remb", bitrate))
    return out


def sdes() -> RtcpSdesPacket:
    return RtcpSdesPacket(chunks=[RtcpSourceInfo(ssrc=9, items=[(1, b"subscriber")])])


def remb(bitrate: int, ssrcs: list[int]) -> RtcpPsfbPacket:
    return RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=9, media_ssrc=0, fci=pack_remb_fci(bitrate, ssrcs))


@pytest.mark.parametrize("packets", [
    [rr((OURS, 12, 5), (OTHER, 0, 0), (0x44444444, 1, 1))],
    [rr((OURS, 255, -3), (ALSO_OURS, 0, 0x7FFFFF)), sdes()],
    [rr(), sdes(), remb(1_234_567, [OURS, ALSO_OURS, OTHER])],
    [remb(2**33 + 5, [ALSO_OURS])],
])
def test_routine_reports_reach_senders_as_aiortc_reads_them(packets: list[Any]) -> None:
    (demux, r), senders, to_python, tx = route()
    compound = b"".join(bytes(p) for p in packets)
    data = tx.protect_rtcp(compound)
    demux.datagram_received(data, ("127.0.0.1", 1))
    assert r.packets == 1 and r.to_python == 0 and to_python == []
    assert demux.take_counts() == (1, len(data))
    want = expected_calls(compound, senders)
    assert {ssrc: senders[ssrc].calls for ssrc in want} == want
    assert any(want.values())
    assert all(s.direct_rtcp == len(s.calls) for s in senders.values() if isinstance(s, Sink))


@pytest.mark.parametrize("packets", [
    [rr((OURS, 1, 1)), RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=9, media_ssrc=OURS, lost=[5, 6])],
    [RtcpSrPacket(ssrc=9, sender_info=RtcpSenderInfo(ntp_timestamp=1, rtp_timestamp=2, packet_count=3,
                                                     octet_count=4), reports=[])],
    [RtcpPsfbPacket(fmt=1, ssrc=9, media_ssrc=OURS)],  # PLI
])
def test_anything_else_goes_to_python_decrypted(packets: list[Any]) -> None:
    (demux, r), senders, to_python, tx = route()
    compound = b"".join(bytes(p) for p in packets)
    demux.datagram_received(tx.protect_rtcp(compound), ("127.0.0.1", 1))
    assert to_python == [compound] and r.to_python == 1 and r.packets == 0
    assert all(not s.calls for s in senders.values() if isinstance(s, Sink))  # Python does it all


def test_malformed_and_forged_compounds() -> None:
    (demux, r), senders, to_python, tx = route()
    good = bytes(rr((OURS, 1, 1)))
    truncated = good[:-4]  # the header claims more than there is
    bad_count = bytearray(good)
    bad_count[0] = 0x80 | 5  # five report blocks announced, one present
    for plain in (truncated, bytes(bad_count), good + b"\x00\x00"):
        demux.datagram_received(tx.protect_rtcp(plain), ("127.0.0.1", 1))
    assert to_python == [truncated, bytes(bad_count), good + b"\x00\x00"]  # aiortc's parser judges them
    forged = bytearray(tx.protect_rtcp(good))
    forged[5] ^= 0xFF
    demux.datagram_received(bytes(forged), ("127.0.0.1", 1))
    assert r.dropped == 1 and len(to_python) == 3
    assert all(not s.calls for s in senders.values() if isinstance(s, Sink))


def test_without_a_route_rtcp_goes_to_the_fallback_unread() -> None:
    from sfu._fanout import Demux

    unread: list[bytes] = []
    demux = Demux(lambda data, addr: unread.append(data))
    data = struct.pack("!BBHI", 0x80, 201, 1, 9)
    demux.datagram_received(data, ("127.0.0.1", 1))
    assert unread == [data]
    with pytest.raises(TypeError):
        demux.set_rtcp(object())


class SlotSink(Sink):
    """SlotSink is a sender with a C slot: the reports go into it, not through calls."""

    def __init__(self) -> None:
        from sfu._fanout import Slot

        super().__init__()
        self.report_slot = Slot(90000, 3000, 0, 0)


def test_routine_reports_fill_the_senders_c_slots() -> None:
    (demux, r), senders, to_python, tx = route()
    ours, also = SlotSink(), SlotSink()
    senders[OURS], senders[ALSO_OURS] = ours, also
    ours.report_slot.lsr, ours.report_slot.lsr_time = 0x01020304, time.time() - 1.0  # our SR, a second ago
    blocks = [RtcpReceiverInfo(ssrc=OURS, fraction_lost=64, packets_lost=-2, highest_sequence=9, jitter=900,
                               lsr=0x01020304, dlsr=65536 // 2),
              RtcpReceiverInfo(ssrc=ALSO_OURS, fraction_lost=3, packets_lost=0x7FFFFF, highest_sequence=1, jitter=7,
                               lsr=0x0BAD, dlsr=1)]  # answers no SR of ours: no RTT
    compound = bytes(RtcpRrPacket(ssrc=9, reports=blocks)) + bytes(remb(1_234_567, [OURS]))
    demux.datagram_received(tx.protect_rtcp(compound), ("127.0.0.1", 1))
    assert r.packets == 1 and to_python == [] and not ours.calls and not also.calls  # no Python call
    a, b = ours.report_slot, also.report_slot
    sent_bitrate = unpack_remb_fci(pack_remb_fci(1_234_567, [OURS]))[0]  # 18-bit mantissa: 1 234 560
    assert (a.fraction_lost, a.packets_lost, a.jitter, a.reports, a.remb) == (64, -2, 900, 1, sent_bitrate)
    assert (b.fraction_lost, b.packets_lost, b.jitter, b.reports, b.remb) == (3, 0x7FFFFF, 7, 1, -1)
    assert a.rtt is not None and 0.3 < a.rtt < 1.0 and b.rtt is None  # ~1 s - 0.5 s of DLSR
    assert ours.direct_rtcp == 2 and also.direct_rtcp == 1


def test_slot_rtt_is_smoothed_like_aiortc() -> None:
    from aiortc.rtcrtpsender import RTT_ALPHA
    from sfu._fanout import Slot

    s = Slot(90000, 3000, 0, 0)
    s.report(0, 0, 0, 100, 65536, 12.0)
    assert s.rtt is None  # no SR sent yet (lsr -1)
    s.lsr, s.lsr_time = 100, 10.0
    s.report(0, 0, 0, 100, 0, 12.0)
    assert s.rtt is None  # DLSR 0: the subscriber had no SR of ours
    s.report(0, 0, 0, 100, 65536, 12.0)
    assert s.rtt == 1.0  # 12 - 10 - 1 s of DLSR
    s.report(0, 0, 0, 100, 65536, 13.0)
    assert s.rtt == RTT_ALPHA * 1.0 + (1 - RTT_ALPHA) * 2.0


def remb_fci(mantissa: int, exponent: int, ssrcs: list[int]) -> bytes:
    """remb_fci is a REMB FCI with the given mantissa (18 bits) and exponent (6 bits)."""
    return b"REMB" + struct.pack("!BBH", len(ssrcs), (exponent << 2) | (mantissa >> 16), mantissa & 0xFFFF) + b"".join(
        struct.pack("!I", s) for s in ssrcs)


def forwarding_sender() -> Any:
    from aiortc import RTCCertificate, RTCDtlsTransport, RTCIceGatherer, RTCIceTransport

    from sfu.hooks.sender import ForwardingSender

    dtls = RTCDtlsTransport(RTCIceTransport(RTCIceGatherer()), [RTCCertificate.generateCertificate()])
    sender: Any = ForwardingSender("video", dtls)
    sender.got = []
    sender.on_remb = sender.got.append
    return sender


@pytest.mark.parametrize(("mantissa", "exponent"), [
    (0x3FFFF, 63), (1, 63), (0, 63), (0x3FFFF, 36), (0x3FFFF, 35), (1, 53), (2, 53), (0x3FFFF, 46), (1234, 7),
])
async def test_remb_bitrate_is_capped_the_same_on_both_paths(mantissa: int, exponent: int) -> None:
    from sfu.hooks.sender import ForwardingSender
    from sfu.rtp import REMB_MAX, unpack_remb

    want = min(mantissa << exponent, 2**53)  # never negative, never past 64 bits
    assert REMB_MAX == 2**53
    called, with_slot = forwarding_sender(), forwarding_sender()  # the C path: a call, and the slot's field
    with_slot.report_slot = SlotSink().report_slot
    python, python_slot = forwarding_sender(), forwarding_sender()  # the Python path (aiortc's parser)
    python_slot.report_slot = SlotSink().report_slot
    ssrcs = [called._ssrc, with_slot._ssrc, python._ssrc, python_slot._ssrc]
    compound = bytes(RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=9, media_ssrc=0,
                                    fci=remb_fci(mantissa, exponent, ssrcs)))
    (demux, r), _, to_python, tx = route({called._ssrc: called, with_slot._ssrc: with_slot}, ForwardingSender)
    demux.datagram_received(tx.protect_rtcp(compound), ("127.0.0.1", 1))
    assert r.packets == 1 and to_python == []
    for packet in RtcpPacket.parse(compound):  # what aiortc's router hands each sender on the Python path
        python.handle_rtcp(packet)
        python_slot.handle_rtcp(packet)
    assert called.got == python.got == [want]
    assert with_slot.report_slot.remb == python_slot.report_slot.remb == want
    assert unpack_remb(remb_fci(mantissa, exponent, [1])) == (want, [1])


class Listener:
    """Listener records the sender reports the C path hands a receiver."""

    def __init__(self) -> None:
        self.reports: list[tuple[int, int]] = []
        self.direct_rtcp = 0

    def sender_report(self, ssrc: int, lsr: int) -> None:
        self.reports.append((ssrc, lsr))


PUBLISHER, LAYER, NOBODY, FOREIGN = 0x51515151, 0x52525252, 0x53535353, 0x54545454


def sr(ssrc: int, ntp: int, *blocks: tuple[int, int, int]) -> RtcpSrPacket:
    return RtcpSrPacket(ssrc=ssrc, sender_info=RtcpSenderInfo(ntp_timestamp=ntp, rtp_timestamp=3, packet_count=4,
                                                              octet_count=5),
                        reports=rr(*blocks).reports)


def test_a_publishers_sender_reports_reach_its_receivers_in_c() -> None:
    """An SR compound (SR + SDES, what Chromium and aiortc send once a second per stream) is routine when the
    route knows the receivers: each receiver of its SSRC gets the middle 32 bits of its NTP time, an SR nobody
    receives is dropped (as aiortc's router does), and report blocks inside an SR reach our senders as an RR's."""
    publisher, layer = Listener(), Listener()
    receivers: dict[int, Any] = {PUBLISHER: publisher, LAYER: layer, FOREIGN: NotASender()}
    (demux, r), senders, to_python, tx = route(receivers=receivers, receiver_type=Listener)
    ntp = 0xE1A2B3C4_D5E6F708
    compounds = [bytes(sr(PUBLISHER, ntp)) + bytes(sdes()),
                 bytes(sr(LAYER, ntp + (1 << 32))) + bytes(sr(NOBODY, 7)) + bytes(sdes()),
                 bytes(sr(PUBLISHER, ntp, (OURS, 12, 5))) + bytes(remb(300_000, [ALSO_OURS]))]
    for compound in compounds:
        demux.datagram_received(tx.protect_rtcp(compound), ("127.0.0.1", 1))
    assert r.packets == 3 and r.to_python == 0 and to_python == []
    parsed = [p for c in compounds for p in RtcpPacket.parse(c) if isinstance(p, RtcpSrPacket)]
    lsr = {p.ssrc: (p.sender_info.ntp_timestamp >> 16) & 0xFFFFFFFF for p in parsed}  # aiortc's receiver's LSR
    assert publisher.reports == [(PUBLISHER, lsr[PUBLISHER])] * 2 and publisher.direct_rtcp == 2
    assert layer.reports == [(LAYER, lsr[LAYER])] and layer.direct_rtcp == 1
    want = expected_calls(compounds[2], senders)
    assert {ssrc: senders[ssrc].calls for ssrc in want} == want and want[OURS]


@pytest.mark.parametrize("packets", [
    [sr(FOREIGN, 1), sdes()],  # a receiver not of the route's class: aiortc's own handling
    [sr(PUBLISHER, 1), RtcpPsfbPacket(fmt=1, ssrc=9, media_ssrc=OURS)],  # with a PLI
])
def test_a_sender_report_the_c_path_does_not_own_goes_to_python(packets: list[Any]) -> None:
    publisher = Listener()
    (demux, r), _, to_python, tx = route(receivers={PUBLISHER: publisher, FOREIGN: NotASender()},
                                         receiver_type=Listener)
    compound = b"".join(bytes(p) for p in packets)
    demux.datagram_received(tx.protect_rtcp(compound), ("127.0.0.1", 1))
    assert to_python == [compound] and r.packets == 0 and not publisher.reports


def test_a_truncated_sender_report_goes_to_python() -> None:
    publisher = Listener()
    (demux, r), _, to_python, tx = route(receivers={PUBLISHER: publisher}, receiver_type=Listener)
    good = bytearray(bytes(sr(PUBLISHER, 1)))
    good[0] = 0x80 | 1  # one report block announced, none present
    demux.datagram_received(tx.protect_rtcp(bytes(good)), ("127.0.0.1", 1))
    assert to_python == [bytes(good)] and not publisher.reports


def test_a_receiver_keeps_the_same_lsr_from_either_path() -> None:
    """The twin: ForwardingReceiver.handle_rtcp (the Python path, aiortc's parsed SR) and sfu/_rtcp.c's call of
    sender_report leave the same LSR, and a receive time the next receiver report's DLSR counts from."""
    from aiortc import RTCCertificate, RTCDtlsTransport, RTCIceGatherer, RTCIceTransport

    from sfu.hooks.receiver import ForwardingReceiver

    dtls = RTCDtlsTransport(RTCIceTransport(RTCIceGatherer()), [RTCCertificate.generateCertificate()])
    compiled, python = ForwardingReceiver("video", dtls), ForwardingReceiver("video", dtls)
    ntp = 0x0123456789ABCDEF
    (demux, r), _, to_python, tx = route(receivers={PUBLISHER: compiled}, receiver_type=ForwardingReceiver)
    before = time.time()
    demux.datagram_received(tx.protect_rtcp(bytes(sr(PUBLISHER, ntp)) + bytes(sdes())), ("127.0.0.1", 1))
    for packet in RtcpPacket.parse(bytes(sr(PUBLISHER, ntp))):
        python.handle_rtcp(packet)
    assert r.packets == 1 and to_python == [] and compiled.direct_rtcp == 1
    c: Any = compiled
    p: Any = python
    assert c._RTCRtpReceiver__lsr == p._RTCRtpReceiver__lsr == {PUBLISHER: 0x456789AB}
    for lsr_time in (c._RTCRtpReceiver__lsr_time[PUBLISHER], p._RTCRtpReceiver__lsr_time[PUBLISHER]):
        assert before <= lsr_time <= time.time()
