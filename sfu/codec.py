"""codec: the room's codecs (one video codec per room, Opus audio) and keyframe detection in RTP payloads."""

from __future__ import annotations

from aiortc import RTCRtpSender
from aiortc.rtcrtpparameters import RTCRtpCodecCapability

from sfu.errors import SfuError

VIDEO_CODECS = {"VP8": "video/vp8", "H264": "video/h264"}
AUDIO_MIME = "audio/opus"


def video_mime(name: str) -> str:
    """video_mime maps a room codec name ("VP8", "H264") to its lower-case MIME type."""
    try:
        return VIDEO_CODECS[name.upper()]
    except KeyError:
        raise SfuError("codec", f"unsupported room video codec {name!r} (VP8 or H264)") from None


def preferences(kind: str, mime: str) -> list[RTCRtpCodecCapability]:
    """preferences lists aiortc's capabilities of `mime` (+ RTX for video) for setCodecPreferences."""
    caps = RTCRtpSender.getCapabilities(kind).codecs
    chosen = [c for c in caps if c.mimeType.lower() == mime]
    if kind == "video":
        chosen += [c for c in caps if c.mimeType.lower() == "video/rtx"]
    return chosen


def is_keyframe_start(mime: str, payload: bytes) -> bool:
    """is_keyframe_start tells whether an RTP payload begins a keyframe (audio: always True)."""
    if mime == "video/vp8":
        return _vp8_keyframe(payload)
    if mime == "video/h264":
        return _h264_keyframe(payload)
    return True


def _vp8_keyframe(p: bytes) -> bool:
    # RFC 7741 payload descriptor, then the VP8 payload header (P bit 0 = key frame)
    if len(p) < 1:
        return False
    b0 = p[0]
    if not (b0 & 0x10) or (b0 & 0x07):  # S bit must be set, partition index 0
        return False
    pos = 1
    if b0 & 0x80:
        if len(p) < 2:
            return False
        x = p[1]
        pos = 2
        if x & 0x80:  # I: picture id
            if len(p) <= pos:
                return False
            pos += 2 if p[pos] & 0x80 else 1
        if x & 0x40:  # L: TL0PICIDX
            pos += 1
        if x & 0x30:  # T or K
            pos += 1
    return len(p) > pos and not (p[pos] & 0x01)


def _h264_keyframe(p: bytes) -> bool:
    if not p:
        return False
    nal = p[0] & 0x1F
    if nal in (5, 7):
        return True
    if nal == 24:  # STAP-A
        pos = 1
        while pos + 2 < len(p):
            size = (p[pos] << 8) | p[pos + 1]
            if (p[pos + 2] & 0x1F) in (5, 7):
                return True
            pos += 2 + size
        return False
    if nal == 28 and len(p) > 1:  # FU-A, start fragment
        return bool(p[1] & 0x80) and (p[1] & 0x1F) in (5, 7)
    return False
