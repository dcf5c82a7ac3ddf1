"""Loopback tests of sfu/room.py with a simulcast publisher: one Producer per layer, the layer each slot takes.

The publisher is a real aiortc client whose offer is a simulcast one and which sends crafted RTP with the rid
header extensions (``tests.sfu.helpers.SimulcastPublisher``; aiortc cannot send simulcast itself).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiortc import RTCSessionDescription

from sfu.consumer import COMPILED, Consumer
from sfu.events import SlotChanged
from sfu.sfu import Sfu
from sfu.sink import Sink
from tests.sfu.helpers import (
    CAPABILITIES,
    Client,
    SimulcastPublisher,
    client_pc,
    join,
    sfu_config,
    simulcast_offer,
    wait_until,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=[pytest.param(True, marks=pytest.mark.skipif(not COMPILED, reason="sfu._fanout not built")),
                        False], ids=["compiled", "python"])
async def sfu(request: pytest.FixtureRequest) -> AsyncIterator[Sfu]:
    """sfu: with the C receive path and fan-out (when built) and in pure Python."""
    s = Sfu(sfu_config(compiled_fanout=request.param))
    yield s
    await s.close()


async def publish_simulcast(room: Any, pid: str, rids: tuple[str, ...]) -> SimulcastPublisher:
    """publish_simulcast: `pid` publishes one simulcast camera (and nothing else) from a crafting client."""
    client = client_pc()
    client.addTransceiver("video", direction="sendonly")
    await client.setLocalDescription(await client.createOffer())
    answer = await room.publish(pid, simulcast_offer(client.localDescription.sdp, rids), {"0": "camera"})
    await client.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    vp8 = int(re.search(r"a=rtpmap:(\d+) VP8/90000", answer).group(1))  # type: ignore[union-attr]
    rtx = int(re.search(rf"a=fmtp:(\d+) apt={vp8}", answer).group(1))  # type: ignore[union-attr]
    await wait_until(lambda: client.connectionState == "connected", 10)
    return SimulcastPublisher(client, vp8, rtx)


async def test_grid_takes_the_lowest_layer_large_slots_and_the_recorder_the_highest_arriving(sfu: Sfu) -> None:
    room = await sfu.room("r")
    trainer = await join(room, "t", "trainer", decode=False)
    classroom = await join(room, "c", "classroom", decode=False)
    recorded: list[int] = []
    sink = Sink("floor-video", "video", lambda seq, ts, marker, payload: recorded.append(seq))
    recorder = Client("rec")
    await room.join("rec", "recorder", "REC", CAPABILITIES["recorder"], recorder.on_event,
                    sinks={"floor-video": sink})
    publisher = await publish_simulcast(room, "c", ("q", "h", "f"))
    layers = room.participants["c"].producers["camera"].layers
    assert [(p.rid, p.layer, p.source) for p in layers] == [("q", 0, "camera"), ("h", 1, "camera"), ("f", 2, "camera")]
    await room.give_floor("t", "c")
    slots = room.participants["t"].consumers
    grid, floor = slots["grid-0"], slots["floor-video"]
    assert isinstance(grid, Consumer) and isinstance(floor, Consumer)
    sending = {"q": 0x100, "h": 0x200, "f": 0x300}
    publisher.stream("0", sending)
    await wait_until(lambda: all(p.arriving for p in layers), 10)
    # (the floor's slot goes to the lowest layer while its link's allocation has measured no layer yet: the top one
    # once the allocation has chosen)
    link = room.downlinks.links

    def chosen() -> bool:
        return "t" in link and link["t"].choice.get("floor-video") is not None and floor.pending_source is None

    await wait_until(lambda: chosen() and grid.source is layers[0] and floor.source is layers[2]
                     and sink.source is layers[2], 10)
    await wait_until(lambda: floor.packets_sent > 10 and grid.packets_sent > 10 and len(recorded) > 10, 10)
    ingress = [p.receiver.ingress for p in layers]
    assert all(g is not None and g.armed and g.packets > 0 for g in ingress) == room.config.compiled_fanout
    stats = next(p for p in room.stats().participants if p.participant_id == "c").producers
    assert [(s.rid, s.layer, s.arriving) for s in stats] == [("q", 0, True), ("h", 1, True), ("f", 2, True)]
    assert all(s.packets > 10 for s in stats)
    assert {id(c) for c in layers[0].sinks} == {id(grid)} and {id(c) for c in layers[2].sinks} == {id(floor), id(sink)}
    assert layers[1].sinks == ()
    # the top layer stops (CPU load, a small capture): the large slot and the recorder move to h, the grid stays
    del sending["f"]
    await wait_until(lambda: floor.source is layers[1] and sink.source is layers[1], 10)
    assert grid.source is layers[0] and not layers[2].arriving
    # q stops too: the grid takes the lowest layer still arriving
    del sending["q"]
    await wait_until(lambda: grid.source is layers[1], 10)
    sending["f"] = 0x300
    await wait_until(lambda: floor.source is layers[2] and sink.source is layers[2], 10)
    # muting the camera mutes every layer
    await room.mute("t", "c", "camera", True)
    assert all(p.muted for p in layers)
    await trainer.wait_event(lambda e: isinstance(e, SlotChanged) and e.slot == "floor-video" and e.state == "muted")
    assert floor.source is None and all(p.sinks == () for p in layers)
    await publisher.close()
    for c in (trainer, classroom):
        await c.close()


async def test_leaving_closes_every_layer_and_the_layer_watch_stops_with_the_last_track(sfu: Sfu) -> None:
    room = await sfu.room("r2")
    trainer = await join(room, "t", "trainer", decode=False)  # keeps the room open
    classroom = await join(room, "c", "classroom", decode=False)
    first = await publish_simulcast(room, "c", ("q", "f"))
    old = room.participants["c"].producers["camera"].layers
    assert room._watching
    await room.leave("c")
    assert all(p.closed for p in old)
    # the layer watch is a ticker job only while it has work (without media the ticker's timer runs it late)
    await wait_until(lambda: not room._watching, 20)
    for c in (first, trainer, classroom):
        await c.close()
