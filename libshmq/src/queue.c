/* SPDX-License-Identifier: MIT */
/*
 * The public queue API (shmq.h): handles, send/receive, leases,
 * reservations, batches and waiting. The ring protocol itself is in
 * ring.c; this file adds argument checks, the fork check, the deleted
 * check and the wait loop (bounded spin, then the eventcount of wait.c).
 */
#include <shmq/shmq.h>

#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "process.h"
#include "segment.h"
#include "wait.h"

#define SPIN_DEFAULT_NS 20000
#define SPIN_MAX_NS 10000000

struct shmq {
    struct shmq__inst *inst;
    unsigned owner;   /* our process-table index in inst */
    uint32_t forkgen; /* shmq__forkgen when owner was last checked */
    struct shmq__qseg seg;
    struct shmq__ring *r; /* &seg.main or &seg.dlq */
    int64_t spin_ns;
    int ts_clock; /* clock for enqueue_ns, -1: none */
    uint32_t dir_idx;
    char name[SHMQ_NAME_MAX + 1];
};

void shmq_open_opts_init(struct shmq_open_opts *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof(*o));
    o->size = sizeof(*o);
    o->ring = SHMQ_RING_MAIN;
    o->spin_ns = SPIN_DEFAULT_NS;
}

/* Mark queue dir_idx in our process entry, so a repair of us scans it. */
static void note_queue(shmq_t *q, uint32_t token)
{
    struct shmq_reg_proc *p =
        shmq__reg_proc(&q->inst->reg, SHMQ_TOKEN_IDX(token));
    atomic_fetch_or_explicit(&p->queues[q->dir_idx >> 6],
                             UINT64_C(1) << (q->dir_idx & 63u),
                             memory_order_seq_cst);
}

/* Slow path of enter(): we are in a fork child. */
static int reattach(shmq_t *q)
{
    uint32_t gen = atomic_load_explicit(&shmq__forkgen, memory_order_relaxed);
    uint32_t token;
    int rc = shmq__inst_refresh(q->inst, &token);
    if (rc)
        return rc;
    note_queue(q, token);
    q->owner = SHMQ_TOKEN_IDX(token);
    q->forkgen = gen;
    return 0;
}

static inline int deleted(const shmq_t *q)
{
    return atomic_load_explicit(&q->seg.hdr->deleted, memory_order_acquire) !=
           0;
}

/* Every operation starts here. */
static inline int enter(shmq_t *q)
{
    if (unlikely(!q))
        return -EINVAL;
    if (unlikely(deleted(q)))
        return -EIDRM;
    if (unlikely(q->forkgen != atomic_load_explicit(&shmq__forkgen,
                                                    memory_order_relaxed)))
        return reattach(q);
    return 0;
}

int shmq_open(const char *name, const struct shmq_open_opts *opts,
              shmq_t **ret)
{
    struct shmq_open_opts o;
    int rc;

    if (!ret || shmq_name_check(name))
        return -EINVAL;
    shmq_open_opts_init(&o);
    if (opts) {
        if (opts->size < offsetof(struct shmq_open_opts, reserved) ||
            opts->size > sizeof(o))
            return -EINVAL;
        memcpy(&o, opts, opts->size);
    }
    if (o.ring != SHMQ_RING_MAIN && o.ring != SHMQ_RING_DLQ)
        return -EINVAL;
    if (o.spin_ns < 0 || o.spin_ns > SPIN_MAX_NS)
        return -EINVAL;
    const char *instance = o.instance ? o.instance : shmq_default_instance();
    if (shmq_instance_check(instance))
        return -EINVAL;

    shmq_t *q = calloc(1, sizeof(*q));
    if (!q)
        return -ENOMEM;
    q->forkgen = atomic_load_explicit(&shmq__forkgen, memory_order_relaxed);
    rc = shmq__inst_get(instance, &q->inst);
    if (rc)
        goto fail_free;
    for (int attempt = 0;; attempt++) {
        int di = shmq__reg_find(&q->inst->reg, name);
        if (di < 0) {
            rc = di;
            goto fail_put;
        }
        rc = shmq__qseg_open(instance, name, 1, &q->seg);
        if (rc)
            goto fail_put;
        uint64_t gen = q->inst->reg.dir[di].generation;
        if (gen == q->seg.generation) {
            q->dir_idx = (uint32_t)di;
            break;
        }
        /* Deleted and made again while we looked: look again. A
         * mismatch that persists is no race: the directory or the segment
         * holds a generation that no creation wrote. */
        shmq__qseg_close(&q->seg);
        if (attempt == 2) {
            rc = -EBADMSG;
            goto fail_put;
        }
    }
    if (o.ring == SHMQ_RING_DLQ && !q->seg.has_dlq) {
        rc = -ENOENT;
        goto fail_seg;
    }
    q->r = o.ring == SHMQ_RING_DLQ ? &q->seg.dlq : &q->seg.main;
    q->spin_ns = o.spin_ns;
    q->ts_clock = q->seg.cfg.timestamps == SHMQ_TS_PRECISE ? CLOCK_REALTIME
                  : q->seg.cfg.timestamps == SHMQ_TS_COARSE
                      ? CLOCK_REALTIME_COARSE
                      : -1;
    q->owner = SHMQ_TOKEN_IDX(q->inst->token);
    memcpy(q->name, name, strlen(name) + 1);
    note_queue(q, q->inst->token);
    *ret = q;
    return 0;
fail_seg:
    shmq__qseg_close(&q->seg);
fail_put:
    shmq__inst_put(q->inst);
fail_free:
    free(q);
    return rc;
}

void shmq_close(shmq_t *q)
{
    if (!q)
        return;
    shmq__qseg_close(&q->seg);
    shmq__inst_put(q->inst);
    free(q);
}

/*
 * Wait for try() to stop saying -EAGAIN: once, then a bounded spin, then
 * the eventcount (prepare, re-check, sleep). try() must be cheap and
 * side-effect free when it fails.
 *
 * Before its first sleep the thread claims a sleep record in our process
 * entry naming the queue, the ring and the condition (layout.h), and
 * clears it when the call returns: that is what the waiter counts of
 * shmq_stats count. Only the sleeping path pays for it.
 */
struct try_ctx {
    int (*fn)(shmq_t *q, void *arg);
    void *arg;
};

static int wait_slow(shmq_t *q, struct shmq_ec *ec, int64_t timeout_ns,
                     const struct try_ctx *t)
{
    uint64_t deadline = shmq__deadline(timeout_ns);
    struct shmq_reg_proc *me = NULL;
    uint32_t rec = 0;
    int note = -1;
    int rc;

    if (q->spin_ns > 0) {
        /* Poll first, read the clock only every 32 polls (a clock read
         * costs 20-40 ns on some virtual machines), and give the CPU away
         * now and then: the process we wait for may need this core. */
        uint64_t end = 0;
        for (unsigned i = 1;; i++) {
            shmq__cpu_relax();
            if ((rc = t->fn(q, t->arg)) != -EAGAIN)
                return rc;
            if ((i & 31u) == 0) {
                uint64_t now = shmq__now_ns(CLOCK_MONOTONIC);
                if (!end)
                    end = now + (uint64_t)q->spin_ns < deadline
                              ? now + (uint64_t)q->spin_ns
                              : deadline;
                else if (now >= end)
                    break;
                if ((i & 255u) == 0)
                    sched_yield();
            }
        }
    }
    for (;;) {
        uint32_t key = shmq__ec_prepare(ec);
        if ((rc = t->fn(q, t->arg)) != -EAGAIN)
            break;
        if (deleted(q)) {
            rc = -EIDRM;
            break;
        }
        if (!me && (me = shmq__reg_proc(&q->inst->reg, q->owner)) != NULL) {
            rec = shmq_sleep_rec(q->dir_idx, q->seg.generation,
                                 q->r == &q->seg.dlq,
                                 ec == &q->r->hdr->not_full);
            note = shmq__sleep_note(me, rec);
        }
        if (shmq__ec_wait(ec, key, deadline) == -ETIMEDOUT) {
            rc = t->fn(q, t->arg);
            if (rc == -EAGAIN)
                rc = -ETIMEDOUT;
            break;
        }
        if (deleted(q)) {
            rc = -EIDRM;
            break;
        }
    }
    if (me)
        shmq__sleep_clear(me, note, rec);
    return rc;
}

static int block(shmq_t *q, struct shmq_ec *ec, int64_t timeout_ns,
                 int (*fn)(shmq_t *, void *), void *arg)
{
    int rc = fn(q, arg);
    if (likely(rc != -EAGAIN) || timeout_ns == 0)
        return rc;
    struct try_ctx t = {fn, arg};
    return wait_slow(q, ec, timeout_ns, &t);
}

/* memcpy for payloads: an empty message may come with a NULL pointer,
 * which memcpy must not be given even for 0 bytes. */
static inline void copy(void *dst, const void *src, size_t n)
{
    if (n)
        memcpy(dst, src, n);
}

/* ---- producers ---------------------------------------------------------- */

/* Claim up to n slots into c[], waiting for the first as block() does.
 * How many (>= 1) or an error. */
struct claim_arg {
    struct shmq__lease *c;
    unsigned n;
};

static int try_claim(shmq_t *q, void *arg)
{
    struct claim_arg *a = arg;
    return shmq__ring_claim_n(q->r, q->owner, a->c, a->n);
}

static int claim_n(shmq_t *q, struct shmq__lease *c, unsigned n,
                   int64_t timeout_ns)
{
    struct claim_arg a = {c, n};
    return block(q, &q->r->hdr->not_full, timeout_ns, try_claim, &a);
}

static inline int claim(shmq_t *q, struct shmq__lease *c, int64_t timeout_ns)
{
    int rc = claim_n(q, c, 1, timeout_ns);
    return rc > 0 ? 0 : rc;
}

static inline uint64_t enqueue_ns(const shmq_t *q)
{
    return q->ts_clock < 0 ? 0 : shmq__now_ns(q->ts_clock);
}

static inline int publish(shmq_t *q, struct shmq__lease *c, size_t len,
                          uint64_t ts, int post)
{
    return shmq__ring_publish(q->r, c, (uint32_t)len, c->pos, ts, 0, post);
}

int shmq_send(shmq_t *q, const void *msg, size_t len, int64_t timeout_ns)
{
    struct shmq__lease c;
    int rc = enter(q);
    if (unlikely(rc))
        return rc;
    if (unlikely(!msg && len))
        return -EINVAL;
    if (unlikely(len > q->r->msg_max))
        return -EMSGSIZE;
    if ((rc = claim(q, &c, timeout_ns)) != 0)
        return rc;
    copy(shmq__payload(c.slot), msg, len);
    return publish(q, &c, len, enqueue_ns(q), 1);
}

#define BATCH_MAX ((unsigned)SHMQ_BATCH_MAX)

int shmq_send_batch(shmq_t *q, const struct iovec *msgs, size_t n,
                    int64_t timeout_ns)
{
    struct shmq__lease c[BATCH_MAX];
    size_t k;
    int rc = enter(q);
    if (unlikely(rc))
        return rc;
    if (!msgs || n == 0 || n > INT32_MAX)
        return -EINVAL;
    if (n > BATCH_MAX)
        n = BATCH_MAX;
    /* The batch ends before the first message that cannot be sent. */
    for (k = 0; k < n; k++) {
        if (unlikely(!msgs[k].iov_base && msgs[k].iov_len)) {
            rc = -EINVAL;
            break;
        }
        if (unlikely(msgs[k].iov_len > q->r->msg_max)) {
            rc = -EMSGSIZE;
            break;
        }
    }
    if (k == 0)
        return rc;
    int got = claim_n(q, c, (unsigned)k, timeout_ns);
    if (got <= 0)
        return got;
    uint64_t ts = enqueue_ns(q); /* one clock read per batch */
    for (int i = 0; i < got; i++)
        copy(shmq__payload(c[i].slot), msgs[i].iov_base, msgs[i].iov_len);
    /* Publish from the last claim to the first: a consumer waits at the
     * first, so when it sees that one the whole batch is there for it,
     * and it never takes a line this loop is still writing. */
    for (int i = got; i-- > 1;)
        shmq__ring_publish_own(q->r, &c[i], (uint32_t)msgs[i].iov_len,
                               c[i].pos, ts);
    /* The first one last, with the seq_cst CAS the wake pairs with. */
    publish(q, &c[0], msgs[0].iov_len, ts, 1);
    return got;
}

int shmq_reserve(shmq_t *q, shmq_resv_t *r, int64_t timeout_ns)
{
    struct shmq__lease c;
    int rc = enter(q);
    if (unlikely(rc))
        return rc;
    if (!r)
        return -EINVAL;
    if ((rc = claim(q, &c, timeout_ns)) != 0)
        return rc;
    r->data = shmq__payload(c.slot);
    r->cap = q->r->msg_max;
    r->priv[0] = c.pos;
    r->priv[1] = c.word;
    return 0;
}

/* Rebuild a claim from a reservation the caller hands back. */
static int resv_claim(shmq_t *q, const shmq_resv_t *r, struct shmq__lease *c)
{
    if (!r)
        return -EINVAL;
    c->pos = r->priv[0];
    c->word = r->priv[1];
    c->idx = (uint32_t)(c->pos & q->r->mask);
    c->slot = shmq__slot(q->r, c->pos);
    /* Another handle's reservation (another queue's slot may hold a word
     * equal to it): refuse it before looking at the word. */
    if (r->data != shmq__payload(c->slot))
        return -EINVAL;
    if (shmq_w_phase(c->word) != SHMQ_PH_WRITING ||
        shmq_w_owner(c->word) != q->owner)
        return -ESTALE;
    return 0;
}

int shmq_commit(shmq_t *q, shmq_resv_t *r, size_t len)
{
    struct shmq__lease c;
    int rc = enter(q);
    if (unlikely(rc))
        return rc;
    if ((rc = resv_claim(q, r, &c)) != 0)
        return rc;
    if (len > q->r->msg_max)
        return -EMSGSIZE;
    return publish(q, &c, len, enqueue_ns(q), 1);
}

int shmq_abort(shmq_t *q, shmq_resv_t *r)
{
    struct shmq__lease c;
    int rc = enter(q);
    if (unlikely(rc))
        return rc;
    if ((rc = resv_claim(q, r, &c)) != 0)
        return rc;
    return shmq__ring_abort(q->r, &c);
}

/* ---- consumers ---------------------------------------------------------- */

/* Lease up to n messages into l[], the i-th no longer than maxlen[i]
 * (maxlen NULL: any length), waiting for the first as block() does. How
 * many (>= 1) or an error. */
struct lease_arg {
    struct shmq__lease *l;
    const size_t *maxlen;
    unsigned n;
};

static int try_lease(shmq_t *q, void *arg)
{
    struct lease_arg *a = arg;
    return shmq__ring_lease_n(q->r, q->owner, a->maxlen, a->l, a->n);
}

static int lease_n(shmq_t *q, struct shmq__lease *l, const size_t *maxlen,
                   unsigned n, int64_t timeout_ns)
{
    struct lease_arg a = {l, maxlen, n};
    return block(q, &q->r->hdr->not_empty, timeout_ns, try_lease, &a);
}

static inline int lease(shmq_t *q, struct shmq__lease *l, size_t maxlen,
                        int64_t timeout_ns)
{
    int rc = lease_n(q, l, &maxlen, 1, timeout_ns);
    return rc > 0 ? 0 : rc;
}

ssize_t shmq_recv(shmq_t *q, void *buf, size_t cap, int64_t timeout_ns)
{
    struct shmq__lease l;
    int rc = enter(q);
    if (unlikely(rc))
        return rc;
    if (unlikely(!buf && cap))
        return -EINVAL;
    if ((rc = lease(q, &l, cap, timeout_ns)) != 0)
        return rc;
    copy(buf, shmq__payload(l.slot), l.len);
    rc = shmq__ring_ack(q->r, &l, 1);
    return rc ? rc : (ssize_t)l.len;
}

static void fill_msg(struct shmq__lease *l, shmq_msg_t *m)
{
    m->data = shmq__payload(l->slot);
    m->len = l->len;
    m->id = l->slot->id;
    m->deliveries = shmq_w_dlv(l->word);
    m->reserved0 = 0;
    m->enqueue_ns = l->slot->enqueue_ns;
    m->priv[0] = l->idx;
    m->priv[1] = l->word;
}

int shmq_lease(shmq_t *q, shmq_msg_t *m, int64_t timeout_ns)
{
    struct shmq__lease l;
    int rc = enter(q);
    if (unlikely(rc))
        return rc;
    if (!m)
        return -EINVAL;
    if ((rc = lease(q, &l, SIZE_MAX, timeout_ns)) != 0)
        return rc;
    fill_msg(&l, m);
    return 0;
}

int shmq_lease_batch(shmq_t *q, shmq_msg_t *msgs, size_t n,
                     int64_t timeout_ns)
{
    struct shmq__lease l[BATCH_MAX];
    int rc = enter(q);
    if (unlikely(rc))
        return rc;
    if (!msgs || n == 0 || n > INT32_MAX)
        return -EINVAL;
    int got = lease_n(q, l, NULL, n > BATCH_MAX ? BATCH_MAX : (unsigned)n,
                      timeout_ns);
    if (got <= 0)
        return got;
    for (int i = 0; i < got; i++)
        fill_msg(&l[i], &msgs[i]);
    return got;
}

/* Rebuild a lease from a message the caller hands back. */
static int msg_lease(shmq_t *q, const shmq_msg_t *m, struct shmq__lease *l)
{
    if (!m || m->priv[0] >= q->r->cap)
        return -EINVAL;
    l->idx = (uint32_t)m->priv[0];
    l->word = m->priv[1];
    l->slot = shmq__slot(q->r, l->idx);
    l->pos = m->id;
    l->len = 0;
    /* A message leased through another handle: its slot word may equal
     * one of ours (same index, lap and owner in another queue). */
    if (m->data != shmq__payload(l->slot))
        return -EINVAL;
    if (shmq_w_phase(l->word) != SHMQ_PH_LEASED ||
        shmq_w_owner(l->word) != q->owner)
        return -ESTALE;
    return 0;
}

static int ack_one(shmq_t *q, shmq_msg_t *m, int post)
{
    struct shmq__lease l;
    int rc = msg_lease(q, m, &l);
    if (rc)
        return rc;
    return shmq__ring_ack(q->r, &l, post);
}

int shmq_ack(shmq_t *q, shmq_msg_t *m)
{
    int rc = enter(q);
    if (unlikely(rc))
        return rc;
    return ack_one(q, m, 1);
}

int shmq_ack_batch(shmq_t *q, shmq_msg_t *msgs, size_t n)
{
    int rc = enter(q);
    if (unlikely(rc))
        return rc;
    if (!msgs || n > INT32_MAX)
        return -EINVAL;
    int done = 0;
    for (size_t i = 0; i < n; i++)
        if (ack_one(q, &msgs[i], 0) == 0)
            done++;
    if (done)
        shmq__ec_post(&q->r->hdr->not_full);
    return done;
}

int shmq_nack(shmq_t *q, shmq_msg_t *m)
{
    struct shmq__lease l;
    int rc = enter(q);
    if (unlikely(rc))
        return rc;
    if ((rc = msg_lease(q, m, &l)) != 0)
        return rc;
    return shmq__ring_nack(q->r, &l);
}

/* recv_batch on a queue with a lease timeout: lease, copy and ack message
 * by message, because a lease may be taken back under us; the batch ends
 * before such a message (shmq_recv returns -ESTALE for it), and nothing
 * after it was leased, so what the caller does not get stays in order. */
static int recv_each(shmq_t *q, const struct iovec *bufs, size_t *lens,
                     const size_t *maxlen, unsigned n, int64_t timeout_ns)
{
    struct shmq__lease l;
    unsigned i;
    int rc = 0;
    for (i = 0; i < n; i++) {
        rc = lease_n(q, &l, &maxlen[i], 1, i == 0 ? timeout_ns : 0);
        if (rc <= 0)
            break;
        copy(bufs[i].iov_base, shmq__payload(l.slot), l.len);
        if ((rc = shmq__ring_ack(q->r, &l, 0)) != 0)
            break;
        lens[i] = l.len;
    }
    if (i == 0)
        return rc;
    shmq__ec_post(&q->r->hdr->not_full);
    return (int)i;
}

int shmq_recv_batch(shmq_t *q, const struct iovec *bufs, size_t *lens,
                    size_t n, int64_t timeout_ns)
{
    struct shmq__lease l[BATCH_MAX];
    size_t maxlen[BATCH_MAX];
    size_t k;
    int rc = enter(q);
    if (unlikely(rc))
        return rc;
    if (!bufs || !lens || n == 0 || n > INT32_MAX)
        return -EINVAL;
    if (n > BATCH_MAX)
        n = BATCH_MAX;
    for (k = 0; k < n; k++) {
        if (!bufs[k].iov_base && bufs[k].iov_len) {
            rc = -EINVAL;
            break;
        }
        maxlen[k] = bufs[k].iov_len;
    }
    if (k == 0)
        return rc;
    if (q->r->lease_timeout_ms)
        return recv_each(q, bufs, lens, maxlen, (unsigned)k, timeout_ns);
    int got = lease_n(q, l, maxlen, (unsigned)k, timeout_ns);
    if (got <= 0)
        return got;
    for (int i = 0; i < got; i++) {
        copy(bufs[i].iov_base, shmq__payload(l[i].slot), l[i].len);
        lens[i] = l[i].len;
    }
    /* Without a lease timeout nobody takes a lease back from a live
     * process, so every ack succeeds: free the slots from the last to the
     * first, so that a producer waiting at the first finds the whole run
     * free at once; all but the first with a plain store. */
    for (int i = got; i-- > 1;)
        shmq__ring_ack_own(q->r, &l[i]);
    /* The first one last, with the seq_cst CAS the wake pairs with. (It
     * fails only on a corrupt ring; the message may then come again: at
     * least once.) */
    shmq__ring_ack(q->r, &l[0], 0);
    shmq__ec_post(&q->r->hdr->not_full);
    return got;
}

/* ---- introspection ------------------------------------------------------ */

static int copy_stats(const struct shmq__qseg *seg, struct shmq__reg *reg,
                      int dir_idx, struct shmq_stats *st)
{
    struct shmq_stats s;
    if (!st || st->size < sizeof(s))
        return -EINVAL;
    shmq__qseg_stats(seg, reg, dir_idx, &s);
    s.size = st->size;
    memcpy(st, &s, sizeof(s));
    return 0;
}

int shmq_stats(shmq_t *q, struct shmq_stats *st)
{
    if (!q)
        return -EINVAL;
    if (deleted(q))
        return -EIDRM;
    return copy_stats(&q->seg, &q->inst->reg, (int)q->dir_idx, st);
}

int shmq_stats_by_name(const char *instance, const char *name,
                       struct shmq_stats *st)
{
    struct shmq__qseg seg;
    if (!instance)
        instance = shmq_default_instance();
    if (shmq_instance_check(instance) || shmq_name_check(name) || !st ||
        st->size < sizeof(*st))
        return -EINVAL;
    int rc = shmq__qseg_open(instance, name, 0, &seg);
    if (rc)
        return rc;
    /* The waiter counts need the queue's directory index and the process
     * table: the registry, read-only. Without it (gone, or not readable
     * by us) the counts are 0 and the rest still holds. */
    struct shmq__reg reg;
    int have_reg = shmq__reg_open(instance, 0, NULL, &reg) == 0;
    int di = have_reg ? shmq__reg_find(&reg, name) : -ENOENT;
    rc = copy_stats(&seg, have_reg ? &reg : NULL, di, st);
    if (have_reg)
        shmq__reg_close(&reg);
    shmq__qseg_close(&seg);
    return rc;
}

int shmq_token(shmq_t *q, uint32_t *token)
{
    int rc = enter(q);
    if (rc)
        return rc;
    if (!token)
        return -EINVAL;
    return shmq__inst_refresh(q->inst, token);
}

const char *shmq_name(const shmq_t *q)
{
    return q ? q->name : NULL;
}

size_t shmq_msg_max(const shmq_t *q)
{
    return q ? q->r->msg_max : 0;
}
