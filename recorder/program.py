"""program: the broadcast's encoding: decoded pictures and sound on the recording's timeline in, a continuous
H.264 + AAC timeline out to every rendition (``recorder.hls.Output``).

The output never follows the sources' timing: it is a constant frame rate (``fps``) and a continuous sample
line on the recording's timeline. ``advance(horizon)`` emits every output frame and audio block up to
`horizon` seconds: each frame shows the newest picture timed at or before it (the last one again while the
program has no new picture, black before the first), letterboxed into each rendition's size; the sound is the
sum of the audio sources (silence where none has sound). So a presenter hand-over, a screen share starting or
stopping, or a source with no picture for a while change what the picture shows, never the timeline.

Keyframes are forced every ``segment_seconds`` at frame numbers counted from the timeline's 0, the same in
every rendition, so their segments align (and a continued recording's segments stay on the same grid). The
sound is encoded once (AAC) and muxed into every rendition. One picture is scaled once per rendition, however
often it is repeated.
"""

from __future__ import annotations

import math
from collections import deque
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from recorder.hls import (
    AUDIO_RATE,
    HLS_DIR,
    Output,
    OutputOptions,
    Rendition,
    atomic_write,
    master_playlist,
    read_state,
    write_state,
)

AAC_FRAME = 1024
MAX_AHEAD_SECONDS = 30.0  # sound timed further than this past the horizon is dropped (a bogus timestamp)


def _canvas(frame: Any, width: int, height: int) -> Any:
    """_canvas is `frame` scaled to fit width × height (aspect kept), centred on black, as a yuv420p frame."""
    scale = min(width / frame.width, height / frame.height)
    w = max(2, min(width, int(frame.width * scale) // 2 * 2))
    h = max(2, min(height, int(frame.height * scale) // 2 * 2))
    scaled = frame.reformat(width=w, height=h, format="yuv420p")
    if w == width and h == height:
        return scaled
    planes = scaled.to_ndarray()  # (h * 3/2, w)
    out = np.empty((height * 3 // 2, width), dtype=np.uint8)
    out[:height] = 16
    out[height:] = 128
    x, y = (width - w) // 2 // 2 * 2, (height - h) // 2 // 2 * 2
    out[y:y + h, x:x + w] = planes[:h]
    cw, ch, cx, cy = w // 2, h // 2, x // 2, y // 2
    u = planes[h:h + h // 4].reshape(ch, cw)
    v = planes[h + h // 4:].reshape(ch, cw)
    uo = out[height:height + height // 4].reshape(height // 2, width // 2)
    vo = out[height + height // 4:].reshape(height // 2, width // 2)
    uo[cy:cy + ch, cx:cx + cw] = u
    vo[cy:cy + ch, cx:cx + cw] = v
    return av.VideoFrame.from_ndarray(out, format="yuv420p")


def _black(width: int, height: int) -> Any:
    out = np.empty((height * 3 // 2, width), dtype=np.uint8)
    out[:height] = 16
    out[height:] = 128
    return av.VideoFrame.from_ndarray(out, format="yuv420p")


class Program:
    """Program encodes one run of a broadcast into `directory`/hls; see the module doc.

    `start` is where the run begins on the recording's timeline (seconds; a continuation: after what is listed).
    Renditions are chosen with the first picture (``recorder.hls.ladder`` by the caller) or taken from an
    earlier run (hls/broadcast.json).
    """

    def __init__(self, directory: Path, options: OutputOptions, start: float = 0.0) -> None:
        self.hls = directory / HLS_DIR
        self.hls.mkdir(parents=True, exist_ok=True)
        self.options = options
        fps = options.fps
        self.fps = fps
        self.keyint = max(1, round(options.segment_seconds * fps))
        self.next_frame = math.ceil(round(start * fps, 6))  # the next output frame number
        self.next_sample = self.next_frame * AUDIO_RATE // fps  # the next output audio sample
        self.outputs: list[Output] = []
        self.pictures: deque[tuple[float, Any]] = deque()  # decoded pictures not yet shown
        self.current: Any = None
        self._scaled: list[Any] = []
        self.sound = np.zeros(0, dtype=np.float32)  # mixed samples from next_sample on
        self._first_sample = self.next_sample
        self._audio_shift: int | None = None
        self.aac: Any = av.CodecContext.create("aac", "w")
        self.aac.sample_rate, self.aac.layout, self.aac.format = AUDIO_RATE, "mono", "fltp"
        self.aac.bit_rate = options.audio_kbps * 1000
        self.aac.time_base = Fraction(1, AUDIO_RATE)
        self.aac.flags |= av.codec.context.Flags.global_header
        self.aac.options = {"aac_coder": "fast"}  # the default (twoloop) costs several times more CPU
        self.aac.open()
        self.frames = 0  # output frames encoded (each rendition)
        self.last_media = start  # the end of the newest media given (seconds)
        self.master_written = False

    @property
    def started(self) -> bool:
        """started: the renditions are chosen (output can be emitted)."""
        return bool(self.outputs)

    @property
    def time(self) -> float:
        """time is the timeline time up to which output was emitted (seconds)."""
        return self.next_frame / self.fps

    def earlier_renditions(self) -> list[Rendition] | None:
        """earlier_renditions: the renditions an earlier run of this broadcast chose (None: a first run)."""
        state = read_state(self.hls)
        if not state.get("renditions"):
            return None
        return [Rendition(**r) for r in state["renditions"]]

    def begin(self, renditions: list[Rendition]) -> None:
        """begin opens an Output per rendition (once)."""
        if self.outputs:
            return
        if self.earlier_renditions() is None:
            write_state(self.hls, renditions=[r.__dict__ for r in renditions], fps=self.fps,
                        segment_seconds=self.options.segment_seconds, wall0=self.options.wall0)
        self.outputs = [Output(self.hls, r, self.options, self.aac, self.time) for r in renditions]
        self._scaled = [None] * len(self.outputs)

    def picture(self, t: float, frame: Any) -> None:
        """picture gives a decoded picture shown from `t` seconds (pictures come in time order)."""
        if self.pictures and t <= self.pictures[-1][0]:
            return
        self.pictures.append((t, frame))
        self.last_media = max(self.last_media, t + 1 / self.fps)

    def sound_at(self, sample: int, mono: np.ndarray) -> None:
        """sound_at adds mono float32 samples starting at `sample` (48 kHz, timeline) into the mix."""
        offset = sample - self.next_sample
        if offset < 0:
            mono = mono[-offset:]
            offset = 0
        if not len(mono) or offset > MAX_AHEAD_SECONDS * AUDIO_RATE + len(self.sound):
            return
        end = offset + len(mono)
        if end > len(self.sound):
            self.sound = np.concatenate((self.sound, np.zeros(end - len(self.sound), dtype=np.float32)))
        self.sound[offset:end] += mono
        self.last_media = max(self.last_media, (sample + len(mono)) / AUDIO_RATE)

    def advance(self, horizon: float) -> None:
        """advance emits output frames and sound up to `horizon` seconds of the timeline."""
        if not self.outputs:
            return
        while (self.next_frame + 1) / self.fps <= horizon + 1e-9:
            self._emit_frame()
            self._emit_sound((self.next_frame * AUDIO_RATE) // self.fps)

    def _emit_frame(self) -> None:
        n = self.next_frame
        t = n / self.fps
        while self.pictures and self.pictures[0][0] <= t + 1e-6:
            self.current = self.pictures.popleft()[1]
            self._scaled = [None] * len(self.outputs)
        keyframe = n % self.keyint == 0 or self.frames == 0
        for i, out in enumerate(self.outputs):
            r = out.rendition
            if self._scaled[i] is None:
                self._scaled[i] = _canvas(self.current, r.width, r.height) if self.current is not None \
                    else _black(r.width, r.height)
            frame = self._scaled[i]
            frame.pts = n
            frame.time_base = Fraction(1, self.fps)
            out.encode(frame, t, keyframe)
        self.frames += 1
        self.next_frame += 1

    def _emit_sound(self, until: int) -> None:
        while self.next_sample + AAC_FRAME <= until:
            block = self.sound[:AAC_FRAME]
            if len(block) < AAC_FRAME:
                block = np.concatenate((block, np.zeros(AAC_FRAME - len(block), dtype=np.float32)))
            self.sound = self.sound[AAC_FRAME:]
            np.clip(block, -1.0, 1.0, out=block)
            frame = av.AudioFrame.from_ndarray(block.reshape(1, -1), format="fltp", layout="mono")
            frame.sample_rate = AUDIO_RATE
            frame.pts = self.next_sample
            frame.time_base = Fraction(1, AUDIO_RATE)
            self.next_sample += AAC_FRAME
            self._mux_audio(self.aac.encode(frame))

    def _mux_audio(self, packets: list[Any]) -> None:
        for packet in packets:
            if packet.pts is None:
                continue
            if self._audio_shift is None:  # the encoder's priming: its first packet is timed before its input
                self._audio_shift = max(0, self._first_sample - int(packet.pts))  # (the sound lags ~21 ms)
            data = bytes(packet)
            for out in self.outputs:
                out.audio_packet(data, int(packet.pts) + self._audio_shift, int(packet.duration or AAC_FRAME))

    def write_master(self) -> bool:
        """write_master writes master.m3u8 once every rendition has its init segment; True once written."""
        if self.master_written or not self.outputs or any(o.init_name is None for o in self.outputs):
            return self.master_written
        text = master_playlist([(o.rendition, o.codec) for o in self.outputs], self.fps)
        atomic_write(self.hls / "master.m3u8", text.encode())
        self.master_written = True
        return True

    def finish(self, ended: bool, until: float | None = None) -> None:
        """finish emits up to `until` (default: the end of the media given), flushes every encoder and closes the
        renditions' playlists (with ENDLIST when `ended`)."""
        if not self.outputs:
            return
        self.advance(max(self.time, until if until is not None else self.last_media))
        self._mux_audio(self.aac.encode(None))
        for out in self.outputs:
            out.close(ended)
        self.write_master()
