"""Tests of server.api.scorm (and the upload's SCORM step in server.api.materials): packages recognised on upload,
unsafe ones refused and not kept, launching and resuming attempts, commits ordered by session and sequence,
session times summed, tokens scoped to one attempt, data-model limits and the commit rate."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import func, select

from server.config import CONFIG, Config
from server.db.engine import DB
from server.db.models import Material, ScormAttempt, ScormPackage
from server.learning import scorm
from tests.server.learning_helpers import World, make_world, stored_files, upload
from tests.server.scorm_helpers import build_zip, scorm12, scorm2004, symlink_package


@pytest.fixture
def config(make_config: Callable[..., Config]) -> Config:
    return make_config(**{"learning.commits_per_minute": 8})


@pytest.fixture
async def world(app: web.Application, login_as: Any, make_classroom: Any) -> World:
    return await make_world(app, login_as, make_classroom)


async def _package(world: World, data: bytes, name: str = "toan6.zip") -> dict[str, Any]:
    r = await upload(world.trainer, world.program_id, data, filename=name)
    assert r.status == 201, await r.text()
    return dict(await r.json())


async def _launch(who: Any, material_id: int, **body: Any) -> dict[str, Any]:
    r = await who.post(f"/api/v1/materials/{material_id}/scorm/launch", json=body)
    assert r.status == 200, await r.text()
    return dict(await r.json())


async def _commit(who: Any, launch: dict[str, Any], seq: int, cmi: dict[str, str], **extra: Any) -> Any:
    body = {"token": launch["token"], "session": launch["session"], "seq": seq, "cmi": cmi, **extra}
    return await who.post(f"/api/v1/scorm/attempts/{launch['attempt_id']}/commit", json=body)


async def _attempt(app: web.Application, attempt_id: int) -> ScormAttempt:
    async with app[DB]() as s:
        row = await s.get(ScormAttempt, attempt_id)
        assert row is not None
        return row


async def test_a_scorm_upload_is_recognised_and_extracted_by_hash(app: web.Application, world: World) -> None:
    m = await _package(world, scorm12(scos=2))
    assert (m["kind"], m["package_version"], m["package_reason"]) == ("package", "1.2", "")
    root = scorm.packages_root(app[CONFIG].data_path)
    assert (root / m["sha256"] / "sco-2" / "index.html").is_file()
    r = await world.learner.get(f"/api/v1/materials/{m['id']}/scorm")
    info = await r.json()
    assert info["version"] == "1.2" and info["title"] == "Bài giảng Toán 6"
    assert [(s["identifier"], s["completion"]) for s in info["scos"]] == [("ITEM-1", "not attempted"),
                                                                            ("ITEM-2", "not attempted")]
    page = await (await world.learner.get(f"/materials/{m['id']}")).text()
    assert f'href="/materials/{m["id"]}/play"' in page
    # after a restore (backups leave packages/ out) and for a ZIP uploaded before SCORM support: found again
    shutil.rmtree(root / m["sha256"])
    async with app[DB]() as s:
        await s.delete(await s.get(ScormPackage, m["sha256"]))
        await s.commit()
    page = await (await world.learner.get(f"/materials/{m['id']}")).text()
    assert f'href="/materials/{m["id"]}/play"' in page and (root / m["sha256"] / "imsmanifest.xml").is_file()
    shutil.rmtree(root / m["sha256"])
    await _launch(world.learner, m["id"])
    assert (root / m["sha256"] / "sco-1" / "index.html").is_file()


async def test_a_zip_that_is_not_scorm_stays_a_download_with_the_reason(world: World) -> None:
    m = await _package(world, build_zip({"bai-tap.docx.txt": "x", "anh.png": b"\x89PNG"}), "tai-lieu.zip")
    assert m["package_version"] is None and "imsmanifest.xml" in m["package_reason"]
    page = await (await world.learner.get(f"/materials/{m['id']}")).text()
    assert "data-package-reason" in page and "Không có imsmanifest.xml" in page and "/play" not in page
    assert "No imsmanifest.xml" not in page  # the reader's half of the reason
    r = await world.learner.post(f"/api/v1/materials/{m['id']}/scorm/launch", json={})
    assert r.status == 422 and (await r.json())["error"]["code"] == "not-scorm"


async def test_an_unsafe_package_is_refused_and_nothing_is_kept(app: web.Application, world: World) -> None:
    r = await upload(world.trainer, world.program_id, symlink_package(), filename="doc-hai.zip")
    assert r.status == 422
    error = (await r.json())["error"]
    assert error["code"] == "bad-package"
    assert "liên kết tượng trưng" in error["message"] and "symbolic" in error["message"]
    async with app[DB]() as s:
        assert await s.scalar(select(func.count()).select_from(Material)) == 0
    assert stored_files(app) == []
    root = scorm.packages_root(app[CONFIG].data_path)
    assert not root.exists() or [p.name for p in root.iterdir()] == []


async def test_launch_commit_and_resume_with_summed_session_times(app: web.Application, world: World) -> None:
    m = await _package(world, scorm12(mastery=80))
    first = await _launch(world.learner, m["id"])
    cmi = first["cmi"]
    assert first["version"] == "1.2" and first["session"] == 1 and first["number"] == 1
    assert cmi["cmi.core.student_id"] == world.learner.user.username
    assert (cmi["cmi.core.entry"], cmi["cmi.core.total_time"], cmi["cmi.student_data.mastery_score"]) == \
        ("ab-initio", "0000:00:00.00", "80")
    assert first["launch_url"].endswith(f"/pkg/{m['sha256']}/sco-1/index.html")
    assert first["player_url"].startswith(first["content_origin"])
    r = await _commit(world.learner, first, 1, {
        "cmi.core.lesson_location": "trang-2", "cmi.core.exit": "suspend", "cmi.suspend_data": "da-xem=2",
        "cmi.core.lesson_status": "incomplete", "cmi.core.session_time": "00:01:00.50", "cmi.interactions": {}})
    assert r.status == 200 and (await r.json())["applied"] is True
    again = await _commit(world.learner, first, 1, {"cmi.core.lesson_location": "cu"})
    assert (await again.json())["applied"] is False  # the same sequence number again: not applied
    second = await _launch(world.learner, m["id"])  # another PC: a new session resumes where the learner stopped
    assert second["session"] == 2 and second["attempt_id"] == first["attempt_id"]
    stale_tab = await _commit(world.learner, first, 2, {"cmi.core.lesson_location": "trang-3"})
    assert (await stale_tab.json())["superseded"] is True  # the first PC's page asks to reload
    await _commit(world.learner, first, 3, {"cmi.core.lesson_location": "trang-2"})
    assert (second["cmi"]["cmi.core.entry"], second["cmi"]["cmi.core.lesson_location"],
            second["cmi"]["cmi.suspend_data"], second["cmi"]["cmi.core.total_time"]) == \
        ("resume", "trang-2", "da-xem=2", "0000:01:00.50")
    r = await _commit(world.learner, second, 1, {"cmi.core.lesson_status": "completed", "cmi.core.score.raw": "85",
                                                   "cmi.core.score.max": "100", "cmi.core.score.min": "0",
                                                   "cmi.core.session_time": "00:02:30", "cmi.core.exit": ""})
    out = await r.json()
    assert (out["completion"], out["success"], out["total_time"]) == ("completed", "passed", "0000:03:30.50")
    # a late commit of the first session (queued offline) counts its time but does not overwrite the newer data
    late = await _commit(world.learner, first, 5, {"cmi.core.lesson_status": "incomplete",
                                                    "cmi.core.session_time": "00:01:30"})
    assert (await late.json())["applied"] is False
    row = await _attempt(app, first["attempt_id"])
    assert (row.lesson_status, row.success, row.score_raw, row.score_scaled, row.location, row.suspend_data) == \
        ("passed", "passed", 85.0, 0.85, "trang-2", "da-xem=2")
    assert row.total_seconds == pytest.approx(240.0) and row.session_seconds == {"1": 90.0, "2": 150.0}
    restart = await _launch(world.learner, m["id"], restart=True)
    assert restart["number"] == 2 and restart["cmi"]["cmi.core.entry"] == "ab-initio"
    await _commit(world.learner, restart, 1, {"cmi.core.lesson_status": "incomplete",
                                               "cmi.core.session_time": "00:00:30"})

    # progress: the best attempt counts (starting over loses nothing), the time of every attempt adds up
    await _package(world, scorm12(scos=1, mastery=90), "bai-2.zip")  # another package, not started
    rows = await (await world.trainer.get(f"/api/v1/programs/{world.program_id}/progress")).json()
    me = next(p for p in rows if p["user_id"] == world.learner.user.id)
    assert (me["packages_completed"], me["packages_passed"], me["packages_total"], me["package_score"],
            me["package_seconds"], me["materials_total"], me["percent"]) == (1, 1, 2, 85, 270.0, 0, 50)
    csv = await (await world.trainer.get(f"/study/{world.program_id}/progress?format=csv")).text()
    assert "materials_total,packages_completed,packages_passed,packages_total,package_score,package_minutes," \
        "quizzes_passed" in csv.splitlines()[0]
    assert ",0,1,1,2,85,4.5,0,0,,50" in csv
    report = await (await world.operator.get(f"/api/v1/reports/progress?program_id={world.program_id}")).json()
    assert [(g["packages_completed"], g["packages_total"], g["package_score"], g["package_hours"])
            for g in report] == [(1, 2, 85.0, 0.07)]
    page = await (await world.trainer.get(f"/study/{world.program_id}/progress")).text()
    assert "Bài giảng điện tử đã hoàn thành" in page and "1/2 · 85%" in page
    attempts = await (await world.trainer.get(f"/api/v1/materials/{m['id']}/scorm/attempts")).json()
    assert [(a["username"], a["sco"], a["number"], a["completion"], a["success"], a["score_raw"], a["sessions"])
            for a in attempts] == [(world.learner.user.username, "ITEM-1", 1, "completed", "passed", 85.0, 2),
                                   (world.learner.user.username, "ITEM-1", 2, "incomplete", "unknown", None, 1)]
    assert (await world.learner.get(f"/api/v1/materials/{m['id']}/scorm/attempts")).status == 403
    page = await (await world.trainer.get(f"/materials/{m['id']}")).text()
    assert "Kết quả của học viên" in page and "85%" in page and "Chưa đạt" not in page
    monthly = await (await world.operator.get("/api/v1/reports/monthly")).json()
    assert monthly["items_completed"] == 1 and monthly["active_learners"] == 1
    assert [(g["packages_completed"], g["packages_passed"]) for g in monthly["progress"]] == [(1, 1)]


async def test_scorm_2004_success_from_the_scaled_passing_score_and_iso_times(app: web.Application,
                                                                              world: World) -> None:
    m = await _package(world, scorm2004(scos=2, passing=0.7))
    one = await _launch(world.learner, m["id"], sco="ITEM-2")
    assert one["sco"] == "ITEM-2" and one["cmi"]["cmi.scaled_passing_score"] == "0.7"
    r = await _commit(world.learner, one, 1, {"cmi.completion_status": "completed", "cmi.score.scaled": "0.65",
                                               "cmi.success_status": "passed", "cmi.session_time": "PT1H2M3.5S",
                                               "cmi.suspend_data": "x" * 60000})
    out = await r.json()
    assert (out["completion"], out["success"], out["total_time"]) == ("completed", "failed", "PT1H2M3.50S")
    info = await (await world.learner.get(f"/api/v1/materials/{m['id']}/scorm")).json()
    assert [(s["identifier"], s["completion"], s["success"]) for s in info["scos"]] == [
        ("ITEM-1", "not attempted", "unknown"), ("ITEM-2", "completed", "failed")]
    assert info["completed"] is False and info["seconds"] == pytest.approx(3723.5)


async def test_tokens_sessions_owners_csrf_and_limits(app: web.Application, world: World) -> None:
    m = await _package(world, scorm12(scos=2))
    a = await _launch(world.learner, m["id"], sco="ITEM-1")
    b = await _launch(world.learner, m["id"], sco="ITEM-2")
    forged = dict(a, attempt_id=b["attempt_id"])  # the token of one attempt does not open another
    r = await _commit(world.learner, forged, 1, {"cmi.core.lesson_location": "x"})
    assert r.status == 403 and (await r.json())["error"]["code"] == "bad-token"
    r = await _commit(world.learner, dict(a, session=2), 1, {"cmi.core.lesson_location": "x"})
    assert r.status == 403
    r = await _commit(world.outsider, a, 1, {"cmi.core.lesson_location": "x"})  # someone else's attempt
    assert r.status in (403, 404)
    r = await world.learner.client.post(f"/api/v1/scorm/attempts/{a['attempt_id']}/commit",
                                        json={"token": a["token"], "session": 1, "seq": 1, "cmi": {}})
    assert r.status == 403 and (await r.json())["error"]["code"] == "csrf"
    for cmi, word in (({"cmi.suspend_data": "x" * 4097}, "4096"), ({"evil": "x"}, "cmi"),
                      ({"cmi.core.lesson_location": ["a"]}, "cmi")):
        r = await _commit(world.learner, a, 2, cmi)
        assert r.status == 422 and word in (await r.json())["error"]["message"], cmi
    r = await _commit(world.learner, a, 3, {"cmi.suspend_data": "x" * 4096})
    assert r.status == 200
    statuses = [(await _commit(world.learner, a, 10 + i, {"cmi.core.lesson_location": str(i)})).status
                for i in range(6)]
    assert statuses[-1] == 429 and statuses.count(200) >= 2  # 8 a minute per attempt, the refused ones counted too
    r = await _commit(world.learner, b, 1, {"cmi.core.lesson_location": "other attempt"})
    assert r.status == 200  # the limit is per attempt


async def test_launches_at_once_share_one_attempt(world: World) -> None:
    """A double click (or two tabs) opening a lesson at once: one attempt, no server error."""
    m = await _package(world, scorm12())
    replies = await asyncio.gather(*(world.learner.post(f"/api/v1/materials/{m['id']}/scorm/launch", json={})
                                     for _ in range(4)))
    assert [r.status for r in replies] == [200] * 4, [await r.text() for r in replies]
    launched = [await r.json() for r in replies]
    assert {x["attempt_id"] for x in launched} == {launched[0]["attempt_id"]} and launched[0]["number"] == 1
    again = await asyncio.gather(*(world.learner.post(f"/api/v1/materials/{m['id']}/scorm/launch",
                                                      json={"restart": True}) for _ in range(2)))
    assert all(r.status in (200, 409) for r in again) and any(r.status == 200 for r in again)


async def test_the_same_package_uploaded_twice_at_once_is_stored_once(app: web.Application, world: World) -> None:
    data = scorm12(scos=2)
    replies = await asyncio.gather(*(upload(world.trainer, world.program_id, data, filename=f"toan6-{i}.zip")
                                     for i in range(3)))
    assert [r.status for r in replies] == [201] * 3, [await r.text() for r in replies]
    made = [await r.json() for r in replies]
    assert {m["package_version"] for m in made} == {"1.2"} and len({m["sha256"] for m in made}) == 1
    async with app[DB]() as s:
        assert await s.get(ScormPackage, made[0]["sha256"]) is not None
