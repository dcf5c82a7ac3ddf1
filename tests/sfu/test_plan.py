"""Tests of sfu/plan.py: who fills each slot, from participants made by hand (no peers, no media)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import pytest

from sfu.consumer import Consumer
from sfu.events import Event
from sfu.participant import BASE_SLOTS, Capabilities, EventOutbox, Participant
from sfu.plan import grid_pages, grid_sources, plan
from sfu.producer import Producer
from tests.sfu.helpers import CAPABILITIES


class Track:
    """Track: what the plan reads of a Producer (whether it is muted); the plan hands the object back."""

    def __init__(self, muted: bool = False) -> None:
        self.muted = muted


class Slot:
    """Slot: what the plan reads of a Consumer (its kind)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind


async def _drop(event: Event) -> None:
    return None


class People:
    """People: participants of a made-up room, in join order."""

    def __init__(self) -> None:
        self.by_id: dict[str, Participant] = {}

    def add(self, pid: str, role: str, capabilities: Capabilities | None = None, grid: int = 0,
            publishes: tuple[str, ...] = ("camera", "mic")) -> Participant:
        p = Participant(pid, role, pid.upper(), capabilities or CAPABILITIES[role], EventOutbox(pid, _drop),
                        len(self.by_id) + 1)
        p.producers = {source: cast(Producer, Track()) for source in publishes}
        slots = list(BASE_SLOTS) + [(f"grid-{i}", "video") for i in range(grid)]
        p.consumers = {slot: cast(Consumer, Slot(kind)) for slot, kind in slots}
        self.by_id[pid] = p
        return p

    async def close(self) -> None:
        for p in self.by_id.values():
            await p.outbox.close(0.1)


@pytest.fixture
async def people() -> AsyncIterator[People]:
    made = People()
    yield made
    await made.close()


def views(fills: dict[str, Any]) -> dict[str, tuple[str | None, str | None, str]]:
    """views: each slot's (participant, source, state), as SlotChanged carries it."""
    return {slot: (pid, source, state) for slot, (_, pid, source, state) in fills.items()}


async def test_presenter_and_floor_fill_the_fixed_slots_never_with_oneself(people: People) -> None:
    t = people.add("t", "trainer", publishes=("camera", "mic", "screen"))
    c = people.add("c", "classroom")
    v = people.add("v", "classroom")
    fills = plan(v, people.by_id, "t", "c", 0)
    assert views(fills) == {
        "presenter-video": ("t", "camera", "live"), "presenter-audio": ("t", "mic", "live"),
        "screen": ("t", "screen", "live"), "floor-video": ("c", "camera", "live"), "floor-audio": ("c", "mic", "live"),
    }
    assert fills["presenter-video"][0] is t.producers["camera"] and fills["floor-audio"][0] is c.producers["mic"]
    own = views(plan(c, people.by_id, "t", "c", 0))  # the floor holder does not receive itself
    assert own["floor-video"] == own["floor-audio"] == (None, None, "empty")
    assert views(plan(v, people.by_id, None, None, 0))["presenter-video"] == (None, None, "empty")


async def test_a_slot_says_why_it_carries_nothing(people: People) -> None:
    t = people.add("t", "trainer")
    v = people.add("v", "classroom")
    assert views(plan(v, people.by_id, "t", None, 0))["screen"] == ("t", "screen", "empty")  # not shared
    t.producers["camera"].muted = True
    assert views(plan(v, people.by_id, "t", None, 0))["presenter-video"] == ("t", "camera", "muted")
    t.state = "reconnecting"
    fills = plan(v, people.by_id, "t", None, 0)
    assert views(fills)["presenter-audio"] == ("t", "mic", "reconnecting") and fills["presenter-audio"][0] is None


async def test_audio_only_pauses_live_video_and_keeps_audio(people: People) -> None:
    people.add("t", "trainer")
    v = people.add("v", "classroom")
    v.audio_only = True
    got = views(plan(v, people.by_id, "t", None, 0))
    assert got["presenter-video"] == ("t", "camera", "paused") and got["presenter-audio"] == ("t", "mic", "live")
    assert got["screen"] == ("t", "screen", "empty")  # only live video is paused


async def test_grid_shows_those_in_the_grid_page_by_page_in_join_order(people: People) -> None:
    t = people.add("t", "trainer", grid=2)
    for i in range(3):
        people.add(f"c{i}", "classroom")
    people.add("g", "guest")
    assert [p.id for p in grid_sources(people.by_id, t)] == ["c0", "c1", "c2"]
    assert grid_pages(people.by_id, t, 2) == 2
    got = views(plan(t, people.by_id, "t", None, 2))
    assert (got["grid-0"], got["grid-1"]) == (("c0", "camera", "live"), ("c1", "camera", "live"))
    t.grid_page = 1
    got = views(plan(t, people.by_id, "t", None, 2))
    assert (got["grid-0"], got["grid-1"]) == (("c2", "camera", "live"), (None, None, "empty"))
    assert grid_pages({"t": t}, t, 2) == 1  # an empty grid still has its one page


async def test_the_grid_follows_capabilities_not_role_labels(people: People) -> None:
    viewer = people.add("v", "guest", Capabilities(view_grid=True), grid=2)
    people.add("a", "trainer", Capabilities(publish=True, in_grid=True))
    people.add("b", "classroom", Capabilities(publish=True))
    assert [p.id for p in grid_sources(people.by_id, viewer)] == ["a"]
    assert views(plan(viewer, people.by_id, None, None, 2))["grid-0"] == ("a", "camera", "live")


async def test_a_relay_never_carries_back_what_its_link_brought_and_an_up_relay_only_what_is_chosen(
        people: People) -> None:
    # the origin's end of a cascade link: a viewer like any other, but a ghost of its own link fills nothing
    people.add("t", "trainer", publishes=("camera", "mic", "screen"))
    down = people.add("link-b", "link", Capabilities(publish=True, relay="down"))
    ghost = people.add("c", "classroom")
    ghost.via = "link-b"
    other = people.add("d", "classroom")
    got = views(plan(down, people.by_id, "t", "c", 0))
    assert got["presenter-video"] == ("t", "camera", "live") and got["floor-video"] == (None, None, "empty")
    assert views(plan(down, people.by_id, "t", "d", 0))["floor-audio"] == ("d", "mic", "live")  # another's floor
    assert views(plan(other, people.by_id, "t", "c", 0))["floor-video"] == ("c", "camera", "live")
    # the edge's end: its slots (grid ones included) carry only what the edge chose for them
    up = people.add("link-a", "link", Capabilities(publish=True, view_grid=True, relay="up"), grid=2)
    assert plan(up, people.by_id, "t", "d", 2) == {}
    up.chosen = {"grid-1": ("d", "camera"), "floor-audio": ("c", "mic")}  # c is another link's ghost here
    got = views(plan(up, people.by_id, "t", "d", 2))
    assert got == {"grid-1": ("d", "camera", "live"), "floor-audio": ("c", "mic", "live")}
    ghost.via = "link-a"  # what the link brought never goes back up
    assert views(plan(up, people.by_id, "t", "d", 2))["floor-audio"] == (None, None, "empty")
