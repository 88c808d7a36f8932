/* SPDX-License-Identifier: MIT */
/* One ring of a queue: the slot protocol (see ring.c). */
#ifndef SHMQ_RING_H
#define SHMQ_RING_H

#include "layout.h"
#include "util.h"

/* A process-local, validated view of a ring in shared memory. Every
 * configuration value here was checked once at attach time and is never
 * read back from shared memory. */
struct shmq__ring {
    struct shmq_ring_hdr *hdr;
    _Atomic uint64_t *bitmap; /* retry bitmap, capacity bits */
    uint8_t *slots;
    uint64_t mask;
    uint32_t cap, shift, stride, msg_max;
    uint32_t max_deliveries;   /* 0: no limit */
    uint32_t lease_timeout_ms; /* 0: none */
    struct shmq__ring *dlq;    /* dead-letter ring, or NULL */
};

#define SHMQ_NOPOS UINT64_MAX

/* What a claim or a lease hands back. */
struct shmq__lease {
    struct shmq_slot *slot;
    uint64_t word; /* the WRITING or LEASED word we hold */
    uint64_t pos;  /* position claimed or leased; SHMQ_NOPOS for a
                      redelivery (its slot is behind head) */
    uint32_t idx;  /* slot index */
    uint32_t len;
};

static inline struct shmq_slot *shmq__slot(const struct shmq__ring *r,
                                           uint64_t pos)
{
    return (struct shmq_slot *)(r->slots + (pos & r->mask) * r->stride);
}

static inline uint8_t *shmq__payload(struct shmq_slot *s)
{
    return (uint8_t *)s + SHMQ_SLOT_HDR;
}

/* Size in bytes of a ring of cap slots holding msg_max bytes each. */
SHMQ_INTERNAL uint64_t shmq__ring_size(uint32_t cap, uint32_t msg_max);
SHMQ_INTERNAL uint32_t shmq__ring_stride(uint32_t msg_max);
/* Lay out a new ring at hdr (zeroed memory). */
SHMQ_INTERNAL void shmq__ring_init(struct shmq_ring_hdr *hdr, uint32_t cap,
                                   uint32_t msg_max);
/* Check a ring header in [hdr, hdr + avail) and fill a view. */
SHMQ_INTERNAL int shmq__ring_attach(struct shmq__ring *r, void *hdr,
                                    uint64_t avail, uint32_t cap,
                                    uint32_t msg_max);

/* Producer: claim a FREE slot. 0, -EAGAIN (full), -EBADMSG. */
SHMQ_INTERNAL int shmq__ring_claim(struct shmq__ring *r, unsigned owner,
                                   struct shmq__lease *out);
/* Producer: claim up to n FREE slots (consecutive unless other producers
 * claim in between). How many (>= 1), or -EAGAIN (full), -EBADMSG. */
SHMQ_INTERNAL int shmq__ring_claim_n(struct shmq__ring *r, unsigned owner,
                                     struct shmq__lease *out, unsigned n);
/* Producer: publish a claimed slot with len bytes already written. */
SHMQ_INTERNAL int shmq__ring_publish(struct shmq__ring *r,
                                     struct shmq__lease *c, uint32_t len,
                                     uint64_t id, uint64_t enqueue_ns,
                                     unsigned dlv, int post);
/* Producer: publish a claim this process made and still holds, with a
 * plain release store: nobody else moves a live process's WRITING word.
 * Not an ordering point for waiters (no E3): a batch publishes its last
 * slot with shmq__ring_publish, which is. Not for reservations handed
 * back by a caller (they may be stale). */
SHMQ_INTERNAL void shmq__ring_publish_own(struct shmq__ring *r,
                                          struct shmq__lease *c, uint32_t len,
                                          uint64_t id, uint64_t enqueue_ns);
/* Producer: give up a claim; consumers skip the slot. */
SHMQ_INTERNAL int shmq__ring_abort(struct shmq__ring *r,
                                   struct shmq__lease *c);

/* Consumer: lease the next message no longer than maxlen (redeliveries
 * first). 0, -EAGAIN (empty), -EMSGSIZE (next is longer than maxlen; not
 * leased), -EBADMSG. */
SHMQ_INTERNAL int shmq__ring_lease(struct shmq__ring *r, unsigned owner,
                                   size_t maxlen, struct shmq__lease *out);
/* Consumer: lease up to n messages, the i-th no longer than maxlen[i]
 * (maxlen NULL: any length). How many (>= 1), or as shmq__ring_lease. */
SHMQ_INTERNAL int shmq__ring_lease_n(struct shmq__ring *r, unsigned owner,
                                     const size_t *maxlen,
                                     struct shmq__lease *out, unsigned n);
/* Consumer: end a lease. 0 or -ESTALE. */
SHMQ_INTERNAL int shmq__ring_ack(struct shmq__ring *r, struct shmq__lease *l,
                                 int post);
/* Consumer: end a lease with a release store, on a ring without a lease
 * timeout only (there nobody takes back a live process's lease). Not an
 * ordering point for waiters: a batch ends with shmq__ring_ack. */
SHMQ_INTERNAL void shmq__ring_ack_own(struct shmq__ring *r,
                                      struct shmq__lease *l);
SHMQ_INTERNAL int shmq__ring_nack(struct shmq__ring *r,
                                  struct shmq__lease *l);

/* Repair: turn every slot owner holds into SKIP (writing) or RETRY
 * (leased). Adds to *skipped and *returned. */
SHMQ_INTERNAL void shmq__ring_repair(struct shmq__ring *r, unsigned owner,
                                     uint64_t *skipped, uint64_t *returned);
/* Take back leases stamped more than timeout_ms before now_ms. */
SHMQ_INTERNAL uint64_t shmq__ring_expire(struct shmq__ring *r,
                                         uint32_t now_ms);
/* Add the LEASED slots of each owner below nowners to per_owner[owner]
 * (for the process list). */
SHMQ_INTERNAL void shmq__ring_count_leases(struct shmq__ring *r,
                                           uint64_t *per_owner,
                                           uint32_t nowners);
SHMQ_INTERNAL void shmq__ring_wake_all(struct shmq__ring *r);

/* Monotonic milliseconds, never 0 (0 means "not stamped"). */
SHMQ_INTERNAL uint32_t shmq__now_ms32(void);

#endif
