"""Tests of sfu/sfu.py: the process's rooms, their participant limits and what they forwarded."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sfu.consumer import Consumer
from sfu.errors import SfuError
from sfu.room import Room
from sfu.sfu import Sfu
from tests.sfu.helpers import CAPABILITIES, RED, Client, ColorTrack, join, publish, sfu_config, wait_until

pytestmark = pytest.mark.timeout(60)


async def presenting(sfu: Sfu, clients: list[Client],
                     before: Callable[[], bool] = lambda: True) -> tuple[Room, Client, Client]:
    """presenting: room "a" of `sfu`, a trainer publishing a red camera and a classroom decoding 10 frames of it;
    `before()` is asserted once both joined, before anything is published."""
    room = await sfu.room("a")
    trainer = await join(room, "t1", "trainer", decode=False)
    viewer = await join(room, "c1", "classroom")
    clients.extend([trainer, viewer])
    assert before()
    await publish(room, trainer, video=ColorTrack(RED))
    await wait_until(lambda: len(viewer.slot_frames("presenter-video")) >= 10, 15)
    return room, trainer, viewer


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
        room, trainer, viewer = await presenting(sfu, clients, before=lambda: sfu.forwarded() == (0, 0))
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


@pytest.mark.parametrize("above", [1, None])
async def test_media_flows_while_the_loop_waits_between_polls(clients: list[Client], above: int | None) -> None:
    """With the receive rate over `receive_wait_above` (1 packet/s here) the loop waits between its polls
    (sfu.batch) and the viewer keeps decoding; at the default threshold a small meeting never makes it wait."""
    config = sfu_config() if above is None else sfu_config(receive_wait_above=above)
    sfu = Sfu(config)
    try:
        room, trainer, viewer = await presenting(sfu, clients)
        batching = sfu.batching
        assert batching is not None
        received = sfu.received()
        await wait_until(lambda: batching.periods_on >= 2 or batching.rate > 0 and above is None, 10)
        frames = len(viewer.slot_frames("presenter-video"))
        await wait_until(lambda: len(viewer.slot_frames("presenter-video")) >= frames + 30, 15)
        assert sfu.received() > received
        if above is None:
            assert not batching.on and batching.naps == 0 and 0 < batching.rate < config.receive_wait_above
        else:
            assert batching.on and batching.naps > 30
    finally:
        await sfu.close()
    assert sfu.batching is not None and not sfu.batching.on
