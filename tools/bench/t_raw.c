/* SPDX-License-Identifier: MIT */
/*
 * Hardware references: what the machine can do with no queue semantics at
 * all. Both live in an anonymous shared mapping made before fork and poll
 * (bt_backoff).
 *
 * spinring: a single-producer single-consumer ring of fixed-size records
 * (Lamport, with each side caching the other's index). The producer's
 * tail and the consumer's head sit on their own 128-byte blocks; records
 * are packed back to back (size rounded up to 8 bytes). Single messages
 * publish the tail once per record; batches once per batch.
 *
 * ownring: the spinring's records, each owned through a 64-bit state word
 * that both sides take by compare-and-swap, as shmq's design requires of
 * every message (DESIGN.md section 3: a claim is a CAS on the slot word):
 * the producer CASes FREE -> WRITING, writes, stores READY; the consumer
 * CASes READY -> LEASED, reads, stores FREE for the next lap. Nothing else
 * of shmq (no owner, length, id or timestamp, no hints, no waiting), and
 * the fastest arrangement measured: the state words in an array of their
 * own (so the consumer never writes a record's line) and records packed
 * back to back, the run's words prefetched for writing, published and
 * freed last-to-first. Single producer, single consumer, so the CASes
 * never fail. It is the most any ring can do that owns each message by a
 * word: ownring / spinring is what per-message ownership costs, shmq /
 * ownring what the rest of shmq costs.
 *
 * cacheline: ping-pong on one shared 64-bit word. The pinger stores an odd
 * value, the ponger answers with an even one; a round trip is two cache
 * line transfers and nothing else.
 */
#include "bench.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

struct sring {
    _Alignas(128) _Atomic uint64_t tail; /* written by the producer */
    _Alignas(128) _Atomic uint64_t head; /* written by the consumer */
    _Alignas(128) uint64_t cap; /* a power of two */
    uint64_t mask, stride;
};

struct area {
    unsigned char *base;
    size_t len, block;
};

static size_t round_up(size_t v, size_t a)
{
    return (v + a - 1) / a * a;
}

static int map_area(struct bt_run *r, size_t block, uint32_t n, char *err,
                    size_t errlen)
{
    static struct area a; /* one run at a time per process */
    a.block = block;
    a.len = round_up(block * n, 4096);
    a.base = mmap(NULL, a.len, PROT_READ | PROT_WRITE,
                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (a.base == MAP_FAILED) {
        int rc = -errno;
        bt_errf(err, errlen, "mmap: %s", strerror(errno));
        return rc;
    }
    r->priv = &a;
    return 0;
}

static void teardown(struct bt_run *r, int killed)
{
    struct area *a = r->priv;
    (void)killed;
    if (a)
        munmap(a->base, a->len);
    r->priv = NULL;
}

static void close_end(struct bt_end *e)
{
    e->q = NULL;
}

/* ---- spinring ------------------------------------------------------------- */

static const char *ring_check(const struct bt_case *c)
{
    if (c->producers != 1 || c->consumers != 1)
        return "single producer, single consumer only";
    return NULL;
}

/* Rings of packed records, each followed by extra bytes per record (0,
 * or ownring's state words). */
static int rings_setup(struct bt_run *r, size_t extra, char *err,
                       size_t errlen)
{
    const struct bt_case *c = r->c;
    uint32_t nq = c->wl == BT_RTT ? 2 : c->queues;
    size_t stride = round_up(c->size, 8);
    size_t block = round_up(
        sizeof(struct sring) + c->capacity * (stride + extra), 128);
    int rc = map_area(r, block, nq, err, errlen);
    if (rc < 0)
        return rc;
    struct area *a = r->priv;
    for (uint32_t i = 0; i < nq; i++) {
        struct sring *s = (struct sring *)(a->base + i * block);
        s->cap = c->capacity;
        s->mask = c->capacity - 1u;
        s->stride = stride;
    }
    return 0;
}

static int ring_setup(struct bt_run *r, char *err, size_t errlen)
{
    return rings_setup(r, 0, err, errlen);
}

static int ring_open(const struct bt_run *r, uint32_t qi, int role,
                     struct bt_end *e)
{
    const struct area *a = r->priv;
    struct sring *s = (struct sring *)(a->base + qi * a->block);
    e->q = s;
    e->pos = 0;
    e->lim = role == BT_SEND ? s->cap : 0;
    return 0;
}

static inline unsigned char *rec(struct sring *s, uint64_t pos)
{
    return (unsigned char *)(s + 1) + (pos & s->mask) * s->stride;
}

/* Producer: wait until at least one record is free; returns how many. */
static uint64_t ring_room(struct bt_end *e, struct sring *s)
{
    unsigned spins = 0;
    while (e->pos == e->lim) {
        e->lim = atomic_load_explicit(&s->head, memory_order_acquire) + s->cap;
        if (e->pos == e->lim)
            bt_backoff(&spins);
    }
    return e->lim - e->pos;
}

/* Consumer: wait until at least one record is there; returns how many. */
static uint64_t ring_ready(struct bt_end *e, struct sring *s)
{
    unsigned spins = 0;
    while (e->pos == e->lim) {
        e->lim = atomic_load_explicit(&s->tail, memory_order_acquire);
        if (e->pos == e->lim)
            bt_backoff(&spins);
    }
    return e->lim - e->pos;
}

static int ring_send(struct bt_end *e, const void *msg)
{
    struct sring *s = e->q;
    ring_room(e, s);
    memcpy(rec(s, e->pos), msg, e->size);
    atomic_store_explicit(&s->tail, ++e->pos, memory_order_release);
    return 0;
}

static int ring_recv(struct bt_end *e, void *buf)
{
    struct sring *s = e->q;
    ring_ready(e, s);
    memcpy(buf, rec(s, e->pos), e->size);
    atomic_store_explicit(&s->head, ++e->pos, memory_order_release);
    return (int)e->size;
}

static int ring_send_batch(struct bt_end *e, const struct iovec *v,
                           unsigned n)
{
    struct sring *s = e->q;
    uint64_t k = ring_room(e, s);
    if (k > n)
        k = n;
    for (uint64_t i = 0; i < k; i++)
        memcpy(rec(s, e->pos + i), v[i].iov_base, e->size);
    e->pos += k;
    atomic_store_explicit(&s->tail, e->pos, memory_order_release);
    return (int)k;
}

static int ring_recv_batch(struct bt_end *e, const struct iovec *v,
                           unsigned n)
{
    struct sring *s = e->q;
    uint64_t k = ring_ready(e, s);
    if (k > n)
        k = n;
    for (uint64_t i = 0; i < k; i++)
        memcpy(v[i].iov_base, rec(s, e->pos + i), e->size);
    e->pos += k;
    atomic_store_explicit(&s->head, e->pos, memory_order_release);
    return (int)k;
}

const struct bt_transport bt_spinring = {
    .name = "spinring",
    .about = "reference: raw SPSC spin ring of fixed-size records",
    .check = ring_check,
    .setup = ring_setup,
    .teardown = teardown,
    .open = ring_open,
    .close = close_end,
    .send = ring_send,
    .recv = ring_recv,
    .send_batch = ring_send_batch,
    .recv_batch = ring_recv_batch,
    .spins = 1,
};

/* ---- ownring --------------------------------------------------------------- */

enum { OW_FREE, OW_WRITING, OW_READY, OW_LEASED };

static inline uint64_t ow_word(uint64_t lap, unsigned ph)
{
    return lap << 2 | ph;
}

/* Block: struct sring, the records, then the state words (all FREE at
 * lap 0: the zeroed mapping). */
static int own_setup(struct bt_run *r, char *err, size_t errlen)
{
    return rings_setup(r, sizeof(uint64_t), err, errlen);
}

static int own_open(const struct bt_run *r, uint32_t qi, int role,
                    struct bt_end *e)
{
    (void)role;
    const struct area *a = r->priv;
    e->q = a->base + qi * a->block;
    e->pos = 0;
    return 0;
}

static inline _Atomic uint64_t *own_word(struct sring *s, uint64_t pos)
{
    return (_Atomic uint64_t *)((unsigned char *)(s + 1) +
                                s->cap * s->stride) +
           (pos & s->mask);
}

static inline uint64_t own_lap(const struct sring *s, uint64_t pos)
{
    return pos / s->cap;
}

static inline void own_prefetch(struct sring *s, uint64_t pos, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        const char *p = (const char *)own_word(s, pos + i);
#if defined(__x86_64__) || defined(__i386__)
        __asm__ volatile("prefetchw %0" ::"m"(*p));
#else
        __builtin_prefetch(p, 1, 3);
#endif
    }
}

/* Take up to n records at pos that are in phase `from` at their lap into
 * phase `to`, by CAS; waits for the first. Returns how many. */
static unsigned own_take(struct bt_end *e, struct sring *s, unsigned n,
                         unsigned from, unsigned to)
{
    unsigned spins = 0;
    while (atomic_load_explicit(own_word(s, e->pos), memory_order_acquire) !=
           ow_word(own_lap(s, e->pos), from))
        bt_backoff(&spins);
    if (n > 1)
        own_prefetch(s, e->pos + 1, n - 1);
    unsigned k = 0;
    for (; k < n; k++) {
        uint64_t lap = own_lap(s, e->pos + k);
        uint64_t w = ow_word(lap, from);
        if (!atomic_compare_exchange_strong_explicit(
                own_word(s, e->pos + k), &w, ow_word(lap, to),
                memory_order_acquire, memory_order_relaxed))
            break;
    }
    return k;
}

static int own_send_batch(struct bt_end *e, const struct iovec *v,
                          unsigned n)
{
    struct sring *s = e->q;
    unsigned k = own_take(e, s, n, OW_FREE, OW_WRITING);
    for (unsigned i = 0; i < k; i++)
        memcpy(rec(s, e->pos + i), v[i].iov_base,
               e->size);
    for (unsigned i = k; i-- > 0;)
        atomic_store_explicit(own_word(s, e->pos + i),
                              ow_word(own_lap(s, e->pos + i), OW_READY),
                              memory_order_release);
    e->pos += k;
    return (int)k;
}

static int own_recv_batch(struct bt_end *e, const struct iovec *v,
                          unsigned n)
{
    struct sring *s = e->q;
    unsigned k = own_take(e, s, n, OW_READY, OW_LEASED);
    for (unsigned i = 0; i < k; i++)
        memcpy(v[i].iov_base, rec(s, e->pos + i),
               e->size);
    for (unsigned i = k; i-- > 0;)
        atomic_store_explicit(own_word(s, e->pos + i),
                              ow_word(own_lap(s, e->pos + i) + 1, OW_FREE),
                              memory_order_release);
    e->pos += k;
    return (int)k;
}

static int own_send(struct bt_end *e, const void *msg)
{
    struct iovec v = {(void *)msg, e->size};
    return own_send_batch(e, &v, 1) == 1 ? 0 : -EIO;
}

static int own_recv(struct bt_end *e, void *buf)
{
    struct iovec v = {buf, e->size};
    return own_recv_batch(e, &v, 1) == 1 ? (int)e->size : -EIO;
}

const struct bt_transport bt_ownring = {
    .name = "ownring",
    .about = "reference: spinring with a CAS-taken state word per record",
    .check = ring_check,
    .setup = own_setup,
    .teardown = teardown,
    .open = own_open,
    .close = close_end,
    .send = own_send,
    .recv = own_recv,
    .send_batch = own_send_batch,
    .recv_batch = own_recv_batch,
    .spins = 1,
};

/* ---- cacheline -------------------------------------------------------------- */

static const char *line_check(const struct bt_case *c)
{
    (void)c;
    return NULL;
}

static int line_setup(struct bt_run *r, char *err, size_t errlen)
{
    return map_area(r, 128, 1, err, errlen);
}

static int line_open(const struct bt_run *r, uint32_t qi, int role,
                     struct bt_end *e)
{
    const struct area *a = r->priv;
    (void)role;
    (void)qi;
    e->q = a->base;
    e->pos = 0; /* last value this end took */
    return 0;
}

/* Queue 0 carries odd values (pinger -> ponger), queue 1 even ones. */
static int line_send(struct bt_end *e, const void *msg)
{
    uint64_t seq;
    memcpy(&seq, msg, sizeof(seq));
    uint64_t w = seq == BT_STOP ? UINT64_MAX
                                : ((seq + 1) << 1) | (e->qi == 0 ? 1u : 0u);
    atomic_store_explicit((_Atomic uint64_t *)e->q, w, memory_order_release);
    return 0;
}

static int line_recv(struct bt_end *e, void *buf)
{
    const uint64_t dir = e->qi == 0 ? 1u : 0u;
    unsigned spins = 0;
    uint64_t w;
    for (;;) {
        w = atomic_load_explicit((_Atomic uint64_t *)e->q,
                                 memory_order_acquire);
        if ((w & 1u) == dir && w != e->pos)
            break;
        bt_backoff(&spins);
    }
    e->pos = w;
    uint64_t seq = w == UINT64_MAX ? BT_STOP : (w >> 1) - 1;
    memcpy(buf, &seq, sizeof(seq));
    return (int)e->size;
}

const struct bt_transport bt_cacheline = {
    .name = "cacheline",
    .about = "reference: raw ping-pong on one shared cache line",
    .check = line_check,
    .setup = line_setup,
    .teardown = teardown,
    .open = line_open,
    .close = close_end,
    .send = line_send,
    .recv = line_recv,
    .spins = 1,
    .workloads = 1u << BT_RTT,
};
