"""connection: ``SfuPeerConnection``, the RTCPeerConnection that installs the other hooks.

It gathers ICE candidates on a configured address list, routes RTCP without aiortc's per-packet ``typing``
overhead (``install_fast_rtcp_routing``), and in forwarding mode swaps the stock sender and receiver of each
new transceiver for ``ForwardingSender`` / ``ForwardingReceiver`` (mangled ``__createTransceiver`` override),
delivers their media synchronously (``install_sync_rtp_receive``) and runs ICE consent on the room's Ticker
(``Consent``), and the receivers' reports and REMBs too (``ReceiverFeedback``, one per DTLS transport).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aioice.ice import CONSENT_INTERVAL
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.rtcdtlstransport import RTCDtlsTransport

from sfu.hooks.demux import install_fast_rtcp_routing
from sfu.hooks.feedback import FEEDBACK, ReceiverFeedback
from sfu.hooks.guard import CompiledEstimator
from sfu.hooks.ice import Consent, ice_connection, use_gathering_addresses
from sfu.hooks.receiver import ForwardingReceiver
from sfu.hooks.sender import ForwardingSender
from sfu.hooks.sync_receive import install_sync_rtp_receive
from sfu.tasks import Ticker
from sfu.uplink import Uplink


class SfuPeerConnection(RTCPeerConnection):
    """SfuPeerConnection is an RTCPeerConnection with a configurable ICE address list and forwarding slots.

    ``ice_addresses``: host addresses to gather on (empty = aioice's default, every interface but loopback).
    ``forwarding``: new transceivers get a ForwardingSender and a ForwardingReceiver.
    ``sync_receive`` (with ``forwarding``): media for those receivers skips aioice's queue
    (``install_sync_rtp_receive``). ``ticker``: polled by its receivers after every media packet; with it
    (and ``sync_receive``) ICE consent runs as its job (``Consent``, one check per ``consent_interval``).
    ``compiled``: with the C extension built, media and routine RTCP take its receive path (``MediaDemux``).
    ``publish_bitrate``: the floor of the REMBs sent while the publisher's link is calm (``sfu.uplink``; 0: the
    estimate alone, as aiortc sends).
    """

    def __init__(
        self,
        configuration: RTCConfiguration | None = None,
        *,
        ice_addresses: Sequence[str] = (),
        forwarding: bool = False,
        udp_ports: tuple[int, int] | None = None,
        sync_receive: bool = True,
        ticker: Ticker | None = None,
        compiled: bool = True,
        consent_interval: float = CONSENT_INTERVAL,
        publish_bitrate: int = 0,
    ) -> None:
        self.ticker = ticker
        # what every video receiver's REMBs say, for the whole connection; its falls confirmed by the gaps found
        self.uplink = Uplink(publish_bitrate, losses=self._sfu_gaps)
        self.consents: list[Consent] = []
        self._sfu_estimator: Any = None  # the REMB estimator every video receiver of this connection shares
        self._sfu_consent_interval = consent_interval
        self._sfu_compiled = compiled
        self._sfu_sync_receive = sync_receive and forwarding
        self._sfu_ice_addresses = list(ice_addresses)
        self._sfu_udp_ports = udp_ports
        self._sfu_forwarding = forwarding
        super().__init__(configuration)

    def _sfu_gaps(self) -> int:
        """_sfu_gaps: the gaps its video receivers (and their simulcast layers) found and NACKed so far."""
        total = 0
        for transceiver in self.getTransceivers():
            receiver = transceiver.receiver
            if isinstance(receiver, ForwardingReceiver) and receiver.nack is not None:
                total += receiver.nacks_sent + sum(layer.nacks_sent for layer in receiver.layers)
        return total

    def _RTCPeerConnection__createDtlsTransport(self) -> RTCDtlsTransport:  # noqa: N802 - aiortc's name
        base: Any = RTCPeerConnection
        dtls: RTCDtlsTransport = base._RTCPeerConnection__createDtlsTransport(self)
        if self._sfu_ice_addresses or self._sfu_udp_ports:
            use_gathering_addresses(ice_connection(dtls), self._sfu_ice_addresses, self._sfu_udp_ports)
        install_fast_rtcp_routing(dtls)
        if self._sfu_sync_receive:
            consent = None
            if self.ticker is not None:
                conn: Any = ice_connection(dtls)
                consent = Consent(conn, self.ticker, self._sfu_consent_interval)
                conn.query_consent = consent.start
                self.consents.append(consent)
            install_sync_rtp_receive(dtls, compiled=self._sfu_compiled, consent=consent)
            if self.ticker is not None:  # the receivers' reports and REMBs: one Ticker job, built in C
                setattr(dtls, FEEDBACK, ReceiverFeedback(dtls, self.ticker, compiled=self._sfu_compiled))
        return dtls

    def _RTCPeerConnection__createTransceiver(  # noqa: N802 - aiortc's name
        self, direction: str, kind: str, sender_track: Any = None
    ) -> Any:
        base: Any = RTCPeerConnection
        transceiver: Any = base._RTCPeerConnection__createTransceiver(self, direction, kind, sender_track)
        if self._sfu_forwarding:
            old_sender = transceiver.sender
            dtls = old_sender.transport
            sender = ForwardingSender(sender_track or kind, dtls)
            sender._ssrc = old_sender._ssrc
            sender._rtx_ssrc = old_sender._rtx_ssrc
            sender._stream_id = old_sender._stream_id
            receiver = ForwardingReceiver(kind, dtls)
            if receiver.remb is not None:
                # one estimate for the whole (bundled) connection: a browser takes each REMB as its total send
                # budget, so one per video section (camera, screen, each told only about itself) would cut it
                # to the smallest of them
                if self._sfu_estimator is None:
                    compiled = self._sfu_compiled and CompiledEstimator is not None
                    # aiortc's estimator in C, the same results (sfu/_remb.c)
                    self._sfu_estimator = CompiledEstimator() if compiled else receiver.remb
                receiver.remb = self._sfu_estimator
                receiver.uplink = self.uplink
            receiver.ticker = self.ticker
            receiver._set_rtcp_ssrc(sender._ssrc)
            transceiver._RTCRtpTransceiver__sender = sender
            transceiver._RTCRtpTransceiver__receiver = receiver
        return transceiver
