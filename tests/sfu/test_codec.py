import pytest

from sfu.codec import is_keyframe_start, preferences, video_mime
from sfu.errors import SfuError


def test_vp8_keyframe_detection() -> None:
    # X=1, S=1, PID=0; I=1 with 15-bit picture id; VP8 header P bit 0 -> keyframe
    key = bytes([0x90, 0x80, 0x81, 0x23, 0x10])
    delta = bytes([0x90, 0x80, 0x81, 0x23, 0x11])
    middle = bytes([0x80, 0x80, 0x81, 0x23, 0x10])  # S=0: not the start of a frame
    assert is_keyframe_start("video/vp8", key)
    assert not is_keyframe_start("video/vp8", delta)
    assert not is_keyframe_start("video/vp8", middle)
    assert is_keyframe_start("video/vp8", bytes([0x10, 0x00]))  # no extension byte
    assert not is_keyframe_start("video/vp8", b"")


def test_h264_keyframe_detection() -> None:
    assert is_keyframe_start("video/h264", bytes([0x65, 0]))  # IDR
    assert is_keyframe_start("video/h264", bytes([0x18, 0, 2, 0x67, 0]))  # STAP-A with SPS
    assert is_keyframe_start("video/h264", bytes([0x7C, 0x85]))  # FU-A start of IDR
    assert not is_keyframe_start("video/h264", bytes([0x7C, 0x05]))  # FU-A continuation
    assert not is_keyframe_start("video/h264", bytes([0x41, 0]))  # non-IDR slice


def test_audio_is_always_a_start() -> None:
    assert is_keyframe_start("audio/opus", b"\x01")


def test_room_codecs() -> None:
    assert video_mime("vp8") == "video/vp8"
    assert video_mime("H264") == "video/h264"
    with pytest.raises(SfuError) as err:
        video_mime("AV1")
    assert err.value.code == "codec"
    mimes = {c.mimeType.lower() for c in preferences("video", "video/h264")}
    assert mimes == {"video/h264", "video/rtx"}
    assert {c.mimeType.lower() for c in preferences("audio", "audio/opus")} == {"audio/opus"}
