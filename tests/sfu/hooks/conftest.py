"""conftest: the fixtures of the hooks' tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiortc import RTCSessionDescription

from sfu.config import SfuConfig
from sfu.hooks.connection import SfuPeerConnection
from sfu.peer import Peer
from tests.sfu.helpers import RED, ColorTrack, client_pc, wait_until


@pytest.fixture
async def connected_pair() -> AsyncIterator[tuple[Peer, SfuPeerConnection]]:
    """An up Peer (server side) answering a client that publishes two video tracks on one BUNDLE."""
    peer = Peer("p", False, SfuConfig(ice_addresses=["127.0.0.1"]), "video/vp8", lambda p, s: None)
    client = client_pc()
    client.addTransceiver(ColorTrack(RED), direction="sendonly")
    client.addTransceiver(ColorTrack(RED), direction="sendonly")
    await client.setLocalDescription(await client.createOffer())
    answer, tracks = await peer.answer(client.localDescription.sdp, {"0": "camera", "1": "screen"})
    await client.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    assert [t.source for t in tracks] == ["camera", "screen"]
    await wait_until(lambda: all(t.receiver.media_ssrc and t.receiver.rtx_to_media for t in tracks), 10)
    yield peer, client
    await client.close()
    await peer.close()
