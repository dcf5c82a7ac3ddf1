"""rtp: RTP/RTCP wire formats the forwarding path reads and writes itself (no aiortc objects, no internals).

* ``parse_fields`` - the fields of a decrypted RTP packet the SFU needs, without building aiortc's
  ``RtpPacket`` (fixed header, and from a one-byte extension block only abs-send-time and audio level).
* ``sender_reports`` - one compound RTCP packet with an SR and an SDES chunk per sender that sent media.
* ``unpack_remb`` - a REMB's bitrate and SSRCs, the bitrate capped at ``REMB_MAX``.
* ``receiver_reports`` and ``remb_packet`` - what a publisher is sent about its streams (aiortc's packets; the
  twins of ``sfu/_feedback.c``).
"""

from __future__ import annotations

import random
import struct
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    pack_remb_fci,
    unpack_remb_fci,
)

URI_MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
URI_ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
URI_AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"

NTP_OFFSET = 2208988800  # seconds from 1900 (NTP) to 1970 (Unix)
NO_AUDIO_LEVEL = 0x7F  # the audio-level byte when the extension is absent (-127 dBov, no voice flag)
# the largest REMB bitrate we take (bit/s): 2^53, exact as a double and far from long long's limit. A REMB is
# mantissa (18 bits) x 2^exponent (6 bits): up to ~2^81; every exponent up to 35 gives less than this cap.
REMB_MAX = 1 << 53

_RTP_HEAD = struct.Struct("!BBHII")  # V/P/X/CC, M/PT, sequence number, timestamp, SSRC
_EXT_HEAD = struct.Struct("!HH")  # extension profile, length in 32-bit words

# (ssrc, sequence number, timestamp, marker, payload type, payload, padding, abs-send-time or -1, level byte)
RtpFields = tuple[int, int, int, int, int, bytes, int, int, int]

# on_fields(ssrc, seq, ts, marker, payload, padding, audio_level_byte, arrival time.time())
FieldsSink = Callable[[int, int, int, int, bytes, int, int, float], None]


_AST = struct.Struct("!HB")  # the abs-send-time extension's 3 bytes


def pack_abs_send_time(buf: bytearray, offset: int, value: int) -> None:
    """pack_abs_send_time writes a 24-bit abs-send-time `value` into `buf` at `offset` (a header's extension)."""
    _AST.pack_into(buf, offset, value >> 8, value & 0xFF)


def abs_send_time_now() -> int:
    """abs_send_time_now: the abs-send-time extension's value for a packet leaving now (NTP seconds, 6.18 fixed
    point, 24 bits): the clock the receive path stamps arrivals with (``ntp >> 14``), so that a packet that waited
    in a pacer or is resent carries when it really left, not when its original arrived."""
    return int((time.time() + NTP_OFFSET) * 262144) & 0xFFFFFF


def parse_fields(plain: bytes, abs_send_time_id: int, audio_level_id: int) -> RtpFields | None:
    """parse_fields reads what forwarding needs from a decrypted RTP packet; None: use a full parser.

    None is returned for anything unusual (not version 2, a two-byte extension block (RFC 8285), a header
    longer than the packet, bad padding), so that the caller hands the packet to ``RtpPacket.parse``, which
    either parses it or rejects it. Extension ids of 0 mean "not negotiated".
    """
    n = len(plain)
    if n < 12:
        return None
    b0, b1, seq, ts, ssrc = _RTP_HEAD.unpack_from(plain)
    if b0 & 0xC0 != 0x80:
        return None
    pos = 12 + 4 * (b0 & 0x0F)
    ast = -1
    level = NO_AUDIO_LEVEL
    if b0 & 0x10:
        if n < pos + 4:
            return None
        profile, words = _EXT_HEAD.unpack_from(plain, pos)
        pos += 4
        end = pos + 4 * words
        if profile != 0xBEDE or end > n:
            return None
        i = pos
        while i < end:
            x = plain[i]
            if not x:
                i += 1  # padding byte
                continue
            eid = x >> 4
            if eid == 15:
                break
            size = (x & 0x0F) + 1
            i += 1
            if i + size > end:
                break
            if eid == abs_send_time_id and size == 3:
                ast = (plain[i] << 16) | (plain[i + 1] << 8) | plain[i + 2]
            elif eid == audio_level_id:
                level = plain[i]
            i += size
        pos = end
    if pos > n:
        return None
    padding = 0
    if b0 & 0x20:
        padding = plain[-1]
        if not padding or padding > n - pos:
            return None
        payload = plain[pos:n - padding]
    else:
        payload = plain[pos:]
    return ssrc, seq, ts, b1 >> 7, b1 & 0x7F, payload, padding, ast, level


@dataclass(frozen=True)
class SendContext:
    """SendContext is what a forwarding slot needs once its sender is negotiated and started."""

    kind: str
    mime: str
    clock_rate: int
    payload_type: int
    rtx_payload_type: int | None
    ssrc: int
    rtx_ssrc: int
    mid: str | None
    mid_id: int | None
    abs_send_time_id: int | None
    audio_level_id: int | None
    transport: RTCDtlsTransport
    cname: str = ""


SrInfo = tuple[int, int, int, int]  # NTP timestamp, RTP timestamp, packet count, octet count


class ReportingSender(Protocol):
    """ReportingSender is what ``sender_reports`` reads and writes on a forwarding sender."""

    sr_info: Callable[[], tuple[int, int, int, int]] | None
    lsr: int
    lsr_time: float

    @property
    def report_source(self) -> tuple[int, str] | None:
        """report_source is (SSRC, CNAME) once negotiated."""


_SR = struct.Struct("!BBHIQIII")  # V=2 RC=0, PT=200, length, SSRC, NTP, RTP ts, packets, octets


def sender_reports(senders: Sequence[ReportingSender], now: float) -> bytes:
    """sender_reports builds one compound RTCP packet: an SR per sender that has sent media, then its SDES.

    Senders that never sent a packet are left out (nothing to synchronise). Each reported sender's
    ``lsr`` / ``lsr_time`` are set so its next receiver report yields a round-trip time. Returns b"" when
    no sender has anything to report.
    """
    out = bytearray()
    chunks: list[bytes] = []
    for s in senders:
        info = s.sr_info() if s.sr_info is not None else None
        source = s.report_source
        if info is None or source is None or not info[2]:
            continue
        ssrc, cname = source
        ntp, rtp_ts, packets, octets = info
        ntp &= 0xFFFFFFFFFFFFFFFF  # NTP era 1 (from 2036-02-07) starts again at 0 seconds
        out += _SR.pack(0x80, 200, 6, ssrc, ntp, rtp_ts, packets & 0xFFFFFFFF, octets & 0xFFFFFFFF)
        s.lsr = (ntp >> 16) & 0xFFFFFFFF
        s.lsr_time = now
        name = cname.encode()[:255]
        chunk = struct.pack("!IBB", ssrc, 1, len(name)) + name
        chunks.append(chunk + bytes(4 - len(chunk) % 4))  # null item ending the chunk, 32-bit padded
    for chunk in chunks:  # one SDES per chunk: aiortc's parser misreads the padding between chunks
        out += struct.pack("!BBH", 0x81, 202, len(chunk) // 4) + chunk
    return bytes(out)


class ReportedStream(Protocol):
    """ReportedStream: what a receiver report reads of one SSRC's statistics (``sfu.stats.RtpStreamStats``)."""

    @property
    def fraction_lost(self) -> int: ...
    @property
    def packets_lost(self) -> int: ...
    @property
    def max_seq(self) -> int: ...
    @property
    def jitter(self) -> int: ...


# one receiving m-line's report (CONTRACT layouts "rr_entry"): its RTCP SSRC, its statistics table (SSRC ->
# stream), and the LSR and its arrival time (time.time()) of each SSRC's latest sender report
ReportEntry = tuple[int, Mapping[int, ReportedStream], Mapping[int, int], Mapping[int, float]]


def receiver_reports(entries: Sequence[ReportEntry], now: float) -> bytes:
    """receiver_reports builds one compound RTCP packet: per entry, the RR aiortc's receiver-report loop sends.

    The same report blocks as ``RTCRtpReceiver._run_rtcp`` (aiortc 1.16) for each entry's statistics table, in
    its order (reading ``fraction_lost`` starts the stream's next interval), LSR and DLSR from the sender-report
    times at `now`; an entry without streams adds nothing. b"" when no entry has streams. The Python twin of
    ``sfu._fanout.Feedback.send_reports``.
    """
    out = bytearray()
    for rtcp_ssrc, streams, lsrs, lsr_times in entries:
        reports = []
        for ssrc, stream in streams.items():
            lsr = dlsr = 0
            if ssrc in lsrs:
                lsr = lsrs[ssrc]
                delay = now - lsr_times.get(ssrc, now)
                if 0 < delay < 65536:
                    dlsr = int(delay * 65536)
            reports.append(RtcpReceiverInfo(
                ssrc=ssrc, fraction_lost=stream.fraction_lost, packets_lost=stream.packets_lost,
                highest_sequence=stream.max_seq, jitter=stream.jitter, lsr=lsr, dlsr=dlsr))
        if reports:
            out += bytes(RtcpRrPacket(ssrc=rtcp_ssrc, reports=reports))
    return bytes(out)


def remb_packet(ssrc: int, bitrate: int, ssrcs: Sequence[int]) -> bytes:
    """remb_packet is aiortc's REMB from `ssrc` (media SSRC 0): the twin of ``sfu._fanout.Feedback.send_remb``."""
    return bytes(RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=ssrc, media_ssrc=0, fci=pack_remb_fci(bitrate, list(ssrcs))))


def unpack_remb(fci: bytes) -> tuple[int, list[int]]:
    """unpack_remb reads a REMB's FCI (aiortc's ``unpack_remb_fci``) with the bitrate capped at ``REMB_MAX``.

    The same value as sfu/_rtcp.c's parser for every mantissa and exponent. Raises ValueError when the FCI
    is not a REMB.
    """
    bitrate, ssrcs = unpack_remb_fci(fci)
    return min(bitrate, REMB_MAX), ssrcs


def report_period() -> float:
    """report_period is the time to a transport's next sender report: 0.5-1.5 s (aiortc's, RFC 3550's spread)."""
    return 0.5 + random.random()


def pad(n: int) -> bytes:
    """pad is `n` bytes of RTP padding (zeros, the last byte the count); b"" for 0."""
    return bytes(n - 1) + bytes((n,)) if n else b""
