"""Tests of recorder/archive.py: the lecture file (remuxed video + mixed audio), originals, chapters, errors."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from recorder.archive import FinalizeError, finalize, mix, read_result
from recorder.participant import write_meta
from tests.recorder.media import ffprobe, ffprobe_seek, recorded_directory


def test_lecture_file_originals_and_chapters(tmp_path: Path) -> None:
    recorded_directory(tmp_path, 4.0, floor_from=2.0)
    steps: list[float] = []
    result = finalize(tmp_path, steps.append)
    assert steps[0] == 0.0 and steps[-1] == 1.0 and steps == sorted(steps)
    info = ffprobe(tmp_path / result.file)
    assert result.file == "lecture.webm" and result.mime == "video/webm"
    assert sorted(s["codec_name"] for s in info["streams"]) == ["opus", "vp8"]
    assert abs(float(info["format"]["duration"]) - 4.0) < 0.08
    assert ffprobe_seek(tmp_path / result.file, 2.0) > 0
    assert set(result.originals) == {"presenter-video", "presenter-audio", "floor-audio"}
    for rel in result.originals.values():
        assert ffprobe(tmp_path / rel)["streams"]
    assert (tmp_path / "chapters.vtt").read_text().startswith("WEBVTT")
    assert read_result(tmp_path) == result
    assert not (tmp_path / "program-video").exists()  # segments go once the originals are written
    # presenter and floor play the same tone in phase from 2 s: the mix is louder there
    with av.open(str(tmp_path / result.file)) as c:
        pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
    alone, both = np.abs(pcm[24000:72000]).mean(), np.abs(pcm[120000:168000]).mean()
    assert both > 1.6 * alone


def test_mix_sums_sources_on_one_timeline() -> None:
    a = iter([(0, np.full(4, 0.25, np.float32)), (8, np.full(4, 0.25, np.float32))])
    b = iter([(2, np.full(4, 0.5, np.float32))])
    out = np.concatenate([block for _, block in mix([a, b], block=5)])
    assert out.tolist() == [0.25, 0.25, 0.75, 0.75, 0.5, 0.5, 0, 0, 0.25, 0.25, 0.25, 0.25]


def test_nothing_recorded_is_an_error(tmp_path: Path) -> None:
    write_meta(tmp_path, video_mime="video/vp8")
    with pytest.raises(FinalizeError):
        finalize(tmp_path)


def test_h264_rooms_get_an_mp4_with_aac(tmp_path: Path) -> None:
    from fractions import Fraction

    from aiortc.codecs.h264 import H264Encoder

    from tests.recorder.media import record_slot, synthetic_rtp

    write_meta(tmp_path, video_mime="video/h264", segment_seconds=1.0)
    encoder = H264Encoder()
    video: list[tuple[float, int, int, bool, bytes]] = []
    for i in range(60):
        frame = av.VideoFrame.from_ndarray(np.full((240, 320, 3), i * 4, np.uint8), format="rgb24")
        frame.pts, frame.time_base = i * 3000, Fraction(1, 90000)
        payloads, ts = encoder.encode(frame, force_keyframe=i == 0)
        video += [(i / 30, len(video) + j, ts, j == len(payloads) - 1, p) for j, p in enumerate(payloads)]
    record_slot(tmp_path, "program-video", "video/h264", video)
    record_slot(tmp_path, "presenter-audio", "audio/opus", synthetic_rtp(2.0)[1])
    result = finalize(tmp_path)
    assert result.file == "lecture.mp4" and result.mime == "video/mp4"
    info = ffprobe(tmp_path / result.file)
    assert sorted(s["codec_name"] for s in info["streams"]) == ["aac", "h264"]
    assert abs(float(info["format"]["duration"]) - 2.0) < 0.1
