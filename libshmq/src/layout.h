/* SPDX-License-Identifier: MIT */
/*
 * Every structure shmq keeps in shared memory, in one place.
 *
 * Registry segment  /shmq.<instance>                       (one per instance)
 *
 *   0      struct shmq_reg_hdr      4096 B  magic "SHMQREG\0", versions,
 *                                           table offsets and sizes
 *   4096   struct shmq_reg_queue[1024]      queue directory, 128 B each
 *   135168 struct shmq_reg_proc[max_procs]  process table, 256 B each:
 *          word, pid, uid, start time; at 64 the bitmap of queues
 *          opened; at 192 the sleep records of its threads asleep in a
 *          blocking call (the waiter counts of shmq_stats)
 *
 * Queue segment  /shmq.<instance>.<queue>                     (one per queue)
 *
 *   0      struct shmq_q_hdr        1024 B  magic "SHMQQUE\0", config,
 *                                           deleted flag
 *   1024   main ring: struct shmq_ring_hdr (1024 B), retry bitmap
 *          (capacity bits, rounded to 64 B), capacity slots
 *   ...    dead-letter ring: same shape, dlq_capacity slots (if any)
 *
 * struct shmq_ring_hdr, each block on its own 128 B (two cache lines,
 * one of them a guard against the adjacent-line prefetcher):
 *
 *   0      config (read-only after creation): capacity, shift, stride ...
 *   128    producer block: tail hint, high-water mark
 *   256    consumer block: head hint
 *          (no per-message counters: enqueued, dequeued, depth and
 *          in-flight are derived from the slot words, see segment.c)
 *   384    rare-event block: retry_count, redelivered, dead_lettered,
 *          skipped, repaired, dlq_full, nacked, returned, expired
 *   512    not-empty eventcount (futex word)
 *   640    not-full eventcount (futex word)
 *          (who sleeps is not counted here: a process killed in its sleep
 *          could never take itself off such a count; see the sleep
 *          records of struct shmq_reg_proc)
 *   768    reserved
 *
 * Slot (stride = round_up(32 + msg_max, 64)):
 *
 *   0      state word (64-bit, atomic):
 *            bits 63..24  lap     (40 bits) position >> log2(capacity)
 *            bits 23..20  phase   FREE WRITING READY LEASED RETRY SKIP
 *            bits 19..12  deliveries (8 bits, saturating at 255)
 *            bits 11..0   owner   process-table index, 0xfff = none
 *   8      id          message id (the position it was committed at)
 *   16     enqueue_ns  CLOCK_REALTIME at commit
 *   24     len         payload bytes (<= msg_max; checked on every read)
 *   28     lease_ms    CLOCK_MONOTONIC milliseconds (mod 2^32) when leased,
 *                      only on queues with a lease timeout; 0 = not stamped
 *   32     payload
 *
 * Rules: fixed-width fields, offsets never pointers, the creator writes
 * everything and release-stores magic last; attachers acquire-load it and
 * bounds-check every value before use (see segment.c). Changing any size
 * or offset below is a layout major version bump.
 */
#ifndef SHMQ_LAYOUT_H
#define SHMQ_LAYOUT_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <shmq/version.h>

#define SHMQ_REG_MAGIC UINT64_C(0x00474552514d4853) /* "SHMQREG\0" LE */
#define SHMQ_Q_MAGIC UINT64_C(0x004555514d514853)   /* "SHMQQUE\0" LE */

#define SHMQ_CACHELINE 64
#define SHMQ_MAX_QUEUES 1024u
#define SHMQ_MAX_PROCS 4094u
#define SHMQ_DEFAULT_PROCS 1024u
#define SHMQ_MIN_CAPACITY 2u
#define SHMQ_MAX_CAPACITY (1u << 24)
#define SHMQ_MAX_MSG (16u << 20)
#define SHMQ_MAX_DELIVERIES 254u
#define SHMQ_SEG_MAX_SIZE (UINT64_C(1) << 40)

/* ---- registry ---------------------------------------------------------- */

struct shmq_reg_hdr {
    _Atomic uint64_t magic;   /* 0: written last by the creator (release) */
    uint32_t layout_major;    /* 8 */
    uint32_t layout_minor;    /* 12 */
    uint32_t header_size;     /* 16 = sizeof(struct shmq_reg_hdr) */
    uint32_t max_queues;      /* 20 */
    uint32_t max_procs;       /* 24 */
    uint32_t flags;           /* 28 */
    uint64_t dir_off;         /* 32 */
    uint64_t procs_off;       /* 40 */
    uint64_t total_size;      /* 48 */
    uint64_t created_ns;      /* 56 */
    _Atomic uint32_t daemon_pid; /* 64: pid of the supervisor, 0: none */
    uint32_t reserved0;       /* 68 */
    _Atomic uint64_t queue_gen; /* 72: last queue generation handed out */
    uint8_t reserved1[128 - 80];
    char socket_path[108];    /* 128: supervisor's control socket, "" none */
    uint8_t reserved[4096 - 236];
};
_Static_assert(sizeof(struct shmq_reg_hdr) == 4096, "reg hdr size");
_Static_assert(offsetof(struct shmq_reg_hdr, layout_major) == 8, "");
_Static_assert(offsetof(struct shmq_reg_hdr, header_size) == 16, "");
_Static_assert(offsetof(struct shmq_reg_hdr, max_queues) == 20, "");
_Static_assert(offsetof(struct shmq_reg_hdr, max_procs) == 24, "");
_Static_assert(offsetof(struct shmq_reg_hdr, dir_off) == 32, "");
_Static_assert(offsetof(struct shmq_reg_hdr, procs_off) == 40, "");
_Static_assert(offsetof(struct shmq_reg_hdr, total_size) == 48, "");
_Static_assert(offsetof(struct shmq_reg_hdr, created_ns) == 56, "");
_Static_assert(offsetof(struct shmq_reg_hdr, daemon_pid) == 64, "");
_Static_assert(offsetof(struct shmq_reg_hdr, queue_gen) == 72, "");
_Static_assert(offsetof(struct shmq_reg_hdr, socket_path) == 128, "");

/* directory entry states */
enum { SHMQ_DIR_FREE = 0, SHMQ_DIR_ACTIVE = 1 };

struct shmq_reg_queue {
    _Atomic uint32_t state;   /* 0: SHMQ_DIR_*; ACTIVE stored last */
    uint32_t reserved0;       /* 4 */
    uint64_t generation;      /* 8: matches the segment's */
    char name[64];            /* 16: NUL-terminated */
    uint64_t created_ns;      /* 80 */
    uint8_t reserved[128 - 88];
};
_Static_assert(sizeof(struct shmq_reg_queue) == 128, "dir entry size");
_Static_assert(offsetof(struct shmq_reg_queue, generation) == 8, "");
_Static_assert(offsetof(struct shmq_reg_queue, name) == 16, "");
_Static_assert(offsetof(struct shmq_reg_queue, created_ns) == 80, "");

/* Process-table word: incarnation << 8 | state (SHMQ_PROC_* of admin.h). */
#define SHMQ_PROC_WORD(inc, st) (((uint64_t)(inc) << 8) | (uint64_t)(st))
#define SHMQ_PROC_INC(w) ((uint32_t)((w) >> 8))
#define SHMQ_PROC_STATE(w) ((uint32_t)((w)&0xffu))

#define SHMQ_PROC_SLEEPS 16u

struct shmq_reg_proc {
    _Atomic uint64_t word;    /* 0: incarnation | state */
    _Atomic int32_t pid;      /* 8 */
    _Atomic uint32_t uid;     /* 12 */
    _Atomic uint64_t start_ns; /* 16 */
    _Atomic uint64_t leases;  /* 24: reserved, 0 (leases are counted from
                                 the slot words, see shmq_admin_procs) */
    uint8_t reserved0[64 - 32];
    _Atomic uint64_t queues[16]; /* 64: bitmap of directory indices opened */
    /* 192: sleep records (below), written by the owner; cleared by its
     * registration and by its repair */
    _Atomic uint32_t sleeps[SHMQ_PROC_SLEEPS];
};
_Static_assert(sizeof(struct shmq_reg_proc) == 256, "proc entry size");
_Static_assert(offsetof(struct shmq_reg_proc, pid) == 8, "");
_Static_assert(offsetof(struct shmq_reg_proc, uid) == 12, "");
_Static_assert(offsetof(struct shmq_reg_proc, start_ns) == 16, "");
_Static_assert(offsetof(struct shmq_reg_proc, leases) == 24, "");
_Static_assert(offsetof(struct shmq_reg_proc, queues) == 64, "");
_Static_assert(offsetof(struct shmq_reg_proc, sleeps) == 192, "");

/*
 * Sleep record: what one thread of the process is asleep on, claimed (CAS
 * from 0) before it sleeps in a blocking call and cleared when the call
 * returns. 0 = free.
 *
 *   bit  31      valid
 *   bits 30..12  queue generation mod 2^19
 *   bit  11      condition: 0 not-empty (a consumer), 1 not-full (a producer)
 *   bit  10      ring: 0 main, 1 dead-letter
 *   bits 9..0    queue directory index
 *
 * Waiter counts are the records of live processes that name the queue, so
 * they die with the process. A process has 16 records: a seventeenth
 * thread of it asleep at once sleeps without one and is not counted.
 */
#define SHMQ_SLEEP_VALID (UINT32_C(1) << 31)
#define SHMQ_SLEEP_GEN_SHIFT 12
#define SHMQ_SLEEP_GEN_MASK UINT32_C(0x7ffff)
#define SHMQ_SLEEP_NOT_FULL (UINT32_C(1) << 11)
#define SHMQ_SLEEP_DLQ (UINT32_C(1) << 10)
#define SHMQ_SLEEP_DIR_MASK UINT32_C(0x3ff)
_Static_assert(SHMQ_MAX_QUEUES - 1 <= SHMQ_SLEEP_DIR_MASK, "dir index bits");

static inline uint32_t shmq_sleep_rec(uint32_t dir_idx, uint64_t generation,
                                      int dlq, int not_full)
{
    return SHMQ_SLEEP_VALID |
           (((uint32_t)generation & SHMQ_SLEEP_GEN_MASK)
            << SHMQ_SLEEP_GEN_SHIFT) |
           (not_full ? SHMQ_SLEEP_NOT_FULL : 0) | (dlq ? SHMQ_SLEEP_DLQ : 0) |
           (dir_idx & SHMQ_SLEEP_DIR_MASK);
}

#define SHMQ_REG_DIR_OFF UINT64_C(4096)
#define SHMQ_REG_PROCS_OFF (SHMQ_REG_DIR_OFF + SHMQ_MAX_QUEUES * 128u)
_Static_assert(SHMQ_REG_PROCS_OFF == 135168, "procs offset");

/* Byte offsets of the advisory OFD locks taken on the registry file
 * (locks may lie past the end of a file). */
#define SHMQ_LOCK_ADMIN UINT64_C(0x100000000)     /* create/delete/repair */
#define SHMQ_LOCK_PROC_BASE UINT64_C(0x100001000) /* + index: liveness */

/* Token: index | incarnation << 16 (incarnation 16 bits, never 0). */
#define SHMQ_TOKEN(idx, inc) ((uint32_t)(idx) | ((uint32_t)(inc) << 16))
#define SHMQ_TOKEN_IDX(t) ((uint32_t)(t)&0xffffu)
#define SHMQ_TOKEN_INC(t) ((uint32_t)(t) >> 16)

/* ---- queue segment ----------------------------------------------------- */

struct shmq_q_hdr {
    _Atomic uint64_t magic;   /* 0 */
    uint32_t layout_major;    /* 8 */
    uint32_t layout_minor;    /* 12 */
    uint32_t header_size;     /* 16 = 1024 */
    uint32_t flags;           /* 20: SHMQ_QF_* */
    uint64_t total_size;      /* 24 */
    uint64_t generation;      /* 32 */
    char name[64];            /* 40 */
    uint32_t capacity;        /* 104 */
    uint32_t msg_max;         /* 108 */
    uint32_t stride;          /* 112 */
    uint32_t max_deliveries;  /* 116 */
    uint32_t dlq_capacity;    /* 120 */
    uint32_t mode;            /* 124 */
    uint64_t lease_timeout_ns; /* 128 */
    uint64_t main_off;        /* 136 */
    uint64_t dlq_off;         /* 144: 0 if no dead-letter ring */
    uint64_t created_ns;      /* 152 */
    _Atomic uint32_t deleted; /* 160: set (release) before unlink */
    uint32_t reserved0;       /* 164 */
    uint8_t reserved[1024 - 168];
};
_Static_assert(sizeof(struct shmq_q_hdr) == 1024, "queue hdr size");
/* flags: bits 1..0 = timestamp mode (SHMQ_TS_* of admin.h); others 0 */
#define SHMQ_QF_TS_MASK 3u
_Static_assert(offsetof(struct shmq_q_hdr, total_size) == 24, "");
_Static_assert(offsetof(struct shmq_q_hdr, generation) == 32, "");
_Static_assert(offsetof(struct shmq_q_hdr, name) == 40, "");
_Static_assert(offsetof(struct shmq_q_hdr, capacity) == 104, "");
_Static_assert(offsetof(struct shmq_q_hdr, msg_max) == 108, "");
_Static_assert(offsetof(struct shmq_q_hdr, stride) == 112, "");
_Static_assert(offsetof(struct shmq_q_hdr, max_deliveries) == 116, "");
_Static_assert(offsetof(struct shmq_q_hdr, dlq_capacity) == 120, "");
_Static_assert(offsetof(struct shmq_q_hdr, mode) == 124, "");
_Static_assert(offsetof(struct shmq_q_hdr, lease_timeout_ns) == 128, "");
_Static_assert(offsetof(struct shmq_q_hdr, main_off) == 136, "");
_Static_assert(offsetof(struct shmq_q_hdr, dlq_off) == 144, "");
_Static_assert(offsetof(struct shmq_q_hdr, created_ns) == 152, "");
_Static_assert(offsetof(struct shmq_q_hdr, deleted) == 160, "");

/* An eventcount: bit 0 of word = someone waits, bits 31..1 = epoch. */
struct shmq_ec {
    _Atomic uint32_t word;     /* 0: futex word */
    uint32_t reserved;         /* 4: 0; waiters are counted from the
                                  sleep records of the process table */
};

struct shmq_ring_hdr {
    /* 0: configuration, read-only after creation */
    uint32_t capacity;        /* 0 */
    uint32_t shift;           /* 4: log2(capacity) */
    uint32_t stride;          /* 8 */
    uint32_t msg_max;         /* 12 */
    uint64_t bitmap_off;      /* 16: from the ring header */
    uint64_t slots_off;       /* 24: from the ring header */
    uint64_t ring_size;       /* 32: header + bitmap + slots */
    uint8_t pad0[128 - 40];
    /* 128: producers */
    _Atomic uint64_t tail;     /* 128: next position to claim (hint) */
    _Atomic uint64_t high_water; /* 136: sampled, see docs/ring.md */
    uint8_t pad1[256 - 144];
    /* 256: consumers */
    _Atomic uint64_t head;     /* 256: next position to lease (hint) */
    uint8_t pad2[384 - 264];
    /* 384: rare events */
    _Atomic uint64_t retry_count;   /* 384: slots in RETRY */
    _Atomic uint64_t redelivered;   /* 392 */
    _Atomic uint64_t dead_lettered; /* 400 */
    _Atomic uint64_t skipped;       /* 408 */
    _Atomic uint64_t repaired;      /* 416 */
    _Atomic uint64_t dlq_full;      /* 424 */
    _Atomic uint64_t nacked;        /* 432 */
    _Atomic uint64_t returned;      /* 440: LEASED -> RETRY, any cause */
    _Atomic uint64_t expired;       /* 448: leases taken back on timeout */
    uint8_t pad3[512 - 456];
    /* 512, 640: waiting */
    struct shmq_ec not_empty;       /* 512 */
    uint8_t pad4[640 - 520];
    struct shmq_ec not_full;        /* 640 */
    uint8_t pad5[1024 - 648];
};
_Static_assert(sizeof(struct shmq_ring_hdr) == 1024, "ring hdr size");
_Static_assert(offsetof(struct shmq_ring_hdr, bitmap_off) == 16, "");
_Static_assert(offsetof(struct shmq_ring_hdr, slots_off) == 24, "");
_Static_assert(offsetof(struct shmq_ring_hdr, ring_size) == 32, "");
_Static_assert(offsetof(struct shmq_ring_hdr, tail) == 128, "");
_Static_assert(offsetof(struct shmq_ring_hdr, high_water) == 136, "");
_Static_assert(offsetof(struct shmq_ring_hdr, head) == 256, "");
_Static_assert(offsetof(struct shmq_ring_hdr, retry_count) == 384, "");
_Static_assert(offsetof(struct shmq_ring_hdr, nacked) == 432, "");
_Static_assert(offsetof(struct shmq_ring_hdr, expired) == 448, "");
_Static_assert(offsetof(struct shmq_ring_hdr, not_empty) == 512, "");
_Static_assert(offsetof(struct shmq_ring_hdr, not_full) == 640, "");

struct shmq_slot {
    _Atomic uint64_t word;     /* 0 */
    uint64_t id;               /* 8 */
    uint64_t enqueue_ns;       /* 16 */
    uint32_t len;              /* 24 */
    _Atomic uint32_t lease_ms; /* 28 */
    /* 32: payload */
};
_Static_assert(sizeof(struct shmq_slot) == 32, "slot hdr size");
_Static_assert(offsetof(struct shmq_slot, id) == 8, "");
_Static_assert(offsetof(struct shmq_slot, enqueue_ns) == 16, "");
_Static_assert(offsetof(struct shmq_slot, len) == 24, "");
_Static_assert(offsetof(struct shmq_slot, lease_ms) == 28, "");

#define SHMQ_SLOT_HDR 32u

/* ---- slot state word ---------------------------------------------------- */

enum {
    SHMQ_PH_FREE = 1,    /* ready for the producer of position lap */
    SHMQ_PH_WRITING = 2, /* claimed by owner, being written */
    SHMQ_PH_READY = 3,   /* published, waiting for a consumer */
    SHMQ_PH_LEASED = 4,  /* held by owner until ack/nack */
    SHMQ_PH_RETRY = 5,   /* waiting for redelivery */
    SHMQ_PH_SKIP = 6,    /* aborted or dead producer: consumers pass it */
};

#define SHMQ_LAP_BITS 40
#define SHMQ_LAP_MASK ((UINT64_C(1) << SHMQ_LAP_BITS) - 1)
#define SHMQ_OWNER_NONE 0xfffu

static inline uint64_t shmq_word(uint64_t lap, unsigned phase, unsigned dlv,
                                 unsigned owner)
{
    return ((lap & SHMQ_LAP_MASK) << 24) | ((uint64_t)(phase & 0xfu) << 20) |
           ((uint64_t)(dlv & 0xffu) << 12) | (uint64_t)(owner & 0xfffu);
}
static inline uint64_t shmq_w_lap(uint64_t w) { return w >> 24; }
static inline unsigned shmq_w_phase(uint64_t w)
{
    return (unsigned)(w >> 20) & 0xfu;
}
static inline unsigned shmq_w_dlv(uint64_t w)
{
    return (unsigned)(w >> 12) & 0xffu;
}
static inline unsigned shmq_w_owner(uint64_t w)
{
    return (unsigned)w & 0xfffu;
}

/* Signed distance a - b between two 40-bit laps. */
static inline int64_t shmq_lap_diff(uint64_t a, uint64_t b)
{
    return (int64_t)(((a - b) & SHMQ_LAP_MASK) << 24) >> 24;
}

#endif
