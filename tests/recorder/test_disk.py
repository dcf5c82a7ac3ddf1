"""Tests of recorder/disk.py: the writer thread writes in order off the event loop; its queue holds `seconds`
of media while the disk stalls, then refuses frames until the disk has caught up with half of it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from recorder.disk import DiskWriter
from recorder.writer import read_packets, segment_paths
from tests.recorder.media import StallingDisk


class ManualClock:
    """ManualClock: the frames' arrival clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _disk(tmp_path: Path, stalling: StallingDisk, clock: ManualClock, seconds: float = 10.0,
          max_bytes: int = 1 << 20) -> DiskWriter:
    writers = {"presenter-audio": stalling.writer(tmp_path, "presenter-audio", "audio/opus", 1.0)}
    disk = DiskWriter("test", writers, seconds, max_bytes, clock)
    disk.start()
    return disk


async def test_frames_and_calls_are_written_in_order_by_the_thread(tmp_path: Path) -> None:
    disk = _disk(tmp_path, StallingDisk(), ManualClock())
    order: list[str] = []
    for i in range(100):
        assert disk.put("presenter-audio", i * 960, True, b"\xfc\xff\xfe")
        if i == 50:
            disk.call(lambda: order.append(f"call after {disk.writers['presenter-audio'].frames}"))
    await disk.close()
    assert order and order[0] == "call after 51"  # everything put before the call was written first
    packets = list(read_packets(segment_paths(tmp_path, "presenter-audio")))
    assert [pts for pts, _, _ in packets] == [i * 960 for i in range(100)]
    await disk.close()  # idempotent


async def test_a_stalled_disk_holds_seconds_of_media_then_refuses_until_it_caught_up(tmp_path: Path) -> None:
    stalling, clock = StallingDisk(), ManualClock()
    disk = _disk(tmp_path, stalling, clock, seconds=10.0)
    stalling.stall()
    n = 0
    began = time.monotonic()
    while clock.now < 10.0:  # 10 s of audio while the disk writes nothing: all of it is queued
        assert disk.put("presenter-audio", n * 960, True, b"\xfc\xff\xfe"), clock.now
        n += 1
        clock.now = round(clock.now + 0.02, 3)
    assert time.monotonic() - began < 5  # put never waited for the stalled disk
    assert not disk.put("presenter-audio", n * 960, True, b"\xfc\xff\xfe")  # the oldest is 10 s old: full
    assert disk.refusing and not disk.has_room()
    clock.now += 30.0
    assert not disk.put("presenter-audio", (n + 1) * 960, True, b"\xfc\xff\xfe")  # still stalled
    stalling.resume()
    deadline = time.monotonic() + 20
    while not disk.has_room():  # the disk catches up
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    assert disk.put("presenter-audio", (n + 2) * 960, True, b"\xfc\xff\xfe")
    assert not disk.refusing
    await disk.close()
    assert len(list(read_packets(segment_paths(tmp_path, "presenter-audio")))) == n + 1


async def _waiting(stalling: StallingDisk) -> None:
    """_waiting: the writer thread took the first frame and waits in writing it."""
    deadline = time.monotonic() + 10
    while not stalling.waiting:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)


async def _written(disk: DiskWriter, frames: int) -> None:
    deadline = time.monotonic() + 10
    while disk.writers["presenter-audio"].frames < frames:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)


async def test_after_a_refusal_it_takes_frames_again_only_at_half_the_bound(tmp_path: Path) -> None:
    stalling, clock = StallingDisk(), ManualClock()
    disk = _disk(tmp_path, stalling, clock, seconds=10.0)
    stalling.stall()
    for t in range(11):  # one frame a second; the thread waits in writing the first
        clock.now = t
        assert disk.put("presenter-audio", t * 48000, True, b"\xfc\xff\xfe")
        if t == 0:
            await _waiting(stalling)
    clock.now = 11.0
    assert not disk.put("presenter-audio", 11 * 48000, True, b"\xfc\xff\xfe")  # the oldest queued is 10 s old
    stalling.allow(4)  # 0-3 s written, 4 s being written: the oldest queued is 6 s old, over half the bound
    await _written(disk, 4)
    await _waiting(stalling)
    assert not disk.has_room() and not disk.put("presenter-audio", 11 * 48000, True, b"\xfc\xff\xfe")
    stalling.allow(1)  # 5 s old: caught up with half
    deadline = time.monotonic() + 10
    while not disk.has_room():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    assert disk.writers["presenter-audio"].frames == 5
    assert disk.put("presenter-audio", 11 * 48000, True, b"\xfc\xff\xfe")
    assert not disk.refusing
    stalling.resume()
    await disk.close()


async def test_max_bytes_bounds_the_queue_whatever_its_age(tmp_path: Path) -> None:
    stalling, clock = StallingDisk(), ManualClock()
    disk = _disk(tmp_path, stalling, clock, max_bytes=1000)
    stalling.stall()
    assert disk.put("presenter-audio", 0, True, b"x" * 100)
    await _waiting(stalling)
    for i in range(1, 11):
        assert disk.put("presenter-audio", i * 960, True, b"x" * 100)
    assert not disk.put("presenter-audio", 11 * 960, True, b"x")  # 1000 bytes queued
    stalling.resume()
    await disk.close()
    assert len(list(read_packets(segment_paths(tmp_path, "presenter-audio")))) == 11


async def test_a_failing_call_is_logged_and_writing_goes_on(tmp_path: Path) -> None:
    disk = _disk(tmp_path, StallingDisk(), ManualClock())

    def broken() -> None:
        raise OSError("no space left on device")

    disk.call(broken)
    assert disk.put("presenter-audio", 0, True, b"\xfc\xff\xfe")
    await disk.close()
    assert len(list(read_packets(segment_paths(tmp_path, "presenter-audio")))) == 1


async def test_closing_waits_for_the_stalled_disk_without_blocking_the_loop(tmp_path: Path) -> None:
    stalling = StallingDisk()
    disk = _disk(tmp_path, stalling, ManualClock())
    stalling.stall()
    assert disk.put("presenter-audio", 0, True, b"\xfc\xff\xfe")
    closing = asyncio.ensure_future(disk.close())
    ticks = 0
    for _ in range(20):
        await asyncio.sleep(0.01)
        ticks += 1
    assert ticks == 20 and not closing.done()
    stalling.resume()
    await asyncio.wait_for(closing, 10)
    assert len(list(read_packets(segment_paths(tmp_path, "presenter-audio")))) == 1


async def test_close_with_a_timeout_returns_on_a_dead_disk_and_the_thread_finishes_later(tmp_path: Path) -> None:
    stalling, clock = StallingDisk(), ManualClock()
    disk = _disk(tmp_path, stalling, clock)
    stalling.stall()
    for i in range(10):
        assert disk.put("presenter-audio", i * 960, True, b"\xfc\xff\xfe")
    began = time.monotonic()
    assert await disk.close(within=0.3) is False  # the disk takes nothing: shutdown does not hang on it
    assert time.monotonic() - began < 5
    assert not disk.done.done()
    stalling.resume()
    assert await disk.close(within=30) is True  # the disk came back: everything queued was written
    packets = list(read_packets(segment_paths(tmp_path, "presenter-audio")))
    assert [pts for pts, _, _ in packets] == [i * 960 for i in range(10)]


async def test_the_first_write_the_storage_refuses_is_told_once(tmp_path: Path) -> None:
    from recorder.writer import SegmentWriter
    from tests.server.storagetest import read_only

    told: list[OSError] = []
    writers = {slot: SegmentWriter(tmp_path, slot, "audio/opus", 0.02) for slot in ("presenter-audio", "floor-audio")}
    disk = DiskWriter("test", writers, on_error=told.append)
    disk.start()
    assert disk.put("presenter-audio", 0, True, b"\xfc\xff\xfe")
    for _ in range(100):  # its first segment is open
        if list((tmp_path / "presenter-audio").glob("*")):
            break
        await asyncio.sleep(0.02)
    with read_only(tmp_path / "presenter-audio"), read_only(tmp_path):  # no new segment, no new slot folder
        for i in range(1, 6):  # each frame starts a new segment (20 ms each): refused
            assert disk.put("presenter-audio", i * 960, True, b"\xfc\xff\xfe")
        assert disk.put("floor-audio", 0, True, b"\xfc\xff\xfe")
        disk.call(lambda: (tmp_path / "meta.json").write_text("{}"))
        await disk.close()
    assert len(told) == 1 and isinstance(told[0], OSError)  # once, whatever failed after
    assert disk.failures >= 2
