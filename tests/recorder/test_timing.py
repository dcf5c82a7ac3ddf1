"""Tests of recorder/timing.py: each slot anchored once to the recording's clock, late reads, the stop's cut."""

from __future__ import annotations

from recorder.depacketize import Frame, FrameAssembler
from recorder.timing import SlotClock
from tests.recorder.media import synthetic_rtp


def _late(arrival: float, busy: tuple[float, float]) -> float:
    """_late: when a loop blocked during `busy` (start, end) reads a packet that arrived at `arrival`."""
    return busy[1] if busy[0] <= arrival < busy[1] else arrival


def test_packets_read_late_by_a_busy_loop_neither_shift_nor_stretch_the_slot() -> None:
    """The loop is blocked when the first frames arrive (read in one burst 0.6 s late) and again later."""
    video, audio = synthetic_rtp(3.0)
    for mime, packets in (("video/vp8", video), ("audio/opus", audio)):
        a, clock = FrameAssembler(mime), SlotClock(mime.startswith("video/"), 0.0)
        placed: list[int] = []
        for arrival, seq, ts, marker, payload in packets:
            read = _late(_late(arrival + 0.5, (0.5, 1.1)), (2.0, 2.7))
            for frame in a.push(seq, ts, marker, payload, read):
                placed += [pts for pts, _ in clock.place(frame)]
        placed += [pts for pts, _ in clock.release()]
        last = (89 / 30) if mime == "video/vp8" else (149 * 0.02)
        assert len(placed) == (len(packets) if mime == "audio/opus" else 90), mime
        assert abs(placed[0] / clock.rate - 0.5) < 0.002, mime  # where it was sent, not where it was read
        assert abs(placed[-1] / clock.rate - (0.5 + last)) < 0.002, mime
        assert abs(clock.duration - (0.5 + last)) < 0.002, mime


def test_frames_wait_for_the_anchor_then_follow_as_they_come() -> None:
    video, _ = synthetic_rtp(3.0)
    a, clock = FrameAssembler("video/vp8"), SlotClock(True, 0.0)
    placed: list[tuple[int, bool]] = []
    count = 0
    for arrival, seq, ts, marker, payload in video:
        for frame in a.push(seq, ts, marker, payload, arrival):
            count += len(clock.place(frame))
            placed.append((count, clock.anchored))
    assert placed[59] == (0, False)  # the first 2 s of media are held
    assert placed[60] == (61, True)  # then placed at once, and every frame as it comes from then on
    assert placed[-1] == (90, True)


def test_end_cuts_the_slot_and_says_when_media_after_it_came() -> None:
    video, _ = synthetic_rtp(3.0)
    a, clock = FrameAssembler("video/vp8"), SlotClock(True, 0.0)
    clock.end = 2 * 90000  # the recording stopped at 2 s, before its slot was even anchored
    seen_past = []
    placed: list[int] = []
    for arrival, seq, ts, marker, payload in video:
        for frame in a.push(seq, ts, marker, payload, arrival):
            placed += [pts for pts, _ in clock.place(frame)]
            seen_past.append(clock.past_end)
    assert seen_past.index(True) == 61  # the first frame timed after 2 s
    assert len(placed) == 61 and placed[-1] == 2 * 90000
    assert clock.duration == 2.0


def test_overlapping_audio_is_dropped_and_video_kept_in_order() -> None:
    audio = SlotClock(False, 0.0, anchor_seconds=0.0)
    assert [pts for pts, _ in audio.place(Frame(0, b"a", True, 0.0))] == [0]
    assert audio.place(Frame(0, b"a", True, 0.0)) == []
    video = SlotClock(True, 0.0, anchor_seconds=0.0)
    assert [pts for pts, _ in video.place(Frame(3000, b"v", True, 0.0))] == [0]
    assert [pts for pts, _ in video.place(Frame(3000, b"v", False, 0.0))] == [1]  # never two at one pts
