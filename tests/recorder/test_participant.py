"""Tests of recorder/participant.py: an in-process recorder in a real SFU room with aiortc publishers."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from recorder.archive import finalize
from recorder.participant import RecorderOptions, RecordingParticipant, read_meta
from recorder.timeline import load
from sfu.events import SlotChanged
from sfu.sfu import Sfu
from tests.recorder.media import ffprobe, ffprobe_seek, frame_colors
from tests.sfu.helpers import BLUE, RED, ColorTrack, join, publish, sfu_config, wait_until


class LateClock:
    """LateClock is time.monotonic as a busy event loop reads it: `late` seconds behind while `busy`."""

    def __init__(self, late: float) -> None:
        self.late = late
        self.busy = False

    def __call__(self) -> float:
        return time.monotonic() + (self.late if self.busy else 0.0)


def block_loop(seconds: float) -> None:
    """block_loop stops the whole event loop (SFU, publisher, recorder) for `seconds`, on purpose."""
    time.sleep(seconds)


def _close(a: tuple[int, int, int], b: tuple[int, int, int], tol: int = 24) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


async def test_records_meeting_and_follows_presenter_change(tmp_path: Path) -> None:
    sfu = Sfu(sfu_config())
    room = await sfu.room("42")
    clients = []
    rec = None
    try:
        red = await join(room, "t-red", "trainer", decode=False)
        blue = await join(room, "t-blue", "trainer", decode=False)
        clients += [red, blue]
        await publish(room, red, video=ColorTrack(RED))
        await publish(room, blue, video=ColorTrack(BLUE))
        rec = RecordingParticipant(room, tmp_path / "rec", RecorderOptions(ice_addresses=["127.0.0.1"],
                                                                          segment_seconds=1.0))
        await rec.start()
        began = time.monotonic()
        await wait_until(lambda: rec.writers["program-video"].frames > 30, within=20)
        assert room.participants[rec.participant_id].role == "recorder"
        await asyncio.sleep(2.5)
        switched_at = rec.elapsed
        await room.set_presenter("t-red", "t-blue")
        await red.wait_event(lambda e: True)
        await asyncio.sleep(3.0)
        waited = time.monotonic() - began
        real = rec.elapsed
        await rec.stop()  # waits for the media sent before it: takes a moment
        assert waited < real  # the recording's clock started before `began`
    finally:
        if rec is not None:
            await rec.stop()
        for c in clients:
            await c.close()
        await sfu.close()
    assert rec.participant_id not in room.participants
    assert not any(isinstance(e, SlotChanged) and e.participant_id == rec.participant_id for e in red.events)
    kinds = [e.kind for e in load(tmp_path / "rec")]
    assert "program" in kinds and "presenter" in kinds and kinds[-1] == "stop"
    assert read_meta(tmp_path / "rec")["video_codec"] == "VP8"

    result = finalize(tmp_path / "rec")
    lecture = tmp_path / "rec" / result.file
    info = ffprobe(lecture)
    codecs = sorted(s["codec_name"] for s in info["streams"])
    assert codecs == ["opus", "vp8"]
    duration = float(info["format"]["duration"])
    assert abs(duration - real) <= 0.02 * real, (duration, real)
    assert ffprobe_seek(lecture, duration / 2) > 0
    assert set(result.originals) >= {"presenter-video", "presenter-audio"}
    colours = frame_colors(lecture)
    before = [c for t, c in colours if t < switched_at - 0.5]
    after = [c for t, c in colours if t > switched_at + 1.5]
    assert before and after
    assert _close(before[-1], RED) and not _close(before[-1], BLUE), before[-1]
    assert _close(after[-1], BLUE), after[-1]


async def test_a_late_event_loop_neither_stretches_nor_cuts_the_recording(tmp_path: Path) -> None:
    """The first packets are read 0.8 s late (a busy loop), and the loop is blocked just before the stop.

    Packets read late must not move the recording's start (nor stretch it), and what the publisher sent
    before the stop but the recorder had not read yet still belongs to it: the lecture lasts the meeting.
    """
    sfu = Sfu(sfu_config())
    room = await sfu.room("43")
    clock = LateClock(0.8)
    rec = RecordingParticipant(room, tmp_path / "rec", RecorderOptions(ice_addresses=["127.0.0.1"],
                                                                      segment_seconds=1.0), clock=clock)
    clients = []
    try:
        red = await join(room, "t-red", "trainer", decode=False)
        clients.append(red)
        await publish(room, red, video=ColorTrack(RED))
        await rec.start()
        clock.busy = True  # from now on packets are read 0.8 s after they came...
        await wait_until(lambda: all(rec.writers[s].last_arrival is not None
                                     for s in ("program-video", "presenter-audio")), within=20)
        await asyncio.sleep(0.5)
        clock.busy = False  # ...until half a second after the first frames
        await wait_until(lambda: rec.writers["program-video"].frames > 60, within=20)  # anchored, written
        block_loop(0.6)  # nothing runs: the publisher's last 0.6 s is sent only once the loop runs again
        real = rec.elapsed
        await rec.stop()
    finally:
        await rec.stop()
        for c in clients:
            await c.close()
        await sfu.close()
    assert rec.duration <= real + 0.001
    assert rec.duration >= real - 0.1, (rec.duration, real)  # a frame interval, give or take
    result = finalize(tmp_path / "rec")
    info = ffprobe(tmp_path / "rec" / result.file)
    duration = float(info["format"]["duration"])
    assert abs(duration - real) <= 0.02 * real, (duration, real)
