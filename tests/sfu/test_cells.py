"""Tests for sfu/cells.py and its C twin sfu/_cells.c: both keep the same values and refuse the same input."""

from __future__ import annotations

import random
from typing import Any

import pytest

import sfu.hooks.receiver
import sfu.producer
import sfu.stats
from sfu.cells import CELLS, COMPILED, Cell, Cells, PyCell, PyCells

TWINS = [pytest.param((PyCells, PyCell), id="python")]
if COMPILED:
    TWINS.append(pytest.param((Cells, Cell), id="compiled"))


def counters(twin: tuple[Any, Any]) -> Any:
    """counters: a class with two cells (one optional), a slot and a __dict__, on the twin's base."""
    base, cell = twin

    class Counters(base):  # type: ignore[misc, valid-type]
        __slots__ = ("label", "__dict__")
        count = cell(0)
        last = cell(CELLS - 1, optional=True)

        def __init__(self, label: str) -> None:
            self.label = label

    return Counters


@pytest.fixture(params=TWINS)
def twin(request: pytest.FixtureRequest) -> tuple[Any, Any]:
    return request.param  # type: ignore[no-any-return]


def test_a_new_instance_holds_zero_and_keeps_its_other_attributes(twin: tuple[Any, Any]) -> None:
    c = counters(twin)("a")
    assert (c.count, c.last, c.label) == (0, 0, "a")
    c.extra = [1]
    assert c.__dict__ == {"extra": [1]}


def test_cells_hold_signed_64_bit_ints_and_optional_ones_none(twin: tuple[Any, Any]) -> None:
    c = counters(twin)("a")
    for v in (1, -1, 2**63 - 1, -(2**63), 0x10000 * 7 + 3):
        c.count = v
        assert c.count == v and type(c.count) is int
    c.last = None
    assert c.last is None
    c.last = 5
    assert c.last == 5
    c.count += 2**40
    assert c.count == 0x10000 * 7 + 3 + 2**40
    c.count = True  # an int like any other
    assert c.count == 1 and type(c.count) is int


def test_instances_do_not_share_cells(twin: tuple[Any, Any]) -> None:
    kind = counters(twin)
    a, b = kind("a"), kind("b")
    a.count, b.count = 3, 4
    a.last = None
    assert (a.count, b.count, a.last, b.last) == (3, 4, None, 0)


@pytest.mark.parametrize(("value", "error"), [
    (None, TypeError), ("1", TypeError), (1.0, TypeError), (2**63, OverflowError), (-(2**63) - 1, OverflowError),
])
def test_bad_values_are_refused_and_change_nothing(twin: tuple[Any, Any], value: Any, error: type) -> None:
    c = counters(twin)("a")
    c.count = 7
    with pytest.raises(error):
        c.count = value
    assert c.count == 7


def test_a_cell_is_not_deleted_nor_read_on_another_object(twin: tuple[Any, Any]) -> None:
    kind = counters(twin)
    c = kind("a")
    with pytest.raises(AttributeError, match="count"):
        del c.count
    descriptor = kind.__dict__["count"]
    assert kind.count is descriptor and descriptor.index == 0 and not descriptor.optional
    assert repr(kind.__dict__["last"]) == f"Cell({CELLS - 1}, optional=True)"
    with pytest.raises(TypeError, match="not a Cells"):
        descriptor.__get__(object(), object)
    with pytest.raises(TypeError, match="not a Cells"):
        descriptor.__set__(object(), 1)
    _, cell = twin
    with pytest.raises(ValueError):
        cell(CELLS)
    with pytest.raises(ValueError):
        cell(-1)


@pytest.mark.skipif(not COMPILED, reason="sfu._fanout not built")
def test_the_twins_agree_over_random_steps() -> None:
    rng = random.Random(16)
    c, p = counters((Cells, Cell))("c"), counters((PyCells, PyCell))("p")
    for _ in range(5000):
        name = rng.choice(("count", "last"))
        value: Any = rng.choice((None, rng.randrange(-(2**64), 2**64), rng.randrange(-5, 5), 2**63 - 1))
        outcomes = []
        for obj in (c, p):
            try:
                setattr(obj, name, value)
                outcomes.append(None)
            except (TypeError, OverflowError) as e:
                outcomes.append(type(e))
        assert outcomes[0] == outcomes[1], (name, value)
        assert (c.count, c.last) == (p.count, p.last)


def all_subclasses(base: type) -> set[type]:
    found, todo = set(), [base]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in found:
                found.add(sub)
                todo.append(sub)
    return found


def test_no_class_gives_two_attributes_one_cell() -> None:
    """Two names on one index would silently share a counter: every Cells class of the SFU uses each once."""
    ours = {cls for base in (Cells, PyCells) for cls in all_subclasses(base) if cls.__module__.startswith("sfu.")}
    assert {sfu.stats.RtpStreamStats, sfu.stats.NackTracker, sfu.stats.SequenceTracker, sfu.producer.Producer,
            sfu.hooks.receiver.ForwardingReceiver} <= ours
    for cls in ours:
        seen: dict[int, str] = {}
        for name in dir(cls):
            descriptor = next((k.__dict__[name] for k in cls.__mro__ if name in k.__dict__), None)
            if isinstance(descriptor, Cell | PyCell):
                assert descriptor.index not in seen, f"{cls.__name__}.{name} and .{seen[descriptor.index]} share"
                seen[descriptor.index] = name
