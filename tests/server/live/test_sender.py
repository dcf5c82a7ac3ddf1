"""Tests of server.live.sender: what is sent to a connection waits in its own bounded queue, so a participant that
stops reading its socket delays no one else, and is closed (`too-slow`) once it holds too much or too long."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import time
from typing import Any

import pytest

from server.auth import COOKIE
from server.config import Config
from server.db.models import Role, User
from server.live.service import LIVE
from server.metrics import METRICS
from tests.conftest import LoggedIn
from tests.live_client import LiveClient, page_origin
from tests.server.livetest import Factory, connect


@pytest.fixture
def config(make_config: Any, request: pytest.FixtureRequest) -> Config:
    """config: the test configuration with the limits a test names (indirect parametrization)."""
    return make_config(**getattr(request, "param", {}))


def _frame(text: str) -> bytes:
    """_frame: one masked WebSocket text frame, as a client sends it."""
    payload = text.encode()
    mask = os.urandom(4)
    n = len(payload)
    header = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big"))
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def _join_then_stop_reading(who: LoggedIn, meeting_id: int) -> socket.socket:
    """_join_then_stop_reading: a raw WebSocket with a tiny receive buffer that joins the meeting, reads up to its
    `joined` reply, and never reads again."""
    loop = asyncio.get_running_loop()
    url = who.client.make_url("/ws")
    cookie = who.client.session.cookie_jar.filter_cookies(who.client.make_url("/"))[COOKIE].value
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: the window it announces
    sock.setblocking(False)
    await loop.sock_connect(sock, (url.host, url.port))
    key = base64.b64encode(os.urandom(16)).decode()
    await loop.sock_sendall(sock, (
        f"GET /ws HTTP/1.1\r\nHost: {url.host}:{url.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: {page_origin(str(url))}\r\n"
        f"Cookie: {COOKIE}={cookie}\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += await asyncio.wait_for(loop.sock_recv(sock, 1), 10)
    assert head.startswith(b"HTTP/1.1 101"), head
    await loop.sock_sendall(sock, _frame(f'{{"type": "join", "id": 1, "version": 1, "meeting_id": {meeting_id}}}'))
    seen = b""
    while b'"joined"' not in seen:
        seen += await asyncio.wait_for(loop.sock_recv(sock, 65536), 10)
    return sock


async def _read_to_the_end(sock: socket.socket) -> None:
    """_read_to_the_end: read what the server left in the socket until it is closed (end of file or reset)."""
    loop = asyncio.get_running_loop()
    with contextlib.suppress(ConnectionError):
        while await loop.sock_recv(sock, 65536):
            pass


LARGE = {"limits.chat_message_chars": 100_000, "limits.ws_message_bytes": 262_144}  # to fill buffers quickly
SENTENCE = "Chào cả lớp, hôm nay chúng ta học về phân số. "  # 46 characters, 58 bytes of UTF-8


async def _chat_round(sender: LiveClient, receiver: LiveClient, text: str) -> float:
    """_chat_round: the seconds from sending a chat message to its `ok` reply and its arrival at `receiver`."""
    started = time.monotonic()
    start = len(receiver.messages)
    try:
        reply = await sender.request("chat", within=5, text=text)
        assert reply["type"] == "ok", reply.get("error")
        await receiver.wait(lambda m: m.get("type") == "chat" and m["message"]["id"] == reply["message_id"],
                            within=5, start=start)
    except TimeoutError:
        raise AssertionError(f"a chat message took over 5 s ({len(text)} characters)") from None
    return time.monotonic() - started


async def _read_slowly(sock: socket.socket, seconds: float) -> None:
    """_read_slowly: take 4 KiB from the socket four times a second (16 KiB/s) for `seconds`."""
    loop = asyncio.get_running_loop()
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        await loop.sock_recv(sock, 4096)
        await asyncio.sleep(0.25)


@pytest.mark.parametrize(("config", "reads_slowly_for"), [
    # it takes nothing for 2 s (after 3 s of reading slowly, which is no reason to close it)
    ({**LARGE, "limits.ws_send_timeout_seconds": 2.0}, 3.0),
    # more messages than the bound wait for it (the time-out is out of the way)
    ({**LARGE, "limits.ws_send_queue_messages": 16, "limits.ws_send_timeout_seconds": 600.0}, 0.0),
], indirect=["config"], ids=["send-timeout", "queue-bound"])
async def test_a_participant_that_stops_reading_delays_no_one_and_is_closed_too_slow(
        app: Any, login_as: Factory, make_user: Factory, make_meeting: Factory, clients: list[LiveClient],
        config: Config, reads_slowly_for: float) -> None:
    """A participant joins and then reads its socket slowly or not at all. A trainer and an operator chat on:
    every message reaches the other within 2 s, also for seconds while the silent one's buffers are full (the
    server's write buffer to it stays non-empty); once it takes nothing, it is closed `too-slow`, counted, and
    detached like a lost connection."""
    trainer_user: User = await make_user(Role.TRAINER)
    meeting = await make_meeting(presenters=[trainer_user])
    t = await connect(await login_as(user=trainer_user), clients)
    await t.join(meeting.id)
    o = await connect(await login_as(Role.OPERATOR), clients)
    await o.join(meeting.id)
    silent_login = await login_as(Role.OPERATOR)
    sock = await _join_then_stop_reading(silent_login, meeting.id)
    reader: asyncio.Task[None] | None = None
    try:
        live = app[LIVE]
        (silent,) = [c for c in live.connections if c.ident.user_id == silent_login.user.id]
        silent_pid = silent.participant_id
        transport = silent.request.transport
        assert transport is not None
        big = SENTENCE * 2000  # ~116 KB to each participant: the kernel's buffers (MiBs on loopback) fill in seconds
        took: list[float] = []
        stalled = 0  # rounds while the server could not hand the silent one's data to the kernel
        after = 0  # rounds after it was closed
        deadline = time.monotonic() + 20
        i = 0
        while time.monotonic() < deadline and after < 3:
            full = silent in live.connections and transport.get_write_buffer_size() > 0
            if full and reader is None and reads_slowly_for:
                reader = asyncio.create_task(_read_slowly(sock, reads_slowly_for))
            if reader is not None and reader.done():
                await reader
                assert silent in live.connections, "closed while it read"
                reader = None
                reads_slowly_for = 0.0
            sender, receiver = (t, o) if i % 2 == 0 else (o, t)
            took.append(await _chat_round(sender, receiver, f"{i} " + ("ngắn" if full else big)))
            assert took[-1] < 2.0, (i, took[-1], full)
            if full:
                stalled += 1
                await asyncio.sleep(0.1)
            if silent not in live.connections:
                after += 1
            i += 1
        print(f"{i} rounds, {stalled} while the silent one's buffers were full; slowest {max(took):.3f} s")
        assert silent not in live.connections, f"the silent participant was not closed ({i} rounds, {stalled} full)"
        assert reader is None and not reads_slowly_for, "closed while it read"
        assert stalled >= 10, stalled  # seconds of chat while its buffers were full
        registry = app[METRICS].registry
        assert registry.get_sample_value("taphuan_ws_policy_closes_total", {"reason": "too-slow"}) == 1
        # like a lost connection: its participant waits for a resume (others see it reconnecting), not removed
        await t.wait(lambda m: m.get("type") == "participant-state" and m["participant_id"] == silent_pid
                     and m["state"] == "reconnecting")
        assert not any(m.get("type") == "participant-left" and m["participant_id"] == silent_pid for m in t.messages)
        await asyncio.wait_for(_read_to_the_end(sock), 10)  # its socket is closed
    finally:
        if reader is not None:
            reader.cancel()
        sock.close()


async def test_messages_keep_their_order_and_wait_for_the_joined_reply(login_as: Factory, make_user: Factory,
                                                                       make_meeting: Factory,
                                                                       clients: list[LiveClient]) -> None:
    """A burst to one connection (chat from another, its own replies) arrives whole and in order."""
    trainer_user: User = await make_user(Role.TRAINER)
    meeting = await make_meeting(presenters=[trainer_user])
    t = await connect(await login_as(user=trainer_user), clients)
    await t.join(meeting.id)
    o = await connect(await login_as(Role.OPERATOR), clients)
    joined = await o.join(meeting.id)
    assert o.messages[0] is joined  # nothing about the room before its `joined` reply
    for n in range(30):
        await t.send({"type": "chat", "text": f"tin {n}"})
    await o.wait(lambda m: m.get("type") == "chat" and m["message"]["text"] == "tin 29")
    texts = [m["message"]["text"] for m in o.messages if m.get("type") == "chat"]
    assert texts == [f"tin {n}" for n in range(30)]
