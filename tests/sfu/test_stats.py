import random

from aiortc.rate import MIN_FRAME_PERIOD_HISTORY_LENGTH, OveruseEstimator, RateCounter
from aiortc.rtp import RtcpReceiverInfo

from sfu.stats import NackTracker, RateMeter, RtpStreamStats, SequenceTracker, SlidingMin, WindowRate


def test_sequence_tracker_counts_gaps_across_wrap() -> None:
    s = SequenceTracker()
    for seq in [65533, 65534, 65535, 0, 2, 3]:  # 1 is missing
        s.add(seq)
    assert s.expected == 7
    assert s.received == 6
    assert s.lost == 1


def test_sequence_tracker_late_packet_fills_gap() -> None:
    s = SequenceTracker()
    for seq in [10, 12, 11]:
        s.add(seq)
    assert s.lost == 0


def test_rate_meter_windows() -> None:
    m = RateMeter(window=1.0)
    assert m.update(0.0, 0) == 0.0
    assert m.update(0.5, 1000) == 16000.0  # partial first window
    assert m.bitrate == 0.0
    assert m.update(2.0, 2500) == 2500 * 8 / 2.0


def aiortc_reference(packets: list[tuple[int, int, float]], clock_rate: int) -> tuple[int, int, int, int]:
    """What aiortc's own StreamStatistics reports (fraction lost, lost, highest seq, jitter) for `packets`."""
    import time as time_module
    from unittest import mock

    from aiortc.rtcrtpreceiver import StreamStatistics
    from aiortc.rtp import RtpPacket

    ref = StreamStatistics(clock_rate)
    for seq, ts, arrival in packets:
        with mock.patch.object(time_module, "time", return_value=arrival):
            ref.add(RtpPacket(sequence_number=seq, timestamp=ts))
    return ref.fraction_lost, ref.packets_lost, ref.max_seq, ref.jitter


def test_rtp_stream_stats_match_aiortc_report_figures() -> None:
    # 30 fps video, 10 ms of arrival jitter on every third frame, packets 3 and 7 lost, 9 arrives late
    packets = []
    for i in range(20):
        if i in (3, 7, 9):
            continue
        packets.append((1000 + i, i * 3000, i / 30 + (0.010 if i % 3 == 0 else 0.0)))
    packets.insert(12, (1009, 9 * 3000, 0.5))
    ours = RtpStreamStats(90000)
    for seq, ts, arrival in packets:
        ours.add(seq, ts, arrival)
    fraction, lost, highest, jitter = aiortc_reference(packets, 90000)
    assert (ours.packets_lost, ours.max_seq) == (lost, highest) == (2, 1019)
    assert ours.fraction_lost == fraction == (2 << 8) // 20
    assert ours.fraction_lost == 0  # reading starts a new interval
    assert ours.jitter == jitter and ours.jitter > 0


def test_rtp_stream_stats_extends_sequence_across_wrap() -> None:
    s = RtpStreamStats(48000)
    for n, seq in enumerate([65534, 65535, 1, 2]):  # 0 lost
        s.add(seq, n * 960, n * 0.02)
    assert s.max_seq == 65536 + 2
    assert s.packets_expected == 5 and s.packets_lost == 1
    assert s.jitter == 0  # perfectly paced


def test_nack_tracker_reports_gaps_and_forgets_recovered_and_old() -> None:
    n = NackTracker(window=128)
    assert not n.add(100)
    assert not n.add(101)
    assert n.add(104)  # 102, 103 missing
    assert n.missing == {102, 103}
    assert not n.add(103)  # retransmission recovered one
    assert n.missing == {102}
    assert not n.add(105)
    n2 = NackTracker(window=128)
    n2.add(65534)
    assert n2.add(1)  # across the wrap: 65535 and 0 missing
    assert n2.missing == {65535, 0}
    for seq in range(2, 140):
        n2.add(seq)
    assert n2.missing == set()  # older than the window: given up
    n3 = NackTracker(window=128)
    n3.add(10)
    assert not n3.add(5000)  # a jump larger than the window starts over instead of listing 4989 packets
    assert n3.missing == set()


def test_window_rate_gives_what_aiortc_rate_counter_gives() -> None:
    rng = random.Random(7)
    for _ in range(20):
        ours, theirs = WindowRate(1000, 8000), RateCounter(1000, 8000)
        now = rng.randrange(10**9)
        assert ours.rate(now) is None and theirs.rate(now) is None
        for _ in range(400):
            now += rng.choice((0, 0, 1, 3, 33, 200, 999, 1000, 1001, 2500))
            action = rng.random()
            if action < 0.6:
                value = rng.randrange(1, 1500)
                ours.add(value, now)
                theirs.add(value, now)
            elif action < 0.98:
                assert ours.rate(now) == theirs.rate(now), now
            else:
                ours.reset()
                theirs.reset()
        assert ours.rate(now) == theirs.rate(now)


def test_sliding_min_gives_what_aiortc_min_frame_period_gives() -> None:
    rng = random.Random(3)
    for _ in range(10):
        ours, theirs = SlidingMin(MIN_FRAME_PERIOD_HISTORY_LENGTH), OveruseEstimator()
        for _ in range(500):
            delta = rng.choice((33.0, 33.0, 34.0, 16.0, 100.0, rng.uniform(0, 200)))
            assert ours.push(delta) == theirs.update_min_frame_period(delta)



def paced(stats: RtpStreamStats, first_ts: int, late: float = 0.0) -> list[int]:
    """paced feeds 40 audio packets 20 ms apart (every 4th `late` seconds late); returns jitter after each."""
    out = []
    for i in range(40):
        stats.add((100 + i) & 0xFFFF, (first_ts + 960 * i) & 0xFFFFFFFF, 1000.0 + 0.02 * i + (late if i % 4 else 0))
        out.append(stats.jitter)
    return out


def test_rtp_stream_stats_jitter_is_unchanged_across_the_timestamp_wrap() -> None:
    below_wrap = 2**32 - 960 * 20  # the 21st packet's timestamp wraps to 0
    assert paced(RtpStreamStats(48000), below_wrap) == [0] * 40  # perfectly paced: no jitter, wrap or not
    steady, wrapping = paced(RtpStreamStats(48000), 5000, late=0.003), paced(RtpStreamStats(48000), below_wrap,
                                                                             late=0.003)
    assert wrapping == steady  # only differences of timestamps count
    assert 0 < max(steady) < 48000 * 0.003


def test_rtp_stream_stats_sequence_and_loss_across_many_wraps() -> None:
    rng = random.Random(5)
    s = RtpStreamStats(90000)
    first = ext = 65000
    s.add(first, 0, 0.0)
    received = 1
    for _ in range(10000):  # ~8 wraps: runs in order, gaps, and late packets (reordered, or recovered)
        step = rng.choice((1, 1, 1, 1, 2, 5, 400))
        ext += step
        seqs = [ext]
        if step > 1 and rng.random() < 0.5:
            seqs.append(ext - 1)  # a packet of the gap arrives late: counted, not lost
        for e in seqs:
            s.add(e & 0xFFFF, e * 10, e / 1000)
            received += 1
        expected = ext - first + 1
        assert (s.max_seq, s.packets_expected, s.packets_received) == (ext, expected, received)
        assert s.packets_lost == expected - received
        assert (s.cycles, s.max16) == (ext & ~0xFFFF, ext & 0xFFFF)
    assert ext > first + 6 * 65536 and 0 < s.packets_lost < 0x7FFFFF
    block = RtcpReceiverInfo(ssrc=1, fraction_lost=s.fraction_lost, packets_lost=s.packets_lost,
                             highest_sequence=s.max_seq, jitter=s.jitter, lsr=0, dlsr=0)
    assert RtcpReceiverInfo.parse(bytes(block)) == block


def test_rtp_stream_stats_extended_sequence_wraps_at_32_bits_and_loss_is_clamped() -> None:
    s = RtpStreamStats(90000)
    seq, n = 65533, 0
    s.add(seq, 0, 0.0)
    while s.cycles < 2**32 - 0x10000:  # 65535 wraps, three packets each: 2^32 sequence numbers, most lost
        seq = (seq + 0x5555) & 0xFFFF
        s.add(seq, 0, 0.0)
        n += 1
    assert s.max_seq == s.cycles + s.max16 > 2**32 - 0x10000
    assert s.packets_lost == 0x7FFFFF  # the 24-bit signed field's maximum
    below = s.max_seq
    for _ in range(3):  # across the 32-bit wrap of the extended highest sequence number
        seq = (seq + 0x5555) & 0xFFFF
        s.add(seq, 0, 0.0)
        block = RtcpReceiverInfo(ssrc=1, fraction_lost=s.fraction_lost, packets_lost=s.packets_lost,
                                 highest_sequence=s.max_seq, jitter=s.jitter, lsr=0, dlsr=0)
        assert RtcpReceiverInfo.parse(bytes(block)) == block  # packs: the field is 32 bits
    assert s.cycles == 2**32 and s.max_seq == s.max16 == (below + 3 * 0x5555) & 0xFFFFFFFF
    assert s.packets_received == n + 4 and s.packets_lost == 0x7FFFFF


def test_nack_tracker_across_the_sequence_wrap() -> None:
    n = NackTracker(window=128)
    n.add(65530)
    assert n.add(65533)  # 65531, 65532 missing
    assert n.add(2)  # the gap straddles the wrap: 65534, 65535, 0, 1
    assert n.missing == {65531, 65532, 65534, 65535, 0, 1}
    assert not n.add(65535) and not n.add(0)  # late packets (or retransmissions) remove theirs
    assert n.missing == {65531, 65532, 65534, 1}
    assert not n.add(65531) and n.max_seq == 2  # a late packet does not move the highest
    for seq in range(3, 125):  # in order: the old gaps stay while within the window
        assert not n.add(seq)
    assert n.missing == {65532, 65534, 1}
    assert not n.add(125) and n.missing == {65534, 1}  # 65532 is now more than 128 behind: given up
    assert not n.add(1) and n.missing == {65534}
    assert n.add(128)  # 126, 127 missing; 65534 leaves the window across the wrap
    assert n.missing == {126, 127}


def test_nack_tracker_wants_new_packets_and_gaps_only_across_the_wrap() -> None:
    n = NackTracker(window=128)
    assert n.wanted(65530, False) and n.wanted(65530, True)  # nothing known yet
    n.add(65530)
    n.add(65533)  # 65531, 65532 missing
    n.add(2)  # across the wrap: 65534, 65535, 0, 1 missing
    for seq in (65531, 65532, 65534, 65535, 0, 1):
        assert n.wanted(seq, True) and n.wanted(seq, False)
    for seq in (65530, 65533, 2):  # copies of packets here: never, however they come
        assert not n.wanted(seq, True) and not n.wanted(seq, False)
    assert n.wanted(3, False) and n.wanted(3, True)  # newer
    n.add(0)
    assert not n.wanted(0, True)  # a second answer to one NACK
    old = (2 - 500) & 0xFFFF  # beyond the window: a plain packet passes (a restart lower), padding does not
    assert n.wanted(old, False) and not n.wanted(old, True)
