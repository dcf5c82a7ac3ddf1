"""server.pages.scorm: the play page frames only the content origin (its CSP's frame-src), lists a package's lessons
with the caller's status, opens the first lesson not completed; a ZIP that is not SCORM goes back to its page;
people outside the program are refused."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from server.learning.content import CONTENT
from tests.server.learning_helpers import make_world, upload
from tests.server.scorm_helpers import build_zip, scorm2004


async def test_the_play_page(app: web.Application, login_as: Any, make_classroom: Any) -> None:
    world = await make_world(app, login_as, make_classroom)
    m = await (await upload(world.trainer, world.program_id, scorm2004(scos=2), filename="ngu-van.zip")).json()
    r = await world.learner.get(f"/materials/{m['id']}/play")
    assert r.status == 200
    origin = f"http://127.0.0.1:{app[CONTENT].port}"
    csp = r.headers["Content-Security-Policy"]
    assert re.search(r"(?:^|; )frame-src ([^;]*)", csp).group(1) == origin  # type: ignore[union-attr]
    assert "script-src 'self';" in csp and "unsafe-inline" not in csp
    page = await r.text()
    assert f'data-content-origin="{origin}"' in page and 'data-sco="ITEM-1"' in page
    assert 'sandbox="allow-scripts allow-same-origin' in page and "allow-top-navigation" not in page
    assert page.count("Chưa bắt đầu") == 2 and "Bài tiếp theo" in page and "Bài trước" not in page
    launch = await (await world.learner.post(f"/api/v1/materials/{m['id']}/scorm/launch", json={})).json()
    await world.learner.post(f"/api/v1/scorm/attempts/{launch['attempt_id']}/commit", json={
        "token": launch["token"], "session": launch["session"], "seq": 1,
        "cmi": {"cmi.completion_status": "completed"}})
    page = await (await world.learner.get(f"/materials/{m['id']}/play")).text()
    assert 'data-sco="ITEM-2"' in page and "Hoàn thành" in page and "Bài trước" in page  # the first lesson not done
    page = await (await world.learner.get(f"/materials/{m['id']}/play?sco=ITEM-1&restart=1")).text()
    assert 'data-sco="ITEM-1"' in page and 'data-restart="true"' in page
    assert (await world.learner.get(f"/materials/{m['id']}/play?sco=NONE")).status == 404
    assert (await world.outsider.get(f"/materials/{m['id']}/play")).status == 403

    plain = await (await upload(world.trainer, world.program_id, build_zip({"a.txt": "a"}), filename="a.zip")).json()
    r = await world.learner.get(f"/materials/{plain['id']}/play", allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == f"/materials/{plain['id']}"
    listing = await (await world.trainer.get(f"/study/{world.program_id}/materials")).text()
    assert "SCORM 2004" in listing and f'href="/materials/{m["id"]}/play"' in listing
    assert "Chỉ tải xuống" in listing and "Không có imsmanifest.xml" in listing
