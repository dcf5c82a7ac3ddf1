"""Tests of recorder/broadcast.py: the worker process fed through its standard input as the server feeds it: VP8
and H.264 programs, a program without pictures for a while (the clock ticks on: black, then the last picture
repeated), ENDLIST at END, and what it reports on stdout."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from recorder.broadcast import END, FLOOR_AUDIO, PRESENTER_AUDIO, RECORD, TICK, VIDEO, Header, Worker
from recorder.hls import read_segments
from tests.recorder.hlsmedia import centre_colours, jumps, near, packet_times, picture

RED = (76, 84, 255)
SMALL = [{"name": "240p", "width": 320, "height": 240, "video_kbps": 300},
         {"name": "120p", "width": 160, "height": 120, "video_kbps": 100}]


def _records(codec: str, seconds: float, hole: tuple[float, float]) -> bytes:
    """_records: the worker's input for `seconds` of a 30 fps red camera (none during `hole`) and Opus sound, with
    the recording's clock 0.1 s after each frame's time, ticks every 0.25 s, then END."""
    venc = av.CodecContext.create(codec, "w")
    venc.width, venc.height, venc.pix_fmt = 320, 240, "yuv420p"
    venc.time_base = Fraction(1, 90000)
    venc.options = {"deadline": "realtime", "cpu-used": "8"} if codec == "libvpx" else \
        {"preset": "ultrafast", "tune": "zerolatency"}
    aenc = av.CodecContext.create("libopus", "w")
    aenc.sample_rate, aenc.layout, aenc.format, aenc.time_base = 48000, "stereo", "s16", Fraction(1, 48000)
    items: list[tuple[float, int, bool, int, bytes]] = []
    for i in range(int(seconds * 30)):
        t = i / 30
        if hole[0] <= t < hole[1]:
            continue
        frame = picture(RED)
        frame.pts = i * 3000
        items += [(t + 0.1, VIDEO, bool(p.is_keyframe), i * 3000, bytes(p)) for p in venc.encode(frame)]
    for i in range(int(seconds * 50)):
        pcm = (np.sin(np.arange(i * 960, (i + 1) * 960) / 48000 * 2 * np.pi * 440) * 8000).astype(np.int16)
        sound = av.AudioFrame.from_ndarray(pcm.repeat(2).reshape(1, -1), format="s16", layout="stereo")
        sound.sample_rate, sound.pts = 48000, i * 960
        items += [(i * 0.02 + 0.1, PRESENTER_AUDIO, True, i * 960, bytes(p)) for p in aenc.encode(sound)]
    items += [(k * 0.25, TICK, False, 0, b"") for k in range(int(seconds * 4) + 1)]
    items.sort(key=lambda item: item[0])
    out = b"".join(RECORD.pack(kind, key, pts, elapsed, len(data)) + data for elapsed, kind, key, pts, data in items)
    return out + RECORD.pack(END, 0, 0, seconds, 0)


def _vp8_keyframe() -> bytes:
    venc = av.CodecContext.create("libvpx", "w")
    venc.width, venc.height, venc.pix_fmt, venc.time_base = 160, 120, "yuv420p", Fraction(1, 90000)
    frame = picture(RED, (160, 120))
    frame.pts = 0
    return b"".join(bytes(p) for p in [*venc.encode(frame), *venc.encode(None)])


def _run(directory: Path, mime: str, codec: str) -> list[dict[str, object]]:
    header = Header(directory=str(directory), video_mime=mime, renditions=SMALL, fps=15, segment_seconds=1.0,
                    preset="ultrafast", wall0=1.7e9)
    stdin = json.dumps(asdict(header)).encode() + b"\n" + _records(codec, 5.0, (2.0, 3.5))
    done = subprocess.run([sys.executable, "-m", "recorder.broadcast", "--nice", "0"], input=stdin,
                          capture_output=True, timeout=120, check=True)
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_vp8_program_with_a_picture_gap_is_continuous_and_ends(tmp_path: Path) -> None:
    lines = _run(tmp_path, "video/vp8", "libvpx")
    assert lines[0] == {"master": True} and lines[-1] == {"ended": True}
    segments = read_segments(tmp_path / "hls" / "240p")
    assert [line["segment"] for line in lines if "segment" in line] == [s.n for s in segments]
    assert abs(sum(s.duration for s in segments) - 5.0) < 0.2
    index = tmp_path / "hls" / "240p" / "index.m3u8"
    assert index.read_text().rstrip().endswith("#EXT-X-ENDLIST")
    assert "#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z" in index.read_text()
    times = [t for t, _k in packet_times(index, "v:0")]
    assert jumps(times, 1 / 15) == [] and times[0] == 0.0 and times[-1] > 4.8
    audio = [t for t, _k in packet_times(index, "a:0")]
    assert jumps(audio, 1024 / 48000) == []
    colours = centre_colours(index)
    assert all(near(c, RED) for t, c in colours if 0.2 < t)  # the last picture repeats through the gap


def test_h264_program_is_decoded_too(tmp_path: Path) -> None:
    lines = _run(tmp_path, "video/h264", "libx264")
    assert lines[-1] == {"ended": True}
    index = tmp_path / "hls" / "120p" / "index.m3u8"
    times = [t for t, _k in packet_times(index, "v:0")]
    assert jumps(times, 1 / 15) == [] and times[-1] > 4.8
    assert all(near(c, RED) for t, c in centre_colours(index) if 0.2 < t)


def test_the_first_words_of_a_slot_the_recorder_held_back_are_not_cut(tmp_path: Path) -> None:
    """The recorder releases a new slot's first 2 s at once (its anchor): the floor holder's first second of speech
    reaches the worker after the output passed it. It plays late, then the pause after it brings it back in step."""
    header = Header(directory=str(tmp_path), renditions=SMALL[1:], fps=15, segment_seconds=1.0, preset="ultrafast")
    worker = Worker(header)
    worker.handle(VIDEO, True, 0, 0.0, _vp8_keyframe())
    aenc = av.CodecContext.create("libopus", "w")
    aenc.sample_rate, aenc.layout, aenc.format, aenc.time_base = 48000, "stereo", "s16", Fraction(1, 48000)
    floor: list[tuple[int, bytes]] = []
    for i in range(110):  # 1 s of a tone from 1.0 s, then 1.2 s of silence
        loud = i < 50
        pcm = (np.sin(np.arange(i * 960, (i + 1) * 960) / 48000 * 2 * np.pi * 440) * (8000 if loud else 0))
        sound = av.AudioFrame.from_ndarray(pcm.astype(np.int16).repeat(2).reshape(1, -1), format="s16",
                                           layout="stereo")
        sound.sample_rate, sound.pts = 48000, i * 960
        floor += [(48000 + i * 960, bytes(p)) for p in aenc.encode(sound)]
    for k in range(1, 11):
        worker.handle(TICK, False, 0, k * 0.25, b"")  # the output reaches 2.0 s
    for pts, data in floor:  # all at once, at 2.5 s: the recorder's anchor released them
        worker.handle(FLOOR_AUDIO, True, pts, 2.5, data)
    for k in range(11, 21):
        worker.handle(TICK, False, 0, k * 0.25, b"")
    assert worker.lags[FLOOR_AUDIO].samples == 0  # back in step after the silence
    worker.finish(True)
    loud = []
    with av.open(str(tmp_path / "hls" / "120p" / "index.m3u8")) as container:
        for frame in container.decode(audio=0):
            pcm = frame.to_ndarray().astype(np.float32)
            if float(np.sqrt(np.mean(pcm * pcm))) > 0.05:
                loud.append(float(frame.time or 0.0))
    assert loud and loud[0] > 1.9  # it starts where the output was...
    assert 0.9 <= len(loud) * 1024 / 48000 <= 1.1  # ...and the whole second of it is there
