"""vod: the archive's HLS renditions made from a finalized recording's lecture file, in a child process.

``python -m recorder.vod <directory> --nice N`` reads one JSON line on its standard input (the broadcast's
settings, as ``recorder.broadcast.Header``), decodes the lecture file once and encodes it once per rendition
(``recorder.program``) into ``<directory>/hls`` in the live broadcast's layout, ending with ``#EXT-X-ENDLIST``.
It prints ``{"progress": 0..100}`` lines and ``{"done": {"seconds": s, "segments": n}}`` (or ``{"error": ...}``).

It completes what is there: a recording broadcast live to its end has nothing left to do; one whose live
broadcast stopped early (a killed server) gets the rest of its lecture appended after the listed segments (a
discontinuity); one never broadcast gets all of it. The lecture file stays as it is.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av

from recorder.archive import read_result, to_mono
from recorder.broadcast import Header
from recorder.hls import HLS_DIR, OutputOptions, Rendition, end_playlists, is_ended, ladder, listed_end, read_state
from recorder.program import Program
from recorder.worker import progress_printer

AUDIO_RATE = 48000
LOOKBEHIND = 1.0  # output is emitted this far behind the newest packet read (the file interleaves its streams)


class VodError(Exception):
    """VodError: the lecture file is missing or unreadable."""


def complete(directory: Path, header: Header, progress: Callable[[float], None] | None = None) -> int:
    """complete writes the renditions of what the lecture file holds past the listed segments; returns the number
    of segments written (see the module doc)."""
    report = progress or (lambda _f: None)
    hls = directory / HLS_DIR
    if is_ended(hls):
        report(1.0)
        return 0
    result = read_result(directory)
    if result is None or not (directory / result.file).exists():
        raise VodError("no lecture file")
    start = listed_end(hls)
    if start >= result.duration - 0.5:  # the live broadcast reached the end: close its playlists
        end_playlists(hls, max(1, round(header.segment_seconds + 0.49)))
        report(1.0)
        return 0
    options = OutputOptions(fps=header.fps, segment_seconds=header.segment_seconds, preset=header.preset,
                            threads=header.threads, window_seconds=None, audio_kbps=header.audio_kbps,
                            wall0=_wall0(directory))
    program = Program(directory, options, start)
    configured = [Rendition(**r) for r in header.renditions]
    container: Any = av.open(str(directory / result.file))
    try:
        streams = list(container.streams.video[:1]) + list(container.streams.audio[:1])
        if start > 0:
            container.seek(int(max(0.0, start - 5.0) * av.time_base), any_frame=False)
        for stream in streams:
            stream.thread_type = "AUTO" if stream.type == "video" else stream.thread_type
        newest = start
        next_report = 0.0
        for packet in container.demux(*streams):
            for frame in packet.decode():
                t = float(frame.time or 0.0)
                if isinstance(frame, av.VideoFrame):
                    if not program.started:
                        program.begin(program.earlier_renditions() or ladder(configured, frame.height))
                    program.picture(t, frame)
                else:
                    if not program.started and not container.streams.video:
                        program.begin(program.earlier_renditions() or ladder(configured, 0))
                    program.sound_at(round(t * AUDIO_RATE), to_mono(frame))
                newest = max(newest, t)
            program.advance(newest - LOOKBEHIND)
            if newest >= next_report:
                report(min(0.99, (newest - start) / max(result.duration - start, 1.0)))
                next_report = newest + max(1.0, (result.duration - start) / 100)
        program.finish(True, until=max(program.time, result.duration))
    finally:
        container.close()
    report(1.0)
    return sum(o.written for o in program.outputs[:1])


def _wall0(directory: Path) -> float:
    """_wall0: the wall-clock time of the recording's start (meta.json), for PROGRAM-DATE-TIME."""
    from recorder.participant import read_meta

    state = read_state(directory / HLS_DIR)
    if isinstance(state.get("wall0"), (int, float)):
        return float(state["wall0"])
    started = read_meta(directory).get("started_at")
    return float(started) if isinstance(started, (int, float)) else time.time()


def main(argv: list[str] | None = None) -> int:
    """main: the worker's command line (see the module doc)."""
    parser = argparse.ArgumentParser(prog="python -m recorder.vod")
    parser.add_argument("directory", type=Path)
    parser.add_argument("--nice", type=int, default=10)
    args = parser.parse_args(argv)
    if args.nice > 0:
        os.nice(args.nice)
    header = Header(**json.loads(sys.stdin.readline()))
    progress = progress_printer()

    began = time.monotonic()
    try:
        segments = complete(args.directory, header, progress)
    except VodError as exc:
        print(json.dumps({"error": str(exc)}), flush=True)
        return 1
    except Exception as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
        raise
    print(json.dumps({"done": {"seconds": round(time.monotonic() - began, 2), "segments": segments}}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
