/* _pacer: Pacer, a down transport's token bucket and the queue of video packets waiting for it, in C (the twin of
 * sfu.pacer.TokenBucket: same fields, arithmetic and queue; tests/sfu/test_pacer.py runs both on the same steps).
 *
 * The C fan-out (fanout_run) asks the bucket of each slot that has one (Slot.set_pacer) before sending: audio
 * always goes and takes its bits; video goes while nothing waits and the bucket is not empty, else the fan-out
 * rewrites it as usual and queues the plain packet here (pacer_queue_c), calling `on_queue` when no drain timer
 * is `armed` so that Python starts one (sfu.pacer.Pacer). Before each packet it handles for a paced slot, the
 * fan-out drains the slot's pacer (pacer_drain): a link drains at the pace of the media it receives, without
 * Python; the timer covers the gaps. Python queues the packets of its own path with
 * `push`. What waits is kept per class (a slot's `pace_class`, sfu.pacer.pace_class: the cameras' video, then the
 * screen share's), one ring each; `drain(now)` sends what the bucket allows, class 0 first, each class oldest first,
 * each with the abs-send-time of its departure: a C slot's through the slot's route (or Python's `send` when the
 * route is gone), Python's through `send`.
 *
 * Ownership: one Pacer per PacketWire (sfu.pacer.Pacer.bucket); queued entries hold a reference to their Slot
 * (a Slot holds its Pacer: the cycle is broken by `clear` and the GC). */
#include "_fanout.h"

#include <stdlib.h>

static double burst_for(double rate) {
    double b = rate * PACER_BURST_SECONDS;
    return b > PACER_MIN_BURST_BITS ? b : PACER_MIN_BURST_BITS;
}

void pacer_refill(Pacer *p, double now) {
    if (p->last >= 0 && now > p->last) {
        double t = p->tokens + (now - p->last) * p->rate;
        p->tokens = t < p->burst ? t : p->burst;
    }
    p->last = now;
}

/* pace_class: `cls` within 0 .. PACER_CLASSES - 1 (a Slot's pace_class is writable from Python). */
static int pace_class(int cls) {
    return cls < 0 ? 0 : cls >= PACER_CLASSES ? PACER_CLASSES - 1 : cls;
}

/* waiting_up_to: packets waiting in classes 0 .. cls (they leave before a packet of class cls). */
static long long waiting_up_to(Pacer *p, int cls) {
    long long n = 0;
    for (int c = 0; c <= cls; c++)
        n += p->ring[c].count;
    return n;
}

int pacer_admit(Pacer *p, long long size, int audio, int cls, double now) {
    pacer_refill(p, now);
    if (audio || (waiting_up_to(p, pace_class(cls)) == 0 && p->tokens >= 0)) {
        p->tokens -= (double)((size + PACER_OVERHEAD) * 8);
        return 1;
    }
    return 0;
}

static void entry_clear(QEntry *e) {
    Py_CLEAR(e->owner);
    free(e->buf);
    e->buf = NULL;
}

/* queue_tail: the free entry at the tail of class `cls` (its ring grown if it is full); NULL when the queue is full
 * or cannot grow (no exception). The caller fills it and counts it (queue_added). */
static QEntry *queue_tail(Pacer *p, int cls) {
    PacerRing *r = &p->ring[cls];
    if (p->queued >= PACER_MAX_QUEUE)
        return NULL;
    if (r->count == r->cap) {
        int cap = r->cap ? r->cap * 2 : PACER_RING_START;
        QEntry *q = calloc((size_t)cap, sizeof(QEntry));
        if (q == NULL)
            return NULL;
        for (long long i = 0; i < r->count; i++)  /* unwrapped: the oldest first */
            q[i] = r->q[(r->head + i) % r->cap];
        free(r->q);
        r->q = q;
        r->cap = cap;
        r->head = 0;
    }
    return &r->q[(r->head + r->count) % r->cap];
}

static void queue_added(Pacer *p, int cls) {
    p->ring[cls].count++;
    p->queued++;
}

static void queue_pop(Pacer *p, int cls) {
    PacerRing *r = &p->ring[cls];
    entry_clear(&r->q[r->head]);
    r->head = (r->head + 1) % r->cap;
    r->count--;
    p->queued--;
}

static void queue_clear(Pacer *p) {
    for (int c = 0; c < PACER_CLASSES; c++)
        while (p->ring[c].count > 0)
            queue_pop(p, c);
}

/* entry_key: the stream a waiting packet belongs to (a C slot's: its Slot; Python's: the key it was pushed with, or
 * None). */
static PyObject *entry_key(QEntry *e) {
    return e->buf != NULL ? e->owner : PyTuple_GET_ITEM(e->owner, 3);
}

/* entry_of_frame: the waiting packet's RTP timestamp is `ts` (4 bytes, network order): the same frame. */
static int entry_of_frame(QEntry *e, const unsigned char *ts) {
    if (e->buf != NULL)
        return e->len >= 8 && memcmp(e->buf + 4, ts, 4) == 0;
    PyObject *head = PyTuple_GET_ITEM(e->owner, 0);
    return PyBytes_GET_SIZE(head) >= 8 && memcmp(PyBytes_AS_STRING(head) + 4, ts, 4) == 0;
}

/* pacer_supersede drops every waiting packet of stream `key` of another frame than `ts`, once the oldest of them has
 * waited PACER_SUPERSEDE_AFTER (a keyframe with that RTP
 * timestamp is about to wait behind them: older frames are of no use to a decoder that gets the keyframe, and they
 * would only hold it back; the keyframe's own packets stay: an H.264 keyframe's SPS/PPS and each IDR slice are each
 * told a keyframe), counted in `superseded` (and a C slot's in its pacer_dropped: its receiver sees the holes; not
 * its link's loss) but not in `dropped`: no keyframe is needed for them (sfu.downlinks repairs what `dropped_by`
 * counts). */
static void pacer_supersede(Pacer *p, PyObject *key, const unsigned char *ts, double now) {
    double oldest = now;  /* only when the stream's older frames have waited PACER_SUPERSEDE_AFTER: a shorter wait is
                           * delivered (dropping it freezes the picture for as long as it waited) */
    for (int c = 0; c < PACER_CLASSES; c++) {
        PacerRing *r = &p->ring[c];
        for (long long i = 0; i < r->count; i++) {
            QEntry *e = &r->q[(r->head + i) % r->cap];
            if (e->at < oldest && entry_key(e) == key && !entry_of_frame(e, ts))
                oldest = e->at;
        }
    }
    if (now - oldest < PACER_SUPERSEDE_AFTER)
        return;
    for (int c = 0; c < PACER_CLASSES; c++) {
        PacerRing *r = &p->ring[c];
        long long kept = 0;
        for (long long i = 0; i < r->count; i++) {
            QEntry *e = &r->q[(r->head + i) % r->cap];
            if (entry_key(e) == key && !entry_of_frame(e, ts)) {
                if (e->buf != NULL)
                    ((Slot *)e->owner)->pacer_dropped++;
                entry_clear(e);
                p->superseded++;
                p->queued--;
                continue;
            }
            if (kept != i) {  /* kept in order, compacted towards the head */
                QEntry *to = &r->q[(r->head + kept) % r->cap];
                *to = *e;
                e->owner = NULL;
                e->buf = NULL;
            }
            kept++;
        }
        r->count = kept;
    }
}

int pacer_queue_c(Pacer *p, PyObject *slot, const unsigned char *buf, int len, int ast_off, long long size, int cls,
                  int keyframe, double now) {
    cls = pace_class(cls);
    if (keyframe && ((Slot *)slot)->supersede && len >= 8)
        pacer_supersede(p, slot, buf + 4, now);
    QEntry *e = queue_tail(p, cls);
    unsigned char *copy = e != NULL ? malloc((size_t)len + (BUF_SIZE - MAX_PLAIN)) : NULL;
    if (copy == NULL) {
        p->dropped++;
        p->ring[cls].dropped++;
        ((Slot *)slot)->pacer_dropped++;
        return 0;
    }
    memcpy(copy, buf, (size_t)len);
    e->owner = Py_NewRef(slot);
    e->buf = copy;
    e->len = len;
    e->ast_off = ast_off;
    e->size = size;
    e->at = now;
    queue_added(p, cls);
    if (!p->armed && p->on_queue != NULL && p->on_queue != Py_None) {
        PyObject *r = PyObject_CallNoArgs(p->on_queue);
        if (r == NULL)
            return -1;
        Py_DECREF(r);
    }
    return 0;
}

/* abs_send_time_now: sfu.rtp.abs_send_time_now. */
static unsigned int abs_send_time_now(void) {
    return (unsigned int)((unsigned long long)((clock_seconds(CLOCK_REALTIME) + NTP_OFFSET) * 262144.0) & 0xFFFFFF);
}

/* call_send calls p->send(head, payload, padding); -1 with an exception when it raised. */
static int call_send(Pacer *p, PyObject *head, PyObject *payload, PyObject *padding) {
    if (p->send == NULL || p->send == Py_None)
        return 0;
    PyObject *r = PyObject_CallFunctionObjArgs(p->send, head, payload, padding, NULL);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* send_entry sends the head of the queue as it leaves now: 0, or -1 with an exception. */
static int send_entry(Pacer *p, QEntry *e) {
    unsigned int ast = e->ast_off ? abs_send_time_now() : 0;
    if (e->buf != NULL) {  /* a C slot's plain packet */
        Slot *s = (Slot *)e->owner;
        if (e->ast_off) {
            e->buf[e->ast_off] = (unsigned char)(ast >> 16);
            e->buf[e->ast_off + 1] = (unsigned char)(ast >> 8);
            e->buf[e->ast_off + 2] = (unsigned char)ast;
        }
        if (s->route.srtp != NULL) {
            int len = e->len;
            if (route_send(&s->route, e->buf, len, &len) < 0) {
                s->send_errors++;
                return 0;
            }
            s->c_sent++;
            s->tx_bytes += (unsigned long long)len;
            s->tx_packets++;
            return 0;
        }
        /* the route went away while it waited (ICE restart, new SRTP keys): Python's path sends the plain packet */
        PyObject *plain = PyBytes_FromStringAndSize((const char *)e->buf, e->len);
        PyObject *empty = PyBytes_FromStringAndSize("", 0);
        PyObject *zero = PyLong_FromLong(0);
        int r = plain != NULL && empty != NULL && zero != NULL ? call_send(p, plain, empty, zero) : -1;
        Py_XDECREF(plain);
        Py_XDECREF(empty);
        Py_XDECREF(zero);
        return r;
    }
    PyObject *head = PyTuple_GET_ITEM(e->owner, 0);
    if (!e->ast_off)
        return call_send(p, head, PyTuple_GET_ITEM(e->owner, 1), PyTuple_GET_ITEM(e->owner, 2));
    PyObject *stamped = PyByteArray_FromObject(head);
    if (stamped == NULL)
        return -1;
    if (PyByteArray_GET_SIZE(stamped) >= e->ast_off + 3) {
        unsigned char *b = (unsigned char *)PyByteArray_AS_STRING(stamped);
        b[e->ast_off] = (unsigned char)(ast >> 16);
        b[e->ast_off + 1] = (unsigned char)(ast >> 8);
        b[e->ast_off + 2] = (unsigned char)ast;
    }
    int r = call_send(p, stamped, PyTuple_GET_ITEM(e->owner, 1), PyTuple_GET_ITEM(e->owner, 2));
    Py_DECREF(stamped);
    return r;
}

static int Pacer_init(Pacer *p, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"rate", NULL};
    double rate;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "d", kwlist, &rate))
        return -1;
    p->rate = rate;
    p->burst = burst_for(rate);
    p->tokens = p->burst;
    p->last = -1.0;
    queue_clear(p);
    p->queued = p->sent_queued = p->dropped = p->superseded = 0;
    for (int c = 0; c < PACER_CLASSES; c++)
        p->ring[c].dropped = 0;
    p->armed = 0;
    return 0;
}

static int Pacer_traverse(Pacer *p, visitproc visit, void *arg) {
    Py_VISIT(p->send);
    Py_VISIT(p->on_queue);
    for (int c = 0; c < PACER_CLASSES; c++)
        for (long long i = 0; i < p->ring[c].count; i++)
            Py_VISIT(p->ring[c].q[(p->ring[c].head + i) % p->ring[c].cap].owner);
    return 0;
}

static int Pacer_clear(Pacer *p) {
    Py_CLEAR(p->send);
    Py_CLEAR(p->on_queue);
    queue_clear(p);
    return 0;
}

static void Pacer_dealloc(Pacer *p) {
    PyObject_GC_UnTrack(p);
    Pacer_clear(p);
    for (int c = 0; c < PACER_CLASSES; c++)
        free(p->ring[c].q);
    Py_TYPE(p)->tp_free((PyObject *)p);
}

static PyObject *Pacer_set_rate(Pacer *p, PyObject *arg) {
    double rate = PyFloat_AsDouble(arg);
    if (rate == -1.0 && PyErr_Occurred())
        return NULL;
    p->rate = rate;
    p->burst = burst_for(rate);
    if (p->tokens > p->burst)
        p->tokens = p->burst;
    Py_RETURN_NONE;
}

static PyObject *Pacer_refill(Pacer *p, PyObject *arg) {
    double now = PyFloat_AsDouble(arg);
    if (now == -1.0 && PyErr_Occurred())
        return NULL;
    pacer_refill(p, now);
    Py_RETURN_NONE;
}

static PyObject *Pacer_admit(Pacer *p, PyObject *args) {
    long long size;
    int audio, cls = 0;
    double now;
    if (!PyArg_ParseTuple(args, "Lpd|i", &size, &audio, &now, &cls))
        return NULL;
    return PyBool_FromLong(pacer_admit(p, size, audio, cls, now));
}

static PyObject *Pacer_take(Pacer *p, PyObject *args) {
    long long size;
    double now;
    if (!PyArg_ParseTuple(args, "Ld", &size, &now))
        return NULL;
    pacer_refill(p, now);
    p->tokens -= (double)((size + PACER_OVERHEAD) * 8);
    Py_RETURN_NONE;
}

static PyObject *Pacer_wait(Pacer *p, PyObject *unused) {
    (void)unused;
    return PyFloat_FromDouble(p->tokens >= 0 ? 0.0 : -p->tokens / p->rate);
}

/* push(head, payload, padding, ast_off, now, cls=0, key=None, keyframe=False): Python's packet waits in class `cls`
 * (True), or is dropped: the queue is full. `key`: the stream it belongs to (a C Slot, whose own packets match it
 * too); a `keyframe` of a stream first drops its older waiting packets (pacer_supersede). */
static PyObject *Pacer_push(Pacer *p, PyObject *args) {
    PyObject *head, *payload, *key = Py_None;
    long long padding;
    int ast_off, cls = 0, keyframe = 0;
    double now;
    if (!PyArg_ParseTuple(args, "OSLid|iOp", &head, &payload, &padding, &ast_off, &now, &cls, &key, &keyframe))
        return NULL;
    Py_ssize_t head_len = PyObject_Length(head);
    if (head_len < 0)
        return NULL;
    cls = pace_class(cls);
    PyObject *copy = PyBytes_FromObject(head);
    if (copy == NULL)
        return NULL;
    if (keyframe && key != Py_None && PyBytes_GET_SIZE(copy) >= 8)
        pacer_supersede(p, key, (const unsigned char *)PyBytes_AS_STRING(copy) + 4, now);
    QEntry *e = queue_tail(p, cls);
    if (e == NULL) {
        Py_DECREF(copy);
        p->dropped++;
        p->ring[cls].dropped++;
        Py_RETURN_FALSE;
    }
    PyObject *owner = Py_BuildValue("(NOLO)", copy, payload, padding, key);
    if (owner == NULL)
        return NULL;
    e->owner = owner;
    e->buf = NULL;
    e->len = 0;
    e->ast_off = ast_off;
    e->size = head_len + PyBytes_GET_SIZE(payload) + padding;
    e->at = now;
    queue_added(p, cls);
    Py_RETURN_TRUE;
}

long long pacer_drain(Pacer *p, double now) {
    for (int c = 0; c < PACER_CLASSES; c++) {
        PacerRing *r = &p->ring[c];
        double max_wait = c == 0 ? PACER_MAX_QUEUE_SECONDS : PACER_MAX_SCREEN_QUEUE_SECONDS;  /* sfu.pacer.MAX_WAIT */
        while (r->count > 0 && now - r->q[r->head].at > max_wait) {
            if (r->q[r->head].buf != NULL)  /* a C slot's: counted on it (its receiver's reports see a hole) */
                ((Slot *)r->q[r->head].owner)->pacer_dropped++;
            queue_pop(p, c);
            p->dropped++;
            r->dropped++;
        }
    }
    pacer_refill(p, now);
    long long sent = 0;
    while (p->queued > 0 && p->tokens >= 0) {
        int c = 0;
        while (p->ring[c].count == 0)
            c++;
        PacerRing *r = &p->ring[c];
        QEntry e = r->q[r->head];  /* taken out: `send` may re-enter (push) */
        r->q[r->head].owner = NULL;
        r->q[r->head].buf = NULL;
        r->head = (r->head + 1) % r->cap;
        r->count--;
        p->queued--;
        p->tokens -= (double)((e.size + PACER_OVERHEAD) * 8);
        int r_sent = send_entry(p, &e);
        entry_clear(&e);
        if (r_sent < 0)
            return -1;
        p->sent_queued++;
        sent++;
    }
    return sent;
}

/* drain(now) -> packets sent: drops what waited longer than its class may (MAX_WAIT), then sends what the bucket allows,
 * class 0 first, each class oldest first. */
static PyObject *Pacer_drain(Pacer *p, PyObject *arg) {
    double now = PyFloat_AsDouble(arg);
    if (now == -1.0 && PyErr_Occurred())
        return NULL;
    long long sent = pacer_drain(p, now);
    return sent < 0 ? NULL : PyLong_FromLongLong(sent);
}

static PyObject *Pacer_clear_queue(Pacer *p, PyObject *unused) {
    (void)unused;
    queue_clear(p);
    Py_RETURN_NONE;
}

static PyObject *Pacer_get_oldest(Pacer *p, void *closure) {
    (void)closure;
    double oldest = -1.0;
    for (int c = 0; c < PACER_CLASSES; c++) {
        PacerRing *r = &p->ring[c];
        if (r->count > 0 && (oldest < 0 || r->q[r->head].at < oldest))
            oldest = r->q[r->head].at;
    }
    return PyFloat_FromDouble(oldest);
}

/* oldest_in(cls) -> clock when class `cls`'s oldest waiting packet was queued, -1 none. */
static PyObject *Pacer_oldest_in(Pacer *p, PyObject *arg) {
    long cls = PyLong_AsLong(arg);
    if (cls == -1 && PyErr_Occurred())
        return NULL;
    PacerRing *r = &p->ring[cls < 0 ? 0 : cls >= PACER_CLASSES ? PACER_CLASSES - 1 : (int)cls];
    return PyFloat_FromDouble(r->count > 0 ? r->q[r->head].at : -1.0);
}

/* dropped_by: (dropped of class 0, of class 1, ...). */
static PyObject *Pacer_get_dropped_by(Pacer *p, void *closure) {
    (void)closure;
    PyObject *t = PyTuple_New(PACER_CLASSES);
    if (t == NULL)
        return NULL;
    for (int c = 0; c < PACER_CLASSES; c++) {
        PyObject *n = PyLong_FromLongLong(p->ring[c].dropped);
        if (n == NULL) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, c, n);
    }
    return t;
}

static PyMemberDef Pacer_members[] = {
    {"rate", T_DOUBLE, offsetof(Pacer, rate), READONLY, "rate: bit/s"},
    {"tokens", T_DOUBLE, offsetof(Pacer, tokens), 0, "tokens: bits in the bucket (below zero: in debt)"},
    {"burst", T_DOUBLE, offsetof(Pacer, burst), READONLY, "burst: the bucket's size in bits"},
    {"last", T_DOUBLE, offsetof(Pacer, last), 0, "last: clock of the last refill, -1 none"},
    {"queued", T_LONGLONG, offsetof(Pacer, queued), READONLY, "queued: packets waiting in the queue"},
    {"sent_queued", T_LONGLONG, offsetof(Pacer, sent_queued), READONLY, "sent_queued: packets sent from the queue"},
    {"dropped", T_LONGLONG, offsetof(Pacer, dropped), READONLY, "dropped: packets dropped from the queue"},
    {"superseded", T_LONGLONG, offsetof(Pacer, superseded), READONLY,
     "superseded: packets dropped from the queue because a keyframe of their stream came behind them"},
    {"send", T_OBJECT, offsetof(Pacer, send), 0, "send(head, payload, padding): Python's way out"},
    {"on_queue", T_OBJECT, offsetof(Pacer, on_queue), 0, "on_queue(): the C fan-out queued, no timer armed"},
    {"armed", T_BOOL, offsetof(Pacer, armed), 0, "armed: Python's drain timer is set"},
    {NULL},
};

static PyGetSetDef Pacer_getset[] = {
    {"oldest", (getter)Pacer_get_oldest, NULL, "oldest: clock when the oldest waiting packet was queued, -1 none",
     NULL},
    {"dropped_by", (getter)Pacer_get_dropped_by, NULL, "dropped_by: (class 0's dropped, class 1's, ...)", NULL},
    {NULL},
};

static PyMethodDef Pacer_methods[] = {
    {"set_rate", (PyCFunction)Pacer_set_rate, METH_O, "set_rate(rate): the rate and the burst that goes with it"},
    {"refill", (PyCFunction)Pacer_refill, METH_O, "refill(now): add the bits earned since the last call"},
    {"admit", (PyCFunction)Pacer_admit, METH_VARARGS, "admit(size, audio, now, cls=0) -> may the packet go now"},
    {"take", (PyCFunction)Pacer_take, METH_VARARGS, "take(size, now): a packet's bits, as it is sent"},
    {"wait", (PyCFunction)Pacer_wait, METH_NOARGS, "wait() -> seconds until the bucket is not empty"},
    {"push", (PyCFunction)Pacer_push, METH_VARARGS,
     "push(head, payload, padding, ast_off, now, cls=0, key=None, keyframe=False) -> queued (False: the queue is "
     "full, dropped)"},
    {"drain", (PyCFunction)Pacer_drain, METH_O, "drain(now) -> packets sent from the queue"},
    {"clear", (PyCFunction)Pacer_clear_queue, METH_NOARGS, "clear(): drop what waits (not counted)"},
    {"oldest_in", (PyCFunction)Pacer_oldest_in, METH_O, "oldest_in(cls) -> clock when its oldest was queued, -1 none"},
    {NULL},
};

PyTypeObject PacerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sfu._fanout.Pacer",
    .tp_doc = "Pacer: a down transport's token bucket and its queue (sfu.pacer.TokenBucket in C)",
    .tp_basicsize = sizeof(Pacer),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Pacer_init,
    .tp_traverse = (traverseproc)Pacer_traverse,
    .tp_clear = (inquiry)Pacer_clear,
    .tp_dealloc = (destructor)Pacer_dealloc,
    .tp_methods = Pacer_methods,
    .tp_members = Pacer_members,
    .tp_getset = Pacer_getset,
};

int pacer_add_types(PyObject *module) {
    if (module_add_type(module, &PacerType, "Pacer") < 0)
        return -1;
    if (contract_constant("PACER_BURST_SECONDS", PyFloat_FromDouble(PACER_BURST_SECONDS)) < 0 ||
        contract_constant("PACER_MIN_BURST_BITS", PyFloat_FromDouble(PACER_MIN_BURST_BITS)) < 0 ||
        contract_constant("PACER_OVERHEAD", PyLong_FromLong(PACER_OVERHEAD)) < 0 ||
        contract_constant("PACER_MAX_QUEUE_SECONDS", PyFloat_FromDouble(PACER_MAX_QUEUE_SECONDS)) < 0 ||
        contract_constant("PACER_MAX_SCREEN_QUEUE_SECONDS", PyFloat_FromDouble(PACER_MAX_SCREEN_QUEUE_SECONDS)) < 0 ||
        contract_constant("PACER_SUPERSEDE_AFTER", PyFloat_FromDouble(PACER_SUPERSEDE_AFTER)) < 0 ||
        contract_constant("PACER_MAX_QUEUE", PyLong_FromLong(PACER_MAX_QUEUE)) < 0 ||
        contract_constant("PACER_CLASSES", PyLong_FromLong(PACER_CLASSES)) < 0)
        return -1;
    return 0;
}
