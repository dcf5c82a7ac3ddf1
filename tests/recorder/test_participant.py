"""Tests of recorder/participant.py: an in-process recorder in a real SFU room with aiortc publishers and
subscribers on 127.0.0.1: what it records, its program-video choice, a late event loop, and a stalled disk."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

from recorder.archive import finalize
from recorder.disk import QUEUE_SECONDS
from recorder.participant import RecorderOptions, RecordingParticipant, read_meta
from recorder.timeline import GAP_TITLE, load
from sfu.events import SlotChanged
from sfu.sfu import Sfu
from tests.recorder.media import FFPROBE, StallingDisk, ffprobe, ffprobe_seek, frame_colors
from tests.sfu.helpers import (
    BLUE,
    RED,
    ColorTrack,
    SeqLog,
    join,
    publish,
    sfu_config,
    subscribe,
    wait_until,
)


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
        rec = RecordingParticipant(room, tmp_path / "rec", RecorderOptions(segment_seconds=1.0))
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
    rec = RecordingParticipant(room, tmp_path / "rec", RecorderOptions(segment_seconds=1.0), clock=clock)
    clients = []
    try:
        red = await join(room, "t-red", "trainer", decode=False)
        clients.append(red)
        await publish(room, red, video=ColorTrack(RED))
        await rec.start()
        clock.busy = True  # from now on packets are read 0.8 s after they came...
        await wait_until(lambda: all(rec.clocks[s].last_arrival is not None
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


async def test_program_video_is_the_screen_else_the_presenter_camera_else_the_floor_camera(tmp_path: Path) -> None:
    sfu = Sfu(sfu_config())
    room = await sfu.room("44")
    clients = []
    rec = RecordingParticipant(room, tmp_path / "rec", RecorderOptions(segment_seconds=1.0))
    try:
        trainer = await join(room, "t", "trainer", decode=False)
        classroom = await join(room, "c", "classroom", decode=False)
        clients += [trainer, classroom]
        await publish(room, trainer, video=ColorTrack(RED), screen=ColorTrack(BLUE))
        await publish(room, classroom, video=ColorTrack(BLUE))
        await rec.start()

        async def program(expected: tuple[str | None, str | None, str]) -> None:
            await wait_until(lambda: rec.slot_states.get("program-video") == expected, within=10)

        await program(("t", "screen", "live"))
        await room.mute("t", "t", "screen", True)
        await program(("t", "camera", "live"))
        await room.give_floor("t", "c")
        await asyncio.sleep(0.3)
        await program(("t", "camera", "live"))  # the presenter's camera wins over the floor's
        await room.mute("t", "t", "camera", True)
        await program(("c", "camera", "live"))
        await room.mute("t", "t", "screen", False)
        await program(("t", "screen", "live"))
        await room.give_floor("t", None)
        await room.mute("t", "t", "screen", True)
        await program((None, None, "empty"))
        await rec.stop()
    finally:
        await rec.stop()
        for c in clients:
            await c.close()
        await sfu.close()
    shown = [(e.participant_id, e.source) for e in load(tmp_path / "rec") if e.kind == "program"]
    assert shown == [("t", "screen"), ("t", "camera"), ("c", "camera"), ("t", "screen"), (None, None)], shown


def video_packets(path: Path) -> list[tuple[float, bool]]:
    """video_packets lists (pts, keyframe) of a media file's video packets (ffprobe)."""
    out = subprocess.run([FFPROBE, "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time,flags",
                          "-of", "json", str(path)], capture_output=True, text=True, timeout=60, check=True)
    return [(float(p["pts_time"]), "K" in p["flags"]) for p in json.loads(out.stdout)["packets"] if "pts_time" in p]


async def _stalled_disk(tmp_path: Path, room_id: str, stall: float, queue_seconds: float) -> dict[str, Any]:
    """_stalled_disk records a meeting whose disk stalls for `stall` seconds once the recording is under way,
    with a classroom watching; returns what the classroom got, the recorder's gaps and the finalized file."""
    disk = StallingDisk()
    sfu = Sfu(sfu_config())
    room = await sfu.room(room_id)
    clients = []
    rec = RecordingParticipant(room, tmp_path / "rec", RecorderOptions(segment_seconds=1.0,
                                                                      queue_seconds=queue_seconds),
                               segment_writer=disk.writer)
    try:
        trainer = await join(room, "t", "trainer", decode=False)
        await publish(room, trainer, video=ColorTrack(RED))
        classroom, receivers = await subscribe(room, "c")
        clients += [trainer, classroom]
        video, audio = SeqLog(), SeqLog()
        receivers["presenter-video"].on_rtp = video.add
        receivers["presenter-audio"].on_rtp = audio.add
        await rec.start()
        await wait_until(lambda: rec.writers["program-video"].frames > 30, within=20)  # anchored, written
        disk.stall()
        stalled = time.monotonic()
        await asyncio.sleep(stall)
        disk.resume()
        resumed = time.monotonic()
        await asyncio.sleep(3.0)  # and media after it
        await rec.stop()
    finally:
        await rec.stop()
        for c in clients:
            await c.close()
        await sfu.close()
    during = [t for t in video.arrivals if stalled <= t <= resumed]
    result = finalize(tmp_path / "rec")
    return {
        "classroom holes": video.holes() + audio.holes(),
        "classroom silence": max(np.diff([stalled, *during, resumed])),  # longest time without a video packet
        "gaps": rec.gaps, "dropped": rec.dropped, "meta gaps": read_meta(tmp_path / "rec").get("gaps", []),
        "events": [e.kind for e in load(tmp_path / "rec")], "chapters": [c["title"] for c in result.chapters],
        "packets": video_packets(tmp_path / "rec" / result.file),
    }


async def test_a_disk_stalled_for_5_s_loses_nothing(tmp_path: Path) -> None:
    """The queue holds 10 s of media: a 5 s stall of the disk costs neither the classroom nor the file a frame."""
    out = await _stalled_disk(tmp_path, "45", stall=5.0, queue_seconds=QUEUE_SECONDS)
    # forwarding went on (a loop blocked by the disk would leave the classroom silent for the whole stall)
    assert out["classroom holes"] == [] and out["classroom silence"] < 2.0, out
    assert out["gaps"] == [] and out["dropped"] == 0 and out["meta gaps"] == [], out
    assert "gap" not in out["events"] and GAP_TITLE not in out["chapters"]
    pts = [t for t, _ in out["packets"]]
    steps = np.diff(pts)
    assert steps.max() < 0.05, (steps.max(), pts[:3], pts[-3:])  # every frame: 1/30 s apart (1 ms ticks)
    assert pts[-1] - pts[0] > 5.0 + 2.0, (pts[0], pts[-1])  # from before the stall to after it


async def test_a_disk_stalled_longer_than_the_queue_leaves_one_marked_gap(tmp_path: Path) -> None:
    """30 s of stall against the 10 s queue, with time compressed by 10/3: a 9 s stall against 3 s. The classroom
    loses nothing; the recording drops media once, in one episode, marked in meta.json, the timeline and the
    chapters, and the file goes on at a keyframe."""
    out = await _stalled_disk(tmp_path, "46", stall=9.0, queue_seconds=3.0)
    assert out["classroom holes"] == [] and out["classroom silence"] < 2.0, out
    assert len(out["gaps"]) == 1 and out["dropped"] > 0, out
    gap = out["gaps"][0]
    assert gap.end is not None and gap.end - gap.start > 3.0, out  # dropping while the disk was still stalled
    assert out["meta gaps"] == [{"start": gap.start, "end": gap.end, "dropped": gap.dropped}], out
    assert out["events"].count("gap") == 1 and out["events"].count("resume") == 1, out
    assert out["chapters"].count(GAP_TITLE) == 1, out
    packets = out["packets"]
    holes = [i for i in range(1, len(packets)) if packets[i][0] - packets[i - 1][0] > 0.5]
    assert len(holes) == 1, [(packets[i - 1][0], packets[i][0]) for i in holes]  # one gap in the file
    before, after = packets[holes[0] - 1], packets[holes[0]]
    assert after[1], (before, after)  # it resumes at a keyframe
    assert abs(before[0] - gap.start) < 1.5 and abs(after[0] - gap.end) < 1.5, (before, after, gap)
    assert packets[-1][0] - after[0] > 2.0, (after, packets[-1])  # and goes on


class GatedTrack(ColorTrack):
    """GatedTrack: a browser's reserved screen transceiver: it sends nothing until `open` is set (sharing starts)."""

    def __init__(self, yuv: tuple[int, int, int]) -> None:
        super().__init__(yuv)
        self.open = asyncio.Event()

    async def recv(self) -> Any:
        await self.open.wait()
        return await super().recv()


async def test_chapters_follow_what_the_lecture_shows(tmp_path: Path) -> None:
    """A scripted meeting: the presenter's page reserves a screen transceiver (the room sees the screen live for a
    moment though it sends nothing), shares and stops, sets a marker that a screen share 1 s later must not
    swallow, and hands over to another presenter. The chapters are what the lecture video shows, at its times."""
    sfu = Sfu(sfu_config())
    room = await sfu.room("47")
    clients = []
    screen = GatedTrack(BLUE)
    rec = RecordingParticipant(room, tmp_path / "rec", RecorderOptions(segment_seconds=1.0))
    script: list[tuple[float, str]] = []
    try:
        a = await join(room, "a", "trainer", decode=False)
        b = await join(room, "b", "leader", decode=False)
        clients += [a, b]
        await publish(room, a, video=ColorTrack(RED), screen=screen)
        await publish(room, b, video=ColorTrack(RED))
        await rec.start()
        await asyncio.sleep(0.5)
        await room.mute("a", "a", "screen", True)  # as the page does once published: nothing shared yet
        script.append((0.0, "Người trình bày: A"))

        async def at(t: float) -> None:
            await asyncio.sleep(max(0.0, t - rec.elapsed))

        await at(3.0)
        screen.open.set()
        await room.mute("a", "a", "screen", False)
        script.append((rec.elapsed, "Chia sẻ màn hình: A"))
        await at(6.0)
        await room.mute("a", "a", "screen", True)
        script.append((rec.elapsed, "Người trình bày: A"))
        await at(9.0)
        rec.marker("Phần 2: Thảo luận")
        script.append((rec.elapsed, "Phần 2: Thảo luận"))
        await asyncio.sleep(1.0)
        await room.mute("a", "a", "screen", False)  # an automatic chapter 1 s after the marker: it yields
        await at(12.0)
        await room.set_presenter("a", "b")
        script.append((rec.elapsed, "Người trình bày: B"))
        await at(15.0)
        await rec.stop()
    finally:
        await rec.stop()
        for c in clients:
            await c.close()
        await sfu.close()
    events = load(tmp_path / "rec")
    assert any(e.kind == "screen" and e.t < 1.5 for e in events), events  # the room did show the screen live
    result = finalize(tmp_path / "rec")
    got = [(c["start"], c["title"]) for c in result.chapters]
    assert [title for _, title in got] == [title for _, title in script], (got, script)
    for (start, _), (expected, _) in zip(got, script, strict=True):
        assert expected - 0.1 <= start <= expected + 1.5, (got, script)  # a keyframe after the switch at most
    assert result.chapters[-1]["end"] == result.duration
