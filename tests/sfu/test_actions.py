"""Tests of sfu.actions: every action has its handler in Room (taking it, returning its reply type), every
handler has its action, and a room refuses an action it has no handler for."""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass

import pytest

from sfu import actions
from sfu.errors import SfuError
from sfu.mailbox import Action
from sfu.room import Room
from tests.sfu.helpers import sfu_config

ACTIONS = [cls for _name, cls in inspect.getmembers(actions, inspect.isclass)
           if issubclass(cls, Action) and cls is not Action and cls.__module__ == actions.__name__]


def test_the_actions_are_found() -> None:
    assert {"Join", "Publish", "Leave", "CloseRoom"} <= {cls.__name__ for cls in ACTIONS}


@pytest.mark.parametrize("action", ACTIONS, ids=lambda cls: cls.__name__)
def test_room_handles_each_action_with_its_reply_type(action: type[Action[object]]) -> None:
    handler = getattr(Room, f"_on_{action.__name__}", None)
    assert handler is not None and inspect.iscoroutinefunction(handler), f"Room has no _on_{action.__name__}"
    hints = typing.get_type_hints(handler)
    (reply,) = typing.get_args(action.__orig_bases__[0])  # type: ignore[attr-defined]  # Action[<reply>]
    assert [t for name, t in hints.items() if name != "return"] == [action]
    assert hints["return"] == reply


def test_every_handler_has_its_action() -> None:
    handlers = {name.removeprefix("_on_") for name, _f in inspect.getmembers(Room, inspect.iscoroutinefunction)
                if name.startswith("_on_")}
    assert handlers == {cls.__name__ for cls in ACTIONS}


@dataclass
class Unknown(Action[None]):
    """Unknown: an action no room handles."""


async def test_a_room_refuses_an_action_it_has_no_handler_for() -> None:
    room = Room("1", "VP8", sfu_config(), count_all=lambda: 0, on_closed=lambda room: None)
    try:
        with pytest.raises(SfuError) as info:
            await room.mailbox.ask(Unknown())
        assert info.value.code == "state" and "Unknown" in info.value.message
        assert room.snapshot().participants == ()  # the room goes on
    finally:
        await room.close()
