/* SPDX-License-Identifier: MIT */
/*
 * The ring: a bounded MPMC ring of 2^k slots whose every transition is a
 * compare-and-swap on the slot's 64-bit state word (layout.h). The word
 * carries the owner, so claim and ownership are one atomic step and after
 * any crash it is known exactly who held what. head and tail are monotone
 * position hints that anyone may advance ("helping"); they are never the
 * point of claim.
 *
 * Slot life at position p (lap L = p >> k):
 *
 *   FREE(L) --P2--> WRITING(L,me) --R1--> READY(L) --C2--> LEASED(L,d,me)
 *      ^                 |                                  |     |   |
 *      |            abort/repair                       ack C3  nack/repair/
 *      |                 v                                  |   expire N1
 *      |              SKIP(L) --S1 (consumer)--> FREE(L+1)  |     v
 *      +------------------------------------------ FREE(L+1) <- RETRY(L,d)
 *                                   (lease of a RETRY: RETRY --C4--> LEASED)
 *
 * Ordering points and their partners:
 *   P1  producer loads the slot word (acquire)    pairs with C3, S1 (the
 *       consumer's reads of the old payload happen before our writes)
 *   P2  claim CAS FREE->WRITING (acquire)          pairs with C3, S1
 *   R1  publish CAS WRITING->READY (seq_cst)       pairs with C1; it is also
 *       the eventcount's E3 for not-empty (wait.c)
 *   C1  consumer loads the slot word (acquire)     pairs with R1, N1
 *   C2  lease CAS READY->LEASED (acquire)          pairs with R1
 *   C3  ack CAS LEASED->FREE(L+1) (seq_cst)        pairs with P1/P2; E3 for
 *       not-full
 *   S1  skip CAS SKIP->FREE(L+1) (seq_cst)         as C3
 *   N1  return CAS LEASED->RETRY (seq_cst)         pairs with C4; E3 for
 *       not-empty (with B1)
 *   C4  re-lease CAS RETRY->LEASED (seq_cst)       pairs with N1
 *   B1  set retry bit (seq_cst RMW) after N1       pairs with B2
 *   B2  clear retry bit (seq_cst RMW), then re-load the word: a bit cleared
 *       for a slot that went RETRY again in between is set back, because
 *       either B2's re-load sees N1 or B1 comes after B2.
 *   H1  hint CAS (release) after the slot at p was seen claimed; hint loads
 *       are acquire, so a position read from a hint comes with the claims
 *       of every position before it.
 *   retry_count is raised (seq_cst) before N1 and lowered after C4 (or
 *   after the CAS that drops a corrupt RETRY slot), so it never
 *   underflows; a consumer that sees it non-zero scans the bitmap.
 *
 * Invariants (checked by the spin model in docs/model/): one owner per
 * slot; a published message stays in one slot, READY/LEASED/RETRY, until
 * one ack (or its move to the dead-letter ring) frees it; positions below
 * tail are all claimed; consumers never pass a slot that is not yet READY
 * (so nothing is lost), and pass claimed ones (LEASED, RETRY, SKIP).
 *
 * Shared memory is untrusted: a phase outside FREE..SKIP, a length above
 * msg_max or a lap no legal history explains gives -EBADMSG, and every
 * loop is bounded in the number of such observations.
 */
#include "ring.h"

#include <string.h>

#include "wait.h"

uint32_t shmq__now_ms32(void)
{
    uint32_t ms = (uint32_t)(shmq__now_ns(CLOCK_MONOTONIC) / 1000000u);
    return ms ? ms : 1u;
}

uint32_t shmq__ring_stride(uint32_t msg_max)
{
    return (uint32_t)shmq__round_up(SHMQ_SLOT_HDR + (uint64_t)msg_max,
                                    SHMQ_CACHELINE);
}

static uint64_t bitmap_bytes(uint32_t cap)
{
    return shmq__round_up(((uint64_t)cap + 63) / 64 * 8, SHMQ_CACHELINE);
}

uint64_t shmq__ring_size(uint32_t cap, uint32_t msg_max)
{
    return sizeof(struct shmq_ring_hdr) + bitmap_bytes(cap) +
           (uint64_t)cap * shmq__ring_stride(msg_max);
}

void shmq__ring_init(struct shmq_ring_hdr *h, uint32_t cap, uint32_t msg_max)
{
    h->capacity = cap;
    h->shift = (uint32_t)__builtin_ctz(cap);
    h->stride = shmq__ring_stride(msg_max);
    h->msg_max = msg_max;
    h->bitmap_off = sizeof(*h);
    h->slots_off = sizeof(*h) + bitmap_bytes(cap);
    h->ring_size = shmq__ring_size(cap, msg_max);
    uint8_t *slots = (uint8_t *)h + h->slots_off;
    for (uint64_t i = 0; i < cap; i++) {
        struct shmq_slot *s = (struct shmq_slot *)(slots + i * h->stride);
        atomic_store_explicit(&s->word,
                              shmq_word(0, SHMQ_PH_FREE, 0, SHMQ_OWNER_NONE),
                              memory_order_relaxed);
    }
}

int shmq__ring_attach(struct shmq__ring *r, void *base, uint64_t avail,
                      uint32_t cap, uint32_t msg_max)
{
    struct shmq_ring_hdr *h = base;
    uint64_t size = shmq__ring_size(cap, msg_max);

    if (avail < size)
        return -EBADMSG;
    if (h->capacity != cap || h->shift != (uint32_t)__builtin_ctz(cap) ||
        h->stride != shmq__ring_stride(msg_max) || h->msg_max != msg_max ||
        h->bitmap_off != sizeof(*h) ||
        h->slots_off != sizeof(*h) + bitmap_bytes(cap) || h->ring_size != size)
        return -EBADMSG;
    memset(r, 0, sizeof(*r));
    r->hdr = h;
    r->bitmap = (_Atomic uint64_t *)((uint8_t *)h + sizeof(*h));
    r->slots = (uint8_t *)h + sizeof(*h) + bitmap_bytes(cap);
    r->cap = cap;
    r->mask = cap - 1u;
    r->shift = (uint32_t)__builtin_ctz(cap);
    r->stride = shmq__ring_stride(msg_max);
    r->msg_max = msg_max;
    return 0;
}

static inline int phase_ok(unsigned ph)
{
    return ph >= SHMQ_PH_FREE && ph <= SHMQ_PH_SKIP;
}

/* H1: advance a hint from pos to pos + 1 if nobody did yet. */
static inline void help(_Atomic uint64_t *hint, uint64_t pos)
{
    uint64_t e = pos;
    atomic_compare_exchange_strong_explicit(hint, &e, pos + 1,
                                            memory_order_release,
                                            memory_order_relaxed);
}

static inline uint64_t lap_of(const struct shmq__ring *r, uint64_t pos)
{
    return (pos >> r->shift) & SHMQ_LAP_MASK;
}

static void note_high_water(struct shmq_ring_hdr *h, uint64_t depth)
{
    uint64_t hw = atomic_load_explicit(&h->high_water, memory_order_relaxed);
    while (depth > hw &&
           !atomic_compare_exchange_weak_explicit(&h->high_water, &hw, depth,
                                                  memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
}

/* H1 for a run: advance a hint to end unless it is there already. The
 * caller saw every position below end claimed. */
static inline void help_to(_Atomic uint64_t *hint, uint64_t from, uint64_t end)
{
    uint64_t e = from;
    while (e < end &&
           !atomic_compare_exchange_weak_explicit(hint, &e, end,
                                                  memory_order_release,
                                                  memory_order_relaxed))
        ;
}

/* Ask for the lines of slots [pos, pos + n) in exclusive state, all at
 * once: the CASes that follow then find them here instead of each waiting
 * in turn for a line from the other core. (PREFETCHW is a no-op on x86
 * processors that lack it.) */
static inline void prefetch_slots(const struct shmq__ring *r, uint64_t pos,
                                  unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        const char *p = (const char *)shmq__slot(r, pos + i);
        /* The header's line and, in a slot of more than one line, the
         * payload's first. */
#if defined(__x86_64__) || defined(__i386__)
        __asm__ volatile("prefetchw %0" ::"m"(*p));
        if (r->stride > SHMQ_CACHELINE)
            __asm__ volatile("prefetchw %0" ::"m"(p[SHMQ_CACHELINE]));
#else
        __builtin_prefetch(p, 1, 3);
        if (r->stride > SHMQ_CACHELINE)
            __builtin_prefetch(p + SHMQ_CACHELINE, 1, 3);
#endif
    }
}

int shmq__ring_claim_n(struct shmq__ring *r, unsigned owner,
                       struct shmq__lease *out, unsigned n)
{
    struct shmq_ring_hdr *h = r->hdr;
    uint64_t pos = atomic_load_explicit(&h->tail, memory_order_acquire);
    uint64_t from = pos;
    uint32_t odd = 0; /* observations only a corrupt ring explains */
    unsigned got = 0;
    int rc = 0;

    if (n > 1)
        prefetch_slots(r, pos, n);
    for (;;) {
        struct shmq_slot *s = shmq__slot(r, pos);
        /* P1 */
        uint64_t w = atomic_load_explicit(&s->word, memory_order_acquire);
        uint64_t plap = lap_of(r, pos);
        int64_t d = shmq_lap_diff(shmq_w_lap(w), plap);
        unsigned ph = shmq_w_phase(w);

        if (unlikely(!phase_ok(ph))) {
            rc = -EBADMSG;
            break;
        }
        if (d == 0) {
            if (ph == SHMQ_PH_FREE) {
                uint64_t nw = shmq_word(plap, SHMQ_PH_WRITING, 0, owner);
                /* P2 */
                if (!atomic_compare_exchange_strong_explicit(
                        &s->word, &w, nw, memory_order_acquire,
                        memory_order_relaxed))
                    continue; /* lost the race for pos: look again */
                out[got].slot = s;
                out[got].word = nw;
                out[got].pos = pos;
                out[got].idx = (uint32_t)(pos & r->mask);
                out[got].len = 0;
                pos++;
                if (++got == n)
                    break;
                continue;
            }
            pos++; /* pos is taken at this lap */
            continue;
        }
        uint64_t t = atomic_load_explicit(&h->tail, memory_order_acquire);
        if (t > pos) { /* our position was stale: the hint is ahead */
            from = pos = t;
            continue;
        }
        if (d == -1 && ph != SHMQ_PH_FREE) {
            /* The previous lap's message still holds the slot: full. */
            note_high_water(h, r->cap);
            rc = -EAGAIN;
            break;
        }
        /* A slot a lap ahead of a tail that did not move on (a claimer
         * died before helping the tail, and the slot was skipped and freed
         * since): pass it. A lap behind and FREE, no legal history gives:
         * step on too, but not forever. */
        if (++odd > r->cap) {
            rc = -EBADMSG;
            break;
        }
        pos++;
    }
    help_to(&h->tail, from, pos);
    return got ? (int)got : rc;
}

int shmq__ring_claim(struct shmq__ring *r, unsigned owner,
                     struct shmq__lease *out)
{
    int rc = shmq__ring_claim_n(r, owner, out, 1);
    return rc > 0 ? 0 : rc;
}

/* The high-water mark is sampled at every 64th position published: a
 * read of the consumers' head line on every message would cost a cache
 * miss each. */
static inline void sample_depth(struct shmq_ring_hdr *h, uint64_t pos)
{
    if ((pos & 63u) == 0) {
        uint64_t hd = atomic_load_explicit(&h->head, memory_order_relaxed);
        if (pos + 1 > hd)
            note_high_water(h, pos + 1 - hd);
    }
}

int shmq__ring_publish(struct shmq__ring *r, struct shmq__lease *c,
                       uint32_t len, uint64_t id, uint64_t enqueue_ns,
                       unsigned dlv, int post)
{
    struct shmq_ring_hdr *h = r->hdr;
    struct shmq_slot *s = c->slot;
    uint64_t w = c->word;

    /* Only the holder of the WRITING word may write the slot header: a
     * stale claim (a second commit, or a reservation handed back bent)
     * would otherwise rewrite the length of a message already published.
     * While the word is ours nobody else moves it (repair acts on the
     * dead only), so checking it first is enough. */
    if (atomic_load_explicit(&s->word, memory_order_relaxed) != w)
        return -ESTALE;
    s->id = id;
    s->enqueue_ns = enqueue_ns;
    atomic_store_explicit((_Atomic uint32_t *)&s->len, len,
                          memory_order_relaxed);
    /* R1 (E3 of not_empty) */
    if (!atomic_compare_exchange_strong_explicit(
            &s->word, &w,
            shmq_word(shmq_w_lap(w), SHMQ_PH_READY, dlv, SHMQ_OWNER_NONE),
            memory_order_seq_cst, memory_order_relaxed))
        return -ESTALE;
    sample_depth(h, c->pos);
    if (post)
        shmq__ec_post(&h->not_empty);
    return 0;
}

void shmq__ring_publish_own(struct shmq__ring *r, struct shmq__lease *c,
                            uint32_t len, uint64_t id, uint64_t enqueue_ns)
{
    struct shmq_slot *s = c->slot;
    s->id = id;
    s->enqueue_ns = enqueue_ns;
    atomic_store_explicit((_Atomic uint32_t *)&s->len, len,
                          memory_order_relaxed);
    /* R1 as a release store: pairs with C1 like the CAS. */
    atomic_store_explicit(&s->word,
                          shmq_word(shmq_w_lap(c->word), SHMQ_PH_READY, 0,
                                    SHMQ_OWNER_NONE),
                          memory_order_release);
    sample_depth(r->hdr, c->pos);
}

int shmq__ring_abort(struct shmq__ring *r, struct shmq__lease *c)
{
    uint64_t w = c->word;
    if (!atomic_compare_exchange_strong_explicit(
            &c->slot->word, &w,
            shmq_word(shmq_w_lap(w), SHMQ_PH_SKIP, 0, SHMQ_OWNER_NONE),
            memory_order_seq_cst, memory_order_relaxed))
        return -ESTALE;
    /* A consumer parked at this position must come and pass it. */
    shmq__ec_post(&r->hdr->not_empty);
    return 0;
}

/* B2: clear the retry bit of slot idx, then set it back if the slot went
 * RETRY meanwhile. */
static void retry_bit_clear(struct shmq__ring *r, uint32_t idx,
                            struct shmq_slot *s)
{
    uint64_t bit = UINT64_C(1) << (idx & 63u);
    _Atomic uint64_t *bw = &r->bitmap[idx >> 6];

    atomic_fetch_and_explicit(bw, ~bit, memory_order_seq_cst);
    uint64_t w = atomic_load_explicit(&s->word, memory_order_seq_cst);
    if (shmq_w_phase(w) == SHMQ_PH_RETRY)
        atomic_fetch_or_explicit(bw, bit, memory_order_seq_cst);
}

/* A process that dies between N1 and B1 leaves a RETRY slot without its
 * bit, which consumers would never find. Whoever passes over every slot
 * (repair, lease expiry) sets the bit of each RETRY slot it sees, whoever
 * made it RETRY; a bit set for a slot that is no longer RETRY is cleared
 * by the next consumer that looks (B2). */
static void retry_bit_ensure(struct shmq__ring *r, uint32_t idx, uint64_t w)
{
    uint64_t bit = UINT64_C(1) << (idx & 63u);
    if (shmq_w_phase(w) == SHMQ_PH_RETRY &&
        !(atomic_load_explicit(&r->bitmap[idx >> 6], memory_order_relaxed) &
          bit))
        atomic_fetch_or_explicit(&r->bitmap[idx >> 6], bit,
                                 memory_order_seq_cst);
}

/* Turn the lease `held` (a LEASED word) of slot idx into RETRY with
 * delivery count dlv, and tell consumers. N1 + B1. */
static int mark_retry(struct shmq__ring *r, struct shmq_slot *s, uint32_t idx,
                      uint64_t held, unsigned dlv)
{
    struct shmq_ring_hdr *h = r->hdr;

    if (atomic_load_explicit(&s->word, memory_order_relaxed) != held)
        return -ESTALE;
    atomic_fetch_add_explicit(&h->retry_count, 1, memory_order_seq_cst);
    if (r->lease_timeout_ms)
        atomic_store_explicit(&s->lease_ms, 0, memory_order_relaxed);
    /* N1 */
    if (!atomic_compare_exchange_strong_explicit(
            &s->word, &held,
            shmq_word(shmq_w_lap(held), SHMQ_PH_RETRY, dlv, SHMQ_OWNER_NONE),
            memory_order_seq_cst, memory_order_relaxed)) {
        atomic_fetch_sub_explicit(&h->retry_count, 1, memory_order_relaxed);
        return -ESTALE;
    }
    /* B1 */
    atomic_fetch_or_explicit(&r->bitmap[idx >> 6], UINT64_C(1) << (idx & 63u),
                             memory_order_seq_cst);
    atomic_fetch_add_explicit(&h->returned, 1, memory_order_relaxed);
    shmq__ec_post(&h->not_empty);
    return 0;
}

/* Free a slot we hold (C3). */
static int free_slot(struct shmq__ring *r, struct shmq_slot *s, uint64_t held)
{
    if (r->lease_timeout_ms) {
        if (atomic_load_explicit(&s->word, memory_order_relaxed) != held)
            return -ESTALE;
        atomic_store_explicit(&s->lease_ms, 0, memory_order_relaxed);
    }
    return atomic_compare_exchange_strong_explicit(
               &s->word, &held,
               shmq_word(shmq_w_lap(held) + 1, SHMQ_PH_FREE, 0,
                         SHMQ_OWNER_NONE),
               memory_order_seq_cst, memory_order_relaxed)
               ? 0
               : -ESTALE;
}

/* Move the message in slot s (held by us as `held`, original delivery
 * count dlv) to the dead-letter ring. On a full dead-letter ring it goes
 * back to RETRY and stays in the main ring. */
static int dead_letter(struct shmq__ring *r, unsigned owner,
                       struct shmq_slot *s, uint32_t idx, uint64_t held,
                       unsigned dlv)
{
    struct shmq__ring *q = r->dlq;
    struct shmq__lease c;
    uint32_t len = atomic_load_explicit((_Atomic uint32_t *)&s->len,
                                        memory_order_relaxed);

    if (!q || len > r->msg_max || len > q->msg_max ||
        shmq__ring_claim(q, owner, &c) != 0) {
        atomic_fetch_add_explicit(&r->hdr->dlq_full, 1, memory_order_relaxed);
        if (mark_retry(r, s, idx, held, dlv) == 0)
            atomic_fetch_sub_explicit(&r->hdr->returned, 1,
                                      memory_order_relaxed);
        return -ENOSPC;
    }
    memcpy(shmq__payload(c.slot), shmq__payload(s), len);
    shmq__ring_publish(q, &c, len, s->id, s->enqueue_ns, dlv, 1);
    if (free_slot(r, s, held) == 0) {
        atomic_fetch_add_explicit(&r->hdr->dead_lettered, 1,
                                  memory_order_relaxed);
        shmq__ec_post(&r->hdr->not_full);
    }
    return 0;
}

static void stamp(struct shmq__ring *r, struct shmq_slot *s)
{
    if (r->lease_timeout_ms)
        atomic_store_explicit(&s->lease_ms, shmq__now_ms32(),
                              memory_order_relaxed);
}

/* A RETRY slot whose length is impossible: take it out of the ring as
 * drop_corrupt does for a READY one. Left there it would fail every lease
 * (redeliveries come first). The slot leaves RETRY as after C4: the count
 * goes down and the bit is cleared (B2). */
static int drop_corrupt_retry(struct shmq__ring *r, struct shmq_slot *s,
                              uint32_t idx, uint64_t w)
{
    if (atomic_compare_exchange_strong_explicit(
            &s->word, &w,
            shmq_word(shmq_w_lap(w) + 1, SHMQ_PH_FREE, 0, SHMQ_OWNER_NONE),
            memory_order_seq_cst, memory_order_relaxed)) {
        atomic_fetch_sub_explicit(&r->hdr->retry_count, 1,
                                  memory_order_relaxed);
        retry_bit_clear(r, idx, s);
        atomic_fetch_add_explicit(&r->hdr->skipped, 1, memory_order_relaxed);
        shmq__ec_post(&r->hdr->not_full);
    }
    return -EBADMSG;
}

static int lease_retry(struct shmq__ring *r, unsigned owner, size_t maxlen,
                       struct shmq__lease *out)
{
    struct shmq_ring_hdr *h = r->hdr;
    uint32_t nwords = (r->cap + 63) / 64;
    int toolong = 0;

    for (uint32_t i = 0; i < nwords; i++) {
        uint64_t b = atomic_load_explicit(&r->bitmap[i], memory_order_acquire);
        while (b) {
            uint32_t idx = i * 64 + (uint32_t)__builtin_ctzll(b);
            b &= b - 1;
            if (idx >= r->cap) {
                /* A bit past the ring: corruption; clear it so the ring
                 * heals instead of failing every lease. */
                atomic_fetch_and_explicit(&r->bitmap[i],
                                          ~(UINT64_C(1) << (idx & 63u)),
                                          memory_order_relaxed);
                continue;
            }
            struct shmq_slot *s = shmq__slot(r, idx);
            uint64_t w = atomic_load_explicit(&s->word, memory_order_seq_cst);
            if (shmq_w_phase(w) != SHMQ_PH_RETRY) {
                retry_bit_clear(r, idx, s);
                continue;
            }
            uint32_t len = atomic_load_explicit((_Atomic uint32_t *)&s->len,
                                                memory_order_relaxed);
            if (len > r->msg_max)
                return drop_corrupt_retry(r, s, idx, w);
            if (len > maxlen) {
                toolong = 1;
                continue;
            }
            unsigned dlv = shmq_w_dlv(w);
            uint64_t nw = shmq_word(shmq_w_lap(w), SHMQ_PH_LEASED,
                                    dlv < 255 ? dlv + 1 : 255, owner);
            /* C4 */
            if (!atomic_compare_exchange_strong_explicit(
                    &s->word, &w, nw, memory_order_seq_cst,
                    memory_order_relaxed))
                continue;
            atomic_fetch_sub_explicit(&h->retry_count, 1,
                                      memory_order_relaxed);
            retry_bit_clear(r, idx, s);
            if (r->max_deliveries && dlv >= r->max_deliveries) {
                dead_letter(r, owner, s, idx, nw, dlv);
                continue;
            }
            atomic_fetch_add_explicit(&h->redelivered, 1,
                                      memory_order_relaxed);
            stamp(r, s);
            out->slot = s;
            out->word = nw;
            out->pos = SHMQ_NOPOS; /* behind head: not a position to go on from */
            out->idx = idx;
            out->len = len;
            return 0;
        }
    }
    return toolong ? -EMSGSIZE : -EAGAIN;
}

/* A READY slot whose length is impossible: take it out of the ring so the
 * queue goes on, and say so. */
static int drop_corrupt(struct shmq__ring *r, struct shmq_slot *s,
                        uint64_t w, uint64_t pos)
{
    if (atomic_compare_exchange_strong_explicit(
            &s->word, &w,
            shmq_word(shmq_w_lap(w) + 1, SHMQ_PH_FREE, 0, SHMQ_OWNER_NONE),
            memory_order_seq_cst, memory_order_relaxed)) {
        help(&r->hdr->head, pos);
        atomic_fetch_add_explicit(&r->hdr->skipped, 1, memory_order_relaxed);
        shmq__ec_post(&r->hdr->not_full);
    }
    return -EBADMSG;
}

/* Lease up to n READY messages from head on; maxlen[i] bounds the i-th
 * (NULL: no bound). Returns how many, or -EAGAIN, -EMSGSIZE, -EBADMSG
 * when none. */
static int lease_ready(struct shmq__ring *r, unsigned owner,
                       const size_t *maxlen, struct shmq__lease *out,
                       unsigned n)
{
    struct shmq_ring_hdr *h = r->hdr;
    uint64_t pos = atomic_load_explicit(&h->head, memory_order_acquire);
    uint64_t from = pos;
    uint32_t odd = 0;
    unsigned got = 0;
    int rc = 0;

    for (;;) {
        struct shmq_slot *s = shmq__slot(r, pos);
        /* C1 */
        uint64_t w = atomic_load_explicit(&s->word, memory_order_acquire);
        uint64_t plap = lap_of(r, pos);
        int64_t d = shmq_lap_diff(shmq_w_lap(w), plap);
        unsigned ph = shmq_w_phase(w);

        if (unlikely(!phase_ok(ph))) {
            rc = -EBADMSG;
            break;
        }
        if (d == 0) {
            if (ph == SHMQ_PH_READY) {
                uint32_t len = atomic_load_explicit(
                    (_Atomic uint32_t *)&s->len, memory_order_relaxed);
                if (unlikely(len > r->msg_max)) {
                    rc = drop_corrupt(r, s, w, pos);
                    break;
                }
                if (maxlen && len > maxlen[got]) {
                    rc = -EMSGSIZE;
                    break;
                }
                unsigned dlv = shmq_w_dlv(w);
                uint64_t nw = shmq_word(plap, SHMQ_PH_LEASED,
                                        dlv < 255 ? dlv + 1 : 255, owner);
                /* C2 */
                if (!atomic_compare_exchange_strong_explicit(
                        &s->word, &w, nw, memory_order_acquire,
                        memory_order_relaxed))
                    continue;
                if (got == 0 && n > 1)
                    prefetch_slots(r, pos + 1, n - 1);
                stamp(r, s);
                out[got].slot = s;
                out[got].word = nw;
                out[got].pos = pos;
                out[got].idx = (uint32_t)(pos & r->mask);
                out[got].len = len;
                pos++;
                if (++got == n)
                    break;
                continue;
            }
            if (ph == SHMQ_PH_SKIP) {
                uint64_t nw = shmq_word(plap + 1, SHMQ_PH_FREE, 0,
                                        SHMQ_OWNER_NONE);
                /* S1 */
                if (!atomic_compare_exchange_strong_explicit(
                        &s->word, &w, nw, memory_order_seq_cst,
                        memory_order_relaxed))
                    continue;
                atomic_fetch_add_explicit(&h->skipped, 1,
                                          memory_order_relaxed);
                shmq__ec_post(&h->not_full);
                pos++;
                continue;
            }
            if (ph == SHMQ_PH_LEASED || ph == SHMQ_PH_RETRY) {
                pos++;
                continue;
            }
            /* FREE or WRITING at this lap: not yet published. */
        }
        uint64_t t = atomic_load_explicit(&h->head, memory_order_acquire);
        if (t > pos) {
            from = pos = t;
            continue;
        }
        if (d == 0 || d == -1) {
            rc = -EAGAIN; /* nothing published at pos yet */
            break;
        }
        if (d < -1 || ++odd > r->cap) {
            rc = -EBADMSG;
            break;
        }
        pos++; /* consumed at a later lap already */
    }
    help_to(&h->head, from, pos);
    return got ? (int)got : rc;
}

int shmq__ring_lease_n(struct shmq__ring *r, unsigned owner,
                       const size_t *maxlen, struct shmq__lease *out,
                       unsigned n)
{
    unsigned got = 0;
    int rc = -EAGAIN;

    /* Redeliveries first, one at a time (they are rare). */
    while (got < n && unlikely(atomic_load_explicit(&r->hdr->retry_count,
                                                    memory_order_acquire))) {
        rc = lease_retry(r, owner, maxlen ? maxlen[got] : SIZE_MAX,
                         &out[got]);
        if (rc != 0)
            break;
        got++;
    }
    if (rc != 0 && rc != -EAGAIN && rc != -EMSGSIZE)
        return got ? (int)got : rc;
    if (got == n || (rc == -EMSGSIZE && got))
        return (int)got;
    int rc2 = lease_ready(r, owner, maxlen ? maxlen + got : NULL, out + got,
                         n - got);
    if (rc2 > 0)
        return (int)got + rc2;
    if (got)
        return (int)got;
    if (rc2 == -EAGAIN && rc == -EMSGSIZE)
        return rc;
    return rc2;
}

int shmq__ring_lease(struct shmq__ring *r, unsigned owner, size_t maxlen,
                     struct shmq__lease *out)
{
    int rc = shmq__ring_lease_n(r, owner, &maxlen, out, 1);
    return rc > 0 ? 0 : rc;
}

int shmq__ring_ack(struct shmq__ring *r, struct shmq__lease *l, int post)
{
    int rc = free_slot(r, l->slot, l->word);
    if (rc)
        return rc;
    if (post)
        shmq__ec_post(&r->hdr->not_full);
    return 0;
}

void shmq__ring_ack_own(struct shmq__ring *r, struct shmq__lease *l)
{
    (void)r;
    /* C3 as a release store: our reads of the payload happen before a
     * producer's acquire (P1/P2) sees the slot free. */
    atomic_store_explicit(&l->slot->word,
                          shmq_word(shmq_w_lap(l->word) + 1, SHMQ_PH_FREE, 0,
                                    SHMQ_OWNER_NONE),
                          memory_order_release);
}

int shmq__ring_nack(struct shmq__ring *r, struct shmq__lease *l)
{
    int rc = mark_retry(r, l->slot, l->idx, l->word, shmq_w_dlv(l->word));
    if (rc == 0)
        atomic_fetch_add_explicit(&r->hdr->nacked, 1, memory_order_relaxed);
    return rc;
}

void shmq__ring_repair(struct shmq__ring *r, unsigned owner,
                       uint64_t *skipped, uint64_t *returned)
{
    uint64_t n = 0;

    for (uint32_t idx = 0; idx < r->cap; idx++) {
        struct shmq_slot *s = shmq__slot(r, idx);
        for (;;) {
            uint64_t w = atomic_load_explicit(&s->word, memory_order_seq_cst);
            if (shmq_w_owner(w) != owner) {
                retry_bit_ensure(r, idx, w);
                break;
            }
            unsigned ph = shmq_w_phase(w);
            if (ph == SHMQ_PH_WRITING) {
                if (!atomic_compare_exchange_strong_explicit(
                        &s->word, &w,
                        shmq_word(shmq_w_lap(w), SHMQ_PH_SKIP, 0,
                                  SHMQ_OWNER_NONE),
                        memory_order_seq_cst, memory_order_relaxed))
                    continue;
                (*skipped)++;
                n++;
            } else if (ph == SHMQ_PH_LEASED) {
                if (mark_retry(r, s, idx, w, shmq_w_dlv(w)) != 0)
                    continue;
                (*returned)++;
                n++;
            }
            break;
        }
    }
    if (n)
        atomic_fetch_add_explicit(&r->hdr->repaired, n, memory_order_relaxed);
    shmq__ring_wake_all(r);
}

uint64_t shmq__ring_expire(struct shmq__ring *r, uint32_t now_ms)
{
    uint64_t n = 0;

    if (!r->lease_timeout_ms)
        return 0;
    for (uint32_t idx = 0; idx < r->cap; idx++) {
        struct shmq_slot *s = shmq__slot(r, idx);
        uint64_t w = atomic_load_explicit(&s->word, memory_order_acquire);
        if (shmq_w_phase(w) != SHMQ_PH_LEASED) {
            retry_bit_ensure(r, idx, w);
            continue;
        }
        uint32_t at = atomic_load_explicit(&s->lease_ms, memory_order_relaxed);
        if (!at || (uint32_t)(now_ms - at) <= r->lease_timeout_ms)
            continue;
        if (mark_retry(r, s, idx, w, shmq_w_dlv(w)) == 0)
            n++;
    }
    if (n) {
        atomic_fetch_add_explicit(&r->hdr->expired, n, memory_order_relaxed);
        atomic_fetch_add_explicit(&r->hdr->repaired, n, memory_order_relaxed);
    }
    return n;
}

void shmq__ring_count_leases(struct shmq__ring *r, uint64_t *per_owner,
                              uint32_t nowners)
{
    for (uint32_t idx = 0; idx < r->cap; idx++) {
        uint64_t w = atomic_load_explicit(&shmq__slot(r, idx)->word,
                                          memory_order_relaxed);
        unsigned o = shmq_w_owner(w);
        if (shmq_w_phase(w) == SHMQ_PH_LEASED && o < nowners)
            per_owner[o]++;
    }
}

void shmq__ring_wake_all(struct shmq__ring *r)
{
    shmq__ec_wake_all(&r->hdr->not_empty);
    shmq__ec_wake_all(&r->hdr->not_full);
}
