"""srtplink: a C sender of RTCP (``sfu._fanout.Reporter`` or ``Feedback``) bound to a loopback socket and an SRTP
session, and the receiving end that unprotects what it sends (tests/sfu/test_report.py, test_feedback.py)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pylibsrtp

KEY = bytes(range(30))


@dataclass
class Link:
    """Link: the bound sender, both SRTP sessions and both sockets."""

    sender: Any
    rx: pylibsrtp.Session
    tx: pylibsrtp.Session
    out: socket.socket
    inbox: socket.socket

    def receive(self) -> bytes:
        """Link.receive: the next RTCP packet sent, unprotected (waits up to 5 s)."""
        return self.rx.unprotect_rtcp(self.inbox.recv(4096))

    def nothing_received(self) -> bool:
        """Link.nothing_received: True when no packet waits."""
        try:
            self.inbox.recv(4096, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return True
        return False


@contextmanager
def bound(sender: Any) -> Iterator[Link]:
    """bound: `sender` with its route set to a fresh loopback socket pair and SRTP session (srtp_protect_rtcp)."""
    from pylibsrtp._binding import ffi

    from sfu.hooks.guard import protect_address

    rx = pylibsrtp.Session(pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND))
    tx = pylibsrtp.Session(pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    inbox = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        out.bind(("127.0.0.1", 0))
        inbox.bind(("127.0.0.1", 0))
        inbox.settimeout(5)
        assert sender.set_route(out, int(out.family), "127.0.0.1", inbox.getsockname()[1], tx,
                                int(ffi.cast("uintptr_t", tx._srtp[0])),
                                protect_address("srtp_protect_rtcp"))
        yield Link(sender, rx, tx, out, inbox)
    finally:
        out.close()
        inbox.close()
