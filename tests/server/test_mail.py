"""Tests of server.mail against a local SMTP server: what is sent to whom, nothing without a host, failures logged
and never raised, login, drained at stop."""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from server import mail
from server.config import CONFIG, Config, SmtpSection
from server.mail import MAILER, Mailer
from tests.server.mailtest import Inbox, smtp  # noqa: F401  (fixture)

SENDER = "taphuan@example.edu.vn"


def _mailer(port: int, **settings: Any) -> Mailer:
    return Mailer(SmtpSection(host="127.0.0.1", port=port, sender=SENDER, **settings))


async def _delivered(mailer: Mailer, inbox: Inbox, count: int) -> None:
    await mailer.drain(10)
    for _ in range(100):  # the server hands the message to the handler a moment after the client is done
        if len(inbox.messages) >= count:
            return
        await asyncio.sleep(0.02)


async def test_one_message_to_every_valid_address(smtp: tuple[Inbox, int]) -> None:  # noqa: F811
    inbox, port = smtp
    mailer = _mailer(port)
    mailer.send([" b@example.edu.vn", "a@example.edu.vn", "b@example.edu.vn ", "không-có-địa-chỉ", ""],
                "[Taphuan] Buổi tập huấn mới", "Thứ Hai 08:00.\n\nMon 08:00.\n")
    assert len(mailer.tasks) == 1  # queued: send() did not wait for the server
    await _delivered(mailer, inbox, 1)
    assert mailer.sent == 1 and mailer.tasks == set()
    [(rcpts, raw)] = inbox.messages
    assert rcpts == ["a@example.edu.vn", "b@example.edu.vn"]  # each once, trimmed, sorted
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert (str(msg["From"]), str(msg["To"])) == (SENDER, "a@example.edu.vn, b@example.edu.vn")
    assert str(msg["Subject"]) == "[Taphuan] Buổi tập huấn mới"
    assert msg.get_body().get_content().splitlines() == ["Thứ Hai 08:00.", "", "Mon 08:00."]  # type: ignore[union-attr]


async def test_nothing_is_queued_without_a_host_or_a_valid_address(smtp: tuple[Inbox, int]) -> None:  # noqa: F811
    inbox, port = smtp
    off = Mailer(SmtpSection())
    assert not off.enabled
    off.send(["a@example.edu.vn"], "s", "t")
    on = _mailer(port)
    assert on.enabled
    on.send(["không-có-địa-chỉ", " "], "s", "t")
    on.send([], "s", "t")
    assert off.tasks == on.tasks == set()
    await asyncio.sleep(0.1)
    assert inbox.messages == [] and off.sent == on.sent == 0


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_failure_is_logged_not_raised(caplog: pytest.LogCaptureFixture,
                                              smtp: tuple[Inbox, int]) -> None:  # noqa: F811
    inbox, port = smtp
    for mailer in (_mailer(_closed_port()), _mailer(port, starttls=True)):  # nobody there; no STARTTLS offered
        with caplog.at_level(logging.ERROR, logger="taphuan.mail"):
            mailer.send(["a@example.edu.vn"], "s", "t")
            await mailer.drain(10)
        assert mailer.sent == 0 and mailer.tasks == set()
    failures = [r for r in caplog.records if r.getMessage() == "e-mail to a@example.edu.vn not sent"]
    assert len(failures) == 2 and all(r.exc_info for r in failures)
    assert inbox.messages == []


class _Accounts:
    """_Accounts: an aiosmtpd authenticator knowing one account."""

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"taphuan",
                                                                                                 b"mat-khau-1")
        return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp_with_login() -> Iterator[tuple[Inbox, int]]:
    """smtp_with_login: a local SMTP server that requires a login (over plain TCP, for the test)."""
    port = _closed_port()
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=_Accounts(), auth_required=True,
                            auth_require_tls=False)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_login_when_configured(smtp_with_login: tuple[Inbox, int]) -> None:
    inbox, port = smtp_with_login
    wrong = _mailer(port, username="taphuan", password="sai")
    wrong.send(["a@example.edu.vn"], "s", "sai")
    await wrong.drain(10)
    assert wrong.sent == 0
    right = _mailer(port, username="taphuan", password="mat-khau-1")
    right.send(["a@example.edu.vn"], "s", "đúng")
    await _delivered(right, inbox, 1)
    assert right.sent == 1 and len(inbox.messages) == 1


async def test_the_apps_mailer_is_drained_at_stop(make_config: Any, smtp: tuple[Inbox, int]) -> None:  # noqa: F811
    inbox, port = smtp
    config: Config = make_config(**{"smtp.host": "127.0.0.1", "smtp.port": port, "smtp.sender": SENDER})
    app = web.Application()
    app[CONFIG] = config
    mail.setup(app)
    runner = web.AppRunner(app)
    await runner.setup()
    app[MAILER].send(["a@example.edu.vn"], "s", "t")
    await runner.cleanup()  # stop: the queued message goes out first
    assert app[MAILER].sent == 1
    await _delivered(app[MAILER], inbox, 1)
    assert len(inbox.messages) == 1
