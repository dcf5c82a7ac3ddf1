/* _vp8.h: the VP8 part of a Slot (sfu/_fanout.c): the payload descriptor read and rewritten (sfu.vp8) and the
 * temporal layer filter with its runs of dropped packets (sfu.rewriter.HeaderRewriter._layer, _drop, _region). */
#ifndef TAPHUAN_VP8_H
#define TAPHUAN_VP8_H

#include "_fanout.h"

/* vp8_parse: sfu.vp8.parse (the fields the slots use); d->ok 0 and every field absent when cut short. */
static inline void vp8_parse(const unsigned char *p, Py_ssize_t n, Vp8Desc *d) {
    d->pic = d->tl0 = d->tid = -1;
    d->pic_off = d->pic_bits = d->tl0_off = d->sync = d->start = d->ok = 0;
    if (n < 1)
        return;
    unsigned int b0 = p[0];
    Py_ssize_t pos = 1;
    if (b0 & 0x80) {
        if (n < 2)
            goto short_;
        unsigned int x = p[1];
        pos = 2;
        if (x & 0x80) {
            if (n <= pos)
                goto short_;
            d->pic_off = (int)pos;
            if (p[pos] & 0x80) {
                if (n <= pos + 1)
                    goto short_;
                d->pic = ((p[pos] & 0x7F) << 8) | p[pos + 1];
                d->pic_bits = 15;
                pos += 2;
            } else {
                d->pic = p[pos];
                d->pic_bits = 7;
                pos += 1;
            }
        }
        if (x & 0x40) {
            if (n <= pos)
                goto short_;
            d->tl0_off = (int)pos;
            d->tl0 = p[pos++];
        }
        if (x & 0x30) {
            if (n <= pos)
                goto short_;
            if (x & 0x20) {
                d->tid = p[pos] >> 6;
                d->sync = (p[pos] >> 5) & 1;
            }
            pos++;
        }
    }
    d->start = (b0 & 0x10) && !(b0 & 0x07);
    d->ok = 1;
    return;
short_:
    d->pic = d->tl0 = d->tid = -1;
    d->pic_off = d->pic_bits = d->tl0_off = d->sync = 0;
}

/* vp8_unwrap: sfu.vp8.unwrap_picture_id (a 7-bit PictureID continues from `last` in 15 bits). */
static inline int vp8_unwrap(const Vp8Desc *d, int last) {
    if (d->pic_bits != 7 || last < 0)
        return d->pic;
    int delta = (d->pic - last) & 0x7F;
    return (last + delta - (delta >= 0x40 ? 0x80 : 0)) & 0x7FFF;
}

/* vp8_write: sfu.vp8.rewrite into dst (room for plen + 1): the payload with pic (as 15 bits) and tl0 written where
 * the descriptor has them (-1: left as is); returns the length written. */
static inline Py_ssize_t vp8_write(unsigned char *dst, const unsigned char *pl, Py_ssize_t plen, const Vp8Desc *d, int pic,
                            int tl0) {
    Py_ssize_t shift = 0;
    if (pic >= 0 && d->pic_off) {
        int at = d->pic_off, old = d->pic_bits == 15 ? 2 : 1;
        memcpy(dst, pl, at);
        dst[at] = (unsigned char)(0x80 | ((pic >> 8) & 0x7F));
        dst[at + 1] = (unsigned char)pic;
        memcpy(dst + at + 2, pl + at + old, plen - at - old);
        shift = 2 - old;
    } else {
        memcpy(dst, pl, plen);
    }
    if (tl0 >= 0 && d->tl0_off)
        dst[d->tl0_off + shift] = (unsigned char)tl0;
    return plen + shift;
}

/* slot_layer: HeaderRewriter._layer (at a frame's first packet: down at once, up where decodable). */
static inline void slot_layer(Slot *s, const Vp8Desc *d, int keyframe) {
    int target = s->tid_target;
    if (keyframe)
        s->tid_cur = target;
    else if (target < s->tid_cur)
        s->tid_cur = target;
    else if (d->sync && s->tid_cur < d->tid && d->tid <= target)
        s->tid_cur = d->tid;
}

/* slot_drop: HeaderRewriter._drop (the newest packet dropped; `prev` the newest before it, `pic` its PictureID). */
static inline void slot_drop(Slot *s, unsigned int seq, unsigned int prev, int pic) {
    int same_frame = pic >= 0 && pic == s->drop_pic;
    unsigned int after = (prev + 1) & 0xFFFF;
    DropRun *last = s->nruns ? &s->runs[s->nruns - 1] : NULL;
    if (last != NULL && last->end == after && (seq == after || same_frame)) {
        unsigned int end = last->end;
        last->end = (seq + 1) & 0xFFFF;
        s->seq_offset = (s->seq_offset - ((seq + 1 - end) & 0xFFFF)) & 0xFFFF;
    } else {
        if (s->nruns == DROP_RUNS) {
            s->run_floor = (int)s->runs[0].end;
            memmove(s->runs, s->runs + 1, (DROP_RUNS - 1) * sizeof(DropRun));
            s->nruns--;
        }
        DropRun *r = &s->runs[s->nruns++];
        r->start = seq;
        r->end = (seq + 1) & 0xFFFF;
        r->seq_before = s->seq_offset;
        r->pic_before = s->pic_offset;
        s->seq_offset = (s->seq_offset - 1) & 0xFFFF;
    }
    if (pic >= 0 && !same_frame)
        s->pic_offset = (s->pic_offset - 1) & 0x7FFF;
    s->drop_pic = pic;
}

/* slot_region: HeaderRewriter._region (offsets of a packet older than the newest); 0 when it was dropped. */
static inline int slot_region(Slot *s, unsigned int seq, unsigned int *seq_off, unsigned int *pic_off) {
    unsigned int a = s->seq_offset, b = s->pic_offset;
    for (int i = s->nruns - 1; i >= 0; i--) {
        DropRun *r = &s->runs[i];
        if (((seq - r->end) & 0xFFFF) < 0x8000)
            goto found;
        if (((seq - r->start) & 0xFFFF) < 0x8000)
            return 0;  /* inside a dropped run */
        a = r->seq_before;
        b = r->pic_before;
    }
    if (s->run_floor >= 0 && ((seq - (unsigned int)s->run_floor) & 0xFFFF) >= 0x8000)
        return 0;  /* before the runs still remembered */
found:
    *seq_off = a;
    *pic_off = b;
    return 1;
}

#endif
