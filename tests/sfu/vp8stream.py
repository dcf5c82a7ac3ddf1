"""vp8stream: a VP8 publisher's RTP packets with temporal layers (L1T3, as Chromium sends), for the SFU tests.

Counters start just below their wraps (sequence number, timestamp, PictureID, TL0PICIDX), the payload carries a
packet index after the descriptor so a test can tell which input packet an output is.
"""

from __future__ import annotations

import random

from sfu.codec import is_keyframe_start
from sfu.consumer import Inbound

PATTERN = (0, 2, 1, 2)  # L1T3: the temporal layer of each frame in a group of four


def descriptor(start: bool = True, pic: int | None = None, long_pic: bool = True, tl0: int | None = None,
               tid: int | None = None, sync: bool = False, keyidx: int | None = None, partition: int = 0,
               non_ref: bool = False) -> bytes:
    """descriptor builds an RFC 7741 payload descriptor field by field."""
    x = (0x80 if pic is not None else 0) | (0x40 if tl0 is not None else 0)
    x |= (0x20 if tid is not None else 0) | (0x10 if keyidx is not None else 0)
    out = bytearray([(0x80 if x else 0) | (0x20 if non_ref else 0) | (0x10 if start else 0) | partition])
    if x:
        out.append(x)
    if pic is not None:
        out += bytes((0x80 | (pic >> 8), pic & 0xFF)) if long_pic else bytes((pic & 0x7F,))
    if tl0 is not None:
        out.append(tl0)
    if tid is not None or keyidx is not None:
        out.append(((tid or 0) << 6) | (0x20 if sync else 0) | (keyidx or 0))
    return bytes(out)


class Vp8Stream:
    """Vp8Stream is one publisher stream: `layers` 3 (L1T3, TL0PICIDX) or 1 (no T bit), PictureIDs as `pic_style`.

    pic_style: "long" (15 bits, Chromium), "aiortc" (7 bits while the 15-bit counter is below 128) or "short"
    (a 7-bit counter). A sync frame (Y bit) is a TL1/TL2 frame right after a TL0 frame, set at random.
    """

    def __init__(self, ssrc: int, rnd: random.Random, layers: int = 3, pic_style: str = "long",
                 kf_every: int = 120, max_packets: int = 3) -> None:
        self.ssrc = ssrc
        self.rnd = rnd
        self.layers = layers
        self.pic_style = pic_style
        self.kf_every = kf_every
        self.max_packets = max_packets
        self.seq = 0x10000 - rnd.randrange(3, 40)  # unbounded
        self.ts = 0x100000000 - 3000 * rnd.randrange(2, 20)
        self.pic = 0x8000 - rnd.randrange(2, 30) if pic_style != "aiortc" else 0x8000 - rnd.randrange(2, 5)
        self.tl0 = 0x100 - rnd.randrange(1, 10)
        self.frames = 0
        self.index = (ssrc & 0xFF) << 24  # payload tag of the next packet
        self.force_key = False

    def frame(self) -> list[Inbound]:
        """frame returns the packets of the next frame (the first of the stream is a keyframe)."""
        key = self.force_key or self.frames % self.kf_every == 0
        self.force_key = False
        if key:
            self.frames -= self.frames % 4  # a keyframe starts a group
        tid = PATTERN[self.frames % 4] if self.layers == 3 else None
        if tid == 0 and self.frames:
            self.tl0 += 1
        sync = tid is not None and tid > 0 and self.frames % 4 in (1, 2) and self.rnd.random() < 0.5
        pic = self.pic & 0x7FFF
        long_pic = self.pic_style == "long" or (self.pic_style == "aiortc" and pic >= 128)
        out = []
        n = self.rnd.randrange(1, self.max_packets + 1)
        for i in range(n):
            payload = descriptor(start=i == 0, pic=pic, long_pic=long_pic,
                                 tl0=self.tl0 & 0xFF if tid is not None else None, tid=tid, sync=sync)
            payload += (b"\x00" if key and i == 0 else b"\x01") + self.index.to_bytes(4, "big")
            self.index += 1
            out.append(Inbound(
                ssrc=self.ssrc, seq=self.seq & 0xFFFF, ts=self.ts & 0xFFFFFFFF, marker=int(i == n - 1),
                payload=payload, keyframe=is_keyframe_start("video/vp8", payload), ntp=7 << 32,
                abs_send_time=((7 << 32) >> 14) & 0xFFFFFF,
                audio_level=0x7F,
            ))
            self.seq += 1
        self.ts += 3000
        self.pic += 1
        self.frames += 1
        return out
