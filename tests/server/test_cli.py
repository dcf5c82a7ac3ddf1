"""Tests of the `taphuan user ...` commands (server.cli → server.people.accounts.run_user_command)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from server.auth import verify_password
from server.cli import main
from server.config import load_config
from server.db.engine import make_engine, make_sessionmaker, migrate
from server.db.models import AuditEntry, Classroom, LoginSession, Unit, UnitLevel, User, utcnow


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f"data_dir: {tmp_path / 'data'}\n", encoding="utf-8")
    return path


def run(config_file: Path, *args: str) -> int:
    return main(["--config", str(config_file), "user", *args])


def query_users(config_file: Path) -> dict[str, User]:
    async def go() -> dict[str, User]:
        engine = make_engine(load_config(str(config_file)).database_url)
        try:
            async with make_sessionmaker(engine)() as s:
                return {u.username: u for u in (await s.scalars(select(User))).all()}
        finally:
            await engine.dispose()

    return asyncio.run(go())


def password_in(output: str) -> str:
    match = re.search(r"password: (\S+)", output)
    assert match, output
    return match.group(1)


def test_add_list_passwd_disable_enable(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(config_file, "add", "Tran.Lan", "--role", "trainer", "--name", "Trần Thị Lan") == 0
    first = password_in(capsys.readouterr().out)
    users = query_users(config_file)
    assert users["tran.lan"].display_name == "Trần Thị Lan" and verify_password(users["tran.lan"].password_hash, first)

    assert run(config_file, "add", "op2", "--role", "operator", "--password", "chosen-password") == 0
    out = capsys.readouterr().out
    assert "password:" not in out and "op2" in out
    assert verify_password(query_users(config_file)["op2"].password_hash, "chosen-password")

    assert run(config_file, "list") == 0
    out = capsys.readouterr().out
    assert re.search(r"tran\.lan\s+trainer\s+active\s+Trần Thị Lan", out)
    assert "op2" in out

    assert run(config_file, "passwd", "tran.lan") == 0
    second = password_in(capsys.readouterr().out)
    assert second != first
    assert verify_password(query_users(config_file)["tran.lan"].password_hash, second)
    assert run(config_file, "passwd", "tran.lan", "--password", "another-password") == 0
    assert "password:" not in capsys.readouterr().out

    assert run(config_file, "disable", "TRAN.LAN") == 0
    assert query_users(config_file)["tran.lan"].disabled
    assert run(config_file, "list") == 0
    assert re.search(r"tran\.lan\s+trainer\s+disabled", capsys.readouterr().out)
    assert run(config_file, "enable", "tran.lan") == 0
    assert not query_users(config_file)["tran.lan"].disabled


def test_errors_exit_1(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(config_file, "add", "dup", "--role", "learner") == 0
    capsys.readouterr()
    assert run(config_file, "add", "dup", "--role", "learner") == 1
    assert "đã có" in capsys.readouterr().err
    for cmd in ("passwd", "disable", "enable"):
        assert run(config_file, cmd, "ghost") == 1
        assert "No account 'ghost'" in capsys.readouterr().err
    assert run(config_file, "add", "bad name", "--role", "learner") == 1
    assert run(config_file, "add", "room", "--role", "classroom") == 1
    assert "classroom" in capsys.readouterr().err
    assert run(config_file, "add", "room", "--role", "classroom", "--classroom", "NOPE") == 1
    assert "NOPE" in capsys.readouterr().err
    assert run(config_file, "passwd", "dup", "--password", "short") == 1
    with pytest.raises(SystemExit):
        run(config_file, "add", "x1", "--role", "guest")


def test_classroom_account_and_disable_ends_logins(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = load_config(str(config_file))
    config.data_path.mkdir(parents=True, exist_ok=True)

    async def setup() -> None:
        engine = make_engine(config.database_url)
        await migrate(engine)
        async with make_sessionmaker(engine)() as s:
            unit = Unit(code="T99", name="Tỉnh Thử", level=UnitLevel.PROVINCE)
            s.add(unit)
            await s.flush()
            s.add(Classroom(code="PH-01", name="Phòng học 1", unit_id=unit.id))
            await s.commit()
        await engine.dispose()

    asyncio.run(setup())
    assert run(config_file, "add", "ph01", "--role", "classroom", "--classroom", "PH-01") == 0
    user = query_users(config_file)["ph01"]
    assert user.classroom_id is not None

    async def add_login() -> None:
        import datetime as dt

        engine = make_engine(config.database_url)
        async with make_sessionmaker(engine)() as s:
            s.add(LoginSession(id="tok-1", user_id=user.id, csrf_token="c",
                               expires_at=utcnow() + dt.timedelta(hours=1)))
            await s.commit()
        await engine.dispose()

    async def login_state() -> tuple[str, list[str]]:
        engine = make_engine(config.database_url)
        async with make_sessionmaker(engine)() as s:
            login = await s.get(LoginSession, "tok-1")
            actions = list((await s.scalars(select(AuditEntry.action))).all())
        await engine.dispose()
        assert login is not None
        return login.revoked_reason, actions

    asyncio.run(add_login())
    assert run(config_file, "disable", "ph01") == 0
    reason, actions = asyncio.run(login_state())
    assert reason == "disabled"
    assert "user.create" in actions and "user.disable" in actions


def test_data_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TAPHUAN_CONFIG", raising=False)
    monkeypatch.setenv("TAPHUAN_DATA_DIR", str(tmp_path / "envdata"))
    assert main(["user", "add", "envuser", "--role", "learner"]) == 0
    assert "password:" in capsys.readouterr().out
    assert (tmp_path / "envdata" / "taphuan.sqlite3").exists()


@pytest.mark.both_databases
def test_migrate_says_what_it_applied(tmp_path: Path, database_url: str, request: pytest.FixtureRequest,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    url = request.getfixturevalue("postgres").new_database() if database_url else ""
    path = tmp_path / "migrate.yaml"
    path.write_text(f"data_dir: {tmp_path / 'data'}\ndatabase:\n  url: '{url}'\n", encoding="utf-8")
    (tmp_path / "data").mkdir()
    assert main(["--config", str(path), "migrate"]) == 0
    out = capsys.readouterr().out
    assert "at nothing (empty)" in out and "applied  -> 0001" in out and "migrations applied" in out
    assert main(["--config", str(path), "migrate"]) == 0
    out = capsys.readouterr().out
    assert "already up to date" in out and "applied" not in out.replace("migrations applied", "")
