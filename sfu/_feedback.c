/* _feedback: a publisher transport's receiver reports and REMB built, protected and sent in C.
 *
 * A Feedback belongs to one sfu.hooks.feedback.ReceiverFeedback (one per DTLS transport that receives media),
 * which binds it to the nominated ICE pair and the transport's SRTP session like a Reporter (``set_route``;
 * ``clear_route`` when either changes) and calls it from its Ticker job and its receivers:
 *
 * ``send_reports(entries, now)`` builds what aiortc's receiver-report loop (``RTCRtpReceiver._run_rtcp``) sends
 * for each receiving m-line, one RR per entry, all in one compound datagram: the entry's RTCP SSRC, then a
 * report block per SSRC of its statistics table (``RtpStreamStats``, in the table's order): fraction lost since
 * the previous report (the priors are read and written as the Python property does), cumulative loss clamped to
 * 24 signed bits, extended highest sequence number, jitter, and LSR/DLSR from the receiver's sender-report times.
 * The bytes are those of sfu.rtp.receiver_reports (the Python twin), which builds aiortc's own packets.
 *
 * ``send_remb(ssrc, bitrate, ssrcs)`` builds aiortc's REMB (``RtcpPsfbPacket`` FMT 15 with ``pack_remb_fci``),
 * the bytes of sfu.rtp.remb_packet, and sends it.
 *
 * entries: tuple of (rtcp_ssrc int, streams dict SSRC -> RtpStreamStats, lsr dict SSRC -> int, lsr_time dict
 * SSRC -> float); an entry without streams sends nothing, as aiortc's loop.
 * Both return the octets sent, 0 when there was nothing to send (or the send failed: ``errors`` counts it, like
 * a lost packet), -1 when Python must send it itself (no route, too large, a value C does not take).
 *
 * Ownership: the event loop's thread, under the GIL.
 */
#include "_fanout.h"

#define MAX_BLOCKS 31  /* report blocks in one RR: the header's 5-bit count (aiortc's packet would overflow it) */
#define PACKETS_LOST_MIN (-(1LL << 23))
#define PACKETS_LOST_MAX ((1LL << 23) - 1)

/* an entry of send_reports(): built by sfu.hooks.feedback (CONTRACT["layouts"]["rr_entry"], sfu/twins.py) */
enum { RR_SSRC, RR_STREAMS, RR_LSR, RR_LSR_TIME, RR_FIELDS };
static const char *const rr_fields[RR_FIELDS] = {"rtcp_ssrc", "streams", "lsr", "lsr_time"};

static PyObject *s_base_seq, *s_max16, *s_cycles, *s_packets_received, *s_jitter_q4, *s_expected_prior,
    *s_received_prior;

/* what this file reaches by name (the C/Python contract, sfu/twins.py) */
static const Reach reach[] = {
    {&s_base_seq, "RtpStreamStats", "base_seq", 0},
    {&s_max16, "RtpStreamStats", "max16", 0},
    {&s_cycles, "RtpStreamStats", "cycles", 0},
    {&s_packets_received, "RtpStreamStats", "packets_received", 0},
    {&s_jitter_q4, "RtpStreamStats", "_jitter_q4", 0},
    {&s_expected_prior, "RtpStreamStats", "_expected_prior", 0},
    {&s_received_prior, "RtpStreamStats", "_received_prior", 0},
};

typedef struct Feedback {
    PyObject_HEAD
    Route route;  /* its protect is srtp_protect_rtcp */
    unsigned long long reports;  /* compound receiver reports sent */
    unsigned long long rembs;    /* REMBs sent */
    unsigned long long errors;   /* protect or send failures */
} Feedback;

static int Feedback_traverse(Feedback *f, visitproc visit, void *arg) {
    return route_traverse(&f->route, visit, arg);
}

static int Feedback_clear(Feedback *f) {
    route_clear(&f->route);
    return 0;
}

static void Feedback_dealloc(Feedback *f) {
    PyObject_GC_UnTrack(f);
    route_clear(&f->route);
    Py_TYPE(f)->tp_free((PyObject *)f);
}

/* set_route(sock, family, host, port, session, srtp_address, protect_rtcp_address) -> bool */
static PyObject *Feedback_set_route(Feedback *f, PyObject *args) {
    return route_set(&f->route, args);
}

static PyObject *Feedback_clear_route(Feedback *f, PyObject *unused) {
    route_clear(&f->route);
    Py_RETURN_NONE;
}

/* get_ll reads o.name as a C integer: 0, 1 when it is None (*v = 0), -1 (an exception set: not an int, too big) */
static int get_ll(PyObject *o, PyObject *name, long long *v) {
    PyObject *x = PyObject_GetAttr(o, name);
    if (x == NULL)
        return -1;
    if (x == Py_None) {
        Py_DECREF(x);
        *v = 0;
        return 1;
    }
    *v = PyLong_AsLongLong(x);
    Py_DECREF(x);
    return *v == -1 && PyErr_Occurred() ? -1 : 0;
}

static int set_ll(PyObject *o, PyObject *name, long long v) {
    PyObject *x = PyLong_FromLongLong(v);
    if (x == NULL)
        return -1;
    int r = PyObject_SetAttr(o, name, x);
    Py_DECREF(x);
    return r;
}

/* block writes one report block (24 bytes) for `ssrc` from its RtpStreamStats `st`, as aiortc's RR loop reads
 * RtpStreamStats's properties (fraction_lost starts a new interval); 0, or -1 with an exception set. */
static int block(unsigned char *p, unsigned int ssrc, PyObject *st, PyObject *lsrs, PyObject *lsr_times,
                 double now) {
    long long base, max16, cycles, received, q4, exp_prior, rec_prior;
    int none = get_ll(st, s_base_seq, &base);
    if (none < 0 || get_ll(st, s_max16, &max16) < 0 || get_ll(st, s_cycles, &cycles) < 0 ||
        get_ll(st, s_packets_received, &received) < 0 || get_ll(st, s_jitter_q4, &q4) < 0 ||
        get_ll(st, s_expected_prior, &exp_prior) < 0 || get_ll(st, s_received_prior, &rec_prior) < 0)
        return -1;
    long long expected = none ? 0 : cycles + max16 - base + 1;
    long long expected_interval = expected - exp_prior, received_interval = received - rec_prior;
    if (set_ll(st, s_expected_prior, expected) < 0 || set_ll(st, s_received_prior, received) < 0)
        return -1;
    long long lost_interval = expected_interval - received_interval;
    int fraction = 0;
    if (expected_interval > 0 && lost_interval > 0) {
        long long f = (lost_interval << 8) / expected_interval;
        fraction = f > 255 ? 255 : (int)f;
    }
    long long lost = expected - received;
    lost = lost < PACKETS_LOST_MIN ? PACKETS_LOST_MIN : lost > PACKETS_LOST_MAX ? PACKETS_LOST_MAX : lost;
    unsigned int lsr = 0, dlsr = 0;
    PyObject *key = PyLong_FromUnsignedLong(ssrc);
    if (key == NULL)
        return -1;
    PyObject *l = PyDict_GetItemWithError(lsrs, key);  /* borrowed */
    if (l != NULL) {
        PyObject *t = PyDict_GetItemWithError(lsr_times, key);  /* aiortc: a KeyError; here: no DLSR */
        unsigned long v = PyLong_AsUnsignedLong(l);
        if (PyErr_Occurred() || v > 0xFFFFFFFFUL) {
            Py_DECREF(key);
            return -1;
        }
        lsr = (unsigned int)v;
        if (t != NULL) {
            double delay = now - PyFloat_AsDouble(t);
            if (PyErr_Occurred()) {
                Py_DECREF(key);
                return -1;
            }
            if (delay > 0 && delay < 65536)
                dlsr = (unsigned int)(delay * 65536);  /* int(): truncation toward zero */
        }
    }
    Py_DECREF(key);
    if (PyErr_Occurred())
        return -1;
    put32(p, ssrc);
    p[4] = (unsigned char)fraction;
    p[5] = (unsigned char)((unsigned long long)lost >> 16);
    p[6] = (unsigned char)((unsigned long long)lost >> 8);
    p[7] = (unsigned char)lost;
    put32(p + 8, (unsigned int)((cycles + max16) & 0xFFFFFFFFLL));
    put32(p + 12, (unsigned int)((q4 >> 4) & 0xFFFFFFFFLL));
    put32(p + 16, lsr);
    put32(p + 20, dlsr);
    return 0;
}

/* send_reports(entries, now) -> octets sent, 0 nothing to report (or lost), -1 for Python to send */
static PyObject *Feedback_send_reports(Feedback *f, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyTuple_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "send_reports(entries: tuple, now: float)");
        return NULL;
    }
    double now = PyFloat_AsDouble(args[1]);
    if (PyErr_Occurred())
        return NULL;
    if (f->route.srtp == NULL)
        return PyLong_FromLong(-1);
    PyObject *entries = args[0];
    int len = 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(entries); i++) {  /* first the size and the types: Python may send it */
        PyObject *e = PyTuple_GET_ITEM(entries, i);
        if (!PyTuple_Check(e) || PyTuple_GET_SIZE(e) != RR_FIELDS || !PyLong_Check(PyTuple_GET_ITEM(e, RR_SSRC)) ||
            !PyDict_Check(PyTuple_GET_ITEM(e, RR_STREAMS)) || !PyDict_Check(PyTuple_GET_ITEM(e, RR_LSR)) ||
            !PyDict_Check(PyTuple_GET_ITEM(e, RR_LSR_TIME)))
            return PyLong_FromLong(-1);
        Py_ssize_t n = PyDict_GET_SIZE(PyTuple_GET_ITEM(e, RR_STREAMS));
        if (n > MAX_BLOCKS)
            return PyLong_FromLong(-1);
        if (n)
            len += 8 + 24 * (int)n;
    }
    if (!len)
        return PyLong_FromLong(0);
    if (len > MAX_PLAIN)
        return PyLong_FromLong(-1);
    unsigned char buf[BUF_SIZE];
    int pos = 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(entries); i++) {
        PyObject *e = PyTuple_GET_ITEM(entries, i), *streams = PyTuple_GET_ITEM(e, RR_STREAMS);
        Py_ssize_t n = PyDict_GET_SIZE(streams);
        if (!n)
            continue;
        unsigned long sender = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(e, RR_SSRC));
        if (PyErr_Occurred() || sender > 0xFFFFFFFFUL) {
            PyErr_Clear();
            return PyLong_FromLong(-1);  /* nothing read yet from this entry's statistics */
        }
        unsigned char *p = buf + pos;
        Py_ssize_t it = 0, k = 0;
        PyObject *key, *st;
        while (PyDict_Next(streams, &it, &key, &st)) {
            unsigned long ssrc = PyLong_AsUnsignedLong(key);
            if (PyErr_Occurred() || ssrc > 0xFFFFFFFFUL ||
                block(p + 8 + 24 * k, (unsigned int)ssrc, st, PyTuple_GET_ITEM(e, RR_LSR),
                      PyTuple_GET_ITEM(e, RR_LSR_TIME), now) < 0)
                return NULL;  /* not what Python builds either: an error */
            k++;
        }
        if (k != n) {
            PyErr_SetString(PyExc_RuntimeError, "send_reports: a statistics table changed while read");
            return NULL;
        }
        int words = (int)(1 + 6 * n);
        p[0] = (unsigned char)(0x80 | n);
        p[1] = 201;
        p[2] = (unsigned char)(words >> 8);
        p[3] = (unsigned char)words;
        put32(p + 4, (unsigned int)sender);
        pos += 8 + 24 * (int)n;
    }
    int sent;
    if (route_send(&f->route, buf, pos, &sent) < 0) {
        f->errors++;
        return PyLong_FromLong(0);
    }
    f->reports++;
    return PyLong_FromLong(sent);
}

/* send_remb(ssrc, bitrate, ssrcs) -> octets sent, 0 lost, -1 for Python to send */
static PyObject *Feedback_send_remb(Feedback *f, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "send_remb(ssrc: int, bitrate: int, ssrcs: sequence of int)");
        return NULL;
    }
    if (f->route.srtp == NULL)
        return PyLong_FromLong(-1);
    unsigned long ssrc = PyLong_AsUnsignedLong(args[0]);
    unsigned long long bitrate = PyLong_AsUnsignedLongLong(args[1]);
    if (PyErr_Occurred() || ssrc > 0xFFFFFFFFUL) {
        PyErr_Clear();
        return PyLong_FromLong(-1);  /* aiortc's error to raise, or its packet to build: Python's */
    }
    PyObject *seq = PySequence_Fast(args[2], "send_remb: ssrcs must be a sequence");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    unsigned int exponent = 0;
    unsigned long long mantissa = bitrate;
    while (mantissa > 0x3FFFF) {
        mantissa >>= 1;
        exponent++;
    }
    if (n > 255 || exponent > 63 || 20 + 4 * n > MAX_PLAIN) {
        Py_DECREF(seq);
        return PyLong_FromLong(-1);
    }
    unsigned char buf[BUF_SIZE];
    int len = 20 + 4 * (int)n, words = len / 4 - 1;
    buf[0] = 0x80 | 15;
    buf[1] = 206;
    buf[2] = (unsigned char)(words >> 8);
    buf[3] = (unsigned char)words;
    put32(buf + 4, (unsigned int)ssrc);
    put32(buf + 8, 0);
    memcpy(buf + 12, "REMB", 4);
    buf[16] = (unsigned char)n;
    buf[17] = (unsigned char)((exponent << 2) | (unsigned int)(mantissa >> 16));
    buf[18] = (unsigned char)(mantissa >> 8);
    buf[19] = (unsigned char)mantissa;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned long v = PyLong_AsUnsignedLong(PySequence_Fast_GET_ITEM(seq, i));
        if (PyErr_Occurred() || v > 0xFFFFFFFFUL) {
            PyErr_Clear();
            Py_DECREF(seq);
            return PyLong_FromLong(-1);
        }
        put32(buf + 20 + 4 * i, (unsigned int)v);
    }
    Py_DECREF(seq);
    int sent;
    if (route_send(&f->route, buf, len, &sent) < 0) {
        f->errors++;
        return PyLong_FromLong(0);
    }
    f->rembs++;
    return PyLong_FromLong(sent);
}

static PyObject *Feedback_get_routed(Feedback *f, void *closure) {
    return PyBool_FromLong(f->route.srtp != NULL);
}

static PyGetSetDef Feedback_getset[] = {
    {"routed", (getter)Feedback_get_routed, NULL, "routed: a route (socket, address, SRTP session) is bound", NULL},
    {NULL},
};

static PyMemberDef Feedback_members[] = {
    {"reports", T_ULONGLONG, offsetof(Feedback, reports), READONLY, "reports: compound receiver reports sent"},
    {"rembs", T_ULONGLONG, offsetof(Feedback, rembs), READONLY, "rembs: REMBs sent"},
    {"errors", T_ULONGLONG, offsetof(Feedback, errors), READONLY, "errors: protect or send failures"},
    {NULL},
};

static PyMethodDef Feedback_methods[] = {
    {"set_route", (PyCFunction)Feedback_set_route, METH_VARARGS,
     "set_route(sock, family, host, port, session, srtp_address, protect_rtcp_address) -> bool"},
    {"clear_route", (PyCFunction)Feedback_clear_route, METH_NOARGS, "clear_route forgets the route"},
    {"send_reports", (PyCFunction)(void (*)(void))Feedback_send_reports, METH_FASTCALL,
     "send_reports(entries, now) -> octets sent, 0 (nothing to report, or lost) or -1 (Python sends it)"},
    {"send_remb", (PyCFunction)(void (*)(void))Feedback_send_remb, METH_FASTCALL,
     "send_remb(ssrc, bitrate, ssrcs) -> octets sent, 0 (lost) or -1 (Python sends it)"},
    {NULL},
};

PyTypeObject FeedbackType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sfu._fanout.Feedback",
    .tp_doc = "Feedback: a publisher transport's receiver reports and REMB built, protected and sent in C",
    .tp_basicsize = sizeof(Feedback),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)Feedback_dealloc,
    .tp_traverse = (traverseproc)Feedback_traverse,
    .tp_clear = (inquiry)Feedback_clear,
    .tp_methods = Feedback_methods,
    .tp_members = Feedback_members,
    .tp_getset = Feedback_getset,
};

int feedback_add_types(PyObject *m) {
    if (contract_reach(reach, sizeof reach / sizeof reach[0]) < 0 ||
        contract_layout("rr_entry", rr_fields, RR_FIELDS) < 0)
        return -1;
    if (module_add_type(m, &FeedbackType, "Feedback") < 0)
        return -1;
    return 0;
}
