"""broadcast: the live broadcast's worker process: the recorder's frames in, HLS renditions out (``recorder.program``).

``python -m recorder.broadcast`` lowers its priority (``--nice``), reads one JSON line (``Header``) then records
from its standard input, and prints JSON lines on stdout: ``{"master": true}`` once the master playlist exists,
``{"segment": n, "t": seconds}`` per segment of the first rendition, ``{"ended": true}`` at the end (or
``{"error": ...}``).

A record (``RECORD``: kind, keyframe, pts, elapsed, length, then the bytes) is one frame the recorder placed on
the recording's timeline (``recorder.timing``; pts in 90 kHz for video, 48 kHz for audio), of the program video
(``VIDEO``) or of an audio slot (``PRESENTER_AUDIO``, ``FLOOR_AUDIO``), or a clock tick (``TICK``, no bytes).
`elapsed` is the recording's clock when the server sent it. The worker decodes the program video once (VP8, or
H.264 in H.264 rooms) and the Opus of each audio slot, and emits output up to ``elapsed - delay``: frames
reach the recorder with a little jitter, and what comes later than that is still decoded but shows late (its
sound is cut, except a slot's first sound, which plays late for a while: ``Lag``). ``END`` finishes the run:
output up to the last media, the last segment, ``#EXT-X-ENDLIST``. The end of the input without ``END`` (the
server went away) writes the last segment but leaves the playlists open: the archive completes them.

The renditions are chosen from the first picture's height (``recorder.hls.ladder``; the smallest one if no
picture came within ``PICTURE_WAIT`` seconds of the first sound), or are those of an earlier run of the same
recording (a continuation appends to its playlists).
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import av
import numpy as np

from recorder.archive import to_mono
from recorder.hls import HLS_DIR, OutputOptions, Rendition, ladder, listed_end
from recorder.program import Program

RECORD = struct.Struct("<BBqdI")
VIDEO, PRESENTER_AUDIO, FLOOR_AUDIO, TICK, END = 0, 1, 2, 3, 4
KINDS = {"program-video": VIDEO, "presenter-audio": PRESENTER_AUDIO, "floor-audio": FLOOR_AUDIO}
VIDEO_RATE, AUDIO_RATE = 90000, 48000
PICTURE_WAIT = 3.0
SILENCE_RMS = 0.003  # about -50 dBFS
MAX_RECORD = 8 << 20


@dataclass
class Header:
    """Header: the run's settings, sent by the server as the first line."""

    directory: str
    video_mime: str = "video/vp8"
    renditions: list[dict[str, Any]] = field(default_factory=list)
    fps: int = 25
    segment_seconds: float = 2.0
    preset: str = "veryfast"
    threads: int = 1
    window_seconds: float = 300.0
    audio_kbps: int = 64
    delay: float = 0.5
    wall0: float = 0.0  # wall-clock time of the recording's timeline 0
    start: float = 0.0  # where this run starts on the timeline (a continuation: its offset)
    low_latency: bool = False  # LL-HLS parts (recorder.hls)


def _say(**values: Any) -> None:
    print(json.dumps(values), flush=True)


def _opus() -> Any:
    decoder: Any = av.CodecContext.create("libopus", "r")
    decoder.sample_rate = AUDIO_RATE
    decoder.layout = "stereo"
    return decoder


class Lag:
    """Lag: how late one audio slot plays, so that a slot's first words are not cut.

    The recorder holds a new slot's first 2 s to anchor it (``recorder.timing``), so they reach the worker after
    the output has passed them: the first time someone takes the floor, their first words would be cut. Instead
    the slot starts where the output is and plays late by that much, and the lag shrinks to nothing at the
    speaker's pauses (a gap between packets, or silence, which is skipped), so the sound is back in step with
    the picture after the first pauses. Later, a packet timed before the output's point is cut as usual.
    """

    def __init__(self) -> None:
        self.samples = 0  # how late the slot plays now
        self.end: int | None = None  # where the slot's last sound was placed (output samples)

    def place(self, pts: int, mono: np.ndarray, output: int) -> int | None:
        """place returns where `mono`, timed `pts`, goes on the output's sample line (None: skipped)."""
        if self.end is None and pts < output:  # the slot's first sound comes late: it starts late
            self.samples = output - pts
        elif self.samples and self.end is not None:
            gap = pts + self.samples - self.end
            if gap > 0:  # a pause: take it out of the lag
                self.samples -= min(gap, self.samples)
            elif float(np.sqrt(np.mean(mono * mono))) < SILENCE_RMS:  # silence: skip it
                self.samples -= min(len(mono), self.samples)
                return None
        at = pts + self.samples
        self.end = at + len(mono)
        return at


class Worker:
    """Worker turns the records of one run into HLS; see the module doc."""

    def __init__(self, header: Header) -> None:
        self.header = header
        options = OutputOptions(fps=header.fps, segment_seconds=header.segment_seconds, preset=header.preset,
                                threads=header.threads, window_seconds=header.window_seconds,
                                audio_kbps=header.audio_kbps, wall0=header.wall0, low_latency=header.low_latency)
        directory = Path(header.directory)
        start = max(header.start, listed_end(directory / HLS_DIR))
        self.program = Program(directory, options, start)
        self.configured = [Rendition(**r) for r in header.renditions]
        self.video: Any = av.CodecContext.create("h264" if header.video_mime == "video/h264" else "vp8", "r")
        self.video.thread_count = 1
        self.audio = {PRESENTER_AUDIO: _opus(), FLOOR_AUDIO: _opus()}
        self.lags = {PRESENTER_AUDIO: Lag(), FLOOR_AUDIO: Lag()}
        self.first_sound: float | None = None
        self.elapsed = 0.0
        self.segments = 0
        self.master = False
        self.waiting_key = True

    def handle(self, kind: int, key: bool, pts: int, elapsed: float, data: bytes) -> None:
        """handle takes one record, then emits what is due."""
        self.elapsed = max(self.elapsed, elapsed)
        if kind == VIDEO:
            self._video(key, pts, data)
        elif kind in self.audio:
            self._audio(kind, pts, data)
        self._due()

    def _video(self, key: bool, pts: int, data: bytes) -> None:
        if self.waiting_key and not key:
            return
        self.waiting_key = False
        try:
            frames = self.video.decode(av.Packet(data))
        except av.error.FFmpegError:
            self.waiting_key = True
            return
        for frame in frames:
            if not self.program.started:
                existing = self.program.earlier_renditions()
                self.program.begin(existing or ladder(self.configured, frame.height))
            self.program.picture(pts / VIDEO_RATE, frame)

    def _audio(self, kind: int, pts: int, data: bytes) -> None:
        if self.first_sound is None:
            self.first_sound = pts / AUDIO_RATE
        try:
            frames = self.audio[kind].decode(av.Packet(data))
        except av.error.FFmpegError:
            return
        lag = self.lags[kind]
        for frame in frames:
            mono = to_mono(frame)
            at = lag.place(pts, mono, self.program.next_sample)
            if at is not None:
                self.program.sound_at(at, mono)
            pts += len(mono)

    def _due(self) -> None:
        program = self.program
        if not program.started and self.first_sound is not None \
                and self.elapsed - self.first_sound >= PICTURE_WAIT + self.header.delay:
            program.begin(program.earlier_renditions() or ladder(self.configured, 0))
        program.advance(self.elapsed - self.header.delay)
        self._report()

    def _report(self) -> None:
        if not self.master and self.program.write_master():
            self.master = True
            _say(master=True)
        outputs = self.program.outputs
        if outputs:
            segments = outputs[0].segments
            while self.segments < outputs[0].written:
                s = segments[len(segments) - outputs[0].written + self.segments]
                self.segments += 1
                _say(segment=s.n, t=s.t, duration=s.duration)

    def finish(self, ended: bool) -> None:
        """finish closes the run (see the module doc)."""
        program = self.program
        if not program.started and self.first_sound is not None:
            program.begin(program.earlier_renditions() or ladder(self.configured, 0))
        program.finish(ended)
        self._report()


def read_exact(stream: BinaryIO, size: int) -> bytes | None:
    """read_exact reads `size` bytes (None at the end of the input)."""
    chunks = []
    while size:
        chunk = stream.read(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def run(stream: BinaryIO) -> int:
    """run reads the header and the records from `stream` until END or the end of the input."""
    line = stream.readline()
    header = Header(**json.loads(line))
    worker = Worker(header)
    ended = False
    while True:
        raw = read_exact(stream, RECORD.size)
        if raw is None:
            break
        kind, key, pts, elapsed, length = RECORD.unpack(raw)
        if length > MAX_RECORD:
            raise ValueError(f"record of {length} bytes")
        data = read_exact(stream, length) if length else b""
        if data is None:
            break
        if kind == END:
            ended = True
            break
        worker.handle(kind, bool(key), pts, elapsed, data)
    worker.finish(ended)
    _say(ended=ended)
    return 0


def main(argv: list[str] | None = None) -> int:
    """main: the worker's command line (see the module doc)."""
    parser = argparse.ArgumentParser(prog="python -m recorder.broadcast")
    parser.add_argument("--nice", type=int, default=5)
    args = parser.parse_args(argv)
    if args.nice > 0:
        os.nice(args.nice)
    try:
        return run(sys.stdin.buffer)
    except Exception as exc:
        _say(error=f"{type(exc).__name__}: {exc}")
        raise


if __name__ == "__main__":
    sys.exit(main())
