/* _demux: the datagram callback of one ICE socket (aioice StunProtocol.datagram_received), in C.
 *
 * Demux(fallback) is installed by sfu.hooks.demux.MediaDemux. RTP of an armed Ingress (sfu/_ingress.c) and,
 * once set, SRTCP (an RtcpRoute, sfu/_rtcp.c) are handled in C; everything else, and whatever those leave,
 * goes to ``fallback(data, addr)``: the Python path. It counts what C took (``take_counts``).
 *
 * Ownership: one StunProtocol; the event loop's thread, under the GIL. The Ingress table is changed by
 * Python (``add``/``remove``) between datagrams, never during one.
 */
#include "_fanout.h"

#define MAX_INGRESS 16

typedef struct {
    PyObject_HEAD
    PyObject *fallback;  /* callable(data, addr): the Python path */
    PyObject *rtcp;      /* RtcpRoute or NULL: SRTCP goes to fallback */
    PyObject *entries[MAX_INGRESS];  /* Ingress objects */
    int n;
    unsigned long long rx_bytes;  /* since take_counts(), datagrams handled here */
    unsigned long long rx_packets;
} Demux;

static int Demux_traverse(Demux *d, visitproc visit, void *arg) {
    Py_VISIT(d->fallback);
    Py_VISIT(d->rtcp);
    for (int i = 0; i < d->n; i++)
        Py_VISIT(d->entries[i]);
    return 0;
}

static int Demux_clear(Demux *d) {
    Py_CLEAR(d->fallback);
    Py_CLEAR(d->rtcp);
    for (int i = 0; i < d->n; i++)
        Py_CLEAR(d->entries[i]);
    d->n = 0;
    return 0;
}

static void Demux_dealloc(Demux *d) {
    PyObject_GC_UnTrack(d);
    Demux_clear(d);
    Py_TYPE(d)->tp_free((PyObject *)d);
}

static int Demux_init(Demux *d, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"fallback", NULL};
    PyObject *fallback;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O", kwlist, &fallback))
        return -1;
    if (!PyCallable_Check(fallback)) {
        PyErr_SetString(PyExc_TypeError, "Demux(fallback): fallback must be callable");
        return -1;
    }
    Py_INCREF(fallback);
    Py_XSETREF(d->fallback, fallback);
    return 0;
}

static PyObject *Demux_add(Demux *d, PyObject *o) {
    if (Py_TYPE(o) != &IngressType) {
        PyErr_SetString(PyExc_TypeError, "Demux.add(ingress: Ingress)");
        return NULL;
    }
    for (int i = 0; i < d->n; i++)
        if (d->entries[i] == o)
            Py_RETURN_TRUE;
    if (d->n >= MAX_INGRESS)
        Py_RETURN_FALSE;  /* more streams than that on one transport: the rest take the Python path */
    Py_INCREF(o);
    d->entries[d->n++] = o;
    Py_RETURN_TRUE;
}

static PyObject *Demux_remove(Demux *d, PyObject *o) {
    for (int i = 0; i < d->n; i++) {
        if (d->entries[i] == o) {
            PyObject *g = d->entries[i];
            d->entries[i] = d->entries[--d->n];
            d->entries[d->n] = NULL;
            Py_DECREF(g);
            break;
        }
    }
    Py_RETURN_NONE;
}

static PyObject *Demux_set_rtcp(Demux *d, PyObject *route) {
    if (route != Py_None && Py_TYPE(route) != &RtcpRouteType) {
        PyErr_SetString(PyExc_TypeError, "Demux.set_rtcp(route: RtcpRoute | None)");
        return NULL;
    }
    Py_XINCREF(route == Py_None ? NULL : route);
    Py_XSETREF(d->rtcp, route == Py_None ? NULL : route);
    Py_RETURN_NONE;
}

static PyObject *Demux_take_counts(Demux *d, PyObject *unused) {
    (void)unused;
    PyObject *r = Py_BuildValue("(KK)", d->rx_packets, d->rx_bytes);
    d->rx_packets = 0;
    d->rx_bytes = 0;
    return r;
}

int demux_receive(PyObject *demux, const unsigned char *p, Py_ssize_t n) {
    Demux *d = (Demux *)demux;
    if (n < 12 || (p[0] & 0xC0) != 0x80)
        return 1;
    int rtcp = p[1] >= 192 && p[1] <= 223;
    PyObject *target = rtcp ? d->rtcp : NULL;  /* the RtcpRoute, or the armed Ingress of this SSRC */
    for (int i = 0; !rtcp && i < d->n; i++) {
        if (ingress_match(d->entries[i], be32(p + 8))) {
            target = d->entries[i];
            break;
        }
    }
    if (target == NULL)
        return 1;
    Py_INCREF(target);  /* a callback may remove it from the table */
    int r = rtcp ? rtcp_route_receive(target, p, n) : ingress_receive(target, p, n);
    Py_DECREF(target);
    if (r == 0) {
        d->rx_packets++;
        d->rx_bytes += (unsigned long long)n;
    }
    return r;
}

PyObject *demux_fallback(PyObject *demux) { return ((Demux *)demux)->fallback; }

/* datagram_received(data, addr): the protocol's callback */
static PyObject *Demux_datagram_received(Demux *d, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "datagram_received(data, addr)");
        return NULL;
    }
    PyObject *data = args[0];
    if (PyBytes_CheckExact(data)) {
        int r = demux_receive((PyObject *)d, (const unsigned char *)PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data));
        if (r < 0)
            return NULL;
        if (r == 0)
            Py_RETURN_NONE;
    }
    if (d->fallback == NULL)
        Py_RETURN_NONE;
    return PyObject_Vectorcall(d->fallback, args, 2, NULL);
}

static PyMemberDef Demux_members[] = {
    {"fallback", T_OBJECT, offsetof(Demux, fallback), READONLY, "fallback(data, addr): the Python path"},
    {NULL},
};

static PyMethodDef Demux_methods[] = {
    {"datagram_received", (PyCFunction)(void (*)(void))Demux_datagram_received, METH_FASTCALL,
     "datagram_received(data, addr): an armed stream's steady-state RTP here, anything else to fallback"},
    {"add", (PyCFunction)Demux_add, METH_O, "add(ingress) -> False when the table is full"},
    {"set_rtcp", (PyCFunction)Demux_set_rtcp, METH_O, "set_rtcp(route): SRTCP to this RtcpRoute (None: to fallback)"},
    {"remove", (PyCFunction)Demux_remove, METH_O, "remove(ingress)"},
    {"take_counts", (PyCFunction)Demux_take_counts, METH_NOARGS,
     "take_counts() -> (packets, octets) received here since the previous call"},
    {NULL},
};

PyTypeObject DemuxType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sfu._fanout.Demux",
    .tp_doc = "Demux(fallback): a StunProtocol's datagram callback that keeps armed media streams in C",
    .tp_basicsize = sizeof(Demux),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Demux_init,
    .tp_dealloc = (destructor)Demux_dealloc,
    .tp_traverse = (traverseproc)Demux_traverse,
    .tp_clear = (inquiry)Demux_clear,
    .tp_methods = Demux_methods,
    .tp_members = Demux_members,
};

int demux_add_types(PyObject *m) {
    if (PyType_Ready(&DemuxType) < 0)
        return -1;
    Py_INCREF(&DemuxType);
    if (PyModule_AddObject(m, "Demux", (PyObject *)&DemuxType) < 0) {
        Py_DECREF(&DemuxType);
        return -1;
    }
    return 0;
}
