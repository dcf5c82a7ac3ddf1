/* _rtcp: routine RTCP from the socket to our senders and receivers in C: a subscriber's receiver reports and
 * REMB, a publisher's sender reports.
 *
 * A RtcpRoute belongs to one DTLS transport's Demux (sfu.hooks.demux.MediaDemux.set_rtcp). For an SRTCP
 * datagram it runs srtp_unprotect_rtcp into a stack buffer, checks that every packet of the compound is a
 * sender report (200), receiver report (201), SDES (202) or REMB (206, FMT 15, "REMB"), and then, for each report
 * block about one of our senders (``senders``: aiortc's RtpRouter table, SSRC -> sender), updates the sender's C
 * slot (``report_slot``: loss, jitter, RTT; slot_report in _fanout.c), and for each SSRC of a REMB the slot's
 * ``remb``; a sender without a slot gets ``sender.report_block(fraction_lost, packets_lost, jitter, lsr, dlsr)``
 * and ``sender.remb(bitrate)`` instead. A sender report about one of our receivers (``receivers``: the router's
 * SSRC -> receiver table) calls ``receiver.sender_report(ssrc, lsr)`` (the middle 32 bits of its NTP time, for
 * the LSR of our reports); one about an SSRC nobody receives is ignored, as aiortc's router does. A compound with
 * anything else (NACK, PLI, FIR, BYE, APP, XR, a malformed packet, a sender report when no receiver table was
 * given or about a receiver not of ``receiver_type``) is handed, decrypted, to ``fallback(plain)``: the Python
 * path (aiortc's parser and router). A failed authentication drops it.
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
    PyObject *receivers;    /* dict: SSRC -> receiver (aiortc's RtpRouter.ssrc_table), or NULL: SRs go to Python */
    PyObject *receiver_type;  /* only instances of this class get calls (ForwardingReceiver) */
    PyObject *fallback;     /* fallback(plain): the Python path for anything else */
    unsigned long long packets;    /* compounds handled here */
    unsigned long long to_python;  /* compounds handed to fallback */
    unsigned long long dropped;    /* failed authentication or replay check */
} RtcpRoute;

static PyObject *s_report_block, *s_remb, *s_direct_rtcp, *s_report_slot, *s_sender_report, *s_receiver_rtcp;

/* what this file reaches by name on a sender or a receiver (the C/Python contract, sfu/twins.py) */
static const Reach reach[] = {
    {&s_direct_rtcp, "ForwardingSender", "direct_rtcp", 0},
    {&s_report_slot, "ForwardingSender", "report_slot", 0},
    {&s_report_block, "ForwardingSender", "report_block", 1},
    {&s_remb, "ForwardingSender", "remb", 1},
    {&s_receiver_rtcp, "ForwardingReceiver", "direct_rtcp", 0},
    {&s_sender_report, "ForwardingReceiver", "sender_report", 1},
};

static int RtcpRoute_traverse(RtcpRoute *r, visitproc visit, void *arg) {
    Py_VISIT(r->session);
    Py_VISIT(r->senders);
    Py_VISIT(r->sender_type);
    Py_VISIT(r->receivers);
    Py_VISIT(r->receiver_type);
    Py_VISIT(r->fallback);
    return 0;
}

static int RtcpRoute_clear(RtcpRoute *r) {
    Py_CLEAR(r->session);
    Py_CLEAR(r->senders);
    Py_CLEAR(r->sender_type);
    Py_CLEAR(r->receivers);
    Py_CLEAR(r->receiver_type);
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

/* RtcpRoute(session, srtp_address, unprotect_rtcp_address, senders, sender_type, fallback[, receivers,
 * receiver_type]) */
static int RtcpRoute_init(RtcpRoute *r, PyObject *args, PyObject *kw) {
    PyObject *session, *senders, *sender_type, *fallback, *receivers = NULL, *receiver_type = NULL;
    unsigned long long srtp, unprotect;
    if (!PyArg_ParseTuple(args, "OKKO!O!O|O!O!", &session, &srtp, &unprotect, &PyDict_Type, &senders, &PyType_Type,
                          &sender_type, &fallback, &PyDict_Type, &receivers, &PyType_Type, &receiver_type))
        return -1;
    if ((receivers == NULL) != (receiver_type == NULL)) {
        PyErr_SetString(PyExc_TypeError, "RtcpRoute: receivers and receiver_type go together");
        return -1;
    }
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
    Py_XINCREF(receivers);
    r->receivers = receivers;
    Py_XINCREF(receiver_type);
    r->receiver_type = receiver_type;
    return 0;
}

/* receiver_for returns a borrowed reference to the receiver of `ssrc` (NULL: none, or an error set), and sets
 * *foreign when there is one that is not of receiver_type. */
static PyObject *receiver_for(RtcpRoute *r, unsigned int ssrc, int *foreign) {
    *foreign = 0;
    PyObject *key = PyLong_FromUnsignedLong(ssrc);
    if (key == NULL)
        return NULL;
    PyObject *o = PyDict_GetItemWithError(r->receivers, key);
    Py_DECREF(key);
    if (o != NULL && !PyObject_TypeCheck(o, (PyTypeObject *)r->receiver_type)) {
        *foreign = 1;
        return NULL;
    }
    return o;
}

/* routine: 1 when every packet of the compound is one C handles (SR, RR, SDES, REMB) and well formed. */
static int routine(RtcpRoute *r, const unsigned char *buf, int len) {
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
        } else if (pt == 200) {
            int foreign;
            if (r->receivers == NULL || size < 28 + 24 * count)
                return 0;
            if (receiver_for(r, be32(buf + pos + 4), &foreign) == NULL && (foreign || PyErr_Occurred())) {
                PyErr_Clear();
                return 0;  /* a receiver of aiortc's own (or a failed lookup): Python routes it */
            }
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

/* report_blocks hands `count` report blocks (24 octets each, from `blocks`) to our senders' C slots, or calls the
 * senders without one; 0, or -1 with an exception set. */
static int report_blocks(RtcpRoute *r, const unsigned char *blocks, int count) {
    for (int i = 0; i < count; i++) {
        const unsigned char *b = blocks + 24 * i;
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
    return 0;
}

/* sender_report hands one SR (at `p`) to our receiver of its SSRC, if any: ``receiver.sender_report(ssrc, lsr)``
 * with lsr the middle 32 bits of its NTP timestamp; 0, or -1 with an exception set. */
static int sender_report(RtcpRoute *r, const unsigned char *p) {
    int foreign;
    unsigned int ssrc = be32(p + 4);
    PyObject *receiver = receiver_for(r, ssrc, &foreign);
    if (receiver == NULL)
        return PyErr_Occurred() ? -1 : 0;  /* nobody receives it (routine() sent a foreign one to Python) */
    Py_INCREF(receiver);
    unsigned int lsr = (be32(p + 8) << 16) | (be32(p + 12) >> 16);
    int rc = add_ll(receiver, s_receiver_rtcp, 1);
    if (rc == 0)
        rc = call(receiver, s_sender_report, Py_BuildValue("(II)", ssrc, lsr));
    Py_DECREF(receiver);
    return rc;
}

/* dispatch hands a routine compound to our senders and receivers; 0, or -1 with an exception set. */
static int dispatch(RtcpRoute *r, const unsigned char *buf, int len) {
    int pos = 0;
    while (pos < len) {
        int count = buf[pos] & 0x1F, pt = buf[pos + 1];
        int size = 4 * ((int)be16(buf + pos + 2) + 1);
        if (pt == 201) {
            if (report_blocks(r, buf + pos + 8, count) < 0)
                return -1;
        } else if (pt == 200) {
            if (sender_report(r, buf + pos) < 0 || report_blocks(r, buf + pos + 28, count) < 0)
                return -1;
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
    if (routine(r, buf, len)) {
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
    .tp_doc = "RtcpRoute(session, srtp_address, unprotect_rtcp_address, senders, sender_type, fallback[, receivers, "
              "receiver_type]): routine SRTCP (SR, RR, SDES, REMB) of one transport to its senders and receivers in C",
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
