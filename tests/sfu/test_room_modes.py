"""Loopback tests of room modes: audio-only viewers and lobby admission into a locked room."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from sfu.consumer import COMPILED
from sfu.errors import SfuError
from sfu.events import SlotChanged
from sfu.sfu import Sfu
from tests.sfu.helpers import CAPABILITIES, RED, Client, ColorTrack, join, publish, sfu_config, wait_until

pytestmark = pytest.mark.timeout(60)
needs_c = pytest.mark.skipif(not COMPILED, reason="sfu._fanout not built")


@pytest.fixture(params=[pytest.param(True, marks=needs_c), False], ids=["compiled", "python"])
async def sfu(request: pytest.FixtureRequest) -> AsyncIterator[Sfu]:
    """sfu: every test runs with the C fan-out (when built) and with the pure-Python forwarding path."""
    s = Sfu(sfu_config(compiled_fanout=request.param))
    yield s
    await s.close()


async def test_audio_only_stops_video_keeps_audio(sfu: Sfu, clients: list[Client]) -> None:
    room = await sfu.room("modes-a")
    t = await join(room, "t1", "trainer", decode=False)
    v = await join(room, "v1", "classroom", decode=False)
    clients.extend([t, v])
    await publish(room, t, video=ColorTrack(RED))
    video = room.participants["v1"].consumers["presenter-video"]
    audio = room.participants["v1"].consumers["presenter-audio"]
    await wait_until(lambda: video.packets_sent > 10 and audio.packets_sent > 10, 10)
    await room.set_audio_only("v1", True)
    await v.wait_event(lambda e: isinstance(e, SlotChanged) and e.slot == "presenter-video"
                       and e.state == "paused", 5)
    sent_video, sent_audio = video.packets_sent, audio.packets_sent
    await asyncio.sleep(0.6)
    assert video.packets_sent == sent_video
    assert audio.packets_sent > sent_audio
    await room.set_audio_only("v1", False)
    await v.wait_event(lambda e: isinstance(e, SlotChanged) and e.slot == "presenter-video"
                       and e.state == "live", 5)
    await wait_until(lambda: video.packets_sent > sent_video + 5, 10)


async def test_locked_room_admits_only_from_lobby(sfu: Sfu, clients: list[Client]) -> None:
    room = await sfu.room("modes-b")
    t = await join(room, "t1", "trainer", decode=False)
    clients.append(t)
    await room.set_locked("t1", True)

    async def sink(_: object) -> None:
        return None

    with pytest.raises(SfuError) as info:
        await room.join("c1", "classroom", "C1", CAPABILITIES["classroom"], sink)
    assert info.value.code == "forbidden"
    await room.join("c1", "classroom", "C1", CAPABILITIES["classroom"], sink, admitted=True)
    assert "c1" in room.participants
