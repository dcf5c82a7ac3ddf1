"""hlsmedia: helpers of the broadcast tests: decoded pictures and sound to feed, and reading an HLS rendition back."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import av
import numpy as np

from tests.recorder.media import FFPROBE


def picture(yuv: tuple[int, int, int], size: tuple[int, int] = (320, 240)) -> Any:
    """picture: a decoded solid-colour frame (yuv420p)."""
    w, h = size
    planes = np.empty((h * 3 // 2, w), dtype=np.uint8)
    planes[:h] = yuv[0]
    planes[h:h + h // 4] = yuv[1]
    planes[h + h // 4:] = yuv[2]
    return av.VideoFrame.from_ndarray(planes, format="yuv420p")


def tone(samples: int, start: int = 0) -> np.ndarray:
    """tone: a 440 Hz mono tone (float32) of `samples` samples from sample `start`."""
    t = np.arange(start, start + samples) / 48000
    return (np.sin(2 * np.pi * 440 * t) * 0.3).astype(np.float32)


def packet_times(path: Path, stream: str) -> list[tuple[float, bool]]:
    """packet_times: (pts seconds, keyframe) of a stream's packets in an HLS playlist or media file (ffprobe)."""
    out = subprocess.run([FFPROBE, "-v", "error", "-select_streams", stream, "-show_entries", "packet=pts_time,flags",
                          "-of", "json", str(path)], capture_output=True, text=True, timeout=120, check=True)
    return [(float(p["pts_time"]), "K" in p["flags"]) for p in json.loads(out.stdout)["packets"]]


def jumps(times: list[float], step: float, tol: float = 0.002) -> list[tuple[float, float]]:
    """jumps: the (previous, next) timestamps that are not `step` apart (a gap or an overlap)."""
    return [(a, b) for a, b in zip(times, times[1:], strict=False) if abs(b - a - step) > tol]


def centre_colours(path: Path) -> list[tuple[float, tuple[int, int, int]]]:
    """centre_colours: (time, mean Y/U/V of the centre of the picture) of every frame of a playlist or file."""
    out = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            yuv = frame.to_ndarray()
            h, w = frame.height, frame.width
            y = int(yuv[h // 4:h * 3 // 4, w // 4:w * 3 // 4].mean())
            u = int(yuv[h:h + h // 4].reshape(h // 2, w // 2)[h // 8:h * 3 // 8, w // 8:w * 3 // 8].mean())
            v = int(yuv[h + h // 4:].reshape(h // 2, w // 2)[h // 8:h * 3 // 8, w // 8:w * 3 // 8].mean())
            out.append((float(frame.time or 0.0), (y, u, v)))
    return out


def near(a: tuple[int, int, int], b: tuple[int, int, int], tol: int = 30) -> bool:
    """near: two colours within `tol` on every plane."""
    return all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))
