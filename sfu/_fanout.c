/* _fanout: the SFU's per-packet fan-out in C (optional; sfu/consumer.py and sfu/producer.py fall back to Python).
 *
 * One Slot per Consumer holds the header rewriter state (same fields and semantics as
 * sfu.rewriter.HeaderRewriter), the slot's header template, the 128-entry NACK history, the send counters and,
 * once bound by sfu.hooks.wire.PacketWire, the route: socket object, remote address, libsrtp session
 * (srtp_t pointer, kept alive by a reference to the pylibsrtp Session) and the srtp_protect function address.
 *
 * fanout(slots, inbound, payload, ssrc, seq, ts, marker, keyframe, ntp, padding, now) rewrites, protects and
 * sends (or, when the slot's pacer holds video back, queues there: sfu/_pacer.c) one inbound packet for every
 * slot in the steady state and returns the indexes of the slots Python must
 * handle itself (no route yet, source switch, packet older than the source's start or than a dropped run), or
 * None; a slot without a header template (its sender not ready) is skipped. A VP8 slot also drops temporal layers above its tid_target and writes its own PictureID and TL0PICIDX
 * (HeaderRewriter.map_vp8; the descriptor is read once per packet, only when a VP8 slot is there).
 */
#include "_fanout.h"
#include "_vp8.h"

/* slot_vp8_reset: the VP8 fields of a new Slot (HeaderRewriter.__init__); the first frame gets first_pic/first_tl0. */
static void slot_vp8_reset(Slot *s, unsigned int first_pic, unsigned int first_tl0) {
    s->max_in = 0;
    s->pic_offset = 0;
    s->tl0_offset = 0;
    s->last_pic = (first_pic - 1) & 0x7FFF;
    s->last_tl0 = (first_tl0 - 1) & 0xFF;
    s->in_pic = -1;
    s->tid_target = ALL_LAYERS;
    s->tid_cur = ALL_LAYERS;
    s->drop_pic = -1;
    s->run_floor = -1;
    s->nruns = 0;
}

static int Slot_init(Slot *s, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"clock_rate", "frame_ticks", "first_seq", "first_ts", "video", "vp8", "first_pic",
                             "first_tl0", NULL};
    int clock_rate, frame_ticks, video = 0, vp8 = 0;
    unsigned int first_seq, first_ts, first_pic = 0, first_tl0 = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "iiII|ppII", kwlist, &clock_rate, &frame_ticks, &first_seq, &first_ts,
                                     &video, &vp8, &first_pic, &first_tl0))
        return -1;
    s->vp8 = (char)vp8;
    slot_vp8_reset(s, first_pic, first_tl0);
    s->clock_rate = clock_rate;
    s->frame_ticks = frame_ticks;
    s->last_seq = (first_seq - 1) & 0xFFFF;
    s->last_ts = first_ts;
    s->last_time = -1.0;
    s->src_ssrc = -1;
    s->pending = 1;
    s->base_seq = 0;
    s->seq_offset = 0;
    s->ts_offset = 0;
    s->old_drops = 0;
    s->drop_mark = -1;
    s->waiting_keyframe = (char)video;
    s->audio = (char)!video;
    for (int i = 0; i < HIST; i++) {
        Py_CLEAR(s->hist[i].inbound);
        s->hist[i].seq = 0x10000;
    }
    return 0;
}

static int Slot_traverse(Slot *s, visitproc visit, void *arg) {
    if (route_traverse(&s->route, visit, arg))
        return -1;
    Py_VISIT(s->pacer);
    for (int i = 0; i < HIST; i++)
        Py_VISIT(s->hist[i].inbound);
    return 0;
}

static int Slot_clear(Slot *s) {
    route_clear(&s->route);
    Py_CLEAR(s->pacer);
    for (int i = 0; i < HIST; i++)
        Py_CLEAR(s->hist[i].inbound);
    return 0;
}

static void Slot_dealloc(Slot *s) {
    PyObject_GC_UnTrack(s);
    Slot_clear(s);
    Py_TYPE(s)->tp_free((PyObject *)s);
}

static PyObject *Slot_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    Slot *s = (Slot *)type->tp_alloc(type, 0);
    if (s != NULL) {
        for (int i = 0; i < HIST; i++)
            s->hist[i].seq = 0x10000;
        s->last_time = -1.0;
        s->src_ssrc = -1;
        s->pending = 1;
        s->drop_mark = -1;
        s->remb = -1;
        s->lsr = -1;
        s->rtt = -1.0;
        slot_vp8_reset(s, 0, 0);
    }
    return (PyObject *)s;
}

#define RTT_ALPHA 0.85  /* aiortc.rtcrtpsender.RTT_ALPHA (the contract, sfu/twins.py) */

void slot_report(Slot *s, int fraction_lost, int packets_lost, unsigned int jitter, unsigned int lsr,
                 unsigned int dlsr, double now) {
    if (s->lsr >= 0 && (long long)lsr == s->lsr && dlsr) {
        double rtt = now - s->lsr_time - dlsr / 65536.0;
        s->rtt = s->rtt < 0 ? rtt : RTT_ALPHA * s->rtt + (1 - RTT_ALPHA) * rtt;
    }
    s->fraction_lost = fraction_lost;
    s->packets_lost = packets_lost;
    s->jitter = jitter;
    s->reports++;
}

/* report(fraction_lost, packets_lost, jitter, lsr, dlsr, now): slot_report from Python */
static PyObject *Slot_report(Slot *s, PyObject *args) {
    int fraction_lost, packets_lost;
    unsigned int jitter, lsr, dlsr;
    double now;
    if (!PyArg_ParseTuple(args, "iiIIId", &fraction_lost, &packets_lost, &jitter, &lsr, &dlsr, &now))
        return NULL;
    slot_report(s, fraction_lost, packets_lost, jitter, lsr, dlsr, now);
    Py_RETURN_NONE;
}

static PyObject *Slot_switch(Slot *s, PyObject *unused) {
    s->pending = 1;
    Py_RETURN_NONE;
}

static inline int slot_steady(Slot *s, long long ssrc, unsigned int seq) {
    return !s->pending && ssrc == s->src_ssrc && ((seq - s->base_seq) & 0xFFFF) < 0x8000 &&
           (!s->nruns || ((seq - s->runs[s->nruns - 1].end) & 0xFFFF) < 0x8000);
}

/* slot_advance: HeaderRewriter.advance (a forwarded packet; the newest moves the output and slides the base). */
static inline void slot_advance(Slot *s, unsigned int seq, unsigned int out_seq, unsigned int out_ts, double now,
                                int pic, int tl0) {
    if (((out_seq - s->last_seq) & 0xFFFF) < 0x8000) {
        s->last_seq = out_seq;
        s->last_ts = out_ts;
        s->last_time = now;
        if (pic >= 0)
            s->last_pic = (unsigned int)pic;
        if (tl0 >= 0)
            s->last_tl0 = (unsigned int)tl0;
        if (((seq - s->base_seq) & 0xFFFF) > DROP_WINDOW)
            s->base_seq = (seq - DROP_WINDOW) & 0xFFFF;
    }
}

static PyObject *Slot_steady(Slot *s, PyObject *args) {
    long long ssrc;
    unsigned int seq;
    if (!PyArg_ParseTuple(args, "LI", &ssrc, &seq))
        return NULL;
    return PyBool_FromLong(slot_steady(s, ssrc, seq));
}

/* slot_map: HeaderRewriter.map_parsed with the clock read by the caller (`now`; d NULL: no descriptor); 1 with the
 * output in *o_seq, *o_ts, *o_pic, *o_tl0 (-1: none), 0 to drop the packet. */
static int slot_map(Slot *s, long long ssrc, unsigned int seq, unsigned int ts, int keyframe, const Vp8Desc *d,
                    double now, unsigned int *o_seq, unsigned int *o_ts, int *o_pic, int *o_tl0) {
    seq &= 0xFFFF;
    if (!s->pending && ssrc == s->src_ssrc && ((seq - s->base_seq) & 0xFFFF) >= 0x8000) {
        if (s->drop_mark != (long long)s->last_seq) {
            s->drop_mark = s->last_seq;
            s->old_drops = 0;
        }
        if (++s->old_drops < RESYNC_AFTER)
            return 0;  /* older than the base */
        s->pending = 1;  /* the source restarted its numbering */
    }
    unsigned int prev = s->max_in, seq_off, pic_off;
    int newest = 1;
    if (s->pending || ssrc != s->src_ssrc) {
        long long delta = 0;
        if (s->last_time >= 0) {
            double elapsed = (now - s->last_time) * s->clock_rate;
            long long e = (long long)(elapsed >= 0 ? elapsed + 0.5 : elapsed - 0.5);
            delta = e > s->frame_ticks ? e : s->frame_ticks;
        }
        unsigned int out_seq = (s->last_seq + 1) & 0xFFFF;
        unsigned int out_ts = (unsigned int)((s->last_ts + (unsigned long long)delta) & 0xFFFFFFFFu);
        s->seq_offset = (out_seq - seq) & 0xFFFF;
        s->ts_offset = out_ts - ts;
        s->base_seq = seq;
        s->src_ssrc = ssrc;
        s->pending = 0;
        s->old_drops = 0;
        s->drop_mark = -1;
        s->max_in = seq;
        s->nruns = 0;
        s->run_floor = -1;
        s->drop_pic = -1;
        s->in_pic = -1;
        if (d != NULL && d->pic >= 0)
            s->pic_offset = (s->last_pic + 1 - (unsigned int)d->pic) & 0x7FFF;
        if (d != NULL && d->tl0 >= 0)
            s->tl0_offset = (s->last_tl0 + 1 - (unsigned int)d->tl0) & 0xFF;
        seq_off = s->seq_offset;
        pic_off = s->pic_offset;
    } else if (((seq - prev - 1) & 0xFFFF) < 0x7FFF) {
        s->max_in = seq;
        seq_off = s->seq_offset;
        pic_off = s->pic_offset;
    } else {
        newest = 0;
        if (!slot_region(s, seq, &seq_off, &pic_off))
            return 0;
    }
    int pic = -1, tl0 = -1;
    if (d != NULL) {
        if (d->pic >= 0) {
            pic = vp8_unwrap(d, s->in_pic);
            if (newest)
                s->in_pic = pic;
        }
        if (d->tid >= 0) {
            if (newest && d->start)
                slot_layer(s, d, keyframe);
            if (d->tid > s->tid_cur) {
                if (newest)
                    slot_drop(s, seq, prev, pic);
                return 0;
            }
        }
        if (pic >= 0)
            pic = (int)((pic + pic_off) & 0x7FFF);
        if (d->tl0 >= 0)
            tl0 = (int)((d->tl0 + s->tl0_offset) & 0xFF);
    }
    *o_seq = (seq + seq_off) & 0xFFFF;
    *o_ts = ts + s->ts_offset;
    *o_pic = pic;
    *o_tl0 = tl0;
    slot_advance(s, seq, *o_seq, *o_ts, now, pic, tl0);
    return 1;
}

/* map(ssrc, seq, ts, now): HeaderRewriter.map with the clock read by the caller. */
static PyObject *Slot_map(Slot *s, PyObject *args) {
    long long ssrc;
    unsigned int seq, ts, out_seq, out_ts;
    int pic, tl0;
    double now;
    if (!PyArg_ParseTuple(args, "LIId", &ssrc, &seq, &ts, &now))
        return NULL;
    if (!slot_map(s, ssrc, seq, ts, 1, NULL, now, &out_seq, &out_ts, &pic, &tl0))
        Py_RETURN_NONE;
    return Py_BuildValue("(II)", out_seq, out_ts);
}

/* map_vp8(ssrc, seq, ts, keyframe, payload, now): HeaderRewriter.map_vp8 -> (seq, ts, pic, tl0) or None. */
static PyObject *Slot_map_vp8(Slot *s, PyObject *args) {
    long long ssrc;
    unsigned int seq, ts, out_seq, out_ts;
    int keyframe, pic, tl0;
    Py_buffer payload;
    double now;
    if (!PyArg_ParseTuple(args, "LIIpy*d", &ssrc, &seq, &ts, &keyframe, &payload, &now))
        return NULL;
    Vp8Desc d;
    vp8_parse((const unsigned char *)payload.buf, payload.len, &d);
    PyBuffer_Release(&payload);
    if (!slot_map(s, ssrc, seq, ts, keyframe, d.ok ? &d : NULL, now, &out_seq, &out_ts, &pic, &tl0))
        Py_RETURN_NONE;
    return Py_BuildValue("(IIii)", out_seq, out_ts, pic, tl0);
}

static PyObject *Slot_set_head(Slot *s, PyObject *args) {
    Py_buffer head;
    int ast_off, al_off, pt;
    if (!PyArg_ParseTuple(args, "y*iii", &head, &ast_off, &al_off, &pt))
        return NULL;
    /* offsets are 0 (absent) or inside the extension, after the 12-byte fixed header; pt is 7 bits */
    if (head.len < 12 || head.len > MAX_HEAD || ast_off < 0 || (ast_off && (ast_off < 12 || ast_off + 3 > head.len)) ||
        al_off < 0 || (al_off && (al_off < 12 || al_off >= head.len)) || pt < 0 || pt > 127) {
        PyBuffer_Release(&head);
        PyErr_SetString(PyExc_ValueError, "bad header template");
        return NULL;
    }
    memcpy(s->head, head.buf, head.len);
    s->head_len = (int)head.len;
    s->ast_off = ast_off;
    s->al_off = al_off;
    s->pt = pt;
    PyBuffer_Release(&head);
    Py_RETURN_NONE;
}

/* set_route(sock, family, host, port, session, srtp_address, protect_address) -> bool */
static PyObject *Slot_set_route(Slot *s, PyObject *args) {
    return route_set(&s->route, args);
}

/* set_pacer(pacer or None): the wire's bucket this slot asks before sending */
static PyObject *Slot_set_pacer(Slot *s, PyObject *pacer) {
    if (pacer != Py_None && Py_TYPE(pacer) != &PacerType) {
        PyErr_SetString(PyExc_TypeError, "set_pacer: a sfu._fanout.Pacer or None");
        return NULL;
    }
    Py_XSETREF(s->pacer, pacer == Py_None ? NULL : Py_NewRef(pacer));
    Py_RETURN_NONE;
}

static PyObject *Slot_get_pacer(Slot *s, void *closure) {
    return Py_NewRef(s->pacer ? s->pacer : Py_None);
}

static PyObject *Slot_clear_route(Slot *s, PyObject *unused) {
    route_clear(&s->route);
    Py_RETURN_NONE;
}

static PyObject *Slot_remember(Slot *s, PyObject *args) {
    unsigned int seq, ts;
    PyObject *inbound;
    double now;
    int pic = -1, tl0 = -1;
    if (!PyArg_ParseTuple(args, "IIOd|ii", &seq, &ts, &inbound, &now, &pic, &tl0))
        return NULL;
    HistEntry *e = &s->hist[seq & (HIST - 1)];
    Py_INCREF(inbound);
    Py_XSETREF(e->inbound, inbound);
    e->seq = seq & 0xFFFF;
    e->ts = ts;
    e->sent = now;
    e->pic = pic;
    e->tl0 = tl0;
    Py_RETURN_NONE;
}

static PyObject *Slot_recall(Slot *s, PyObject *args) {
    unsigned int seq;
    if (!PyArg_ParseTuple(args, "I", &seq))
        return NULL;
    HistEntry *e = &s->hist[seq & (HIST - 1)];
    if (e->inbound == NULL || e->seq != (seq & 0xFFFF))
        Py_RETURN_NONE;
    return Py_BuildValue("(IIOdii)", e->seq, e->ts, e->inbound, e->sent, e->pic, e->tl0);
}

static PyObject *Slot_take_counts(Slot *s, PyObject *unused) {
    (void)unused;
    PyObject *r = Py_BuildValue("(KK)", s->tx_packets, s->tx_bytes);
    s->tx_packets = 0;
    s->tx_bytes = 0;
    return r;
}

static PyObject *Slot_get_routed(Slot *s, void *closure) {
    return PyBool_FromLong(s->route.srtp != NULL);
}

static PyObject *Slot_get_last_time(Slot *s, void *closure) {
    if (s->last_time < 0)
        Py_RETURN_NONE;
    return PyFloat_FromDouble(s->last_time);
}

static PyObject *Slot_get_src_ssrc(Slot *s, void *closure) {
    if (s->src_ssrc < 0)
        Py_RETURN_NONE;
    return PyLong_FromLongLong(s->src_ssrc);
}

static PyObject *Slot_get_runs(Slot *s, void *closure) {
    PyObject *list = PyList_New(s->nruns);
    for (int i = 0; list != NULL && i < s->nruns; i++) {
        DropRun *r = &s->runs[i];
        PyObject *t = Py_BuildValue("(IIII)", r->start, r->end, r->seq_before, r->pic_before);
        if (t == NULL) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, i, t);
    }
    return list;
}

static PyObject *Slot_get_rtt(Slot *s, void *closure) {
    if (s->rtt < 0)
        Py_RETURN_NONE;
    return PyFloat_FromDouble(s->rtt);
}

static int Slot_set_rtt(Slot *s, PyObject *value, void *closure) {
    double rtt = value == NULL || value == Py_None ? -1.0 : PyFloat_AsDouble(value);
    if (rtt == -1.0 && PyErr_Occurred())
        return -1;
    s->rtt = rtt < 0 ? -1.0 : rtt;
    return 0;
}

static PyGetSetDef Slot_getset[] = {
    {"rtt", (getter)Slot_get_rtt, (setter)Slot_set_rtt, "rtt: round-trip time in seconds from the reports, or None",
     NULL},
    {"pacer", (getter)Slot_get_pacer, NULL, "pacer: the wire's Pacer this slot asks before sending, or None", NULL},
    {"routed", (getter)Slot_get_routed, NULL, "routed: a route (socket, address, SRTP session) is bound", NULL},
    {"last_time", (getter)Slot_get_last_time, NULL, "last_time: clock of the last mapped packet or None", NULL},
    {"src_ssrc", (getter)Slot_get_src_ssrc, NULL, "src_ssrc: SSRC of the current source or None", NULL},
    {"runs", (getter)Slot_get_runs, NULL, "runs: [(start, end, seq offset before, PictureID offset before)]", NULL},
    {NULL},
};

static PyMemberDef Slot_members[] = {
    {"clock_rate", T_INT, offsetof(Slot, clock_rate), READONLY, NULL},
    {"frame_ticks", T_INT, offsetof(Slot, frame_ticks), READONLY, NULL},
    {"last_seq", T_UINT, offsetof(Slot, last_seq), READONLY, NULL},
    {"last_ts", T_UINT, offsetof(Slot, last_ts), READONLY, NULL},
    {"seq_offset", T_UINT, offsetof(Slot, seq_offset), READONLY, NULL},
    {"base_seq", T_UINT, offsetof(Slot, base_seq), READONLY, "base_seq: packets older than this are dropped"},
    {"old_drops", T_INT, offsetof(Slot, old_drops), READONLY, "old_drops: dropped as older since the last advance"},
    {"ts_offset", T_UINT, offsetof(Slot, ts_offset), READONLY, NULL},
    {"waiting_keyframe", T_BOOL, offsetof(Slot, waiting_keyframe), 0, NULL},
    {"supersede", T_BOOL, offsetof(Slot, supersede), 0,
     "supersede: its keyframes are told apart (VP8, H.264): one that must wait in the wire's Pacer drops this slot's "
     "older packets waiting there"},
    {"pace_class", T_INT, offsetof(Slot, pace_class), 0,
     "pace_class: its video's class in the wire's Pacer (sfu.pacer.pace_class; 0, the default, leaves first)"},
    {"vp8", T_BOOL, offsetof(Slot, vp8), READONLY, "vp8: descriptors are read, filtered and rewritten"},
    {"max_in", T_UINT, offsetof(Slot, max_in), READONLY, "max_in: the newest input sequence number"},
    {"pic_offset", T_UINT, offsetof(Slot, pic_offset), READONLY, NULL},
    {"tl0_offset", T_UINT, offsetof(Slot, tl0_offset), READONLY, NULL},
    {"last_pic", T_UINT, offsetof(Slot, last_pic), READONLY, NULL},
    {"last_tl0", T_UINT, offsetof(Slot, last_tl0), READONLY, NULL},
    {"in_pic", T_INT, offsetof(Slot, in_pic), READONLY, NULL},
    {"tid_target", T_INT, offsetof(Slot, tid_target), 0, "tid_target: the highest temporal layer wanted, 255 all"},
    {"tid_cur", T_INT, offsetof(Slot, tid_cur), READONLY, "tid_cur: the highest temporal layer forwarded now"},
    {"drop_pic", T_INT, offsetof(Slot, drop_pic), READONLY, NULL},
    {"run_floor", T_INT, offsetof(Slot, run_floor), READONLY, NULL},
    {"packets_sent", T_ULONGLONG, offsetof(Slot, packets_sent), 0, NULL},
    {"bytes_sent", T_ULONGLONG, offsetof(Slot, bytes_sent), 0, NULL},
    {"last_ntp", T_ULONGLONG, offsetof(Slot, last_ntp), 0, NULL},
    {"last_out_ts", T_UINT, offsetof(Slot, last_out_ts), 0, NULL},
    {"c_sent", T_ULONGLONG, offsetof(Slot, c_sent), READONLY, NULL},
    {"pacer_dropped", T_ULONGLONG, offsetof(Slot, pacer_dropped), READONLY,
     "pacer_dropped: of packets_sent, dropped in the wire's Pacer before they left (waited too long, or it was full)"},
    {"send_errors", T_ULONGLONG, offsetof(Slot, send_errors), READONLY, NULL},
    {"fraction_lost", T_INT, offsetof(Slot, fraction_lost), READONLY, "fraction_lost: last report's, in 1/256"},
    {"packets_lost", T_INT, offsetof(Slot, packets_lost), READONLY, "packets_lost: last report's (cumulative)"},
    {"jitter", T_UINT, offsetof(Slot, jitter), READONLY, "jitter: last report's, RTP timestamp units"},
    {"reports", T_ULONGLONG, offsetof(Slot, reports), READONLY, "reports: report blocks taken"},
    {"remb", T_LONGLONG, offsetof(Slot, remb), 0, "remb: the subscriber's estimate in bit/s, -1 none"},
    {"lsr", T_LONGLONG, offsetof(Slot, lsr), 0, "lsr: middle 32 bits of our last SR's NTP time, -1 none"},
    {"lsr_time", T_DOUBLE, offsetof(Slot, lsr_time), 0, "lsr_time: when that SR was sent (time.time())"},
    {NULL},
};

static PyMethodDef Slot_methods[] = {
    {"switch", (PyCFunction)Slot_switch, METH_NOARGS, "switch marks a source change"},
    {"steady", (PyCFunction)Slot_steady, METH_VARARGS, "steady(ssrc, seq): same source, not older than its start"},
    {"map", (PyCFunction)Slot_map, METH_VARARGS, "map(ssrc, seq, ts, now) -> (seq, ts) or None"},
    {"map_vp8", (PyCFunction)Slot_map_vp8, METH_VARARGS,
     "map_vp8(ssrc, seq, ts, keyframe, payload, now) -> (seq, ts, picture_id, tl0picidx) or None"},
    {"set_head", (PyCFunction)Slot_set_head, METH_VARARGS, "set_head(head, ast_off, al_off, pt)"},
    {"set_route", (PyCFunction)Slot_set_route, METH_VARARGS,
     "set_route(sock, family, host, port, session, srtp_address, protect_address) -> bool"},
    {"clear_route", (PyCFunction)Slot_clear_route, METH_NOARGS, "clear_route forgets the route"},
    {"set_pacer", (PyCFunction)Slot_set_pacer, METH_O, "set_pacer(pacer or None): the bucket asked before sending"},
    {"remember", (PyCFunction)Slot_remember, METH_VARARGS,
     "remember(seq, ts, inbound, now, pic=-1, tl0=-1) in the history"},
    {"take_counts", (PyCFunction)Slot_take_counts, METH_NOARGS,
     "take_counts() -> (packets, octets) sent by fanout since the previous call"},
    {"recall", (PyCFunction)Slot_recall, METH_VARARGS, "recall(seq) -> (seq, ts, inbound, sent, pic, tl0) or None"},
    {"report", (PyCFunction)Slot_report, METH_VARARGS,
     "report(fraction_lost, packets_lost, jitter, lsr, dlsr, now): one report block about this slot"},
    {NULL},
};

PyTypeObject SlotType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sfu._fanout.Slot",
    .tp_doc = "Slot: rewrite state, header template, history, counters and route of one Consumer",
    .tp_basicsize = sizeof(Slot),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = Slot_new,
    .tp_init = (initproc)Slot_init,
    .tp_dealloc = (destructor)Slot_dealloc,
    .tp_traverse = (traverseproc)Slot_traverse,
    .tp_clear = (inquiry)Slot_clear,
    .tp_methods = Slot_methods,
    .tp_members = Slot_members,
    .tp_getset = Slot_getset,
};

/* fanout(slots, inbound, payload, ssrc, seq, ts, marker, keyframe, ntp, padding, audio_level, now) */
static PyObject *fanout(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 12 || !PyTuple_Check(args[0]) || !PyBytes_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError,
                        "fanout(slots: tuple, inbound, payload: bytes, ssrc, seq, ts, marker, keyframe, ntp, padding, "
                        "audio_level, now)");
        return NULL;
    }
    long long ssrc = PyLong_AsLongLong(args[3]);
    unsigned long seq = PyLong_AsUnsignedLong(args[4]) & 0xFFFF;
    unsigned long ts = PyLong_AsUnsignedLong(args[5]);
    long marker = PyLong_AsLong(args[6]);
    int keyframe = PyObject_IsTrue(args[7]);
    unsigned long long ntp = PyLong_AsUnsignedLongLong(args[8]);
    long padding = PyLong_AsLong(args[9]);
    long level = PyLong_AsLong(args[10]);
    double now = PyFloat_AsDouble(args[11]);
    if (PyErr_Occurred())
        return NULL;
    if (padding < 0 || padding > 255) {  /* RFC 3550: the last padding octet counts the padding, itself included */
        PyErr_SetString(PyExc_ValueError, "fanout: padding must be 0..255");
        return NULL;
    }
    return fanout_run(args[0], args[1], (const unsigned char *)PyBytes_AS_STRING(args[2]), PyBytes_GET_SIZE(args[2]),
                      ssrc, (unsigned int)seq, (unsigned int)ts, (int)marker, keyframe, ntp, (int)padding, (int)level,
                      now);
}

PyObject *fanout_run(PyObject *slots, PyObject *inbound, const unsigned char *pl, Py_ssize_t plen, long long ssrc,
                     unsigned int seq, unsigned int ts, int marker, int keyframe, unsigned long long ntp, int padding,
                     int level, double now) {
    unsigned int ast = (unsigned int)((ntp >> 14) & 0xFFFFFF);
    PyObject *rest = NULL;
    unsigned char buf[BUF_SIZE];
    Vp8Desc d = {0};  /* read (vp8_parse) before any use; initialised for the compiler */
    int parsed = 0;  /* the descriptor is read once, at the first VP8 slot */
    Py_ssize_t n = PyTuple_GET_SIZE(slots);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *o = PyTuple_GET_ITEM(slots, i);
        if (Py_TYPE(o) != &SlotType)
            goto python;
        Slot *s = (Slot *)o;
        if (s->pacer != NULL && ((Pacer *)s->pacer)->queued > 0
                && pacer_drain((Pacer *)s->pacer, now) < 0) {  /* what waits goes first, as far as it may */
            Py_XDECREF(rest);
            return NULL;
        }  /* before this slot's checks: sending what waits may run Python (a packet of its path: a resend), which
            * may change the slot (its route, its header) */
        if (s->head_len == 0)
            continue;  /* its sender is not ready (no header yet): Consumer.forward would do nothing */
        if (s->route.srtp == NULL || s->head_len + plen + padding + s->vp8 > MAX_PLAIN)  /* VP8: PictureID widened */
            goto python;
        if (s->waiting_keyframe) {
            if (!keyframe)
                continue;
            s->waiting_keyframe = 0;
        }
        if (!slot_steady(s, ssrc, (unsigned int)seq))
            goto python;
        int queue_it = 0;
        if (s->pacer != NULL)  /* the bucket is empty or video waits: rewritten as usual, it waits in the queue */
            queue_it = !pacer_admit((Pacer *)s->pacer, s->head_len + plen + padding, s->audio, s->pace_class,
                                     now);
        /* slot_map in the steady state: not older than the newest dropped run, so the current offsets apply */
        unsigned int prev = s->max_in;
        int newest = ((seq - prev - 1) & 0xFFFF) < 0x7FFF;
        if (newest)
            s->max_in = seq;
        int pic = -1, tl0 = -1;
        if (s->vp8) {
            if (!parsed) {
                vp8_parse(pl, plen, &d);
                parsed = 1;
            }
            if (d.pic >= 0) {
                pic = vp8_unwrap(&d, s->in_pic);
                if (newest)
                    s->in_pic = pic;
            }
            if (d.tid >= 0) {  /* temporal layers */
                if (newest && d.start)
                    slot_layer(s, &d, keyframe);
                if (d.tid > s->tid_cur) {
                    if (newest)
                        slot_drop(s, seq, prev, pic);
                    continue;
                }
            }
            if (pic >= 0)
                pic = (int)((pic + s->pic_offset) & 0x7FFF);
            if (d.tl0 >= 0)
                tl0 = (int)((d.tl0 + s->tl0_offset) & 0xFF);
        }
        unsigned int out_seq = (unsigned int)(seq + s->seq_offset) & 0xFFFF;
        unsigned int out_ts = (unsigned int)ts + s->ts_offset;
        slot_advance(s, seq, out_seq, out_ts, now, pic, tl0);
        int hl = s->head_len;
        memcpy(buf, s->head, hl);
        buf[1] = (unsigned char)(((marker & 1) << 7) | s->pt);
        buf[2] = (unsigned char)(out_seq >> 8);
        buf[3] = (unsigned char)out_seq;
        buf[4] = (unsigned char)(out_ts >> 24);
        buf[5] = (unsigned char)(out_ts >> 16);
        buf[6] = (unsigned char)(out_ts >> 8);
        buf[7] = (unsigned char)out_ts;
        if (s->ast_off) {
            buf[s->ast_off] = (unsigned char)(ast >> 16);
            buf[s->ast_off + 1] = (unsigned char)(ast >> 8);
            buf[s->ast_off + 2] = (unsigned char)ast;
        }
        if (s->al_off)
            buf[s->al_off] = (unsigned char)level;
        HistEntry *e = &s->hist[out_seq & (HIST - 1)];
        Py_INCREF(inbound);
        Py_XSETREF(e->inbound, inbound);
        e->seq = out_seq;
        e->ts = out_ts;
        e->sent = now;
        e->pic = pic;
        e->tl0 = tl0;
        Py_ssize_t sent_plen = plen;
        if (pic >= 0 || tl0 >= 0)
            sent_plen = vp8_write(buf + hl, pl, plen, &d, pic, tl0);
        else
            memcpy(buf + hl, pl, plen);
        int len = hl + (int)sent_plen;
        if (padding > 0) {
            buf[0] |= 0x20;
            memset(buf + len, 0, padding - 1);
            buf[len + padding - 1] = (unsigned char)padding;
            len += padding;
        }
        if (queue_it) {
            if (pacer_queue_c((Pacer *)s->pacer, o, buf, len, s->ast_off, s->head_len + plen + padding,
                              s->pace_class, keyframe, now) < 0) {
                Py_XDECREF(rest);
                return NULL;
            }
        } else {
            if (route_send(&s->route, buf, len, &len) < 0) {
                s->send_errors++;
                continue;
            }
            s->c_sent++;
            s->tx_bytes += len;
            s->tx_packets++;
        }
        s->packets_sent++;
        s->bytes_sent += sent_plen;
        s->last_ntp = ntp;
        s->last_out_ts = out_ts;
        continue;
    python:
        if (rest == NULL && (rest = PyList_New(0)) == NULL)
            return NULL;
        PyObject *idx = PyLong_FromSsize_t(i);
        if (idx == NULL || PyList_Append(rest, idx) < 0) {
            Py_XDECREF(idx);
            Py_DECREF(rest);
            return NULL;
        }
        Py_DECREF(idx);
    }
    if (rest == NULL)
        Py_RETURN_NONE;
    return rest;
}

static PyMethodDef module_methods[] = {
    {"fanout", (PyCFunction)(void (*)(void))fanout, METH_FASTCALL,
     "fanout(slots, inbound, payload, ssrc, seq, ts, marker, keyframe, ntp, padding, audio_level, now) -> "
     "indexes left to Python or None"},
    {NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "sfu._fanout", "_fanout: the SFU's per-packet fan-out (rewrite, SRTP, sendto) in C", -1,
    module_methods,
};

/* ------------------------------------------------------------------------------------- contract */

static PyObject *contract;  /* sfu._fanout.CONTRACT while the module initialises (borrowed: the module owns it) */

/* contract_append appends `value` to the tuple CONTRACT[section][key]; 0, or -1 with an exception set. */
static int contract_append(const char *section, const char *key, PyObject *value) {
    PyObject *names = PyDict_GetItemString(contract, section);  /* borrowed; made by PyInit__fanout */
    if (names == NULL) {
        PyErr_Format(PyExc_KeyError, "CONTRACT has no %s", section);
        return -1;
    }
    PyObject *one = PyTuple_Pack(1, value);
    if (one == NULL)
        return -1;
    PyObject *old = PyDict_GetItemString(names, key);  /* borrowed; NULL: the first name of this class */
    PyObject *more = old == NULL ? Py_NewRef(one) : PySequence_Concat(old, one);
    Py_DECREF(one);
    if (more == NULL)
        return -1;
    int r = PyDict_SetItemString(names, key, more);
    Py_DECREF(more);
    return r;
}

int contract_reach(const Reach *reach, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if ((*reach[i].var = PyUnicode_InternFromString(reach[i].name)) == NULL ||
            contract_append(reach[i].method ? "methods" : "attributes", reach[i].twin, *reach[i].var) < 0)
            return -1;
    }
    return 0;
}

int contract_constant(const char *name, PyObject *value) {
    if (value == NULL)
        return -1;
    PyObject *constants = PyDict_GetItemString(contract, "constants");  /* borrowed */
    int r = constants != NULL ? PyDict_SetItemString(constants, name, value) : -1;
    Py_DECREF(value);
    return r;
}

int contract_layout(const char *name, const char *const *fields, size_t n) {
    PyObject *layouts = PyDict_GetItemString(contract, "layouts");  /* borrowed */
    PyObject *tuple = PyTuple_New((Py_ssize_t)n);
    if (layouts == NULL || tuple == NULL) {
        Py_XDECREF(tuple);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        PyObject *field = PyUnicode_FromString(fields[i]);
        if (field == NULL) {
            Py_DECREF(tuple);
            return -1;
        }
        PyTuple_SET_ITEM(tuple, (Py_ssize_t)i, field);
    }
    int r = PyDict_SetItemString(layouts, name, tuple);
    Py_DECREF(tuple);
    return r;
}

int module_add_type(PyObject *m, PyTypeObject *type, const char *name) {
    if (PyType_Ready(type) < 0)
        return -1;
    Py_INCREF(type);
    if (PyModule_AddObject(m, name, (PyObject *)type) < 0) {
        Py_DECREF(type);
        return -1;
    }
    return 0;
}

PyMODINIT_FUNC PyInit__fanout(void) {
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
    contract = Py_BuildValue("{s{}s{}s{}s{}}", "attributes", "methods", "constants", "layouts");
    if (contract == NULL || PyModule_AddObject(m, "CONTRACT", contract) < 0) {
        Py_XDECREF(contract);
        contract = NULL;
        Py_DECREF(m);
        return NULL;
    }
    if (module_add_type(m, &SlotType, "Slot") < 0 ||
        contract_constant("DROP_WINDOW", PyLong_FromLong(DROP_WINDOW)) < 0 ||
        contract_constant("DROP_RUNS", PyLong_FromLong(DROP_RUNS)) < 0 ||
        contract_constant("ALL_LAYERS", PyLong_FromLong(ALL_LAYERS)) < 0 ||
        contract_constant("RESYNC_AFTER", PyLong_FromLong(RESYNC_AFTER)) < 0 ||
        contract_constant("HIST", PyLong_FromLong(HIST)) < 0 ||
        contract_constant("MAX_PLAIN", PyLong_FromLong(MAX_PLAIN)) < 0 ||
        contract_constant("NTP_OFFSET", PyFloat_FromDouble(NTP_OFFSET)) < 0 ||
        contract_constant("RTT_ALPHA", PyFloat_FromDouble(RTT_ALPHA)) < 0 ||
        ingress_add_types(m) < 0 || demux_add_types(m) < 0 || rtcp_add_types(m) < 0 || report_add_types(m) < 0 ||
        remb_add_types(m) < 0 || pacer_add_types(m) < 0 || feedback_add_types(m) < 0 ||
        reader_add_types(m) < 0 || cells_add_types(m) < 0) {
        contract = NULL;
        Py_DECREF(m);
        return NULL;
    }
    contract = NULL;
    return m;
}
