from sfu.stats import RateMeter, SequenceTracker


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
