"""Tests of recorder/depacketize.py: frames from VP8 and H.264 RTP payloads, reordering, loss, wraps."""

from __future__ import annotations

from recorder.depacketize import FrameAssembler, Unwrapper, h264_depayload, vp8_descriptor, vp8_size
from tests.recorder.media import synthetic_rtp


def test_unwrapper_crosses_the_32_bit_wrap() -> None:
    u = Unwrapper()
    assert u.unwrap(0xFFFFF000) == 0xFFFFF000
    assert u.unwrap(0x00000F00) == (1 << 32) + 0xF00
    assert u.unwrap(0xFFFFFF00) == 0xFFFFFF00  # a late packet from before the wrap
    assert u.unwrap(0x00002000) == (1 << 32) + 0x2000


def test_vp8_frames_are_whole_in_order_and_start_on_a_keyframe() -> None:
    video, _ = synthetic_rtp(1.0)
    lost: list[bool] = []
    a = FrameAssembler("video/vp8", on_loss=lambda: lost.append(True))
    packets = list(video)
    packets[3], packets[4] = packets[4], packets[3]  # reordered
    frames = [f for arrival, seq, ts, marker, p in packets for f in a.push(seq, ts, marker, p, arrival)]
    assert len(frames) == 30 and frames[0].keyframe
    assert vp8_size(frames[0].data) == (160, 120)
    assert [f.ts for f in frames] == sorted(f.ts for f in frames)
    assert not lost


def test_a_lost_packet_drops_frames_until_the_next_keyframe_and_asks_for_one() -> None:
    video, _ = synthetic_rtp(1.0)
    lost: list[bool] = []
    a = FrameAssembler("video/vp8", on_loss=lambda: lost.append(True), max_wait_ticks=6000)
    victim = video[len(video) // 2]
    frames = [f for arrival, seq, ts, marker, p in video if (seq, ts) != victim[1:3]
              for f in a.push(seq, ts, marker, p, arrival)]
    assert lost and a.waiting_keyframe  # the frame never came: the next ones would decode wrong
    assert len(frames) < 30
    assert all(f.ts < victim[2] for f in frames)


def test_audio_packets_are_frames_and_late_ones_are_dropped() -> None:
    _, audio = synthetic_rtp(0.2)
    a = FrameAssembler("audio/opus")
    first = a.push(audio[1][1], audio[1][2], False, audio[1][4], 0.0)
    assert len(first) == 1 and first[0].keyframe
    assert a.push(audio[0][1], audio[0][2], False, audio[0][4], 0.0) == []  # older than the last one


def test_vp8_descriptor_lengths() -> None:
    assert vp8_descriptor(bytes([0x10, 0x00])) == (True, 1)
    assert vp8_descriptor(bytes([0x90, 0x80, 0x81, 0x23, 0x00])) == (True, 4)  # X, I with 15-bit picture id
    assert vp8_descriptor(bytes([0x80, 0xE0, 0x05, 0x01, 0x40, 0x00])) == (False, 5)


def test_h264_payloads_become_annex_b() -> None:
    sps, pps = b"\x67\x42\x00\x1f", b"\x68\xce\x3c\x80"
    stap = b"\x18" + len(sps).to_bytes(2, "big") + sps + len(pps).to_bytes(2, "big") + pps
    assert h264_depayload(stap) == b"\x00\x00\x00\x01" + sps + b"\x00\x00\x00\x01" + pps
    idr = b"\x65" + bytes(range(10))
    fu_start, fu_end = b"\x7c\x85" + idr[1:6], b"\x7c\x45" + idr[6:]
    assert h264_depayload(fu_start) + h264_depayload(fu_end) == b"\x00\x00\x00\x01" + idr
    a = FrameAssembler("video/h264")
    assert a.push(1, 3000, False, stap, 0.0) == []
    assert a.push(2, 3000, False, fu_start, 0.0) == []
    frames = a.push(3, 3000, True, fu_end, 0.0)
    assert len(frames) == 1 and frames[0].keyframe and frames[0].data.endswith(idr[6:])
