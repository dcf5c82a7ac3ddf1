"""Tests of sfu/rewriter.py: one continuous output stream across source switches and sequence wraps."""

from sfu.rewriter import HeaderRewriter
from tests.sfu.fakes import Clock


def test_rewriter_continuity_across_switch() -> None:
    clock = Clock()
    rw = HeaderRewriter(90000, 3000, first_seq=100, first_ts=1000, clock=clock)
    assert rw.map(1, 5000, 90000) == (100, 1000)
    assert rw.map(1, 5001, 93000) == (101, 4000)
    clock.now = 0.010
    rw.switch()
    # new source with unrelated numbering: seq continues +1, ts by max(one frame, elapsed)
    assert rw.map(2, 60000, 123) == (102, 7000)
    assert rw.map(2, 60001, 3123) == (103, 10000)
    assert rw.map(2, 59999, 0) is None  # older than the switch point: dropped, never repeats a seq
    clock.now = 2.010
    rw.switch()
    assert rw.map(3, 7, 7) == (104, 10000 + 180000)  # wall-clock elapsed (2 s) > one frame


def test_rewriter_wraps_and_new_ssrc_rebases() -> None:
    rw = HeaderRewriter(48000, 960, first_seq=0xFFFF, first_ts=0xFFFFFF00, clock=Clock())
    assert rw.map(1, 10, 0) == (0xFFFF, 0xFFFFFF00)
    assert rw.map(1, 11, 960) == (0, (0xFFFFFF00 + 960) & 0xFFFFFFFF)
    assert rw.map(9, 500, 0) == (1, (0xFFFFFF00 + 960 + 960) & 0xFFFFFFFF)  # SSRC change = switch
