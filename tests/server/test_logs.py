"""Tests of server.logs: JSON and text lines with the request id and extras, levels, quiet libraries."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from server.config import Config
from server.logs import QUIET_LIBRARIES, JsonFormatter, TextFormatter, setup_logging


def record(message: str, *args: Any, level: int = logging.INFO, exc: bool = False, **extra: Any) -> logging.LogRecord:
    """record: a log record as `logger.log(level, message, *args, extra=extra)` makes it."""
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    rec = logging.getLogger("taphuan.test").makeRecord("taphuan.test", level, __file__, 1, message, args, exc_info,
                                                        extra=extra)
    rec.created = 1757898000.25  # 2025-09-15 01:00:00 UTC
    return rec


def test_json_line_has_time_level_logger_message_and_extras() -> None:
    rec = record("%s %s %s", "GET", "/healthz", 200, request_id="ab12", ms=1.5, remote="10.0.0.7")
    line = JsonFormatter().format(rec)
    assert "\n" not in line
    assert json.loads(line) == {"time": "2025-09-15T01:00:00Z", "level": "INFO", "logger": "taphuan.test",
                                "message": "GET /healthz 200", "request_id": "ab12", "ms": 1.5,
                                "remote": "10.0.0.7"}


def test_json_keeps_vietnamese_drops_private_extras_and_stringifies_the_rest() -> None:
    rec = record("Lớp học đã vào", _private=1, at=dt.datetime(2025, 9, 15, 8, 0), level=logging.WARNING)
    line = JsonFormatter().format(rec)
    assert "Lớp học đã vào" in line  # not \u-escaped: a human reads the file too
    data = json.loads(line)
    assert data["level"] == "WARNING" and "_private" not in data
    assert data["at"] == "2025-09-15 08:00:00"  # a value JSON cannot hold is written as text, not an error


def test_json_carries_the_traceback() -> None:
    data = json.loads(JsonFormatter().format(record("failed", exc=True)))
    assert "ValueError: boom" in data["exc"] and "Traceback" in data["exc"]


def test_text_line_ends_with_the_request_id_when_there_is_one() -> None:
    fmt = TextFormatter("%(levelname)s %(name)s: %(message)s")
    assert fmt.format(record("GET /")) == "INFO taphuan.test: GET /"
    assert fmt.format(record("GET /", request_id="ab12")) == "INFO taphuan.test: GET / [ab12]"


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """root_logger: the root logger and the quiet libraries' levels, restored after the test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in QUIET_LIBRARIES}
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, lib_level in levels.items():
        logging.getLogger(name).setLevel(lib_level)


def test_setup_json_at_warning(root_logger: logging.Logger, make_config: Callable[..., Config],
                               capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(make_config(**{"log.format": "json", "log.level": "WARNING"}))
    assert len(root_logger.handlers) == 1  # replaces whatever was there: no line twice
    logging.getLogger("taphuan.x").info("not shown")
    logging.getLogger("taphuan.x").warning("shown", extra={"request_id": "r1"})
    lines = capsys.readouterr().err.splitlines()
    assert [json.loads(line)["message"] for line in lines] == ["shown"]
    assert json.loads(lines[0])["request_id"] == "r1"


def test_setup_text_at_info_keeps_libraries_quiet(root_logger: logging.Logger, make_config: Callable[..., Config],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(make_config(**{"log.format": "text", "log.level": "INFO"}))
    logging.getLogger("taphuan.x").info("server started")
    logging.getLogger("alembic.runtime.migration").info("Running upgrade 0009 -> 0010")
    logging.getLogger("aioice.ice").warning("consent lost")
    err = capsys.readouterr().err
    assert "INFO taphuan.x: server started" in err
    assert "Running upgrade" not in err  # alembic's INFO chatter is gone at start
    assert "WARNING aioice.ice: consent lost" in err  # but its warnings still show
