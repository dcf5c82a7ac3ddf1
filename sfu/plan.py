"""plan: who each participant sees in which slot: presenter, floor, screen and grid pages (no side effects).

The room's mailbox task calls `plan` for every viewer after each change (``Room._reassign``) and applies the
result: it switches the Consumers and replaces the Producers' sink tuples.
"""

from __future__ import annotations

from collections.abc import Mapping

from sfu.participant import Participant
from sfu.producer import Producer

SlotFill = tuple["Producer | None", str | None, str | None, str]  # producer, participant, source, state


def grid_sources(participants: Mapping[str, Participant], viewer: Participant) -> list[Participant]:
    """grid_sources: who `viewer`'s grid shows, in join order (never the viewer itself)."""
    return sorted(
        (p for p in participants.values() if p.capabilities.in_grid and p is not viewer),
        key=lambda p: p.order,
    )


def grid_pages(participants: Mapping[str, Participant], viewer: Participant, grid_slots: int) -> int:
    """grid_pages: how many grid pages `viewer` has (at least one)."""
    n = grid_slots
    return max(1, -(-len(grid_sources(participants, viewer)) // n)) if n else 1


def fill(owner: Participant | None, source: str, viewer: Participant) -> SlotFill:
    """fill: what a slot showing `source` of `owner` carries for `viewer`."""
    if owner is None or owner is viewer or owner.via == viewer.id:  # a link never carries back what it brought
        return None, None, None, "empty"
    if owner.state == "reconnecting":
        return None, owner.id, source, "reconnecting"
    producer = owner.producers.get(source)
    if producer is None:
        return None, owner.id, source, "reconnecting" if source in owner.republish else "empty"
    if producer.muted:
        return None, owner.id, source, "muted"
    return producer, owner.id, source, "live"


def plan(viewer: Participant, participants: Mapping[str, Participant], presenter_id: str | None,
         floor_id: str | None, grid_slots: int) -> dict[str, SlotFill]:
    """plan: every slot of `viewer`'s down Peer and what fills it."""
    presenter = participants.get(presenter_id) if presenter_id else None
    floor = participants.get(floor_id) if floor_id else None
    if viewer.capabilities.relay == "up":  # an edge's link up to the origin: only what is chosen for it
        return {slot: fill(participants.get(owner_id), source, viewer)
                for slot, (owner_id, source) in viewer.chosen.items()}
    out: dict[str, SlotFill] = {
        "presenter-video": fill(presenter, "camera", viewer),
        "presenter-audio": fill(presenter, "mic", viewer),
        "screen": fill(presenter, "screen", viewer),
        "floor-video": fill(floor, "camera", viewer),
        "floor-audio": fill(floor, "mic", viewer),
    }
    for slot, (owner_id, source) in viewer.chosen.items():  # the viewer's own choice (Room.choose)
        out[slot] = fill(participants.get(owner_id), source, viewer)
    if "grid-0" in viewer.consumers and not viewer.capabilities.relay:
        n = grid_slots
        sources = grid_sources(participants, viewer)
        page = sources[viewer.grid_page * n:(viewer.grid_page + 1) * n]
        for i in range(n):
            out[f"grid-{i}"] = fill(page[i] if i < len(page) else None, "camera", viewer)
    if viewer.audio_only:
        for slot, consumer in viewer.consumers.items():
            slot_fill = out.get(slot)
            if consumer.kind == "video" and slot_fill is not None and slot_fill[3] == "live":
                out[slot] = (None, slot_fill[1], slot_fill[2], "paused")
    return out
