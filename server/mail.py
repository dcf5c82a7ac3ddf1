"""server.mail: optional e-mail notifications through the SMTP server of config.yaml (`smtp` section).

`Mailer.send(to, subject, text)` queues a message and returns at once; a background task hands it to
SMTP (smtplib in a thread, STARTTLS and login when configured) and logs failures without raising, so a
slow or broken mail server never fails a request. With an empty `smtp.host` nothing is sent.
`Mailer.drain()` waits for the queued messages (tests, shutdown). `setup(app)` creates the app's
Mailer (`MAILER`) in a cleanup context that drains it on stop.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
from collections.abc import AsyncIterator, Sequence
from email.message import EmailMessage

from aiohttp import web

from server.config import CONFIG, SmtpSection

log = logging.getLogger("taphuan.mail")
SEND_TIMEOUT = 30.0


class Mailer:
    """Mailer: sends plain-text e-mails in the background through one SMTP configuration."""

    def __init__(self, smtp: SmtpSection) -> None:
        self.smtp = smtp
        self.tasks: set[asyncio.Task[None]] = set()
        self.sent = 0

    @property
    def enabled(self) -> bool:
        """Mailer.enabled: an SMTP host is configured."""
        return bool(self.smtp.host)

    def send(self, to: Sequence[str], subject: str, text: str) -> None:
        """Mailer.send: queue one message to `to` (addresses without "@" are skipped)."""
        rcpts = sorted({a.strip() for a in to if "@" in a})
        if not self.enabled or not rcpts:
            return
        msg = EmailMessage()
        msg["From"] = self.smtp.sender
        msg["To"] = ", ".join(rcpts)
        msg["Subject"] = subject
        msg.set_content(text)
        task = asyncio.get_running_loop().create_task(self._deliver(msg))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _deliver(self, msg: EmailMessage) -> None:
        try:
            await asyncio.wait_for(asyncio.to_thread(self._smtp_send, msg), SEND_TIMEOUT)
            self.sent += 1
        except Exception:
            log.exception("e-mail to %s not sent", msg["To"])

    def _smtp_send(self, msg: EmailMessage) -> None:
        cfg = self.smtp
        with smtplib.SMTP(cfg.host, cfg.port, timeout=SEND_TIMEOUT) as smtp:
            if cfg.starttls:
                smtp.starttls()
            if cfg.username:
                smtp.login(cfg.username, cfg.password)
            smtp.send_message(msg)

    async def drain(self, within: float = SEND_TIMEOUT) -> None:
        """Mailer.drain: wait (at most `within` seconds) for the queued messages."""
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=within)


def setup(app: web.Application) -> None:
    """setup: create the app's Mailer at start and drain it at stop."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        mailer = Mailer(app[CONFIG].smtp)
        app[MAILER] = mailer
        yield
        await mailer.drain(5.0)

    app.cleanup_ctx.append(ctx)

MAILER: web.AppKey[Mailer] = web.AppKey("mailer")
