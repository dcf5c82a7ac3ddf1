from __future__ import annotations

import pytest
from aiortc import AudioStreamTrack, RTCSessionDescription

from sfu.config import SfuConfig
from sfu.errors import SfuError
from sfu.peer import Peer, announce
from tests.sfu.helpers import RED, ColorTrack, client_pc, wait_until

pytestmark = pytest.mark.timeout(30)


def make_peer(down: bool = False, mime: str = "video/vp8", **kw: object) -> tuple[Peer, list[str]]:
    lost: list[str] = []
    cfg = SfuConfig(ice_addresses=["127.0.0.1"], **kw)  # type: ignore[arg-type]
    return Peer("p", down, cfg, mime, lambda p, state: lost.append(state)), lost


async def client_offer(video: bool = True, audio: bool = True) -> tuple[object, str]:
    pc = client_pc()
    if video:
        pc.addTransceiver(ColorTrack(RED), direction="sendonly")
    if audio:
        pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


async def test_validation_errors() -> None:
    peer, _ = make_peer(max_sdp_bytes=2000)
    pc, sdp = await client_offer()
    try:
        with pytest.raises(SfuError) as err:
            peer.validate_offer(sdp + "a=x\r\n" * 1000)
        assert err.value.code == "sdp-too-large"
        with pytest.raises(SfuError) as err:
            peer.validate_offer("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF x\r\n")
        assert err.value.code == "sdp-invalid"
        with pytest.raises(SfuError) as err:
            peer.validate_offer("v=0\r\n")
        assert err.value.code == "sdp-invalid"
    finally:
        await pc.close()  # type: ignore[attr-defined]
        await peer.close()


async def test_codec_check_and_answer_restricted_to_room_codec() -> None:
    h264, _ = make_peer(mime="video/h264")
    vp8, _ = make_peer()
    pc, sdp = await client_offer()
    try:
        h264.validate_offer(sdp)  # aiortc offers both VP8 and H264
        answer, tracks = await vp8.answer(sdp, {})
        assert [(t.kind, t.source) for t in tracks] == [("video", "camera"), ("audio", "mic")]
        video = answer.split("m=video")[1].split("m=audio")[0]
        rtpmaps = [line for line in video.split("\r\n") if line.startswith("a=rtpmap:")]
        assert {line.split(" ")[1].split("/")[0] for line in rtpmaps} == {"VP8", "rtx"}
    finally:
        await pc.close()  # type: ignore[attr-defined]
        await h264.close()
        await vp8.close()


async def test_down_offer_answer_candidates_and_lost_report() -> None:
    down, lost = make_peer(down=True)
    client = client_pc()
    try:
        down.add_slot("video")
        down.add_slot("audio")
        with pytest.raises(SfuError):
            await down.add_candidate("candidate:1 1 udp 1 127.0.0.1 9 typ host")  # before any description
        offer = await down.offer()
        assert offer.count("a=sendonly") == 2
        await client.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        await client.setLocalDescription(await client.createAnswer())
        with pytest.raises(SfuError) as err:
            await down.apply_answer("garbage")
        assert err.value.code == "sdp-invalid"
        await down.apply_answer(client.localDescription.sdp)
        # a trickled candidate (a duplicate of the SDP one is harmless), then end-of-candidates
        line = next(x for x in client.localDescription.sdp.split("\r\n") if x.startswith("a=candidate:"))
        await down.add_candidate(line[2:], sdp_mid="0")
        await down.add_candidate("")
        with pytest.raises(SfuError):
            await down.add_candidate("candidate:nonsense", sdp_mid="0")
        await wait_until(lambda: down.state == "connected", 10)
        await client.close()
        await wait_until(lambda: bool(lost), 40)  # its DTLS close, or at worst the end of ICE consent (30 s)
        assert lost == ["closed"]
    finally:
        await client.close()
        await down.close()


def test_announce_rewrites_host_candidates_only() -> None:
    sdp = (
        "a=candidate:1 1 udp 2130706431 10.0.0.5 5000 typ host\r\n"
        "a=candidate:2 1 udp 1 1.2.3.4 6 typ srflx raddr x"
    )
    out = announce(sdp, "203.0.113.7")
    assert "203.0.113.7 5000 typ host" in out
    assert "1.2.3.4 6 typ srflx" in out
    assert announce(sdp, None) == sdp
