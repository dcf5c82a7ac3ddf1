"""archive: turn a recording's segments into the downloadable lecture file, the originals and the chapters.

``finalize(directory, progress)`` runs in the worker process (``recorder.worker``), never in the server's
event loop. It works the same on a cleanly stopped recording and on one left by a killed server
(``recover``): segments are read up to their last complete cluster.

1. ``program-video``: remuxed packet by packet (no decoding): the room already switched sources at
   keyframes while the meeting ran.
2. ``presenter-audio`` + ``floor-audio``: decoded (Opus), mixed with numpy into one mono track and
   encoded once (Opus for WebM, AAC for MP4).
3. Both are interleaved by time into ``lecture.webm`` (VP8 rooms) or ``lecture.mp4`` (H.264 rooms).
4. Every slot's segments are remuxed into one original file each (``originals/<slot>.webm|mkv``), then the
   segments are removed (kept with ``keep_segments`` while the meeting may still continue the recording: a
   continuation appends segments and the whole recording is finalized again); ``chapters.vtt`` and
   ``result.json`` are written last.
"""

from __future__ import annotations

import heapq
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from recorder.depacketize import vp8_size
from recorder.participant import read_meta
from recorder.timeline import chapters, load, webvtt
from recorder.writer import AUDIO_RATE, VIDEO_RATE, read_packets, segment_paths

log = logging.getLogger("taphuan.recorder")

AUDIO_SLOTS = ("presenter-audio", "floor-audio")
ORIGINAL_SLOTS = ("presenter-video", "screen", "floor-video", "presenter-audio", "floor-audio")
RESULT_FILE = "result.json"
CHAPTERS_FILE = "chapters.vtt"
MIX_BLOCK = AUDIO_RATE  # samples per mixing block (1 s)
Progress = Callable[[float], None]


@dataclass
class FinalResult:
    """FinalResult is what finalize produced (also saved as result.json)."""

    file: str  # the lecture file, relative to the recording's directory
    mime: str
    duration: float
    size: int
    originals: dict[str, str] = field(default_factory=dict)
    chapters: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0  # how long finalizing took


class FinalizeError(Exception):
    """FinalizeError: nothing usable was recorded (or the files are unreadable)."""


def _lecture_name(video_mime: str) -> tuple[str, str, str]:
    if video_mime == "video/h264":
        return "lecture.mp4", "mp4", "video/mp4"
    return "lecture.webm", "webm", "video/webm"


# ------------------------------------------------------------------------------------- audio mix


def to_mono(frame: Any) -> np.ndarray:
    """to_mono is a decoded audio frame as mono float32 samples in [-1, 1]."""
    pcm = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if frame.format.is_planar:
        mono = pcm.mean(axis=0) if channels > 1 else pcm[0]
    else:
        mono = pcm.reshape(-1, channels).mean(axis=1) if channels > 1 else pcm.reshape(-1)
    if mono.dtype != np.float32:
        mono = mono.astype(np.float32) / (32768.0 if pcm.dtype == np.int16 else 1.0)
    return mono


def decoded(paths: list[Path]) -> Iterator[tuple[int, np.ndarray]]:
    """decoded yields (start sample, mono float32 samples) of every Opus packet of a slot, in order."""
    if not paths:
        return
    first: Any = av.open(str(paths[0]))
    try:
        decoder: Any = av.CodecContext.create("libopus", "r")
        decoder.extradata = first.streams[0].codec_context.extradata
        decoder.sample_rate = AUDIO_RATE
        decoder.layout = "stereo"
    finally:
        first.close()
    for pts, _key, data in read_packets(paths):
        try:
            frames = decoder.decode(av.Packet(data))
        except av.error.FFmpegError:
            continue
        offset = pts
        for frame in frames:
            yield offset, to_mono(frame)
            offset += frame.samples


def mix(sources: list[Iterator[tuple[int, np.ndarray]]], block: int = MIX_BLOCK) -> Iterator[tuple[int, np.ndarray]]:
    """mix sums the sources on one sample timeline; yields (start sample, float32 block) until all end.

    Silence where no source has sound; the sum is soft-limited to [-1, 1].
    """
    pending: list[tuple[int, np.ndarray] | None] = [next(it, None) for it in sources]
    start = 0
    last_end = 0
    while any(p is not None for p in pending):
        end = start + block
        out = np.zeros(block, dtype=np.float32)
        for i, it in enumerate(sources):
            while (p := pending[i]) is not None and p[0] < end:
                s, data = p
                last_end = max(last_end, s + len(data))
                a, b = max(s, start), min(s + len(data), end)
                if b > a:
                    out[a - start:b - start] += data[a - s:b - s]
                if s + len(data) > end:
                    break
                pending[i] = next(it, None)
        np.clip(out, -1.0, 1.0, out=out)
        if all(p is None for p in pending):
            out = out[:max(0, last_end - start)]  # the sources' end, not the block's
        yield start, out
        start = end


def encoded_audio(blocks: Iterator[tuple[int, np.ndarray]], stream: Any) -> Iterator[tuple[float, Any]]:
    """encoded_audio encodes mixed blocks with `stream`'s encoder; yields (seconds, packet)."""
    ctx = stream.codec_context
    size = ctx.frame_size or 960
    rest = np.zeros(0, dtype=np.float32)
    pts = 0
    for _start, block in blocks:
        rest = np.concatenate((rest, block)) if len(rest) else block
        n = len(rest) // size * size
        for i in range(0, n, size):
            frame = av.AudioFrame.from_ndarray(rest[i:i + size].reshape(1, -1), format="flt", layout="mono")
            frame.sample_rate = AUDIO_RATE
            frame.pts = pts
            frame.time_base = Fraction(1, AUDIO_RATE)
            pts += size
            for packet in stream.encode(frame):
                yield float(packet.pts * packet.time_base) if packet.pts is not None else 0.0, packet
        rest = rest[n:]
    for packet in stream.encode(None):
        yield float(packet.pts * packet.time_base) if packet.pts is not None else 0.0, packet


# ----------------------------------------------------------------------------------------- muxing


def _template(paths: list[Path]) -> Any:
    """_template opens the first readable segment (its stream is the template for remuxing)."""
    for path in paths:
        try:
            return av.open(str(path))
        except av.error.FFmpegError:
            continue
    return None


def remux(paths: list[Path], target: Path, fmt: str) -> float:
    """remux copies one slot's segments into a single file; returns its duration (seconds)."""
    template = _template(paths)
    if template is None:
        return 0.0
    out: Any = av.open(str(target), "w", format=fmt)
    try:
        stream = out.add_stream_from_template(template.streams[0])
        rate = VIDEO_RATE if stream.type == "video" else AUDIO_RATE
        tb = Fraction(1, rate)
        last = 0
        for pts, key, data in read_packets(paths):
            packet = av.Packet(data)
            packet.pts = packet.dts = pts
            packet.time_base = tb
            packet.is_keyframe = key
            packet.stream = stream
            out.mux(packet)
            last = pts
    finally:
        template.close()
        out.close()
    return last / rate


def _video_packets(paths: list[Path], stream: Any) -> Iterator[tuple[float, Any]]:
    tb = Fraction(1, VIDEO_RATE)
    for pts, key, data in read_packets(paths):
        packet = av.Packet(data)
        packet.pts = packet.dts = pts
        packet.time_base = tb
        packet.is_keyframe = key
        packet.stream = stream
        yield pts / VIDEO_RATE, packet


def _first_keyframe_size(paths: list[Path]) -> tuple[int, int] | None:
    for _pts, key, data in read_packets(paths[:2]):
        if key:
            return vp8_size(data)
    return None


def build_lecture(directory: Path, video_mime: str, progress: Progress, estimate: float) -> tuple[str, str, float]:
    """build_lecture writes the lecture file (program video + mixed audio); returns (name, mime, duration)."""
    name, fmt, mime = _lecture_name(video_mime)
    video_paths = segment_paths(directory, "program-video")
    audio_sources = [decoded(segment_paths(directory, slot)) for slot in AUDIO_SLOTS
                     if segment_paths(directory, slot)]
    if not video_paths and not audio_sources:
        raise FinalizeError("nothing was recorded")
    target = directory / (name + ".part")
    out: Any = av.open(str(target), "w", format=fmt)
    template = _template(video_paths) if video_paths else None
    streams: list[Iterator[tuple[float, Any]]] = []
    try:
        if template is not None:
            vstream = out.add_stream_from_template(template.streams[0])
            if video_mime == "video/vp8":
                size = _first_keyframe_size(video_paths)
                if size:
                    vstream.codec_context.width, vstream.codec_context.height = size
            streams.append(_video_packets(video_paths, vstream))
        if audio_sources:
            if fmt == "mp4":
                astream = out.add_stream("aac", rate=AUDIO_RATE, layout="mono")
                astream.bit_rate = 96000
            else:
                astream = out.add_stream("libopus", rate=AUDIO_RATE, layout="mono")
                astream.bit_rate = 48000
                astream.codec_context.options = {"compression_level": "5", "application": "audio"}
            astream.codec_context.format = "fltp" if fmt == "mp4" else "flt"
            streams.append(encoded_audio(mix(audio_sources), astream))
        duration = 0.0
        next_report = 0.0
        for seconds, packet in heapq.merge(*streams, key=lambda item: item[0]):
            out.mux(packet)
            duration = max(duration, seconds)
            if seconds >= next_report:
                progress(min(0.8, 0.8 * seconds / max(estimate, 1.0)))
                next_report = seconds + 10.0
    finally:
        if template is not None:
            template.close()
        out.close()
    final = directory / name
    target.replace(final)
    return name, mime, duration


def _estimate(directory: Path) -> float:
    meta = read_meta(directory)
    if isinstance(meta.get("duration"), (int, float)) and meta["duration"] > 0:
        return float(meta["duration"])
    seconds = float(meta.get("segment_seconds", 4.0))
    return max((len(segment_paths(directory, s)) * seconds for s in ("program-video", *AUDIO_SLOTS)), default=0.0)


def finalize(directory: Path, progress: Progress | None = None, keep_segments: bool = False,
             on_lecture: Callable[[FinalResult], None] | None = None) -> FinalResult:
    """finalize builds the lecture file and the chapters, then the originals; see the module doc.

    `on_lecture(result)` is called (and result.json written) as soon as the lecture file and its chapters
    are done, before the originals: the recording can be watched while they are written.
    """
    began = time.monotonic()
    report = progress or (lambda _f: None)
    meta = read_meta(directory)
    video_mime = str(meta.get("video_mime", "video/vp8"))
    report(0.0)
    name, mime, duration = build_lecture(directory, video_mime, lambda f: report(min(0.99, f / 0.8)),
                                         _estimate(directory))
    items = chapters(load(directory), duration)
    (directory / CHAPTERS_FILE).write_text(webvtt(items), encoding="utf-8")
    result = FinalResult(file=name, mime=mime, duration=round(duration, 3), size=(directory / name).stat().st_size,
                         chapters=[asdict(c) for c in items], seconds=round(time.monotonic() - began, 2))
    _save(directory, result)
    report(1.0)
    if on_lecture is not None:
        on_lecture(result)
    (directory / "originals").mkdir(exist_ok=True)
    for slot in ORIGINAL_SLOTS:
        paths = segment_paths(directory, slot)
        if paths:
            fmt, ext = ("webm", "webm") if video_mime == "video/vp8" or slot.endswith("audio") else ("matroska", "mkv")
            rel = f"originals/{slot}.{ext}"
            remux(paths, directory / rel, fmt)
            result.originals[slot] = rel
    _save(directory, result)
    if not keep_segments:
        remove_segments(directory)
    return result


def remove_segments(directory: Path) -> None:
    """remove_segments deletes a finalized recording's segments (its lecture file and originals stay)."""
    for slot in ("program-video", *ORIGINAL_SLOTS):
        shutil.rmtree(directory / slot, ignore_errors=True)


def has_segments(directory: Path) -> bool:
    """has_segments tells whether any slot of the recording still has its segment directory."""
    return any((directory / slot).is_dir() for slot in ("program-video", *ORIGINAL_SLOTS))


def _save(directory: Path, result: FinalResult) -> None:
    tmp = directory / (RESULT_FILE + ".tmp")
    tmp.write_text(json.dumps(asdict(result), ensure_ascii=False, indent=1), encoding="utf-8")
    tmp.replace(directory / RESULT_FILE)


def read_result(directory: Path) -> FinalResult | None:
    """read_result loads result.json of a finalized recording (None when absent)."""
    try:
        raw = json.loads((directory / RESULT_FILE).read_text(encoding="utf-8"))
        return FinalResult(**raw)
    except (OSError, ValueError, TypeError):
        return None


def free_bytes(path: Path) -> int:
    """free_bytes is the space available to us on the file system holding `path`."""
    return shutil.disk_usage(path).free


def directory_size(path: Path) -> int:
    """directory_size is the total size of the files under `path`."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
