"""Tests of the C receiver reports and REMB (sfu/_feedback.c): aiortc's packets, byte for byte, protected and sent."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    pack_remb_fci,
    unpack_remb_fci,
)

from sfu.consumer import COMPILED
from sfu.rtp import receiver_reports, remb_packet
from sfu.stats import RtpStreamStats
from tests.sfu.srtplink import Link, bound

pytestmark = pytest.mark.skipif(not COMPILED, reason="sfu._fanout not built")


@pytest.fixture
def link() -> Iterator[Link]:
    from sfu._fanout import Feedback

    with bound(Feedback()) as link:
        yield link


def traffic(seed: int, clock_rate: int = 90000) -> tuple[RtpStreamStats, RtpStreamStats]:
    """traffic: two statistics fed the same packets (losses, reordering, a sequence wrap, jitter)."""
    rng = random.Random(seed)
    a, b = RtpStreamStats(clock_rate), RtpStreamStats(clock_rate)
    seq, ts, t = rng.randrange(0x10000), rng.randrange(2**32), 1000.0
    for _ in range(rng.randrange(1, 400)):
        step = 1 if rng.random() > 0.1 else rng.choice([0, 2, 3, 0xFFFF])  # duplicate, losses, one late
        seq = (seq + step) & 0xFFFF
        ts = (ts + rng.choice([0, 3000])) & 0xFFFFFFFF
        t += rng.uniform(0.0, 0.05)
        a.add(seq, ts, t)
        b.add(seq, ts, t)
    return a, b


def aiortc_rr(rtcp_ssrc: int, streams: dict[int, RtpStreamStats], lsrs: dict[int, int],
              lsr_times: dict[int, float], now: float) -> RtcpRrPacket:
    """aiortc_rr: the RR aiortc 1.16's RTCRtpReceiver._run_rtcp builds (its loop body, time.time() as `now`)."""
    reports = []
    for ssrc, stream in streams.items():
        lsr = dlsr = 0
        if ssrc in lsrs:
            lsr = lsrs[ssrc]
            delay = now - lsr_times[ssrc]
            if delay > 0 and delay < 65536:
                dlsr = int(delay * 65536)
        reports.append(RtcpReceiverInfo(ssrc=ssrc, fraction_lost=stream.fraction_lost,
                                        packets_lost=stream.packets_lost, highest_sequence=stream.max_seq,
                                        jitter=stream.jitter, lsr=lsr, dlsr=dlsr))
    return RtcpRrPacket(ssrc=rtcp_ssrc, reports=reports)


def test_receiver_reports_are_aiortcs_byte_for_byte(link: Link) -> None:
    for seed in range(40):
        rng = random.Random(seed)
        # per m-line: the C path's statistics, the twin's (fed the same packets), LSR and its arrival time
        tables: list[tuple[dict[int, RtpStreamStats], dict[int, RtpStreamStats], dict[int, int],
                           dict[int, float]]] = [({}, {}, {}, {}) for _ in range(rng.randrange(1, 4))]
        for ours, python, lsrs, lsr_times in tables:
            for k in range(rng.randrange(0, 5)):
                ssrc = rng.randrange(2**32)
                ours[ssrc], python[ssrc] = traffic(seed * 10 + k, rng.choice([90000, 48000]))
                if rng.random() < 0.5:
                    lsrs[ssrc] = rng.randrange(2**32)
                    lsr_times[ssrc] = 2000.0 - rng.choice([0.0, 0.4, 1.25, 70000.0, -1.0])
        now = 2000.0
        for round_ in range(2):  # the second report covers the interval since the first (fraction_lost)
            entries = tuple((0x1000 + i, t[0], t[2], t[3]) for i, t in enumerate(tables))
            twin = tuple((0x1000 + i, t[1], t[2], t[3]) for i, t in enumerate(tables))
            expected = receiver_reports(twin, now)
            sent = link.sender.send_reports(entries, now)
            if not expected:
                assert sent == 0
                continue
            assert sent > len(expected)  # protected: the SRTCP index and tag added
            got = link.receive()
            assert got == expected
            packets = RtcpPacket.parse(got)  # aiortc reads one RR per m-line that has streams
            assert all(isinstance(p, RtcpRrPacket) for p in packets)
            assert [p.ssrc for p in packets if isinstance(p, RtcpRrPacket)] == [e[0] for e in entries if e[1]]
            for t in tables:  # more traffic before the next round
                for s, (a, b) in enumerate(zip(t[0].values(), t[1].values(), strict=True)):
                    for n in range(s + round_ * 7 + 1):
                        a.add((a.max16 + 2 + n) & 0xFFFF, 5, 2001.0 + n)
                        b.add((b.max16 + 2 + n) & 0xFFFF, 5, 2001.0 + n)
            now += 1.0


def test_receiver_reports_read_as_aiortc_builds_them(link: Link) -> None:
    """The twin's bytes are aiortc's own RR (its loop body), and aiortc's parser reads the C packet back."""
    lsrs, lsr_times = {5: 0xDEADBEEF}, {5: 99.5}
    streams_c = {5: traffic(7)[0], 6: traffic(8)[0]}
    streams_py = {5: traffic(7)[0], 6: traffic(8)[0]}
    streams_aiortc = {5: traffic(7)[0], 6: traffic(8)[0]}
    expected = aiortc_rr(0xABCDEF01, streams_aiortc, lsrs, lsr_times, 100.0)
    assert receiver_reports(((0xABCDEF01, streams_py, lsrs, lsr_times),), 100.0) == bytes(expected)
    assert link.sender.send_reports(((0xABCDEF01, streams_c, lsrs, lsr_times),), 100.0) > 0
    [packet] = RtcpPacket.parse(link.receive())
    assert packet == expected and packet.reports[0].lsr == 0xDEADBEEF and packet.reports[0].dlsr == 32768


def test_remb_is_aiortcs_byte_for_byte(link: Link) -> None:
    for bitrate in (0, 1, 0x3FFFF, 0x40000, 300_000, 2_500_000, 10**9, 2**40, 2**53 + 12345):
        for ssrcs in ([], [1], [0xFFFFFFFF, 2, 3]):
            expected = bytes(RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=0x1234, media_ssrc=0,
                                            fci=pack_remb_fci(bitrate, ssrcs)))
            assert remb_packet(0x1234, bitrate, ssrcs) == expected
            assert link.sender.send_remb(0x1234, bitrate, ssrcs) > len(expected)
            got = link.receive()
            assert got == expected
            [packet] = RtcpPacket.parse(got)
            assert isinstance(packet, RtcpPsfbPacket)
            value, parsed = unpack_remb_fci(packet.fci)
            assert parsed == ssrcs and 0 <= bitrate - value <= bitrate >> 17  # an 18-bit mantissa
    assert link.sender.rembs == 27 and link.sender.errors == 0


def test_python_sends_what_the_feedback_cannot(link: Link) -> None:
    from sfu._fanout import Feedback

    stats = RtpStreamStats(90000)
    stats.add(1, 1, 1.0)
    assert Feedback().send_reports(((1, {2: stats}, {}, {}),), 1.0) == -1  # no route
    assert Feedback().send_remb(1, 1000, [2]) == -1
    crowd = {i: RtpStreamStats(90000) for i in range(32)}  # more blocks than an RR's count field holds
    assert link.sender.send_reports(((1, crowd, {}, {}),), 1.0) == -1
    assert link.sender.send_reports(((1, {2: stats}, {}, None),), 1.0) == -1  # not an entry C takes
    assert link.sender.send_remb(2**32, 1000, [2]) == -1 and link.sender.send_remb(1, 1000, [2**32]) == -1
    assert link.sender.send_reports(((1, {}, {}, {}),), 1.0) == 0  # no streams: nothing, as aiortc's loop
    assert stats._expected_prior == 0  # nothing read: Python reports it all the same
    link.sender.clear_route()
    assert not link.sender.routed and link.sender.send_reports(((1, {2: stats}, {}, {}),), 1.0) == -1


def test_a_closed_socket_loses_the_report_and_the_route(link: Link) -> None:
    stats = RtpStreamStats(90000)
    stats.add(1, 1, 1.0)
    link.out.close()
    assert link.sender.send_reports(((1, {2: stats}, {}, {}),), 1.0) == 0
    assert link.sender.errors == 1 and not link.sender.routed
