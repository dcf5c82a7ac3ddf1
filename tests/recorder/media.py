"""media: helpers of the recorder tests: ffprobe, decoding frames of a finished file, synthetic RTP."""

from __future__ import annotations

import json
import subprocess
import threading
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from aiortc.codecs.opus import OpusEncoder
from aiortc.codecs.vpx import Vp8Encoder

from recorder.writer import SegmentWriter

FFPROBE = "/usr/bin/ffprobe"


def ffprobe(path: Path) -> dict[str, Any]:
    """ffprobe: streams and format of a media file (raises if ffprobe cannot read it)."""
    out = subprocess.run([FFPROBE, "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
                         capture_output=True, text=True, timeout=60, check=True)
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def ffprobe_seek(path: Path, at: float) -> int:
    """ffprobe_seek: how many video frames ffprobe reads in the 1 s after seeking to `at` seconds."""
    out = subprocess.run([FFPROBE, "-v", "error", "-read_intervals", f"{at}%+1", "-select_streams", "v:0",
                          "-show_entries", "frame=pts_time", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, timeout=60, check=True)
    return len([line for line in out.stdout.splitlines() if line.strip()])


def frame_colors(path: Path) -> list[tuple[float, tuple[int, int, int]]]:
    """frame_colors: (time, mean Y/U/V) of every decoded video frame of a file."""
    out: list[tuple[float, tuple[int, int, int]]] = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            yuv = frame.reformat(format="yuv420p").to_ndarray()
            h = frame.height
            y = int(yuv[:h].mean())
            u = int(yuv[h:h + h // 4].mean())
            v = int(yuv[h + h // 4:].mean())
            out.append((float(frame.time or 0.0), (y, u, v)))
    return out


def synthetic_rtp(seconds: float, fps: int = 30) -> tuple[list[tuple[float, int, int, bool, bytes]],
                                                          list[tuple[float, int, int, bool, bytes]]]:
    """synthetic_rtp: (arrival, seq, ts, marker, payload) of VP8 video and Opus audio, real encoders."""
    venc, aenc = Vp8Encoder(), OpusEncoder()
    video: list[tuple[float, int, int, bool, bytes]] = []
    audio: list[tuple[float, int, int, bool, bytes]] = []
    seq = 0
    for i in range(int(seconds * fps)):
        frame = av.VideoFrame.from_ndarray(np.full((120, 160, 3), (i * 5) % 255, np.uint8), format="rgb24")
        frame.pts, frame.time_base = i * (90000 // fps), Fraction(1, 90000)
        payloads, ts = venc.encode(frame, force_keyframe=i == 0)
        for j, p in enumerate(payloads):
            video.append((i / fps, seq, ts, j == len(payloads) - 1, p))
            seq += 1
    for i in range(int(seconds * 50)):
        t = np.arange(i * 960, (i + 1) * 960) / 48000
        pcm = (np.sin(t * 2 * np.pi * 440) * 8000).astype(np.int16).repeat(2).reshape(1, -1)
        sound = av.AudioFrame.from_ndarray(pcm, format="s16", layout="stereo")
        sound.sample_rate, sound.pts, sound.time_base = 48000, i * 960, Fraction(1, 48000)
        payloads, ts = aenc.encode(sound)
        audio.append((i * 0.02, i, ts, False, payloads[0]))
    return video, audio


def record_slot(directory: Path, slot: str, mime: str, packets: list[tuple[float, int, int, bool, bytes]]) -> None:
    """record_slot: one slot's segments from (arrival, seq, ts, marker, payload), as the recorder writes them."""
    from recorder.depacketize import FrameAssembler
    from recorder.timing import SlotClock

    assembler, writer = FrameAssembler(mime), SegmentWriter(directory, slot, mime, 1.0)
    clock = SlotClock(mime.startswith("video/"), 0.0)
    for arrival, seq, ts, marker, payload in packets:
        for frame in assembler.push(seq, ts, marker, payload, arrival):
            for pts, placed in clock.place(frame):
                writer.write(pts, placed.keyframe, placed.data)
    for pts, placed in clock.release():
        writer.write(pts, placed.keyframe, placed.data)
    writer.close()


def recorded_directory(directory: Path, seconds: float = 3.0, floor_from: float | None = None) -> None:
    """recorded_directory: segments of a synthetic VP8 + Opus recording, as the recorder writes them."""
    from recorder.participant import write_meta

    directory.mkdir(parents=True, exist_ok=True)
    write_meta(directory, video_codec="VP8", video_mime="video/vp8", segment_seconds=1.0)
    video, audio = synthetic_rtp(seconds)
    slots = [("program-video", "video/vp8", video), ("presenter-video", "video/vp8", video),
             ("presenter-audio", "audio/opus", audio)]
    if floor_from is not None:
        slots.append(("floor-audio", "audio/opus", [p for p in audio if p[0] >= floor_from]))
    for slot, mime, packets in slots:
        record_slot(directory, slot, mime, packets)


class StallingDisk:
    """StallingDisk: a disk that stalls on demand: SegmentWriters made by `writer` wait in ``write`` while it
    is stalled, then write for real (a fake of the disk, not of the media path)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._budget: int | None = None  # writes allowed before it stalls again (None: no stall)
        self.waiting = 0  # writes waiting for the disk now

    def stall(self) -> None:
        with self._cond:
            self._budget = 0

    def resume(self) -> None:
        with self._cond:
            self._budget = None
            self._cond.notify_all()

    def allow(self, writes: int) -> None:
        """allow lets `writes` more writes through, then the disk stalls again."""
        with self._cond:
            self._budget = (self._budget or 0) + writes
            self._cond.notify_all()

    def wait_turn(self) -> None:
        with self._cond:
            self.waiting += 1
            while self._budget == 0:
                self._cond.wait()
            self.waiting -= 1
            if self._budget is not None:
                self._budget -= 1

    def writer(self, directory: Path, slot: str, mime: str, segment_seconds: float) -> SegmentWriter:
        return _StallingWriter(self, directory, slot, mime, segment_seconds)


class _StallingWriter(SegmentWriter):
    def __init__(self, disk: StallingDisk, directory: Path, slot: str, mime: str, segment_seconds: float) -> None:
        super().__init__(directory, slot, mime, segment_seconds)
        self.disk = disk

    def write(self, pts: int, keyframe: bool, data: bytes) -> None:
        self.disk.wait_turn()
        super().write(pts, keyframe, data)
