"""Tests of server/live/finisher.py: a real server process stopped by SIGTERM during a recording stops within its
shutdown time, and the recording becomes ready without a restart (the finisher it handed it to finalizes it)."""

from __future__ import annotations

import asyncio
import fcntl
import signal
import time
from pathlib import Path

import sqlalchemy as sa

from recorder.worker import LOCK_FILE
from server.db.models import Recording, RecordingState
from tests.recorder.media import ffprobe
from tests.server.live.test_recordings import served_recording
from tests.server.test_serve import _free_port


def _recording(data_dir: Path) -> Recording | None:
    engine = sa.create_engine(f"sqlite:///{data_dir / 'taphuan.sqlite3'}")
    try:
        with sa.orm.Session(engine) as s:
            return s.scalars(sa.select(Recording)).first()
    finally:
        engine.dispose()


def _wait_for_lock(directory: Path) -> None:
    with open(directory / LOCK_FILE, "ab") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)


async def test_sigterm_during_a_recording_finalizes_it_without_a_restart(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "data", _free_port()
    async with served_recording(data_dir, port) as (proc, lc):
        began = time.monotonic()
        await asyncio.sleep(4.0)
        real = time.monotonic() - began
        stopping = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        await lc.wait(lambda m: m.get("type") == "closed" and m.get("reason") == "server-shutdown")
        await asyncio.to_thread(proc.wait, 30)
        stopped_in = time.monotonic() - stopping
    assert proc.returncode == 0
    assert stopped_in < 20  # the server did not wait for the lecture file (a generous bound: shutdown_timeout 3 s)

    deadline = time.monotonic() + 90  # no restart: the recording gets ready all the same
    while (row := _recording(data_dir)) is None or row.state not in (RecordingState.READY, RecordingState.FAILED):
        assert time.monotonic() < deadline, row.state if row else None
        await asyncio.sleep(0.5)
    assert row.state == RecordingState.READY, row.error
    assert not row.recovered  # finalized, not recovered after a crash
    directory = data_dir / "recordings" / row.directory
    await asyncio.to_thread(_wait_for_lock, directory)  # the finisher's worker is done with it (originals included)
    while not (row := _recording(data_dir)) or not row.originals:  # and the finisher has written so
        assert time.monotonic() < deadline
        await asyncio.sleep(0.2)
    info = ffprobe(directory / row.file)
    assert {s["codec_name"] for s in info["streams"]} == {"vp8", "opus"}
    assert float(info["format"]["duration"]) >= real - 1.5, (info["format"]["duration"], real)
