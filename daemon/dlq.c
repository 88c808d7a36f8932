/* SPDX-License-Identifier: MIT */
/*
 * Dead letters: list (a read-only look at the dead-letter ring), requeue
 * and drop (through the public API, as any consumer would).
 *
 * The listing reads slots without taking them, so it never changes a
 * delivery count or a counter. It shows the messages in the order a
 * consumer of the ring would get them: first those waiting for
 * redelivery, then the published ones from the head on. A slot that
 * changes while it is read (a consumer took it) is left out; the shared
 * memory is untrusted, so every length is checked before it is used.
 *
 * Requeue reserves a slot in the main ring *before* leasing a dead letter,
 * so a full main ring stops the move without touching the dead letter;
 * the message is then committed into the main ring and the dead letter
 * acked. A daemon killed between commit and ack leaves the dead letter
 * leased; its repair at the next start hands it out again, so a message
 * may be requeued twice but never lost.
 */
#include <stdio.h>
#include <string.h>

#include "segment.h"
#include "shmqd.h"

static int put_dlq(struct shmq__pw *w, const void *rec)
{
    return shmq__pw_dlq_msg(w, rec);
}

/* Copy the message in slot s if it is (still) in phase ph with word w. */
static int peek(const struct shmq__ring *rg, struct shmq_slot *s,
                struct shmq_dlq_entry *e)
{
    uint64_t w = atomic_load_explicit(&s->word, memory_order_acquire);
    unsigned ph = shmq_w_phase(w);
    if (ph != SHMQ_PH_READY && ph != SHMQ_PH_RETRY)
        return 0;
    uint32_t len = atomic_load_explicit((_Atomic uint32_t *)&s->len,
                                        memory_order_relaxed);
    if (len > rg->msg_max)
        return 0;
    memset(e, 0, sizeof(*e));
    e->id = s->id;
    e->enqueue_ns = s->enqueue_ns;
    e->deliveries = shmq_w_dlv(w);
    e->len = len;
    e->data_len = len < SHMQ_CTL_PREVIEW_MAX ? len : SHMQ_CTL_PREVIEW_MAX;
    memcpy(e->data, shmq__payload(s), e->data_len);
    /* Acquire: the copy above happened before this re-check. */
    atomic_thread_fence(memory_order_acquire);
    return atomic_load_explicit(&s->word, memory_order_relaxed) == w;
}

int dlq_list(struct shmqd *d, const char *name, uint32_t max,
             struct reply *r)
{
    struct shmq__qseg q;
    struct shmq_dlq_entry e;
    uint32_t n = 0;

    if (max == 0)
        max = SHMQD_DLQ_LIST_DEFAULT;
    if (max > SHMQD_DLQ_LIST_MAX)
        max = SHMQD_DLQ_LIST_MAX;
    int rc = shmq__qseg_open(d->instance, name, 0, &q);
    if (rc) {
        reply_msg(r, "cannot open queue %s: %s", name, shmq_strerror(rc));
        return rc;
    }
    if (!q.has_dlq) {
        shmq__qseg_close(&q);
        reply_msg(r, "queue %s has no dead-letter ring", name);
        return -ENOENT;
    }
    struct shmq__ring *rg = &q.dlq;
    /* Waiting for redelivery first, as a consumer would get them. */
    for (uint32_t i = 0; i < rg->cap && n < max; i++) {
        struct shmq_slot *s = shmq__slot(rg, i);
        uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed);
        if (shmq_w_phase(w) == SHMQ_PH_RETRY && peek(rg, s, &e) &&
            reply_add(r, put_dlq, &e) == 0)
            n++;
    }
    /* Then the published ones, from the head to the first unclaimed. */
    uint64_t pos = atomic_load_explicit(&rg->hdr->head, memory_order_acquire);
    for (uint32_t k = 0; k < rg->cap && n < max; k++, pos++) {
        struct shmq_slot *s = shmq__slot(rg, pos);
        uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed);
        int64_t dl = shmq_lap_diff(shmq_w_lap(w),
                                   (pos >> rg->shift) & SHMQ_LAP_MASK);
        if (dl > 0)
            continue; /* consumed already; the head hint lags */
        if (dl < 0 || shmq_w_phase(w) == SHMQ_PH_FREE)
            break; /* not claimed at this lap yet: the tail */
        if (shmq_w_phase(w) == SHMQ_PH_READY && peek(rg, s, &e) &&
            reply_add(r, put_dlq, &e) == 0)
            n++;
    }
    shmq__qseg_close(&q);
    reply_msg(r, "%u dead letter%s of %s listed", n, n == 1 ? "" : "s", name);
    return (int)n;
}

static int open_ring(struct shmqd *d, const char *name, uint32_t ring,
                     shmq_t **out)
{
    struct shmq_open_opts o;
    shmq_open_opts_init(&o);
    o.instance = d->instance;
    o.ring = ring;
    o.spin_ns = 0;
    return shmq_open(name, &o, out);
}

int dlq_move(struct shmqd *d, const char *name, uint32_t max, int requeue,
             struct reply *r)
{
    shmq_t *dq = NULL, *mq = NULL;
    struct shmq_stats st = {.size = sizeof(st)};
    const char *stop = "";
    int n = 0;

    int rc = open_ring(d, name, SHMQ_RING_DLQ, &dq);
    if (rc == 0 && requeue)
        rc = open_ring(d, name, SHMQ_RING_MAIN, &mq);
    if (rc == 0)
        rc = shmq_stats(dq, &st);
    if (rc) {
        reply_msg(r, rc == -ENOENT ? "no queue called %s with a dead-letter "
                                     "ring"
                                   : "cannot open queue %s: %s",
                  name, shmq_strerror(rc));
        goto out;
    }
    /* What is there now; letters that arrive meanwhile wait for next time. */
    uint64_t limit = st.dlq_depth;
    if (max && max < limit)
        limit = max;
    while ((uint64_t)n < limit && n < INT32_MAX) {
        shmq_resv_t rv;
        shmq_msg_t m;
        if (requeue && shmq_reserve(mq, &rv, 0) != 0) {
            stop = "; stopped: the main ring is full";
            break;
        }
        if (shmq_lease(dq, &m, 0) != 0) {
            if (requeue)
                shmq_abort(mq, &rv);
            break;
        }
        if (requeue) {
            memcpy(rv.data, m.data, m.len); /* both rings share msg_max */
            if (shmq_commit(mq, &rv, m.len) != 0) {
                shmq_nack(dq, &m);
                stop = "; stopped: the main ring refused a message";
                break;
            }
        }
        shmq_ack(dq, &m);
        n++;
    }
    rc = n;
    reply_msg(r, "%s %d dead letter%s of %s%s",
              requeue ? "requeued" : "dropped", n, n == 1 ? "" : "s", name,
              stop);
out:
    shmq_close(mq);
    shmq_close(dq);
    return rc;
}
