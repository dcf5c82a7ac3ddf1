"""hls: the broadcast's files: fMP4/CMAF segments of each rendition, their media playlists and the master playlist.

Layout (one per recording, in its directory; see docs/recorder.md, "Broadcast"):

    hls/master.m3u8                 multivariant playlist: the renditions (BANDWIDTH, RESOLUTION, CODECS)
    hls/<rendition>/init.mp4        initialization segment (ftyp + moov), written once, never rewritten
    hls/<rendition>/seg<N>.m4s      media segments (moof + mdat), N their media sequence number, one after the
                                    other across the recording's takes and the same in every rendition
    hls/<rendition>/part<N>.<K>.m4s low latency: the parts of segment N (K from 0), each written as it is made
    (seg<N>-<tag>.m4s, part<N>.<K>-<tag>.m4s: a run that found a killed run's unlisted files at its numbers)
    hls/<rendition>/index.m3u8      media playlist (version 7, EXT-X-MAP, PROGRAM-DATE-TIME; ENDLIST at the end)
    hls/<rendition>/segments.jsonl  every segment ever written (append-only: the playlists are made from it)
    hls/broadcast.json              the renditions chosen and the frame rate (a continuation keeps them)

Every file is written to a temporary name and renamed, and a segment is listed only once it is complete, so a
reader (the web server, a cache) never sees a partial file, and a listed segment never changes. While live, the
playlist lists the last ``window_seconds`` of segments; once ended it lists all of them and ends with
``#EXT-X-ENDLIST``. A new run on the same directory (a recording continued, or the archive completing a
broadcast a killed server left open) appends after the listed segments, behind an ``#EXT-X-DISCONTINUITY``.
Its numbers follow the listed ones: a player counts a segment's media sequence number from the playlist's
``#EXT-X-MEDIA-SEQUENCE`` and its place, and switches renditions by it, so a number skipped in one rendition
would shift the window and the switch by a segment. The files a killed run left unlisted (a segment written in
one rendition and not yet in another, a segment's parts) may sit in a cache under their names, so a run that
finds such a file at one of its numbers names its own files with a tag of its own instead of using those names
again.

``Output`` is one rendition: an H.264 encoder (libx264) and an MP4 muxer in fragmented mode that cuts a
fragment at each keyframe (``movflags=frag_keyframe+empty_moov+default_base_moof``) writing into memory;
the fragments from one keyframe to the next become a segment file. Keyframes are forced by the caller at the same
frame numbers in every rendition (``recorder.program``), so the renditions' segments align.

Low latency (LL-HLS, ``OutputOptions.low_latency``): the muxer also cuts a fragment every ~``PART_SECONDS`` of
video (``frag_duration``, half a frame short of the part's frames, so a cut falls on a frame), and each fragment
is written at once as a part file and listed (``#EXT-X-PART``) before its segment is complete; the segment file
is the same bytes, written when its last part is. The playlist then carries ``#EXT-X-PART-INF`` and
``#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=…`` (3 parts), and lists the parts of the last
segments only (``PART_SEGMENTS``); the node holds a playlist request naming a part not made yet
(``_HLS_msn``/``_HLS_part``: server.live.hls).
"""

from __future__ import annotations

import json
import math
import os
import secrets
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

HLS_DIR = "hls"
MASTER = "master.m3u8"
INDEX = "index.m3u8"
INIT = "init.mp4"
STATE = "broadcast.json"
SEGMENTS = "segments.jsonl"
AUDIO_RATE = 48000
VIDEO_TIMESCALE = 90000  # the video track's time base (Output sets it)
AUDIO_CODEC = "mp4a.40.2"
MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof+skip_trailer+frag_discont"
# frag_discont, no edit list and no shift of negative timestamps: the fragments' decode times (tfdt) are the
# recording's timeline, so a second run starts where it belongs (not at 0)
MUXER_OPTIONS = {"movflags": MOVFLAGS, "flush_packets": "1", "use_editlist": "0", "avoid_negative_ts": "disabled"}
PART_SECONDS = 0.5  # low latency: a part's length, about (a whole number of frames, parts split a segment evenly)
PART_SEGMENTS = 3  # low latency: the playlist lists the parts of this many of the last segments (and the open one)
KEEP_PART_SEGMENTS = 12  # part files of older segments are removed (no playlist names them any more)


@dataclass(frozen=True)
class Rendition:
    """Rendition is one quality of the broadcast: its name (the directory), picture size and video bitrate."""

    name: str
    width: int
    height: int
    video_kbps: int

    @property
    def bandwidth(self) -> int:
        """bandwidth is the peak bit rate declared in the master playlist (VBV max rate, audio, MP4 overhead)."""
        return int((self.video_kbps * 1.2 + 64) * 1000 * 1.05)


def ladder(configured: Iterable[Rendition], source_height: int | None) -> list[Rendition]:
    """ladder keeps the configured renditions no taller than the source (at least the smallest), tallest first."""
    ordered = sorted(configured, key=lambda r: r.height, reverse=True)
    if not ordered:
        raise ValueError("no rendition configured")
    kept = [r for r in ordered if source_height is None or r.height <= source_height]
    return kept or [ordered[-1]]


@dataclass
class Segment:
    """Segment is one listed media segment: number, start on the recording's timeline, duration, wall-clock
    start (PROGRAM-DATE-TIME), and whether a discontinuity precedes it (a new run)."""

    n: int
    t: float
    duration: float
    wall: float
    discontinuity: bool = False
    init: str = INIT
    uri: str = ""  # its file's name when not seg<n>.m4s (a tagged run's)

    @property
    def file(self) -> str:
        """file is the segment's file name in its rendition's directory."""
        return self.uri or f"seg{self.n}.m4s"


@dataclass
class Part:
    """Part is one listed part (low latency) of segment `n`: its index in the segment and duration."""

    n: int
    k: int
    duration: float
    tag: str = ""  # its run's tag (see the module's docstring), "" for most

    @property
    def name(self) -> str:
        """name is the part's file name."""
        return f"part{self.n}.{self.k}{self.tag}.m4s"


@dataclass(frozen=True)
class PartInfo:
    """PartInfo: what a low-latency playlist needs beyond the segments: the part target (seconds), the parts of
    the last segments by segment number, and the parts made so far of the segment being made (`open_n`)."""

    target: float
    done: dict[int, list[Part]]
    open_n: int
    open: list[Part]


def atomic_write(path: Path, data: bytes) -> None:
    """atomic_write writes `data` to `path` through a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def read_segments(folder: Path) -> list[Segment]:
    """read_segments loads a rendition's segments.jsonl (a line cut by a crash is skipped)."""
    out: list[Segment] = []
    try:
        lines = (folder / SEGMENTS).read_text(encoding="utf-8").splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            out.append(Segment(**json.loads(line)))
        except (ValueError, TypeError):
            continue
    return out


def read_state(hls: Path) -> dict[str, Any]:
    """read_state loads hls/broadcast.json ({} when absent)."""
    try:
        data = json.loads((hls / STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_state(hls: Path, **values: Any) -> None:
    """write_state merges `values` into hls/broadcast.json."""
    state = read_state(hls)
    state.update(values)
    atomic_write(hls / STATE, json.dumps(state, indent=1).encode())


def is_ended(hls: Path) -> bool:
    """is_ended: every rendition's playlist of the broadcast ends with ENDLIST."""
    names = [r["name"] for r in read_state(hls).get("renditions", [])]
    if not names:
        return False
    for name in names:
        try:
            if "#EXT-X-ENDLIST" not in (hls / name / INDEX).read_text(encoding="utf-8"):
                return False
        except OSError:
            return False
    return True


def listed_end(hls: Path) -> float:
    """listed_end is where the listed segments end on the recording's timeline (0 when none)."""
    names = [r["name"] for r in read_state(hls).get("renditions", [])]
    ends = [s.t + s.duration for name in names for s in read_segments(hls / name)[-1:]]
    return min(ends, default=0.0)


def _pdt(wall: float) -> str:
    ms = int(round(wall * 1000))
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def media_playlist(segments: list[Segment], target: int, ended: bool, window: float | None,
                   parts: PartInfo | None = None) -> str:
    """media_playlist is a rendition's index.m3u8: all segments when `ended` (or no window), else the last
    `window` seconds (at least three segments); with `parts` (low latency, while live) also the parts of the last
    segments and of the one being made, and the server's control tags."""
    shown = segments
    if not ended and window is not None and segments:
        total, first = 0.0, len(segments)
        while first > 0 and (total < window or len(segments) - first < 3):
            first -= 1
            total += segments[first].duration
        shown = segments[first:]
    skipped = len(segments) - len(shown)
    discontinuities = sum(1 for s in segments[:skipped] if s.discontinuity)
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", f"#EXT-X-TARGETDURATION:{target}"]
    if parts is not None and not ended:
        lines += [f"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={3 * parts.target:.3f},"
                  f"HOLD-BACK={3 * target:.3f}", f"#EXT-X-PART-INF:PART-TARGET={parts.target:.3f}"]
    else:
        parts = None
    lines += [f"#EXT-X-MEDIA-SEQUENCE:{shown[0].n if shown else 0}",
              f"#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuities}", "#EXT-X-INDEPENDENT-SEGMENTS"]
    init = None
    for i, s in enumerate(shown):
        if s.discontinuity and i > 0:
            lines.append("#EXT-X-DISCONTINUITY")
        if s.init != init or (s.discontinuity and i > 0):
            lines.append(f'#EXT-X-MAP:URI="{s.init}"')
            init = s.init
        lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{_pdt(s.wall)}")
        if parts is not None and i >= len(shown) - PART_SEGMENTS:
            lines += _part_lines(parts.done.get(s.n, []))
        lines += [f"#EXTINF:{s.duration:.3f},", s.file]
    if parts is not None and parts.open:
        lines += _part_lines(parts.open)
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def _part_lines(parts: list[Part]) -> list[str]:
    return [f'#EXT-X-PART:DURATION={p.duration:.3f},URI="{p.name}"' + (",INDEPENDENT=YES" if p.k == 0 else "")
            for p in parts]


def avc_codec(init: bytes) -> str:
    """avc_codec is the RFC 6381 codec string of the H.264 track of an init segment (from its avcC box)."""
    at = init.find(b"avcC")
    if at < 0 or len(init) < at + 8:
        return "avc1.64001f"
    return "avc1." + init[at + 5:at + 8].hex()


def master_playlist(entries: list[tuple[Rendition, str]], fps: float) -> str:
    """master_playlist is master.m3u8 for (rendition, video codec string) pairs, tallest first."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for r, codec in entries:
        lines += [f'#EXT-X-STREAM-INF:BANDWIDTH={r.bandwidth},AVERAGE-BANDWIDTH={(r.video_kbps + 64) * 1000},'
                  f'RESOLUTION={r.width}x{r.height},FRAME-RATE={fps:.3f},CODECS="{codec},{AUDIO_CODEC}"',
                  f"{r.name}/{INDEX}"]
    return "\n".join(lines) + "\n"


class _Memory:
    """_Memory is the muxer's output: a non-seekable file that keeps what was written until taken."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, chunk: bytes) -> int:
        self.data += chunk
        return len(chunk)


def _boxes(data: bytearray) -> list[tuple[bytes, int]]:
    """_boxes lists the complete top-level MP4 boxes at the start of `data`: (type, end offset)."""
    out: list[tuple[bytes, int]] = []
    pos = 0
    while len(data) - pos >= 8:
        size = int.from_bytes(data[pos:pos + 4], "big")
        kind = bytes(data[pos + 4:pos + 8])
        if size == 1 and len(data) - pos >= 16:
            size = int.from_bytes(data[pos + 8:pos + 16], "big")
        if size < 8 or len(data) - pos < size:
            break
        pos += size
        out.append((kind, pos))
    return out


@dataclass
class OutputOptions:
    """OutputOptions: how a run encodes and lists (from the broadcast config)."""

    fps: int = 25
    segment_seconds: float = 2.0
    preset: str = "veryfast"
    threads: int = 1
    window_seconds: float | None = 300.0  # live playlist window (None: list everything)
    audio_kbps: int = 64
    wall0: float = 0.0  # the wall-clock time of the recording's timeline 0 (PROGRAM-DATE-TIME)
    low_latency: bool = False  # parts (LL-HLS) while live

    @property
    def part_frames(self) -> int:
        """part_frames is the longest part's frames: a segment's frames split as evenly as parts of ~0.5 s allow."""
        keyint = max(1, round(self.segment_seconds * self.fps))
        return math.ceil(keyint / max(1, round(keyint / (PART_SECONDS * self.fps))))


class Output:
    """Output is one rendition of a run: encoder, fragmenting muxer, segment files and its playlist."""

    def __init__(self, hls: Path, rendition: Rendition, options: OutputOptions, audio_template: Any,
                 start: float = 0.0) -> None:
        self.rendition = rendition
        self.options = options
        self.folder = hls / rendition.name
        self.folder.mkdir(parents=True, exist_ok=True)
        listed = read_segments(self.folder)
        # the run starts at `start`: a worker killed between two renditions' writes left this one a segment ahead
        # of the others; it is unlisted (its file stays, its number is not used again) so they share one timeline
        self.segments = [s for s in listed if s.t + s.duration <= start + 1e-3]
        if len(self.segments) < len(listed):
            atomic_write(self.folder / SEGMENTS, "".join(json.dumps(asdict(s)) + "\n" for s in self.segments).encode())
        # the numbers go on from the listed segments (the same in every rendition); a file a killed run left at one
        # of them (that segment, or a worker killed in the middle of a segment: its parts) may be in a cache, so
        # this run's files get a tag of their own
        self.next_n = 1 + max([s.n for s in self.segments] + [-1])
        left = [_n(p) for p in (*self.folder.glob("seg*.m4s"), *self.folder.glob("part*.m4s"))]
        self.tag = f"-{secrets.token_hex(3)}" if any(n >= self.next_n for n in left) else ""
        self.first_of_run = bool(self.segments)  # the run's first segment follows a discontinuity
        self.target = max(1, math.ceil(options.segment_seconds))
        self.init_name: str | None = None
        self.codec = "avc1.64001f"
        self._memory = _Memory()
        muxer = dict(MUXER_OPTIONS)
        self.part_target: float | None = None
        if options.low_latency:  # a fragment every part: cut when a frame comes half a frame before the part's end
            frames = options.part_frames
            self.part_target = frames / options.fps
            muxer["frag_duration"] = str(int((frames - 0.5) / options.fps * 1e6))
        self._container: Any = av.open(self._memory, "w", format="mp4", options=muxer)
        video: Any = self._container.add_stream("libx264", rate=options.fps)
        ctx = video.codec_context
        ctx.width, ctx.height, ctx.pix_fmt = rendition.width, rendition.height, "yuv420p"
        ctx.time_base = Fraction(1, options.fps)
        ctx.bit_rate = rendition.video_kbps * 1000
        ctx.thread_count = options.threads
        kbps = rendition.video_kbps
        ctx.options = {"preset": options.preset, "tune": "zerolatency", "profile": "high",
                       "x264-params": f"keyint=infinite:scenecut=0:forced-idr=1:vbv-maxrate={int(kbps * 1.2)}:"
                                      f"vbv-bufsize={kbps * 2}"}
        video.time_base = Fraction(1, 90000)
        self.video = video
        audio: Any = self._container.add_stream("aac", rate=AUDIO_RATE, layout="mono")
        audio.bit_rate = options.audio_kbps * 1000
        audio.time_base = Fraction(1, AUDIO_RATE)
        audio.codec_context.extradata = audio_template.extradata
        self.audio = audio
        self._starts: list[float] = []  # timeline time of every keyframe sent to the encoder, not yet a segment
        self._last_time = 0.0
        self._open = bytearray()  # the fragments of the segment being made
        self._open_parts: list[Part] = []
        self._open_n: int | None = None
        self._carry = b""  # (low latency) a fragment without video, written with the next part
        self.done_parts: dict[int, list[Part]] = {}  # the parts of the last segments (low latency)
        self.written = 0  # segments this run

    def encode(self, frame: Any, t: float, keyframe: bool) -> None:
        """encode sends one picture at timeline time `t` (a keyframe starts a segment) and muxes the packets."""
        if keyframe:
            frame.pict_type = av.video.frame.PictureType.I
            self._starts.append(t)
        else:
            frame.pict_type = av.video.frame.PictureType.NONE
        self._last_time = t
        for packet in self.video.encode(frame):
            self._container.mux(packet)
        self._collect(final=False)

    def audio_packet(self, data: bytes, pts: int, duration: int) -> None:
        """audio_packet muxes one AAC packet (encoded once for every rendition) at `pts` samples."""
        packet = av.Packet(data)
        packet.pts = packet.dts = pts
        packet.duration = duration
        packet.time_base = Fraction(1, AUDIO_RATE)
        packet.stream = self.audio
        self._container.mux(packet)
        self._collect(final=False)

    def close(self, ended: bool) -> None:
        """close flushes the encoder and the muxer (the last segment) and writes the playlist (ENDLIST if `ended`)."""
        for packet in self.video.encode(None):
            self._container.mux(packet)
        self._container.close()
        self._collect(final=True)
        self.write_playlist(ended)

    def _collect(self, final: bool) -> None:
        boxes = _boxes(self._memory.data)
        if boxes and self.init_name is None:
            moov = next((end for kind, end in boxes if kind == b"moov"), None)
            if moov is None:
                return
            self._write_init(bytes(self._memory.data[:moov]))
            del self._memory.data[:moov]
            boxes = _boxes(self._memory.data)
        start = 0
        for kind, end in boxes:
            if kind == b"mdat":
                self._fragment(bytes(self._memory.data[start:end]))
                start = end
        del self._memory.data[:start]
        if final and self._open and self._starts:
            self._complete(self._last_time + 1 / self.options.fps, final=True)

    def _fragment(self, data: bytes) -> None:
        """_fragment takes one moof + mdat: a part of the segment being made (written at once when low latency);
        the segment is complete when its video reaches the next keyframe."""
        if not self._starts:
            return
        if self._open_n is None:
            self._open_n = self.next_n
            self.next_n += 1
        self._open += data
        video = _video_run(data)
        frames = video[1] if video is not None else 0
        if self.part_target is not None and frames:
            part = Part(self._open_n, len(self._open_parts), round(frames / self.options.fps, 6), self.tag)
            atomic_write(self.folder / part.name, bytes(data) if not self._carry else self._carry + data)
            self._carry = b""
            self._open_parts.append(part)
        elif self.part_target is not None:
            self._carry += data  # (no video in it: it goes with the next part)
        if video is not None and len(self._starts) > 1:
            end = video[0] + frames / self.options.fps
            if end >= self._starts[1] - 0.5 / self.options.fps:
                self._complete(self._starts[1], final=False)
                return
        if self.part_target is not None and frames:
            self.write_playlist(False)

    def _complete(self, end: float, final: bool) -> None:
        """_complete writes the segment being made (its fragments from its keyframe to `end`) and lists it."""
        t = self._starts.pop(0)
        n = self._open_n if self._open_n is not None else self.next_n
        if self._open_n is None:
            self.next_n += 1
        uri = f"seg{n}{self.tag}.m4s" if self.tag else ""
        segment = Segment(n, round(t, 6), round(max(end - t, 0.001), 6), round(self.options.wall0 + t, 3),
                          self.first_of_run and self.written == 0, self.init_name or INIT, uri)
        atomic_write(self.folder / segment.file, bytes(self._open) + self._carry)
        self._open, self._carry, self._open_n = bytearray(), b"", None
        with open(self.folder / SEGMENTS, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(asdict(segment)) + "\n")
        self.segments.append(segment)
        self.written += 1
        if self.part_target is not None:
            self.done_parts[n] = self._open_parts
            self._open_parts = []
            for old in [k for k in self.done_parts if k <= n - PART_SEGMENTS]:
                del self.done_parts[old]
            for stale in self.folder.glob(f"part{n - KEEP_PART_SEGMENTS}.*.m4s"):
                stale.unlink(missing_ok=True)
        if not final:
            self.write_playlist(False)

    def _write_init(self, init: bytes) -> None:
        self.codec = avc_codec(init)
        name = INIT
        existing = self.folder / INIT
        if existing.exists() and existing.read_bytes() != init:  # a continuation encoding differently
            k = 2
            while (self.folder / f"init{k}.mp4").exists() and (self.folder / f"init{k}.mp4").read_bytes() != init:
                k += 1
            name = f"init{k}.mp4"
        if not (self.folder / name).exists():
            atomic_write(self.folder / name, init)
        self.init_name = name

    def write_playlist(self, ended: bool) -> None:
        """write_playlist rewrites index.m3u8 (atomically) from the segments."""
        parts = None
        if self.part_target is not None and not ended:
            parts = PartInfo(self.part_target, self.done_parts, self._open_n if self._open_n is not None else -1,
                             self._open_parts)
        text = media_playlist(self.segments, self.target, ended, None if ended else self.options.window_seconds,
                              parts)
        atomic_write(self.folder / INDEX, text.encode())


def _n(path: Path) -> int:
    """_n: the segment number in `seg<N>.m4s` or `part<N>.<K>.m4s`, tagged or not (-1 for another name)."""
    digits = path.name.removeprefix("seg").removeprefix("part").split(".", 1)[0].split("-", 1)[0]
    return int(digits) if digits.isdigit() else -1


def _video_run(fragment: bytes) -> tuple[float, int] | None:
    """_video_run: (start on the timeline in seconds, samples) of the video track (track 1, 90 kHz) of one moof +
    mdat, None when it holds no video."""
    at = 0
    while True:
        at = fragment.find(b"tfhd", at)
        if at < 0 or at + 12 > len(fragment):
            return None
        if int.from_bytes(fragment[at + 8:at + 12], "big") == 1:
            break
        at += 4
    tfdt = fragment.find(b"tfdt", at)
    trun = fragment.find(b"trun", at)
    if tfdt < 0 or trun < 0:
        return None
    wide = fragment[tfdt + 4] == 1
    base = int.from_bytes(fragment[tfdt + 8:tfdt + (16 if wide else 12)], "big")
    return base / VIDEO_TIMESCALE, int.from_bytes(fragment[trun + 8:trun + 12], "big")


def end_playlists(hls: Path, target: int) -> None:
    """end_playlists appends ENDLIST to every rendition's playlist (listing all its segments): a broadcast whose
    run ended without closing it (a killed worker) and that nothing completes."""
    for r in read_state(hls).get("renditions", []):
        folder = hls / r["name"]
        segments = read_segments(folder)
        if segments:
            atomic_write(folder / INDEX, media_playlist(segments, target, True, None).encode())
