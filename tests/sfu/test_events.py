"""Tests of sfu.events: every event is a frozen dataclass (one object goes to many participants' outboxes) whose
fields are plain JSON values, so the signalling layer can send it as it is (server.live.connection)."""

from __future__ import annotations

import dataclasses
import inspect
import json
import types
import typing
from typing import Any

import pytest

from sfu import events
from sfu.events import Event, RoomStats

EVENTS = [cls for _name, cls in inspect.getmembers(events, inspect.isclass)
          if issubclass(cls, Event) and cls is not Event and cls.__module__ == events.__name__]
# RoomStats is read with Room.stats() (operator console, attendance samples); it is never sent to a participant.
DELIVERED = [cls for cls in EVENTS if cls is not RoomStats]
WIRE_TYPES = {str, bool, int, type(None)}


def _sample(tp: Any) -> Any:
    """_sample: a value of type `tp` (the types events use)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return _sample(next(a for a in args if a is not type(None)))
    if origin is dict:
        return {_sample(args[0]): _sample(args[1])}
    if origin is tuple:
        return (_sample(args[0]),)
    return {str: "x", bool: True, int: 1}[tp]


def instance(cls: type[Event]) -> Event:
    """instance: an event of class `cls` with a value in each field."""
    hints = typing.get_type_hints(cls)
    return cls(**{f.name: _sample(hints[f.name]) for f in dataclasses.fields(cls)})


def _plain(tp: Any) -> bool:
    """_plain: `tp` holds JSON values only (str, int, bool, None; dicts of str; tuples of those)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType, tuple, dict):
        return all(a is Ellipsis or _plain(a) for a in args) and (origin is not dict or args[0] is str)
    return tp in WIRE_TYPES


def test_the_events_are_found() -> None:
    assert {"ServerOffer", "ParticipantJoined", "SlotChanged", "PeerFailed", "RoomStats"} <= {
        c.__name__ for c in EVENTS}


@pytest.mark.parametrize("cls", EVENTS, ids=lambda cls: cls.__name__)
def test_events_are_frozen_dataclasses(cls: type[Event]) -> None:
    assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen  # type: ignore[attr-defined]


@pytest.mark.parametrize("cls", DELIVERED, ids=lambda cls: cls.__name__)
def test_delivered_events_hold_json_values_only(cls: type[Event]) -> None:
    hints = typing.get_type_hints(cls)
    assert [f.name for f in dataclasses.fields(cls) if not _plain(hints[f.name])] == []
    event = instance(cls)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(event, dataclasses.fields(cls)[0].name, None)
    fields = dataclasses.asdict(event)
    assert json.loads(json.dumps(fields)) == {k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()}


def test_plain_is_strict() -> None:
    assert _plain(dict[str, str]) and _plain(tuple[str, ...]) and _plain(str | None)
    assert not _plain(float) and not _plain(dict[int, str]) and not _plain(tuple[RoomStats, ...])
