"""Tests of server.api.recordings: listing by role, Range requests, chapters, publish/unpublish, delete, and the
refusals (403 JSON, never 500)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from recorder.archive import finalize
from server.config import CONFIG
from server.db.engine import DB
from server.db.models import AuditEntry, Recording, RecordingState, Role, program_learners
from tests.recorder.media import recorded_directory

Factory = Callable[..., Awaitable[Any]]


@pytest.fixture
async def setup(app: Any, make_user: Factory, make_meeting: Factory, make_classroom: Factory) -> dict[str, Any]:
    """setup: a meeting presented by a trainer, with an invited classroom, an enrolled learner and two
    finalized recordings (one published, one not)."""
    trainer = await make_user(Role.TRAINER)
    classroom_id = await make_classroom()
    meeting = await make_meeting(presenters=[trainer], classrooms=[classroom_id], title="Bài giảng Toán")
    enrolled = await make_user(Role.LEARNER)
    outsider = await make_user(Role.LEARNER)
    root = app[CONFIG].data_path / "recordings"
    recorded_directory(root / "rec-a", 2.0)
    result = finalize(root / "rec-a")
    ids = []
    async with app[DB]() as s:
        await s.execute(sa.insert(program_learners).values(program_id=meeting.program_id, user_id=enrolled.id))
        for title, published in (("Toán lớp 6 – buổi 1", True), ("Toán lớp 6 – buổi 2", False)):
            row = Recording(meeting_id=meeting.id, program_id=meeting.program_id, title=title, directory="rec-a",
                            state=RecordingState.READY, published=published, file=result.file, mime=result.mime,
                            duration=result.duration, size=result.size, chapters=result.chapters,
                            originals=result.originals)
            s.add(row)
            await s.flush()
            ids.append(row.id)
        await s.commit()
    return {"app": app, "trainer": trainer, "classroom_id": classroom_id, "meeting": meeting, "enrolled": enrolled,
            "outsider": outsider, "published": ids[0], "unpublished": ids[1],
            "file": root / "rec-a" / result.file}


async def test_range_requests_return_206_with_the_exact_bytes(login_as: Factory, setup: dict[str, Any]) -> None:
    learner = await login_as(user=setup["enrolled"])
    data = setup["file"].read_bytes()
    url = f"/api/v1/recordings/{setup['published']}/media"
    resp = await learner.get(url, headers={"Range": "bytes=100-1099"})
    assert resp.status == 206
    assert resp.headers["Content-Range"] == f"bytes 100-1099/{len(data)}"
    assert await resp.read() == data[100:1100]
    resp = await learner.get(url, headers={"Range": f"bytes={len(data) - 10}-"})
    assert resp.status == 206 and await resp.read() == data[-10:]
    resp = await learner.get(url)
    assert resp.status == 200 and resp.headers["Content-Type"] == "video/webm" and await resp.read() == data
    assert resp.headers.get("Accept-Ranges") == "bytes"
    resp = await learner.get(url + "?download=1")
    assert "attachment" in resp.headers["Content-Disposition"]
    vtt = await learner.get(f"/api/v1/recordings/{setup['published']}/chapters.vtt")
    assert vtt.status == 200 and (await vtt.text()).startswith("WEBVTT")


async def test_who_sees_what(login_as: Factory, make_user: Factory, setup: dict[str, Any]) -> None:
    pub, unpub = setup["published"], setup["unpublished"]
    enrolled = await login_as(user=setup["enrolled"])
    listing = await (await enrolled.get("/api/v1/recordings")).json()
    assert [r["id"] for r in listing] == [pub]
    for path in (f"/api/v1/recordings/{unpub}", f"/api/v1/recordings/{unpub}/media",
                 f"/api/v1/recordings/{unpub}/chapters.vtt"):
        resp = await enrolled.get(path)
        assert resp.status == 403, path
        assert (await resp.json())["error"]["code"] == "forbidden"
    assert (await enrolled.get(f"/archive/{unpub}", headers={"Accept": "application/json"})).status == 403
    assert (await enrolled.get(f"/api/v1/recordings/{pub}/originals/presenter-video")).status == 403

    outsider = await login_as(user=setup["outsider"])
    assert await (await outsider.get("/api/v1/recordings")).json() == []
    assert (await outsider.get(f"/api/v1/recordings/{pub}/media")).status == 403

    trainer = await login_as(user=setup["trainer"])
    assert {r["id"] for r in await (await trainer.get("/api/v1/recordings")).json()} == {pub, unpub}
    original = await trainer.get(f"/api/v1/recordings/{unpub}/originals/presenter-video")
    assert original.status == 200 and len(await original.read()) > 1000

    room_user = await make_user(Role.CLASSROOM, classroom_id=setup["classroom_id"])
    classroom = await login_as(user=room_user)
    assert [r["id"] for r in await (await classroom.get("/api/v1/recordings")).json()] == [pub]

    guest = await login_as(Role.GUEST)
    assert await (await guest.get("/api/v1/recordings")).json() == []
    assert (await guest.get(f"/api/v1/recordings/{pub}")).status == 403
    assert (await enrolled.get("/api/v1/recordings/99999")).status == 404


async def test_search_and_filters(login_as: Factory, setup: dict[str, Any]) -> None:
    op = await login_as(Role.OPERATOR)
    found = await (await op.get("/api/v1/recordings", params={"q": "buổi 2"})).json()
    assert [r["id"] for r in found] == [setup["unpublished"]]
    assert found[0]["program_title"] and found[0]["state"] == "ready" and found[0]["chapters"]
    by_program = await (await op.get("/api/v1/recordings",
                                     params={"program_id": str(setup["meeting"].program_id)})).json()
    assert len(by_program) == 2
    assert await (await op.get("/api/v1/recordings", params={"since": "2999-01-01"})).json() == []
    assert (await op.get("/api/v1/recordings", params={"since": "hôm qua"})).status == 400
    assert (await op.get("/api/v1/recordings", params={"program_id": "x"})).status == 400


async def test_publish_unpublish_and_delete_by_operators_only(app: Any, login_as: Factory,
                                                             setup: dict[str, Any]) -> None:
    unpub = setup["unpublished"]
    trainer = await login_as(user=setup["trainer"])
    learner = await login_as(user=setup["enrolled"])
    for who in (trainer, learner):
        assert (await who.patch(f"/api/v1/recordings/{unpub}", json={"published": True})).status == 403
        assert (await who.delete(f"/api/v1/recordings/{unpub}")).status == 403
    op = await login_as(Role.OPERATOR)
    resp = await op.patch(f"/api/v1/recordings/{unpub}", json={"published": True})
    assert resp.status == 200 and (await resp.json())["published"] is True
    assert (await learner.get(f"/api/v1/recordings/{unpub}/media", headers={"Range": "bytes=0-9"})).status == 206
    assert (await op.patch(f"/api/v1/recordings/{unpub}", json={"published": "maybe"})).status == 422
    await op.patch(f"/api/v1/recordings/{unpub}", json={"published": False})
    assert (await learner.get(f"/api/v1/recordings/{unpub}")).status == 403
    assert (await op.delete(f"/api/v1/recordings/{unpub}")).status == 204
    assert (await op.get(f"/api/v1/recordings/{unpub}")).status == 404
    assert setup["file"].exists() is False  # the files went with it
    async with app[DB]() as s:
        actions = list((await s.scalars(select(AuditEntry.action).order_by(AuditEntry.id))).all())
        busy = Recording(title="Đang ghi", directory="busy", state=RecordingState.RECORDING)
        s.add(busy)
        await s.commit()
    assert ["recording.publish", "recording.unpublish", "recording.delete"] == \
        [a for a in actions if a.startswith("recording.")]
    assert (await op.delete(f"/api/v1/recordings/{busy.id}")).status == 409
    assert (await op.patch(f"/api/v1/recordings/{busy.id}", json={"published": True})).status == 409
    assert (await op.get(f"/api/v1/recordings/{busy.id}/media")).status == 409


async def test_publishing_to_an_audience_says_who_will_see_it(login_as: Factory, setup: dict[str, Any]) -> None:
    """The publish form's counts (operators only), then publishing to every learner reaches the outsider, who is
    not enrolled; back to the enrolled learners, it no longer does."""
    pub = setup["published"]
    op = await login_as(Role.OPERATOR)
    outsider = await login_as(user=setup["outsider"])
    assert (await outsider.get(f"/api/v1/recordings/{pub}/audience")).status == 403
    info = await (await op.get(f"/api/v1/recordings/{pub}/audience")).json()
    assert info["audience"] == "enrolled" and info["published"] is True
    counts = {o["audience"]: o["learners"] for o in info["options"]}
    assert counts["enrolled"] == 1 and counts["units"] == 1 and counts["all"] >= 2  # the enrolled and the outsider
    assert (await op.get("/api/v1/recordings/99999/audience")).status == 404

    assert (await outsider.get(f"/api/v1/recordings/{pub}/media", headers={"Range": "bytes=0-9"})).status == 403
    resp = await op.patch(f"/api/v1/recordings/{pub}", json={"audience": "all"})
    assert resp.status == 200 and (await resp.json())["audience"] == "all"
    assert [r["id"] for r in await (await outsider.get("/api/v1/recordings")).json()] == [pub]
    assert (await outsider.get(f"/api/v1/recordings/{pub}/media", headers={"Range": "bytes=0-9"})).status == 206
    resp = await op.patch(f"/api/v1/recordings/{pub}", json={"audience": "everyone"})
    assert resp.status == 422
    await op.patch(f"/api/v1/recordings/{pub}", json={"audience": "enrolled"})
    assert (await outsider.get(f"/api/v1/recordings/{pub}")).status == 403
    async with setup["app"][DB]() as s:
        changes = (await s.scalars(select(AuditEntry.details).where(AuditEntry.action == "recording.audience")
                                   .order_by(AuditEntry.id))).all()
    assert [(c["old"], c["new"]) for c in changes] == [("enrolled", "all"), ("all", "enrolled")]
