/* _report: a transport's sender reports built, protected and sent in C.
 *
 * A Reporter belongs to one sfu.hooks.wire.PacketWire, which binds it to the nominated ICE pair and the
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

#define MAX_REPORTED 64  /* SRs in one compound; more (never in practice) go to Python */

/* an entry of send(): built by sfu.hooks.wire.PacketWire (CONTRACT["layouts"]["report_entry"], sfu/twins.py) */
enum { ENTRY_SENDER, ENTRY_SLOT, ENTRY_SSRC, ENTRY_CNAME, ENTRY_FIELDS };
static const char *const entry_fields[ENTRY_FIELDS] = {"sender", "slot", "ssrc", "cname"};

typedef struct Reporter {
    PyObject_HEAD
    Route route;  /* its protect is srtp_protect_rtcp */
    unsigned long long sent;    /* compound packets sent */
    unsigned long long errors;  /* protect or send failures */
} Reporter;

static int Reporter_traverse(Reporter *r, visitproc visit, void *arg) {
    return route_traverse(&r->route, visit, arg);
}

static int Reporter_clear(Reporter *r) {
    route_clear(&r->route);
    return 0;
}

static void Reporter_dealloc(Reporter *r) {
    PyObject_GC_UnTrack(r);
    route_clear(&r->route);
    Py_TYPE(r)->tp_free((PyObject *)r);
}

/* set_route(sock, family, host, port, session, srtp_address, protect_rtcp_address) -> bool */
static PyObject *Reporter_set_route(Reporter *r, PyObject *args) {
    return route_set(&r->route, args);
}

static PyObject *Reporter_clear_route(Reporter *r, PyObject *unused) {
    route_clear(&r->route);
    Py_RETURN_NONE;
}

typedef struct {
    Slot *slot;
    unsigned int ssrc;
    const char *cname;
    int cname_len;  /* at most 255 */
} Part;

/* part_of reads one entry (sender, Slot, ssrc, cname bytes); 1 when it has a report to give, else 0 (nothing
 * sent yet, or a malformed entry, which is skipped). */
static int part_of(PyObject *e, Part *out) {
    if (!PyTuple_Check(e) || PyTuple_GET_SIZE(e) != ENTRY_FIELDS)
        return 0;
    PyObject *o = PyTuple_GET_ITEM(e, ENTRY_SLOT), *c = PyTuple_GET_ITEM(e, ENTRY_CNAME);
    PyObject *ssrc = PyTuple_GET_ITEM(e, ENTRY_SSRC);
    if (Py_TYPE(o) != &SlotType || !PyBytes_Check(c) || !PyLong_Check(ssrc) || !((Slot *)o)->packets_sent)
        return 0;
    unsigned long v = PyLong_AsUnsignedLong(ssrc);
    if (PyErr_Occurred() || v > 0xFFFFFFFFUL) {
        PyErr_Clear();
        return 0;
    }
    out->slot = (Slot *)o;
    out->ssrc = (unsigned int)v;
    out->cname = PyBytes_AS_STRING(c);
    out->cname_len = PyBytes_GET_SIZE(c) > 255 ? 255 : (int)PyBytes_GET_SIZE(c);
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
    if (r->route.srtp == NULL)
        return PyLong_FromLong(-1);
    Part parts[MAX_REPORTED];
    int k = 0, len = 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(args[0]); i++) {  /* first the size: Python may have to send it */
        Part part;
        if (!part_of(PyTuple_GET_ITEM(args[0], i), &part))
            continue;
        if (k == MAX_REPORTED)
            return PyLong_FromLong(-1);
        int chunk = 6 + part.cname_len;
        len += 28 + 4 + chunk + (4 - chunk % 4);
        parts[k++] = part;
    }
    if (!k)
        return PyLong_FromLong(0);
    if (len > MAX_PLAIN)
        return PyLong_FromLong(-1);
    unsigned char buf[BUF_SIZE];
    int pos = 0;
    for (int j = 0; j < k; j++) {  /* the SRs */
        Slot *slot = parts[j].slot;
        unsigned long long ntp = slot->last_ntp;
        unsigned char *p = buf + pos;
        p[0] = 0x80;
        p[1] = 200;
        p[2] = 0;
        p[3] = 6;
        put32(p + 4, parts[j].ssrc);
        put32(p + 8, (unsigned int)(ntp >> 32));
        put32(p + 12, (unsigned int)ntp);
        put32(p + 16, slot->last_out_ts);
        put32(p + 20, (unsigned int)slot->packets_sent);
        put32(p + 24, (unsigned int)slot->bytes_sent);
        pos += 28;
        slot->lsr = (long long)((ntp >> 16) & 0xFFFFFFFFu);  /* the sender's lsr / lsr_time read the slot */
        slot->lsr_time = now;
    }
    for (int j = 0; j < k; j++) {  /* one SDES per chunk, as sfu.rtp.sender_reports */
        int chunk = 6 + parts[j].cname_len;
        int padded = chunk + (4 - chunk % 4);  /* the null item ending the chunk, 32-bit padded */
        unsigned char *p = buf + pos;
        p[0] = 0x81;
        p[1] = 202;
        p[2] = (unsigned char)((padded / 4) >> 8);
        p[3] = (unsigned char)(padded / 4);
        put32(p + 4, parts[j].ssrc);
        p[8] = 1;
        p[9] = (unsigned char)parts[j].cname_len;
        memcpy(p + 10, parts[j].cname, parts[j].cname_len);
        memset(p + 4 + chunk, 0, padded - chunk);
        pos += 4 + padded;
    }
    int sent;
    if (route_send(&r->route, buf, pos, &sent) < 0) {
        r->errors++;
        return PyLong_FromLong(0);
    }
    r->sent++;
    return PyLong_FromLong(sent);
}

static PyObject *Reporter_get_routed(Reporter *r, void *closure) {
    return PyBool_FromLong(r->route.srtp != NULL);
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
    if (contract_layout("report_entry", entry_fields, ENTRY_FIELDS) < 0)
        return -1;
    if (module_add_type(m, &ReporterType, "Reporter") < 0)
        return -1;
    return 0;
}
