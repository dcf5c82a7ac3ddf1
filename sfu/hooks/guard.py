"""guard: what the hooks rely on in aiortc, aioice and pylibsrtp, and whether the compiled path may run.

aiortc 1.16.0, aioice 0.13.0 and pylibsrtp 1.0.0 are pinned exactly (``PINNED``, pyproject.toml). The hooks
use private names of theirs, listed here (``PRIVATE_NAMES``: class attributes, ``PRIVATE_INSTANCE_NAMES``:
instance attributes, ``PYLIBSRTP_NAMES``: libsrtp functions called by address); ``tests/sfu/hooks/test_guard.py``
fails when one disappears. The C extension (``sfu._fanout``) calls libsrtp through pylibsrtp's function
addresses: ``check_libsrtp`` verifies their types and a known answer at import, and ``COMPILED_PATH`` is off
(every packet takes the Python path, with a warning) when the extension is not built or libsrtp is not what it
expects. The ``Compiled*`` names are the extension's types, None when the compiled path is off.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pylibsrtp
from aioice import ice as aioice_ice
from aioice.ice import Connection
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.rtcdtlstransport import RTCDtlsTransport, RtpRouter
from pylibsrtp._binding import ffi as _ffi
from pylibsrtp._binding import lib as _lib

try:  # the optional C extension (setup.py); without it every packet takes the Python path
    from sfu._fanout import Demux as CompiledDemux
    from sfu._fanout import Estimator as CompiledEstimator
    from sfu._fanout import Feedback as CompiledFeedback
    from sfu._fanout import Ingress as CompiledIngress
    from sfu._fanout import Reader as CompiledReader
    from sfu._fanout import Reporter as CompiledReporter
    from sfu._fanout import RtcpRoute as CompiledRtcpRoute
except ImportError:
    CompiledDemux = CompiledIngress = CompiledRtcpRoute = CompiledReporter = CompiledEstimator = None
    CompiledFeedback = None

logger = logging.getLogger(__name__)

PINNED = {"aiortc": "1.16.0", "aioice": "0.13.0", "pylibsrtp": "1.0.0"}  # exact versions, as in pyproject.toml

# Private names the hooks use, checked by tests/sfu/hooks/test_guard.py against the pinned versions.
PRIVATE_NAMES: dict[type, tuple[str, ...]] = {
    RTCPeerConnection: ("_RTCPeerConnection__createDtlsTransport", "_RTCPeerConnection__createTransceiver"),
    RTCRtpReceiver: (
        "_RTCRtpReceiver__stop_decoder", "_handle_rtp_packet", "_send_rtcp", "_send_rtcp_nack",
        "_send_rtcp_pli", "_set_rtcp_ssrc", "_run_rtcp", "_handle_rtcp_packet",
    ),
    RTCRtpSender: ("_run_rtp", "_send_keyframe", "_handle_rtcp_packet", "_run_rtcp"),
    RTCDtlsTransport: ("_send_rtp", "_handle_rtcp_data"),
    RtpRouter: ("route_rtcp", "route_rtp"),
    Connection: ("get_component_candidates", "gather_candidates", "data_received", "query_consent", "check_complete"),
    aioice_ice.StunProtocol: ("datagram_received",),
}
PRIVATE_INSTANCE_NAMES: dict[str, tuple[str, ...]] = {
    "RTCRtpReceiver": (
        "_RTCRtpReceiver__decoder_thread", "_RTCRtpReceiver__decoder_queue", "_RTCRtpReceiver__remote_streams",
        "_enabled", "_RTCRtpReceiver__lsr", "_RTCRtpReceiver__lsr_time",
        "_RTCRtpReceiver__rtcp_started", "_RTCRtpReceiver__rtcp_exited",
    ),
    "RTCRtpSender": (
        "_RTCRtpSender__rtp_started",
        "_RTCRtpSender__rtp_exited",
        "_RTCRtpSender__rtcp_started",
        "_RTCRtpSender__rtcp_exited",
        "_rtx_ssrc",
        "_ssrc",
    ),
    "RTCRtpTransceiver": ("_RTCRtpTransceiver__sender", "_RTCRtpTransceiver__receiver", "_headerExtensions"),
    "RTCDtlsTransport": (
        "_state",
        "_tx_srtp",
        "_rx_srtp",
        "_rtp_header_extensions_map",
        "_RTCDtlsTransport__rx_bytes",
        "_RTCDtlsTransport__rx_packets",
        "_rtp_router",
        "_RTCDtlsTransport__tx_bytes",
        "_RTCDtlsTransport__tx_packets",
    ),
    "RtpRouter": ("ssrc_table", "senders", "mid_table"),
    "RTCIceTransport": ("_connection",),
    "Connection": (
        "_nominated", "_components", "_local_candidates", "_local_candidates_start", "_protocols", "_queue",
        "_closing", "_early_checks_done", "_tie_breaker", "ice_controlling", "local_username", "remote_username",
        "local_password", "remote_password",
    ),
    "StunProtocol": ("receiver",),
    "CandidatePair": ("protocol", "remote_addr", "state", "component", "nominated", "remote_nominated"),
    "DatagramTransport": ("_sock",),
    "pylibsrtp.Session": ("_srtp", "_cdata", "_buffer"),
}
# functions of pylibsrtp._binding.lib called directly (or by sfu/_fanout.c)
PYLIBSRTP_NAMES = ("srtp_protect", "srtp_unprotect", "srtp_unprotect_rtcp", "srtp_protect_rtcp")  # all by address


def protect_address(name: str = "srtp_protect") -> int:
    """protect_address is the address of libsrtp's `name` (``srtp_protect``, ``srtp_protect_rtcp``) in pylibsrtp's
    binding (for sfu._fanout)."""
    return int(_ffi.cast("uintptr_t", _ffi.addressof(_lib, name)))


def unprotect_address() -> int:
    """unprotect_address is the address of libsrtp's ``srtp_unprotect`` in pylibsrtp's binding (for sfu._fanout)."""
    return int(_ffi.cast("uintptr_t", _ffi.addressof(_lib, "srtp_unprotect")))


# The C type sfu/_fanout.c assumes for each of PYLIBSRTP_NAMES (``protect_fn`` in sfu/_fanout.h: int status,
# srtp_t, buffer, in/out length), and a known answer: this RTP packet protected with AES_CM_128_HMAC_SHA1_80
# (pylibsrtp's default policy), key and salt bytes(range(30)), first packet of the session (RFC 3711).
LIBSRTP_TYPE = "srtp_err_status_t(*)(struct srtp_ctx_t_ *, void *, int *)"
KNOWN_PLAIN = bytes.fromhex("80e0fffe123456781a2b3c4d") + b"taphuan known answer"
KNOWN_PROTECTED = KNOWN_PLAIN[:12] + bytes.fromhex(
    "a7ef11cdb963ade956524adefa6a75de2f8a03f30721940cd346bb10707c")


def check_libsrtp(lib: Any = _lib, address: Callable[[], int] = protect_address) -> str | None:
    """check_libsrtp verifies what sfu/_fanout.c relies on when it calls libsrtp by address: each function's
    cffi type, and a known-answer protect through ``address()`` called with the extension's signature.
    Returns None when both hold, else the reason (the compiled path is then refused)."""
    for name in PYLIBSRTP_NAMES:
        fn = getattr(lib, name, None)
        cname = _ffi.typeof(fn).cname if fn is not None else "missing"
        if cname != LIBSRTP_TYPE:
            return f"libsrtp's {name} is {cname}, not {LIBSRTP_TYPE}"
    session = pylibsrtp.Session(pylibsrtp.Policy(key=bytes(range(30)),
                                                 ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
    protect = _ffi.cast("int(*)(void *, void *, int *)", address())
    buf = _ffi.new("unsigned char[]", 256)
    buf[0:len(KNOWN_PLAIN)] = KNOWN_PLAIN
    size = _ffi.new("int *", len(KNOWN_PLAIN))
    status = protect(session._srtp[0], buf, size)
    out = bytes(_ffi.buffer(buf, size[0]))
    if status != 0 or out != KNOWN_PROTECTED:
        return f"libsrtp's srtp_protect failed the known-answer test (status {status})"
    return None


LIBSRTP_PROBLEM = check_libsrtp() if CompiledDemux is not None else None
if LIBSRTP_PROBLEM is not None:
    logger.warning("compiled SFU path refused, forwarding in Python: %s", LIBSRTP_PROBLEM)
    CompiledDemux = CompiledIngress = CompiledRtcpRoute = CompiledReporter = CompiledEstimator = None
    CompiledFeedback = CompiledReader = None
COMPILED_PATH = CompiledDemux is not None  # sfu._fanout is built and libsrtp is what it expects
