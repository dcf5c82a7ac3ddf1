"""Tests of recorder/worker.py: finalizing in a child process, progress lines, failures."""

from __future__ import annotations

from pathlib import Path

import pytest

from recorder.participant import write_meta
from recorder.worker import WorkerError, run_worker
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
