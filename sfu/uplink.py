"""uplink: the REMB a publisher's connection is sent: its receive-side estimate, with a floor while its link is calm.

A browser takes the REMB it receives as the ceiling of its whole send rate (every layer, camera and screen) and
finds its rate below that ceiling by itself (its loss-based control grows its target by ~8 % a second while the
receiver reports no loss). The receive-side estimator (aiortc's, or its C port) never says more than 1.5 x what
arrives, and an encoder sends less than its target (a small layer, a still image): the two meet at a fixed point
below what the upper simulcast layers need, so a publisher on a fast link would stay on its lowest layers for the
whole lecture (measured: a presenter on loopback held its camera at 320x180 and its screen at half size with a
REMB of ~620 kbit/s). Chromium discovers more only by probing, which needs transport-wide feedback.

So ``Uplink`` sends ``max(estimate, floor)`` while the link is calm (the floor: ``SfuConfig.publish_bitrate``) and
the estimate itself once the link is congested: the estimate *fell* (the estimator's delay-based detector saw
arrivals fall behind and cut to 0.85 x what arrives) and packets were lost within ``FALL_WINDOW`` seconds of the
fall. A fall alone is not enough: the estimator reads the arrival times where the server's event loop takes the
packets, and a busy server takes them late and in bunches, which that detector reads as a queue (measured: 13
falls in 40 s on loopback with two busy cores, none lost). A real queue at a bottleneck overflows and drops
within seconds. After a confirmed fall the estimate alone is sent for ``hold`` seconds; a fall soon after the
floor came back doubles the hold (up to ``HOLD_MAX``): a link that cannot carry more is not pushed again every
few seconds, and a long calm brings the first hold back. A browser whose ceiling is lifted does not jump to it:
it ramps, so a link that cannot carry the floor shows a queue, a fall and losses before it is flooded.

The estimator gives a new estimate every time its delay detector reads overuse, which a busy server's bunched
arrivals make it read on most frames (measured on the 86-classroom lecture bench: 770-3200 estimates a second,
9-37 per classroom). ``Uplink.due`` throttles what is sent as libwebrtc's receiver does (its ``RembThrottler``):
a REMB at most every ``REMB_INTERVAL`` unless it is more than 3 % below the last one sent (a fall goes at once)
or names other SSRCs; and one that says the same as the last one sent (within 3 %) only every ``REMB_REPEAT``:
while the link is calm what is sent is the floor, the same value every time, and a browser keeps a REMB's ceiling
until the next one (five a second from each of 86 classrooms was 6 % of the server's inbound work on the lecture
bench). Every estimate still goes through ``remb`` (the fall detection reads them all).

Who owns what: ``SfuPeerConnection`` makes one ``Uplink`` per connection (beside its one estimator) and every
``ForwardingReceiver`` of the connection asks it what to send; nothing here touches a packet.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

FALL = 0.9  # an estimate below this share of the previous one fell (the rate control's overuse cut is ~0.6 x)
HOLD = 10.0  # seconds the estimate alone is sent after a fall
HOLD_MAX = 160.0
FAILED_WINDOW = 20.0  # a fall this soon after the floor came back: the link could not carry more
FALL_WINDOW = 3.0  # seconds between a fall and a loss that confirm each other
CALM = 300.0  # seconds without a fall after which the hold starts over from HOLD
REMB_INTERVAL = 0.2  # seconds between REMBs that do not fall (libwebrtc's RembThrottler: kRembSendInterval)
REMB_FALL = 1.03  # a REMB this much below the last one sent goes at once (libwebrtc's kSendThresholdPercent)
REMB_REPEAT = 1.0  # seconds between REMBs that say the same (within 3 % of the last one sent)


@dataclass
class Uplink:
    """Uplink: what one publisher connection's REMBs say (see the module docstring); ``floor`` 0 = the estimate.

    ``losses`` reads the connection's count of packets found missing so far (its NACKed gaps); None: every
    fall counts.
    """

    floor: float
    clock: Callable[[], float] = time.monotonic
    losses: Callable[[], int] | None = None
    hold: float = HOLD
    held_until: float = float("-inf")
    falls: int = 0  # confirmed falls
    sent: int = 0  # the latest REMB value (bit/s)
    _previous: float | None = None
    _fell_at: float = float("-inf")  # the latest fall not confirmed yet
    _lost_at: float = float("-inf")  # when the loss count last grew
    _lost: int = 0
    _remb_at: float = float("-inf")  # when the last REMB was sent (``due``)
    _remb_sent: int = 0
    _remb_ssrcs: tuple[int, ...] = ()

    @property
    def calm(self) -> bool:
        """Uplink.calm: no confirmed fall within the current hold (the floor applies)."""
        return self.clock() >= self.held_until

    def remb(self, estimate: int) -> int:
        """Uplink.remb: the bit/s to send for the estimator's new `estimate`."""
        now = self.clock()
        if self.losses is not None:
            lost = self.losses()
            if lost > self._lost:
                self._lost_at = now
            self._lost = lost
        if self._previous is not None and estimate < FALL * self._previous:
            self._fell_at = now
        confirmed = self.losses is None or abs(self._lost_at - self._fell_at) <= FALL_WINDOW
        if now - self._fell_at <= FALL_WINDOW and confirmed:
            self._fell_at = float("-inf")  # confirmed: one fall, one hold
            if now >= self.held_until:  # a fall while calm (falls within a hold only extend it)
                if now - self.held_until < FAILED_WINDOW:
                    self.hold = min(HOLD_MAX, self.hold * 2)
                elif now - self.held_until > CALM:
                    self.hold = HOLD
            self.held_until = now + self.hold
            self.falls += 1
        self._previous = estimate
        self.sent = estimate if not self.floor or now < self.held_until else max(estimate, int(self.floor))
        return self.sent

    def due(self, bitrate: int, ssrcs: Sequence[int]) -> bool:
        """Uplink.due: whether a REMB of `bitrate` for `ssrcs` is sent now (True records it as sent).

        Not before ``REMB_INTERVAL`` after the last one (``REMB_REPEAT`` when it says the same within 3 %), unless
        `bitrate` is more than 3 % below it or the SSRCs changed (libwebrtc's RembThrottler, plus the SSRC rule: a
        new layer is named at once, and the repeat rule).
        """
        now = self.clock()
        named = tuple(ssrcs)
        if bitrate * REMB_FALL > self._remb_sent and named == self._remb_ssrcs:
            same = bitrate <= self._remb_sent * REMB_FALL
            if now < self._remb_at + (REMB_REPEAT if same else REMB_INTERVAL):
                return False
        self._remb_at, self._remb_sent, self._remb_ssrcs = now, bitrate, named
        return True
