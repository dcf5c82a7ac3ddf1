"""Tests of recorder/writer.py: rotating Matroska segments, timestamps, reading segments cut by a crash."""

from __future__ import annotations

import shutil
from pathlib import Path

from recorder.depacketize import FrameAssembler
from recorder.writer import SegmentWriter, read_packets, segment_paths
from tests.recorder.media import ffprobe, synthetic_rtp


def _write(directory: Path, seconds: float, close: bool = True) -> SegmentWriter:
    video, _ = synthetic_rtp(seconds)
    a, w = FrameAssembler("video/vp8"), SegmentWriter(directory, "program-video", "video/vp8", 1.0)
    for arrival, seq, ts, marker, payload in video:
        for frame in a.push(seq, ts, marker, payload, arrival):
            w.write(45000 + frame.ts, frame.keyframe, frame.data)
    if close:
        w.close()
    return w


def test_segments_rotate_and_keep_timestamps(tmp_path: Path) -> None:
    w = _write(tmp_path, 3.0)
    paths = segment_paths(tmp_path, "program-video")
    assert len(paths) == w.segments == 3
    packets = list(read_packets(paths))
    assert len(packets) == 90 and packets[0][1] is True
    assert abs(packets[0][0] / 90000 - 0.5) < 0.002  # the pts it was given
    assert abs(packets[-1][0] / 90000 - (0.5 + 89 / 30)) < 0.002
    info = ffprobe(paths[1])
    assert info["streams"][0]["codec_name"] == "vp8" and info["streams"][0]["width"] == 160


def test_an_open_segment_is_readable_as_if_the_server_was_killed(tmp_path: Path) -> None:
    w = _write(tmp_path / "live", 3.2, close=False)  # the last segment is still open
    shutil.copytree(tmp_path / "live", tmp_path / "killed")  # what a kill -9 leaves on disk
    w.close()
    packets = list(read_packets(segment_paths(tmp_path / "killed", "program-video")))
    assert len(packets) >= 90  # at most the open cluster (≤ 1 s) is missing


def test_errors_stop_only_this_writer(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    bad = SegmentWriter(blocked, "floor-audio", "audio/opus", 1.0)
    bad.write(0, True, b"\xfc\xff\xfe")
    assert bad.failed and bad.frames == 0
    bad.write(960, True, b"\xfc\xff\xfe")
    assert bad.frames == 0
    good = SegmentWriter(tmp_path, "presenter-audio", "audio/opus", 1.0)
    good.write(0, True, b"\xfc\xff\xfe")
    good.close()
    assert good.failed is None and good.frames == 1
