"""Tests of the recorder's place in sfu/room.py and sfu/participant.py: its slots, the program-video plan
(screen, else presenter camera, else floor camera), what it may not do, and the room-created callback."""

from __future__ import annotations

import pytest

from sfu.errors import SfuError
from sfu.events import Event
from sfu.participant import RECORDER_SLOTS, Capabilities, slots_for
from sfu.plan import grid_sources
from sfu.room import Room
from sfu.sfu import Sfu
from tests.sfu.helpers import BLUE, CAPABILITIES, RED, ColorTrack, join, publish, sfu_config


async def _noop(event: Event) -> None:
    return None


def test_recorder_slots() -> None:
    assert slots_for("recorder", Capabilities(), 9) == list(RECORDER_SLOTS)
    assert [s for s, _ in RECORDER_SLOTS][0] == "program-video"
    assert not any(s.startswith("grid-") for s, _ in slots_for("recorder", Capabilities(), 9))


async def test_program_video_follows_screen_presenter_and_floor() -> None:
    created: list[Room] = []
    sfu = Sfu(sfu_config())
    sfu.on_room_created.append(created.append)
    room = await sfu.room("7")
    assert created == [room]
    assert await sfu.room("7") is room and len(created) == 1
    clients = []
    try:
        trainer = await join(room, "t", "trainer", decode=False)
        classroom = await join(room, "c", "classroom", decode=False)
        clients += [trainer, classroom]
        await publish(room, trainer, video=ColorTrack(RED), screen=ColorTrack(BLUE))
        await publish(room, classroom, video=ColorTrack(BLUE))
        await room.join("rec", "recorder", "Ghi hình", Capabilities(), _noop, admitted=True)
        rec = room.participants["rec"]
        assert set(rec.consumers) == {s for s, _ in RECORDER_SLOTS}
        assert room.presenter_id == "t"

        def program() -> tuple[str | None, str | None, str]:
            return rec.slot_view["program-video"]

        assert program() == ("t", "screen", "live")
        await room.mute("t", "t", "screen", True)
        assert program() == ("t", "camera", "live")
        await room.give_floor("t", "c")
        assert program() == ("t", "camera", "live")  # the presenter's camera wins over the floor's
        assert rec.slot_view["floor-video"] == ("c", "camera", "live")
        await room.mute("t", "t", "camera", True)
        assert program() == ("c", "camera", "live")
        await room.mute("t", "t", "screen", False)
        assert program() == ("t", "screen", "live")
        await room.give_floor("t", None)
        await room.mute("t", "t", "screen", True)
        assert program() == (None, None, "empty")

        with pytest.raises(SfuError) as refused:
            await room.give_floor("rec", "c")
        assert refused.value.code == "forbidden"
        with pytest.raises(SfuError) as refused:
            await room.publish("rec", "v=0\r\n", {})
        assert refused.value.code == "forbidden"
        # a trainer's grid never shows the recorder
        assert "rec" not in {p.id for p in grid_sources(room.participants, room.participants["t"])}
        await room.leave("rec")
        assert "rec" not in room.participants
    finally:
        for c in clients:
            await c.close()
        await sfu.close()


async def test_locked_room_admits_the_recorder() -> None:
    sfu = Sfu(sfu_config())
    room = await sfu.room("8")
    try:
        await room.join("t", "trainer", "T", CAPABILITIES["trainer"], _noop)
        await room.set_locked("t", True)
        with pytest.raises(SfuError):
            await room.join("rec", "recorder", "Ghi hình", Capabilities(), _noop)
        await room.join("rec", "recorder", "Ghi hình", Capabilities(), _noop, admitted=True)
        assert room.participants["rec"].role == "recorder"
        assert not room.participants["rec"].capabilities.moderate and not room.participants["rec"].capabilities.present
    finally:
        await sfu.close()
