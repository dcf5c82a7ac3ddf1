/* _reader: the datagrams of one ICE socket read in batches with recvmmsg and handed to its Demux, in C.
 *
 * Reader(fd, demux, fallback, error_received) is installed by sfu.hooks.reader.SocketTransport: ``read()`` is the
 * event loop's reader callback for `fd` (a duplicate of the ICE socket that the transport owns). One wake-up
 * reads up to READ_SLOTS datagrams with one recvmmsg system call (READ_BATCHES full batches at most: 32 datagrams
 * per wake-up, as libuv reads a UDP socket, so the loop's timers keep their turn under a burst), and a short
 * batch ends the read (the socket was drained: no further system call just to be told EAGAIN). A datagram the Demux
 * keeps (sfu/_demux.c: an armed stream's RTP, routine SRTCP) never becomes a Python object; any other becomes
 * bytes and an address tuple, as the socket module makes them, for ``fallback(data, addr)`` (the protocol's
 * Python path: STUN, DTLS, media not armed yet). An error other than EAGAIN (an ICMP error reported on a socket
 * with IP_RECVERR: ECONNREFUSED) goes to ``error_received(exc)`` as an OSError, the socket's error queue is
 * drained and reading goes on. An exception raised by a callback does not cost the rest of the batch: the
 * first is raised at the end of ``read()`` (the event loop logs it), later ones are reported as unraisable.
 *
 * Ownership: the event loop's thread, under the GIL. ``close()`` (the transport's) stops reading at once, also
 * in the middle of a batch: the descriptor is not read after it. The receive buffers are one static arena
 * shared by every Reader (a read never runs inside another).
 */
#include "_fanout.h"

#include <netdb.h>

#define READ_SLOTS 32     /* datagrams per recvmmsg call */
#define READ_SIZE 4096    /* sfu.hooks.reader.DATAGRAM_SIZE: bytes per datagram (media, STUN and DTLS are < 1500) */
#define READ_BATCHES 1    /* full batches read per wake-up: 32 datagrams at most, as libuv reads a UDP socket */

static unsigned char arena[READ_SLOTS][READ_SIZE];
static struct mmsghdr msgs[READ_SLOTS];
static struct iovec iovs[READ_SLOTS];
static struct sockaddr_storage names[READ_SLOTS];
static int arena_busy;

typedef struct {
    PyObject_HEAD
    int fd;                    /* -1 once closed */
    PyObject *demux;           /* Demux or NULL: every datagram to fallback */
    PyObject *fallback;        /* callable(data, addr) */
    PyObject *error_received;  /* callable(exc) or NULL */
    unsigned long long datagrams, kept, calls, errors, truncated;
} Reader;

static int Reader_traverse(Reader *r, visitproc visit, void *arg) {
    Py_VISIT(r->demux);
    Py_VISIT(r->fallback);
    Py_VISIT(r->error_received);
    return 0;
}

static int Reader_clear(Reader *r) {
    Py_CLEAR(r->demux);
    Py_CLEAR(r->fallback);
    Py_CLEAR(r->error_received);
    return 0;
}

static void Reader_dealloc(Reader *r) {
    PyObject_GC_UnTrack(r);
    Reader_clear(r);
    Py_TYPE(r)->tp_free((PyObject *)r);
}

static int Reader_init(Reader *r, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"fd", "demux", "fallback", "error_received", NULL};
    int fd;
    PyObject *demux, *fallback, *error_received = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "iOO|O", kwlist, &fd, &demux, &fallback, &error_received))
        return -1;
    if (fd < 0) {
        PyErr_SetString(PyExc_ValueError, "Reader(fd): a descriptor");
        return -1;
    }
    if (demux != Py_None && Py_TYPE(demux) != &DemuxType) {
        PyErr_SetString(PyExc_TypeError, "Reader(demux): a Demux or None");
        return -1;
    }
    if (!PyCallable_Check(fallback) || (error_received != Py_None && !PyCallable_Check(error_received))) {
        PyErr_SetString(PyExc_TypeError, "Reader(fallback, error_received): callables");
        return -1;
    }
    r->fd = fd;
    Py_XSETREF(r->demux, demux == Py_None ? NULL : Py_NewRef(demux));
    Py_XSETREF(r->fallback, Py_NewRef(fallback));
    Py_XSETREF(r->error_received, error_received == Py_None ? NULL : Py_NewRef(error_received));
    return 0;
}

/* address: the (host, port) or (host, port, flowinfo, scope_id) tuple the socket module gives for `ss` */
static PyObject *address(const struct sockaddr_storage *ss) {
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        char host[INET_ADDRSTRLEN];
        if (inet_ntop(AF_INET, &a->sin_addr, host, sizeof host) == NULL)
            host[0] = 0;
        return Py_BuildValue("(si)", host, (int)ntohs(a->sin_port));
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        char host[NI_MAXHOST];
        if (getnameinfo((const struct sockaddr *)a, sizeof *a, host, sizeof host, NULL, 0, NI_NUMERICHOST) != 0)
            host[0] = 0;
        return Py_BuildValue("(siII)", host, (int)ntohs(a->sin6_port), (unsigned int)ntohl(a->sin6_flowinfo),
                             (unsigned int)a->sin6_scope_id);
    }
    Py_RETURN_NONE;
}

/* keep_first: after a callback failed, keep the first exception in *first (later ones: unraisable) */
typedef struct {
    PyObject *type, *value, *tb;
} Raised;

static void keep_first(Raised *first, PyObject *where) {
    if (first->type == NULL) {
        PyErr_Fetch(&first->type, &first->value, &first->tb);
        return;
    }
    PyErr_WriteUnraisable(where);
}

static void drain_error_queue(int fd) {
    unsigned char buf[512];
    struct iovec iov = {buf, sizeof buf};
    for (int i = 0; i < READ_SLOTS; i++) {
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
        if (recvmsg(fd, &m, MSG_ERRQUEUE | MSG_DONTWAIT) < 0)
            break;
    }
}

/* one datagram that C does not keep: bytes and address to fallback(data, addr) */
static int to_fallback(Reader *r, const unsigned char *p, Py_ssize_t n, const struct sockaddr_storage *name) {
    PyObject *args[2];
    args[0] = PyBytes_FromStringAndSize((const char *)p, n);
    args[1] = args[0] != NULL ? address(name) : NULL;
    PyObject *res = args[1] != NULL ? PyObject_Vectorcall(r->fallback, args, 2, NULL) : NULL;
    Py_XDECREF(args[0]);
    Py_XDECREF(args[1]);
    if (res == NULL)
        return -1;
    Py_DECREF(res);
    return 0;
}

static int report_error(Reader *r, int e) {
    r->errors++;
    drain_error_queue(r->fd);
    if (r->error_received == NULL)
        return 0;
    PyObject *exc = PyObject_CallFunction(PyExc_OSError, "is", e, strerror(e));  /* OSError picks the subclass */
    PyObject *res = exc != NULL ? PyObject_CallOneArg(r->error_received, exc) : NULL;
    Py_XDECREF(exc);
    if (res == NULL)
        return -1;
    Py_DECREF(res);
    return 0;
}

static PyObject *Reader_read(Reader *r, PyObject *unused) {
    (void)unused;
    if (r->fd < 0 || arena_busy)
        return PyLong_FromLong(0);
    arena_busy = 1;
    Py_INCREF(r);
    Raised first = {NULL, NULL, NULL};  /* the first exception a callback raised */
    long total = 0;
    for (int batch = 0, errors = 0; batch < READ_BATCHES && r->fd >= 0;) {
        for (int i = 0; i < READ_SLOTS; i++) {
            iovs[i].iov_base = arena[i];
            iovs[i].iov_len = READ_SIZE;
            msgs[i].msg_hdr = (struct msghdr){.msg_name = &names[i], .msg_namelen = sizeof names[i],
                                              .msg_iov = &iovs[i], .msg_iovlen = 1};
            msgs[i].msg_len = 0;
        }
        int got = recvmmsg(r->fd, msgs, READ_SLOTS, MSG_DONTWAIT, NULL);
        r->calls++;
        if (got < 0) {
            int e = errno;
            if (e == EAGAIN || e == EWOULDBLOCK)
                break;
            if (e == EINTR)
                continue;
            if (report_error(r, e) < 0)
                keep_first(&first, (PyObject *)r);
            if (e == EBADF || e == ENOTSOCK || ++errors >= READ_SLOTS)
                break;
            continue;  /* ECONNREFUSED and the like: the datagrams behind it are still there */
        }
        batch++;
        for (int i = 0; i < got && r->fd >= 0; i++) {
            const unsigned char *p = arena[i];
            Py_ssize_t n = (Py_ssize_t)msgs[i].msg_len;
            total++;
            r->datagrams++;
            if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
                r->truncated++;  /* larger than READ_SIZE: nothing on an ICE socket is */
                continue;
            }
            if (r->demux != NULL) {
                int k = demux_receive(r->demux, p, n);
                if (k == 0) {
                    r->kept++;
                    continue;
                }
                if (k < 0) {
                    keep_first(&first, (PyObject *)r);
                    continue;
                }
            }
            if (to_fallback(r, p, n, &names[i]) < 0)
                keep_first(&first, r->fallback);
        }
        if (got < READ_SLOTS)
            break;  /* drained */
    }
    arena_busy = 0;
    Py_DECREF(r);
    if (first.type != NULL) {
        PyErr_Restore(first.type, first.value, first.tb);
        return NULL;
    }
    return PyLong_FromLong(total);
}

static PyObject *Reader_close(Reader *r, PyObject *unused) {
    (void)unused;
    r->fd = -1;
    Py_RETURN_NONE;
}

static PyMemberDef Reader_members[] = {
    {"fd", T_INT, offsetof(Reader, fd), READONLY, "the descriptor read (-1 once closed)"},
    {"datagrams", T_ULONGLONG, offsetof(Reader, datagrams), READONLY, "datagrams read"},
    {"kept", T_ULONGLONG, offsetof(Reader, kept), READONLY, "datagrams the Demux kept in C"},
    {"calls", T_ULONGLONG, offsetof(Reader, calls), READONLY, "recvmmsg system calls made"},
    {"errors", T_ULONGLONG, offsetof(Reader, errors), READONLY, "receive errors (given to error_received)"},
    {"truncated", T_ULONGLONG, offsetof(Reader, truncated), READONLY, "datagrams over READ_SIZE, dropped"},
    {NULL},
};

static PyMethodDef Reader_methods[] = {
    {"read", (PyCFunction)Reader_read, METH_NOARGS,
     "read() -> datagrams read: the event loop's reader callback (recvmmsg until drained)"},
    {"close", (PyCFunction)Reader_close, METH_NOARGS, "close(): never read the descriptor again"},
    {NULL},
};

static PyTypeObject ReaderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sfu._fanout.Reader",
    .tp_doc = "Reader(fd, demux, fallback, error_received=None): an ICE socket's datagrams read with recvmmsg",
    .tp_basicsize = sizeof(Reader),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Reader_init,
    .tp_dealloc = (destructor)Reader_dealloc,
    .tp_traverse = (traverseproc)Reader_traverse,
    .tp_clear = (inquiry)Reader_clear,
    .tp_methods = Reader_methods,
    .tp_members = Reader_members,
};

int reader_add_types(PyObject *m) {
    if (contract_constant("READ_SIZE", PyLong_FromLong(READ_SIZE)) < 0 || module_add_type(m, &ReaderType, "Reader") < 0)
        return -1;
    return 0;
}
