"""vp8: the VP8 RTP payload descriptor (RFC 7741 section 4.2), read with the offsets of the fields the SFU rewrites.

::

         0 1 2 3 4 5 6 7
        +-+-+-+-+-+-+-+-+
        |X|R|N|S|R| PID | (REQUIRED)
        +-+-+-+-+-+-+-+-+
   X:   |I|L|T|K| RSV   | (OPTIONAL)
        +-+-+-+-+-+-+-+-+
   I:   |M| PictureID   | (OPTIONAL; M set: 15 bits over two octets)
        +-+-+-+-+-+-+-+-+
   L:   |   TL0PICIDX   | (OPTIONAL)
        +-+-+-+-+-+-+-+-+
   T/K: |TID|Y| KEYIDX  | (OPTIONAL)
        +-+-+-+-+-+-+-+-+

A forwarding slot rewrites the PictureID (always written as 15 bits: a 7-bit one is widened, the payload
grows by one octet) and the TL0PICIDX so that each subscriber sees one continuous stream whatever frames
it was not sent (``sfu.rewriter.HeaderRewriter.map_vp8``); ``rewrite`` builds the bytes sent, the C fan-out
(``sfu/_fanout.c``: ``vp8_parse``, ``vp8_write``) does the same in its packet buffer.
"""

from __future__ import annotations

from dataclasses import dataclass

NO_VALUE = -1


@dataclass(frozen=True, slots=True)
class Descriptor:
    """Descriptor is one packet's VP8 payload descriptor; offsets are from the payload's start, 0 when absent."""

    start: bool  # S set and partition index 0: the first packet of a frame
    non_reference: bool  # N: no other frame depends on this one
    partition: int  # PID, the partition index
    picture_id: int  # NO_VALUE without the I bit
    picture_id_offset: int
    picture_id_bits: int  # 7 or 15 (M bit), 0 without the I bit
    tl0picidx: int  # NO_VALUE without the L bit
    tl0picidx_offset: int
    tid: int  # temporal layer, NO_VALUE without the T bit
    layer_sync: bool  # Y: the frame depends only on TL0 frames (a layer switch up may start here)
    keyidx: int  # NO_VALUE without the K bit
    size: int  # octets of the descriptor: the VP8 payload header starts here
    keyframe: bool  # the first packet of a key frame (as ``sfu.codec.is_keyframe_start``)


def parse(payload: bytes) -> Descriptor | None:
    """parse reads the descriptor at the start of an RTP payload; None when it is cut short."""
    n = len(payload)
    if n < 1:
        return None
    b0 = payload[0]
    pos = 1
    pic = tl0 = tid = keyidx = NO_VALUE
    pic_off = pic_bits = tl0_off = 0
    sync = False
    if b0 & 0x80:
        if n < 2:
            return None
        x = payload[1]
        pos = 2
        if x & 0x80:
            if n <= pos:
                return None
            pic_off = pos
            if payload[pos] & 0x80:
                if n <= pos + 1:
                    return None
                pic = ((payload[pos] & 0x7F) << 8) | payload[pos + 1]
                pic_bits = 15
                pos += 2
            else:
                pic = payload[pos]
                pic_bits = 7
                pos += 1
        if x & 0x40:
            if n <= pos:
                return None
            tl0_off = pos
            tl0 = payload[pos]
            pos += 1
        if x & 0x30:
            if n <= pos:
                return None
            tk = payload[pos]
            if x & 0x20:
                tid = tk >> 6
                sync = bool(tk & 0x20)
            if x & 0x10:
                keyidx = tk & 0x1F
            pos += 1
    start = bool(b0 & 0x10) and not (b0 & 0x07)
    keyframe = start and n > pos and not (payload[pos] & 0x01)
    return Descriptor(start, bool(b0 & 0x20), b0 & 0x07, pic, pic_off, pic_bits, tl0, tl0_off, tid, sync, keyidx,
                      pos, keyframe)


def rewrite(payload: bytes, d: Descriptor, picture_id: int, tl0picidx: int) -> bytes:
    """rewrite returns the payload with `picture_id` (as 15 bits) and `tl0picidx` written where `d` has them.

    NO_VALUE leaves a field as it is; a 7-bit PictureID is widened to 15 bits (one octet more).
    """
    if picture_id < 0 and tl0picidx < 0:
        return payload
    out = bytearray(payload)
    if tl0picidx >= 0 and d.tl0picidx_offset:
        out[d.tl0picidx_offset] = tl0picidx & 0xFF
    if picture_id >= 0 and d.picture_id_offset:
        at = d.picture_id_offset
        pid = bytes((0x80 | ((picture_id >> 8) & 0x7F), picture_id & 0xFF))
        out[at:at + (2 if d.picture_id_bits == 15 else 1)] = pid
    return bytes(out)


def unwrap_picture_id(d: Descriptor, last: int) -> int:
    """unwrap_picture_id is `d`'s PictureID in 15 bits: a 7-bit one continues from `last` (NO_VALUE: as it is)."""
    if d.picture_id_bits != 7 or last < 0:
        return d.picture_id
    delta = (d.picture_id - last) & 0x7F
    return (last + delta - (0x80 if delta >= 0x40 else 0)) & 0x7FFF
