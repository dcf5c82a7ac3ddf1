"""cluster_clients: the client side of bench/cluster.py: pages of meetings speaking the signalling protocol.

Each participant behaves as web/static/protocol.js does: it opens its home node's socket, joins, follows `moved` to
the owner, publishes pre-encoded VP8 and Opus (the presenter) or answers the down offers with decoder-less counting
peers (a classroom: bench/forward.py's `Counter`, the C receive path), and on a dropped socket joins afresh
through a living node. A client process runs whole meetings and answers the driver over a pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp  # noqa: E402
from aiortc import AudioStreamTrack, RTCSessionDescription  # noqa: E402

from bench.forward import Counter, PacketTrack, client_pc  # noqa: E402
from server.auth import COOKIE  # noqa: E402
from server.cli import loop_factory  # noqa: E402
from sfu.hooks.receiver import ForwardingReceiver  # noqa: E402

BACKOFF = 0.5  # s between reconnection attempts (web/static/protocol.js starts at 0.5 s)


@dataclass
class Cast:
    """Cast: one meeting and the login cookie of its presenter and classrooms."""

    meeting_id: int
    presenter: str
    classrooms: list[str] = field(default_factory=list)


class Participant:
    """Participant: one page of a meeting, as web/static/protocol.js behaves: join through its home node, follow
    `moved`, publish (the presenter) or answer the down offers with counting peers (a classroom), and on a
    dropped socket join again (afresh) through a living node."""

    def __init__(self, http: aiohttp.ClientSession, cookie: str, meeting_id: int, homes: list[str],
                 frames: list[tuple[bytes, bool]] | None) -> None:
        self.http, self.cookie, self.meeting_id = http, cookie, meeting_id
        self.homes = homes  # the node URLs in the order this participant tries them (its home first)
        self.frames = frames  # the presenter's pre-encoded video; None for a classroom
        self.counters: list[Counter] = []
        self.pcs: list[Any] = []
        self.sender: Any = None  # the presenter's up connection once its publish was answered
        self.up: Any = None
        self.joined_at: float = 0.0  # monotonic time of the last `joined`
        self.node = ""  # the URL of the node it is joined on
        self.joined = asyncio.Event()
        self.closing = False
        self.task: asyncio.Task[None] | None = None
        self._ids = 0

    @property
    def received(self) -> int:
        return sum(c.packets for c in self.counters)

    async def sent(self) -> int:
        """Participant.sent: the RTP packets the presenter's peer sent so far (its outbound-rtp stats)."""
        if self.sender is None:
            return 0
        total = 0
        for sender in self.sender.getSenders():
            with contextlib.suppress(Exception):
                for stats in (await sender.getStats()).values():
                    if getattr(stats, "type", "") == "outbound-rtp":
                        total += stats.packetsSent
        return total

    async def _close_peers(self) -> None:
        for pc in self.pcs:
            with contextlib.suppress(Exception):
                await pc.close()
        self.pcs.clear()
        self.counters.clear()
        self.sender = self.up = None

    async def run(self) -> None:
        """Participant.run: stay in the meeting until closed."""
        attempt = 0
        while not self.closing:
            home = self.homes[attempt % len(self.homes)]
            try:
                await self.session(home)
                attempt = 0
            except (aiohttp.ClientError, OSError, ConnectionError, TimeoutError):
                attempt += 1  # that node is gone: the next one (nginx's `backup`)
            except Exception as exc:  # refused: say why, and try again as the page would
                print(f"meeting {self.meeting_id}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
                attempt += 1
            self.joined.clear()
            await self._close_peers()
            if not self.closing:
                await asyncio.sleep(BACKOFF)

    async def session(self, home: str) -> None:
        """Participant.session: one socket's life: join (following `moved`), then serve it until it closes."""
        url, origin = home.replace("http", "ws", 1) + "/ws", home
        headers = {"Origin": origin, "Cookie": f"{COOKIE}={self.cookie}"}
        while True:
            ws = await self.http.ws_connect(url, headers=headers, heartbeat=None)
            self._ids += 1
            await ws.send_str(json.dumps({"type": "join", "id": self._ids, "version": 1,
                                          "meeting_id": self.meeting_id}))
            reply = await self._reply(ws, self._ids)
            if reply.get("type") == "error" and reply["error"]["code"] == "moved":
                url = reply["error"]["url"]
                await ws.close()
                continue
            if reply.get("type") != "joined":
                await ws.close()
                raise RuntimeError(f"join: {reply}")
            break
        self.node = url.split("//", 1)[1].split("/", 1)[0]
        self.joined_at = time.monotonic()
        self.joined.set()
        pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        tasks: list[asyncio.Task[Any]] = []

        async def request(message: dict[str, Any]) -> dict[str, Any]:
            self._ids += 1
            future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            pending[self._ids] = future
            await ws.send_str(json.dumps({**message, "id": self._ids}))
            return await asyncio.wait_for(future, 60)

        def spawn(coro: Any) -> None:
            task = asyncio.ensure_future(coro)
            task.add_done_callback(self._failed)
            tasks.append(task)

        if self.frames is not None:
            spawn(self._publish(request))
        try:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                if "id" in data and data["id"] in pending:
                    fut = pending.pop(data["id"])
                    if not fut.done():
                        fut.set_result(data)
                elif data.get("type") == "offer":
                    spawn(self._answer(request, data))
                if self.closing:
                    break
        finally:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(Exception):
                await ws.close()

    def _failed(self, task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            print(f"meeting {self.meeting_id}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)

    @staticmethod
    async def _reply(ws: aiohttp.ClientWebSocketResponse, rid: int) -> dict[str, Any]:
        async def read() -> dict[str, Any]:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    data = json.loads(msg.data)
                    if data.get("id") == rid:
                        return dict(data)
            raise ConnectionError("socket closed before the reply")

        return await asyncio.wait_for(read(), 60)

    async def _publish(self, request: Any) -> None:
        assert self.frames is not None
        pc = self.up = client_pc(forwarding=False)
        self.pcs.append(pc)
        pc.addTransceiver(PacketTrack(self.frames), direction="sendonly")
        pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        reply = await request({"type": "publish", "sdp": pc.localDescription.sdp,
                               "sources": {"0": "camera", "1": "mic"}})
        if reply.get("type") != "answer":
            raise RuntimeError(f"publish: {reply}")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=reply["sdp"], type="answer"))
        self.sender = pc

    async def _answer(self, request: Any, offer: dict[str, Any]) -> None:
        for old in [p for p in self.pcs if p is not self.up]:  # each offer is a new server connection
            with contextlib.suppress(Exception):
                await old.close()
            self.pcs.remove(old)
        pc = client_pc(forwarding=True)
        self.pcs.append(pc)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
        counters = []
        for t in pc.getTransceivers():
            assert isinstance(t.receiver, ForwardingReceiver)
            counter = Counter(t.kind)
            counters.append(counter)
            t.receiver.on_fields = counter.on_fields
        await pc.setLocalDescription(await pc.createAnswer())
        self.counters += counters  # (the earlier connections' counts stay counted)
        await request({"type": "answer", "sdp": pc.localDescription.sdp})

    async def close(self) -> None:
        self.closing = True
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task
        await self._close_peers()


@dataclass
class MeetingPeers:
    """MeetingPeers: one meeting's participants in a client process."""

    presenter: Participant
    classrooms: list[Participant]


async def client_main(conn: Connection) -> None:
    """client_main: one client process: answers the driver's commands (meeting, stats, rejoined, drop, close)."""
    loop = asyncio.get_running_loop()
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    meetings: dict[int, MeetingPeers] = {}
    frames: list[tuple[bytes, bool]] | None = None
    while True:
        cmd = await loop.run_in_executor(None, conn.recv)
        op = cmd[0]
        reply: Any = None
        if op == "frames":
            frames = cmd[1]
        elif op == "meeting":  # join a meeting: its presenter first (placing it), then its classrooms
            _, cast, homes = cmd
            presenter = Participant(http, cast.presenter, cast.meeting_id, homes, frames)
            presenter.task = asyncio.ensure_future(presenter.run())
            await asyncio.wait_for(presenter.joined.wait(), 120)
            rooms = [Participant(http, c, cast.meeting_id, homes, None) for c in cast.classrooms]
            meetings[cast.meeting_id] = MeetingPeers(presenter, rooms)
            for p in rooms:
                p.task = asyncio.ensure_future(p.run())
                await asyncio.sleep(0.05)  # a room's pages do not arrive in one instant
            await asyncio.wait_for(asyncio.gather(*(p.joined.wait() for p in rooms)), 180)
            deadline = time.monotonic() + 60  # every classroom receives the presenter
            while time.monotonic() < deadline and not all(p.received > 0 for p in rooms):  # noqa: ASYNC110
                await asyncio.sleep(0.2)  # (counted in C: nothing to wait on)
            reply = (presenter.node, sum(p.received > 0 for p in rooms))
        elif op == "stats":
            reply = {m: (await x.presenter.sent(), sum(p.received for p in x.classrooms), len(x.classrooms),
                         x.presenter.node) for m, x in meetings.items()}
        elif op == "rejoined":  # for the meetings on `node`: when all joined again and all received again
            _, node, since, within = cmd
            affected = [x for x in meetings.values() if x.presenter.node == node]
            joined: dict[int, float] = {}  # meeting → s from the kill until all its participants joined again
            back: dict[int, float] = {}  # ... and every classroom received the presenter again
            deadline = time.monotonic() + within
            while time.monotonic() < deadline:
                for x in affected:
                    people = [x.presenter, *x.classrooms]
                    if all(p.joined.is_set() and p.joined_at > since and p.node != node for p in people):
                        joined.setdefault(x.presenter.meeting_id, max(p.joined_at for p in people) - since)
                        # (a participant's counters are those of its connection since it joined again)
                        if all(p.received > 0 for p in x.classrooms):
                            back.setdefault(x.presenter.meeting_id, time.monotonic() - since)
                if len(back) == len(affected):
                    break
                await asyncio.sleep(0.1)
            reply = (len(affected), sorted(joined.values()), sorted(back.values()))
        elif op == "drop":
            for mid in cmd[1]:
                gone = meetings.pop(mid, None)
                if gone is not None:
                    await asyncio.gather(gone.presenter.close(), *(p.close() for p in gone.classrooms))
        elif op == "close":
            for x in meetings.values():
                await asyncio.gather(x.presenter.close(), *(p.close() for p in x.classrooms))
            await http.close()
            conn.send(None)
            return
        conn.send(reply)


def client_entry(conn: Connection, nice: int) -> None:
    """client_entry: a client process on uvloop, at `nice` (the bench runs as root: negative is allowed)."""
    if nice:
        os.nice(nice)
    with asyncio.Runner(loop_factory=loop_factory("uvloop")) as runner:
        runner.run(client_main(conn))


class ClientProc:
    """ClientProc: the driver's handle on one client process."""

    def __init__(self, ctx: Any, nice: int) -> None:
        self.conn, theirs = ctx.Pipe()
        self.process = ctx.Process(target=client_entry, args=(theirs, nice), daemon=True)
        self.process.start()
        self.lock = asyncio.Lock()
        self.meetings: list[int] = []

    async def call(self, *cmd: Any) -> Any:
        async with self.lock:
            self.conn.send(cmd)
            return await asyncio.get_running_loop().run_in_executor(None, self.conn.recv)
