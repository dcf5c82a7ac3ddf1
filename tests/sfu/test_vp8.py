"""Tests of sfu/vp8.py: the VP8 payload descriptor read, rewritten and widened."""

from __future__ import annotations

import random

from aiortc.codecs.vpx import VpxPayloadDescriptor

from sfu.codec import is_keyframe_start
from sfu.vp8 import NO_VALUE, Descriptor, parse, rewrite, unwrap_picture_id
from tests.sfu.vp8stream import descriptor


def test_every_field_and_its_offset() -> None:
    payload = descriptor(pic=0x1234, tl0=200, tid=2, sync=True, keyidx=5) + b"\x00\x01\x02"
    d = parse(payload)
    assert d is not None
    assert (d.picture_id, d.picture_id_offset, d.picture_id_bits) == (0x1234, 2, 15)
    assert (d.tl0picidx, d.tl0picidx_offset) == (200, 4)
    assert (d.tid, d.layer_sync, d.keyidx, d.size) == (2, True, 5, 6)
    assert d.start and d.keyframe and not d.non_reference and d.partition == 0


def test_short_picture_id_no_extension_and_continuations() -> None:
    d = parse(descriptor(pic=0x55, long_pic=False, tid=1) + b"\x01")
    assert d is not None and (d.picture_id, d.picture_id_bits, d.tid, d.layer_sync) == (0x55, 7, 1, False)
    assert d.tl0picidx == NO_VALUE and d.keyidx == NO_VALUE and not d.keyframe  # P bit 1: a delta frame
    plain = parse(b"\x10\x00")
    assert plain is not None and plain.picture_id == NO_VALUE and plain.tid == NO_VALUE and plain.keyframe
    cont = parse(descriptor(start=False, pic=9) + b"\x00")
    assert cont is not None and not cont.start and not cont.keyframe
    later = parse(descriptor(partition=2, non_ref=True, tid=0) + b"\x00")
    assert later is not None and not later.start and later.partition == 2 and later.non_reference


def test_cut_short_is_none() -> None:
    full = descriptor(pic=0x1234, tl0=1, tid=0)
    for n in range(len(full)):
        assert parse(full[:n]) is None, n
    assert parse(full) is not None  # no payload header yet: read, but not a keyframe
    assert not parse(full).keyframe  # type: ignore[union-attr]


def test_keyframe_agrees_with_codec_and_fields_with_aiortc() -> None:
    rnd = random.Random(3)
    for _ in range(20_000):
        payload = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(0, 8)))
        d = parse(payload)
        assert (d is not None and d.keyframe) == is_keyframe_start("video/vp8", payload), payload.hex()
        if d is None or len(payload) <= d.size:
            continue
        theirs, rest = VpxPayloadDescriptor.parse(payload)
        assert len(payload) - len(rest) == d.size
        assert (theirs.picture_id, theirs.tl0picidx, theirs.partition_start, theirs.partition_id) == (
            None if d.picture_id < 0 else d.picture_id, None if d.tl0picidx < 0 else d.tl0picidx,
            int(bool(payload[0] & 0x10)), d.partition | (payload[0] & 0x08))
        if d.tid >= 0:
            assert theirs.tid == (d.tid, int(d.layer_sync))


def test_rewrite_writes_fifteen_bits_and_widens_seven() -> None:
    body = b"\x00\xaa\xbb"
    long = descriptor(pic=0x7FFE, tl0=255, tid=0) + body
    d = parse(long)
    assert d is not None
    out = rewrite(long, d, 3, 7)
    assert out == descriptor(pic=3, tl0=7, tid=0) + body and len(out) == len(long)
    short = descriptor(pic=0x7F, long_pic=False, tl0=1, tid=2, sync=True) + body
    ds = parse(short)
    assert ds is not None
    widened = rewrite(short, ds, 0x1234, 2)
    assert widened == descriptor(pic=0x1234, tl0=2, tid=2, sync=True) + body and len(widened) == len(short) + 1
    again = parse(widened)
    assert again is not None and again.picture_id_bits == 15 and again.keyframe
    assert rewrite(long, d, NO_VALUE, NO_VALUE) is long
    assert rewrite(long, d, NO_VALUE, 9) == descriptor(pic=0x7FFE, tl0=9, tid=0) + body


def test_seven_bit_picture_ids_unwrap_into_fifteen() -> None:
    def short(pic: int) -> Descriptor:
        d = parse(descriptor(pic=pic, long_pic=False) + b"\x00")
        assert d is not None
        return d

    assert unwrap_picture_id(short(5), NO_VALUE) == 5
    assert unwrap_picture_id(short(0), 127) == 128  # a 7-bit counter wrapping
    assert unwrap_picture_id(short(0), 0x7FFF) == 0  # aiortc: a 15-bit counter sent short below 128
    assert unwrap_picture_id(short(126), 0x7FFF) == 0x7FFE  # late, a frame behind
    assert unwrap_picture_id(short(3), 0x1281) == 0x1283
    long = parse(descriptor(pic=0x4000) + b"\x00")
    assert long is not None and unwrap_picture_id(long, 5) == 0x4000
