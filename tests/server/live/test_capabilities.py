"""Tests of server.live.capabilities: the one table from roles to what the SFU lets each participant do."""

from __future__ import annotations

from dataclasses import asdict

from server.db.models import PRESENTER_ROLES, Role
from server.live.capabilities import CAPABILITIES
from server.live.signalling import ROUTES
from server.live.wire import MODERATORS


def test_what_each_role_may_do_in_a_room() -> None:
    granted = {role: {name for name, value in asdict(c).items() if value} for role, c in CAPABILITIES.items()}
    staff = {"publish", "moderate", "view_grid", "enter_locked"}
    assert granted == {
        Role.OPERATOR: staff,
        Role.TRAINER: staff | {"present"},
        Role.LEADER: staff | {"present"},
        Role.CLASSROOM: {"publish", "in_grid"},
        Role.LEARNER: {"publish", "in_grid"},
        Role.GUEST: set(),
    }


def test_the_table_agrees_with_the_signalling_routes_and_the_meetings() -> None:
    assert set(CAPABILITIES) == set(Role)
    assert {r for r, c in CAPABILITIES.items() if c.moderate} == MODERATORS
    assert {r for r, c in CAPABILITIES.items() if c.publish} == ROUTES["publish"].roles
    assert {r for r, c in CAPABILITIES.items() if c.present} == PRESENTER_ROLES  # a meeting's presenters
