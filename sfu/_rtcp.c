/* _rtcp: a subscriber's routine RTCP (receiver reports, REMB) from the socket to its senders in C.
 *
 * A RtcpRoute belongs to one DTLS transport's Demux (sfu.hooks.demux.MediaDemux.set_rtcp). For an SRTCP
 * datagram it runs srtp_unprotect_rtcp into a stack buffer, checks that every packet of the compound is a
 * receiver report (201), SDES (202) or REMB (206, FMT 15, "REMB"), and then, for each report block about one of
 * our senders (``senders``: aiortc's RtpRouter table, SSRC -> sender), updates the sender's C slot
 * (``report_slot``: loss, jitter, RTT; slot_report in _fanout.c), and for each SSRC of a REMB the slot's ``remb``;
 * a sender without a slot gets ``sender.report_block(fraction_lost, packets_lost, jitter, lsr, dlsr)`` and
 * ``sender.remb(bitrate)`` instead. A compound with
 * anything else (SR, NACK, PLI, FIR, BYE, APP, XR, a malformed packet) is handed, decrypted, to
 * ``fallback(plain)``: the Python path (aiortc's parser and router). A failed authentication drops it.
 *
 * Ownership: the event loop's thread, under the GIL, like the Demux that calls it.
 */
#include "_fanout.h"

typedef int (*unprotect_rtcp_fn)(void *ctx, void *srtcp_hdr, int *len_ptr);

#define MAX_RTCP 2048
#define REMB_MAX (1ULL << 53)  /* bit/s: the largest REMB bitrate taken, as sfu.rtp.REMB_MAX */

typedef struct RtcpRoute {
    PyObject_HEAD
    PyObject *session;      /* pylibsrtp Session: keeps the srtp_t alive */
    void *srtp;
    unprotect_rtcp_fn unprotect;
    PyObject *senders;      /* dict: SSRC -> sender (aiortc's RtpRouter.senders, kept up to date by aiortc) */
    PyObject *sender_type;  /* only instances of this class get calls (ForwardingSender) */
    PyObject *fallback;     /* fallback(plain): the Python path for anything else */
    unsigned long long packets;    /* compounds handled here */
    unsigned long long to_python;  /* compounds handed to fallback */
    unsigned long long dropped;    /* failed authentication or replay check */
} RtcpRoute;

static PyObject *s_report_block, *s_remb, *s_direct_rtcp, *s_report_slot;

/* what this file reaches by name on a sender (the C/Python contract, sfu/twins.py) */
static const Reach reach[] = {
    {&s_direct_rtcp, "ForwardingSender", "direct_rtcp", 0},
    {&s_report_slot, "ForwardingSender", "report_slot", 0},
    {&s_report_block, "ForwardingSender", "report_block", 1},
    {&s_remb, "ForwardingSender", "remb", 1},
};

static int RtcpRoute_traverse(RtcpRoute *r, visitproc visit, void *arg) {
    Py_VISIT(r->session);
    Py_VISIT(r->senders);
    Py_VISIT(r->sender_type);
    Py_VISIT(r->fallback);
    return 0;
}

static int RtcpRoute_clear(RtcpRoute *r) {
    Py_CLEAR(r->session);
    Py_CLEAR(r->senders);
    Py_CLEAR(r->sender_type);
    Py_CLEAR(r->fallback);
    r->srtp = NULL;
    r->unprotect = NULL;
    return 0;
}

static void RtcpRoute_dealloc(RtcpRoute *r) {
    PyObject_GC_UnTrack(r);
    RtcpRoute_clear(r);
    Py_TYPE(r)->tp_free((PyObject *)r);
}

/* RtcpRoute(session, srtp_address, unprotect_rtcp_address, senders, sender_type, fallback) */
static int RtcpRoute_init(RtcpRoute *r, PyObject *args, PyObject *kw) {
    PyObject *session, *senders, *sender_type, *fallback;
    unsigned long long srtp, unprotect;
    if (!PyArg_ParseTuple(args, "OKKO!O!O", &session, &srtp, &unprotect, &PyDict_Type, &senders, &PyType_Type,
                          &sender_type, &fallback))
        return -1;
    if (!srtp || !unprotect || !PyCallable_Check(fallback)) {
        PyErr_SetString(PyExc_ValueError, "RtcpRoute: bad SRTP addresses or fallback");
        return -1;
    }
    RtcpRoute_clear(r);
    Py_INCREF(session);
    r->session = session;
    r->srtp = (void *)(uintptr_t)srtp;
    r->unprotect = (unprotect_rtcp_fn)(uintptr_t)unprotect;
    Py_INCREF(senders);
    r->senders = senders;
    Py_INCREF(sender_type);
    r->sender_type = sender_type;
    Py_INCREF(fallback);
    r->fallback = fallback;
    return 0;
}

/* routine: 1 when every packet of the compound is one C handles (RR, SDES, REMB) and well formed. */
static int routine(const unsigned char *buf, int len) {
    int pos = 0;
    if (len < 4)
        return 0;
    while (pos < len) {
        if (len - pos < 4 || (buf[pos] & 0xC0) != 0x80)
            return 0;
        int count = buf[pos] & 0x1F, pt = buf[pos + 1];
        int size = 4 * ((int)be16(buf + pos + 2) + 1);
        if (pos + size > len || (buf[pos] & 0x20))
            return 0;  /* truncated, or padding (aiortc's parser decides) */
        if (pt == 201) {
            if (size < 8 + 24 * count)
                return 0;
        } else if (pt == 206) {
            /* REMB: FMT 15, sender SSRC, media SSRC 0, "REMB", num SSRCs, exp/mantissa, SSRCs */
            if (count != 15 || size < 20 || memcmp(buf + pos + 12, "REMB", 4) != 0)
                return 0;
            if (size < 20 + 4 * (int)buf[pos + 16])
                return 0;
        } else if (pt != 202) {
            return 0;
        }
        pos += size;
    }
    return 1;
}

/* sender_for returns a borrowed reference to our sender for `ssrc`, or NULL (none, or not ours). */
static PyObject *sender_for(RtcpRoute *r, unsigned int ssrc) {
    PyObject *key = PyLong_FromUnsignedLong(ssrc);
    if (key == NULL)
        return NULL;
    PyObject *s = PyDict_GetItemWithError(r->senders, key);
    Py_DECREF(key);
    if (s == NULL || !PyObject_TypeCheck(s, (PyTypeObject *)r->sender_type))
        return NULL;
    return s;
}

static int call(PyObject *o, PyObject *name, PyObject *args) {
    if (args == NULL)
        return -1;
    PyObject *method = PyObject_GetAttr(o, name);
    PyObject *r = method != NULL ? PyObject_Call(method, args, NULL) : NULL;
    Py_XDECREF(method);
    Py_DECREF(args);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* report_slot: a new reference to the sender's C slot (``report_slot``), or NULL (none; or an error set). */
static Slot *report_slot(PyObject *sender) {
    PyObject *o = PyObject_GetAttr(sender, s_report_slot);
    if (o == NULL) {
        if (PyErr_ExceptionMatches(PyExc_AttributeError))
            PyErr_Clear();  /* a sender without one: called instead */
        return NULL;
    }
    if (Py_TYPE(o) != &SlotType) {
        Py_DECREF(o);
        return NULL;
    }
    return (Slot *)o;
}

/* remb_bitrate: a REMB's mantissa (18 bits) x 2^exponent (6 bits), capped at REMB_MAX (sfu.rtp.unpack_remb) so
 * that no exponent overflows 64 bits or makes the slot's long long negative. `fci` points at "REMB". */
static unsigned long long remb_bitrate(const unsigned char *fci) {
    unsigned long long mantissa = ((unsigned long long)(fci[5] & 0x03) << 16) | ((unsigned long long)fci[6] << 8) |
                                  fci[7];
    int exponent = fci[5] >> 2;  /* 0..63 */
    return mantissa > (REMB_MAX >> exponent) ? REMB_MAX : mantissa << exponent;
}

/* dispatch updates the senders' C slots for a routine compound (or calls the senders without one); 0, or -1
 * with an exception set. */
static int dispatch(RtcpRoute *r, const unsigned char *buf, int len) {
    int pos = 0;
    while (pos < len) {
        int count = buf[pos] & 0x1F, pt = buf[pos + 1];
        int size = 4 * ((int)be16(buf + pos + 2) + 1);
        if (pt == 201) {
            for (int i = 0; i < count; i++) {
                const unsigned char *b = buf + pos + 8 + 24 * i;
                PyObject *s = sender_for(r, be32(b));
                if (s == NULL) {
                    if (PyErr_Occurred())
                        return -1;
                    continue;
                }
                Py_INCREF(s);
                int lost = (int)(((unsigned int)b[5] << 16) | ((unsigned int)b[6] << 8) | b[7]);
                if (lost & 0x800000)
                    lost -= 0x1000000;  /* 24-bit signed */
                int rc = add_ll(s, s_direct_rtcp, 1);
                Slot *slot = rc == 0 ? report_slot(s) : NULL;
                if (slot != NULL) {
                    slot_report(slot, (int)b[4], lost, be32(b + 12), be32(b + 16), be32(b + 20),
                                clock_seconds(CLOCK_REALTIME));
                    Py_DECREF(slot);
                } else if (rc == 0 && !PyErr_Occurred()) {
                    rc = call(s, s_report_block, Py_BuildValue("(iiIII)", (int)b[4], lost, be32(b + 12), be32(b + 16),
                                                               be32(b + 20)));
                } else {
                    rc = -1;
                }
                Py_DECREF(s);
                if (rc < 0)
                    return -1;
            }
        } else if (pt == 206) {
            const unsigned char *f = buf + pos + 12;
            int n = f[4];
            unsigned long long bitrate = remb_bitrate(f);
            for (int i = 0; i < n; i++) {
                PyObject *s = sender_for(r, be32(f + 8 + 4 * i));
                if (s == NULL) {
                    if (PyErr_Occurred())
                        return -1;
                    continue;
                }
                Py_INCREF(s);
                int rc = add_ll(s, s_direct_rtcp, 1);
                Slot *slot = rc == 0 ? report_slot(s) : NULL;
                if (slot != NULL) {
                    slot->remb = (long long)bitrate;
                    Py_DECREF(slot);
                } else if (rc == 0 && !PyErr_Occurred()) {
                    rc = call(s, s_remb, Py_BuildValue("(K)", bitrate));
                } else {
                    rc = -1;
                }
                Py_DECREF(s);
                if (rc < 0)
                    return -1;
            }
        }
        pos += size;
    }
    return 0;
}

int rtcp_route_receive(PyObject *route, const unsigned char *data, Py_ssize_t n) {
    RtcpRoute *r = (RtcpRoute *)route;
    if (r->srtp == NULL || n > MAX_RTCP)
        return 1;
    unsigned char buf[MAX_RTCP];
    memcpy(buf, data, n);
    int len = (int)n;
    if (r->unprotect(r->srtp, buf, &len) != 0) {
        r->dropped++;
        return 0;
    }
    Py_INCREF(route);  /* a sender's callback may drop the Demux's reference */
    int rc;
    if (routine(buf, len)) {
        r->packets++;
        rc = dispatch(r, buf, len);
    } else {
        r->to_python++;
        PyObject *plain = PyBytes_FromStringAndSize((const char *)buf, len);
        PyObject *res = plain != NULL ? PyObject_CallOneArg(r->fallback, plain) : NULL;
        Py_XDECREF(plain);
        Py_XDECREF(res);
        rc = res == NULL ? -1 : 0;
    }
    Py_DECREF(route);
    return rc;
}

static PyMemberDef RtcpRoute_members[] = {
    {"packets", T_ULONGLONG, offsetof(RtcpRoute, packets), READONLY, "packets: compounds handled in C"},
    {"to_python", T_ULONGLONG, offsetof(RtcpRoute, to_python), READONLY, "to_python: compounds handed to fallback"},
    {"dropped", T_ULONGLONG, offsetof(RtcpRoute, dropped), READONLY, "dropped: failed authentication/replay"},
    {NULL},
};

PyTypeObject RtcpRouteType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sfu._fanout.RtcpRoute",
    .tp_doc = "RtcpRoute(session, srtp_address, unprotect_rtcp_address, senders, sender_type, fallback): "
              "routine SRTCP (RR, SDES, REMB) of one transport to its senders in C",
    .tp_basicsize = sizeof(RtcpRoute),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)RtcpRoute_init,
    .tp_dealloc = (destructor)RtcpRoute_dealloc,
    .tp_traverse = (traverseproc)RtcpRoute_traverse,
    .tp_clear = (inquiry)RtcpRoute_clear,
    .tp_members = RtcpRoute_members,
};

int rtcp_add_types(PyObject *m) {
    if (contract_reach(reach, sizeof reach / sizeof reach[0]) < 0 ||
        contract_constant("REMB_MAX", PyLong_FromUnsignedLongLong(REMB_MAX)) < 0)
        return -1;
    if (module_add_type(m, &RtcpRouteType, "RtcpRoute") < 0)
        return -1;
    return 0;
}
