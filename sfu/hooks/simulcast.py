"""simulcast: receiving a browser's simulcast (RFC 8853 ``a=simulcast``, RFC 8851 ``a=rid``), which aiortc lacks.

aiortc 1.16 parses the rid header extensions but drops ``a=rid`` / ``a=simulcast`` and every header extension it
does not know from its answer, and routes a packet of an unknown SSRC by payload type only. A browser that
offers simulcast (Chromium: ``sendEncodings`` with rids) sends its layers only if the answer accepts them, and
signals no SSRC for them. This module:

* ``offered_simulcast`` reads the offer's simulcast video sections (rids, and the ids of the mid, rid and
  repaired-rid header extensions) from the SDP text;
* ``accept_simulcast`` (between ``setRemoteDescription`` and ``createAnswer``) keeps the rid and repaired-rid
  extensions with the offer's ids in the transceiver's negotiated extensions (aiortc's
  ``RTCRtpTransceiver._headerExtensions``: its answer and its receive parameters, hence the transport's
  extension map, then carry them) and gives the receiver one layer receiver per rid
  (``ForwardingReceiver.add_layers``);
* ``answer_simulcast`` adds ``a=rid:<id> recv`` and ``a=simulcast:recv ...`` to the answer's sections;
* ``install_rid_routing`` replaces the transport router's ``route_rtp`` (instance attribute): a packet of a
  layer SSRC goes to its layer receiver; one of an unknown SSRC carrying mid and rid (or repaired rid, for RTX)
  goes to that m-line's receiver's ``route_layer``, which binds the SSRC to the layer. The synchronous receive
  path (``sync_receive``) hands such packets to this router (``RID_ROUTING`` on the transport says it may).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters
from aiortc.rtp import RtpPacket

from sfu.hooks.receiver import ForwardingReceiver

URI_MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
URI_RID = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
URI_REPAIRED_RID = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
RID_ROUTING = "_taphuan_rid_routing"  # attribute of a DTLS transport: True once install_rid_routing ran


@dataclass(frozen=True)
class SimulcastOffer:
    """SimulcastOffer is one offered simulcast video section: its mid, rids and rid header extension ids."""

    mid: str
    rids: tuple[str, ...]  # as ``a=simulcast:send`` lists them: the browser's sendEncodings order, lowest first
    rid_id: int  # extmap id of rtp-stream-id
    repaired_rid_id: int | None  # extmap id of repaired-rtp-stream-id (RTX), if offered


def _sections(sdp: str) -> list[list[str]]:
    """_sections splits an SDP into its session part and media sections (lists of lines, no line ends)."""
    out: list[list[str]] = [[]]
    for line in sdp.splitlines():
        if line.startswith("m="):
            out.append([])
        out[-1].append(line)
    return out


def offered_simulcast(offer_sdp: str) -> dict[str, SimulcastOffer]:
    """offered_simulcast: the offer's video sections that send simulcast, by mid.

    A section counts when it is video, has a mid, ``a=simulcast:send`` naming rids declared ``a=rid:<id> send``,
    and offers the mid and rtp-stream-id header extensions (without them its layers could not be told apart).
    In the simulcast list, alternatives (``a,b``) count by their first rid and a paused rid (``~a``) counts.
    """
    found: dict[str, SimulcastOffer] = {}
    for section in _sections(offer_sdp)[1:]:
        if not section[0].startswith("m=video "):
            continue
        mid = None
        declared: set[str] = set()
        listed: list[str] = []
        ext: dict[str, int] = {}
        for line in section:
            if line.startswith("a=mid:"):
                mid = line[6:].strip()
            elif line.startswith("a=rid:"):
                parts = line[6:].split()
                if len(parts) >= 2 and parts[1] == "send":
                    declared.add(parts[0])
            elif line.startswith("a=simulcast:"):
                parts = line[12:].split()
                for direction, streams in zip(parts[::2], parts[1::2], strict=False):
                    if direction == "send":
                        listed = [alt.split(",")[0].lstrip("~") for alt in streams.split(";")]
            elif line.startswith("a=extmap:"):
                parts = line[9:].split()
                if len(parts) >= 2 and parts[0].split("/")[0].isdigit():
                    ext[parts[1]] = int(parts[0].split("/")[0])
        rids = tuple(dict.fromkeys(r for r in listed if r in declared))
        if mid and rids and URI_MID in ext and URI_RID in ext:
            found[mid] = SimulcastOffer(mid, rids, ext[URI_RID], ext.get(URI_REPAIRED_RID))
    return found


def accept_simulcast(transceiver: Any, offer: SimulcastOffer) -> tuple[ForwardingReceiver, ...]:
    """accept_simulcast keeps the rid extensions in a transceiver's negotiation and gives it layer receivers.

    Call it after ``setRemoteDescription`` (which recomputes the transceiver's extensions from aiortc's list)
    and before ``createAnswer``, on every offer. Returns the receiver's layer receivers.
    """
    extensions: list[RTCRtpHeaderExtensionParameters] = transceiver._headerExtensions
    have = {e.uri for e in extensions}
    wanted = [(URI_RID, offer.rid_id)]
    if offer.repaired_rid_id is not None:
        wanted.append((URI_REPAIRED_RID, offer.repaired_rid_id))
    for uri, ext_id in wanted:
        if uri not in have:
            extensions.append(RTCRtpHeaderExtensionParameters(id=ext_id, uri=uri))
    receiver = transceiver.receiver
    assert isinstance(receiver, ForwardingReceiver)
    return receiver.add_layers(offer.rids)


def answer_simulcast(answer_sdp: str, accepted: Mapping[str, SimulcastOffer]) -> str:
    """answer_simulcast adds ``a=rid:<id> recv`` and ``a=simulcast:recv <rids>`` to the accepted sections."""
    sections = _sections(answer_sdp)
    for section in sections[1:]:
        mid = next((line[6:].strip() for line in section if line.startswith("a=mid:")), None)
        offer = accepted.get(mid) if mid is not None else None
        if offer is None:
            continue
        while section and not section[-1]:
            section.pop()
        section.extend(f"a=rid:{rid} recv" for rid in offer.rids)
        section.append("a=simulcast:recv " + ";".join(offer.rids))
    return "\r\n".join(line for section in sections for line in section) + "\r\n"


def install_rid_routing(dtls: RTCDtlsTransport) -> None:
    """install_rid_routing makes the transport's router send simulcast packets to their layer receivers (once).

    The RTP router of aiortc only knows SSRCs from the SDP and routes the others by payload type, which either
    picks the wrong receiver or none (every video section of a browser shares its payload types).
    """
    transport: Any = dtls
    if getattr(transport, RID_ROUTING, False):
        return
    router: Any = transport._rtp_router
    stock = router.route_rtp
    ssrc_table: dict[int, Any] = router.ssrc_table
    mid_table: dict[str, Any] = router.mid_table

    def route_rtp(packet: RtpPacket) -> Any:
        receiver = ssrc_table.get(packet.ssrc)
        if isinstance(receiver, ForwardingReceiver) and receiver.rid is not None:
            return receiver  # a layer's SSRC (layers are not in aiortc's payload type table)
        ext = packet.extensions
        if receiver is None and ext.mid is not None:
            section = mid_table.get(ext.mid)
            if isinstance(section, ForwardingReceiver) and section.layers:
                return section.route_layer(packet.ssrc, packet.payload_type, ext.rtp_stream_id,
                                           ext.repaired_rtp_stream_id)
        return stock(packet)

    router.route_rtp = route_rtp
    setattr(transport, RID_ROUTING, True)
