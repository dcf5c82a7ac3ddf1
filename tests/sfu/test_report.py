"""Tests of the C sender reports (sfu/_report.c): the same bytes as sfu.rtp.sender_reports, protected and sent."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from sfu.consumer import COMPILED
from sfu.rtp import SendContext, sender_reports
from tests.sfu.srtplink import Link, bound

pytestmark = pytest.mark.skipif(not COMPILED, reason="sfu._fanout not built")


@dataclass
class Sender:
    """Sender has what sender_reports and the Reporter read and write (lsr in the slot, as ForwardingSender)."""

    slot: Any
    source: tuple[int, str] | None

    @property
    def report_source(self) -> tuple[int, str] | None:
        return self.source

    @property
    def lsr(self) -> int:
        return int(self.slot.lsr)

    @lsr.setter
    def lsr(self, value: int) -> None:
        self.slot.lsr = value

    @property
    def lsr_time(self) -> float:
        return float(self.slot.lsr_time)

    @lsr_time.setter
    def lsr_time(self, value: float) -> None:
        self.slot.lsr_time = value

    def sr_info(self) -> tuple[int, int, int, int]:
        s = self.slot
        return int(s.last_ntp), int(s.last_out_ts), int(s.packets_sent), int(s.bytes_sent)


def slot(packets: int, octets: int, ntp: int, ts: int) -> Any:
    from sfu._fanout import Slot

    s = Slot(90000, 3000, 0, 0)
    s.packets_sent, s.bytes_sent, s.last_ntp, s.last_out_ts = packets, octets, ntp, ts
    return s


def entries(senders: list[Sender]) -> tuple[tuple[Any, Any, int, bytes], ...]:
    out = []
    for s in senders:
        assert s.source is not None
        out.append((s, s.slot, s.source[0], s.source[1].encode()[:255]))
    return tuple(out)


@pytest.fixture
def link() -> Iterator[Link]:
    from sfu._fanout import Reporter

    with bound(Reporter()) as link:
        yield link


def test_reports_are_the_bytes_sender_reports_builds(link: Link) -> None:
    cnames = ["", "a", "ab", "abc", "abcd", "abcde", "x" * 300, "{cname-uuid-5f0c}"]
    for i, cname in enumerate(cnames):  # every padding length, and a CNAME cut at 255 bytes
        python = [Sender(slot(10 + i, 12000 + i, 0x0102030405060708 + i, 90000 * i), (0x1111 + i, cname)),
                  Sender(slot(0, 0, 0, 0), (0x2222, "idle")),  # never sent: left out
                  Sender(slot(3, 300, 0xFFFFFFFFFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, "peer"))]
        ours = [Sender(slot(10 + i, 12000 + i, 0x0102030405060708 + i, 90000 * i), (0x1111 + i, cname)),
                Sender(slot(0, 0, 0, 0), (0x2222, "idle")),
                Sender(slot(3, 300, 0xFFFFFFFFFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, "peer"))]
        expected = sender_reports(python, now=1000.0 + i)
        sent = link.sender.send(entries(ours), 1000.0 + i)
        assert sent > len(expected)  # protected: the SRTCP index and tag added
        assert link.receive() == expected
        assert [(s.lsr, s.lsr_time) for s in ours] == [(s.lsr, s.lsr_time) for s in python]
        assert ours[0].lsr == ((0x0102030405060708 + i) >> 16) & 0xFFFFFFFF and ours[1].lsr == -1
    assert link.sender.sent == len(cnames) and link.sender.errors == 0


def test_counters_wrap_like_sender_reports(link: Link) -> None:
    python = [Sender(slot(2**32 + 5, 2**33 + 7, 1, 2), (1, "c"))]
    ours = [Sender(slot(2**32 + 5, 2**33 + 7, 1, 2), (1, "c"))]
    link.sender.send(entries(ours), 1.0)
    assert link.receive() == sender_reports(python, now=1.0)


def test_nothing_to_report_sends_nothing(link: Link) -> None:
    idle = [Sender(slot(0, 0, 0, 0), (1, "c"))]
    assert link.sender.send(entries(idle), 1.0) == 0
    assert link.sender.send((), 1.0) == 0
    link.inbox.setblocking(False)
    assert link.nothing_received()
    assert idle[0].lsr == -1


def test_malformed_entries_are_skipped(link: Link) -> None:
    good = Sender(slot(1, 100, 1 << 40, 5), (7, "c"))
    bad: tuple[Any, ...] = (("not", "an", "entry"), (good, object(), 7, b"c"), (good, good.slot, "7", b"c"),
                            (good, good.slot, 2**40, b"c"), (good, good.slot, 7, "str"), 42)
    assert link.sender.send(bad + entries([good]), 1.0) > 0
    assert link.receive() == sender_reports([Sender(slot(1, 100, 1 << 40, 5), (7, "c"))], now=1.0)
    with pytest.raises(TypeError):
        link.sender.send([], 1.0)
    with pytest.raises(TypeError):
        link.sender.send((), "now")


def test_python_sends_what_the_reporter_cannot(link: Link) -> None:
    from sfu._fanout import Reporter

    many = [Sender(slot(1, 1, 1, 1), (i, "x" * 255)) for i in range(8)]  # over one datagram's worth
    assert link.sender.send(entries(many), 1.0) == -1
    assert all(s.lsr == -1 for s in many)  # nothing changed: Python builds and sends it
    crowd = [Sender(slot(1, 1, 1, 1), (i, "")) for i in range(70)]  # more SRs than one compound holds
    assert link.sender.send(entries(crowd), 1.0) == -1 and all(s.lsr == -1 for s in crowd)
    one = [Sender(slot(1, 1, 1, 1), (1, "c"))]
    assert Reporter().send(entries(one), 1.0) == -1  # no route
    assert not Reporter().routed and link.sender.routed
    link.sender.clear_route()
    assert link.sender.send(entries(one), 1.0) == -1


def test_a_closed_socket_loses_the_report_and_the_route(link: Link) -> None:
    one = [Sender(slot(1, 1, 1, 1), (1, "c"))]
    link.out.close()
    assert link.sender.send(entries(one), 1.0) == 0
    assert link.sender.errors == 1 and not link.sender.routed
    assert link.sender.send(entries(one), 1.0) == -1


async def test_reports_and_rtt_across_the_ntp_era_and_rtp_timestamp_wraps(link: Link) -> None:
    from aiortc import RTCCertificate, RTCDtlsTransport, RTCIceGatherer, RTCIceTransport
    from aiortc.rtp import RtcpPacket, RtcpSrPacket

    from sfu.hooks.sender import ForwardingSender

    dtls = RTCDtlsTransport(RTCIceTransport(RTCIceGatherer()), [RTCCertificate.generateCertificate()])
    c_slot = slot(1, 1, 0, 0)
    # the last NTP seconds of era 0 (2036), their middle 32 bits wrapping from 0xFFFFFFFF to 0 (the seconds are
    # still 0xFFFFFFFF), then era 1 at 0 seconds; RTP timestamps wrapping at 2^32 alike
    steps = [((0xFFFFFFFF << 32) | 0xFFFE8000, 0xFFFFFF00), ((0xFFFFFFFF << 32) | 0xFFFFC000, 0xFFFFFFFF),
             (0x0000000000004000, 0x00000000), (0x0000000100000000, 0x00015F90)]
    for n, (ntp, ts) in enumerate(steps):
        now = 1000.0 + n
        c_slot.last_ntp, c_slot.last_out_ts, c_slot.packets_sent = ntp, ts, 1 + n
        ours = [Sender(c_slot, (0x1234, "c"))]
        python = [Sender(slot(1 + n, 1, ntp, ts), (0x1234, "c"))]
        expected = sender_reports(python, now=now)
        assert link.sender.send(entries(ours), now) > 0
        assert link.receive() == expected
        sr = RtcpPacket.parse(expected)[0]
        assert isinstance(sr, RtcpSrPacket)
        assert (sr.sender_info.ntp_timestamp, sr.sender_info.rtp_timestamp) == (ntp, ts)
        lsr = (ntp >> 16) & 0xFFFFFFFF
        assert c_slot.lsr == python[0].lsr == lsr and c_slot.lsr_time == now
        # the subscriber echoes LSR 0.75 s after our SR, having held it 0.5 s (DLSR): 0.25 s of round trip
        stale = (lsr - 1) & 0xFFFFFFFF  # an older SR's LSR, across the wrap: no RTT sample
        c_slot.report(0, 0, 0, stale, 65536, now + 0.5)
        assert c_slot.rtt == (None if n == 0 else pytest.approx(0.25))
        c_slot.report(0, 0, 0, lsr, 65536 // 2, now + 0.75)
        assert c_slot.rtt == pytest.approx(0.25)
        twin: Any = ForwardingSender("video", dtls)  # the Python twin (no report_slot): the RTT computed there
        twin.context = SendContext("video", "video/vp8", 90000, 96, None, 0x1234, 0x5678, None, None, None, None,
                                   dtls, "c")
        twin.sr_info = lambda info=(ntp, ts, 1 + n, 1): info
        assert sender_reports([twin], now=time.time() - 1.0) == sender_reports(python, now=0.0)  # SR a second ago
        assert twin.lsr == lsr
        twin.report_block(0, 0, 0, stale, 65536 // 2)
        assert twin.rtt is None
        twin.report_block(0, 0, 0, lsr, 65536 // 2)
        assert twin.rtt is not None and 0.4 < twin.rtt < 30  # ~1 s - 0.5 s of DLSR

