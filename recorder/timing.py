"""timing: where each frame of a slot belongs on the recording's timeline (its pts), decided on the event loop.

Frames follow their (unwrapped) RTP timestamps (90 kHz video, 48 kHz Opus), anchored once per slot to the
recording's clock. The anchor is not the first frame's arrival time alone: a busy event loop reads packets
late, and a first frame read late would shift (and stretch) the whole slot. Each frame's arrival minus its
RTP time since the slot's first frame is an upper bound of where the first frame belongs (lateness only adds
to it), so the slot's first ``anchor_seconds`` of media are held back and the smallest such value is the
anchor; frames are placed from then on as they come. The SFU keeps a slot's timestamps continuous across
source switches and advances them by the wall-clock time a slot stayed empty, so the slots stay aligned to
within a packet's network delay. ``end`` cuts a slot at the recording's stop: frames timed after it are not
placed (``past_end`` says one came, so everything before it had arrived).

Placing runs where the packets arrive (the event loop) because the stop needs to know at once whether a
slot's media reached the stop (``past_end``); writing the placed frames happens elsewhere
(``recorder.disk``).
"""

from __future__ import annotations

from recorder.depacketize import Frame
from recorder.writer import AUDIO_RATE, VIDEO_RATE

ANCHOR_SECONDS = 2.0  # media time a slot's first frames wait for its anchor (see the module doc)


class SlotClock:
    """SlotClock places one slot's frames on the recording's timeline; see the module doc.

    `t0` is the recording's start on the same clock as ``Frame.arrival``. ``place`` returns the frames it
    placed, each with its pts (ticks of the slot's rate since the recording started): none while the slot
    waits for its anchor, then the held ones at once.
    """

    def __init__(self, video: bool, t0: float, anchor_seconds: float = ANCHOR_SECONDS) -> None:
        self.video = video
        self.rate = VIDEO_RATE if video else AUDIO_RATE
        self.t0 = t0
        self.anchor_ticks = round(anchor_seconds * self.rate)
        self.end: int | None = None  # frames timed after this pts are not placed (the recording's stop)
        self.past_end = False  # a frame timed after `end` came
        self.last_arrival: float | None = None  # Frame.arrival of the newest frame
        self._first_ts: int | None = None  # the slot's first RTP timestamp
        self._lowest = 0  # smallest arrival (ticks since t0) minus RTP time since the first frame so far
        self._held: list[Frame] = []  # frames waiting for the anchor
        self._base: int | None = None  # the first frame's pts, once anchored
        self._last_pts: int | None = None

    @property
    def anchored(self) -> bool:
        """anchored: the slot's first frame has its place (frames are placed as they come)."""
        return self._base is not None

    @property
    def duration(self) -> float:
        """duration is the time (seconds) from the recording's start to this slot's last frame."""
        if self._held and self._first_ts is not None:
            return max(0, self._lowest + self._held[-1].ts - self._first_ts) / self.rate
        return 0.0 if self._last_pts is None else self._last_pts / self.rate

    def pts_of(self, frame: Frame) -> int:
        """pts_of maps a frame to this slot's time base (ticks since the recording started); once anchored."""
        if self._base is None or self._first_ts is None:
            raise RuntimeError("pts_of before the slot is anchored")
        return self._base + frame.ts - self._first_ts

    def place(self, frame: Frame) -> list[tuple[int, Frame]]:
        """place returns the frames placed by this one: (pts, frame), oldest first (see the class doc)."""
        self.last_arrival = frame.arrival
        if self._base is None:
            if self._first_ts is None:
                self._first_ts = frame.ts
                self._lowest = round((frame.arrival - self.t0) * self.rate)
            since_first = frame.ts - self._first_ts
            self._lowest = min(self._lowest, round((frame.arrival - self.t0) * self.rate) - since_first)
            self._held.append(frame)
            if since_first >= self.anchor_ticks or self.end is not None:
                return self.release()
            return []
        return self._placed(frame)

    def release(self) -> list[tuple[int, Frame]]:
        """release anchors the slot now with what it holds (at the stop) and returns those frames placed."""
        if self._base is not None or not self._held:
            return []
        self._base = max(0, self._lowest)
        held, self._held = self._held, []
        return [placed for frame in held for placed in self._placed(frame)]

    def _placed(self, frame: Frame) -> list[tuple[int, Frame]]:
        pts = self.pts_of(frame)
        if self.end is not None and pts > self.end:
            self.past_end = True
            return []
        if self._last_pts is not None and pts <= self._last_pts:
            if not self.video:
                return []  # an audio packet overlapping the previous one: drop it
            pts = self._last_pts + 1
        self._last_pts = pts
        return [(pts, frame)]
