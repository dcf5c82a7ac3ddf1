"""config: SfuConfig, the SFU's settings (the server builds it from config.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SfuConfig:
    """SfuConfig holds every SFU setting; defaults suit a single public server.

    ice_addresses: host addresses ICE gathers on ([] = aioice's default: every interface but loopback).
    announce_address: public IP written into our SDP candidates instead of the bound address (1:1 NAT).
    fast_path: forward with direct libsrtp + sendto (False = aiortc's awaited ``_send_rtp``, slower).
    switch_keyframe_interval: seconds between two *optional* keyframe requests of one track, all its layers
    together (``Producer.request_keyframe``): layer switches and the requests of subscribers whose links
    congested lately.
    compiled_fanout: use the C receive path and fan-out (``sfu._fanout``) when built and ``fast_path`` is on.
    consent_interval: seconds between ICE consent checks (RFC 7675: 5; six unanswered in a row end the peer).
    allocation: share each subscriber's estimated downlink among its slots by priority, pace its transport and
    pause what does not fit (``sfu.downlinks``); False forwards the top layer of everything, unpaced.
    publish_bitrate: bit/s a publisher is allowed (the floor of its REMBs) while its link shows no congestion, so
    that its browser can reach its upper simulcast layers (``sfu.uplink``); 0: the receive-side estimate alone.
    receive_wait: seconds the event loop waits between two polls while this process receives
    ``receive_wait_above`` media packets a second or more, so that each poll reads many datagrams
    (``sfu.batch.ReceiveBatching``); 0: never.
    """

    ice_addresses: list[str] = field(default_factory=list)
    announce_address: str | None = None
    grid_slots: int = 9
    max_participants_per_room: int = 200
    max_participants: int = 500
    room_grace_seconds: float = 30.0
    resume_seconds: float = 60.0
    keyframe_min_interval: float = 0.5
    switch_keyframe_interval: float = 30.0
    max_sdp_bytes: int = 65536
    video_codec: str = "VP8"
    udp_ports: tuple[int, int] | None = None  # (low, high) inclusive UDP range for media sockets
    fast_path: bool = True
    compiled_fanout: bool = True
    consent_interval: float = 5.0
    allocation: bool = True
    publish_bitrate: int = 3_000_000
    receive_wait: float = 0.001
    receive_wait_above: int = 8000
