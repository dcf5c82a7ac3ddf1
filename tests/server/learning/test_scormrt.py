"""server.learning.scormrt: SCORM durations read and written in both versions, per-attempt tokens, commit ordering
and session times, statuses the server decides (mastery score, scaled passing score, completion threshold), the
commit limiter and a package's result over its SCOs."""

from __future__ import annotations

import pytest

from server.db.models import ScormAttempt, User, utcnow
from server.learning import scormrt
from server.learning.scormrt import format_time, parse_time


@pytest.mark.parametrize(("text", "seconds"), [
    ("00:00:00", 0.0), ("0000:01:30.5", 90.5), ("12:34:56.78", 45296.78), ("9999:59:59.99", 35999999.99),
    ("PT0S", 0.0), ("PT1M30S", 90.0), ("PT1H2M3.5S", 3723.5), ("P1DT1S", 86401.0), ("P1Y", 365 * 86400.0),
    ("P1M", 30 * 86400.0), ("PT0.25S", 0.25),
    ("", None), ("P", None), ("PT", None), ("P1DT", None), ("1:00:00", None), ("00:60:00", None), ("abc", None),
    ("-PT1S", None),
])
def test_durations_of_both_versions(text: str, seconds: float | None) -> None:
    assert parse_time(text) == (None if seconds is None else pytest.approx(seconds))


def test_durations_are_written_as_each_version_expects() -> None:
    assert format_time(0, "1.2") == "0000:00:00.00"
    assert format_time(3723.456, "1.2") == "0001:02:03.46"
    assert format_time(3723.456, "2004") == "PT1H2M3.46S"
    assert format_time(120, "2004") == "PT0H2M0S"
    for seconds in (0.0, 59.99, 3600.5, 86399.0, 400000.25):
        for version in ("1.2", "2004"):
            assert parse_time(format_time(seconds, version)) == pytest.approx(seconds)


def test_a_token_opens_one_attempt_and_session_until_it_expires() -> None:
    key = b"k" * 32
    token = scormrt.sign_token(key, 7, 3, now=1000.0)
    assert scormrt.check_token(key, token, 7, 3, now=2000.0)
    assert not scormrt.check_token(key, token, 8, 3, now=2000.0)
    assert not scormrt.check_token(key, token, 7, 4, now=2000.0)
    assert not scormrt.check_token(b"x" * 32, token, 7, 3, now=2000.0)
    assert not scormrt.check_token(key, token, 7, 3, now=1000.0 + scormrt.TOKEN_DAYS * 86400 + 1)
    forged = token.replace(".3.", ".4.", 1)
    assert not scormrt.check_token(key, forged, 7, 4, now=2000.0)
    assert not scormrt.check_token(key, "7.3.99999999999.", 7, 3, now=2000.0)


def attempt(version: str = "1.2") -> ScormAttempt:
    return ScormAttempt(version=version, sessions=1, last_session=0, last_seq=0, completion="not attempted",
                        success="unknown", lesson_status="not attempted", location="", suspend_data="", exit="",
                        session_seconds={}, total_seconds=0.0, cmi={})


def test_commits_apply_in_order_and_every_session_time_counts_once() -> None:
    a = attempt()
    sco = {"identifier": "I", "mastery_score": 80.0}
    assert scormrt.commit(a, sco, 1, 1, {"cmi.core.lesson_location": "p1", "cmi.core.session_time": "00:01:00"}).applied
    assert scormrt.commit(a, sco, 1, 2, {"cmi.core.lesson_location": "p2", "cmi.core.session_time": "00:02:00"}).applied
    assert not scormrt.commit(a, sco, 1, 2, {"cmi.core.lesson_location": "again"}).applied
    assert not scormrt.commit(a, sco, 1, 1, {"cmi.core.lesson_location": "late",
                                             "cmi.core.session_time": "00:00:30"}).applied
    assert a.location == "p2" and a.total_seconds == 120.0  # a session's time is its largest report
    assert scormrt.commit(a, sco, 2, 1, {"cmi.core.session_time": "00:00:10", "cmi.core.lesson_status": "completed",
                                         "cmi.core.score.raw": "79"}).applied
    assert (a.total_seconds, a.location, a.lesson_status, a.success, a.completion) == \
        (130.0, "p2", "failed", "failed", "completed")
    assert a.cmi["cmi.core.lesson_location"] == "p2"  # elements are merged over the held ones


def test_session_times_fold_when_there_are_too_many_sessions() -> None:
    a = attempt("2004")
    for session in range(1, scormrt.MAX_SESSIONS_KEPT + 11):
        scormrt.commit(a, {"identifier": "I"}, session, 1, {"cmi.session_time": "PT1S"})
    assert len(a.session_seconds) == scormrt.MAX_SESSIONS_KEPT
    assert a.session_seconds["0"] == 11.0 and a.total_seconds == scormrt.MAX_SESSIONS_KEPT + 10


def test_2004_statuses_from_the_scaled_passing_score_and_completion_threshold() -> None:
    a = attempt("2004")
    sco = {"identifier": "I", "scaled_passing_score": 0.8, "completion_threshold": 0.75}
    scormrt.commit(a, sco, 1, 1, {"cmi.completion_status": "completed", "cmi.progress_measure": "0.5",
                                  "cmi.success_status": "passed", "cmi.score.scaled": "0.79", "cmi.exit": "suspend",
                                  "cmi.location": "slide-4"})
    assert (a.completion, a.success, a.score_scaled, a.exit, a.location) == \
        ("incomplete", "failed", 0.79, "suspend", "slide-4")
    scormrt.commit(a, sco, 1, 2, {"cmi.progress_measure": "0.9", "cmi.score.scaled": "0.85"})
    assert (a.completion, a.success) == ("completed", "passed")


def test_the_data_model_is_checked() -> None:
    assert scormrt.check_cmi({"cmi.core.score.raw": 85, "cmi.x": 0.5, "cmi.objectives": {}}, "1.2") == \
        {"cmi.core.score.raw": "85", "cmi.x": "0.5"}
    for bad in ({"window.x": "1"}, {"cmi.a b": "1"}, {"cmi.core.exit": None}, {"cmi.core.exit": True},
                {"cmi.suspend_data": "x" * 4097}, {"cmi.comments": "x" * 64001}):
        with pytest.raises(Exception) as caught:
            scormrt.check_cmi(bad, "1.2")
        assert getattr(caught.value, "status_code", 0) == 422, bad
    assert len(scormrt.check_cmi({"cmi.suspend_data": "x" * 64000}, "2004")["cmi.suspend_data"]) == 64000


def test_the_commit_limiter_counts_per_attempt_over_a_minute() -> None:
    limiter = scormrt.CommitLimiter(per_minute=3)
    assert [limiter.allow(1, now=t) for t in (0, 1, 2)] == [0.0, 0.0, 0.0]
    assert limiter.allow(1, now=3) == pytest.approx(57.0)
    assert limiter.allow(2, now=3) == 0.0
    assert limiter.allow(1, now=60.5) == 0.0


def test_a_package_result_over_its_scos() -> None:
    scos = [{"identifier": "A", "sco": True}, {"identifier": "B", "sco": True}, {"identifier": "X", "sco": False}]
    a, b = attempt("2004"), attempt("2004")
    for row, name in ((a, "A"), (b, "B")):
        row.sco, row.number, row.total_seconds = name, 1, 60.0
        row.updated_at = row.created_at = utcnow()
    a.completion, a.success, a.score_scaled = "completed", "passed", 0.9
    b.completion, b.success, b.score_scaled = "incomplete", "unknown", None
    result = scormrt.package_result(scos, {"A": a, "B": b})
    assert (result.completed, result.passed, result.score, result.seconds) == (False, False, 90, 120.0)
    b.completion, b.success, b.score_scaled = "completed", "passed", 0.7
    result = scormrt.package_result(scos, {"A": a, "B": b})
    assert (result.completed, result.passed, result.score) == (True, True, 80)
    assert scormrt.package_result(scos, {}).completed is False


def test_a_2004_resume_hands_back_what_the_runtime_needs() -> None:
    a = attempt("2004")
    a.sessions, a.number = 1, 1
    sco = {"identifier": "I", "scaled_passing_score": 0.8, "completion_threshold": 0.75, "launch_data": "mode=a"}
    scormrt.commit(a, sco, 1, 1, {"cmi.progress_measure": "0.9", "cmi.score.scaled": "0.85", "cmi.exit": "suspend",
                                  "cmi.location": "s4", "cmi.suspend_data": "d", "cmi.session_time": "PT10S"})
    a.sessions = 2
    user = User(username="hv.an", display_name="An")
    cmi = scormrt.initial_cmi(a, sco, user)
    assert {k: cmi.get(k) for k in ("cmi.entry", "cmi.location", "cmi.suspend_data", "cmi.total_time",
                                    "cmi.progress_measure", "cmi.completion_status", "cmi.success_status",
                                    "cmi.score.scaled", "cmi.scaled_passing_score", "cmi.launch_data")} == {
        "cmi.entry": "resume", "cmi.location": "s4", "cmi.suspend_data": "d", "cmi.total_time": "PT0H0M10S",
        "cmi.progress_measure": "0.9", "cmi.completion_status": "completed", "cmi.success_status": "passed",
        "cmi.score.scaled": "0.85", "cmi.scaled_passing_score": "0.8", "cmi.launch_data": "mode=a"}
