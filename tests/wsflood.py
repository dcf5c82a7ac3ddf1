"""wsflood: a signalling WebSocket flood for tests and benches: N sockets of one login sending `{"type":"nope"}` and
binary frames in a loop, as fast as the server takes them, reconnecting when a socket is refused or closed.

It runs in its own process (`python -m tests.wsflood URL COOKIE`), so that its sending takes neither the server's
event loop nor the measuring clients'. It prints `flooding` as it opens its sockets, floods for `--seconds` from
then, and prints one JSON line: its `Figures`.

    .venv/bin/python -m tests.wsflood ws://127.0.0.1:8080/ws taphuan_login=TOKEN --connections 20 --seconds 4
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import sys
import time
from dataclasses import asdict, dataclass, field

import aiohttp
from yarl import URL

TEXT = '{"type": "nope"}'
BINARY = b"\x00" * 16


@dataclass
class Figures:
    """Figures: what one flood sent and what the server answered."""

    connections: int = 0  # sockets asked for
    attempts: int = 0  # upgrades tried, first ones and reconnections
    opened: int = 0  # upgrades the server accepted (refusals included: they are told over the socket)
    sent_text: int = 0
    sent_binary: int = 0
    answered: int = 0  # error replies received
    codes: dict[str, int] = field(default_factory=dict)  # error replies by code
    closed: dict[str, int] = field(default_factory=dict)  # `closed` messages by reason
    close_codes: dict[str, int] = field(default_factory=dict)  # how the server closed the sockets
    seconds: float = 0.0

    @property
    def sent(self) -> int:
        """Figures.sent: every message sent."""
        return self.sent_text + self.sent_binary

    def line(self) -> str:
        """Figures.line: the figures as one JSON line (the `sent` total and the unanswered included)."""
        return json.dumps({**asdict(self), "sent": self.sent, "unanswered": self.sent - self.answered})


class Flood:
    """Flood: the sockets of one flood and their counts."""

    def __init__(self, url: str, cookie: str, connections: int, reconnect_delay: float) -> None:
        self.url, self.cookie, self.reconnect_delay = url, cookie, reconnect_delay
        http_url = URL(url).with_scheme("https" if url.startswith("wss:") else "http")
        self.origin = f"{http_url.scheme}://{http_url.raw_authority}"
        self.figures = Figures(connections=connections)
        self.codes: collections.Counter[str] = collections.Counter()
        self.closed: collections.Counter[str] = collections.Counter()
        self.close_codes: collections.Counter[str] = collections.Counter()
        self.deadline = float("inf")

    async def run(self, seconds: float) -> Figures:
        """Flood.run: open the sockets, say `flooding`, flood for `seconds`, return the figures."""
        name, _, value = self.cookie.partition("=")
        async with aiohttp.ClientSession(cookies={name: value}) as http:
            print("flooding", flush=True)
            start = time.monotonic()
            self.deadline = start + seconds
            await asyncio.gather(*(self.worker(http) for _ in range(self.figures.connections)))
            self.figures.seconds = round(time.monotonic() - start, 3)
        self.figures.codes, self.figures.closed = dict(self.codes), dict(self.closed)
        self.figures.close_codes = dict(self.close_codes)
        return self.figures

    async def worker(self, http: aiohttp.ClientSession) -> None:
        """Flood.worker: one socket, opened again (after `reconnect_delay`) whenever it closes, until the end."""
        while time.monotonic() < self.deadline:
            self.figures.attempts += 1
            try:
                # a script sets any Origin it likes: the flood comes with the one the cookie's server expects
                ws = await http.ws_connect(self.url, autoclose=True, max_msg_size=0, headers={"Origin": self.origin})
            except (aiohttp.ClientError, OSError):
                ws = None
            if ws is not None:
                self.figures.opened += 1
                reader = asyncio.create_task(self.read(ws))
                await self.send(ws)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(), 2)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(reader, 2)
                self.close_codes[str(ws.close_code)] += 1
            await asyncio.sleep(self.reconnect_delay)

    async def send(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Flood.send: text and binary frames in turn until the socket closes or the flood ends."""
        n = 0
        while not ws.closed and time.monotonic() < self.deadline:
            try:
                if n % 2:
                    await ws.send_bytes(BINARY)
                    self.figures.sent_binary += 1
                else:
                    await ws.send_str(TEXT)
                    self.figures.sent_text += 1
            except (ConnectionError, RuntimeError, aiohttp.ClientError):
                return
            n += 1
            if n % 64 == 0:
                await asyncio.sleep(0)  # let this process read the replies too

    async def read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Flood.read: count the server's replies."""
        async for msg in ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            if data.get("type") == "error":
                self.figures.answered += 1
                self.codes[str(data["error"]["code"])] += 1
            elif data.get("type") == "closed":
                self.closed[str(data["reason"])] += 1


def main(argv: list[str] | None = None) -> int:
    """main: flood a server as the module's docstring says."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="ws://host:port/ws")
    parser.add_argument("cookie", help="the login cookie, NAME=VALUE")
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--reconnect-delay", type=float, default=0.2)
    args = parser.parse_args(argv)
    flood = Flood(args.url, args.cookie, args.connections, args.reconnect_delay)
    figures = asyncio.run(flood.run(args.seconds))
    print(figures.line(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
