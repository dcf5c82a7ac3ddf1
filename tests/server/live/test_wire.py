"""Tests of server.live.wire: field checks (types, bool is not an int, integers within 64 bits, ids, missing and
optional), SignalError, the moderator roles."""

from __future__ import annotations

import json
from typing import Any

import pytest

from server.db.models import Role
from server.live.wire import MODERATORS, SignalError, field, id_field, lone_surrogate


def _refused(msg: dict[str, Any], name: str, kind: type | tuple[type, ...], optional: bool = False) -> SignalError:
    with pytest.raises(SignalError) as info:
        field(msg, name, kind, optional)
    assert info.value.code == "bad-message"
    return info.value


def test_a_value_of_the_expected_type_is_returned() -> None:
    msg = {"title": "Phần 2", "page": 3, "raised": False, "ratio": 0.5, "sources": {"0": "camera"}}
    assert field(msg, "title", str) == "Phần 2"
    assert field(msg, "page", int) == 3
    assert field(msg, "raised", bool) is False  # a false value is still there
    assert field(msg, "ratio", (int, float)) == 0.5
    assert field(msg, "sources", dict) == {"0": "camera"}


def test_bool_is_not_an_int() -> None:
    error = _refused({"page": True}, "page", int)
    assert "page" in error.message and "integer" in error.message


def test_wrong_types_are_refused_with_the_field_named() -> None:
    for msg, name, kind in (({"page": "3"}, "page", int), ({"title": 5}, "title", str),
                            ({"page": 1.0}, "page", int), ({"raised": 1}, "raised", bool),
                            ({"sources": ["camera"]}, "sources", dict)):
        error = _refused(msg, name, kind)
        assert repr(name) in error.message and "sai kiểu" in error.message, (msg, error.message)


def test_integers_fit_in_64_bits_and_ids_are_positive() -> None:
    assert field({"page": 2**63 - 1}, "page", int) == 2**63 - 1 and field({"page": -(2**63)}, "page", int) == -(2**63)
    for value in (2**63, -(2**63) - 1, 10**40):
        error = _refused({"page": value}, "page", int)
        assert "'page'" in error.message and "64-bit" in error.message
    assert id_field({"meeting_id": 1}, "meeting_id") == 1 and id_field({"poll_id": 2**63 - 1}, "poll_id") == 2**63 - 1
    for value in (0, -1, 2**63, True, "5", 5.0):
        with pytest.raises(SignalError) as info:
            id_field({"meeting_id": value}, "meeting_id")
        assert info.value.code == "bad-message" and "meeting_id" in info.value.message


def test_missing_or_null_is_refused_unless_optional() -> None:
    for msg in ({}, {"to": None}):
        error = _refused(msg, "to", str)
        assert "thiếu trường to" in error.message and "'to'" in error.message
        assert field(msg, "to", str, optional=True) is None
    _refused({"to": 7}, "to", str, optional=True)  # optional, but when given it must have the type


def test_signal_error_carries_code_and_message() -> None:
    error = SignalError("forbidden", "Không được. / Not allowed.")
    assert (error.code, error.message) == ("forbidden", "Không được. / Not allowed.")
    assert str(error) == "forbidden: Không được. / Not allowed."


def test_moderators_are_the_staff_roles() -> None:
    assert MODERATORS == {Role.OPERATOR, Role.TRAINER, Role.LEADER}
    assert not MODERATORS & {Role.CLASSROOM, Role.LEARNER, Role.GUEST}


@pytest.mark.parametrize(("text", "lone"), [
    ('{"name": "evil \\ud800"}', True),
    ('{"id": "\\udfff"}', True),
    ('{"\\udc00": 1}', True),
    ('{"resume": {"token": [["\\udbff"]]}}', True),
    ('{"name": "Khách \\ud83d\\ude00"}', False),  # a valid pair is one character
    ('{"name": "\\\\ud800"}', False),  # an escaped backslash, then text
    ('{"name": "Nguyễn Thị Mai", "n": 1, "ok": true, "x": null}', False),
])
def test_lone_surrogates_are_found_wherever_they_are(text: str, lone: bool) -> None:
    assert lone_surrogate(json.loads(text)) is lone


def test_lone_surrogate_walks_deep_nesting_without_recursion() -> None:
    deep: Any = "\ud800"
    for _ in range(100_000):
        deep = [deep]
    assert lone_surrogate(deep)
