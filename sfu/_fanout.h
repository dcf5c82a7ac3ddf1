/* _fanout.h: what the C files of sfu._fanout share (_fanout.c, _ingress.c, _demux.c, _rtcp.c, _report.c,
 * _remb.c). */
#ifndef TAPHUAN_FANOUT_H
#define TAPHUAN_FANOUT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define HIST 128  /* sfu.consumer.HISTORY_SIZE: packets kept per slot for retransmission */
#define DROP_WINDOW 0x1000  /* sfu.rewriter.DROP_WINDOW: how far the base trails the newest forwarded packet */
#define RESYNC_AFTER 64     /* sfu.rewriter.RESYNC_AFTER: drops in a row with no progress = restarted numbering */
#define DROP_RUNS 32        /* sfu.rewriter.DROP_RUNS: runs of packets dropped (temporal layers) remembered */
#define ALL_LAYERS 255      /* sfu.rewriter.ALL_LAYERS: tid_target / tid_cur forwarding every temporal layer */
#define MAX_HEAD 64
#define BUF_SIZE 1500   /* pylibsrtp's buffer size: the plain packet plus the SRTP trailer fit in it */
#define MAX_PLAIN (1500 - 16 - 128)  /* sfu.hooks.wire.MAX_PLAIN: the largest plain packet protected in BUF_SIZE */
#define NTP_OFFSET 2208988800.0  /* sfu.rtp.NTP_OFFSET: seconds from 1900 (NTP) to 1970 (Unix) */

typedef int (*protect_fn)(void *ctx, void *rtp_hdr, int *len_ptr);

/* The C/Python twin contract, declared once in sfu/twins.py and checked by tests/sfu/test_twins.py. Every
 * attribute of a Python object that the C code reads, writes or calls by name is interned once at import from a
 * table of Reach entries, and the module exports what it uses and mirrors as sfu._fanout.CONTRACT:
 * {"attributes": {class: names read or written}, "methods": {class: names called},
 *  "constants": {name: value of the #define a Python constant mirrors}, "layouts": {tuple: field names}}. */
typedef struct {
    PyObject **var;    /* where the interned name is kept for the hot path */
    const char *twin;  /* the Python class whose attribute it is (sfu/twins.py names its module) */
    const char *name;
    int method;        /* 1: a method C calls, 0: an attribute C reads or writes */
} Reach;

/* contract_reach interns the n names of `reach` and records them in CONTRACT; 0, or -1 with an exception set. */
int contract_reach(const Reach *reach, size_t n);
/* contract_constant records CONTRACT["constants"][name] = value (a new reference, stolen; NULL fails). */
int contract_constant(const char *name, PyObject *value);
/* module_add_type readies `type` and adds it to module `m` as `name`; 0, or -1 with an exception set. */
int module_add_type(PyObject *m, PyTypeObject *type, const char *name);

/* Cells (sfu/_cells.c): instances keep CELLS 64-bit integers in C memory, named as attributes by Cell descriptors
 * (sfu/cells.py). A cell whose bit is set in `none` holds None. sfu/_ingress.c encodes a cell's place among the
 * offsets of __slots__ members as CELL_AT(index) (-1 there means "by name"). */
#define CELLS 8
typedef struct {
    PyObject_HEAD
    long long cell[CELLS];
    unsigned int none;
} Cells;
extern PyTypeObject CellsType, CellType;
#define CELL_AT(index) (-2 - (Py_ssize_t)(index))
#define CELL_INDEX(at) ((int)(-2 - (at)))
int cells_add_types(PyObject *module);  /* Cell, Cells */
int cell_index(PyObject *descr);  /* the index of a Cell descriptor, -1 for anything else */

/* put32 writes v big-endian (network order) at p. */
static inline void put32(unsigned char *p, unsigned int v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* contract_layout records the field names, in order, of a tuple C parses or builds (CONTRACT["layouts"]). */
int contract_layout(const char *name, const char *const *fields, size_t n);

/* Route: where a Slot or a Reporter sends, bound by sfu.hooks.wire.PacketWire: the pair's socket object (its
 * descriptor is read per send, so a closed socket is never written), the remote address, the pylibsrtp session
 * (kept alive: it owns the srtp_t) and the address of libsrtp's protect function (srtp_protect or
 * srtp_protect_rtcp, called through the pointer; nothing links against libsrtp). */
typedef struct {
    PyObject *sock;
    PyObject *session;
    void *srtp;  /* NULL: no route */
    protect_fn protect;
    struct sockaddr_storage addr;
    socklen_t addr_len;
} Route;

/* route_set parses set_route(sock, family, host, port, session, srtp_address, protect_address) arguments into
 * r: a new reference to True (bound) or False (refused: bad address), NULL with an exception. */
PyObject *route_set(Route *r, PyObject *args);
void route_clear(Route *r);
int route_traverse(Route *r, visitproc visit, void *arg);
/* route_send protects buf (len bytes, room for the SRTP trailer) in place and sends it: 0 sent, -1 failed
 * (protect refused, socket closed: then the route is cleared, or the send failed); *sent gets the bytes sent. */
int route_send(Route *r, unsigned char *buf, int len, int *sent);

typedef struct {
    unsigned int seq;  /* 0x10000 = empty */
    unsigned int ts;
    double sent;  /* clock (time.monotonic) when it was first sent */
    PyObject *inbound;
    int pic;  /* VP8 PictureID and TL0PICIDX written in the payload, -1: none (sfu.vp8.rewrite) */
    int tl0;
} HistEntry;

/* Pacer (sfu/_pacer.c): a down transport's token bucket, the twin of sfu.pacer.TokenBucket. */
#define PACER_BURST_SECONDS 0.02      /* sfu.pacer.BURST_SECONDS */
#define PACER_MIN_BURST_BITS 19200.0  /* sfu.pacer.MIN_BURST_BITS: two 1200-byte packets */
#define PACER_OVERHEAD 38             /* sfu.pacer.OVERHEAD: SRTP tag, IPv4 and UDP headers, bytes */
#define PACER_MAX_QUEUE_SECONDS 2.0  /* sfu.pacer.MAX_QUEUE_SECONDS: older waiting packets are dropped */
#define PACER_MAX_SCREEN_QUEUE_SECONDS 3.0  /* sfu.pacer.MAX_SCREEN_QUEUE_SECONDS: the same, of class 1 (the screen) */
#define PACER_SUPERSEDE_AFTER 1.0  /* sfu.pacer.SUPERSEDE_AFTER: a keyframe drops its stream's frames waiting this long */
#define PACER_MAX_QUEUE 4096          /* sfu.pacer.MAX_QUEUE: packets that may wait; more are dropped */
#define PACER_CLASSES 2               /* sfu.pacer.CLASSES: what waits leaves by class, then in order */
#define PACER_RING_START 64           /* sfu.pacer: a class's first ring (it doubles as it fills) */
/* QEntry: one packet waiting in a Pacer's queue. A C fan-out slot's (`buf`: the plain packet, with room for the
 * SRTP trailer; `owner`: the Slot whose route sends it) or Python's (`buf` NULL; `owner`: (head, payload,
 * padding, key), sent through the Pacer's `send`; `key`: the stream it belongs to, or None). */
typedef struct {
    PyObject *owner;
    unsigned char *buf;
    int len;        /* C: bytes in buf */
    int ast_off;    /* where the abs-send-time is, restamped as it leaves; 0: none */
    long long size; /* bytes the bucket charges (header + payload + padding) */
    double at;      /* clock when it was queued */
} QEntry;
/* PacerRing: one class's waiting packets, oldest first (grown by doubling up to PACER_MAX_QUEUE entries). */
typedef struct {
    QEntry *q;          /* NULL until its first packet */
    int cap;            /* entries allocated */
    int head;           /* index of the oldest */
    long long count;    /* packets waiting in this class */
    long long dropped;  /* of the Pacer's dropped, this class's */
} PacerRing;
typedef struct {
    PyObject_HEAD
    double rate;    /* bit/s */
    double tokens;  /* bits; below zero: in debt (audio went anyway) */
    double burst;
    double last;    /* clock of the last refill, -1: none */
    long long queued;  /* packets waiting, every class */
    long long sent_queued;  /* packets sent from the queue */
    long long dropped;      /* packets dropped from the queue (waited too long, or the queue was full) */
    long long superseded;   /* packets dropped from the queue because a keyframe of their stream came behind them */
    PacerRing ring[PACER_CLASSES];  /* class 0 leaves first (sfu.pacer.pace_class) */
    PyObject *send;      /* send(head, payload, padding) -> bool: Python's way out (sfu.pacer.Pacer sets it) */
    PyObject *on_queue;  /* on_queue(): called when the C fan-out queues while no drain timer is armed */
    char armed;          /* Python's drain timer is set (sfu.pacer.Pacer keeps it) */
} Pacer;
extern PyTypeObject PacerType;
int pacer_add_types(PyObject *module);
void pacer_refill(Pacer *p, double now);
/* pacer_admit: 1 the packet may go now (its bits taken), 0 it must wait (video only: nothing of its class `cls` or a
 * first one waits and the bucket is not empty). */
int pacer_admit(Pacer *p, long long size, int audio, int cls, double now);
/* pacer_drain sends from the head of the queue what the bucket allows (Pacer.drain): packets sent, or -1 with an
 * exception (Python's send raised). The C fan-out drains a slot's pacer before each packet it handles, so a paced
 * link drains at the pace of the media it receives, Python's timer only covering the gaps. */
long long pacer_drain(Pacer *p, double now);
/* pacer_queue_c queues a C slot's plain packet (buf, len bytes; ast_off as in QEntry; size charged) in class `cls`:
 * 0, or -1 with an exception (on_queue failed). A full queue drops it (counted). `keyframe`: it starts a keyframe,
 * and the slot's older packets still waiting are dropped first when the slot tells keyframes apart (`supersede`). */
int pacer_queue_c(Pacer *p, PyObject *slot, const unsigned char *buf, int len, int ast_off, long long size, int cls,
                  int keyframe, double now);

/* DropRun: packets [start, end) dropped in a row (temporal layer filtering), the offsets in force before them. */
typedef struct {
    unsigned int start, end, seq_before, pic_before;
} DropRun;

/* Vp8Desc: a VP8 payload descriptor as sfu.vp8.parse reads it (offsets from the payload's start, 0: absent). */
typedef struct {
    int ok;  /* 0: cut short (no descriptor) */
    int start;
    int pic, pic_off, pic_bits;  /* pic -1: no I bit */
    int tl0, tl0_off;            /* tl0 -1: no L bit */
    int tid, sync;               /* tid -1: no T bit */
} Vp8Desc;

typedef struct Slot {
    PyObject_HEAD
    /* rewriter (HeaderRewriter's fields) */
    int clock_rate;
    int frame_ticks;
    unsigned int last_seq;
    unsigned int last_ts;
    double last_time;  /* < 0: never sent */
    unsigned int seq_offset;
    unsigned int ts_offset;
    long long src_ssrc;  /* -1: none */
    unsigned int base_seq;  /* packets older than this are dropped; slides DROP_WINDOW behind the newest */
    int old_drops;          /* packets dropped as older since the output last advanced */
    long long drop_mark;    /* last_seq when that count started, -1: none */
    char pending;
    char waiting_keyframe;
    char vp8;               /* VP8 descriptors are read, filtered by temporal layer and rewritten */
    /* VP8 (HeaderRewriter.map_vp8) */
    unsigned int max_in;    /* the newest input sequence number (forwarded or dropped) */
    unsigned int pic_offset, tl0_offset;
    unsigned int last_pic, last_tl0;  /* output PictureID / TL0PICIDX of the newest packet sent */
    int in_pic;             /* the newest input PictureID (15 bits), -1: none */
    int tid_target, tid_cur;
    int drop_pic;           /* input PictureID of the last frame dropped, -1: none */
    int run_floor;          /* end of the newest run forgotten, -1: none */
    int nruns;
    DropRun runs[DROP_RUNS];  /* oldest first */
    /* header template */
    unsigned char head[MAX_HEAD];
    int head_len;
    int ast_off;
    int al_off;
    int pt;
    /* counters */
    unsigned long long packets_sent;
    unsigned long long bytes_sent;
    unsigned long long last_ntp;
    unsigned int last_out_ts;
    unsigned long long c_sent;
    unsigned long long pacer_dropped;  /* of packets_sent, dropped by the pacer before they left (sfu/_pacer.c) */
    unsigned long long tx_bytes;   /* since the last take_counts() */
    unsigned long long tx_packets;
    unsigned long long send_errors;
    /* the subscriber's reports about this slot (sfu/_rtcp.c, ForwardingSender.report_block / remb) and our SRs */
    int fraction_lost;          /* 1/256 */
    int packets_lost;
    unsigned int jitter;        /* RTP timestamp units */
    long long remb;             /* bit/s, -1: none */
    long long lsr;              /* middle 32 bits of our last SR's NTP time, -1: none sent */
    double lsr_time;            /* when it was sent (time.time()) */
    double rtt;                 /* seconds, smoothed like aiortc (RTT_ALPHA); < 0: none */
    unsigned long long reports; /* report blocks taken */
    Route route;
    PyObject *pacer;  /* the wire's Pacer (sfu/_pacer.c) or NULL: not paced */
    int pace_class;   /* its packets' class in that Pacer (sfu.pacer.pace_class): 0 leaves first */
    char audio;
    char supersede;   /* its codec's keyframes are told apart (VP8, H.264): a keyframe that must wait in the pacer
                       * drops this slot's older packets still waiting there (sfu/_pacer.c, pacer_supersede) */
    HistEntry hist[HIST];
} Slot;

extern PyTypeObject SlotType;

/* slot_report takes one report block about the slot: loss, jitter, and the RTT when it answers our last SR. */
void slot_report(Slot *s, int fraction_lost, int packets_lost, unsigned int jitter, unsigned int lsr,
                 unsigned int dlsr, double now);

/* fanout_run rewrites, protects and sends one inbound packet to every slot in the steady state; returns a new
 * reference to the list of slot indexes left to Python, or to None; NULL with an exception set on error. */
PyObject *fanout_run(PyObject *slots, PyObject *inbound, const unsigned char *pl, Py_ssize_t plen, long long ssrc,
                     unsigned int seq, unsigned int ts, int marker, int keyframe, unsigned long long ntp, int padding,
                     int level, double now);

/* clock_seconds: CLOCK_MONOTONIC is time.monotonic(), CLOCK_REALTIME time.time(). */
static inline double clock_seconds(clockid_t id) {
    struct timespec t;
    clock_gettime(id, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static inline unsigned int be16(const unsigned char *p) { return ((unsigned int)p[0] << 8) | p[1]; }

static inline unsigned int be32(const unsigned char *p) {
    return ((unsigned int)p[0] << 24) | ((unsigned int)p[1] << 16) | ((unsigned int)p[2] << 8) | p[3];
}

/* Ingress (sfu/_ingress.c): a publisher stream's steady-state receive path. */
extern PyTypeObject IngressType;
int ingress_add_types(PyObject *module);  /* Packet, Ingress */
int ingress_match(PyObject *ingress, unsigned int ssrc);  /* armed, for this SSRC */
int add_ll(PyObject *o, PyObject *name, long long delta);  /* o.name += delta; 0, or -1 with an exception */
/* ingress_receive: 1 not handled (give it to Python unread), 0 done, -1 a Python error. */
int ingress_receive(PyObject *ingress, const unsigned char *data, Py_ssize_t n);

/* Demux (sfu/_demux.c): an ICE socket's datagram callback. */
extern PyTypeObject DemuxType;
int demux_add_types(PyObject *module);
/* demux_receive: one datagram through a Demux's C path: 0 kept (counted), 1 not kept (the fallback's), -1 error. */
int demux_receive(PyObject *demux, const unsigned char *data, Py_ssize_t n);
PyObject *demux_fallback(PyObject *demux);  /* borrowed: the Demux's fallback(data, addr), or NULL */

/* Reader (sfu/_reader.c): an ICE socket's datagrams read with recvmmsg and handed to a Demux. */
int reader_add_types(PyObject *module);

/* RtcpRoute (sfu/_rtcp.c): a transport's routine SRTCP handled in C. */
extern PyTypeObject RtcpRouteType;
int rtcp_add_types(PyObject *module);
/* rtcp_route_receive: 1 not handled (give it to Python unread), 0 done, -1 a Python error. */
int rtcp_route_receive(PyObject *route, const unsigned char *data, Py_ssize_t n);

/* Estimator (sfu/_remb.c): aiortc's RemoteBitrateEstimator in C. */
extern PyTypeObject EstimatorType;
int remb_add_types(PyObject *module);  /* adds Estimator to the module; 0, or -1 with an exception */
/* estimator_add: RemoteBitrateEstimator.add; 1 with a new estimate in *bitrate, else 0 (never fails). */
int estimator_add(PyObject *est, long long arrival_ms, unsigned int abs_send_time, long long payload_size,
                  unsigned int ssrc, long long *bitrate);
/* estimator_ssrcs: new reference to the list of SSRCs for the REMB (first-seen order). */
PyObject *estimator_ssrcs(PyObject *est);

/* Reporter (sfu/_report.c): a transport's sender reports built, protected and sent in C. */
int report_add_types(PyObject *module);

/* Feedback (sfu/_feedback.c): a publisher transport's receiver reports and REMB built, protected and sent in C. */
int feedback_add_types(PyObject *module);

#endif
