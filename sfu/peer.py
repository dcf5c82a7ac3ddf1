"""peer: a Peer wraps one RTCPeerConnection of a participant, either ``up`` (it publishes) or ``down``.

Up: the client offers, we validate the SDP (size, syntax, the room's codecs) and answer recvonly.
Down: we offer one sendonly transceiver per slot and apply the client's answer.
Only the room's mailbox task calls a Peer's coroutines.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from aiortc import RTCConfiguration, RTCSessionDescription
from aiortc.rtcconfiguration import RTCBundlePolicy
from aiortc.sdp import SessionDescription, candidate_from_sdp

from sfu.codec import AUDIO_MIME, preferences
from sfu.config import SfuConfig
from sfu.errors import SfuError
from sfu.hooks.connection import SfuPeerConnection
from sfu.hooks.receiver import ForwardingReceiver
from sfu.hooks.sender import ForwardingSender
from sfu.hooks.simulcast import (
    SimulcastOffer,
    accept_simulcast,
    answer_simulcast,
    install_rid_routing,
    offered_simulcast,
)
from sfu.hooks.wire import PacketWire
from sfu.rtp import SendContext
from sfu.tasks import Ticker

logger = logging.getLogger(__name__)

DEFAULT_SOURCE = {"video": "camera", "audio": "mic"}


@dataclass(frozen=True)
class PublishedTrack:
    """PublishedTrack is one receiving transceiver of an up Peer and what the client says it carries.

    `layers` are the receivers of its simulcast layers, lowest first (``receiver.layers``), or ``(receiver,)``.
    """

    mid: str
    kind: str
    source: str
    receiver: ForwardingReceiver
    layers: tuple[ForwardingReceiver, ...]


def announce(sdp: str, address: str | None) -> str:
    """announce rewrites the address of our host candidates to `address` (public IP behind a 1:1 NAT)."""
    if not address:
        return sdp
    out = []
    for line in sdp.split("\r\n"):
        if line.startswith("a=candidate:"):
            parts = line.split(" ")
            if len(parts) > 7 and parts[7] == "host":
                parts[4] = address
                line = " ".join(parts)
        out.append(line)
    return "\r\n".join(out)


class Peer:
    """Peer is one RTCPeerConnection (``down`` False: up, publishing; True: down, receiving) + negotiation.

    `on_lost(peer, state)` is called once when the connection fails or closes without our asking. `ticker`
    (the room's) runs the sender reports of its transports, polled by the room's inbound media.
    """

    def __init__(
        self,
        participant_id: str,
        down: bool,
        config: SfuConfig,
        video_mime: str,
        on_lost: Callable[[Peer, str], None],
        ticker: Ticker | None = None,
    ) -> None:
        self.participant_id = participant_id
        self.down = down
        self.config = config
        self.video_mime = video_mime
        self.pc = SfuPeerConnection(
            RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE),
            ice_addresses=config.ice_addresses,
            forwarding=True,
            udp_ports=config.udp_ports,
            ticker=ticker,
            compiled=config.compiled_fanout and config.fast_path,
            consent_interval=config.consent_interval,
            publish_bitrate=config.publish_bitrate,
        )
        self.ticker = ticker
        self._on_lost = on_lost
        self._closing = False
        self._lost = False
        self._wires: dict[int, PacketWire] = {}
        self.pc.on("connectionstatechange", self._state_changed)

    @property
    def state(self) -> str:
        """state is aiortc's connectionState (new, connecting, connected, failed, closed)."""
        return str(self.pc.connectionState)

    def _state_changed(self) -> None:
        state = self.pc.connectionState
        if state in ("failed", "closed") and not self._closing and not self._lost:
            self._lost = True
            self._on_lost(self, state)

    def wire_for(self, ctx: SendContext) -> PacketWire:
        """wire_for returns the (shared) PacketWire of the DTLS transport a slot's sender uses."""
        key = id(ctx.transport)
        wire = self._wires.get(key)
        if wire is None:
            wire = self._wires[key] = PacketWire(ctx.transport, fast=self.config.fast_path, ticker=self.ticker)
        return wire

    # ---------------------------------------------------------------------------------------- up

    def validate_offer(self, offer_sdp: str) -> SessionDescription:
        """validate_offer checks size, syntax and codecs of an up offer; raises SfuError."""
        if len(offer_sdp.encode()) > self.config.max_sdp_bytes:
            raise SfuError("sdp-too-large", f"SDP larger than {self.config.max_sdp_bytes} bytes")
        try:
            parsed = SessionDescription.parse(offer_sdp)
        except Exception as exc:
            raise SfuError("sdp-invalid", f"unparseable SDP: {exc}") from exc
        media = [m for m in parsed.media if m.kind in ("audio", "video")]
        if not media:
            raise SfuError("sdp-invalid", "no audio or video section")
        for m in media:
            if m.direction not in ("sendonly", "sendrecv") or m.port == 0:
                continue
            want = self.video_mime if m.kind == "video" else AUDIO_MIME
            if not any(c.mimeType.lower() == want for c in m.rtp.codecs):
                raise SfuError("codec", f"{m.kind} section {m.rtp.muxId} offers no {want} (room codec)")
        return parsed

    async def answer(self, offer_sdp: str, sources: Mapping[str, str], relay: bool = False
                     ) -> tuple[str, list[PublishedTrack]]:
        """answer applies an up offer and returns (answer SDP, the newly published tracks).

        A video section offering simulcast (``a=simulcast:send`` with rids, Chromium's ``sendEncodings``) is
        answered ``a=simulcast:recv`` with the rid header extensions, and its receiver gets one layer
        receiver per rid (``sfu.hooks.simulcast``).
        """
        if self.down:
            raise SfuError("state", "answer() is for up Peers")
        parsed = self.validate_offer(offer_sdp)
        known = {t.mid for t in self.pc.getTransceivers() if t.mid is not None}
        for m in parsed.media:
            if m.kind in ("audio", "video") and m.rtp.muxId not in known:
                # a cascade link's (`relay`): a section the offerer receives is one we send on (docs/sfu.md)
                send = relay and m.direction == "recvonly"
                t = self.pc.addTransceiver(m.kind, direction="sendonly" if send else "recvonly")
                mime = self.video_mime if m.kind == "video" else AUDIO_MIME
                t.setCodecPreferences(preferences(m.kind, mime))
        simulcast = offered_simulcast(offer_sdp)
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            accepted: dict[str, SimulcastOffer] = {}
            for t in self.pc.getTransceivers():
                offer = simulcast.get(t.mid) if t.kind == "video" and t.mid is not None else None
                if offer is not None:
                    accept_simulcast(t, offer)
                    install_rid_routing(t.receiver.transport)
                    accepted[offer.mid] = offer
            await self.pc.setLocalDescription(await self.pc.createAnswer())
        except SfuError:
            raise
        except Exception as exc:
            code = "codec" if "description send parameters" in str(exc) else "sdp-invalid"
            raise SfuError(code, f"offer rejected: {exc}") from exc
        tracks = []
        offered = {m.rtp.muxId: m for m in parsed.media}
        for t in self.pc.getTransceivers():
            if t.mid is None or t.mid in known:
                continue
            section = offered.get(t.mid)
            if section is None or section.direction not in ("sendonly", "sendrecv") or section.port == 0:
                continue
            receiver = t.receiver
            assert isinstance(receiver, ForwardingReceiver)
            source = sources.get(t.mid, DEFAULT_SOURCE[t.kind])
            tracks.append(PublishedTrack(mid=t.mid, kind=t.kind, source=source, receiver=receiver,
                                         layers=receiver.layers or (receiver,)))
        sdp = answer_simulcast(self.pc.localDescription.sdp, accepted) if accepted else self.pc.localDescription.sdp
        return announce(sdp, self.config.announce_address), tracks

    def sending(self) -> dict[str, tuple[str, ForwardingSender]]:
        """sending: mid -> (kind, sender) of the sections this up Peer sends on (a cascade link's, see `answer`)."""
        out = {}
        for t in self.pc.getTransceivers():
            if t.mid is not None and t.direction == "sendonly" and isinstance(t.sender, ForwardingSender):
                out[str(t.mid)] = (t.kind, t.sender)
        return out

    # -------------------------------------------------------------------------------------- down

    def add_receive(self, kind: str) -> None:
        """add_receive adds a recvonly transceiver (the room's codec only) to a down offer: a cascade link's way up."""
        t = self.pc.addTransceiver(kind, direction="recvonly")
        t.setCodecPreferences(preferences(kind, self.video_mime if kind == "video" else AUDIO_MIME))

    def receiving(self) -> list[PublishedTrack]:
        """receiving: the recvonly sections of a down Peer (`add_receive`), once negotiated."""
        out = []
        for t in self.pc.getTransceivers():
            if t.mid is not None and t.direction == "recvonly" and isinstance(t.receiver, ForwardingReceiver):
                out.append(PublishedTrack(mid=str(t.mid), kind=t.kind, source="", receiver=t.receiver,
                                          layers=(t.receiver,)))
        return out


    def add_slot(self, kind: str) -> ForwardingSender:
        """add_slot adds a sendonly transceiver (the room's codec only) and returns its sender."""
        t = self.pc.addTransceiver(kind, direction="sendonly")
        t.setCodecPreferences(preferences(kind, self.video_mime if kind == "video" else AUDIO_MIME))
        sender = t.sender
        assert isinstance(sender, ForwardingSender)
        return sender

    async def offer(self) -> str:
        """offer creates and sets the down offer (candidates included, nothing trickled)."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return announce(self.pc.localDescription.sdp, self.config.announce_address)

    def mid_of(self, sender: ForwardingSender) -> str:
        """mid_of is the negotiated mid of the transceiver owning `sender`."""
        for t in self.pc.getTransceivers():
            if t.sender is sender and t.mid is not None:
                return str(t.mid)
        raise SfuError("state", "sender has no mid yet")

    async def apply_answer(self, answer_sdp: str) -> None:
        """apply_answer applies the client's answer to our down offer."""
        if not self.down:
            raise SfuError("state", "apply_answer() is for down Peers")
        if len(answer_sdp.encode()) > self.config.max_sdp_bytes:
            raise SfuError("sdp-too-large", f"SDP larger than {self.config.max_sdp_bytes} bytes")
        if self.pc.signalingState != "have-local-offer":
            raise SfuError("state", f"no pending offer (signalling state {self.pc.signalingState})")
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))
        except Exception as exc:
            raise SfuError("sdp-invalid", f"answer rejected: {exc}") from exc

    # ---------------------------------------------------------------------------------------- ICE

    async def add_candidate(
        self, candidate: str, sdp_mid: str | None = None, sdp_mline_index: int | None = None
    ) -> None:
        """add_candidate adds one trickled remote candidate ("" or "end" = end of candidates)."""
        if self.pc.remoteDescription is None:
            raise SfuError("state", "candidate before description")
        if candidate in ("", "end"):
            await self.pc.addIceCandidate(None)
            return
        text = candidate[len("candidate:"):] if candidate.startswith("candidate:") else candidate
        try:
            parsed = candidate_from_sdp(text)
        except Exception as exc:
            raise SfuError("sdp-invalid", f"bad candidate: {exc}") from exc
        parsed.sdpMid = sdp_mid
        if sdp_mline_index is None and sdp_mid is None:
            sdp_mline_index = 0
        parsed.sdpMLineIndex = sdp_mline_index
        await self.pc.addIceCandidate(parsed)

    async def close(self) -> None:
        """close closes the connection (no on_lost callback for a close we asked for)."""
        self._closing = True
        for wire in self._wires.values():
            wire.close()
        await self.pc.close()
