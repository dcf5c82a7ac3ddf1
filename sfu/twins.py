"""twins: the contract between the C extension ``sfu._fanout`` and the Python code it mirrors or reaches into.

The C files and the Python modules are twins in three ways, each declared here once:

* ``REACHED`` - Python objects whose attributes the C code reads, writes or calls by name: ``sfu/_ingress.c``
  runs a publisher's steady-state packets on the receiver's, its statistics' and the Producer's own attributes
  (the Python objects stay the one copy of the state), ``sfu/_rtcp.c`` hands reports to the senders,
  ``sfu/_feedback.c`` reads the statistics for the receiver reports. The C side
  interns each name once at import from a table (``Reach`` in ``sfu/_fanout.h``) and exports the table as
  ``sfu._fanout.CONTRACT``.
* ``MIRRORS`` - C types whose Python-visible fields mirror a Python class's: the C ``Packet`` is
  ``sfu.consumer.Inbound`` (a Consumer reads either), and the C ``Slot`` holds what a ``HeaderRewriter``, a
  Consumer without a slot and a ForwardingSender without a slot keep in Python.
* ``CONSTANTS`` and ``LAYOUTS`` - ``#define`` values and tuple layouts both sides rely on.

``tests/sfu/test_twins.py`` checks the extension's ``CONTRACT`` and types against these declarations, and these
declarations against the Python classes' real attributes: a field renamed on one side only fails there, naming
both sides. Nothing at run time reads this module.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reached:
    """Reached: a Python class whose ``attributes`` the C code reads or writes and whose ``methods`` it calls.

    ``per_packet``: those of the attributes sfu/_ingress.c reaches for every packet, which the class keeps in
    ``__slots__`` so that C reads and writes them at their member's offset (by name they cost a dictionary
    lookup, and a fifth of the receive path's CPU was such lookups), or, the integers, in cells (sfu.cells) so
    that C reads and writes them in place (no Python int per access).
    """

    module: str
    attributes: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    per_packet: tuple[str, ...] = ()


# by class name, as sfu._fanout.CONTRACT names them
REACHED: dict[str, Reached] = {
    # sfu/_ingress.c: ForwardingReceiver._account and Producer.on_fields for the next packet in order
    # and sfu/_feedback.c: the receiver reports (base_seq and the priors of fraction_lost, which it writes)
    "RtpStreamStats": Reached(
        "sfu.stats", ("max16", "cycles", "packets_received", "_jitter_q4", "_last_transit", "_last_ts", "base_seq",
                      "_expected_prior", "_received_prior"),
        per_packet=("max16", "cycles", "packets_received", "_jitter_q4", "_last_transit", "_last_ts")),
    "NackTracker": Reached("sfu.stats", ("missing", "max_seq"), per_packet=("missing", "max_seq")),
    "SequenceTracker": Reached(
        "sfu.stats", ("base", "max_ext", "received"), per_packet=("base", "max_ext", "received")),
    "ForwardingReceiver": Reached(
        "sfu.hooks.receiver", ("_remb_bytes", "direct_packets", "on_fields", "ticker", "direct_rtcp"),
        ("_remb_frame", "_send_remb", "handle_plain", "sender_report"),
        per_packet=("_remb_bytes", "direct_packets", "on_fields", "ticker")),
    "Producer": Reached(
        "sfu.producer", ("packets", "bytes", "keyframes_received", "frames_received", "_seq", "sinks", "_slots"),
        ("_forward_python",),
        per_packet=("packets", "bytes", "keyframes_received", "frames_received", "_seq", "sinks", "_slots")),
    "Ticker": Reached("sfu.tasks", ("next_due",), ("poll",), per_packet=("next_due",)),
    # sfu/_rtcp.c: the subscriber's reports and REMB into the sender's C slot, or its methods (and a publisher's
    # sender reports to ForwardingReceiver.sender_report, above)
    "ForwardingSender": Reached("sfu.hooks.sender", ("direct_rtcp", "report_slot"), ("report_block", "remb")),
}


@dataclass(frozen=True)
class Mirror:
    """Mirror: a C type of ``sfu._fanout`` whose ``fields`` (C name: Python name) mirror a Python class's.

    ``methods`` exist on both. With ``complete``, every data attribute of the Python class is mirrored or
    listed in ``python_only`` (with the reason beside it).
    """

    c_type: str
    python: str  # module.Class
    fields: dict[str, str]
    methods: tuple[str, ...] = ()
    python_only: tuple[str, ...] = ()
    complete: bool = False


_INBOUND = ("ssrc", "seq", "ts", "marker", "payload", "keyframe", "ntp", "abs_send_time", "audio_level", "padding")

MIRRORS: tuple[Mirror, ...] = (
    Mirror("Packet", "sfu.consumer.Inbound", {name: name for name in _INBOUND}, complete=True),
    Mirror(
        "Slot", "sfu.rewriter.HeaderRewriter",
        {name: name for name in ("clock_rate", "frame_ticks", "last_seq", "last_ts", "last_time", "base_seq",
                                 "seq_offset", "ts_offset", "old_drops", "max_in", "pic_offset", "tl0_offset",
                                 "last_pic", "last_tl0", "in_pic", "tid_target", "tid_cur", "drop_pic", "runs",
                                 "run_floor")} | {"src_ssrc": "_src_ssrc"},
        methods=("switch", "steady", "map", "map_vp8"),  # the Slot's map and map_vp8 take the time as an argument
        python_only=("_clock", "_pending", "_drop_mark"),  # C: the caller's clock; struct fields Python never reads
        complete=True,
    ),
    # a Consumer without a C slot keeps these itself (its properties read the slot's otherwise); the report
    # fields differ in unit: the slot keeps the report's (1/256, RTP timestamp units), the Consumer 0..1 and seconds
    Mirror("Slot", "sfu.consumer.Consumer", {
        "waiting_keyframe": "_waiting_keyframe", "vp8": "_vp8", "packets_sent": "_packets_sent",
        "bytes_sent": "_bytes_sent",
        "last_ntp": "_last_ntp", "last_out_ts": "_last_ts", "fraction_lost": "_fraction_lost",
        "packets_lost": "_packets_lost", "jitter": "_jitter", "remb": "_remb_bitrate", "reports": "_reports",
        "pace_class": "pace_class", "supersede": "_supersede",
    }),
    # a ForwardingSender without a C slot keeps these itself (its lsr, lsr_time and rtt read the slot's otherwise)
    Mirror("Slot", "sfu.hooks.sender.ForwardingSender", {"lsr": "_lsr", "lsr_time": "_lsr_time", "rtt": "_rtt"}),
    # a down transport's pacer bucket and queue: the C fan-out asks it before sending, and queues in it (sfu/pacer.py)
    Mirror(
        "Pacer", "sfu.pacer.TokenBucket",
        {name: name for name in ("rate", "tokens", "burst", "last", "queued", "send", "on_queue", "armed",
                                 "sent_queued", "dropped", "superseded")},
        methods=("set_rate", "refill", "admit", "take", "wait", "push", "drain", "clear", "oldest_in"), complete=True,
        python_only=("_queues", "_dropped_by"),  # C's are rings of entries that Python never sees, and their counts
    ),
)

# Python-visible fields of the C types that mirror nothing in Python (C's own counters and state)
C_ONLY: dict[str, tuple[str, ...]] = {
    "Packet": (), "Slot": ("c_sent", "send_errors", "routed", "pacer",
                           "pacer_dropped"),  # the C path's packets its pacer dropped (Python's are not told apart)
    "Pacer": ("oldest", "dropped_by"),  # properties of TokenBucket (they read its queues), getters here
}

# C #define (sfu._fanout.CONTRACT["constants"]): the Python constant it mirrors, as module.NAME
CONSTANTS: dict[str, str] = {
    "DROP_WINDOW": "sfu.rewriter.DROP_WINDOW",
    "RESYNC_AFTER": "sfu.rewriter.RESYNC_AFTER",
    "DROP_RUNS": "sfu.rewriter.DROP_RUNS",
    "ALL_LAYERS": "sfu.rewriter.ALL_LAYERS",
    "HIST": "sfu.consumer.HISTORY_SIZE",
    "CELLS": "sfu.cells.CELLS",
    "MAX_PLAIN": "sfu.hooks.wire.MAX_PLAIN",
    "READ_SIZE": "sfu.hooks.reader.DATAGRAM_SIZE",  # sfu/_reader.c's datagram slot, PythonReader's recvfrom size
    "NTP_OFFSET": "sfu.rtp.NTP_OFFSET",
    "NO_AUDIO_LEVEL": "sfu.rtp.NO_AUDIO_LEVEL",
    "REMB_MAX": "sfu.rtp.REMB_MAX",
    "CODEC_AUDIO": "sfu.hooks.receiver.INGRESS_AUDIO",
    "CODEC_VP8": "sfu.hooks.receiver.INGRESS_VP8",
    "CODEC_H264": "sfu.hooks.receiver.INGRESS_H264",
    "CODEC_OTHER": "sfu.hooks.receiver.INGRESS_OTHER_VIDEO",
    "RTT_ALPHA": "aiortc.rtcrtpsender.RTT_ALPHA",
    "PACER_BURST_SECONDS": "sfu.pacer.BURST_SECONDS",
    "PACER_MIN_BURST_BITS": "sfu.pacer.MIN_BURST_BITS",
    "PACER_OVERHEAD": "sfu.pacer.OVERHEAD",
    "PACER_MAX_QUEUE_SECONDS": "sfu.pacer.MAX_QUEUE_SECONDS",
    "PACER_MAX_SCREEN_QUEUE_SECONDS": "sfu.pacer.MAX_SCREEN_QUEUE_SECONDS",
    "PACER_SUPERSEDE_AFTER": "sfu.pacer.SUPERSEDE_AFTER",
    "PACER_MAX_QUEUE": "sfu.pacer.MAX_QUEUE",
    "PACER_CLASSES": "sfu.pacer.CLASSES",
    # sfu/_remb.c is a port of aiortc's RemoteBitrateEstimator
    "BURST_DELTA_THRESHOLD_MS": "aiortc.rate.BURST_DELTA_THRESHOLD_MS",
    "MAX_ADAPT_OFFSET_MS": "aiortc.rate.MAX_ADAPT_OFFSET_MS",
    "MIN_NUM_DELTAS": "aiortc.rate.MIN_NUM_DELTAS",
    "DELTA_COUNTER_MAX": "aiortc.rate.DELTA_COUNTER_MAX",
    "MIN_FRAME_PERIOD_HISTORY_LENGTH": "aiortc.rate.MIN_FRAME_PERIOD_HISTORY_LENGTH",
    "TIMESTAMP_GROUP_LENGTH_MS": "aiortc.rate.TIMESTAMP_GROUP_LENGTH_MS",
    "INTER_ARRIVAL_SHIFT": "aiortc.rate.INTER_ARRIVAL_SHIFT",
    "TIMESTAMP_TO_MS": "aiortc.rate.TIMESTAMP_TO_MS",
}

# tuples one side builds and the other reads by position: field names in order
LAYOUTS: dict[str, tuple[str, ...]] = {
    "report_entry": ("sender", "slot", "ssrc", "cname"),  # Reporter.send's entries, built by PacketWire
    # Feedback.send_reports's entries, built by sfu.hooks.feedback.ReceiverFeedback (sfu.rtp.ReportEntry)
    "rr_entry": ("rtcp_ssrc", "streams", "lsr", "lsr_time"),
}
