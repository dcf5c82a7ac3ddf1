"""hlsgen: HLS broadcasts made with the ffmpeg CLI in the layout the broadcaster writes (server.live.watch).

`<dir>/master.m3u8` (two renditions, `720p` and `360p` by default), `<dir>/<rendition>/index.m3u8` fMP4 media
playlists with `#EXT-X-MAP:URI="init.mp4"` and segments `seg<N>.m4s`, written whole before they are listed
(ffmpeg's `temp_file`), playlists replaced atomically. `make_hls` writes a finished one (with `#EXT-X-ENDLIST`) as
fast as ffmpeg can; `LiveHls` runs one in real time (`-re`): live until `stop()`, which ends it with ENDLIST. Used
by the watch tests, the browser test and bench/broadcast.py.
"""

from __future__ import annotations

import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

RENDITIONS = (("720p", 1280, 720, "1500k"), ("360p", 640, 360, "400k"))
SMALL = (("720p", 320, 180, "300k"), ("360p", 160, 90, "100k"))  # tests: the names matter, not the pixels


def ffmpeg_args(hls: Path, *, seconds: float | None, realtime: bool, renditions: tuple[tuple[str, int, int, str], ...],
                segment: float = 2.0, fps: int = 25, preset: str = "ultrafast") -> list[str]:
    """ffmpeg_args: the command line making `renditions` of a test picture and tone under `hls`."""
    width, height = renditions[0][1], renditions[0][2]
    args = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y"]
    if realtime:
        args.append("-re")
    limit = ["-t", str(seconds)] if seconds is not None else []
    args += [*limit, "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}",
             *limit, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
    split = "".join(f"[v{i}]" for i in range(len(renditions)))
    chains = [f"[0:v]split={len(renditions)}{split}"]
    for i, (_name, w, h, _rate) in enumerate(renditions):
        chains.append(f"[v{i}]scale={w}:{h}[o{i}]")
    args += ["-filter_complex", ";".join(chains)]
    gop = int(segment * fps)
    for i, (name, _w, _h, rate) in enumerate(renditions):
        out = hls / name
        out.mkdir(parents=True, exist_ok=True)
        args += ["-map", f"[o{i}]", "-map", "1:a", "-c:v", "libx264", "-preset", preset, "-tune", "zerolatency",
                 "-profile:v", "main", "-pix_fmt", "yuv420p", "-b:v", rate, "-g", str(gop), "-keyint_min", str(gop),
                 "-sc_threshold", "0", "-c:a", "aac", "-b:a", "64k", "-ac", "1",
                 "-f", "hls", "-hls_time", str(segment), "-hls_segment_type", "fmp4", "-hls_playlist_type", "event",
                 "-hls_fmp4_init_filename", "init.mp4",
                 "-hls_flags", "temp_file+independent_segments+program_date_time",
                 "-hls_segment_filename", str(out / "seg%d.m4s"), str(out / "index.m3u8")]
    return args


def write_master(hls: Path, renditions: tuple[tuple[str, int, int, str], ...]) -> None:
    """write_master: the multivariant playlist naming each rendition (atomically replaced)."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for name, w, h, rate in renditions:
        bandwidth = int(rate.rstrip("k")) * 1000 + 64_000
        lines += [f'#EXT-X-STREAM-INF:BANDWIDTH={bandwidth},RESOLUTION={w}x{h},CODECS="avc1.4d401f,mp4a.40.2"',
                  f"{name}/index.m3u8"]
    tmp = hls / "master.m3u8.tmp"
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(hls / "master.m3u8")


def make_hls(hls: Path, seconds: float = 6.0, renditions: tuple[tuple[str, int, int, str], ...] = SMALL) -> Path:
    """make_hls: a finished broadcast of `seconds` under `hls` (blocking); returns `hls`."""
    hls.mkdir(parents=True, exist_ok=True)
    subprocess.run(ffmpeg_args(hls, seconds=seconds, realtime=False, renditions=renditions), check=True,
                   timeout=120)
    write_master(hls, renditions)
    return hls


@dataclass
class LiveHls:
    """LiveHls: a real-time broadcast written under `hls` by ffmpeg until `stop()` (then it carries ENDLIST)."""

    hls: Path
    renditions: tuple[tuple[str, int, int, str], ...] = SMALL
    segment: float = 2.0
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self, first_segment_timeout: float = 30.0) -> LiveHls:
        """LiveHls.start: start ffmpeg; returns once every rendition lists a segment and the master is written."""
        self.hls.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(ffmpeg_args(self.hls, seconds=None, realtime=True, renditions=self.renditions,
                                                 segment=self.segment), stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + first_segment_timeout
        while time.monotonic() < deadline:
            if all(b".m4s" in self._read(name) for name, *_ in self.renditions):
                write_master(self.hls, self.renditions)
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"ffmpeg exited with {self.proc.returncode}")
            time.sleep(0.1)
        self.stop()
        raise TimeoutError("no HLS segment within the time allowed")

    def _read(self, name: str) -> bytes:
        try:
            return (self.hls / name / "index.m3u8").read_bytes()
        except OSError:
            return b""

    def segments(self, name: str = "720p") -> int:
        """LiveHls.segments: how many segments the rendition's playlist lists now."""
        return self._read(name).count(b".m4s")

    def stop(self) -> None:
        """LiveHls.stop: end the broadcast (ffmpeg finishes its playlists with ENDLIST)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
