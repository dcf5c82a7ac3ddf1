"""mailtest: a local SMTP server (aiosmtpd) for the tests of e-mail notifications.

A test module imports `smtp` and `config`: with `smtp` among a test's fixtures, the app sends its e-mail to
the local server, whose `Inbox` keeps every message.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from server.config import Config


class Inbox:
    """Inbox: an aiosmtpd handler keeping every message."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd API
        self.messages.append((list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    """smtp: a local SMTP server on a free port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
def config(make_config: Callable[..., Config], request: pytest.FixtureRequest) -> Config:
    """config: with `smtp` in the test, e-mail goes to the local SMTP server."""
    if "smtp" in request.fixturenames:
        _inbox, port = request.getfixturevalue("smtp")
        return make_config(**{"smtp.host": "127.0.0.1", "smtp.port": port, "smtp.sender": "taphuan@example.edu.vn"})
    return make_config()
