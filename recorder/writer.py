"""writer: one slot's frames remuxed (never decoded) into short Matroska segments that survive ``kill -9``.

Each slot of a recording gets a directory of numbered segments ``<slot>/00000.mkv, 00001.mkv, ...``; a new
segment starts every ``segment_seconds``. The muxer runs in Matroska's live mode with a cluster closed and
flushed to the file every second, so a killed server loses at most the last second of the open segment
(the file has no index or duration: ``read_packets`` reads it anyway, and the finalizer remuxes it).

Timestamps: frames follow their (unwrapped) RTP timestamps (90 kHz video, 48 kHz Opus), anchored once per
slot to the recording's clock. The anchor is not the first frame's arrival time alone: a busy event loop
reads packets late, and a first frame read late would shift (and stretch) the whole slot. Each frame's
arrival minus its RTP time since the slot's first frame is an upper bound of where the first frame belongs
(lateness only adds to it), so the slot's first ``anchor_seconds`` of media are held back and the smallest
such value is the anchor; frames are written from then on as they come. The SFU keeps a slot's timestamps
continuous across source switches and advances them by the wall-clock time a slot stayed empty, so the
slots stay aligned to within a packet's network delay. ``end`` cuts a slot at the recording's stop: frames
timed after it are not written (``past_end`` says one came, so everything before it had arrived).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from recorder.depacketize import Frame, vp8_size

log = logging.getLogger("taphuan.recorder")

CODEC_NAMES = {"video/vp8": "vp8", "video/h264": "h264", "audio/opus": "opus"}
VIDEO_RATE = 90000
AUDIO_RATE = 48000
# OpusHead (RFC 7845): version 1, 2 channels, pre-skip 0, 48 kHz, gain 0, mapping family 0.
OPUS_HEAD = b"OpusHead" + struct.pack("<BBHIhB", 1, 2, 0, AUDIO_RATE, 0, 0)
MUXER_OPTIONS = {"live": "1", "cluster_time_limit": "1000", "flush_packets": "1"}
SEGMENT_SUFFIX = ".mkv"
ANCHOR_SECONDS = 2.0  # media time a slot's first frames wait for its anchor (see the module doc)


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

    `t0` is the recording's start on the same clock as ``Frame.arrival``. Errors (disk full) are logged
    once and stop this writer (``failed``): the live room is never disturbed. A killed server loses the
    frames still held for the anchor (a slot's first `anchor_seconds`) besides the open cluster.
    """

    def __init__(self, directory: Path, slot: str, mime: str, t0: float, segment_seconds: float = 4.0,
                 anchor_seconds: float = ANCHOR_SECONDS) -> None:
        self.directory = directory / slot
        self.slot = slot
        self.mime = mime
        self.video = mime.startswith("video/")
        self.rate = VIDEO_RATE if self.video else AUDIO_RATE
        self.time_base = Fraction(1, self.rate)
        self.t0 = t0
        self.segment_ticks = max(1, round(segment_seconds * self.rate))
        self.anchor_ticks = round(anchor_seconds * self.rate)
        self.failed: str | None = None
        self.frames = 0
        self.bytes = 0
        self.segments = 0
        self.end: int | None = None  # frames timed after this pts are not written (the recording's stop)
        self.past_end = False  # a frame timed after `end` came
        self.last_arrival: float | None = None  # Frame.arrival of the newest frame
        self._container: Any = None
        self._stream: Any = None
        self._segment_start = 0
        self._first_ts: int | None = None  # the slot's first RTP timestamp
        self._lowest = 0  # smallest arrival (ticks since t0) minus RTP time since the first frame so far
        self._held: list[Frame] = []  # frames waiting for the anchor
        self._base: int | None = None  # the first frame's pts, once anchored
        self._last_pts: int | None = None
        self._size: tuple[int, int] | None = None

    @property
    def anchored(self) -> bool:
        """anchored: the slot's first frame has its place (frames are written as they come)."""
        return self._base is not None

    @property
    def duration(self) -> float:
        """duration is the time (seconds) from the recording's start to this slot's last frame."""
        if self._held and self._first_ts is not None:
            return max(0, self._lowest + self._held[-1].ts - self._first_ts) / self.rate
        return 0.0 if self._last_pts is None else self._last_pts / self.rate

    def pts_of(self, frame: Frame) -> int:
        """pts_of maps a frame to this slot's time base (ticks since the recording started); once anchored."""
        if self._base is None or self._first_ts is None:
            raise RuntimeError("pts_of before the slot is anchored")
        return self._base + frame.ts - self._first_ts

    def write(self, frame: Frame) -> None:
        """write muxes one frame (opens or rotates the segment as needed), or holds it until the anchor."""
        if self.failed is not None:
            return
        self.last_arrival = frame.arrival
        if self._base is None:
            if self._first_ts is None:
                self._first_ts = frame.ts
                self._lowest = round((frame.arrival - self.t0) * self.rate)
            since_first = frame.ts - self._first_ts
            self._lowest = min(self._lowest, round((frame.arrival - self.t0) * self.rate) - since_first)
            self._held.append(frame)
            if since_first >= self.anchor_ticks or self.end is not None:
                self._anchor()
            return
        self._mux(frame)

    def _anchor(self) -> None:
        self._base = max(0, self._lowest)
        held, self._held = self._held, []
        for frame in held:
            self._mux(frame)

    def _mux(self, frame: Frame) -> None:
        if self.failed is not None:
            return
        pts = self.pts_of(frame)
        if self.end is not None and pts > self.end:
            self.past_end = True
            return
        if self._last_pts is not None and pts <= self._last_pts:
            if not self.video:
                return  # an audio packet overlapping the previous one: drop it
            pts = self._last_pts + 1
        if self.video and frame.keyframe:
            self._size = vp8_size(frame.data) if self.mime == "video/vp8" else self._size
        try:
            if self._container is None or pts - self._segment_start >= self.segment_ticks:
                self._rotate(pts)
            packet = av.Packet(frame.data)
            packet.pts = packet.dts = pts
            packet.time_base = self.time_base  # the muxer rescales to Matroska's 1 ms
            packet.stream = self._stream
            packet.is_keyframe = frame.keyframe
            self._container.mux(packet)
        except Exception as exc:  # disk full, closed file: stop this slot, keep the room going
            self.failed = str(exc)
            log.error("recording of %s in %s stopped: %s", self.slot, self.directory.parent, exc)
            self._close_quietly()
            return
        self._last_pts = pts
        self.frames += 1
        self.bytes += len(frame.data)

    def _rotate(self, pts: int) -> None:
        self.close()
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{self.segments:05d}{SEGMENT_SUFFIX}"
        self._container, self._stream = open_segment(path, self.mime, self._size)
        self._segment_start = pts
        self.segments += 1

    def close(self) -> None:
        """close writes the frames still held for the anchor and finishes the open segment (idempotent)."""
        if self._held:
            self._anchor()
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
