"""Tests of recorder/writer.py: rotating Matroska segments, timestamps, reading segments cut by a crash."""

from __future__ import annotations

import shutil
from pathlib import Path

from recorder.depacketize import Frame, FrameAssembler
from recorder.writer import SegmentWriter, read_packets, segment_paths
from tests.recorder.media import ffprobe, synthetic_rtp


def _write(directory: Path, seconds: float, close: bool = True) -> SegmentWriter:
    video, _ = synthetic_rtp(seconds)
    a, w = FrameAssembler("video/vp8"), SegmentWriter(directory, "program-video", "video/vp8", 0.0, 1.0)
    for arrival, seq, ts, marker, payload in video:
        for frame in a.push(seq, ts, marker, payload, arrival + 0.5):
            w.write(frame)
    if close:
        w.close()
    return w


def test_segments_rotate_and_keep_timestamps(tmp_path: Path) -> None:
    w = _write(tmp_path, 3.0)
    paths = segment_paths(tmp_path, "program-video")
    assert len(paths) == w.segments == 3
    packets = list(read_packets(paths))
    assert len(packets) == 90 and packets[0][1] is True
    assert abs(packets[0][0] / 90000 - 0.5) < 0.002  # the first frame sits at its arrival time
    assert abs(packets[-1][0] / 90000 - (0.5 + 89 / 30)) < 0.002
    info = ffprobe(paths[1])
    assert info["streams"][0]["codec_name"] == "vp8" and info["streams"][0]["width"] == 160


def test_an_open_segment_is_readable_as_if_the_server_was_killed(tmp_path: Path) -> None:
    w = _write(tmp_path / "live", 3.2, close=False)  # the last segment is still open
    shutil.copytree(tmp_path / "live", tmp_path / "killed")  # what a kill -9 leaves on disk
    w.close()
    packets = list(read_packets(segment_paths(tmp_path / "killed", "program-video")))
    assert len(packets) >= 90  # at most the open cluster (≤ 1 s) is missing


def test_audio_overlap_is_dropped_and_errors_stop_only_this_writer(tmp_path: Path) -> None:
    w = SegmentWriter(tmp_path, "presenter-audio", "audio/opus", 0.0, 1.0, anchor_seconds=0.0)
    w.write(Frame(0, b"\xfc\xff\xfe", True, 0.0))
    w.write(Frame(0, b"\xfc\xff\xfe", True, 0.0))
    assert w.frames == 1
    w.close()
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    bad = SegmentWriter(blocked, "floor-audio", "audio/opus", 0.0, 1.0, anchor_seconds=0.0)
    bad.write(Frame(0, b"\xfc\xff\xfe", True, 0.0))
    assert bad.failed and bad.frames == 0


def _late(arrival: float, busy: tuple[float, float]) -> float:
    """_late: when a loop blocked during `busy` (start, end) reads a packet that arrived at `arrival`."""
    return busy[1] if busy[0] <= arrival < busy[1] else arrival


def test_packets_read_late_by_a_busy_loop_neither_shift_nor_stretch_the_slot(tmp_path: Path) -> None:
    """The loop is blocked when the first frames arrive (read in one burst 0.6 s late) and again later."""
    video, audio = synthetic_rtp(3.0)
    for slot, mime, packets in (("program-video", "video/vp8", video), ("presenter-audio", "audio/opus", audio)):
        a, w = FrameAssembler(mime), SegmentWriter(tmp_path, slot, mime, 0.0, 1.0)
        for arrival, seq, ts, marker, payload in packets:
            read = _late(_late(arrival + 0.5, (0.5, 1.1)), (2.0, 2.7))
            for frame in a.push(seq, ts, marker, payload, read):
                w.write(frame)
        w.close()
        packets_out = list(read_packets(segment_paths(tmp_path, slot)))
        last = (89 / 30) if mime == "video/vp8" else (149 * 0.02)
        rate = 90000 if mime == "video/vp8" else 48000
        assert abs(packets_out[0][0] / rate - 0.5) < 0.002, slot  # where it was sent, not where it was read
        assert abs(packets_out[-1][0] / rate - (0.5 + last)) < 0.002, slot
        assert abs(w.duration - (0.5 + last)) < 0.002, slot


def test_frames_wait_for_the_anchor_then_follow_as_they_come(tmp_path: Path) -> None:
    video, _ = synthetic_rtp(3.0)
    a, w = FrameAssembler("video/vp8"), SegmentWriter(tmp_path, "program-video", "video/vp8", 0.0, 1.0)
    written: list[tuple[int, bool]] = []
    for arrival, seq, ts, marker, payload in video:
        for frame in a.push(seq, ts, marker, payload, arrival):
            w.write(frame)
            written.append((w.frames, w.anchored))
    assert written[59] == (0, False)  # the first 2 s of media are held
    assert written[60] == (61, True)  # then written at once, and every frame as it comes from then on
    assert written[-1] == (90, True)
    w.close()


def test_end_cuts_the_slot_and_says_when_media_after_it_came(tmp_path: Path) -> None:
    video, _ = synthetic_rtp(3.0)
    a, w = FrameAssembler("video/vp8"), SegmentWriter(tmp_path, "program-video", "video/vp8", 0.0, 1.0)
    w.end = 2 * 90000  # the recording stopped at 2 s, before its slot was even anchored
    seen_past = []
    for arrival, seq, ts, marker, payload in video:
        for frame in a.push(seq, ts, marker, payload, arrival):
            w.write(frame)
            seen_past.append(w.past_end)
    w.close()
    assert seen_past.index(True) == 61  # the first frame timed after 2 s
    packets = list(read_packets(segment_paths(tmp_path, "program-video")))
    assert len(packets) == 61 and packets[-1][0] == 2 * 90000
    assert w.duration == 2.0
