"""helpers: loopback aiortc clients for the SFU tests (publishers with solid-colour video, subscribers)."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiortc import (
    AudioStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCSessionDescription,
    VideoStreamTrack,
)
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtcpPacket, RtcpRrPacket, RtpPacket, is_rtcp
from av import VideoFrame

from sfu.config import SfuConfig
from sfu.events import Event, ServerOffer
from sfu.hooks.connection import SfuPeerConnection
from sfu.hooks.ice import ice_connection
from sfu.hooks.receiver import ForwardingReceiver
from sfu.hooks.simulcast import URI_MID, URI_REPAIRED_RID, URI_RID
from sfu.participant import Capabilities
from sfu.room import Room
from sfu.rtp import URI_ABS_SEND_TIME

LOOPBACK = ["127.0.0.1"]
RID_ID, REPAIRED_ID = 10, 11  # the rid header extension ids of simulcast_offer
KEYFRAME, DELTA = b"\x10\x00\x9d\x01\x2a" + bytes(40), b"\x10\x01" + bytes(40)  # VP8 descriptor + payload header

# The capabilities of the participants these tests name by the application's roles (the server's own table is
# server/live/capabilities.py; the recorder only receives).
_STAFF = Capabilities(publish=True, moderate=True, view_grid=True, enter_locked=True)
CAPABILITIES: dict[str, Capabilities] = {
    "operator": _STAFF,
    "trainer": dataclasses.replace(_STAFF, present=True),
    "leader": dataclasses.replace(_STAFF, present=True),
    "classroom": Capabilities(publish=True, in_grid=True),
    "learner": Capabilities(publish=True, in_grid=True),
    "guest": Capabilities(),
    "recorder": Capabilities(),
}


def sfu_config(**kw: Any) -> SfuConfig:
    """sfu_config: loopback ICE, short timers."""
    base: dict[str, Any] = dict(ice_addresses=LOOPBACK, room_grace_seconds=1.0, resume_seconds=5.0)
    base.update(kw)
    return SfuConfig(**base)


def client_pc() -> SfuPeerConnection:
    """client_pc is a plain aiortc peer (no forwarding) that gathers on 127.0.0.1.

    max-bundle: with aiortc's default "balanced" policy, an answerer given two audio m-lines after a video
    one leaves the second audio receiver on a discarded transport (see docs/sfu.md), so its packets are
    routed by payload type to the first audio receiver.
    """
    return SfuPeerConnection(
        RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE), ice_addresses=LOOPBACK
    )


class ColorTrack(VideoStreamTrack):
    """ColorTrack is a 30 fps solid-colour video track (YUV420p planes filled with `yuv`)."""

    def __init__(self, yuv: tuple[int, int, int], size: tuple[int, int] = (160, 120)) -> None:
        super().__init__()
        self.yuv = yuv
        self.size = size

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        w, h = self.size
        y, u, v = self.yuv
        frame = VideoFrame(width=w, height=h, format="yuv420p")
        for plane, value in zip(frame.planes, (y, u, v), strict=True):
            plane.update(bytes([value]) * plane.buffer_size)
        frame.pts = pts
        frame.time_base = time_base
        return frame


RED = (76, 84, 255)
BLUE = (29, 255, 107)


def mean_yuv(frame: VideoFrame) -> tuple[int, int, int]:
    """mean_yuv is the mean of each plane of a decoded frame."""
    planes = [np.frombuffer(bytes(p), dtype=np.uint8) for p in frame.planes]
    return tuple(int(p.mean()) for p in planes)  # type: ignore[return-value]


@dataclass
class Client:
    """Client is one test participant: its events, its up and down client peers and the decoded frames."""

    pid: str
    events: list[Event] = field(default_factory=list)
    new_event: asyncio.Event = field(default_factory=asyncio.Event)
    up: SfuPeerConnection | None = None
    down: SfuPeerConnection | None = None
    frames: dict[str, list[Any]] = field(default_factory=dict)  # mid -> decoded frames
    slots: dict[str, str] = field(default_factory=dict)  # slot -> mid
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def on_event(self, event: Event) -> None:
        self.events.append(event)
        self.new_event.set()

    async def wait_event(self, match: Callable[[Event], bool], within: float = 10.0) -> Event:
        deadline = time.monotonic() + within
        seen = 0
        while True:
            for ev in self.events[seen:]:
                if match(ev):
                    return ev
            seen = len(self.events)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{self.pid}: no matching event in {self.events}")
            self.new_event.clear()
            try:
                await asyncio.wait_for(self.new_event.wait(), remaining)
            except TimeoutError:
                pass

    def slot_frames(self, slot: str) -> list[Any]:
        return self.frames.setdefault(self.slots[slot], [])

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        for pc in (self.up, self.down):
            if pc is not None:
                await pc.close()


async def join(room: Room, pid: str, role: str, decode: bool = True) -> Client:
    """join: participant joins, answers the ServerOffer, and (decode=True) decodes every slot's frames."""
    c = Client(pid)
    await room.join(pid, role, pid.upper(), CAPABILITIES[role], c.on_event)
    offer = await c.wait_event(lambda e: isinstance(e, ServerOffer))
    assert isinstance(offer, ServerOffer)
    await answer_offer(room, c, offer, decode)
    return c


async def answer_offer(room: Room, c: Client, offer: ServerOffer, decode: bool = True) -> None:
    """answer_offer answers a ServerOffer with a fresh client peer."""
    c.slots = dict(offer.slots)
    pc = c.down = client_pc()

    @pc.on("track")
    def on_track(track: Any) -> None:
        mid = next(t.mid for t in pc.getTransceivers() if t.receiver.track is track)
        frames = c.frames.setdefault(mid, [])

        async def pump() -> None:
            try:
                while True:
                    frames.append(await track.recv())
            except Exception:
                return

        if decode:
            c.tasks.append(asyncio.ensure_future(pump()))

    await pc.setRemoteDescription(RTCSessionDescription(sdp=offer.sdp, type="offer"))
    await pc.setLocalDescription(await pc.createAnswer())
    await room.answer_down(c.pid, pc.localDescription.sdp)


async def publish(room: Room, c: Client, video: Any = None, audio: bool = True, screen: Any = None) -> None:
    """publish sends camera (+ mic, + screen) from a new up peer."""
    pc = c.up = client_pc()
    sources: dict[str, str] = {}
    order: list[str] = []
    if video is not None:
        pc.addTransceiver(video, direction="sendonly")
        order.append("camera")
    if audio:
        pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
        order.append("mic")
    if screen is not None:
        pc.addTransceiver(screen, direction="sendonly")
        order.append("screen")
    await pc.setLocalDescription(await pc.createOffer())
    for t, source in zip(pc.getTransceivers(), order, strict=True):
        sources[str(t.mid)] = source
    answer = await room.publish(c.pid, pc.localDescription.sdp, sources)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))


async def wait_until(cond: Callable[[], bool], within: float = 10.0, step: float = 0.05) -> None:
    """wait_until polls `cond` until true or raises TimeoutError."""
    deadline = time.monotonic() + within
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(step)


def drop_every(pc: Any, ssrc: int, n: int) -> Callable[[], None]:
    """drop_every: drop one RTP packet of `ssrc` in `n` on `pc`'s side of the wire (its first transceiver's DTLS
    transport), before SRTP, until the function returned is called."""
    dtls: Any = pc.getTransceivers()[0].sender.transport
    original = dtls._send_rtp
    count = [0]

    async def lossy(data: bytes) -> None:
        if not is_rtcp(data) and RtpPacket.parse(data).ssrc == ssrc:
            count[0] += 1
            if count[0] % n == 0:
                return
        await original(data)

    dtls._send_rtp = lossy

    def stop() -> None:
        dtls._send_rtp = original

    return stop


def decoder_threads() -> list[threading.Thread]:
    """decoder_threads lists live threads started by aiortc's decoder_worker (named '<kind>-decoder')."""
    return [t for t in threading.enumerate() if t.name.endswith("-decoder") and t.is_alive()]


def forwarding_pc() -> SfuPeerConnection:
    """forwarding_pc is a loopback client peer whose receivers are decoder-less ForwardingReceivers (on_rtp)."""
    return SfuPeerConnection(
        RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE), ice_addresses=LOOPBACK,
        forwarding=True,
    )


def raise_receive_buffer(pc: SfuPeerConnection, size: int = 8 << 20) -> int:
    """raise_receive_buffer sets SO_RCVBUF of every ICE socket of `pc` (gathered: after setLocalDescription).

    Loopback delivers a burst at once: the default buffer (212 KB) drops what a busy event loop does not read
    in time. The kernel caps the size at net.core.rmem_max (and doubles it); returns the smallest size set.
    """
    import os
    import socket

    from sfu.hooks.ice import ice_connection

    sizes = []
    for conn in {id(c): c for c in (ice_connection(t.receiver.transport) for t in pc.getTransceivers())}.values():
        for protocol in conn._protocols:
            fd = protocol.transport.get_extra_info("socket").fileno()
            with socket.socket(fileno=os.dup(fd)) as sock:  # the same kernel socket (uvloop gives no object)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
                sizes.append(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2)
    return min(sizes, default=0)


class SeqLog:
    """SeqLog collects the sequence numbers a receiver hands over, unwrapped (signed distance to the newest),
    and when each came (time.monotonic)."""

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.packets = 0
        self.arrivals: list[float] = []
        self._top: int | None = None

    def add(self, packet: RtpPacket) -> None:
        self.packets += 1
        self.arrivals.append(time.monotonic())
        seq = packet.sequence_number
        if self._top is None:
            self._top = seq
        delta = ((seq - self._top + 0x8000) & 0xFFFF) - 0x8000
        self.seen.add(self._top + delta)
        if delta > 0:
            self._top += delta

    def holes(self) -> list[tuple[int, int]]:
        """holes lists the (first, last) unwrapped numbers missing between the first and the last received."""
        ordered = sorted(self.seen)
        return [(a + 1, b - 1) for a, b in zip(ordered, ordered[1:], strict=False) if b - a > 1]


async def subscribe(room: Room, pid: str, rcvbuf: int = 8 << 20) -> tuple[Client, dict[str, ForwardingReceiver]]:
    """subscribe joins a classroom whose down peer forwards (no decoder, receive buffer raised); its receivers
    by slot."""
    c = Client(pid)
    await room.join(pid, "classroom", pid.upper(), CAPABILITIES["classroom"], c.on_event)
    offer = await c.wait_event(lambda e: isinstance(e, ServerOffer))
    assert isinstance(offer, ServerOffer)
    pc = c.down = forwarding_pc()
    await pc.setRemoteDescription(RTCSessionDescription(sdp=offer.sdp, type="offer"))
    await pc.setLocalDescription(await pc.createAnswer())
    raise_receive_buffer(pc, rcvbuf)
    by_mid = {str(t.mid): t.receiver for t in pc.getTransceivers()}
    receivers = {slot: by_mid[mid] for slot, mid in offer.slots.items()}
    await room.answer_down(pid, pc.localDescription.sdp)
    return c, {slot: r for slot, r in receivers.items() if isinstance(r, ForwardingReceiver)}


def simulcast_offer(sdp: str, rids: tuple[str, ...]) -> str:
    """simulcast_offer turns an aiortc client's offer into a Chromium-like simulcast one: every video section
    sends `rids`, with the rid header extensions and no SSRC lines."""
    out = []
    for part in sdp.split("\r\nm=")[1:]:
        lines = [line for line in ("m=" + part).split("\r\n") if line and not line.startswith("a=ssrc")]
        if lines[0].startswith("m=video"):
            lines += [f"a=extmap:{RID_ID} {URI_RID}", f"a=extmap:{REPAIRED_ID} {URI_REPAIRED_RID}"]
            lines += [f"a=rid:{rid} send" for rid in rids] + ["a=simulcast:send " + ";".join(rids)]
        out.append("\r\n".join(lines))
    return "\r\n".join([sdp.split("\r\nm=")[0], *out]) + "\r\n"


class SimulcastPublisher:
    """SimulcastPublisher: an aiortc client sending crafted simulcast RTP (aiortc cannot send simulcast) over its
    real DTLS-SRTP transport, with the mid, rid and repaired-rid header extensions, and the RTCP it gets."""

    def __init__(self, client: SfuPeerConnection, vp8: int, rtx: int) -> None:
        self.client = client
        self.dtls: Any = client.getTransceivers()[0].sender.transport
        self.map = HeaderExtensionsMap()
        self.map.configure(RTCRtpParameters(headerExtensions=[
            RTCRtpHeaderExtensionParameters(id=1, uri=URI_MID),
            RTCRtpHeaderExtensionParameters(id=3, uri=URI_ABS_SEND_TIME),  # aiortc's ids, kept by the answer
            RTCRtpHeaderExtensionParameters(id=RID_ID, uri=URI_RID),
            RTCRtpHeaderExtensionParameters(id=REPAIRED_ID, uri=URI_REPAIRED_RID),
        ]))
        self.vp8, self.rtx = vp8, rtx  # the negotiated payload types
        self.peer: Any = None  # the server side, for the tests' convenience
        self._task: asyncio.Task[None] | None = None
        self.rtcp: list[Any] = []
        stock = self.dtls._handle_rtcp_data

        async def handle_rtcp_data(data: bytes) -> None:  # the client's router drops feedback on unknown SSRCs
            self.rtcp.extend(RtcpPacket.parse(data))
            await stock(data)

        self.dtls._handle_rtcp_data = handle_rtcp_data

    async def send(self, ssrc: int, seq: int, mid: str | None, rid: str | None = None, repaired: str | None = None,
                   payload: bytes = DELTA, pt: int | None = None) -> None:
        packet = RtpPacket(payload_type=self.vp8 if pt is None else pt, sequence_number=seq & 0xFFFF,
                           timestamp=seq * 3000, ssrc=ssrc, marker=1)
        packet.payload = payload
        packet.extensions.mid = mid
        packet.extensions.rtp_stream_id = rid
        packet.extensions.repaired_rtp_stream_id = repaired
        packet.extensions.abs_send_time = int((time.time() % 64) * (1 << 18)) & 0xFFFFFF  # 6.18 fixed point
        await self.dtls._send_rtp(packet.serialize(self.map))

    def feedback(self, kind: type, fmt: int) -> set[int]:
        """feedback: the media SSRCs of the NACKs (RtcpRtpfbPacket) or PLIs (RtcpPsfbPacket) received."""
        return {p.media_ssrc for p in self.rtcp if isinstance(p, kind) and p.fmt == fmt}

    def reported(self) -> set[int]:
        return {r.ssrc for p in self.rtcp if isinstance(p, RtcpRrPacket) for r in p.reports}


    def stream(self, mid: str, layers: dict[str, int], fps: float = 30.0) -> None:
        """stream sends the `layers` (rid -> SSRC; change the dict to stop or start one) in the background: a frame
        of one packet per layer every 1/`fps` s, a keyframe every 30, mid and rid on each SSRC's first 5."""

        async def run() -> None:
            seq = 0
            while True:
                seq += 1
                for rid, ssrc in list(layers.items()):
                    first = seq - seen.setdefault(ssrc, seq) < 5
                    await self.send(ssrc, seq, mid if first else None, rid if first else None,
                                    payload=KEYFRAME if seq % 30 == 1 else DELTA)
                await asyncio.sleep(1 / fps)

        seen: dict[int, int] = {}
        self._task = asyncio.ensure_future(run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self.client.close()


class _DeadTransport:
    """_DeadTransport: a datagram transport whose sends go nowhere (everything else is the real one's)."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def sendto(self, data: bytes, addr: Any = None) -> None:
        """sendto: dropped, as on a link that is down."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def cut(pc: SfuPeerConnection | None) -> Callable[[], None]:
    """cut: the network under one client peer goes dark: its ICE sockets neither send nor deliver anything, until
    the returned function is called (the link comes back)."""
    assert pc is not None
    conns = {id(c): c for c in (ice_connection(t.receiver.transport) for t in pc.getTransceivers())}
    protocols = [protocol for conn in conns.values() for protocol in conn._protocols]
    for protocol in protocols:
        protocol.transport = _DeadTransport(protocol.transport)
        protocol.datagram_received = lambda data, addr: None

    def back() -> None:
        for protocol in protocols:
            protocol.transport = protocol.transport.real
            del protocol.datagram_received

    return back
