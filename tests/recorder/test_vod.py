"""Tests of recorder/vod.py: the archive's renditions from a finalized recording's lecture file: all of it for a
recording never broadcast (with progress), the rest of it after a live broadcast a killed server left open, and
nothing for one broadcast to its end."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from recorder.archive import finalize
from recorder.broadcast import Header
from recorder.hls import OutputOptions, Rendition, is_ended, read_segments
from recorder.program import Program
from recorder.vod import complete
from tests.recorder.hlsmedia import jumps, packet_times, picture, tone
from tests.recorder.media import recorded_directory

SMALL = [{"name": "240p", "width": 320, "height": 240, "video_kbps": 300},
         {"name": "120p", "width": 160, "height": 120, "video_kbps": 100}]


def _header(directory: Path) -> Header:
    return Header(directory=str(directory), renditions=SMALL, fps=15, segment_seconds=1.0, preset="ultrafast")


def test_a_recording_never_broadcast_gets_all_of_it_with_progress(tmp_path: Path) -> None:
    recorded_directory(tmp_path, 6.0)
    result = finalize(tmp_path)
    stdin = json.dumps(asdict(_header(tmp_path))).encode() + b"\n"
    done = subprocess.run([sys.executable, "-m", "recorder.vod", str(tmp_path), "--nice", "0"], input=stdin,
                          capture_output=True, timeout=120, check=True)
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    percents = [line["progress"] for line in lines if "progress" in line]
    assert percents[0] == 0 and percents[-1] == 100 and len(percents) >= 5 and percents == sorted(percents)
    assert lines[-1]["done"]["segments"] == 6
    hls = tmp_path / "hls"
    assert is_ended(hls) and (tmp_path / result.file).exists()
    master = (hls / "master.m3u8").read_text()
    assert "120p/index.m3u8" in master and "240p" not in master  # the synthetic camera is 160 × 120
    times = [t for t, _k in packet_times(hls / "120p" / "index.m3u8", "v:0")]
    assert jumps(times, 1 / 15) == [] and abs(times[-1] + 1 / 15 - result.duration) < 0.1
    assert complete(tmp_path, _header(tmp_path)) == 0  # done: nothing more


def test_a_broadcast_cut_short_is_completed_from_the_lecture(tmp_path: Path) -> None:
    recorded_directory(tmp_path, 6.0)
    result = finalize(tmp_path)
    live = Program(tmp_path, OutputOptions(fps=15, segment_seconds=1.0, preset="ultrafast"), 0.0)
    live.begin([Rendition(**SMALL[1])])
    for i in range(30):  # 2 s of live broadcast, then the server was killed: no ENDLIST
        live.picture(i / 15, picture((76, 84, 255), (160, 120)))
        live.sound_at(i * 3200, tone(3200))
        live.advance(i / 15)
    live.finish(ended=False)
    listed = read_segments(tmp_path / "hls" / "120p")
    assert listed and not is_ended(tmp_path / "hls")
    seen: list[float] = []
    assert complete(tmp_path, _header(tmp_path), seen.append) > 0
    segments = read_segments(tmp_path / "hls" / "120p")
    assert segments[:len(listed)] == listed and segments[len(listed)].discontinuity
    assert [s.n for s in segments] == list(range(len(segments)))
    assert abs(segments[-1].t + segments[-1].duration - result.duration) < 0.1 and seen[-1] == 1.0
    text = (tmp_path / "hls" / "120p" / "index.m3u8").read_text()
    assert text.count("#EXT-X-DISCONTINUITY\n") == 1 and text.rstrip().endswith("#EXT-X-ENDLIST")
