"""Tests of server.live.audience: which learners a published recording reaches, and the counts of the publish form."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa

from server.auth import Identity
from server.db.engine import DB
from server.db.models import (
    Classroom,
    Recording,
    RecordingAudience,
    RecordingState,
    Role,
    Unit,
    UnitLevel,
    meeting_provinces,
    program_learners,
)
from server.live.audience import learner_counts
from server.live.recordings import may_view

Factory = Callable[..., Awaitable[Any]]


def learner(user_id: int) -> Identity:
    return Identity(login_id="t", csrf_token="t", user_id=user_id, role=Role.LEARNER)


async def test_each_audience_reaches_its_learners(app: Any, client: Any, make_user: Factory,
                                                  make_meeting: Factory) -> None:
    async with app[DB]() as s:
        son_la = Unit(code="914", name="Sơn La", level=UnitLevel.PROVINCE)
        dien_bien = Unit(code="911", name="Điện Biên", level=UnitLevel.PROVINCE)
        ha_giang = Unit(code="902", name="Hà Giang", level=UnitLevel.PROVINCE)
        s.add_all([son_la, dien_bien, ha_giang])
        await s.flush()
        moc_chau = Unit(code="91401", name="Mộc Châu", level=UnitLevel.DISTRICT, parent_id=son_la.id)
        s.add(moc_chau)
        await s.flush()
        xa = Unit(code="9140101", name="Xã Chiềng Sơn", level=UnitLevel.COMMUNE, parent_id=moc_chau.id)
        room = Classroom(code="SL-01", name="Phòng học Sơn La", unit_id=son_la.id)
        s.add_all([xa, room])
        await s.commit()
        ids = {"son_la": son_la.id, "dien_bien": dien_bien.id, "ha_giang": ha_giang.id, "xa": xa.id,
               "moc_chau": moc_chau.id, "room": room.id}
    meeting = await make_meeting(classrooms=[ids["room"]], title="Bài giảng Sinh học")
    enrolled = await make_user(Role.LEARNER)
    commune = await make_user(Role.LEARNER, unit_id=ids["xa"])         # grandchild of the classroom's province
    district = await make_user(Role.LEARNER, unit_id=ids["moc_chau"])  # child of it
    regional = await make_user(Role.LEARNER, unit_id=ids["dien_bien"])  # a province of the meeting
    elsewhere = await make_user(Role.LEARNER, unit_id=ids["ha_giang"])
    await make_user(Role.LEARNER, unit_id=ids["son_la"], disabled=True)  # counts for nobody
    async with app[DB]() as s:
        await s.execute(sa.insert(program_learners).values(program_id=meeting.program_id, user_id=enrolled.id))
        await s.execute(sa.insert(meeting_provinces).values(meeting_id=meeting.id, unit_id=ids["dien_bien"]))
        row = Recording(meeting_id=meeting.id, program_id=meeting.program_id, title="Sinh học", directory="x",
                        state=RecordingState.READY, published=True)
        s.add(row)
        await s.commit()

        assert await learner_counts(s, row) == {RecordingAudience.ENROLLED: 1, RecordingAudience.UNITS: 4,
                                                RecordingAudience.ALL: 5}
        everyone = (enrolled, commune, district, regional, elsewhere)
        expected = {RecordingAudience.ENROLLED: {enrolled.id},
                    RecordingAudience.UNITS: {enrolled.id, commune.id, district.id, regional.id},
                    RecordingAudience.ALL: {u.id for u in everyone}}
        for audience, who in expected.items():
            row.audience = audience
            await s.commit()
            seen = {u.id for u in everyone
                    if await may_view(s, learner(u.id), row.id)}
            assert seen == who, audience
        row.published = False  # whatever the audience, an unpublished recording reaches no learner
        await s.commit()
        assert not await may_view(s, learner(elsewhere.id), row.id)
