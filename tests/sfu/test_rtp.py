"""Tests of sfu/rtp.py: the header fields forwarding reads (against aiortc's parser) and sender reports."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import (
    HeaderExtensionsMap,
    RtcpPacket,
    RtcpSdesPacket,
    RtcpSrPacket,
    RtpPacket,
    pack_remb_fci,
    unpack_remb_fci,
)

from sfu.rtp import (
    NO_AUDIO_LEVEL,
    REMB_MAX,
    URI_ABS_SEND_TIME,
    URI_AUDIO_LEVEL,
    URI_MID,
    pack_abs_send_time,
    pad,
    parse_fields,
    sender_reports,
    unpack_remb,
)

EXT = HeaderExtensionsMap()
EXT.configure(RTCRtpParameters(headerExtensions=[
    RTCRtpHeaderExtensionParameters(id=1, uri=URI_MID),
    RTCRtpHeaderExtensionParameters(id=3, uri=URI_ABS_SEND_TIME),
    RTCRtpHeaderExtensionParameters(id=5, uri=URI_AUDIO_LEVEL),
]))


def packet(seq: int = 7, *, marker: int = 0, padding: int = 0, level: tuple[bool, int] | None = None,
           ast: int | None = 0x123456, mid: str | None = None, csrc: list[int] | None = None,
           payload: bytes = b"\x10abc") -> bytes:
    p = RtpPacket(payload_type=96, sequence_number=seq, timestamp=seq * 3000, ssrc=0xABCDEF01, marker=marker,
                  payload=payload)
    p.padding_size = padding
    p.csrc = csrc or []
    p.extensions.abs_send_time = ast
    p.extensions.audio_level = level
    p.extensions.mid = mid
    return p.serialize(EXT)


@pytest.mark.parametrize("kw", [
    {},
    {"marker": 1, "padding": 4},
    {"level": (True, 42), "mid": "video0"},
    {"level": (False, 9), "ast": None},
    {"csrc": [1, 2, 3], "payload": b""},
    {"ast": None, "mid": None},
])
def test_parse_fields_matches_aiortc(kw: dict[str, object]) -> None:
    data = packet(**kw)  # type: ignore[arg-type]
    ref = RtpPacket.parse(data, EXT)
    fields = parse_fields(data, 3, 5)
    assert fields is not None
    ssrc, seq, ts, marker, pt, payload, padding, ast, level = fields
    assert (ssrc, seq, ts, marker, pt, payload, padding) == (
        ref.ssrc, ref.sequence_number, ref.timestamp, ref.marker, ref.payload_type, ref.payload, ref.padding_size)
    assert ast == (-1 if ref.extensions.abs_send_time is None else ref.extensions.abs_send_time)
    want = ref.extensions.audio_level
    assert level == (NO_AUDIO_LEVEL if want is None else (0x80 if want[0] else 0) | want[1])


def test_parse_fields_ignores_extensions_not_negotiated() -> None:
    fields = parse_fields(packet(level=(True, 1)), 0, 0)
    assert fields is not None and fields[7] == -1 and fields[8] == NO_AUDIO_LEVEL


def test_parse_fields_leaves_the_unusual_to_a_full_parser() -> None:
    good = packet(level=(True, 1))
    assert parse_fields(good[:11], 3, 5) is None  # shorter than a header
    assert parse_fields(b"\x40" + good[1:], 3, 5) is None  # version 1
    assert parse_fields(good[:14], 3, 5) is None  # extension block cut short
    two_byte = bytearray(good)
    two_byte[12:14] = b"\x10\x00"  # profile 0x1000: two-byte extension headers
    assert parse_fields(bytes(two_byte), 3, 5) is None
    bad_pad = bytearray(packet(padding=4))
    bad_pad[-1] = 0  # padding count 0
    assert parse_fields(bytes(bad_pad), 3, 5) is None
    bad_pad[-1] = 200  # more padding than payload
    assert parse_fields(bytes(bad_pad), 3, 5) is None


@dataclass
class FakeSender:
    """FakeSender has what sender_reports reads and writes."""

    sr_info: Callable[[], tuple[int, int, int, int]] | None
    source: tuple[int, str] | None
    lsr: int = -1
    lsr_time: float = 0.0

    @property
    def report_source(self) -> tuple[int, str] | None:
        return self.source


def sender(ssrc: int, info: tuple[int, int, int, int] | None, cname: str = "c") -> FakeSender:
    return FakeSender((lambda: info) if info is not None else None, (ssrc, cname))


def test_sender_reports_are_one_compound_packet_and_give_rtt() -> None:
    a = sender(0x1111, (0x0102030405060708, 90000, 10, 12000), "peer-cname")
    b = sender(0x2222, (0x1112131415161718, 48000, 3, 300), "peer-cname")
    idle = sender(0x3333, (0, 0, 0, 0))
    unready = sender(0x4444, None)
    unnegotiated = FakeSender(lambda: (1, 2, 3, 4), None)
    data = sender_reports([a, idle, b, unready, unnegotiated], now=1000.0)
    packets = RtcpPacket.parse(data)
    assert [type(p) for p in packets] == [RtcpSrPacket, RtcpSrPacket, RtcpSdesPacket, RtcpSdesPacket]
    sr_a, sr_b, sdes_a, sdes_b = packets
    assert isinstance(sr_a, RtcpSrPacket) and isinstance(sr_b, RtcpSrPacket)
    assert isinstance(sdes_a, RtcpSdesPacket) and isinstance(sdes_b, RtcpSdesPacket)
    assert (sr_a.ssrc, sr_a.sender_info.ntp_timestamp, sr_a.sender_info.rtp_timestamp) == (
        0x1111, 0x0102030405060708, 90000)
    assert (sr_a.sender_info.packet_count, sr_a.sender_info.octet_count) == (10, 12000)
    assert sr_b.ssrc == 0x2222 and sr_b.sender_info.packet_count == 3
    assert [(c.ssrc, c.items) for p in (sdes_a, sdes_b) for c in p.chunks] == [
        (0x1111, [(1, b"peer-cname")]), (0x2222, [(1, b"peer-cname")])]
    assert a.lsr == 0x03040506 and a.lsr_time == 1000.0 and idle.lsr == -1
    assert sender_reports([idle, unready], now=1.0) == b""


def test_pad() -> None:
    assert pad(0) == b"" and pad(1) == b"\x01" and pad(4) == b"\x00\x00\x00\x04"


def test_sender_reports_across_the_ntp_era_and_rtp_timestamp_wraps() -> None:
    era_end = (0xFFFFFFFF << 32) | 0xFFFF0000  # 2036-02-07 06:28:15.99998 UTC, the last NTP second of era 0
    # (NTP time, what the SR carries): an arrival time past era 0 computed as int((t + NTP_OFFSET) * 2^32)
    # is 2^64 or more; the SR's 64-bit field holds it modulo 2^64 (era 1 starts again at 0 seconds)
    era_1 = 0x0000000180000000  # 1.5 s into era 1
    for ntp, ts, packed in [(era_end, 0xFFFFFFFF, era_end), (2**64 + era_1, 0x00000010, era_1)]:
        s = sender(0x1111, (ntp, ts, 10, 1000))
        sr = RtcpPacket.parse(sender_reports([s], now=5.0))[0]
        assert isinstance(sr, RtcpSrPacket)
        assert (sr.sender_info.ntp_timestamp >> 32, sr.sender_info.ntp_timestamp & 0xFFFFFFFF) == (
            packed >> 32, packed & 0xFFFFFFFF)
        assert sr.sender_info.rtp_timestamp == ts
        assert s.lsr == (packed >> 16) & 0xFFFFFFFF  # the middle 32 bits the subscriber echoes
    assert s.lsr == 0x00018000


def test_unpack_remb_caps_the_bitrate() -> None:
    for bitrate in (0, 1, 1_234_567, 2**35 * 0x3FFFF, 2**53, 2**53 + 2**40, 0x3FFFF << 63):
        fci = pack_remb_fci(bitrate, [7, 8])
        exact = unpack_remb_fci(fci)[0]  # 18-bit mantissa: rounded down
        assert unpack_remb(fci) == (min(exact, REMB_MAX), [7, 8])
    assert unpack_remb(pack_remb_fci(0x3FFFF << 63, [])) == (2**53, [])  # exponent 63: capped, not 2^81


def test_pack_abs_send_time_writes_three_bytes_in_place_up_to_the_wrap() -> None:
    head = bytearray(b"\xaa" * 8)
    for value in (0, 0x123456, 0xFFFFFF):
        pack_abs_send_time(head, 4, value)
        assert head[:4] == b"\xaa" * 4 and head[7] == 0xAA and int.from_bytes(head[4:7], "big") == value
