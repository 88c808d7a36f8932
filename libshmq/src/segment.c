/* SPDX-License-Identifier: MIT */
/*
 * Queue segments. The creator sizes the file, reserves its memory with
 * posix_fallocate (so a full /dev/shm is -ENOSPC now, not SIGBUS later),
 * writes every header and slot word, and release-stores magic last.
 * An attacher acquire-loads magic and then checks every field against
 * what it recomputes from the configuration; nothing read from the
 * segment is trusted until it has passed these checks.
 */
#include "segment.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "registry.h"

uint64_t shmq__qseg_size(const struct shmq_queue_config *c)
{
    uint64_t sz = sizeof(struct shmq_q_hdr) +
                  shmq__ring_size(c->capacity, c->msg_max);
    if (c->dlq_capacity)
        sz += shmq__ring_size(c->dlq_capacity, c->msg_max);
    return sz;
}

static int config_from_hdr(const struct shmq_q_hdr *h,
                           struct shmq_queue_config *c)
{
    shmq_queue_config_init(c);
    c->capacity = h->capacity;
    c->msg_max = h->msg_max;
    c->mode = h->mode;
    c->gid = -1;
    c->max_deliveries = h->max_deliveries;
    c->dlq_capacity = h->dlq_capacity;
    c->lease_timeout_ns = h->lease_timeout_ns;
    c->timestamps = h->flags & SHMQ_QF_TS_MASK;
    if (h->flags & ~SHMQ_QF_TS_MASK)
        return -EBADMSG;
    return shmq_queue_config_check(c, NULL) ? -EBADMSG : 0;
}

int shmq__qseg_validate(void *base, size_t size, const char *name,
                        struct shmq__qseg *out)
{
    struct shmq_q_hdr *h = base;
    struct shmq__qseg q;
    int rc;

    if (size < sizeof(*h))
        return -EBADMSG;
    uint64_t magic = atomic_load_explicit(&h->magic, memory_order_acquire);
    if (magic == 0)
        return -ENOENT; /* still being created */
    if (magic != SHMQ_Q_MAGIC)
        return -EBADMSG;
    if (h->layout_major != SHMQ_LAYOUT_MAJOR)
        return -EPROTO;
    if (h->header_size != sizeof(*h) || h->total_size != size)
        return -EBADMSG;
    if (memchr(h->name, 0, sizeof(h->name)) == NULL)
        return -EBADMSG;
    if (name && strcmp(h->name, name) != 0)
        return -EBADMSG;
    memset(&q, 0, sizeof(q));
    if ((rc = config_from_hdr(h, &q.cfg)) != 0)
        return rc;
    if (h->stride != shmq__ring_stride(h->msg_max) ||
        shmq__qseg_size(&q.cfg) != size || h->main_off != sizeof(*h))
        return -EBADMSG;
    uint64_t main_size = shmq__ring_size(h->capacity, h->msg_max);
    if (h->dlq_capacity ? h->dlq_off != h->main_off + main_size
                        : h->dlq_off != 0)
        return -EBADMSG;
    rc = shmq__ring_attach(&q.main, (uint8_t *)base + h->main_off, main_size,
                           h->capacity, h->msg_max);
    if (rc)
        return rc;
    if (h->dlq_capacity) {
        rc = shmq__ring_attach(&q.dlq, (uint8_t *)base + h->dlq_off,
                               size - h->dlq_off, h->dlq_capacity,
                               h->msg_max);
        if (rc)
            return rc;
        q.has_dlq = 1;
        q.main.dlq = &q.dlq;
    }
    q.main.max_deliveries = h->max_deliveries;
    uint64_t lt_ms = h->lease_timeout_ns / 1000000u;
    q.main.lease_timeout_ms = h->lease_timeout_ns
                                  ? (uint32_t)(lt_ms ? lt_ms : 1)
                                  : 0;
    q.dlq.lease_timeout_ms = q.main.lease_timeout_ms;
    q.base = base;
    q.size = size;
    q.hdr = h;
    q.generation = h->generation;
    *out = q;
    /* The copy moved the dead-letter view: point at the new one. */
    if (out->has_dlq)
        out->main.dlq = &out->dlq;
    return 0;
}

static int map_fd(int fd, int writable, void **base, size_t *size)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (st.st_size < (off_t)sizeof(struct shmq_q_hdr) ||
        (uint64_t)st.st_size > SHMQ_SEG_MAX_SIZE)
        return -EBADMSG;
    void *p = mmap(NULL, (size_t)st.st_size,
                   PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return -errno;
    *base = p;
    *size = (size_t)st.st_size;
    return 0;
}

int shmq__qseg_open(const char *instance, const char *name, int writable,
                    struct shmq__qseg *out)
{
    char path[128];
    int rc = shmq__shm_name(path, sizeof(path), instance, name);
    if (rc)
        return rc;
    int fd = shm_open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    void *base = NULL;
    size_t size = 0;
    rc = map_fd(fd, writable, &base, &size);
    close(fd);
    if (rc)
        return rc;
    rc = shmq__qseg_validate(base, size, name, out);
    if (rc) {
        munmap(base, size);
        return rc;
    }
    return 0;
}

void shmq__qseg_close(struct shmq__qseg *q)
{
    if (q && q->base) {
        munmap(q->base, q->size);
        q->base = NULL;
    }
}

/* A segment left by a creator that died before storing magic. */
static int half_made(const char *path)
{
    int fd = shm_open(path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    struct stat st;
    int half = 0;
    if (fstat(fd, &st) == 0) {
        if (st.st_size < (off_t)sizeof(uint64_t)) {
            half = 1;
        } else {
            uint64_t m = 0;
            half = pread(fd, &m, sizeof(m), 0) != (ssize_t)sizeof(m) || m == 0;
        }
    }
    close(fd);
    return half;
}

void shmq__qseg_format(void *base, uint64_t size, const char *name,
                       const struct shmq_queue_config *cfg,
                       uint64_t generation)
{
    struct shmq_q_hdr *h = base;
    h->layout_major = SHMQ_LAYOUT_MAJOR;
    h->layout_minor = SHMQ_LAYOUT_MINOR;
    h->header_size = sizeof(*h);
    h->flags = cfg->timestamps & SHMQ_QF_TS_MASK;
    h->total_size = size;
    h->generation = generation;
    snprintf(h->name, sizeof(h->name), "%s", name);
    h->capacity = cfg->capacity;
    h->msg_max = cfg->msg_max;
    h->stride = shmq__ring_stride(cfg->msg_max);
    h->max_deliveries = cfg->max_deliveries;
    h->dlq_capacity = cfg->dlq_capacity;
    h->mode = cfg->mode & 07777;
    h->lease_timeout_ns = cfg->lease_timeout_ns;
    h->main_off = sizeof(*h);
    h->dlq_off = cfg->dlq_capacity
                     ? h->main_off + shmq__ring_size(cfg->capacity,
                                                     cfg->msg_max)
                     : 0;
    h->created_ns = shmq__now_ns(CLOCK_REALTIME);
    shmq__ring_init((struct shmq_ring_hdr *)((uint8_t *)base + h->main_off),
                    cfg->capacity, cfg->msg_max);
    if (cfg->dlq_capacity)
        shmq__ring_init((struct shmq_ring_hdr *)((uint8_t *)base + h->dlq_off),
                        cfg->dlq_capacity, cfg->msg_max);
    /* Last: magic, release; pairs with the acquire in qseg_validate. */
    atomic_store_explicit(&h->magic, SHMQ_Q_MAGIC, memory_order_release);
}

int shmq__qseg_create(const char *instance, const char *name,
                      const struct shmq_queue_config *cfg,
                      uint64_t generation)
{
    char path[128];
    int rc = shmq__shm_name(path, sizeof(path), instance, name);
    if (rc)
        return rc;
    uint64_t size = shmq__qseg_size(cfg);
    if (size > SHMQ_SEG_MAX_SIZE || size > (uint64_t)SIZE_MAX)
        return -EINVAL;

    int fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
                      (mode_t)(cfg->mode & 07777));
    if (fd < 0 && errno == EEXIST && half_made(path)) {
        shm_unlink(path);
        fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
                      (mode_t)(cfg->mode & 07777));
    }
    if (fd < 0)
        return -errno;
    /* The umask may have narrowed the mode. */
    if (fchmod(fd, (mode_t)(cfg->mode & 07777)) < 0 ||
        (cfg->gid >= 0 && fchown(fd, (uid_t)-1, (gid_t)cfg->gid) < 0)) {
        rc = -errno;
        goto fail;
    }
    rc = posix_fallocate(fd, 0, (off_t)size);
    if (rc) {
        rc = -rc;
        goto fail;
    }
    void *base = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED,
                      fd, 0);
    if (base == MAP_FAILED) {
        rc = -errno;
        goto fail;
    }
    shmq__qseg_format(base, size, name, cfg, generation);
    munmap(base, (size_t)size);
    close(fd);
    return 0;
fail:
    close(fd);
    shm_unlink(path);
    return rc;
}

static uint64_t ld(_Atomic uint64_t *p)
{
    return atomic_load_explicit(p, memory_order_relaxed);
}

/* What a pass over the slot words finds. The send/receive path keeps no
 * per-message counter (each would be one more locked instruction per
 * message); every slot's lap counts the times it was freed, so the totals
 * follow from the words and the rare-event counters. O(capacity). */
struct ring_census {
    uint64_t frees; /* sum of laps: slots freed so far */
    uint64_t ready, leased, retry;
};

static void ring_scan(const struct shmq__ring *r, struct ring_census *c)
{
    memset(c, 0, sizeof(*c));
    for (uint32_t i = 0; i < r->cap; i++) {
        uint64_t w = atomic_load_explicit(&shmq__slot(r, i)->word,
                                          memory_order_relaxed);
        c->frees += shmq_w_lap(w);
        switch (shmq_w_phase(w)) {
        case SHMQ_PH_READY: c->ready++; break;
        case SHMQ_PH_LEASED: c->leased++; break;
        case SHMQ_PH_RETRY: c->retry++; break;
        default: break;
        }
    }
}

void shmq__qseg_stats(const struct shmq__qseg *q, struct shmq__reg *reg,
                      int dir_idx, struct shmq_stats *st)
{
    const struct shmq__ring *r = &q->main;
    struct shmq_ring_hdr *h = r->hdr;
    struct ring_census c;

    memset(st, 0, sizeof(*st));
    st->size = sizeof(*st);
    st->capacity = q->cfg.capacity;
    st->msg_max = q->cfg.msg_max;
    st->max_deliveries = q->cfg.max_deliveries;
    st->skipped = ld(&h->skipped);
    st->dead_lettered = ld(&h->dead_lettered);
    st->redelivered = ld(&h->redelivered);
    st->repaired = ld(&h->repaired);
    ring_scan(r, &c);
    /* Slots are freed by acks, by consumers passing skips, and by moves to
     * the dead-letter ring; a published message is freed, or still READY,
     * LEASED or RETRY. Clamp: the pass is not one atomic snapshot. */
    uint64_t not_acked = st->skipped + st->dead_lettered;
    st->dequeued = c.frees > not_acked ? c.frees - not_acked : 0;
    uint64_t held = c.ready + c.leased + c.retry;
    st->enqueued = (c.frees > st->skipped ? c.frees - st->skipped : 0) + held;
    st->depth = c.ready + c.retry;
    st->in_flight = c.leased;
    st->retry_pending = c.retry;
    st->high_water = ld(&h->high_water);
    if (st->high_water > r->cap)
        st->high_water = r->cap;
    if (st->high_water < st->depth)
        st->high_water = st->depth;
    if (q->has_dlq) {
        ring_scan(&q->dlq, &c);
        st->dlq_depth = c.ready + c.retry;
        st->dlq_capacity = q->cfg.dlq_capacity;
    }
    /* Waiters of the main ring, from the sleep records of live processes
     * (a count kept in the queue would keep the killed forever). */
    if (reg && dir_idx >= 0 && (uint32_t)dir_idx < SHMQ_MAX_QUEUES)
        shmq__reg_waiters(reg, (uint32_t)dir_idx, q->generation,
                          &st->producers_waiting, &st->consumers_waiting);
    st->mode = q->cfg.mode;
    st->lease_timeout_ns = q->cfg.lease_timeout_ns;
    st->generation = q->generation;
}
