/* _remb: aiortc's receive-side bandwidth estimator (aiortc.rate.RemoteBitrateEstimator) in C.
 *
 * A port of aiortc 1.16's RemoteBitrateEstimator with what it uses: RateCounter(1000, 8000), InterArrival,
 * OveruseEstimator (Kalman filter), OveruseDetector and AimdRateControl. The computations follow the Python
 * source operation by operation, so the results are the same bits (tests/sfu/test_remb.py compares every step
 * with the unmodified aiortc class): round() on a float is round-half-to-even (nearbyint), int() truncates, int / int
 * is one correctly rounded double division (exact while the bytes in the 1-s window stay below 2^53 / 8000 and
 * times below 2^53 ms), x ** 2 is libm's pow like CPython's, min()/max() return their first extreme argument,
 * Optional fields have a "set" flag, and no multiply-add is contracted into an FMA (pragmas below).
 *
 * Differences: the SSRCs for the REMB are kept in a fixed array of MAX_SSRCS (16) in first-seen order, a 17th
 * distinct SSRC makes the oldest forgotten (aiortc's dict keeps all); the additive increase at a current bitrate
 * of 0, where aiortc raises ZeroDivisionError, is 4000 bit/s (its minimum). The rate counter keeps aiortc's 1000
 * one-ms buckets, but a pause of a second or more clears them in one step instead of one per millisecond.
 *
 * Ownership: an Estimator holds no Python object (no GC); it belongs to one receiver and runs on the event
 * loop's thread under the GIL (the C ingress path calls estimator_add, Python calls add).
 */
#include "_fanout.h"

#include <math.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#define WINDOW 1000                      /* RateCounter window, ms (a bucket per ms) */
#define SCALE 8000                       /* bytes per ms -> bit/s */
#define BURST_DELTA_THRESHOLD_MS 5
#define MAX_ADAPT_OFFSET_MS 15
#define MIN_NUM_DELTAS 60
#define DELTA_COUNTER_MAX 1000
#define MIN_FRAME_PERIOD_HISTORY_LENGTH 60
#define TIMESTAMP_GROUP_LENGTH_MS 5
#define INTER_ARRIVAL_SHIFT 26
#define GROUP_LENGTH ((TIMESTAMP_GROUP_LENGTH_MS << INTER_ARRIVAL_SHIFT) / 1000)
#define TIMESTAMP_TO_MS (1000.0 / (1 << INTER_ARRIVAL_SHIFT))
#define FEEDBACK_INTERVAL_MS 500
#define MAX_SSRCS 16
#define MAX_EXACT 9007199254740992LL     /* 2^53: the Python method's bound on times and sizes */

enum { NORMAL = 0, UNDERUSING = 1, OVERUSING = 2 };  /* BandwidthUsage */
enum { HOLD = 0, INCREASE = 1, DECREASE = 2 };       /* RateControlState */

static volatile double two = 2.0;  /* x ** 2 is pow(|x|, 2.0) in CPython; volatile: gcc would make it x * x */

typedef struct { long long count, value; } Bucket;

typedef struct {  /* RateCounter(1000, 8000) */
    Bucket buckets[WINDOW], total;
    long long origin_ms;
    int origin_index;
    char origin_set;
} RateCounter;

typedef struct {  /* TimestampGroup */
    long long arrival, size;
    unsigned int first, last;
} Group;

typedef struct {  /* OveruseEstimator */
    double e[2][2], offset, previous_offset, slope, avg_noise, var_noise;
    double hist[MIN_FRAME_PERIOD_HISTORY_LENGTH];  /* ts_delta_hist as a ring: the last 60 values */
    int num_of_deltas, hist_len, hist_next;
} Kalman;

typedef struct {  /* OveruseDetector */
    double overuse_time, previous_offset, threshold;
    long long last_update_ms;
    int hypothesis, overuse_counter;
    char last_update_set, overuse_time_set;
} Detector;

typedef struct {  /* AimdRateControl */
    double avg_max_bitrate_kbps, var_max_bitrate_kbps;
    long long current_bitrate, first_time, last_change_ms, latest_throughput;
    int state;
    char avg_max_set, initialized, first_time_set, last_change_set, near_max;
} Aimd;

typedef struct Estimator {
    PyObject_HEAD
    RateCounter incoming;
    Group cur, prev;  /* InterArrival's current_group and previous_group */
    Kalman kalman;
    Detector det;
    Aimd rc;
    long long last_update_ms;
    unsigned int ssrcs[MAX_SSRCS];
    int nssrcs;
    char incoming_initialized, cur_set, prev_set, last_update_set;
    long long added, octets;  /* calls of estimator_add and their payload sizes (statistics, tests) */
} Estimator;

/* ------------------------------------------------------------------------------------- RateCounter */
static void rc_erase_old(RateCounter *r, long long now_ms) {
    long long new_origin = now_ms - WINDOW + 1, gap = new_origin - r->origin_ms;
    if (gap >= WINDOW) {  /* every bucket expires: one step instead of one per ms */
        memset(r->buckets, 0, sizeof r->buckets);
        r->total.count = r->total.value = 0;
        r->origin_index = (int)((r->origin_index + gap % WINDOW) % WINDOW);
        r->origin_ms = new_origin;
    }
    for (; r->origin_ms < new_origin; r->origin_ms++) {
        Bucket *b = &r->buckets[r->origin_index];
        r->total.count -= b->count;
        r->total.value -= b->value;
        b->count = b->value = 0;
        r->origin_index = (r->origin_index + 1) % WINDOW;
    }
}

static void rc_add(RateCounter *r, long long value, long long now_ms) {
    if (!r->origin_set) {
        r->origin_ms = now_ms;
        r->origin_set = 1;
    } else {
        rc_erase_old(r, now_ms);
    }
    long long index = (r->origin_index + now_ms - r->origin_ms) % WINDOW;
    if (index < 0)
        index += WINDOW;  /* Python's % (an arrival before the origin) */
    r->buckets[index].count++;
    r->buckets[index].value += value;
    r->total.count++;
    r->total.value += value;
}

/* rc_rate: RateCounter.rate; 1 with the rate in *out, 0 for None. */
static int rc_rate(RateCounter *r, long long now_ms, long long *out) {
    if (!r->origin_set)
        return 0;
    rc_erase_old(r, now_ms);
    long long active = now_ms - r->origin_ms + 1;
    if (r->total.count <= 0 || active <= 1)
        return 0;
    *out = (long long)nearbyint((double)(SCALE * r->total.value) / (double)active);
    return 1;
}

/* ------------------------------------------------------------------------------------ InterArrival */
static int uint32_gt(unsigned int a, unsigned int b) {
    return (a < b && b - a > 0x80000000u) || (a > b && a - b < 0x80000000u);
}

static int belongs_to_burst(Estimator *e, unsigned int timestamp, long long arrival) {
    long long timestamp_delta_ms = (long long)nearbyint(TIMESTAMP_TO_MS * (double)(timestamp - e->cur.last));
    long long arrival_time_delta = arrival - e->cur.arrival;
    return timestamp_delta_ms == 0 ||
           (arrival_time_delta - timestamp_delta_ms < 0 && arrival_time_delta <= BURST_DELTA_THRESHOLD_MS);
}

/* compute_deltas: InterArrival.compute_deltas; 1 with the deltas in *d_ts, *d_arrival, *d_size, 0 for None. */
static int compute_deltas(Estimator *e, unsigned int timestamp, long long arrival, long long size,
                          unsigned int *d_ts, long long *d_arrival, long long *d_size) {
    int deltas = 0;
    if (!e->cur_set) {
        e->cur = (Group){0, 0, timestamp, timestamp};
        e->cur_set = 1;
    } else if (timestamp - e->cur.first >= 0x80000000u) {
        return 0;  /* packet_out_of_order */
    } else if (!belongs_to_burst(e, timestamp, arrival) && timestamp - e->cur.first > GROUP_LENGTH) {
        if (e->prev_set) {  /* new_timestamp_group */
            *d_ts = e->cur.last - e->prev.last;
            *d_arrival = e->cur.arrival - e->prev.arrival;
            *d_size = e->cur.size - e->prev.size;
            deltas = 1;
        }
        e->prev = e->cur;
        e->prev_set = 1;
        e->cur = (Group){0, 0, timestamp, timestamp};
    } else if (uint32_gt(timestamp, e->cur.last)) {
        e->cur.last = timestamp;
    }
    e->cur.size += size;
    e->cur.arrival = arrival;
    return deltas;
}

/* -------------------------------------------------------------------------------- OveruseEstimator */
static double update_min_frame_period(Kalman *k, double ts_delta) {
    double min_frame_period = ts_delta;  /* values are >= +0.0, never NaN: the order of the min() is moot */
    k->hist[k->hist_next] = ts_delta;   /* over the oldest of 60: pop(0) */
    k->hist_next = (k->hist_next + 1) % MIN_FRAME_PERIOD_HISTORY_LENGTH;
    if (k->hist_len < MIN_FRAME_PERIOD_HISTORY_LENGTH)
        k->hist_len++;
    for (int i = 0; i < k->hist_len; i++)
        min_frame_period = min_frame_period < k->hist[i] ? min_frame_period : k->hist[i];
    return min_frame_period;
}

static void update_noise_estimate(Kalman *k, double residual, double ts_delta) {
    double alpha = k->num_of_deltas > 10 * 30 ? 0.002 : 0.01;
    double beta = pow(1 - alpha, ts_delta * 30.0 / 1000.0);
    k->avg_noise = beta * k->avg_noise + (1 - beta) * residual;
    k->var_noise = beta * k->var_noise + (1 - beta) * pow(fabs(k->avg_noise - residual), two);
    if (k->var_noise < 1)
        k->var_noise = 1;
}

static void kalman_update(Kalman *k, long long time_delta_ms, double timestamp_delta_ms, long long size_delta,
                          int hypothesis) {
    static const double process_noise[2] = {1e-13, 1e-3};
    double min_frame_period = update_min_frame_period(k, timestamp_delta_ms);
    double t_ts_delta = (double)time_delta_ms - timestamp_delta_ms, h0 = (double)size_delta, h1 = 1.0;
    double (*E)[2] = k->e;

    k->num_of_deltas = k->num_of_deltas + 1 < DELTA_COUNTER_MAX ? k->num_of_deltas + 1 : DELTA_COUNTER_MAX;
    E[0][0] += process_noise[0];
    E[1][1] += process_noise[1];
    if ((hypothesis == OVERUSING && k->offset < k->previous_offset) ||
        (hypothesis == UNDERUSING && k->offset > k->previous_offset))
        E[1][1] += 10 * process_noise[1];

    double Eh0 = E[0][0] * h0 + E[0][1] * h1, Eh1 = E[1][0] * h0 + E[1][1] * h1;
    double residual = t_ts_delta - k->slope * h0 - k->offset;
    if (hypothesis == NORMAL) {
        double max_residual = 3.0 * sqrt(k->var_noise);
        if (fabs(residual) < max_residual)
            update_noise_estimate(k, residual, min_frame_period);
        else
            update_noise_estimate(k, residual < 0 ? -max_residual : max_residual, min_frame_period);
    }
    double denom = k->var_noise + h0 * Eh0 + h1 * Eh1;
    double K0 = Eh0 / denom, K1 = Eh1 / denom;
    double IKh00 = 1.0 - K0 * h0, IKh01 = -K0 * h1, IKh10 = -K1 * h0, IKh11 = 1.0 - K1 * h1;
    double e00 = E[0][0], e01 = E[0][1];
    E[0][0] = e00 * IKh00 + E[1][0] * IKh01;
    E[0][1] = e01 * IKh00 + E[1][1] * IKh01;
    E[1][0] = e00 * IKh10 + E[1][0] * IKh11;
    E[1][1] = e01 * IKh10 + E[1][1] * IKh11;
    k->previous_offset = k->offset;
    k->slope += K0 * residual;
    k->offset += K1 * residual;
}

/* -------------------------------------------------------------------------------- OveruseDetector */
static void update_threshold(Detector *d, double modified_offset, long long now_ms) {
    if (!d->last_update_set) {
        d->last_update_ms = now_ms;
        d->last_update_set = 1;
    }
    if (fabs(modified_offset) > d->threshold + MAX_ADAPT_OFFSET_MS) {
        d->last_update_ms = now_ms;
        return;
    }
    double k = fabs(modified_offset) < d->threshold ? 0.039 : 0.0087;  /* k_down : k_up */
    long long time_delta_ms = now_ms - d->last_update_ms < 100 ? now_ms - d->last_update_ms : 100;
    d->threshold += k * (fabs(modified_offset) - d->threshold) * (double)time_delta_ms;
    double t = 600 < d->threshold ? 600 : d->threshold;  /* max(6, min(threshold, 600)) */
    d->threshold = t > 6 ? t : 6;
    d->last_update_ms = now_ms;
}

static void detect(Detector *d, double offset, double timestamp_delta_ms, int num_of_deltas, long long now_ms) {
    if (num_of_deltas < 2)
        return;  /* NORMAL, the hypothesis left as it is */
    double T = (double)(num_of_deltas < MIN_NUM_DELTAS ? num_of_deltas : MIN_NUM_DELTAS) * offset;
    if (T > d->threshold) {
        if (d->overuse_time_set)
            d->overuse_time += timestamp_delta_ms;
        else
            d->overuse_time = timestamp_delta_ms / 2;
        d->overuse_time_set = 1;
        d->overuse_counter++;
        if (d->overuse_time > 10 && d->overuse_counter > 1 && offset >= d->previous_offset) {
            d->overuse_counter = 0;
            d->overuse_time = 0;
            d->hypothesis = OVERUSING;
        }
    } else {
        d->overuse_counter = 0;
        d->overuse_time_set = 0;
        d->hypothesis = T < -d->threshold ? UNDERUSING : NORMAL;
    }
    d->previous_offset = offset;
    update_threshold(d, T, now_ms);
}

/* -------------------------------------------------------------------------------- AimdRateControl */
static long long near_max_rate_increase(Aimd *a) {
    double bits_per_frame = (double)a->current_bitrate / 30;
    double packets_per_frame = ceil(bits_per_frame / (8 * 1200));
    if (packets_per_frame == 0)
        return 4000;  /* current bitrate 0: aiortc raises ZeroDivisionError; its minimum increase instead */
    double avg_packet_size_bits = bits_per_frame / packets_per_frame;
    long long increase = (long long)((avg_packet_size_bits * 1000) / (200 + 100));  /* response_time: rtt + 100 */
    return 4000 < increase ? increase : 4000;
}

static long long multiplicative_rate_increase(Aimd *a, long long new_bitrate, long long now_ms) {
    double alpha = 1.08;
    if (a->last_change_set) {
        long long elapsed_ms = now_ms - a->last_change_ms < 1000 ? now_ms - a->last_change_ms : 1000;
        alpha = pow(alpha, (double)elapsed_ms / 1000);
    }
    double increase = (alpha - 1) * (double)new_bitrate;
    return 1000 > increase ? 1000 : (long long)increase;  /* int(max(increase, 1000)) */
}

static void update_max_throughput_estimate(Aimd *a, double estimated_throughput_kbps) {
    const double alpha = 0.05;
    if (a->avg_max_set)
        a->avg_max_bitrate_kbps = (1 - alpha) * a->avg_max_bitrate_kbps + alpha * estimated_throughput_kbps;
    else
        a->avg_max_bitrate_kbps = estimated_throughput_kbps;
    a->avg_max_set = 1;
    double norm = a->avg_max_bitrate_kbps > 1 ? a->avg_max_bitrate_kbps : 1;
    a->var_max_bitrate_kbps = (1 - alpha) * a->var_max_bitrate_kbps +
                              alpha * pow(fabs(a->avg_max_bitrate_kbps - estimated_throughput_kbps), two) / norm;
    double v = 2.5 < a->var_max_bitrate_kbps ? 2.5 : a->var_max_bitrate_kbps;
    a->var_max_bitrate_kbps = v > 0.4 ? v : 0.4;
}

/* aimd_update: AimdRateControl.update(usage, throughput or None, now_ms); 1 with the bitrate in *out, 0 for None. */
static int aimd_update(Aimd *a, int usage, int have_throughput, long long throughput, long long now_ms,
                       long long *out) {
    if (!a->initialized && have_throughput) {
        if (!a->first_time_set) {
            a->first_time = now_ms;
            a->first_time_set = 1;
        } else if (now_ms - a->first_time > 3000) {
            a->current_bitrate = throughput;
            a->initialized = 1;
        }
    }
    if (!a->initialized && usage != OVERUSING)
        return 0;  /* wait for initialisation or overuse */

    if (usage == NORMAL && a->state == HOLD) {
        a->last_change_ms = now_ms;
        a->last_change_set = 1;
        a->state = INCREASE;
    } else if (usage == OVERUSING) {
        a->state = DECREASE;
    } else if (usage == UNDERUSING) {
        a->state = HOLD;
    }

    long long new_bitrate = a->current_bitrate;
    if (have_throughput)
        a->latest_throughput = throughput;
    else
        throughput = a->latest_throughput;
    double throughput_kbps = (double)throughput / 1000;

    if (a->state == INCREASE) {
        if (a->avg_max_set &&  /* a significant increase clears the estimated max throughput */
            throughput_kbps >= a->avg_max_bitrate_kbps + 3 * sqrt(a->var_max_bitrate_kbps * a->avg_max_bitrate_kbps)) {
            a->near_max = 0;
            a->avg_max_set = 0;
        }
        if (a->near_max)  /* additive: int((now_ms - last_ms) * increase / 1000); last_change_ms is set here */
            new_bitrate += (long long)((double)((now_ms - a->last_change_ms) * near_max_rate_increase(a)) / 1000);
        else
            new_bitrate += multiplicative_rate_increase(a, new_bitrate, now_ms);
        a->last_change_ms = now_ms;
    } else if (a->state == DECREASE) {
        if (a->avg_max_set &&  /* a significant drop too */
            throughput_kbps < a->avg_max_bitrate_kbps - 3 * sqrt(a->var_max_bitrate_kbps * a->avg_max_bitrate_kbps))
            a->avg_max_set = 0;
        update_max_throughput_estimate(a, throughput_kbps);
        a->near_max = 1;
        new_bitrate = (long long)nearbyint(0.85 * (double)throughput);
        a->last_change_ms = now_ms;
        a->last_change_set = 1;
        a->state = HOLD;
    }

    /* _clamp_bitrate: min(new_bitrate, max(int(1.5 * throughput) + 10000, current_bitrate)) */
    long long max_bitrate = (long long)(1.5 * (double)throughput) + 10000;
    if (a->current_bitrate > max_bitrate)
        max_bitrate = a->current_bitrate;
    *out = a->current_bitrate = max_bitrate < new_bitrate ? max_bitrate : new_bitrate;
    return 1;
}

/* ---------------------------------------------------------------------------------------- Estimator */
/* estimator_add: abs_send_time is the 24-bit header value (higher bits ignored); payload_size >= 0. */
int estimator_add(PyObject *est, long long arrival_ms, unsigned int abs_send_time, long long payload_size,
                  unsigned int ssrc, long long *bitrate) {
    Estimator *e = (Estimator *)est;
    unsigned int timestamp = (abs_send_time & 0xFFFFFF) << 8, d_ts;
    long long rate, d_arrival, d_size;
    int i;

    e->added++;
    e->octets += payload_size;
    for (i = 0; i < e->nssrcs && e->ssrcs[i] != ssrc; i++)
        ;
    if (i == e->nssrcs) {  /* a new SSRC is appended; with MAX_SSRCS already, the oldest is forgotten */
        if (e->nssrcs == MAX_SSRCS) {
            e->nssrcs--;
            memmove(e->ssrcs, e->ssrcs + 1, e->nssrcs * sizeof e->ssrcs[0]);
        }
        e->ssrcs[e->nssrcs++] = ssrc;
    }

    if (rc_rate(&e->incoming, arrival_ms, &rate)) {
        e->incoming_initialized = 1;
    } else if (e->incoming_initialized) {
        memset(&e->incoming, 0, sizeof e->incoming);  /* reset() */
        e->incoming_initialized = 0;
    }
    rc_add(&e->incoming, payload_size, arrival_ms);

    if (compute_deltas(e, timestamp, arrival_ms, payload_size, &d_ts, &d_arrival, &d_size)) {
        double timestamp_delta_ms = (double)d_ts * TIMESTAMP_TO_MS;
        kalman_update(&e->kalman, d_arrival, timestamp_delta_ms, d_size, e->det.hypothesis);
        detect(&e->det, e->kalman.offset, timestamp_delta_ms, e->kalman.num_of_deltas, arrival_ms);
    }

    if (e->last_update_set && arrival_ms - e->last_update_ms <= FEEDBACK_INTERVAL_MS &&
        e->det.hypothesis != OVERUSING)
        return 0;
    int have = rc_rate(&e->incoming, arrival_ms, &rate);
    if (!aimd_update(&e->rc, e->det.hypothesis, have, rate, arrival_ms, bitrate))
        return 0;
    e->last_update_ms = arrival_ms;
    e->last_update_set = 1;
    return 1;
}

PyObject *estimator_ssrcs(PyObject *est) {
    Estimator *e = (Estimator *)est;
    PyObject *list = PyList_New(e->nssrcs);
    for (int i = 0; list != NULL && i < e->nssrcs; i++) {
        PyObject *v = PyLong_FromUnsignedLong(e->ssrcs[i]);
        if (v == NULL)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, i, v);
    }
    return list;
}

/* Estimator(): the state of a new RemoteBitrateEstimator() (zeros, None and False apart from these). */
static PyObject *Estimator_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, ":Estimator", kwlist))
        return NULL;
    Estimator *e = (Estimator *)type->tp_alloc(type, 0);
    if (e == NULL)
        return NULL;
    e->incoming_initialized = 1;
    e->kalman.e[0][0] = 100.0;
    e->kalman.e[1][1] = 0.1;
    e->kalman.slope = 1.0 / 64;
    e->kalman.var_noise = 50.0;
    e->det.threshold = 12.5;
    e->rc.var_max_bitrate_kbps = 0.4;
    e->rc.current_bitrate = e->rc.latest_throughput = 30000000;
    return (PyObject *)e;
}

/* add(arrival_time_ms, abs_send_time, payload_size, ssrc) -> None | (bitrate, ssrcs) */
static PyObject *Estimator_add(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    static const long long lo[4] = {-MAX_EXACT, 0, 0, 0}, hi[4] = {MAX_EXACT, 0xFFFFFF, MAX_EXACT, 0xFFFFFFFFLL};
    long long v[4], bitrate;
    if (nargs != 4)
        return PyErr_Format(PyExc_TypeError, "add() takes exactly 4 arguments (%zd given)", nargs);
    for (int i = 0; i < 4; i++) {
        if (!PyLong_Check(args[i]))
            return PyErr_Format(PyExc_TypeError, "add() argument %d must be int, not %.100s", i + 1,
                                Py_TYPE(args[i])->tp_name);
        if ((v[i] = PyLong_AsLongLong(args[i])) == -1 && PyErr_Occurred())
            return NULL;
        if (v[i] < lo[i] || v[i] > hi[i])
            return PyErr_Format(PyExc_ValueError, "add() argument %d out of range", i + 1);
    }
    if (!estimator_add(self, v[0], (unsigned int)v[1], v[2], (unsigned int)v[3], &bitrate))
        Py_RETURN_NONE;
    return Py_BuildValue("(LN)", bitrate, estimator_ssrcs(self));
}

static PyObject *Estimator_incoming_rate(Estimator *e, PyObject *arg) {
    long long now_ms = PyLong_AsLongLong(arg), rate;
    if (now_ms == -1 && PyErr_Occurred())
        return NULL;
    if (now_ms < -MAX_EXACT || now_ms > MAX_EXACT)
        return PyErr_Format(PyExc_ValueError, "incoming_rate() argument out of range");
    if (!rc_rate(&e->incoming, now_ms, &rate))
        Py_RETURN_NONE;
    return PyLong_FromLongLong(rate);
}

static PyObject *Estimator_avg_max_bitrate_kbps(Estimator *e, void *closure) {
    if (!e->rc.avg_max_set)
        Py_RETURN_NONE;
    return PyFloat_FromDouble(e->rc.avg_max_bitrate_kbps);
}

static PyMethodDef Estimator_methods[] = {
    {"add", (PyCFunction)(void (*)(void))Estimator_add, METH_FASTCALL,
     "add(arrival_time_ms, abs_send_time, payload_size, ssrc) -> None | (bitrate, ssrcs): "
     "RemoteBitrateEstimator.add (abs_send_time: the 24-bit header value)"},
    {"incoming_rate", (PyCFunction)Estimator_incoming_rate, METH_O,
     "incoming_rate(now_ms) -> int | None: incoming_bitrate.rate(now_ms) (advances the window)"},
    {NULL},
};

static PyGetSetDef Estimator_getset[] = {
    {"avg_max_bitrate_kbps", (getter)Estimator_avg_max_bitrate_kbps, NULL, "rate control's, or None"},
    {NULL},
};

#define MEMBER(name, type, field) {name, type, offsetof(Estimator, field), READONLY, NULL}
static PyMemberDef Estimator_members[] = {
    MEMBER("current_bitrate", T_LONGLONG, rc.current_bitrate),
    MEMBER("state", T_INT, rc.state),  /* RateControlState: 0 hold, 1 increase (2 decrease, never left set) */
    MEMBER("var_max_bitrate_kbps", T_DOUBLE, rc.var_max_bitrate_kbps),
    MEMBER("near_max", T_BOOL, rc.near_max),
    MEMBER("threshold", T_DOUBLE, det.threshold),
    MEMBER("hypothesis", T_INT, det.hypothesis),  /* BandwidthUsage: 0 normal, 1 underusing, 2 overusing */
    MEMBER("offset", T_DOUBLE, kalman.offset),
    MEMBER("slope", T_DOUBLE, kalman.slope),
    MEMBER("var_noise", T_DOUBLE, kalman.var_noise),
    MEMBER("num_of_deltas", T_INT, kalman.num_of_deltas),
    MEMBER("added", T_LONGLONG, added),
    MEMBER("octets", T_LONGLONG, octets),
    {NULL},
};

PyTypeObject EstimatorType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sfu._fanout.Estimator",
    .tp_doc = "Estimator(): aiortc's RemoteBitrateEstimator (the receive-side estimate for REMB) in C",
    .tp_basicsize = sizeof(Estimator),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = Estimator_new,
    .tp_methods = Estimator_methods,
    .tp_members = Estimator_members,
    .tp_getset = Estimator_getset,
};

int remb_add_types(PyObject *m) {
    /* aiortc.rate's constants of the same names (the contract, sfu/twins.py) */
    if (contract_constant("BURST_DELTA_THRESHOLD_MS", PyLong_FromLong(BURST_DELTA_THRESHOLD_MS)) < 0 ||
        contract_constant("MAX_ADAPT_OFFSET_MS", PyLong_FromLong(MAX_ADAPT_OFFSET_MS)) < 0 ||
        contract_constant("MIN_NUM_DELTAS", PyLong_FromLong(MIN_NUM_DELTAS)) < 0 ||
        contract_constant("DELTA_COUNTER_MAX", PyLong_FromLong(DELTA_COUNTER_MAX)) < 0 ||
        contract_constant("MIN_FRAME_PERIOD_HISTORY_LENGTH", PyLong_FromLong(MIN_FRAME_PERIOD_HISTORY_LENGTH)) < 0 ||
        contract_constant("TIMESTAMP_GROUP_LENGTH_MS", PyLong_FromLong(TIMESTAMP_GROUP_LENGTH_MS)) < 0 ||
        contract_constant("INTER_ARRIVAL_SHIFT", PyLong_FromLong(INTER_ARRIVAL_SHIFT)) < 0 ||
        contract_constant("TIMESTAMP_TO_MS", PyFloat_FromDouble(TIMESTAMP_TO_MS)) < 0)
        return -1;
    if (module_add_type(m, &EstimatorType, "Estimator") < 0)
        return -1;
    return 0;
}
