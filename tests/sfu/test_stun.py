"""Tests of sfu/stun.py against aioice's own STUN code (the bytes it builds, what it accepts)."""

from __future__ import annotations

import hashlib
import hmac
import random
import struct

from aioice import stun as aioice_stun
from aioice.candidate import candidate_priority

from sfu.stun import (
    BINDING_REQUEST,
    BINDING_RESPONSE,
    binding_request,
    binding_response,
    parse,
)

KEY = b"remote-password-1234"
TXID = bytes(range(12))


def aioice_request(controlling: bool, use_candidate: bool, tie_breaker: int) -> aioice_stun.Message:
    """aioice_request is aioice's Connection.build_request + the integrity its request() adds."""
    m = aioice_stun.Message(message_method=aioice_stun.Method.BINDING, message_class=aioice_stun.Class.REQUEST,
                            transaction_id=TXID)
    m.attributes["USERNAME"] = "remUfrag:locUfrag"
    m.attributes["PRIORITY"] = candidate_priority(1, "prflx")
    if controlling:
        m.attributes["ICE-CONTROLLING"] = tie_breaker
        if use_candidate:
            m.attributes["USE-CANDIDATE"] = None
    else:
        m.attributes["ICE-CONTROLLED"] = tie_breaker
    m.add_message_integrity(KEY)
    return m


def test_requests_are_the_bytes_aioice_builds() -> None:
    for controlling in (True, False):
        for use_candidate in (False, True):
            tie = 0x0123456789ABCDEF
            ours = binding_request(TXID, "remUfrag:locUfrag", candidate_priority(1, "prflx"), controlling, tie, KEY,
                                   use_candidate=use_candidate)
            assert ours == bytes(aioice_request(controlling, use_candidate, tie))
            # and aioice reads ours as authentic, fingerprint included
            parsed = aioice_stun.parse_message(ours)
            assert parsed.check_message_integrity(KEY) and not parsed.check_message_integrity(b"wrong")


def test_responses_are_the_bytes_aioice_builds() -> None:
    for addr in [("127.0.0.1", 50000), ("192.168.1.20", 1), ("2001:db8::1", 65535), ("::1", 5004)]:
        m = aioice_stun.Message(message_method=aioice_stun.Method.BINDING, message_class=aioice_stun.Class.RESPONSE,
                                transaction_id=TXID)
        m.attributes["XOR-MAPPED-ADDRESS"] = addr
        m.add_message_integrity(KEY)
        assert binding_response(TXID, addr, KEY) == bytes(m)
        assert aioice_stun.parse_message(bytes(m)).attributes["XOR-MAPPED-ADDRESS"] == addr


def test_parse_reads_what_aioice_builds() -> None:
    req = parse(bytes(aioice_request(True, True, 42)))
    assert req is not None and req.kind == BINDING_REQUEST and req.transaction_id == TXID
    assert req.username == b"remUfrag:locUfrag" and req.priority == candidate_priority(1, "prflx")
    assert req.controlling and not req.controlled and req.use_candidate
    assert req.authentic(KEY) and not req.authentic(KEY + b"x")
    req2 = parse(bytes(aioice_request(False, False, 42)))
    assert req2 is not None and req2.controlled and not req2.controlling and not req2.use_candidate
    resp = parse(binding_response(TXID, ("127.0.0.1", 9), KEY))
    assert resp is not None and resp.kind == BINDING_RESPONSE and resp.authentic(KEY)
    assert resp.username is None and resp.priority is None


def attr(atype: int, value: bytes) -> bytes:
    return struct.pack("!HH", atype, len(value)) + value + bytes(-len(value) & 3)


def test_parse_skips_unknown_attributes_and_ignores_unauthenticated_ones() -> None:
    body = attr(0x0006, b"a:b") + attr(0xC057, b"\x00\x01\x00\x0a")  # + an unknown one (Chrome's network info)
    head = struct.pack("!HHI12s", BINDING_REQUEST, len(body) + 24, 0x2112A442, TXID)
    data = head + body + attr(0x0008, hmac.new(KEY, head + body, hashlib.sha1).digest())  # no FINGERPRINT
    msg = parse(data)
    assert msg is not None and msg.username == b"a:b" and msg.authentic(KEY)
    assert aioice_stun.parse_message(data).check_message_integrity(KEY)  # aioice agrees
    no_integrity = struct.pack("!HHI12s", BINDING_REQUEST, len(body), 0x2112A442, TXID) + body
    assert parse(no_integrity) is None  # aioice answers it (400 Bad Request)
    # USE-CANDIDATE after MESSAGE-INTEGRITY is not authenticated: ignored, as aioice does
    forged = bytearray(data + attr(0x0025, b""))
    forged[2:4] = (len(forged) - 20).to_bytes(2, "big")
    msg = parse(bytes(forged))
    assert msg is not None and not msg.use_candidate and msg.authentic(KEY)
    assert "USE-CANDIDATE" not in aioice_stun.parse_message(bytes(forged)).attributes


def test_parse_refuses_malformed_messages() -> None:
    good = binding_request(TXID, "a:b", 1, True, 7, KEY)
    assert parse(good) is not None
    bad_cookie = good[:4] + b"\x00\x00\x00\x00" + good[8:]
    bad_length = good[:2] + b"\x00\x10" + good[4:]
    wrong_fingerprint = good[:-1] + bytes([good[-1] ^ 1])
    not_binding = b"\x00\x03" + good[2:]  # Allocate (TURN)
    error_class = b"\x01\x11" + good[2:]
    truncated = good[:-3]
    rtp_like = b"\x80" + good[1:]
    for data in (b"", b"\x00" * 19, bad_cookie, bad_length, wrong_fingerprint, not_binding, error_class, truncated,
                 rtp_like):
        assert parse(data) is None


def test_parse_never_raises_on_garbage() -> None:
    rng = random.Random(5)
    good = binding_request(TXID, "user:name", 99, False, 5, KEY)
    accepted = 0
    for _ in range(3000):
        data = bytearray(good)
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.2:
            data = data[:rng.randrange(len(data))]
        msg = parse(bytes(data))
        if msg is not None:
            accepted += 1
            assert msg.kind in (BINDING_REQUEST, BINDING_RESPONSE)
    assert accepted < 100  # a flipped byte almost always breaks the fingerprint
