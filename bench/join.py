"""join: benchmark of join → first decoded frame in real Chromium through the Taphuan server.

A presenter page (Chromium's fake camera, 320×240) publishes; then a classroom page joins R times (a new
browser context each time) and we time, in the page, from the click on "join" to the first decoded frame of
the presenter's video (``framesDecoded`` > 0 in ``getStats()``). Everything runs on 127.0.0.1.

    .venv/bin/python bench/join.py --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiohttp.test_utils import TestServer  # noqa: E402
from playwright.async_api import async_playwright  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from server.app import create_app  # noqa: E402
from server.config import load_config  # noqa: E402
from server.db.engine import DB
from server.db.models import (  # noqa: E402
    Classroom,
    Meeting,
    MeetingStatus,
    Program,
    Role,
    Unit,
    UnitLevel,
    User,
    meeting_classrooms,
    meeting_presenters,
)
from tests.e2e.browser import launch, logged_in_context  # noqa: E402

FIRST_FRAME = """async () => {
  const t0 = performance.now();
  document.querySelector("[data-action=join]").click();
  for (;;) {
    const c = window.live;
    if (c && c.down && c.slots["presenter-video"]) {
      const tr = c.down.getTransceivers().find((t) => t.mid === c.slots["presenter-video"]);
      if (tr) {
        for (const r of (await tr.receiver.getStats()).values()) {
          if (r.type === "inbound-rtp" && r.framesDecoded > 0) return performance.now() - t0;
        }
      }
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}"""


async def main(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as data:
        config = load_config(None, env={}, overrides={"data_dir": data, "sfu.ice_addresses": ["127.0.0.1"]})
        app = create_app(config)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        base = str(server.make_url("/")).rstrip("/")
        now = dt.datetime.now(dt.UTC)
        async with app[DB]() as s:
            unit = Unit(code="B1", name="Bench", level=UnitLevel.PROVINCE)
            program = Program(title="Bench")
            s.add_all([unit, program])
            await s.flush()
            classroom = Classroom(code="BENCH", name="Bench classroom", unit_id=unit.id)
            trainer = User(username="bench-trainer", display_name="Trainer", role=Role.TRAINER)
            s.add_all([classroom, trainer])
            await s.flush()
            room_user = User(username="bench-room", display_name="Room", role=Role.CLASSROOM,
                             classroom_id=classroom.id)
            meeting = Meeting(program_id=program.id, title="Bench", status=MeetingStatus.PUBLISHED,
                              starts_at=now, ends_at=now + dt.timedelta(hours=1))
            s.add_all([room_user, meeting])
            await s.flush()
            await s.execute(insert(meeting_presenters).values(meeting_id=meeting.id, user_id=trainer.id))
            await s.execute(insert(meeting_classrooms).values(meeting_id=meeting.id, classroom_id=classroom.id))
            await s.commit()
        times: list[float] = []
        async with async_playwright() as pw:
            browser = await launch(pw)
            studio = await (await logged_in_context(browser, app, base, trainer)).new_page()
            await studio.goto(f"/live/{meeting.id}")
            await studio.click("[data-action=join]")
            await studio.wait_for_function("() => window.live && window.live.up && "
                                           "window.live.up.connectionState === 'connected'", timeout=30_000)
            await asyncio.sleep(2)
            for _ in range(rounds):
                ctx = await logged_in_context(browser, app, base, room_user)
                page = await ctx.new_page()
                await page.goto(f"/live/{meeting.id}")
                ms = await page.evaluate(FIRST_FRAME)
                times.append(float(ms))
                await ctx.close()
                await asyncio.sleep(1)
            await browser.close()
        await server.close()
    print(f"join → first decoded frame in Chromium, {rounds} rounds (ms):")
    print("  " + ", ".join(f"{t:.0f}" for t in times))
    print(f"  median {statistics.median(times):.0f} ms, max {max(times):.0f} ms")
    print("  (includes getUserMedia, WebSocket join, both ICE/DTLS handshakes and a keyframe request)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    asyncio.run(main(parser.parse_args().rounds))
