"""writer: one slot's frames remuxed (never decoded) into short Matroska segments that survive ``kill -9``.

Each slot of a recording gets a directory of numbered segments ``<slot>/00000.mkv, 00001.mkv, ...``; a new
segment starts every ``segment_seconds``; a recording continued after a pause numbers on from its earlier
segments (its timestamps go on after them, so the slot reads as one stream).
The muxer runs in Matroska's live mode with a cluster closed and
flushed to the file every second, so a killed server loses at most the last second of the open segment
(the file has no index or duration: ``read_packets`` reads it anyway, and the finalizer remuxes it).

A ``SegmentWriter`` is given each frame with its place on the recording's timeline (``recorder.timing``
decides it) and runs in the recording's writer thread (``recorder.disk``), never on the event loop.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from recorder.depacketize import vp8_size

log = logging.getLogger("taphuan.recorder")

CODEC_NAMES = {"video/vp8": "vp8", "video/h264": "h264", "audio/opus": "opus"}
VIDEO_RATE = 90000
AUDIO_RATE = 48000
# OpusHead (RFC 7845): version 1, 2 channels, pre-skip 0, 48 kHz, gain 0, mapping family 0.
OPUS_HEAD = b"OpusHead" + struct.pack("<BBHIhB", 1, 2, 0, AUDIO_RATE, 0, 0)
MUXER_OPTIONS = {"live": "1", "cluster_time_limit": "1000", "flush_packets": "1"}
SEGMENT_SUFFIX = ".mkv"


def open_segment(path: Path, mime: str, size: tuple[int, int] | None) -> tuple[Any, Any]:
    """open_segment opens a Matroska file for one stream of `mime`; returns (container, stream)."""
    container: Any = av.open(str(path), "w", format="matroska", options=dict(MUXER_OPTIONS))
    stream: Any = container.add_stream(CODEC_NAMES[mime])
    if mime.startswith("video/"):
        stream.time_base = Fraction(1, VIDEO_RATE)
        width, height = size or (640, 360)
        stream.codec_context.width = width
        stream.codec_context.height = height
    else:
        stream.time_base = Fraction(1, AUDIO_RATE)
        stream.codec_context.sample_rate = AUDIO_RATE
        stream.codec_context.layout = "stereo"
        stream.codec_context.extradata = OPUS_HEAD
    return container, stream


class SegmentWriter:
    """SegmentWriter writes one slot's frames into rotating segments; see the module doc.

    Errors (disk full) are logged once and stop this writer (``failed``): the live room is never disturbed.
    """

    def __init__(self, directory: Path, slot: str, mime: str, segment_seconds: float = 4.0) -> None:
        self.directory = directory / slot
        self.slot = slot
        self.mime = mime
        self.video = mime.startswith("video/")
        self.rate = VIDEO_RATE if self.video else AUDIO_RATE
        self.time_base = Fraction(1, self.rate)
        self.segment_ticks = max(1, round(segment_seconds * self.rate))
        self.failed: str | None = None
        self.error: Exception | None = None  # what stopped it (its owner may tell someone: recorder.disk)
        self.frames = 0
        self.bytes = 0
        self.segments = 0  # opened by this writer
        self._next: int | None = None  # the next segment's number (after those of an earlier take)
        self._container: Any = None
        self._stream: Any = None
        self._segment_start = 0
        self._size: tuple[int, int] | None = None

    def write(self, pts: int, keyframe: bool, data: bytes) -> None:
        """write muxes one frame at `pts` (ticks of the slot's rate), opening or rotating the segment as needed."""
        if self.failed is not None:
            return
        if self.video and keyframe and self.mime == "video/vp8":
            self._size = vp8_size(data)
        try:
            if self._container is None or pts - self._segment_start >= self.segment_ticks:
                self._rotate(pts)
            packet = av.Packet(data)
            packet.pts = packet.dts = pts
            packet.time_base = self.time_base  # the muxer rescales to Matroska's 1 ms
            packet.stream = self._stream
            packet.is_keyframe = keyframe
            self._container.mux(packet)
        except Exception as exc:  # disk full, closed file: stop this slot, keep the room going
            self.failed, self.error = str(exc), exc
            log.error("recording of %s in %s stopped: %s", self.slot, self.directory.parent, exc)
            self._close_quietly()
            return
        self.frames += 1
        self.bytes += len(data)

    def _rotate(self, pts: int) -> None:
        self.close()
        self.directory.mkdir(parents=True, exist_ok=True)
        if self._next is None:  # a continued recording keeps its earlier segments: number on from them
            self._next = 1 + max((int(p.stem) for p in self.directory.glob(f"*{SEGMENT_SUFFIX}") if p.stem.isdigit()),
                                 default=-1)
        path = self.directory / f"{self._next:05d}{SEGMENT_SUFFIX}"
        self._next += 1
        self._container, self._stream = open_segment(path, self.mime, self._size)
        self._segment_start = pts
        self.segments += 1

    def close(self) -> None:
        """close finishes the open segment (idempotent)."""
        container, self._container, self._stream = self._container, None, None
        if container is not None:
            try:
                container.close()
            except Exception as exc:
                log.warning("closing a segment of %s failed: %s", self.slot, exc)

    def _close_quietly(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def segment_paths(directory: Path, slot: str) -> list[Path]:
    """segment_paths lists one slot's segments in order (empty when the slot never carried media)."""
    folder = directory / slot
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix == SEGMENT_SUFFIX and p.stat().st_size > 0)


def read_packets(paths: list[Path]) -> Iterator[tuple[int, bool, bytes]]:
    """read_packets yields (pts in the slot's rate, keyframe, data) of every segment in order.

    A segment cut short by a crash is read up to its last complete cluster; an unreadable one is skipped.
    Timestamps never go backwards (a packet older than the previous one is skipped).
    """
    last: int | None = None
    for path in paths:
        try:
            container: Any = av.open(str(path), "r")
        except Exception as exc:
            log.warning("skipping unreadable segment %s: %s", path, exc)
            continue
        try:
            stream = container.streams[0]
            rate = VIDEO_RATE if stream.type == "video" else AUDIO_RATE
            num, den = stream.time_base.numerator * rate, stream.time_base.denominator
            try:
                for packet in container.demux(stream):
                    if packet.pts is None or packet.size == 0:
                        continue
                    pts = (packet.pts * num * 2 + den) // (den * 2)  # rounded, in integers (no Fraction)
                    if last is not None and pts <= last:
                        continue
                    last = pts
                    yield pts, bool(packet.is_keyframe), bytes(packet)
            except (av.error.InvalidDataError, av.error.EOFError, OSError) as exc:
                log.info("segment %s ends early (%s): recovered what was written", path, exc)
        finally:
            container.close()
