/* _report: a transport's sender reports built, protected and sent in C.
 *
 * A Reporter belongs to one sfu.aiortc_hooks.PacketWire, which binds it to the nominated ICE pair and the
 * transport's SRTP session like a Slot (``set_route``; ``clear_route`` when either changes) and calls ``send``
 * from its Ticker job. ``send(entries, now)`` builds the compound packet sfu.rtp.sender_reports builds, byte for
 * byte: an SR per entry whose slot has sent media (NTP arrival time and output RTP timestamp of the slot's last
 * packet, its packet and payload-octet counts), then one SDES (CNAME) per reported SSRC. It sets each reported
 * slot's ``lsr`` (middle 32 bits of the SR's NTP time) and ``lsr_time`` (`now`) for the round-trip time (the
 * sender's attributes of those names read the slot), protects the packet with srtp_protect_rtcp in a stack
 * buffer and sends it on the pair's socket.
 *
 * entries: tuple of (sender, Slot, ssrc, cname bytes); cname at most 255 bytes.
 * Returns the octets sent, 0 when no slot has sent media (or the send failed: ``errors`` counts it, like a lost
 * packet), -1 when Python must send it itself (no route, or larger than one protected datagram).
 *
 * Ownership: the event loop's thread, under the GIL (the PacketWire's).
 */
#include "_fanout.h"

#define RTCP_BUF BUF_SIZE  /* MAX_PLAIN plus the SRTCP index, tag and MKI libsrtp appends */

typedef struct Reporter {
    PyObject_HEAD
    PyObject *sock;     /* socket.socket, descriptor read per send (closed: fileno() == -1) */
    PyObject *session;  /* pylibsrtp Session keeping the srtp_t alive */
    void *srtp;
    protect_fn protect_rtcp;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    unsigned long long sent;    /* compound packets sent */
    unsigned long long errors;  /* protect or send failures */
} Reporter;

static void reporter_clear_route(Reporter *r) {
    Py_CLEAR(r->sock);
    Py_CLEAR(r->session);
    r->srtp = NULL;
    r->protect_rtcp = NULL;
}

static int Reporter_traverse(Reporter *r, visitproc visit, void *arg) {
    Py_VISIT(r->sock);
    Py_VISIT(r->session);
    return 0;
}

static int Reporter_clear(Reporter *r) {
    reporter_clear_route(r);
    return 0;
}

static void Reporter_dealloc(Reporter *r) {
    PyObject_GC_UnTrack(r);
    reporter_clear_route(r);
    Py_TYPE(r)->tp_free((PyObject *)r);
}

/* set_route(sock, family, host, port, session, srtp_address, protect_rtcp_address) -> bool */
static PyObject *Reporter_set_route(Reporter *r, PyObject *args) {
    PyObject *sock, *session;
    int family, port;
    const char *host;
    unsigned long long srtp, protect;
    if (!PyArg_ParseTuple(args, "OisiOKK", &sock, &family, &host, &port, &session, &srtp, &protect))
        return NULL;
    struct sockaddr_storage addr;
    socklen_t len;
    if (route_addr(family, host, port, &addr, &len) < 0 || !srtp || !protect)
        Py_RETURN_FALSE;
    reporter_clear_route(r);
    Py_INCREF(sock);
    r->sock = sock;
    Py_INCREF(session);
    r->session = session;
    r->srtp = (void *)(uintptr_t)srtp;
    r->protect_rtcp = (protect_fn)(uintptr_t)protect;
    r->addr = addr;
    r->addr_len = len;
    Py_RETURN_TRUE;
}

static PyObject *Reporter_clear_route(Reporter *r, PyObject *unused) {
    reporter_clear_route(r);
    Py_RETURN_NONE;
}

static inline void put32(unsigned char *p, unsigned int v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* entry_parts checks one entry; 1 with its parts, 0 to skip it (a malformed entry is skipped). */
static int entry_parts(PyObject *e, PyObject **sender, Slot **slot, unsigned int *ssrc, const char **cname,
                       Py_ssize_t *cname_len) {
    if (!PyTuple_Check(e) || PyTuple_GET_SIZE(e) != 4)
        return 0;
    PyObject *o = PyTuple_GET_ITEM(e, 1), *c = PyTuple_GET_ITEM(e, 3);
    if (Py_TYPE(o) != &SlotType || !PyBytes_Check(c) || !PyLong_Check(PyTuple_GET_ITEM(e, 2)))
        return 0;
    unsigned long v = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(e, 2));
    if (PyErr_Occurred() || v > 0xFFFFFFFFUL) {
        PyErr_Clear();
        return 0;
    }
    *sender = PyTuple_GET_ITEM(e, 0);
    *slot = (Slot *)o;
    *ssrc = (unsigned int)v;
    *cname = PyBytes_AS_STRING(c);
    *cname_len = PyBytes_GET_SIZE(c) > 255 ? 255 : PyBytes_GET_SIZE(c);
    return 1;
}

/* send(entries, now) -> octets sent, 0 nothing to report (or lost), -1 for Python to send */
static PyObject *Reporter_send(Reporter *r, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyTuple_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "send(entries: tuple, now: float)");
        return NULL;
    }
    double now = PyFloat_AsDouble(args[1]);
    if (PyErr_Occurred())
        return NULL;
    if (r->srtp == NULL)
        return PyLong_FromLong(-1);
    PyObject *entries = args[0];
    Py_ssize_t n = PyTuple_GET_SIZE(entries);
    unsigned char buf[RTCP_BUF];
    int len = 0, reported = 0;
    /* first pass: the size, so that nothing is changed when Python has to send it */
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *sender;
        Slot *slot;
        unsigned int ssrc;
        const char *cname;
        Py_ssize_t cl;
        if (!entry_parts(PyTuple_GET_ITEM(entries, i), &sender, &slot, &ssrc, &cname, &cl) || !slot->packets_sent)
            continue;
        int chunk = 6 + (int)cl;
        len += 28 + 4 + chunk + (4 - chunk % 4);
        reported++;
    }
    if (!reported)
        return PyLong_FromLong(0);
    if (len > MAX_PLAIN)
        return PyLong_FromLong(-1);
    int pos = 0;
    for (Py_ssize_t i = 0; i < n; i++) {  /* the SRs */
        PyObject *sender;
        Slot *slot;
        unsigned int ssrc;
        const char *cname;
        Py_ssize_t cl;
        if (!entry_parts(PyTuple_GET_ITEM(entries, i), &sender, &slot, &ssrc, &cname, &cl) || !slot->packets_sent)
            continue;
        unsigned long long ntp = slot->last_ntp;
        unsigned char *p = buf + pos;
        p[0] = 0x80;
        p[1] = 200;
        p[2] = 0;
        p[3] = 6;
        put32(p + 4, ssrc);
        put32(p + 8, (unsigned int)(ntp >> 32));
        put32(p + 12, (unsigned int)ntp);
        put32(p + 16, slot->last_out_ts);
        put32(p + 20, (unsigned int)slot->packets_sent);
        put32(p + 24, (unsigned int)slot->bytes_sent);
        pos += 28;
        slot->lsr = (long long)((ntp >> 16) & 0xFFFFFFFFu);  /* the sender's lsr / lsr_time read the slot */
        slot->lsr_time = now;
    }
    for (Py_ssize_t i = 0; i < n; i++) {  /* one SDES per chunk, as sfu.rtp.sender_reports */
        PyObject *sender;
        Slot *slot;
        unsigned int ssrc;
        const char *cname;
        Py_ssize_t cl;
        if (!entry_parts(PyTuple_GET_ITEM(entries, i), &sender, &slot, &ssrc, &cname, &cl) || !slot->packets_sent)
            continue;
        int chunk = 6 + (int)cl;
        int padded = chunk + (4 - chunk % 4);  /* the null item ending the chunk, 32-bit padded */
        unsigned char *p = buf + pos;
        p[0] = 0x81;
        p[1] = 202;
        p[2] = (unsigned char)((padded / 4) >> 8);
        p[3] = (unsigned char)(padded / 4);
        put32(p + 4, ssrc);
        p[8] = 1;
        p[9] = (unsigned char)cl;
        memcpy(p + 10, cname, cl);
        memset(p + 4 + chunk, 0, padded - chunk);
        pos += 4 + padded;
    }
    if (r->protect_rtcp(r->srtp, buf, &pos) != 0) {
        r->errors++;
        return PyLong_FromLong(0);
    }
    int fd = PyObject_AsFileDescriptor(r->sock);
    if (fd < 0) {
        PyErr_Clear();
        reporter_clear_route(r);
        r->errors++;
        return PyLong_FromLong(0);
    }
    if (sendto(fd, buf, pos, 0, (struct sockaddr *)&r->addr, r->addr_len) < 0) {
        r->errors++;
        return PyLong_FromLong(0);
    }
    r->sent++;
    return PyLong_FromLong(pos);
}

static PyObject *Reporter_get_routed(Reporter *r, void *closure) {
    return PyBool_FromLong(r->srtp != NULL);
}

static PyGetSetDef Reporter_getset[] = {
    {"routed", (getter)Reporter_get_routed, NULL, "routed: a route (socket, address, SRTP session) is bound", NULL},
    {NULL},
};

static PyMemberDef Reporter_members[] = {
    {"sent", T_ULONGLONG, offsetof(Reporter, sent), READONLY, "sent: compound packets sent"},
    {"errors", T_ULONGLONG, offsetof(Reporter, errors), READONLY, "errors: protect or send failures"},
    {NULL},
};

static PyMethodDef Reporter_methods[] = {
    {"set_route", (PyCFunction)Reporter_set_route, METH_VARARGS,
     "set_route(sock, family, host, port, session, srtp_address, protect_rtcp_address) -> bool"},
    {"clear_route", (PyCFunction)Reporter_clear_route, METH_NOARGS, "clear_route forgets the route"},
    {"send", (PyCFunction)(void (*)(void))Reporter_send, METH_FASTCALL,
     "send(entries, now) -> octets sent, 0 (nothing to report, or lost) or -1 (Python sends it)"},
    {NULL},
};

PyTypeObject ReporterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sfu._fanout.Reporter",
    .tp_doc = "Reporter: one transport's sender reports (SR + SDES) built, protected and sent in C",
    .tp_basicsize = sizeof(Reporter),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)Reporter_dealloc,
    .tp_traverse = (traverseproc)Reporter_traverse,
    .tp_clear = (inquiry)Reporter_clear,
    .tp_methods = Reporter_methods,
    .tp_members = Reporter_members,
    .tp_getset = Reporter_getset,
};

int report_add_types(PyObject *m) {
    if (PyType_Ready(&ReporterType) < 0)
        return -1;
    Py_INCREF(&ReporterType);
    if (PyModule_AddObject(m, "Reporter", (PyObject *)&ReporterType) < 0) {
        Py_DECREF(&ReporterType);
        return -1;
    }
    return 0;
}
