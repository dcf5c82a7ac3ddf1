"""rewriter: a HeaderRewriter maps the packets of whichever source fills a slot onto one continuous output stream.

It owns the per-slot mapping of sequence numbers, timestamps and, on a VP8 slot, PictureID and TL0PICIDX
(with the temporal layer filter and its runs of dropped packets): the pure-Python twin of the rewrite state
of the C ``Slot`` (``sfu/_fanout.c``, ``sfu/_vp8.h``; ``sfu.twins`` declares the pairing). A Consumer
(``sfu.consumer``) keeps one per slot, beside its C Slot when the extension is built; a Sink (``sfu.sink``)
keeps one as its whole rewrite state.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sfu import vp8
from sfu.vp8 import NO_VALUE

DROP_WINDOW = 0x1000  # a packet this far behind the newest forwarded one is dropped (sfu/_fanout.h: the same)
RESYNC_AFTER = 64  # drops in a row as "older" with no progress: the source restarted its numbering
DROP_RUNS = 32  # runs of dropped packets remembered (sfu/_fanout.h: the same); ~1-2 s of dropped frames
ALL_LAYERS = 255  # tid_target / tid_cur: every temporal layer


class HeaderRewriter:
    """HeaderRewriter maps (ssrc, seq, ts) of whichever source fills a slot onto one continuous output stream.

    On the first packet after ``switch()`` (or from a new SSRC) the output sequence number continues at
    last + 1 and the timestamp at last + max(one frame, wall-clock elapsed). A packet older than the
    *base* is dropped, so output sequence numbers never repeat those of the previous source: the base is
    the first packet of the source, then slides with the highest sequence number forwarded, staying
    ``DROP_WINDOW`` behind it (a base that stayed put would make every packet "older" once the source had
    sent 32,768 more). Comparisons are modulo 2^16 (RFC 1982 serial numbers). When ``RESYNC_AFTER`` packets
    in a row are dropped as older with nothing forwarded in between, the source has restarted its
    numbering (a jump of half the sequence space or more): the mapping restarts as after a switch.

    VP8 (``map_vp8``): frames of a temporal layer above ``tid_target`` are dropped. The layer forwarded
    (``tid_cur``) changes only at the first packet of a frame: down at once, up on a keyframe or on a frame
    whose Y bit (layer sync) is set for a layer up to the target. A dropped packet leaves no hole in the
    output: the sequence offset (and, once per frame, the PictureID offset) goes down by one. Each run of
    dropped packets is remembered (``runs``: start, end, the offsets before it; at most ``DROP_RUNS``), so a
    late or retransmitted publisher packet older than the newest (``max_in``) gets the offsets of its region or
    is dropped when it falls in a dropped run or before what is remembered (``run_floor``). The PictureID is
    written as 15 bits, +1 per forwarded frame (7-bit ones are widened, ``sfu.vp8.unwrap_picture_id``), the
    TL0PICIDX +1 per forwarded TL0 frame; both continue at last + 1 after a switch.
    """

    __slots__ = (
        "clock_rate", "frame_ticks", "last_seq", "last_ts", "last_time", "_clock", "_src_ssrc", "base_seq",
        "seq_offset", "ts_offset", "_pending", "old_drops", "_drop_mark", "max_in", "pic_offset", "tl0_offset",
        "last_pic", "last_tl0", "in_pic", "tid_target", "tid_cur", "drop_pic", "runs", "run_floor",
    )

    def __init__(
        self,
        clock_rate: int,
        frame_ticks: int,
        first_seq: int,
        first_ts: int,
        clock: Callable[[], float] = time.monotonic,
        first_pic: int = 0,
        first_tl0: int = 0,
    ) -> None:
        self.clock_rate = clock_rate
        self.frame_ticks = frame_ticks
        self.last_seq = (first_seq - 1) & 0xFFFF
        self.last_ts = first_ts
        self.last_time: float | None = None
        self._clock = clock
        self._src_ssrc: int | None = None
        self.base_seq = 0
        self.seq_offset = 0
        self.ts_offset = 0
        self._pending = True
        self.old_drops = 0  # packets dropped as older than the base since the output last advanced
        self._drop_mark = -1  # last_seq when that count started
        self.max_in = 0  # the newest input sequence number of the source (forwarded or dropped)
        self.pic_offset = 0  # output - input PictureID (15 bits) for packets newer than the last run
        self.tl0_offset = 0
        self.last_pic = (first_pic - 1) & 0x7FFF  # output PictureID and TL0PICIDX of the newest packet sent
        self.last_tl0 = (first_tl0 - 1) & 0xFF
        self.in_pic = NO_VALUE  # the newest input PictureID (15 bits), for widening 7-bit ones
        self.tid_target = ALL_LAYERS  # the highest temporal layer wanted (Consumer.max_temporal)
        self.tid_cur = ALL_LAYERS  # the highest temporal layer forwarded now
        self.drop_pic = NO_VALUE  # input PictureID of the last frame dropped
        self.runs: list[tuple[int, int, int, int]] = []  # dropped [start, end) and the offsets before
        self.run_floor = NO_VALUE  # end of the newest run forgotten: older packets are dropped

    def switch(self) -> None:
        """switch marks a source change: the next packet starts a new mapping."""
        self._pending = True

    def steady(self, ssrc: int, seq: int) -> bool:
        """steady: `map` would just add the current offsets (same source, not older than the base or a drop)."""
        return (not self._pending and ssrc == self._src_ssrc and (seq - self.base_seq) & 0xFFFF < 0x8000
                and (not self.runs or (seq - self.runs[-1][1]) & 0xFFFF < 0x8000))

    def advance(self, seq: int, out_seq: int, out_ts: int, now: float, pic: int = NO_VALUE,
                tl0: int = NO_VALUE) -> None:
        """advance notes a forwarded packet: when it is the newest, it moves the output and slides the base."""
        if (out_seq - self.last_seq) & 0xFFFF < 0x8000:
            self.last_seq = out_seq
            self.last_ts = out_ts
            self.last_time = now
            if pic >= 0:
                self.last_pic = pic
            if tl0 >= 0:
                self.last_tl0 = tl0
            if (seq - self.base_seq) & 0xFFFF > DROP_WINDOW:
                self.base_seq = (seq - DROP_WINDOW) & 0xFFFF

    def map(self, ssrc: int, seq: int, ts: int) -> tuple[int, int] | None:
        """map returns (output seq, output ts) for one input packet, or None to drop it."""
        mapped = self.map_parsed(ssrc, seq, ts, True, None)
        return None if mapped is None else (mapped[0], mapped[1])

    def map_vp8(self, ssrc: int, seq: int, ts: int, keyframe: bool,
                payload: bytes) -> tuple[int, int, int, int] | None:
        """map_vp8 returns (output seq, ts, PictureID, TL0PICIDX; NO_VALUE where absent) or None to drop it."""
        return self.map_parsed(ssrc, seq, ts, keyframe, vp8.parse(payload))

    def map_parsed(self, ssrc: int, seq: int, ts: int, keyframe: bool,
                   d: vp8.Descriptor | None) -> tuple[int, int, int, int] | None:
        """map_parsed is ``map_vp8`` on a descriptor already read (None: none, as ``map``)."""
        now = self._clock()
        if not self._pending and ssrc == self._src_ssrc and (seq - self.base_seq) & 0xFFFF >= 0x8000:
            if self._drop_mark != self.last_seq:
                self._drop_mark = self.last_seq
                self.old_drops = 0
            self.old_drops += 1
            if self.old_drops < RESYNC_AFTER:
                return None  # older than the base: a late duplicate or the previous source's range
            self._pending = True  # the source restarted its numbering
        prev = self.max_in
        if self._pending or ssrc != self._src_ssrc:
            if self.last_time is None:
                delta = 0
            else:
                delta = max(self.frame_ticks, round((now - self.last_time) * self.clock_rate))
            out_seq = (self.last_seq + 1) & 0xFFFF
            out_ts = (self.last_ts + delta) & 0xFFFFFFFF
            self.seq_offset = (out_seq - seq) & 0xFFFF
            self.ts_offset = (out_ts - ts) & 0xFFFFFFFF
            self.base_seq = seq
            self._src_ssrc = ssrc
            self._pending = False
            self.old_drops = 0
            self._drop_mark = -1
            self.max_in = seq
            self.runs.clear()
            self.run_floor = NO_VALUE
            self.drop_pic = NO_VALUE
            self.in_pic = NO_VALUE
            if d is not None:
                if d.picture_id >= 0:
                    self.pic_offset = (self.last_pic + 1 - d.picture_id) & 0x7FFF
                if d.tl0picidx >= 0:
                    self.tl0_offset = (self.last_tl0 + 1 - d.tl0picidx) & 0xFF
            newest = True
            seq_off, pic_off = self.seq_offset, self.pic_offset
        elif (seq - prev - 1) & 0xFFFF < 0x7FFF:
            newest = True
            self.max_in = seq
            seq_off, pic_off = self.seq_offset, self.pic_offset
        else:
            newest = False
            region = self._region(seq)
            if region is None:
                return None
            seq_off, pic_off = region
        pic = tl0 = NO_VALUE
        if d is not None:
            if d.picture_id >= 0:
                pic = vp8.unwrap_picture_id(d, self.in_pic)
                if newest:
                    self.in_pic = pic
            if d.tid >= 0:
                if newest and d.start:
                    self._layer(d, keyframe)
                if d.tid > self.tid_cur:
                    if newest:
                        self._drop(seq, prev, pic)
                    return None
            if pic >= 0:
                pic = (pic + pic_off) & 0x7FFF
            if d.tl0picidx >= 0:
                tl0 = (d.tl0picidx + self.tl0_offset) & 0xFF
        out_seq = (seq + seq_off) & 0xFFFF
        out_ts = (ts + self.ts_offset) & 0xFFFFFFFF
        self.advance(seq, out_seq, out_ts, now, pic, tl0)
        return out_seq, out_ts, pic, tl0

    def _layer(self, d: vp8.Descriptor, keyframe: bool) -> None:
        """_layer moves the forwarded layer at a frame's first packet: down at once, up where decodable."""
        target = self.tid_target
        if keyframe:
            self.tid_cur = target
        elif target < self.tid_cur:
            self.tid_cur = target
        elif d.layer_sync and self.tid_cur < d.tid <= target:
            self.tid_cur = d.tid

    def _drop(self, seq: int, prev: int, pic: int) -> None:
        """_drop notes the newest packet dropped (`prev`: the newest before it, `pic`: its input PictureID)."""
        runs = self.runs
        same_frame = pic >= 0 and pic == self.drop_pic
        after = (prev + 1) & 0xFFFF
        if runs and runs[-1][1] == after and (seq == after or same_frame):
            start, end, seq_before, pic_before = runs[-1]  # the packet before was dropped too: one run
            runs[-1] = (start, (seq + 1) & 0xFFFF, seq_before, pic_before)
            self.seq_offset = (self.seq_offset - ((seq + 1 - end) & 0xFFFF)) & 0xFFFF
        else:
            if len(runs) == DROP_RUNS:
                self.run_floor = runs.pop(0)[1]
            runs.append((seq, (seq + 1) & 0xFFFF, self.seq_offset, self.pic_offset))
            self.seq_offset = (self.seq_offset - 1) & 0xFFFF
        if pic >= 0 and not same_frame:
            self.pic_offset = (self.pic_offset - 1) & 0x7FFF
        self.drop_pic = pic

    def _region(self, seq: int) -> tuple[int, int] | None:
        """_region: (seq offset, PictureID offset) of a packet older than the newest, None if it was dropped."""
        seq_off, pic_off = self.seq_offset, self.pic_offset
        for start, end, seq_before, pic_before in reversed(self.runs):
            if (seq - end) & 0xFFFF < 0x8000:
                return seq_off, pic_off
            if (seq - start) & 0xFFFF < 0x8000:
                return None  # inside a dropped run
            seq_off, pic_off = seq_before, pic_before
        if self.run_floor >= 0 and (seq - self.run_floor) & 0xFFFF >= 0x8000:
            return None  # before the runs still remembered
        return seq_off, pic_off
