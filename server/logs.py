"""server.logs: structured logging (JSON lines or text) with the request id."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from server.config import Config

_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}
# Libraries whose INFO lines are chatter (alembic names every plugin and migration at each start): their
# warnings and errors still show.
QUIET_LIBRARIES = ("aioice", "aiortc", "alembic")


class JsonFormatter(logging.Formatter):
    """JsonFormatter: one JSON object per line with time, level, logger, message and extras."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + "Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """TextFormatter: readable lines, with the request id when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        rid = getattr(record, "request_id", None)
        return f"{base} [{rid}]" if rid else base


def setup_logging(config: Config) -> None:
    """setup_logging: configure the root logger once for the CLI."""
    handler = logging.StreamHandler(sys.stderr)
    if config.log.format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(config.log.level)
    for chatty in QUIET_LIBRARIES:
        logging.getLogger(chatty).setLevel(logging.WARNING)
