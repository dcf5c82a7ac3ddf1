import asyncio

from sfu.events import Event, HandChanged
from sfu.participant import BASE_SLOTS, EventOutbox, slots_for
from tests.sfu.helpers import CAPABILITIES


def test_slots_by_role() -> None:
    assert slots_for(CAPABILITIES["classroom"], 9) == list(BASE_SLOTS)
    assert slots_for(CAPABILITIES["guest"], 9) == list(BASE_SLOTS)
    trainer = slots_for(CAPABILITIES["trainer"], 4)
    assert [s for s, _ in trainer][-4:] == ["grid-0", "grid-1", "grid-2", "grid-3"]
    assert all(kind == "video" for s, kind in trainer if s.startswith("grid-"))
    assert len(slots_for(CAPABILITIES["operator"], 9)) == len(BASE_SLOTS) + 9


async def test_outbox_delivers_in_order_and_survives_callback_errors() -> None:
    got: list[Event] = []

    async def on_event(event: Event) -> None:
        await asyncio.sleep(0.001)
        if isinstance(event, HandChanged) and event.participant_id == "boom":
            raise RuntimeError("socket gone")
        got.append(event)

    box = EventOutbox("p", on_event)
    for i in range(5):
        box.send(HandChanged(str(i), True))
        if i == 2:
            box.send(HandChanged("boom", True))
    await box.close()
    assert [e.participant_id for e in got] == ["0", "1", "2", "3", "4"]  # type: ignore[attr-defined]
