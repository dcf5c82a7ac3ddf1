"""Tests of recorder/worker.py: finalizing in a child process, progress lines, failures, one worker at a time."""

from __future__ import annotations

import asyncio
import fcntl
from pathlib import Path
from typing import IO

import pytest

from recorder.participant import write_meta
from recorder.worker import LOCK_FILE, WorkerError, run_worker
from recorder.writer import segment_paths
from tests.recorder.media import recorded_directory


async def test_worker_finalizes_and_reports_progress(tmp_path: Path) -> None:
    recorded_directory(tmp_path, 2.0)
    seen: list[int] = []
    result = await run_worker(tmp_path, 5, seen.append)
    assert result["file"] == "lecture.webm" and (tmp_path / "lecture.webm").exists()
    assert seen[0] == 0 and seen[-1] == 100 and seen == sorted(seen)


async def test_worker_failure_is_reported(tmp_path: Path) -> None:
    write_meta(tmp_path, video_mime="video/vp8")
    with pytest.raises(WorkerError, match="nothing was recorded"):
        await run_worker(tmp_path, 0)


def _hold_lock(directory: Path) -> IO[bytes]:
    """_hold_lock: the recording's finalizing lock, held as another worker would."""
    handle = open(directory / LOCK_FILE, "ab")  # noqa: SIM115 (closed by the test)
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


async def test_two_workers_on_one_recording_take_turns(tmp_path: Path) -> None:
    recorded_directory(tmp_path, 2.0)
    seen: list[int] = []
    held = _hold_lock(tmp_path)  # another worker is at it
    waiting = asyncio.ensure_future(run_worker(tmp_path, 0, seen.append))
    await asyncio.sleep(1.0)
    assert not waiting.done() and seen == []  # it waits its turn
    held.close()
    first = await waiting
    second = await run_worker(tmp_path, 0, seen.append)  # the work is done: reported as it is
    assert second == first and second["originals"]
    assert segment_paths(tmp_path, "program-video") == []
