"""Tests of sfu/sfu.py: the process's rooms, their participant limits and what they forwarded."""

from __future__ import annotations

import pytest

from sfu.consumer import Consumer
from sfu.errors import SfuError
from sfu.sfu import Sfu
from tests.sfu.helpers import CAPABILITIES, RED, Client, ColorTrack, join, publish, sfu_config, wait_until

pytestmark = pytest.mark.timeout(60)


async def test_full_room_and_full_server(clients: list[Client]) -> None:
    sfu = Sfu(sfu_config(max_participants_per_room=1, max_participants=2))
    try:
        r1 = await sfu.room("a")
        r2 = await sfu.room("b")
        clients.append(await join(r1, "x", "classroom", decode=False))
        with pytest.raises(SfuError) as err:
            await r1.join("y", "classroom", "Y", CAPABILITIES["classroom"], clients[0].on_event)
        assert err.value.code == "full"
        clients.append(await join(r2, "y", "classroom", decode=False))
        r3 = await sfu.room("c")
        with pytest.raises(SfuError) as err:
            await r3.join("z", "classroom", "Z", CAPABILITIES["classroom"], clients[0].on_event)
        assert err.value.code == "full"
    finally:
        await sfu.close()


async def test_forwarded_totals_only_grow(clients: list[Client]) -> None:
    sfu = Sfu(sfu_config())
    try:
        room = await sfu.room("a")
        trainer = await join(room, "t1", "trainer", decode=False)
        viewer = await join(room, "c1", "classroom")
        clients.extend([trainer, viewer])
        assert sfu.forwarded() == (0, 0)
        await publish(room, trainer, video=ColorTrack(RED))
        await wait_until(lambda: len(viewer.slot_frames("presenter-video")) >= 10, 15)
        packets, octets = sfu.forwarded()
        sent = [c for c in room.participants["c1"].consumers.values() if isinstance(c, Consumer)]
        assert packets == sum(c.packets_sent for c in sent) >= 10 and octets == sum(c.bytes_sent for c in sent)
        await room.leave("c1")  # its consumers are gone; what they sent is still counted
        assert sfu.forwarded_gone.packets >= packets and sfu.forwarded()[0] >= packets
        assert sfu.forwarded()[1] >= octets
        other = await sfu.room("b")  # one total for every room of the process
        assert other.forwarded_gone is room.forwarded_gone
        await room.close()
        assert sfu.forwarded()[0] >= packets and "a" not in sfu.rooms
    finally:
        await sfu.close()
