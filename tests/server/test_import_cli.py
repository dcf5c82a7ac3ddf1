"""Tests of `taphuan import units|classrooms FILE.csv` (server.people.importer.run_import_command via the CLI)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from server.cli import main
from server.db.engine import make_engine, make_sessionmaker
from server.db.models import AuditEntry, Classroom, Unit


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    """config_file: a config whose data directory is under tmp_path."""
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data")}), encoding="utf-8")
    return path


def _query(tmp_path: Path, model: type[Unit] | type[Classroom] | type[AuditEntry]) -> int:
    async def run() -> int:
        engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'data' / 'taphuan.sqlite3'}")
        try:
            async with make_sessionmaker(engine)() as s:
                return int(await s.scalar(select(func.count()).select_from(model)) or 0)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_cli_import_units_then_classrooms(tmp_path: Path, config_file: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAPHUAN_DATA_DIR", raising=False)
    units = tmp_path / "units.csv"
    lines = ["code,name,level,parent_code,valid_from,valid_to", "14,Sơn La,province,,,"]
    lines += [f"H{i:04d},Huyện {i},district,14,,2025-06-30" for i in range(2500)]
    units.write_bytes(("\ufeff" + "\n".join(lines) + "\n").encode())
    assert main(["--config", str(config_file), "import", "units", str(units)]) == 0
    out = capsys.readouterr().out
    assert "1000/2501" in out and "2000/2501" in out
    assert "2501 mới / created" in out
    assert _query(tmp_path, Unit) == 2501

    rooms = tmp_path / "rooms.csv"
    rooms.write_text("code,name,unit_code,host\nSL-1,Phòng 1,H0001,Trường A\n", encoding="utf-8")
    assert main(["--config", str(config_file), "import", "classrooms", str(rooms)]) == 0
    assert _query(tmp_path, Classroom) == 1
    assert main(["--config", str(config_file), "import", "units", str(units)]) == 0
    assert "2501 không đổi / unchanged" in capsys.readouterr().out
    assert _query(tmp_path, Unit) == 2501
    assert _query(tmp_path, AuditEntry) == 3


def test_cli_import_errors_exit_1(tmp_path: Path, config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("code,name,level,parent_code\nH1,Huyện,district,99\nH2,Huyện 2,village,\nT1,Tỉnh,province,\n",
                   encoding="utf-8")
    assert main(["--config", str(config_file), "import", "units", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "dòng 2: không có đơn vị cấp trên mã '99'" in err and "row 2: unknown parent code '99'" in err
    assert "dòng 3:" in err
    assert "2 lỗi" in err
    assert _query(tmp_path, Unit) == 0


def test_cli_import_with_data_dir_env(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAPHUAN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("TAPHUAN_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "u.csv"
    path.write_text("code,name,level\n99,Tỉnh Thử,province\n", encoding="utf-8")
    assert main(["import", "units", str(path)]) == 0
    assert _query(tmp_path, Unit) == 1
    assert main(["import", "units", str(tmp_path / "missing.csv")]) == 1
    assert "missing.csv" in capsys.readouterr().err
