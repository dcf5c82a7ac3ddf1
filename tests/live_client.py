"""live_client: a scripted participant for tests: a WebSocket speaking docs/protocol.md and aiortc peers.

Used by the signalling, recorder and attendance tests: join a meeting through `/ws` with a login cookie (and the
`Origin` a browser showing the server's page sends, which the server requires with a cookie) or with a bearer
token (`bearer=`, no Origin), publish synthetic camera/microphone tracks, answer the server's down offers and
decode what arrives.

Every message sent and received is checked against docs/protocol.schema.json (tests/protocol_schema.py): a
message sent against the contract raises at once (unless sent with `check=False`, on purpose); one received
is noted in `violations`, which makes the next `wait` raise and the `clients` fixture fail the test.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiortc import AudioStreamTrack, MediaStreamTrack, RTCConfiguration, RTCSessionDescription, VideoStreamTrack
from aiortc.rtcconfiguration import RTCBundlePolicy
from yarl import URL

from sfu.hooks.connection import SfuPeerConnection
from tests import protocol_schema

LOOPBACK = ["127.0.0.1"]


def page_origin(url: str) -> str:
    """page_origin: the Origin a browser sends when a page of the server at `url` opens a WebSocket."""
    u = URL(url)
    scheme = {"ws": "http", "wss": "https"}.get(u.scheme, u.scheme)
    return f"{scheme}://{u.host}:{u.port}"


def client_pc() -> SfuPeerConnection:
    """client_pc: a plain aiortc peer (no forwarding) gathering on 127.0.0.1, no STUN."""
    return SfuPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE),
                             ice_addresses=LOOPBACK)


@dataclass
class LiveClient:
    """LiveClient: one participant driven by a test."""

    session: aiohttp.ClientSession
    url: str
    bearer: str = ""  # a token from POST /api/v1/tokens: sent instead of the cookie's Origin
    origin: str = ""  # the Origin of the page opening the socket (default: the server's own, from `url`)
    ws: aiohttp.ClientWebSocketResponse | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    participant_id: str = ""
    resume_token: str = ""
    up: SfuPeerConnection | None = None
    down: SfuPeerConnection | None = None
    slots: dict[str, str] = field(default_factory=dict)
    frames: dict[str, list[Any]] = field(default_factory=dict)  # mid -> decoded frames
    decode: bool = True
    auto_answer: bool = True
    violations: list[str] = field(default_factory=list)  # received messages the schema does not allow
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _reader: asyncio.Task[None] | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def connect(self) -> LiveClient:
        """LiveClient.connect: open the WebSocket (as a page of the server would, or with the bearer token) and
        start reading."""
        origin = self.origin or page_origin(self.url)
        headers = {"Authorization": f"Bearer {self.bearer}"} if self.bearer else {"Origin": origin}
        self.ws = await self.session.ws_connect(self.url, headers=headers)
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.ws is not None
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            problem = protocol_schema.check_text("server", msg.data)
            if problem is not None:
                self.violations.append(problem)
            data = json.loads(msg.data)
            self.messages.append(data)
            self.arrived.set()
            if data.get("type") == "offer" and self.auto_answer:
                self._tasks.append(asyncio.create_task(self._answer_offer(data)))

    async def send(self, message: dict[str, Any], check: bool = True) -> None:
        """LiveClient.send: write a message; unless `check` is false, it must be one the schema allows."""
        assert self.ws is not None
        if check:
            protocol_schema.check("client", message)
        await self.ws.send_str(json.dumps(message))

    async def wait(self, match: Callable[[dict[str, Any]], bool], within: float = 15.0,
                   start: int = 0) -> dict[str, Any]:
        """LiveClient.wait: the first message (from index `start`) matching `match`."""
        deadline = time.monotonic() + within
        seen = start
        while True:
            if self.violations:
                raise protocol_schema.ProtocolViolation("\n".join(self.violations))
            for m in self.messages[seen:]:
                if match(m):
                    return m
            seen = max(seen, len(self.messages))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no matching message; last: {self.messages[-5:]}")
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), remaining)
            except TimeoutError:
                pass

    async def request(self, type_: str, within: float = 20.0, check: bool = True, **fields: Any) -> dict[str, Any]:
        """LiveClient.request: send a request with an id and return its reply (or error message).

        `check=False` sends a request that breaks the schema on purpose (to test how the server refuses it).
        """
        rid = next(self._ids)
        start = len(self.messages)
        await self.send({"type": type_, "id": rid, **fields}, check=check)
        return await self.wait(lambda m: m.get("id") == rid, within, start)

    async def join(self, meeting_id: int, **extra: Any) -> dict[str, Any]:
        """LiveClient.join: join a meeting; raises on error."""
        reply = await self.request("join", version=1, meeting_id=meeting_id, **extra)
        if reply["type"] != "joined":
            raise AssertionError(f"join failed: {reply}")
        self.participant_id = reply["participant_id"]
        self.resume_token = reply["resume_token"]
        return reply

    async def _answer_offer(self, offer: dict[str, Any]) -> None:
        if self.down is not None:
            await self.down.close()
        self.slots = dict(offer["slots"])
        pc = self.down = client_pc()

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            mid = next(t.mid for t in pc.getTransceivers() if t.receiver.track is track)
            frames = self.frames.setdefault(str(mid), [])

            async def pump() -> None:
                try:
                    while True:
                        frames.append(await track.recv())
                except Exception:
                    return

            if self.decode:
                self._tasks.append(asyncio.ensure_future(pump()))

        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        reply = await self.request("answer", sdp=pc.localDescription.sdp)
        assert reply["type"] == "ok", reply

    async def publish(self, video: VideoStreamTrack | None = None, audio: bool = True) -> dict[str, Any]:
        """LiveClient.publish: publish camera (default synthetic) and microphone through a new up peer."""
        pc = self.up = client_pc()
        pc.addTrack(video or VideoStreamTrack())
        if audio:
            pc.addTrack(AudioStreamTrack())
        await pc.setLocalDescription(await pc.createOffer())
        sources = {}
        for t in pc.getTransceivers():
            sources[str(t.mid)] = "camera" if t.kind == "video" else "mic"
        reply = await self.request("publish", sdp=pc.localDescription.sdp, sources=sources)
        if reply["type"] != "answer":
            return reply
        await pc.setRemoteDescription(RTCSessionDescription(sdp=reply["sdp"], type="answer"))
        return reply

    def slot_frames(self, slot: str) -> list[Any]:
        """LiveClient.slot_frames: frames decoded from one slot of the down connection."""
        return self.frames.setdefault(self.slots.get(slot, "?"), [])

    async def wait_frames(self, slot: str, count: int, within: float = 20.0) -> None:
        """LiveClient.wait_frames: wait until `count` more frames were decoded in `slot`."""
        start = len(self.slot_frames(slot))
        deadline = time.monotonic() + within
        while len(self.slot_frames(slot)) < start + count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{slot}: {len(self.slot_frames(slot)) - start} of {count} frames")
            await asyncio.sleep(0.1)

    async def close(self) -> None:
        """LiveClient.close: close the socket and both peers."""
        for task in self._tasks:
            task.cancel()
        if self.ws is not None and not self.ws.closed:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
        for pc in (self.up, self.down):
            if pc is not None:
                await pc.close()
