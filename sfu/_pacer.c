/* _pacer: Pacer, a down transport's token bucket in C (the twin of sfu.pacer.TokenBucket, same fields and
 * arithmetic; tests/sfu/test_pacer.py runs both on the same steps). The C fan-out (fanout_run) asks the bucket
 * of each slot that has one (Slot.set_pacer) before sending: audio always goes and takes its bits, video goes
 * only while nothing waits in the Python queue (sfu.pacer.Pacer) and the bucket is not empty; otherwise the
 * slot is left to Python, which queues the packet. */
#include "_fanout.h"

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

int pacer_admit(Pacer *p, long long size, int audio, double now) {
    pacer_refill(p, now);
    if (audio || (p->queued == 0 && p->tokens >= 0)) {
        p->tokens -= (double)((size + PACER_OVERHEAD) * 8);
        return 1;
    }
    return 0;
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
    p->queued = 0;
    return 0;
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
    int audio;
    double now;
    if (!PyArg_ParseTuple(args, "Lpd", &size, &audio, &now))
        return NULL;
    return PyBool_FromLong(pacer_admit(p, size, audio, now));
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

static PyMemberDef Pacer_members[] = {
    {"rate", T_DOUBLE, offsetof(Pacer, rate), READONLY, "rate: bit/s"},
    {"tokens", T_DOUBLE, offsetof(Pacer, tokens), 0, "tokens: bits in the bucket (below zero: in debt)"},
    {"burst", T_DOUBLE, offsetof(Pacer, burst), READONLY, "burst: the bucket's size in bits"},
    {"last", T_DOUBLE, offsetof(Pacer, last), 0, "last: clock of the last refill, -1 none"},
    {"queued", T_LONGLONG, offsetof(Pacer, queued), 0, "queued: packets waiting in the Python queue"},
    {NULL},
};

static PyMethodDef Pacer_methods[] = {
    {"set_rate", (PyCFunction)Pacer_set_rate, METH_O, "set_rate(rate): the rate and the burst that goes with it"},
    {"refill", (PyCFunction)Pacer_refill, METH_O, "refill(now): add the bits earned since the last call"},
    {"admit", (PyCFunction)Pacer_admit, METH_VARARGS, "admit(size, audio, now) -> may the packet go now"},
    {"take", (PyCFunction)Pacer_take, METH_VARARGS, "take(size, now): a queued packet's bits, as it is sent"},
    {"wait", (PyCFunction)Pacer_wait, METH_NOARGS, "wait() -> seconds until the bucket is not empty"},
    {NULL},
};

PyTypeObject PacerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sfu._fanout.Pacer",
    .tp_doc = "Pacer: a down transport's token bucket (sfu.pacer.TokenBucket in C)",
    .tp_basicsize = sizeof(Pacer),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Pacer_init,
    .tp_methods = Pacer_methods,
    .tp_members = Pacer_members,
};

int pacer_add_types(PyObject *module) {
    if (PyType_Ready(&PacerType) < 0)
        return -1;
    Py_INCREF(&PacerType);
    if (PyModule_AddObject(module, "Pacer", (PyObject *)&PacerType) < 0) {
        Py_DECREF(&PacerType);
        return -1;
    }
    if (contract_constant("PACER_BURST_SECONDS", PyFloat_FromDouble(PACER_BURST_SECONDS)) < 0 ||
        contract_constant("PACER_MIN_BURST_BITS", PyFloat_FromDouble(PACER_MIN_BURST_BITS)) < 0 ||
        contract_constant("PACER_OVERHEAD", PyLong_FromLong(PACER_OVERHEAD)) < 0)
        return -1;
    return 0;
}
