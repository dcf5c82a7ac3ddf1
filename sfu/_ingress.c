/* _ingress: a publisher's steady-state RTP packets from the socket to the fan-out with no Python frame.
 *
 * A Demux (sfu/_demux.c), an aioice StunProtocol's ``datagram_received``, hands an RTP datagram whose SSRC
 * belongs to an armed Ingress to ``ingress_receive``, which does what ForwardingReceiver.handle_plain,
 * ForwardingReceiver._account and Producer.on_fields do in Python, for the common case only: the packet is the
 * next in sequence (RtpStreamStats.max16 + 1), of the stream's payload type, no NACK is outstanding, and the
 * header parses plainly. Everything else (RTCP, STUN, DTLS, RTX, gaps, reordering, the first packets, odd
 * headers) takes the Python path: before decryption (``fallback(data, addr)``) when the clear header tells, or
 * after it (``receiver.handle_plain(plain, now)``). The Python objects stay the one copy of the state: this file
 * reads and writes their attributes (``reach`` below, sfu/twins.py) instead of mirroring them, in place, at the
 * offsets of their __slots__ members found by name when armed (sfu/twins.py ``per_packet``: RtpStreamStats,
 * NackTracker, SequenceTracker, and the per-packet ones of ForwardingReceiver, Producer and Ticker); by name when
 * an object is not of the type the offsets were found for.
 *
 * Per packet: srtp_unprotect into a stack buffer; RtpStreamStats (packets_received, max16, cycles, jitter);
 * NackTracker.max_seq (video); the receiver's REMB byte count, and on a frame's last packet the estimator
 * (sfu/_remb.c's called directly, ``_send_remb`` only for a new estimate; aiortc's through ``_remb_frame``);
 * direct_packets; the Producer's packets, bytes, keyframes_received, frames_received (video: a frame's last
 * packet) and SequenceTracker; then, when it has sinks, one Packet (the C twin of sfu.consumer.Inbound) and
 * fanout_run over its C slots (``_forward_python`` for slots left over or sinks without C slots); finally the
 * room Ticker's ``poll`` when ``next_due`` passed.
 *
 * Ownership: an Ingress belongs to one ForwardingReceiver (``arm``/``disarm`` from Python on the event loop);
 * it runs only on the event loop's thread, under the GIL.
 */
#include "_fanout.h"

#include <time.h>

#define MAX_DATAGRAM 2048
#define NO_AUDIO_LEVEL 0x7F  /* sfu.rtp.NO_AUDIO_LEVEL */
/* codecs of the keyframe test (sfu.hooks.receiver.INGRESS_*) */
#define CODEC_AUDIO 0
#define CODEC_VP8 1
#define CODEC_H264 2
#define CODEC_OTHER 3

typedef int (*unprotect_fn)(void *ctx, void *srtp_hdr, int *len_ptr);

/* interned attribute names */
static PyObject *s_max16, *s_cycles, *s_packets_received, *s_jitter_q4, *s_last_transit, *s_last_ts;
static PyObject *s_missing, *s_max_seq, *s_remb_bytes, *s_remb_frame, *s_send_remb, *s_direct_packets;
static PyObject *s_handle_plain;
static PyObject *s_packets, *s_bytes, *s_keyframes_received, *s_frames_received, *s_seq, *s_base, *s_max_ext;
static PyObject *s_received;
static PyObject *s_sinks, *s_slots, *s_forward_python, *s_on_fields, *s_ticker, *s_next_due, *s_poll;

/* what this file reaches by name, on which Python object (the C/Python contract, sfu/twins.py) */
static const Reach reach[] = {
    {&s_max16, "RtpStreamStats", "max16", 0},
    {&s_cycles, "RtpStreamStats", "cycles", 0},
    {&s_packets_received, "RtpStreamStats", "packets_received", 0},
    {&s_jitter_q4, "RtpStreamStats", "_jitter_q4", 0},
    {&s_last_transit, "RtpStreamStats", "_last_transit", 0},
    {&s_last_ts, "RtpStreamStats", "_last_ts", 0},
    {&s_missing, "NackTracker", "missing", 0},
    {&s_max_seq, "NackTracker", "max_seq", 0},
    {&s_remb_bytes, "ForwardingReceiver", "_remb_bytes", 0},
    {&s_direct_packets, "ForwardingReceiver", "direct_packets", 0},
    {&s_on_fields, "ForwardingReceiver", "on_fields", 0},
    {&s_ticker, "ForwardingReceiver", "ticker", 0},
    {&s_remb_frame, "ForwardingReceiver", "_remb_frame", 1},
    {&s_send_remb, "ForwardingReceiver", "_send_remb", 1},
    {&s_handle_plain, "ForwardingReceiver", "handle_plain", 1},
    {&s_packets, "Producer", "packets", 0},
    {&s_bytes, "Producer", "bytes", 0},
    {&s_keyframes_received, "Producer", "keyframes_received", 0},
    {&s_frames_received, "Producer", "frames_received", 0},
    {&s_seq, "Producer", "_seq", 0},
    {&s_sinks, "Producer", "sinks", 0},
    {&s_slots, "Producer", "_slots", 0},
    {&s_forward_python, "Producer", "_forward_python", 1},
    {&s_base, "SequenceTracker", "base", 0},
    {&s_max_ext, "SequenceTracker", "max_ext", 0},
    {&s_received, "SequenceTracker", "received", 0},
    {&s_next_due, "Ticker", "next_due", 0},
    {&s_poll, "Ticker", "poll", 1},
};

/* ------------------------------------------------------------------------------------------ Packet */

typedef struct {
    PyObject_HEAD
    unsigned int ssrc;
    unsigned int seq;
    unsigned int ts;
    int marker;
    PyObject *payload;
    char keyframe;
    unsigned long long ntp;
    unsigned int abs_send_time;
    int audio_level;
    int padding;
} Packet;

static void Packet_dealloc(Packet *p) {
    Py_XDECREF(p->payload);
    Py_TYPE(p)->tp_free((PyObject *)p);
}

static PyMemberDef Packet_members[] = {
    {"ssrc", T_UINT, offsetof(Packet, ssrc), READONLY, NULL},
    {"seq", T_UINT, offsetof(Packet, seq), READONLY, NULL},
    {"ts", T_UINT, offsetof(Packet, ts), READONLY, NULL},
    {"marker", T_INT, offsetof(Packet, marker), READONLY, NULL},
    {"payload", T_OBJECT_EX, offsetof(Packet, payload), READONLY, NULL},
    {"keyframe", T_BOOL, offsetof(Packet, keyframe), READONLY, NULL},
    {"ntp", T_ULONGLONG, offsetof(Packet, ntp), READONLY, NULL},
    {"abs_send_time", T_UINT, offsetof(Packet, abs_send_time), READONLY, NULL},
    {"audio_level", T_INT, offsetof(Packet, audio_level), READONLY, NULL},
    {"padding", T_INT, offsetof(Packet, padding), READONLY, NULL},
    {NULL},
};

static PyTypeObject PacketType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sfu._fanout.Packet",
    .tp_doc = "Packet: one inbound RTP packet as the C ingress hands it to Consumers (sfu.consumer.Inbound's fields)",
    .tp_basicsize = sizeof(Packet),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = (destructor)Packet_dealloc,
    .tp_members = Packet_members,
};

/* ------------------------------------------------------------------------------------------ Ingress */

/* The per-packet attributes of the __slots__ classes (RtpStreamStats, NackTracker, SequenceTracker), by index */
enum { ST_MAX16, ST_CYCLES, ST_PACKETS_RECEIVED, ST_JITTER_Q4, ST_LAST_TRANSIT, ST_LAST_TS, STATS_FIELDS };
enum { NK_MISSING, NK_MAX_SEQ, NACK_FIELDS };
enum { SQ_BASE, SQ_MAX_EXT, SQ_RECEIVED, SEQ_FIELDS };
/* ... and of ForwardingReceiver, Producer and Ticker, which keep them in __slots__ beside their __dict__ */
enum { RX_REMB_BYTES, RX_DIRECT_PACKETS, RX_ON_FIELDS, RX_TICKER, RX_FIELDS };
enum { PR_PACKETS, PR_BYTES, PR_KEYFRAMES, PR_FRAMES, PR_SEQ, PR_SINKS, PR_SLOTS, PR_FIELDS };
static PyObject **const stats_names[STATS_FIELDS] = {&s_max16, &s_cycles, &s_packets_received, &s_jitter_q4,
                                                     &s_last_transit, &s_last_ts};
static PyObject **const nack_names[NACK_FIELDS] = {&s_missing, &s_max_seq};
static PyObject **const seq_names[SEQ_FIELDS] = {&s_base, &s_max_ext, &s_received};
static PyObject **const rx_names[RX_FIELDS] = {&s_remb_bytes, &s_direct_packets, &s_on_fields, &s_ticker};
static PyObject **const pr_names[PR_FIELDS] = {&s_packets, &s_bytes, &s_keyframes_received, &s_frames_received,
                                               &s_seq, &s_sinks, &s_slots};

/* slot_offset: where instances of `type` keep `name`: CELL_AT(its index) when it is a Cell of a Cells type
 * (sfu/_cells.c), its offset when it is a writable __slots__ member (as PyMember_GetOne and PyMember_SetOne read
 * and write it), else -1 (the attribute is then read and written by name). */
static Py_ssize_t slot_offset(PyTypeObject *type, PyObject *name) {
    PyObject *d = _PyType_Lookup(type, name);  /* borrowed */
    if (d != NULL && cell_index(d) >= 0 && PyType_IsSubtype(type, &CellsType))
        return CELL_AT(cell_index(d));
    if (d == NULL || Py_TYPE(d) != &PyMemberDescr_Type)
        return -1;
    PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
    return m->type == T_OBJECT_EX && !(m->flags & READONLY) ? m->offset : -1;
}

static void slot_offsets(PyObject *o, PyObject **const *names, Py_ssize_t *at, int n) {
    for (int i = 0; i < n; i++)
        at[i] = o != NULL ? slot_offset(Py_TYPE(o), *names[i]) : -1;
}

typedef struct {
    PyObject_HEAD
    int armed;
    unsigned int ssrc;
    int pt;
    int clock_rate;
    int codec;
    int ast_id;
    int al_id;
    PyObject *session;  /* pylibsrtp Session: keeps the srtp_t alive */
    void *srtp;
    unprotect_fn unprotect;
    PyObject *receiver;  /* ForwardingReceiver */
    PyObject *stats;     /* its RtpStreamStats of `ssrc` */
    PyObject *nack;      /* its NackTracker, or NULL (audio) */
    PyObject *remb;      /* not NULL: abs-send-time is negotiated and the receiver estimates (REMB) */
    PyObject *producer;  /* the Producer behind receiver.on_fields */
    Py_ssize_t stats_at[STATS_FIELDS];  /* offsets of stats' __slots__ members (slot_offset), -1: by name */
    Py_ssize_t nack_at[NACK_FIELDS];
    PyObject *seq_type;  /* the type seq_at was resolved for (the Producer's SequenceTracker's) */
    Py_ssize_t seq_at[SEQ_FIELDS];
    PyObject *rx_type;  /* the receiver's type when armed: rx_at holds for it (a callback may re-arm g) */
    Py_ssize_t rx_at[RX_FIELDS];
    PyObject *pr_type;  /* the producer's, as rx_type */
    Py_ssize_t pr_at[PR_FIELDS];
    PyObject *ticker_type;  /* the type ticker_at was resolved for (the receiver's Ticker's) */
    Py_ssize_t ticker_at;   /* its next_due */
    unsigned long long packets;  /* handled here */
    unsigned long long to_python;  /* handed to the Python path */
    unsigned long long dropped;  /* failed SRTP authentication or replay check */
} Ingress;

static void ingress_clear_refs(Ingress *g) {
    g->armed = 0;
    g->srtp = NULL;
    g->unprotect = NULL;
    Py_CLEAR(g->session);
    Py_CLEAR(g->receiver);
    Py_CLEAR(g->stats);
    Py_CLEAR(g->nack);
    Py_CLEAR(g->remb);
    Py_CLEAR(g->producer);
    Py_CLEAR(g->seq_type);
    Py_CLEAR(g->ticker_type);
    Py_CLEAR(g->rx_type);
    Py_CLEAR(g->pr_type);
}

static int Ingress_traverse(Ingress *g, visitproc visit, void *arg) {
    Py_VISIT(g->session);
    Py_VISIT(g->receiver);
    Py_VISIT(g->stats);
    Py_VISIT(g->nack);
    Py_VISIT(g->remb);
    Py_VISIT(g->producer);
    Py_VISIT(g->seq_type);
    Py_VISIT(g->ticker_type);
    Py_VISIT(g->rx_type);
    Py_VISIT(g->pr_type);
    return 0;
}

static int Ingress_clear(Ingress *g) {
    ingress_clear_refs(g);
    return 0;
}

static void Ingress_dealloc(Ingress *g) {
    PyObject_GC_UnTrack(g);
    ingress_clear_refs(g);
    Py_TYPE(g)->tp_free((PyObject *)g);
}

/* arm(session, srtp_address, unprotect_address, ssrc, pt, clock_rate, codec, ast_id, al_id, receiver, stats, nack,
 *     remb, producer) */
static PyObject *Ingress_arm(Ingress *g, PyObject *args) {
    PyObject *session, *receiver, *stats, *nack, *remb, *producer;
    unsigned long long srtp, unprotect;
    unsigned int ssrc;
    int pt, clock_rate, codec, ast_id, al_id;
    if (!PyArg_ParseTuple(args, "OKKIiiiiiOOOOO", &session, &srtp, &unprotect, &ssrc, &pt, &clock_rate, &codec,
                          &ast_id, &al_id, &receiver, &stats, &nack, &remb, &producer))
        return NULL;
    if (!srtp || !unprotect || clock_rate <= 0 || pt < 0 || pt > 127 || codec < 0 || codec > CODEC_OTHER) {
        PyErr_SetString(PyExc_ValueError, "Ingress.arm: bad route or stream parameters");
        return NULL;
    }
    ingress_clear_refs(g);
    g->ssrc = ssrc;
    g->pt = pt;
    g->clock_rate = clock_rate;
    g->codec = codec;
    g->ast_id = ast_id;
    g->al_id = al_id;
    Py_INCREF(session);
    g->session = session;
    g->srtp = (void *)(uintptr_t)srtp;
    g->unprotect = (unprotect_fn)(uintptr_t)unprotect;
    Py_INCREF(receiver);
    g->receiver = receiver;
    Py_INCREF(stats);
    g->stats = stats;
    if (nack != Py_None) {
        Py_INCREF(nack);
        g->nack = nack;
    }
    if (remb != Py_None) {
        Py_INCREF(remb);
        g->remb = remb;
    }
    Py_INCREF(producer);
    g->producer = producer;
    slot_offsets(g->stats, stats_names, g->stats_at, STATS_FIELDS);
    slot_offsets(g->nack, nack_names, g->nack_at, NACK_FIELDS);
    slot_offsets(g->receiver, rx_names, g->rx_at, RX_FIELDS);
    slot_offsets(g->producer, pr_names, g->pr_at, PR_FIELDS);
    Py_INCREF(Py_TYPE(receiver));
    g->rx_type = (PyObject *)Py_TYPE(receiver);
    Py_INCREF(Py_TYPE(producer));
    g->pr_type = (PyObject *)Py_TYPE(producer);
    g->armed = 1;
    Py_RETURN_NONE;
}

static PyObject *Ingress_disarm(Ingress *g, PyObject *unused) {
    (void)unused;
    ingress_clear_refs(g);
    Py_RETURN_NONE;
}

static PyMemberDef Ingress_members[] = {
    {"armed", T_BOOL, offsetof(Ingress, armed), READONLY, "armed: steady-state packets are handled in C"},
    {"ssrc", T_UINT, offsetof(Ingress, ssrc), READONLY, NULL},
    {"packets", T_ULONGLONG, offsetof(Ingress, packets), READONLY, "packets: handled in C"},
    {"to_python", T_ULONGLONG, offsetof(Ingress, to_python), READONLY,
     "to_python: packets of this stream handed to the Python path while armed"},
    {"dropped", T_ULONGLONG, offsetof(Ingress, dropped), READONLY, "dropped: failed SRTP authentication/replay"},
    {NULL},
};

static PyMethodDef Ingress_methods[] = {
    {"arm", (PyCFunction)Ingress_arm, METH_VARARGS,
     "arm(session, srtp_address, unprotect_address, ssrc, pt, clock_rate, codec, ast_id, al_id, receiver, stats, "
     "nack, remb, producer)"},
    {"disarm", (PyCFunction)Ingress_disarm, METH_NOARGS, "disarm: every packet takes the Python path again"},
    {NULL},
};

PyTypeObject IngressType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sfu._fanout.Ingress",
    .tp_doc = "Ingress: the C receive path of one ForwardingReceiver's media stream",
    .tp_basicsize = sizeof(Ingress),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)Ingress_dealloc,
    .tp_traverse = (traverseproc)Ingress_traverse,
    .tp_clear = (inquiry)Ingress_clear,
    .tp_methods = Ingress_methods,
    .tp_members = Ingress_members,
};

/* ------------------------------------------------------------------------------------------ helpers */

/* ll_value converts a read attribute `v` (borrowed) as get_ll returns it. */
static int ll_value(PyObject *v, PyObject *name, long long *out, int *none) {
    if (v == Py_None) {
        if (none == NULL) {
            PyErr_Format(PyExc_TypeError, "%U is None", name);
            return -1;
        }
        *none = 1;
        *out = -1;
        return 0;
    }
    if (none != NULL)
        *none = 0;
    /* not PyLong_AsLongLong: beyond one 30-bit digit it converts through a byte array (a twentieth of the receive
     * path's CPU, for RtpStreamStats' timestamps and transit times); the mask reads the digits in a loop and is
     * exact in [-2^63, 2^64), which holds every counter and time kept here by far */
    *out = (long long)PyLong_AsUnsignedLongLongMask(v);
    return (*out == -1 && PyErr_Occurred()) ? -1 : 0;
}

/* get_ll reads an int attribute; -1 with *none = 1 for None; returns 0, or -1 with an exception set. */
static int get_ll(PyObject *o, PyObject *name, long long *out, int *none) {
    PyObject *v = PyObject_GetAttr(o, name);
    if (v == NULL)
        return -1;
    int r = ll_value(v, name, out, none);
    Py_DECREF(v);
    return r;
}

static int set_ll(PyObject *o, PyObject *name, long long value) {
    PyObject *v = PyLong_FromLongLong(value);
    if (v == NULL)
        return -1;
    int r = PyObject_SetAttr(o, name, v);
    Py_DECREF(v);
    return r;
}

/* get_at, set_at, add_at: get_ll, set_ll and add_ll on a cell (`at` <= CELL_AT(0)) or a __slots__ member at offset
 * `at` (slot_offset), by name when `at` is -1 or the member is unset (which raises the AttributeError). */
static int get_at(PyObject *o, Py_ssize_t at, PyObject *name, long long *out, int *none) {
    if (at <= CELL_AT(0)) {
        const Cells *c = (const Cells *)o;
        int i = CELL_INDEX(at);
        if (c->none >> i & 1u) {
            if (none == NULL) {
                PyErr_Format(PyExc_TypeError, "%U is None", name);
                return -1;
            }
            *none = 1;
            *out = -1;
            return 0;
        }
        if (none != NULL)
            *none = 0;
        *out = c->cell[i];
        return 0;
    }
    PyObject *v = at >= 0 ? *(PyObject **)((char *)o + at) : NULL;
    return v != NULL ? ll_value(v, name, out, none) : get_ll(o, name, out, none);
}

static int set_at(PyObject *o, Py_ssize_t at, PyObject *name, long long value) {
    if (at <= CELL_AT(0)) {
        Cells *c = (Cells *)o;
        c->cell[CELL_INDEX(at)] = value;
        c->none &= ~(1u << CELL_INDEX(at));
        return 0;
    }
    if (at < 0)
        return set_ll(o, name, value);
    PyObject *v = PyLong_FromLongLong(value);
    if (v == NULL)
        return -1;
    PyObject **member = (PyObject **)((char *)o + at);
    PyObject *old = *member;
    *member = v;
    Py_XDECREF(old);
    return 0;
}

static int add_at(PyObject *o, Py_ssize_t at, PyObject *name, long long delta) {
    long long v;
    if (get_at(o, at, name, &v, NULL) < 0)
        return -1;
    return set_at(o, at, name, v + delta);
}

/* by name: the offsets of an object whose type is not the one g was armed for */
static const Py_ssize_t BY_NAME[8] = {-1, -1, -1, -1, -1, -1, -1, -1};
_Static_assert(RX_FIELDS <= 8 && PR_FIELDS <= 8, "BY_NAME covers every offset table");

/* rx_offsets, pr_offsets: the member offsets for g's receiver or producer `o` (BY_NAME if its type differs). */
static inline const Py_ssize_t *rx_offsets(Ingress *g, PyObject *o) {
    return (PyObject *)Py_TYPE(o) == g->rx_type ? g->rx_at : BY_NAME;
}

static inline const Py_ssize_t *pr_offsets(Ingress *g, PyObject *o) {
    return (PyObject *)Py_TYPE(o) == g->pr_type ? g->pr_at : BY_NAME;
}

/* obj_at: a new reference to `name` of o, from the __slots__ member at `at` when set, else by name. */
static PyObject *obj_at(PyObject *o, Py_ssize_t at, PyObject *name) {
    PyObject *v = at >= 0 ? *(PyObject **)((char *)o + at) : NULL;
    if (v == NULL)
        return PyObject_GetAttr(o, name);
    Py_INCREF(v);
    return v;
}

int add_ll(PyObject *o, PyObject *name, long long delta) {
    long long v;
    if (get_ll(o, name, &v, NULL) < 0)
        return -1;
    return set_ll(o, name, v + delta);
}

/* vp8_keyframe: RFC 7741 payload descriptor, then the VP8 payload header (sfu.codec._vp8_keyframe). */
static int vp8_keyframe(const unsigned char *p, Py_ssize_t n) {
    if (n < 1)
        return 0;
    unsigned char b0 = p[0];
    if (!(b0 & 0x10) || (b0 & 0x07))
        return 0;
    Py_ssize_t pos = 1;
    if (b0 & 0x80) {
        if (n < 2)
            return 0;
        unsigned char x = p[1];
        pos = 2;
        if (x & 0x80) {
            if (n <= pos)
                return 0;
            pos += (p[pos] & 0x80) ? 2 : 1;
        }
        if (x & 0x40)
            pos += 1;
        if (x & 0x30)
            pos += 1;
    }
    return n > pos && !(p[pos] & 0x01);
}

/* h264_keyframe: an IDR slice or SPS, alone, in a STAP-A or starting an FU-A (sfu.codec._h264_keyframe). */
static int h264_keyframe(const unsigned char *p, Py_ssize_t n) {
    if (n < 1)
        return 0;
    int nal = p[0] & 0x1F;
    if (nal == 5 || nal == 7)
        return 1;
    if (nal == 24) {
        Py_ssize_t pos = 1;
        while (pos + 2 < n) {
            Py_ssize_t size = (Py_ssize_t)be16(p + pos);
            int t = p[pos + 2] & 0x1F;
            if (t == 5 || t == 7)
                return 1;
            pos += 2 + size;
        }
        return 0;
    }
    if (nal == 28 && n > 1)
        return (p[1] & 0x80) && ((p[1] & 0x1F) == 5 || (p[1] & 0x1F) == 7);
    return 0;
}

static int keyframe_start(int codec, const unsigned char *p, Py_ssize_t n) {
    switch (codec) {
    case CODEC_VP8:
        return vp8_keyframe(p, n);
    case CODEC_H264:
        return h264_keyframe(p, n);
    default:  /* audio, or a video codec without a test: every packet may start a picture (sfu.codec) */
        return 1;
    }
}

/* --------------------------------------------------------------------------------------- receive */

/* stream_ready: the packet is the next of the stream and nothing outstanding needs Python. 1 yes, 0 no, -1 error */
static int stream_ready(Ingress *g, unsigned int seq, long long *max16) {
    int none;
    if (get_at(g->stats, g->stats_at[ST_MAX16], s_max16, max16, NULL) < 0)
        return -1;
    if (((seq - (unsigned int)*max16) & 0xFFFF) != 1)
        return 0;
    if (g->nack != NULL) {
        Py_ssize_t at = g->nack_at[NK_MISSING];
        PyObject *missing = at >= 0 ? *(PyObject **)((char *)g->nack + at) : NULL;
        Py_XINCREF(missing);
        if (missing == NULL && (missing = PyObject_GetAttr(g->nack, s_missing)) == NULL)
            return -1;
        Py_ssize_t pending = PySet_Check(missing) ? PySet_GET_SIZE(missing) : 1;
        Py_DECREF(missing);
        if (pending)
            return 0;
        long long last;
        if (get_at(g->nack, g->nack_at[NK_MAX_SEQ], s_max_seq, &last, &none) < 0)
            return -1;
        if (none || ((seq - (unsigned int)last) & 0xFFFF) != 1)
            return 0;
    }
    /* still this Producer's? */
    PyObject *fields = obj_at(g->receiver, rx_offsets(g, g->receiver)[RX_ON_FIELDS], s_on_fields);
    if (fields == NULL)
        return -1;
    int same = PyMethod_Check(fields) && PyMethod_GET_SELF(fields) == g->producer;
    Py_DECREF(fields);
    return same;
}

/* stats_add: RtpStreamStats.add for the next packet in order (sfu.stats). */
static int stats_add(Ingress *g, unsigned int seq, unsigned int ts, double arrival, long long max16) {
    PyObject *st = g->stats;
    const Py_ssize_t *at = g->stats_at;
    if (add_at(st, at[ST_PACKETS_RECEIVED], s_packets_received, 1) < 0)
        return -1;
    if (seq < (unsigned int)max16 && add_at(st, at[ST_CYCLES], s_cycles, 0x10000) < 0)
        return -1;
    if (set_at(st, at[ST_MAX16], s_max16, seq) < 0)
        return -1;
    long long last_ts;
    if (get_at(st, at[ST_LAST_TS], s_last_ts, &last_ts, NULL) < 0)
        return -1;
    if ((long long)ts == last_ts)
        return 0;
    long long transit = (long long)(arrival * (double)g->clock_rate) - (long long)ts;
    long long last;
    int none;
    if (get_at(st, at[ST_LAST_TRANSIT], s_last_transit, &last, &none) < 0)
        return -1;
    if (!none) {
        /* the transit difference as a signed 32-bit value (RFC 3550 A.8): RTP timestamps wrap at 2^32 */
        long long d = (long long)((unsigned long long)(transit - last) & 0xFFFFFFFFull);
        if (d >= 0x80000000LL)
            d -= 0x100000000LL;
        if (d < 0)
            d = -d;
        long long q4;
        if (get_at(st, at[ST_JITTER_Q4], s_jitter_q4, &q4, NULL) < 0)
            return -1;
        if (set_at(st, at[ST_JITTER_Q4], s_jitter_q4, q4 + d - ((q4 + 8) >> 4)) < 0)
            return -1;
    }
    if (set_at(st, at[ST_LAST_TRANSIT], s_last_transit, transit) < 0)
        return -1;
    return set_at(st, at[ST_LAST_TS], s_last_ts, ts);
}

/* seq_add: SequenceTracker.add (sfu.stats). */
static int seq_add(Ingress *g, PyObject *tracker, unsigned int seq) {
    if ((PyObject *)Py_TYPE(tracker) != g->seq_type) {
        slot_offsets(tracker, seq_names, g->seq_at, SEQ_FIELDS);
        Py_INCREF(Py_TYPE(tracker));
        Py_XSETREF(g->seq_type, (PyObject *)Py_TYPE(tracker));
    }
    const Py_ssize_t *at = g->seq_at;
    if (add_at(tracker, at[SQ_RECEIVED], s_received, 1) < 0)
        return -1;
    long long base, max_ext;
    int none;
    if (get_at(tracker, at[SQ_BASE], s_base, &base, &none) < 0)
        return -1;
    if (none) {
        if (set_at(tracker, at[SQ_BASE], s_base, seq) < 0)
            return -1;
        return set_at(tracker, at[SQ_MAX_EXT], s_max_ext, seq);
    }
    if (get_at(tracker, at[SQ_MAX_EXT], s_max_ext, &max_ext, NULL) < 0)
        return -1;
    unsigned int delta = (seq - (unsigned int)(max_ext & 0xFFFF)) & 0xFFFF;
    if (delta < 0x8000)
        return set_at(tracker, at[SQ_MAX_EXT], s_max_ext, max_ext + delta);
    return 0;
}

/* call_method_void calls o.name(*args) (at most 4 arguments) and drops the result; 0, or -1 with an exception. */
static int call_method_void(PyObject *o, PyObject *name, PyObject *const *args, size_t nargs) {
    PyObject *stack[5];
    stack[0] = o;
    for (size_t i = 0; i < nargs && i < 4; i++)
        stack[i + 1] = args[i];
    PyObject *r = PyObject_VectorcallMethod(name, stack, (nargs < 4 ? nargs : 4) + 1, NULL);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* plain_to_python hands a decrypted packet C does not read plainly to receiver.handle_plain(plain, now). */
static int plain_to_python(Ingress *g, const unsigned char *buf, int len, double arrival) {
    PyObject *plain = PyBytes_FromStringAndSize((const char *)buf, len);
    PyObject *now = PyFloat_FromDouble(arrival);
    int r = -1;
    Py_ssize_t at = rx_offsets(g, g->receiver)[RX_DIRECT_PACKETS];
    if (plain != NULL && now != NULL && add_at(g->receiver, at, s_direct_packets, 1) == 0)
        r = call_method_void(g->receiver, s_handle_plain, (PyObject *const[]){plain, now}, 2);
    Py_XDECREF(plain);
    Py_XDECREF(now);
    g->to_python++;
    return r;
}

/* forward: the Producer's part (Producer.on_fields) once the receiver's part is done. */
static int forward(Ingress *g, PyObject *prod, const unsigned char *payload, Py_ssize_t plen, unsigned int seq,
                   unsigned int ts, int marker, int padding, int level, double arrival) {
    const Py_ssize_t *at = pr_offsets(g, prod);
    if (add_at(prod, at[PR_PACKETS], s_packets, 1) < 0 || add_at(prod, at[PR_BYTES], s_bytes, plen) < 0)
        return -1;
    PyObject *tracker = obj_at(prod, at[PR_SEQ], s_seq);
    if (tracker == NULL)
        return -1;
    int r = seq_add(g, tracker, seq);
    Py_DECREF(tracker);
    if (r < 0)
        return -1;
    int keyframe = keyframe_start(g->codec, payload, plen);
    if (keyframe && g->codec != CODEC_AUDIO && add_at(prod, at[PR_KEYFRAMES], s_keyframes_received, 1) < 0)
        return -1;
    if (marker && g->codec != CODEC_AUDIO && add_at(prod, at[PR_FRAMES], s_frames_received, 1) < 0)
        return -1;
    PyObject *sinks = obj_at(prod, at[PR_SINKS], s_sinks);
    if (sinks == NULL)
        return -1;
    Py_ssize_t nsinks = PyTuple_Check(sinks) ? PyTuple_GET_SIZE(sinks) : 0;
    Py_DECREF(sinks);
    if (nsinks == 0)
        return 0;
    /* as sfu.producer: int((arrival + NTP_OFFSET) * 2^32) modulo 2^64 (NTP era 1 from 2036; exact subtraction) */
    double ntp_d = (arrival + NTP_OFFSET) * 4294967296.0;
    while (ntp_d >= 18446744073709551616.0)
        ntp_d -= 18446744073709551616.0;
    unsigned long long ntp = ntp_d > 0 ? (unsigned long long)ntp_d : 0;
    Packet *p = PyObject_New(Packet, &PacketType);
    if (p == NULL)
        return -1;
    p->ssrc = g->ssrc;
    p->seq = seq;
    p->ts = ts;
    p->marker = marker;
    p->keyframe = (char)(keyframe != 0);
    p->ntp = ntp;
    p->abs_send_time = (unsigned int)((ntp >> 14) & 0xFFFFFF);
    p->audio_level = level;
    p->padding = padding;
    p->payload = PyBytes_FromStringAndSize((const char *)payload, plen);
    if (p->payload == NULL) {
        Py_DECREF(p);
        return -1;
    }
    PyObject *slots = obj_at(prod, at[PR_SLOTS], s_slots);
    PyObject *rest = NULL;
    if (slots == NULL) {
        Py_DECREF(p);
        return -1;
    }
    if (PyTuple_Check(slots)) {
        rest = fanout_run(slots, (PyObject *)p, payload, plen, g->ssrc, seq, ts, marker, keyframe, ntp, padding,
                          level, clock_seconds(CLOCK_MONOTONIC));
    } else {  /* a sink without a C slot: Python forwards to all */
        Py_INCREF(Py_None);
        rest = Py_None;
        r = call_method_void(prod, s_forward_python, (PyObject *const[]){(PyObject *)p, Py_None}, 2);
        if (r < 0)
            Py_CLEAR(rest);
    }
    Py_DECREF(slots);
    if (rest == NULL) {
        Py_DECREF(p);
        return -1;
    }
    r = 0;
    if (rest != Py_None)
        r = call_method_void(prod, s_forward_python, (PyObject *const[]){(PyObject *)p, rest}, 2);
    Py_DECREF(rest);
    Py_DECREF(p);
    return r;
}

/* parse_header reads the decrypted header as sfu.rtp.parse_fields does: payload offset, abs-send-time (-1: none),
 * audio level byte and padding; 0, or -1 for anything unusual (two-byte extensions, bad lengths, bad padding). */
static int parse_header(Ingress *g, const unsigned char *buf, int len, int *pos_out, long long *ast_out,
                        int *level_out, int *padding_out) {
    if (len < 12)
        return -1;
    int pos = 12 + 4 * (buf[0] & 0x0F);
    long long ast = -1;
    int level = NO_AUDIO_LEVEL;
    if (buf[0] & 0x10) {
        if (len < pos + 4 || be16(buf + pos) != 0xBEDE)
            return -1;
        int end = pos + 4 + 4 * (int)be16(buf + pos + 2);
        if (end > len)
            return -1;
        int i = pos + 4;
        while (i < end) {
            unsigned char x = buf[i];
            if (!x) {
                i++;  /* padding byte */
                continue;
            }
            int id = x >> 4;
            if (id == 15)
                break;
            int size = (x & 0x0F) + 1;
            i++;
            if (i + size > end)
                break;
            if (id == g->ast_id && size == 3)
                ast = ((long long)buf[i] << 16) | ((long long)buf[i + 1] << 8) | buf[i + 2];
            else if (id == g->al_id)
                level = buf[i];
            i += size;
        }
        pos = end;
    }
    if (pos > len)
        return -1;
    int padding = 0;
    if (buf[0] & 0x20) {
        padding = buf[len - 1];
        if (!padding || padding > len - pos)
            return -1;
    }
    *pos_out = pos;
    *ast_out = ast;
    *level_out = level;
    *padding_out = padding;
    return 0;
}

/* account_tail: the NACK tracker's highest sequence number and the receiver's direct packet count. */
static int account_tail(Ingress *g, PyObject *receiver, unsigned int seq) {
    if (g->nack != NULL && set_at(g->nack, g->nack_at[NK_MAX_SEQ], s_max_seq, seq) < 0)
        return -1;
    return add_at(receiver, rx_offsets(g, receiver)[RX_DIRECT_PACKETS], s_direct_packets, 1);
}

/* account: the receiver's part (ForwardingReceiver._account for the next packet in order). With the C
 * estimator (sfu/_remb.c) a frame's bytes go to estimator_add and only a new estimate calls Python
 * (``_send_remb``); with aiortc's, ``_remb_frame`` feeds it. */
static int account(Ingress *g, PyObject *receiver, unsigned int seq, unsigned int ts, int marker, Py_ssize_t size,
                   long long ast, double arrival, long long max16) {
    if (stats_add(g, seq, ts, arrival, max16) < 0)
        return -1;
    if (g->remb != NULL && ast >= 0 && Py_TYPE(g->remb) == &EstimatorType) {
        Py_ssize_t at = rx_offsets(g, receiver)[RX_REMB_BYTES];
        if (!marker)
            return add_at(receiver, at, s_remb_bytes, size) < 0 ? -1 : account_tail(g, receiver, seq);
        /* the frame's last packet: the C estimator directly; Python only to send a new estimate */
        long long bytes, bitrate;
        if (get_at(receiver, at, s_remb_bytes, &bytes, NULL) < 0 || set_at(receiver, at, s_remb_bytes, 0) < 0)
            return -1;
        long long arrival_ms = (long long)((arrival + NTP_OFFSET) * 1000.0);
        if (estimator_add(g->remb, arrival_ms, (unsigned int)ast, bytes + size, g->ssrc, &bitrate)) {
            PyObject *ssrcs = estimator_ssrcs(g->remb);
            PyObject *estimate = ssrcs != NULL ? Py_BuildValue("(LN)", bitrate, ssrcs) : NULL;
            int r = estimate != NULL ? call_method_void(receiver, s_send_remb, &estimate, 1) : -1;
            Py_XDECREF(estimate);
            if (r < 0)
                return -1;
        }
    } else if (g->remb != NULL && ast >= 0) {
        if (add_at(receiver, rx_offsets(g, receiver)[RX_REMB_BYTES], s_remb_bytes, size) < 0)
            return -1;
        if (marker) {
            PyObject *a[3] = {PyLong_FromLongLong((long long)((arrival + NTP_OFFSET) * 1000.0)),
                              PyLong_FromLongLong(ast), PyLong_FromUnsignedLong(g->ssrc)};
            int r = (a[0] && a[1] && a[2]) ? call_method_void(receiver, s_remb_frame, a, 3) : -1;
            Py_XDECREF(a[0]);
            Py_XDECREF(a[1]);
            Py_XDECREF(a[2]);
            if (r < 0)
                return -1;
        }
    }
    return account_tail(g, receiver, seq);
}

/* poll_ticker runs the room Ticker's poll() when its next job is due (CLOCK_MONOTONIC is time.monotonic). */
static int poll_ticker(Ingress *g, PyObject *receiver) {
    PyObject *ticker = obj_at(receiver, rx_offsets(g, receiver)[RX_TICKER], s_ticker);
    if (ticker == NULL)
        return -1;
    int r = 0;
    if (ticker != Py_None) {
        if ((PyObject *)Py_TYPE(ticker) != g->ticker_type) {
            g->ticker_at = slot_offset(Py_TYPE(ticker), s_next_due);
            Py_INCREF(Py_TYPE(ticker));
            Py_XSETREF(g->ticker_type, (PyObject *)Py_TYPE(ticker));
        }
        PyObject *due = obj_at(ticker, g->ticker_at, s_next_due);
        double when = due != NULL ? PyFloat_AsDouble(due) : -1.0;
        Py_XDECREF(due);
        if (PyErr_Occurred())
            r = -1;
        else if (clock_seconds(CLOCK_MONOTONIC) >= when)
            r = call_method_void(ticker, s_poll, NULL, 0);
    }
    Py_DECREF(ticker);
    return r;
}

int ingress_match(PyObject *o, unsigned int ssrc) {
    Ingress *g = (Ingress *)o;
    return g->armed && g->ssrc == ssrc;
}

/* ingress_receive handles one RTP datagram of g's SSRC. 1: not for C (the caller hands it to Python unread),
 * 0: done (forwarded, handed to Python after decryption, or dropped), -1: a Python error. */
int ingress_receive(PyObject *o, const unsigned char *data, Py_ssize_t n) {
    Ingress *g = (Ingress *)o;
    unsigned int seq = be16(data + 2);
    long long max16;
    if ((int)(data[1] & 0x7F) != g->pt || n > MAX_DATAGRAM)
        return 1;
    int ready = stream_ready(g, seq, &max16);
    if (ready <= 0) {
        if (ready == 0)
            g->to_python++;
        return ready < 0 ? -1 : 1;
    }
    unsigned char buf[MAX_DATAGRAM];
    memcpy(buf, data, n);
    int len = (int)n;
    if (g->unprotect(g->srtp, buf, &len) != 0) {
        g->dropped++;  /* authentication or replay failure: dropped, as the Python path does */
        return 0;
    }
    double arrival = clock_seconds(CLOCK_REALTIME);  /* time.time() */
    int pos, level, padding;
    long long ast;
    if (parse_header(g, buf, len, &pos, &ast, &level, &padding) < 0)
        return plain_to_python(g, buf, len, arrival);
    unsigned int ts = be32(buf + 4);
    int marker = buf[1] >> 7;
    Py_ssize_t plen = len - pos - padding;
    /* callbacks (REMB, Python forwarding, the ticker) may disarm g, which drops its references: hold our own */
    PyObject *receiver = g->receiver, *producer = g->producer;
    Py_INCREF(receiver);
    Py_INCREF(producer);
    g->packets++;
    int r = account(g, receiver, seq, ts, marker, plen + padding, ast, arrival, max16);
    if (r == 0)
        r = forward(g, producer, buf + pos, plen, seq, ts, marker, padding, level, arrival);
    if (r == 0)
        r = poll_ticker(g, receiver);
    Py_DECREF(receiver);
    Py_DECREF(producer);
    return r;
}

/* ------------------------------------------------------------------------------------------ module */

static PyObject *keyframe_start_py(PyObject *module, PyObject *args) {
    int codec;
    Py_buffer payload;
    if (!PyArg_ParseTuple(args, "iy*", &codec, &payload))
        return NULL;
    int r = keyframe_start(codec, (const unsigned char *)payload.buf, payload.len);
    PyBuffer_Release(&payload);
    return PyBool_FromLong(r);
}

static PyMethodDef ingress_functions[] = {
    {"keyframe_start", keyframe_start_py, METH_VARARGS,
     "keyframe_start(codec, payload) -> the C keyframe test (codec: 0 audio, 1 VP8, 2 H.264, 3 other)"},
    {NULL},
};

int ingress_add_types(PyObject *m) {
    if (contract_reach(reach, sizeof reach / sizeof reach[0]) < 0 ||
        contract_constant("NO_AUDIO_LEVEL", PyLong_FromLong(NO_AUDIO_LEVEL)) < 0 ||
        contract_constant("CODEC_AUDIO", PyLong_FromLong(CODEC_AUDIO)) < 0 ||
        contract_constant("CODEC_VP8", PyLong_FromLong(CODEC_VP8)) < 0 ||
        contract_constant("CODEC_H264", PyLong_FromLong(CODEC_H264)) < 0 ||
        contract_constant("CODEC_OTHER", PyLong_FromLong(CODEC_OTHER)) < 0)
        return -1;
    if (module_add_type(m, &PacketType, "Packet") < 0 || module_add_type(m, &IngressType, "Ingress") < 0)
        return -1;
    return PyModule_AddFunctions(m, ingress_functions);
}
