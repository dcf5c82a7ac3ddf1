"""server.live.capabilities: what each role may do in a live room, as the SFU is told it at join.

The SFU knows capabilities, not roles: `CAPABILITIES` is the one place where a role becomes what its
participant may do in the media (publish, present, moderate, see the classroom grid, be in it, enter a locked
room). Who may send which signalling request is the routes' business (`server.live.wire.MODERATORS`).
"""

from __future__ import annotations

from server.db.models import Role
from sfu.participant import Capabilities

# Operators, trainers and leaders run the meeting: they publish, moderate, see the grid of classrooms and
# learners, and enter a locked room; trainers and leaders also present.
_STAFF = Capabilities(publish=True, moderate=True, view_grid=True, enter_locked=True)
_PRESENTER = Capabilities(publish=True, present=True, moderate=True, view_grid=True, enter_locked=True)
# Classrooms and learners publish (a question on the floor) and are shown in the grid.
_AUDIENCE = Capabilities(publish=True, in_grid=True)

CAPABILITIES: dict[Role, Capabilities] = {
    Role.OPERATOR: _STAFF,
    Role.TRAINER: _PRESENTER,
    Role.LEADER: _PRESENTER,
    Role.CLASSROOM: _AUDIENCE,
    Role.LEARNER: _AUDIENCE,
    Role.GUEST: Capabilities(),  # watches and listens
}
