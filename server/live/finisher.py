"""server.live.finisher: finalizes the recordings a stopping server hands over, after it has exited.

A shutdown (SIGTERM) must not wait minutes for a lecture file, nor leave its recordings `processing` until the
server starts again. So `Recorders.close` starts this module as its own process (`recordings.hand_over`), in a
new session (a terminal's Ctrl-C or the server's exit does not stop it), with the configuration and the recording
ids on its standard input. It finalizes them one after the other exactly as the server does
(`Recorders.finalize`: the niced worker, progress, then `ready` or `failed` in the database) and exits. A server
started meanwhile finalizes the same recordings at start; the worker's lock makes the two take turns, and the
second finds the work done.

Under systemd keep `KillMode=process`: with the default `control-group` a stop kills every process of the
service, this one included, and the next start finalizes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys

from aiohttp import web

from server.config import CONFIG, Config
from server.db.engine import DB, make_engine, make_sessionmaker
from server.live.recordings import Recorders

log = logging.getLogger("taphuan.recordings")


async def finish(config: Config, recording_ids: list[int]) -> None:
    """finish: finalize each recording (the server's own `Recorders.finalize`, without live rooms)."""
    engine = make_engine(config.database_url, busy_timeout=config.database.busy_timeout)
    app = web.Application()
    app[CONFIG] = config
    app[DB] = make_sessionmaker(engine)
    recorders = Recorders(app)
    try:
        for recording_id in recording_ids:
            try:
                await recorders.finalize(recording_id)
            except Exception:
                log.exception("finalizing recording %s failed", recording_id)
        while recorders.tasks:  # the last progress and state updates
            await asyncio.gather(*recorders.tasks, return_exceptions=True)
    finally:
        await engine.dispose()


def main() -> int:
    """main: read `{"config", "recordings"}` from standard input and finish them."""
    from server.logs import setup_logging

    order = json.loads(sys.stdin.read())
    config = Config.model_validate(order["config"])
    setup_logging(config)
    ids = [int(i) for i in order["recordings"]]
    log.info("finishing recordings %s after the server's shutdown", ids)
    asyncio.run(finish(config, ids))
    return 0


if __name__ == "__main__":
    sys.exit(main())
