"""Loopback tests of sfu/room.py's recovery paths with real aiortc peers: a participant whose media connections
fail stays in the room `reconnecting` (PeerFailed, slots say reconnecting), `restart` renews its media with new
Peers, and the resume window still ends a participant that never comes back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from sfu.events import (
    FloorChanged,
    HandChanged,
    ParticipantLeft,
    ParticipantState,
    PeerFailed,
    ServerOffer,
    SlotChanged,
)
from sfu.room import Room
from sfu.sfu import Sfu
from tests.sfu.helpers import (
    BLUE,
    RED,
    Client,
    ColorTrack,
    answer_offer,
    cut,
    join,
    publish,
    sfu_config,
    wait_until,
)
from tests.sfu.test_room import colour

pytestmark = pytest.mark.timeout(60)

CONSENT = 0.25  # s between consent checks: consent expires after six unanswered, about 1.5 s after a cut


async def renew(room: Room, c: Client, video: Any) -> None:
    """renew: what the browser does after PeerFailed: new connections over the same signalling channel."""
    seen = len(c.events)
    await c.close()
    c.tasks, c.frames = [], {}
    await room.restart(c.pid)
    await wait_until(lambda: any(isinstance(e, ServerOffer) for e in c.events[seen:]), 5)
    offer = next(e for e in c.events[seen:] if isinstance(e, ServerOffer))
    await answer_offer(room, c, offer)
    await publish(room, c, video=video)


@pytest.fixture
async def sfu() -> AsyncIterator[Sfu]:
    """sfu: quick consent checks, so that a cut fails a peer within seconds."""
    s = Sfu(sfu_config(consent_interval=CONSENT, resume_seconds=20.0))
    yield s
    await s.close()


async def test_a_failed_peer_keeps_the_participant_reconnecting_and_restart_renews_its_media(
    sfu: Sfu, clients: list[Client]
) -> None:
    room = await sfu.room("rec1")
    trainer = await join(room, "t1", "trainer")
    c = await join(room, "c1", "classroom")
    clients.extend([trainer, c])
    await publish(room, trainer, video=ColorTrack(RED))
    await publish(room, c, video=ColorTrack(RED))
    await room.raise_hand("c1", True)
    await room.give_floor("t1", "c1")
    await room.raise_hand("c1", True)
    floor = trainer.slot_frames
    await wait_until(lambda: len(floor("floor-video")) >= 10 and len(floor("floor-audio")) >= 10, 15)
    await wait_until(lambda: len(c.slot_frames("presenter-video")) >= 10, 15)
    slots_before = dict(c.slots)
    mark = len(trainer.events)

    cut(c.up)
    cut(c.down)
    failed = await c.wait_event(lambda e: isinstance(e, PeerFailed), 15)
    assert isinstance(failed, PeerFailed) and failed.state in ("failed", "closed")
    await trainer.wait_event(lambda e: isinstance(e, ParticipantState) and e.participant_id == "c1"
                             and e.state == "reconnecting", 5)
    await trainer.wait_event(lambda e: isinstance(e, SlotChanged) and e.slot == "floor-video"
                             and e.participant_id == "c1" and e.state == "reconnecting", 5)
    # still in the room, with its floor and its raised hand
    assert room.participants["c1"].state == "reconnecting"
    assert room.floor_id == "c1"
    assert room.snapshot().participant("c1") is not None
    assert room.participants["c1"].hand_raised

    await renew(room, c, ColorTrack(BLUE))
    await trainer.wait_event(lambda e: isinstance(e, ParticipantState) and e.participant_id == "c1"
                             and e.state == "connected", 5)
    assert c.slots == slots_before  # the same slots, in a new down connection
    n = len(floor("floor-video"))
    await wait_until(lambda: len(floor("floor-video")) >= n + 10, 15)  # its camera reaches the others again
    assert colour(floor("floor-video")[-1]) == "blue"
    await wait_until(lambda: len(c.slot_frames("presenter-video")) >= 10, 15)  # and it receives again
    await wait_until(lambda: len(c.slot_frames("presenter-audio")) >= 10, 15)
    assert room.floor_id == "c1" and room.participants["c1"].hand_raised
    since_cut = trainer.events[mark:]
    assert not any(isinstance(e, ParticipantLeft | HandChanged | FloorChanged) for e in since_cut)
    # from the cut until it published again its slot said reconnecting, never empty
    states = [e.state for e in since_cut if isinstance(e, SlotChanged) and e.slot == "floor-video"]
    assert states[-1] == "live" and set(states[:-1]) == {"reconnecting"}, states


async def test_restart_of_a_connected_participant_renews_without_leaving(sfu: Sfu, clients: list[Client]) -> None:
    room = await sfu.room("rec2")
    trainer = await join(room, "t1", "trainer", decode=False)
    c = await join(room, "c1", "classroom")
    clients.extend([trainer, c])
    await publish(room, trainer, video=ColorTrack(RED))
    await wait_until(lambda: len(c.slot_frames("presenter-video")) >= 10, 15)

    await renew(room, c, ColorTrack(BLUE))  # the client saw its connections fail on its own
    await wait_until(lambda: len(c.slot_frames("presenter-video")) >= 10, 15)
    assert not any(isinstance(e, ParticipantLeft | ParticipantState) for e in trainer.events)
    assert room.participants["c1"].state == "connected"


async def test_a_participant_that_does_not_renew_is_removed_after_the_resume_window(clients: list[Client]) -> None:
    sfu = Sfu(sfu_config(consent_interval=CONSENT, resume_seconds=1.0))
    try:
        room = await sfu.room("rec3")
        trainer = await join(room, "t1", "trainer", decode=False)
        c = await join(room, "c1", "classroom", decode=False)
        clients.extend([trainer, c])
        await publish(room, c, video=ColorTrack(RED))
        await wait_until(lambda: room.participants["c1"].down is not None
                         and room.participants["c1"].down.state == "connected", 10)
        cut(c.up)
        cut(c.down)
        await c.wait_event(lambda e: isinstance(e, PeerFailed), 15)
        await trainer.wait_event(lambda e: isinstance(e, ParticipantState) and e.state == "reconnecting", 5)
        left = await trainer.wait_event(lambda e: isinstance(e, ParticipantLeft) and e.participant_id == "c1", 5)
        assert isinstance(left, ParticipantLeft) and left.reason == "timeout"
        assert "c1" not in room.participants
        mine = await c.wait_event(lambda e: isinstance(e, ParticipantLeft), 2)  # told itself, on its open channel
        assert isinstance(mine, ParticipantLeft) and mine.participant_id == "c1" and mine.reason == "timeout"
    finally:
        await sfu.close()
