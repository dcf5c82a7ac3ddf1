"""Tests for sfu/pacer.py: the bucket's twins agree, audio goes first, video waits and drains at the rate."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import pytest

from sfu.pacer import (
    CLASSES,
    FIRST,
    MAX_QUEUE,
    MAX_QUEUE_SECONDS,
    MAX_SCREEN_QUEUE_SECONDS,
    OVERHEAD,
    RESEND_QUEUE_DELAY,
    RESEND_SHARE,
    SCREEN,
    SUPERSEDE_AFTER,
    UNLIMITED,
    CompiledBucket,
    Drains,
    Pacer,
    TokenBucket,
    burst_for,
    drain_at,
)
from sfu.rtp import abs_send_time_now
from tests.sfu.helpers import wait_until

compiled = pytest.mark.skipif(CompiledBucket is None, reason="sfu._fanout is not built")


class Clock:
    """Clock: a settable clock."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@compiled
def test_the_c_bucket_and_the_python_one_agree_over_random_steps() -> None:
    rng = random.Random(7)
    py, c = TokenBucket(300_000.0), CompiledBucket(300_000.0)
    out: dict[str, list[tuple[bytes, bytes, int]]] = {"py": [], "c": []}
    py.send = lambda head, payload, padding: out["py"].append((bytes(head), payload, padding))
    c.send = lambda head, payload, padding: out["c"].append((bytes(head), payload, padding))
    keys = (None, object(), object())  # the streams the packets belong to
    now = 5.0
    for i in range(50_000):
        op = rng.random()
        now += rng.choice((0.0, 0.0005, 0.003, 0.02, 0.4))
        cls = rng.choice((0, 0, 1, 1, 2, -1))  # out of range: clamped alike
        if op < 0.5:
            size, audio = rng.randrange(50, 1300), rng.random() < 0.3
            assert py.admit(size, audio, now, cls) == c.admit(size, audio, now, cls)
        elif op < 0.65:
            size = rng.randrange(50, 1300)
            py.take(size, now)
            c.take(size, now)
        elif op < 0.8:
            frame = i // 3 if rng.random() < 0.5 else i  # some frames of several packets: their RTP timestamp
            head = b"h%03d" % (i % 1000) + frame.to_bytes(4, "big") + b"\x00\x00\x00\x00"
            payload, padding = bytes(rng.randrange(0, 1200)), rng.choice((0, 0, 7))
            key, keyframe = rng.choice(keys), rng.random() < 0.08  # a keyframe drops its stream's older frames
            pushed = py.push(head, payload, padding, 0, now, cls, key, keyframe)
            assert pushed == c.push(bytearray(head), payload, padding, 0, now, cls, key, keyframe)
        elif op < 0.9:
            assert py.drain(now) == c.drain(now)
        elif op < 0.95:
            rate = rng.choice((64_000.0, 300_000.0, 2e6, UNLIMITED))
            py.set_rate(rate)
            c.set_rate(rate)
        elif op < 0.999:
            py.refill(now)
            c.refill(now)
        else:
            py.clear()
            c.clear()
        for name in ("rate", "tokens", "burst", "last", "oldest"):
            a, b = getattr(py, name), getattr(c, name)
            assert abs(a - b) <= 1e-6 + 1e-12 * abs(b), (name, a, b)
        assert [py.oldest_in(k) for k in range(-1, CLASSES + 1)] == [c.oldest_in(k) for k in range(-1, CLASSES + 1)]
        assert (py.queued, py.sent_queued, py.dropped, py.dropped_by, py.superseded) == (
            c.queued, c.sent_queued, c.dropped, c.dropped_by, c.superseded)
        assert abs(py.wait() - c.wait()) <= 1e-12 * (1 + c.wait())
    assert out["py"] == out["c"] and len(out["c"]) > 1000 and min(py.dropped_by) > 50 and py.superseded > 50


@compiled
def test_the_c_queue_drops_beyond_its_size_and_stamps_what_leaves() -> None:
    for bucket in (TokenBucket(1000.0), CompiledBucket(1000.0)):
        sent: list[bytes] = []
        bucket.send = lambda head, payload, padding, sent=sent: sent.append(bytes(head) + payload)
        bucket.tokens = -1e12  # nothing goes
        results = [bucket.push(b"h", b"p", 0, 0, 1.0) for _ in range(MAX_QUEUE + 3)]
        assert results.count(False) == 3 and bucket.dropped == 3 and bucket.queued == MAX_QUEUE
        bucket.clear()
        stale = abs_send_time_now() - 262144 & 0xFFFFFF  # one second ago
        head = bytearray(8)
        head[4:7] = stale.to_bytes(3, "big")
        bucket.tokens = 0.0
        bucket.push(head, b"payload", 0, 4, 2.0)
        assert bucket.drain(2.0) == 1 and sent[-1][8:] == b"payload"
        assert (abs_send_time_now() - int.from_bytes(sent[-1][4:7], "big")) & 0xFFFFFF < 262144 // 4


def headers_pacer(compiled_bucket: bool) -> tuple[Pacer, list[bytes], Clock]:
    """headers_pacer: a Pacer at 100 kbit/s on a fake clock (the compiled bucket or the Python twin; skips when
    the extension is not built) that records the header of each packet it sends."""
    if compiled_bucket and CompiledBucket is None:
        pytest.skip("sfu._fanout is not built")
    clock = Clock()
    sent: list[bytes] = []

    def send(head: bytes | bytearray, payload: bytes, padding: int) -> bool:
        sent.append(bytes(head))
        return True

    pacer = Pacer(send, compiled=compiled_bucket, clock=clock)
    pacer.set_rate(100_000.0)
    return pacer, sent, clock


@pytest.mark.parametrize("compiled_bucket", [False, True])
def test_a_camera_frame_leaves_before_a_screen_keyframe_that_waited_longer(compiled_bucket: bool) -> None:
    """What waits leaves by class: a camera frame arriving behind a screen share's keyframe goes before it (in one
    queue, a 300 kbit/s classroom's presenter camera stalled 2.5 s behind its screen's packets), each class in
    order; a camera packet does not pass the camera's own that wait; what waited too long is dropped and counted
    per class, the screen's after it waited 1.5 x as long (a slide's keyframe takes 1-2 s of a weak link; dropped,
    it asks another of every classroom)."""
    pacer, sent, clock = headers_pacer(compiled_bucket)
    for i in range(20):  # the slide's keyframe: 20 x 1000 bytes, 1.6 s at 100 kbit/s
        pacer.send(b"s%02d" % i, bytes(1000), 0, audio=False, cls=SCREEN)
    waiting = pacer.bucket.queued
    assert waiting > 15
    clock.now += 0.01
    for i in range(3):
        pacer.send(b"c%02d" % i, bytes(300), 0, audio=False, cls=FIRST)
    assert not any(h.startswith(b"c") for h in sent)  # the bucket is empty: the camera waits too
    clock.now += 0.3
    pacer.bucket.drain(clock.now)
    left = sent[20 - waiting:]
    assert left[:3] == [b"c00", b"c01", b"c02"] and len(left) > 3, sent  # the camera's frame first, in order
    pacer.send(b"c03", bytes(300), 0, audio=False, cls=FIRST)  # the bucket empty, only the screen's waiting
    assert sent[-1] != b"c03" and pacer.bucket.queued > 1
    before = len(sent)
    clock.now += 0.3
    pacer.bucket.drain(clock.now)
    assert sent[before] == b"c03" and len(sent) > before + 1  # first again
    screen = [h for h in sent if h.startswith(b"s")]
    assert screen == [b"s%02d" % i for i in range(len(screen))]  # the screen's in order
    pacer.send(b"c04", bytes(300), 0, audio=False, cls=FIRST)
    pacer.send(b"c05", bytes(300), 0, audio=False, cls=FIRST)
    cameras_left = pacer.bucket.queued - (20 - len([h for h in sent if h.startswith(b"s")]))
    assert cameras_left > 0
    pacer.bucket.set_rate(1.0)
    pacer.bucket.tokens = -1e9
    clock.now += MAX_QUEUE_SECONDS + 0.1  # the cameras' waited too long, the screen's not yet
    pacer.bucket.drain(clock.now)
    screen_left = 20 - len([h for h in sent if h.startswith(b"s")])
    assert pacer.dropped_by == (cameras_left, 0) and pacer.bucket.queued == screen_left > 0
    clock.now += MAX_SCREEN_QUEUE_SECONDS - MAX_QUEUE_SECONDS
    pacer.bucket.drain(clock.now)
    assert pacer.dropped_by == (cameras_left, screen_left) and pacer.bucket.queued == 0
    assert pacer.dropped == cameras_left + screen_left


@pytest.mark.parametrize("compiled_bucket", [False, True])
def test_a_keyframe_that_must_wait_drops_the_older_packets_of_its_own_stream(compiled_bucket: bool) -> None:
    """A camera's keyframe queued behind that camera's older frames drops them (a decoder that gets the keyframe has
    no use for them, and they held it back: a 300 kbit/s classroom's presenter camera waited ~2 s for its own
    keyframe); the other streams' packets stay, in order; counted as superseded, not as dropped (what ``dropped_by``
    counts asks its source for a keyframe: ``sfu.downlinks``). A keyframe that goes at once has nothing to drop, and a
    packet not told to be a keyframe (or of no stream) drops nothing."""
    pacer, sent, clock = headers_pacer(compiled_bucket)
    camera, floor = object(), object()

    def rtp(tag: bytes, frame: int) -> bytes:  # a header: its tag where the sequence number is, the frame's timestamp
        return tag.ljust(4, b".") + frame.to_bytes(4, "big") + bytes(4)

    def tags(heads: list[bytes]) -> list[bytes]:
        return [h[:4].rstrip(b".") for h in heads]

    assert pacer.send(rtp(b"k0", 0), bytes(200), 0, audio=False, key=camera, keyframe=True)  # at once: nothing waits
    for i in range(6):  # deltas of both cameras, interleaved, over the bucket: they wait
        pacer.send(rtp(b"c%d" % i, 1 + i), bytes(1000), 0, audio=False, key=camera)
        pacer.send(rtp(b"f%d" % i, 1 + i), bytes(1000), 0, audio=False, key=floor)
    pacer.send(rtp(b"x", 1), bytes(1000), 0, audio=False)  # of no stream told
    pacer.send(rtp(b"s", 1), bytes(1000), 0, audio=False, cls=SCREEN, key=camera)  # the same key in another class
    assert tags(sent)[0] == b"k0" and pacer.superseded == 0
    waiting = pacer.bucket.queued
    camera_waiting = sum(1 for i in range(6) if b"c%d" % i not in tags(sent)) + 1
    pacer.send(rtp(b"c6", 7), bytes(1000), 0, audio=False, key=camera)  # not a keyframe: drops nothing
    assert pacer.bucket.queued == waiting + 1 and pacer.superseded == 0
    before = len(sent)
    pacer.bucket.tokens = -1e6  # nothing leaves meanwhile
    clock.now += SUPERSEDE_AFTER  # the older frames have waited long enough to be superseded
    pacer.send(rtp(b"k1", 8), bytes(1000), 0, audio=False, key=camera, keyframe=True)
    assert pacer.superseded == camera_waiting + 1 and pacer.dropped == 0 and pacer.dropped_by == (0, 0)
    assert pacer.bucket.queued == waiting + 2 - camera_waiting - 1
    # the same keyframe's next packet told a keyframe too (an H.264 IDR slice after its SPS/PPS): nothing of its
    # own frame is dropped
    pacer.send(rtp(b"k1b", 8), bytes(1000), 0, audio=False, key=camera, keyframe=True)
    assert pacer.superseded == camera_waiting + 1 and pacer.bucket.queued == waiting + 3 - camera_waiting - 1
    clock.now += 1.0
    pacer.bucket.set_rate(1e9)
    pacer.bucket.drain(clock.now)
    assert pacer.bucket.queued == 0
    after = tags(sent[before:])
    assert not any(h.startswith(b"c") or h == b"s" for h in after), after  # the camera's older: never sent
    floors = [h for h in tags(sent) if h.startswith(b"f")]
    assert floors == [b"f%d" % i for i in range(6)] and b"x" in after and after[-2:] == [b"k1", b"k1b"], after


@pytest.mark.parametrize("compiled_bucket", [False, True])
def test_a_keyframe_drops_nothing_while_the_older_frames_waited_briefly(compiled_bucket: bool) -> None:
    """Older frames that have waited less than ``SUPERSEDE_AFTER`` are delivered before the keyframe: dropping a
    short wait froze the picture for as long as it had waited, at every layer switch of a paced link (a real
    Chromium decoding twenty switches froze 3.7-4.5 s)."""
    pacer, sent, clock = headers_pacer(compiled_bucket)
    camera = object()
    pacer.bucket.tokens = -1e6  # everything waits
    for i in range(4):
        pacer.send(bytes(4) + (1 + i).to_bytes(4, "big") + bytes(4), bytes(1000), 0, audio=False, key=camera)
    clock.now += SUPERSEDE_AFTER * 0.9
    pacer.send(bytes(4) + (9).to_bytes(4, "big") + bytes(4), bytes(1000), 0, audio=False, key=camera, keyframe=True)
    assert pacer.superseded == 0 and pacer.bucket.queued == 5


@pytest.mark.parametrize("compiled_bucket", [False, True])
async def test_audio_goes_at_once_while_video_waits_and_drains_at_the_rate(compiled_bucket: bool) -> None:
    if compiled_bucket and CompiledBucket is None:
        pytest.skip("sfu._fanout is not built")
    sent: list[tuple[bytes, float]] = []
    loop = asyncio.get_running_loop()
    pacer = Pacer(lambda head, payload, padding: sent.append((bytes(head), loop.time())) or True,
                  compiled=compiled_bucket, clock=loop.time)
    rate = 200_000.0
    pacer.set_rate(rate)
    start = loop.time()
    for i in range(20):  # a keyframe: 20 x 1000 bytes = 160 kbit, 0.8 s at 200 kbit/s
        assert pacer.send(b"v%02d" % i, bytes(1000), 0, audio=False)
    assert pacer.congested
    assert pacer.send(b"a00", bytes(100), 0, audio=True)  # audio arriving behind the burst
    audio_at = next(t for head, t in sent if head == b"a00")
    assert audio_at - start < 0.05  # sent at once, before most of the video
    assert [h for h, _ in sent].index(b"a00") < 5
    await wait_until(lambda: not pacer.congested, 10)
    elapsed = sent[-1][1] - start
    bits = 20 * (1003 + OVERHEAD) * 8 + (103 + OVERHEAD) * 8 - burst_for(rate)
    assert elapsed == pytest.approx(bits / rate, rel=0.25, abs=0.06)  # the rate, not all at once
    assert [h for h, _ in sent if h.startswith(b"v")] == [b"v%02d" % i for i in range(20)]  # in order
    assert pacer.sent_queued > 12 and pacer.dropped == 0


@pytest.mark.parametrize("compiled_bucket", [False, True])
async def test_the_pacers_of_a_room_drain_on_one_timer_at_their_rates(compiled_bucket: bool) -> None:
    """A keyframe reaches every classroom at once and each pacer queues it: one timer drains them all (measured
    with a timer each: a room of 20 woke the event loop ~780 times a second), each still at its own rate."""
    if compiled_bucket and CompiledBucket is None:
        pytest.skip("sfu._fanout is not built")
    loop = asyncio.get_running_loop()
    drains = Drains()
    sent: list[list[float]] = [[] for _ in range(20)]
    pacers = []
    for k in range(20):
        def out(head: bytes | bytearray, payload: bytes, padding: int, k: int = k) -> bool:
            sent[k].append(loop.time())
            return True

        pacer = Pacer(out, compiled=compiled_bucket, clock=loop.time)
        pacer.group = drains
        pacer.set_rate(400_000.0 + 20_000.0 * k)
        pacers.append(pacer)
    armed = [0]
    call_at = loop.call_at

    def counted(when: float, callback: Any, *args: Any) -> asyncio.TimerHandle:
        armed[0] += 1
        return call_at(when, callback, *args)

    loop.call_at = counted  # type: ignore[method-assign,assignment]
    start = loop.time()
    for pacer in pacers:
        for i in range(20):  # a keyframe: 20 x 1000 bytes, 0.33-0.4 s at these rates
            pacer.send(b"v%02d" % i, bytes(1000), 0, audio=False)
    try:
        await wait_until(lambda: not any(p.congested for p in pacers), 10)
    finally:
        del loop.call_at
    for k, pacer in enumerate(pacers):
        assert len(sent[k]) == 20 and pacer.dropped == 0
        bits = 20 * (1003 + OVERHEAD) * 8 - burst_for(pacer.rate)
        assert 0.8 * bits / pacer.rate <= sent[k][-1] - start <= 1.3 * bits / pacer.rate + 1.0  # its own rate
    # one timer drains all twenty: at most one per 15-20 ms of the longest drain (~0.4 s), not twenty
    longest = max(times[-1] for times in sent) - start
    assert armed[0] <= longest / 0.015 + 5 and drains.fired <= armed[0]
    assert not any(p.bucket.armed for p in pacers)  # nothing waits: the timer stopped
    for pacer in pacers:
        pacer.close()


def test_drain_timers_fire_on_a_grid_within_a_burst() -> None:
    for now in (100.0, 100.0031, 100.0049, 100.0199):
        at = drain_at(now, 0.0)
        assert now < at <= now + 0.02 and round(at / 0.005, 6) == round(at / 0.005)  # within BURST_SECONDS
        later = drain_at(now, 0.1)  # the bucket refills later: not before it has
        assert now + 0.1 <= later < now + 0.1 + 0.005


async def test_packets_that_waited_too_long_are_dropped_and_counted() -> None:
    clock = Clock()
    sent: list[bytes] = []
    pacer = Pacer(lambda head, payload, padding: sent.append(bytes(head)) or True, compiled=False, clock=clock)
    pacer.set_rate(10_000.0)
    for i in range(10):
        pacer.send(b"v%d" % i, bytes(1000), 0, audio=False)
    first = len(sent)
    clock.now += MAX_QUEUE_SECONDS + 0.1
    pacer.bucket.tokens = -1e9  # nothing earned: only the age counts
    pacer._drain()
    assert pacer.dropped == 10 - first and not pacer.congested
    pacer.close()


def test_resends_are_refused_while_packets_wait_or_over_their_share() -> None:
    clock = Clock()
    pacer = Pacer(lambda head, payload, padding: True, compiled=False, clock=clock)
    assert pacer.allow_resend(1000)  # unlimited: always
    pacer.set_rate(100_000.0)
    clock.now += 1.5
    allowed = 0
    while pacer.allow_resend(1000):
        allowed += 1
    assert allowed == int(RESEND_SHARE * 100_000 // ((1000 + OVERHEAD) * 8))
    clock.now += 1.0  # a new second: a new share
    assert pacer.allow_resend(1000)
    pacer.bucket.push(b"h", b"p", 0, 0, clock.now)
    assert pacer.allow_resend(10)  # something waits, but not long: the resend still comes in time
    clock.now += RESEND_QUEUE_DELAY + 0.01
    assert not pacer.allow_resend(10)  # it waited long: a resend would only add to the delay
    pacer.bucket.clear()
    clock.now += 1.0
    pacer.bucket.push(b"h", b"p", 0, 0, clock.now, SCREEN)  # the screen's waits long
    clock.now += RESEND_QUEUE_DELAY + 0.01
    assert pacer.queue_delays == (0.0, pytest.approx(RESEND_QUEUE_DELAY + 0.01))
    assert not pacer.allow_resend(10, SCREEN)  # behind it
    assert pacer.allow_resend(10, FIRST)  # a camera's resend leaves before it
    pacer.close()


async def test_a_packet_that_waited_leaves_with_the_time_it_left() -> None:
    """A queued packet's abs-send-time is rewritten when it leaves: the time it waited here must not read as a
    growing queue on the link to the receiver's delay-based estimate."""
    sent: list[bytes] = []

    def send_now(head: bytes | bytearray, payload: bytes, padding: int = 0) -> bool:
        sent.append(bytes(head) + payload)
        return True

    pacer = Pacer(send_now, compiled=False)
    pacer.set_rate(200_000)
    stale = abs_send_time_now() - 262144 & 0xFFFFFF  # one second before now
    head = bytearray(16)
    head[13:16] = stale.to_bytes(3, "big")
    for _ in range(10):  # 10 kB at 200 kbit/s: most of it waits
        pacer.send(head, bytes(1000), 0, audio=False, ast_off=13)
    deadline = time.monotonic() + 5
    while len(sent) < 10:
        assert time.monotonic() < deadline, "the queue never drained"
        await asyncio.sleep(0.05)
    waited = sent[len(sent) // 2 + 1:]
    assert waited
    for packet in waited:
        ast = int.from_bytes(packet[13:16], "big")
        assert (ast - stale) & 0xFFFFFF > 262144 // 2  # stamped at least half a second after the stale time
        assert (abs_send_time_now() - ast) & 0xFFFFFF < 262144 // 2  # and not long ago
