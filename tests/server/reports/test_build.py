"""Tests of server.reports.build: intervals from events, random event sequences against an independent count,
drops and restarts, units before and after 1 July 2025, monthly summary and learner progress."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import insert

from server.config import CONFIG
from server.db.engine import DB
from server.db.models import (
    AttendanceEvent,
    Classroom,
    ForumQuestion,
    ForumTopic,
    Headcount,
    Material,
    MaterialKind,
    Meeting,
    MeetingStatus,
    Program,
    Recording,
    Role,
    StudyProgress,
    Unit,
    UnitLevel,
    User,
    meeting_classrooms,
    program_learners,
)
from server.live.attendance import close_open_intervals
from server.reports import build as reports
from server.reports.build import Filters
from server.reports.presence import meeting_attendance
from tests.server.reports.test_presence import T0, ev

# --- property: random sequences against a second-by-second count ----------------------------------------

KINDS = ["join", "resume", "leave", "drop", "closed-at-restart", "hand-up", "hand-down", "floor-start",
         "floor-end", "chat", "poll-answer", "quality"]
WEIGHTS = [6, 3, 3, 3, 1, 2, 1, 2, 2, 2, 2, 3]
PEOPLE = {"a1": 1, "a2": 1, "b1": 2, "t1": None}


def _independent(events: list[AttendanceEvent], start: int, end: int, now: int, live: bool,
                 ) -> dict[str, dict[str, float]]:
    """Second by second: who is present, who holds the floor (no interval arithmetic)."""
    secs = {e.id: int((e.at - T0).total_seconds()) for e in events}
    ordered = sorted(events, key=lambda e: (secs[e.id], e.id))
    out: dict[str, dict[str, float]] = {}
    horizon = max([now] + list(secs.values())) + 2
    for pid, room in PEOPLE.items():
        key = f"classroom:{room}" if room else "user:9"
        mine = [e for e in ordered if e.participant == pid]
        if not mine:
            continue
        stop = now if live else secs[mine[-1].id]
        d = out.setdefault(key, {"present": set(), "floor": set(), "hands": 0, "chat": 0, "polls": 0})  # type: ignore
        d["hands"] += sum(e.kind == "hand-up" for e in mine)
        d["chat"] += sum(e.kind == "chat" for e in mine)
        d["polls"] += sum(e.kind == "poll-answer" for e in mine)
        # a drop while present whose next opening, closing or floor-start is a resume: a cut it came back from
        bridged = set()
        here = False
        for i, e in enumerate(mine):
            if e.kind == "drop" and here:
                after = [x.kind for x in mine[i + 1:] if x.kind in ("join", "resume", "leave", "drop",
                                                                     "closed-at-restart", "floor-start")]
                if after[:1] == ["resume"]:
                    bridged.add(e.id)
            if e.kind in ("join", "resume"):
                here = True
            elif e.kind in ("leave", "drop", "closed-at-restart"):
                here = False
        for t in range(-1000, horizon):
            here = floor = False
            for e in mine:
                if secs[e.id] > t:
                    break
                if e.id in bridged:
                    continue
                if e.kind in ("join", "resume"):
                    here = True
                elif e.kind in ("leave", "drop", "closed-at-restart"):
                    here = floor = False
                elif e.kind == "floor-start":
                    floor = True
                elif e.kind == "floor-end":
                    floor = False
            if here and t < stop:
                d["present"].add(t)  # type: ignore[attr-defined]
            if floor and t < stop:
                d["floor"].add(t)  # type: ignore[attr-defined]
    result = {}
    for key, d in out.items():
        present: set[int] = d["present"]  # type: ignore[assignment]
        result[key] = {"seconds": len(present), "scheduled": len([t for t in present if start <= t < end]),
                       "floor": len(d["floor"]), "hands": d["hands"], "chat": d["chat"],  # type: ignore[arg-type]
                       "polls": d["polls"]}
    return result


@pytest.mark.parametrize("seed", range(40))
def test_random_event_sequences_match_an_independent_count(seed: int) -> None:
    rng = random.Random(seed)
    events = []
    for _ in range(rng.randint(1, 60)):
        pid = rng.choice(list(PEOPLE))
        kind = rng.choices(KINDS, WEIGHTS)[0]
        events.append(ev(rng.randint(-300, 3000), kind, pid, classroom_id=PEOPLE[pid],
                         user_id=None if PEOPLE[pid] else 9, loss=rng.random() / 5, up_bitrate=rng.randint(0, 900000)))
    live = rng.random() < 0.5
    now = 3300
    start, end = 0, 2400
    att = meeting_attendance(1, T0 + dt.timedelta(seconds=start), T0 + dt.timedelta(seconds=end), events,
                             now=T0 + dt.timedelta(seconds=now), live=live)
    expected = _independent(events, start, end, now, live)
    got = {a.key: a for a in att.attendees}
    assert set(got) == set(expected)
    for key, want in expected.items():
        a = got[key]
        assert a.seconds == want["seconds"], (key, [(s.start, s.end, s.how) for s in a.spans])
        assert a.scheduled_seconds == want["scheduled"]
        assert a.share == pytest.approx(want["scheduled"] / (end - start))
        assert a.floor_seconds == want["floor"]
        assert (a.hands, a.chat, a.poll_answers) == (want["hands"], want["chat"], want["polls"])
    # Totals over classrooms equal the sum of the classrooms' own figures.
    rooms = [a for a in att.attendees if a.classroom_id]
    t = reports.Totals()
    for a in rooms:
        t.add_row(reports.ClassroomRow(Classroom(id=a.classroom_id, code=str(a.classroom_id), name="x", unit_id=1),
                                       reports.Place(None, None, None), True, a, None))
    assert t.minutes == pytest.approx(sum(expected[a.key]["seconds"] for a in rooms) / 60)
    assert t.hands == sum(expected[a.key]["hands"] for a in rooms)
    assert t.chat == sum(expected[a.key]["chat"] for a in rooms)
    assert t.poll_answers == sum(expected[a.key]["polls"] for a in rooms)
    assert t.floor_minutes == pytest.approx(sum(expected[a.key]["floor"] for a in rooms) / 60)


# --- with the database ---------------------------------------------------------------------------------

async def _structure(app: Any) -> dict[str, int]:
    """Two structures: Hà Giang → district Vị Xuyên (until 30/6/2025), Tuyên Quang → commune Minh Tân (after)."""
    async with app[DB]() as s:
        old = Unit(code="T02", name="Hà Giang cũ", level=UnitLevel.PROVINCE, valid_to=dt.date(2025, 6, 30))
        new = Unit(code="T08", name="Tuyên Quang mới", level=UnitLevel.PROVINCE, valid_from=dt.date(2025, 7, 1))
        s.add_all([old, new])
        await s.flush()
        district = Unit(code="T026", name="Huyện Vị Xuyên", level=UnitLevel.DISTRICT, parent_id=old.id,
                        valid_to=dt.date(2025, 6, 30))
        commune = Unit(code="T0801", name="Xã Minh Tân", level=UnitLevel.COMMUNE, parent_id=new.id,
                       valid_from=dt.date(2025, 7, 1))
        s.add_all([district, commune])
        await s.flush()
        a = Classroom(code="LH-A", name="Điểm cầu Vị Xuyên", unit_id=district.id)
        b = Classroom(code="LH-B", name="Điểm cầu Minh Tân", unit_id=commune.id)
        s.add_all([a, b])
        program = Program(title="Chương trình GDPT 2018")
        s.add(program)
        await s.flush()
        ids = {"old": old.id, "new": new.id, "district": district.id, "commune": commune.id, "a": a.id, "b": b.id,
               "program": program.id}
        await s.commit()
    return ids


async def _meeting(app: Any, program_id: int, start: dt.datetime, classrooms: list[int], minutes: int = 120) -> int:
    async with app[DB]() as s:
        m = Meeting(program_id=program_id, title=f"Buổi {start:%d/%m}", status=MeetingStatus.PUBLISHED,
                    starts_at=start, ends_at=start + dt.timedelta(minutes=minutes))
        s.add(m)
        await s.flush()
        for c in classrooms:
            await s.execute(insert(meeting_classrooms).values(meeting_id=m.id, classroom_id=c))
        await s.commit()
        return m.id


async def _events(app: Any, meeting_id: int, rows: list[tuple[int, str, str, int | None]],
                  base: dt.datetime) -> None:
    async with app[DB]() as s:
        for minute, kind, pid, room in rows:
            s.add(AttendanceEvent(meeting_id=meeting_id, at=base + dt.timedelta(minutes=minute), kind=kind,
                                  participant=pid, classroom_id=room, role="classroom", name=pid,
                                  data={"loss": 0.03, "up_bitrate": 350000} if kind == "quality" else {}))
        await s.commit()


@pytest.mark.both_databases
async def test_units_before_and_after_the_reform_and_restart_marker(app: Any, client: Any) -> None:
    ids = await _structure(app)
    may = dt.datetime(2025, 5, 20, 1, 0, tzinfo=dt.UTC)
    sep = dt.datetime(2025, 9, 20, 1, 0, tzinfo=dt.UTC)
    m1 = await _meeting(app, ids["program"], may, [ids["a"]])
    m2 = await _meeting(app, ids["program"], sep, [ids["b"]])
    await _events(app, m1, [(0, "join", "pa", ids["a"]), (30, "drop", "pa", ids["a"]),
                            (35, "join", "pa2", ids["a"]), (90, "leave", "pa2", ids["a"])], may)
    # A restart mid-meeting: the interval is closed at the last sample, then the classroom comes back.
    await _events(app, m2, [(0, "join", "pb", ids["b"]), (40, "quality", "pb", ids["b"])], sep)
    assert await close_open_intervals(app, since_days=100000) == 1
    await _events(app, m2, [(50, "join", "pb2", ids["b"]), (110, "leave", "pb2", ids["b"])], sep)
    async with app[DB]() as s:
        s.add(Headcount(meeting_id=m2, classroom_id=ids["b"], count=23, names=["Nguyễn Văn A"]))
        await s.commit()
        now = dt.datetime(2025, 10, 1, tzinfo=dt.UTC)
        facts, places = await reports.collect(
            s, Filters(dt.datetime(2025, 1, 1, tzinfo=dt.UTC), dt.datetime(2026, 1, 1, tzinfo=dt.UTC)),
            now=now, live_ids=set())
        by_id = {f.meeting.id: f for f in facts}
        (ra,) = by_id[m1].rows
        assert ra.place.province_name == "Hà Giang cũ" and ra.place.area_name == "Huyện Vị Xuyên"
        assert [sp.how for sp in ra.attendee.spans] == ["drop", "leave"] and ra.attendee.minutes == 85
        (rb,) = by_id[m2].rows
        assert rb.place.province_name == "Tuyên Quang mới" and rb.place.area_name == "Xã Minh Tân"
        assert [sp.how for sp in rb.attendee.spans] == ["closed-at-restart", "leave"]
        assert rb.attendee.minutes == 100 and rb.teachers == 23
        # Units offered for a date range follow the structure of those dates.
        may_units = [u.name for u in reports.units_between(places, may.date(), may.date(), UnitLevel.PROVINCE)]
        sep_units = [u.name for u in reports.units_between(places, sep.date(), sep.date(), UnitLevel.PROVINCE)]
        assert "Hà Giang cũ" in may_units and "Tuyên Quang mới" not in may_units
        assert "Tuyên Quang mới" in sep_units and "Hà Giang cũ" not in sep_units
        # A unit filter keeps only the classrooms under it.
        only_new, _ = await reports.collect(
            s, Filters(dt.datetime(2025, 1, 1, tzinfo=dt.UTC), dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
                       unit_id=ids["new"]), now=now, live_ids=set())
        assert [f.meeting.id for f in only_new] == [m2]
        per_province = reports.by_group(facts, lambda r: r.place.province_name)
        assert per_province["Hà Giang cũ"].minutes == 85 and per_province["Tuyên Quang mới"].minutes == 100


@pytest.mark.both_databases
async def test_monthly_summary_counts_meetings_reach_recordings_forum_and_learners(
        app: Any, client: Any, make_user: Callable[..., Any]) -> None:
    ids = await _structure(app)
    sep = dt.datetime(2025, 9, 20, 1, 0, tzinfo=dt.UTC)
    m = await _meeting(app, ids["program"], sep, [ids["b"]], minutes=90)
    await _meeting(app, ids["program"], dt.datetime(2025, 10, 2, 1, tzinfo=dt.UTC), [ids["b"]])  # other month
    await _events(app, m, [(0, "join", "pb", ids["b"]), (60, "leave", "pb", ids["b"])], sep)
    learner: User = await make_user(Role.LEARNER, unit_id=ids["commune"])
    async with app[DB]() as s:
        s.add(Headcount(meeting_id=m, classroom_id=ids["b"], count=31, names=[]))
        s.add(Recording(meeting_id=m, program_id=ids["program"], title="Bản ghi", directory="r1", published=True,
                        started_at=sep))
        topic = ForumTopic(program_id=ids["program"], title="Hỏi đáp")
        s.add(topic)
        await s.flush()
        s.add(ForumQuestion(topic_id=topic.id, title="Câu hỏi", created_at=sep, answered_at=sep))
        video = Material(program_id=ids["program"], title="Video 1", kind=MaterialKind.VIDEO, filename="v.mp4",
                         mime="video/mp4", size=1, sha256="0" * 64)
        s.add(video)
        await s.flush()
        await s.execute(insert(program_learners).values(program_id=ids["program"], user_id=learner.id))
        s.add(StudyProgress(user_id=learner.id, program_id=ids["program"], item=f"material:{video.id}",
                            first_at=sep, last_at=sep, opens=1, duration=100, watched=95, completed=True))
        await s.commit()
        report = await reports.monthly(s, "2025-09", app[CONFIG].tz, now=dt.datetime(2025, 10, 1, tzinfo=dt.UTC),
                                       live_ids=set())
    t = report.totals
    assert (t.meetings, t.classrooms_reached, t.teachers, t.minutes, t.hours) == (1, 1, 31, 60, 1.5)
    assert report.recordings_published == 1 and report.forum_answered == 1
    assert report.active_learners == 1 and report.items_completed == 1
    (g,) = report.progress
    assert (g.province, g.area, g.learners, g.videos_watched, g.completed) == ("Tuyên Quang mới", "Xã Minh Tân",
                                                                              1, 1, 1)
    assert list(report.per_province) == ["Tuyên Quang mới"]
    with pytest.raises(ValueError):
        reports.month_range("2025-13", app[CONFIG].tz)
