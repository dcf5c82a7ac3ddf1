"""Tests of sfu/snapshot.py: what Room.snapshot() and join show, frozen at the moment they were taken."""

from __future__ import annotations

import dataclasses

import pytest

from sfu.events import Event
from sfu.participant import Capabilities
from sfu.sfu import Sfu
from sfu.snapshot import ParticipantView, RoomSnapshot
from tests.sfu.helpers import CAPABILITIES, sfu_config

pytestmark = pytest.mark.timeout(60)


async def _drop(event: Event) -> None:
    return None


async def test_snapshot_is_the_room_at_one_moment_and_never_changes() -> None:
    sfu = Sfu(sfu_config())
    try:
        room = await sfu.room("snap", video_codec="h264")
        joined = await room.join("t", "trainer", "Cô Hoa", CAPABILITIES["trainer"], _drop)
        assert joined.participant == ParticipantView(
            id="t", role="trainer", name="Cô Hoa", capabilities=CAPABILITIES["trainer"], state="connected",
            hand_raised=False, audio_only=False, muted=frozenset())
        assert joined.resume_token == room.participants["t"].resume_token
        await room.join("c", "classroom", "Lớp A", CAPABILITIES["classroom"], _drop)
        await room.join("g", "guest", "Khách", Capabilities(), _drop)
        await room.raise_hand("c", True)
        await room.set_audio_only("g", True)
        await room.mute("t", "c", "mic")
        await room.set_locked("t", True)
        before = room.snapshot()
        assert before == RoomSnapshot(
            room_id="snap", video_codec="H264", presenter_id="t", floor_id=None, locked=True,
            participants=before.participants)
        assert [p.id for p in before.participants] == ["t", "c", "g"]  # join order
        c = before.participant("c")
        assert c is not None and c.hand_raised and c.muted == frozenset({"mic"}) and c.role == "classroom"
        g = before.participant("g")
        assert g is not None and g.audio_only and g.capabilities == Capabilities()
        assert before.participant("nobody") is None and before.participant(None) is None

        await room.give_floor("t", "c")  # also lowers c's hand
        await room.leave("g")
        after = room.snapshot()
        assert (before.floor_id, after.floor_id) == (None, "c")
        assert before.participant("c").hand_raised and not after.participant("c").hand_raised  # type: ignore[union-attr]
        assert [p.id for p in before.participants] == ["t", "c", "g"] and after.participant("g") is None
        with pytest.raises(dataclasses.FrozenInstanceError):
            after.floor_id = None  # type: ignore[misc]
        with pytest.raises(dataclasses.FrozenInstanceError):
            after.participants[0].name = "x"  # type: ignore[misc]
    finally:
        await sfu.close()


async def test_a_detached_participant_shows_reconnecting_and_resumes_with_its_capabilities() -> None:
    sfu = Sfu(sfu_config())
    try:
        room = await sfu.room("snap-2")
        joined = await room.join("t", "trainer", "T", CAPABILITIES["trainer"], _drop)
        await room.detach("t")
        assert room.snapshot().participant("t").state == "reconnecting"  # type: ignore[union-attr]
        back = await room.resume("t", joined.resume_token, _drop)
        assert back.participant.state == "connected" and back.participant.capabilities == CAPABILITIES["trainer"]
        assert room.snapshot().presenter_id == "t"
    finally:
        await sfu.close()
