/* SPDX-License-Identifier: MIT */
/*
 * shmq: a crash-safe multi-producer multi-consumer message queue between
 * processes on one Linux host, in POSIX shared memory.
 *
 * Conventions (every function):
 *  - returns >= 0 on success and a negative errno on failure;
 *  - validates its arguments (-EINVAL) and leaves out-parameters untouched
 *    on failure;
 *  - never prints, logs, or allocates in the send/receive path.
 *
 * Errors common to all queue operations:
 *  -EINVAL     bad argument (NULL handle, bad name, unknown flag ...)
 *  -ENOENT     no such queue (or no such instance)
 *  -EIDRM      the queue was deleted after it was opened
 *  -EBADMSG    the shared memory is corrupt (a value read back is out of
 *              bounds); nothing was written
 *  -EPROTO     the segment was made by an incompatible layout major version
 *  -EACCES     the queue's mode does not allow this process to open it
 *  -ENOSPC     the instance's process table is full
 *
 * Timeouts are relative, in nanoseconds: 0 tries once and returns -EAGAIN
 * when the operation would block; SHMQ_FOREVER waits without limit; any
 * other positive value waits at most that long and returns -ETIMEDOUT.
 * A deadline is absolute on CLOCK_MONOTONIC internally and never stretches
 * when a signal interrupts the wait.
 *
 * Delivery semantics: at-least-once. A message is in exactly one slot from
 * a successful send until one acknowledgement frees it. If the process that
 * leased it dies (or gives it back with shmq_nack, or its lease times out),
 * it is delivered again, with the same id and a higher delivery count.
 * Ordering is FIFO per producer among first deliveries; a redelivered
 * message (deliveries > 1) comes out of order. See docs/semantics.md.
 *
 * Threads: a handle may be used by several threads at once; all calls on
 * it are thread-safe. A child made by fork() is a new participant: it
 * registers on its first call and never acts under its parent's identity
 * (leases its parent held stay the parent's).
 */
#ifndef SHMQ_SHMQ_H
#define SHMQ_SHMQ_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <shmq/version.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(SHMQ_BUILDING) && defined(__GNUC__)
#define SHMQ_API __attribute__((visibility("default")))
#else
#define SHMQ_API
#endif

/* Wait without limit. */
#define SHMQ_FOREVER ((int64_t)-1)

/* Longest queue or instance name, without the terminating NUL. Names are
 * made of [A-Za-z0-9_.-], must not start with '.' and must not contain
 * "..". Instance names may not contain '.'. */
#define SHMQ_NAME_MAX 63
#define SHMQ_INSTANCE_MAX 31
#define SHMQ_DEFAULT_INSTANCE "default"

typedef struct shmq shmq_t;

/* Which ring of a queue a handle works on. */
enum {
    SHMQ_RING_MAIN = 0, /* the queue itself */
    SHMQ_RING_DLQ = 1,  /* its dead-letter ring: messages delivered
                           max_deliveries times without an ack */
};

/* Options for shmq_open. Always initialise with shmq_open_opts_init so
 * that fields added later get their defaults. */
struct shmq_open_opts {
    uint32_t size;        /* sizeof(struct shmq_open_opts), set by init */
    uint32_t ring;        /* SHMQ_RING_MAIN (default) or SHMQ_RING_DLQ */
    const char *instance; /* NULL: $SHMQ_INSTANCE, else "default" */
    int64_t spin_ns;      /* before sleeping, poll this long; 0: sleep at
                             once; default 20000 (20 us); at most 10 ms */
    uint64_t reserved[6]; /* zero */
};

SHMQ_API void shmq_open_opts_init(struct shmq_open_opts *opts);

/*
 * Open an existing queue (queues are created by shmqd or shmq_admin_create).
 *   name  queue name (see SHMQ_NAME_MAX)
 *   opts  may be NULL for defaults
 *   ret   receives the handle on success
 * Errors: -EINVAL, -ENOENT, -EACCES, -EBADMSG, -EPROTO, -ENOMEM, -ENOSPC.
 * Registers the calling process in the instance on first use.
 */
SHMQ_API int shmq_open(const char *name, const struct shmq_open_opts *opts,
                       shmq_t **ret);

/* Close a handle; NULL is accepted. When the last handle of an instance
 * in this process closes, leases the process still holds are given back
 * for redelivery and the process leaves the process table. */
SHMQ_API void shmq_close(shmq_t *q);

/*
 * Copy one message of len bytes (len <= msg_max; an empty message is
 * allowed) into the queue.
 * Errors: -EMSGSIZE (len > msg_max), -EAGAIN (full, timeout 0),
 * -ETIMEDOUT, -EIDRM, -EBADMSG, -EINVAL.
 * Ordering: messages sent by one thread are received in the order sent
 * (first deliveries).
 */
SHMQ_API int shmq_send(shmq_t *q, const void *msg, size_t len,
                       int64_t timeout_ns);

/*
 * Receive one message: lease + copy + ack. Returns its length.
 * Errors: -EAGAIN (empty, timeout 0), -ETIMEDOUT, -EMSGSIZE (cap too small;
 * the message is given back, not lost), -EIDRM, -EBADMSG, -EINVAL.
 */
SHMQ_API ssize_t shmq_recv(shmq_t *q, void *buf, size_t cap,
                           int64_t timeout_ns);

/* A leased message. data points into shared memory and stays valid until
 * shmq_ack or shmq_nack (or until the lease is lost). A leased message,
 * like a reservation, goes back to the handle that gave it, unchanged:
 * another handle (even one of the same queue) refuses it with -EINVAL. */
typedef struct shmq_msg {
    const void *data;
    size_t len;
    uint64_t id;         /* unique in the queue, same on every delivery */
    uint32_t deliveries; /* 1 on first delivery */
    uint32_t reserved0;
    uint64_t enqueue_ns; /* CLOCK_REALTIME when the producer committed */
    uint64_t priv[2];    /* library use */
} shmq_msg_t;

/*
 * Zero-copy, at-least-once receive: lease the next message. Messages
 * waiting for redelivery come before new ones.
 * Errors: -EAGAIN, -ETIMEDOUT, -EIDRM, -EBADMSG, -EINVAL.
 */
SHMQ_API int shmq_lease(shmq_t *q, shmq_msg_t *m, int64_t timeout_ns);

/* Acknowledge a leased message: it is gone for good.
 * Errors: -ESTALE (the lease is no longer held: taken back after its
 * lease timeout, or the handle belongs to a parent process), -EINVAL. */
SHMQ_API int shmq_ack(shmq_t *q, shmq_msg_t *m);

/* Give a leased message back for redelivery (its delivery count is kept;
 * past max_deliveries it goes to the dead-letter ring).
 * Errors: -ESTALE, -EINVAL. */
SHMQ_API int shmq_nack(shmq_t *q, shmq_msg_t *m);

/*
 * Batches: one call of shmq_send_batch, shmq_recv_batch or
 * shmq_lease_batch moves at most SHMQ_BATCH_MAX messages (a larger n is
 * taken as SHMQ_BATCH_MAX; the count returned says how many moved). A
 * batch takes consecutive slots where it can and makes its messages
 * visible together: a consumer sees the first message of a sent batch
 * when all of it is there, and (on a queue without a lease timeout) a
 * producer finds the slots of a received batch free together. On a queue
 * with a lease timeout, shmq_recv_batch takes message by message, so that
 * a lease taken back under it ends the batch with nothing after it taken.
 */
#define SHMQ_BATCH_MAX 64

/* Leases up to n messages; returns how many (>= 1), waiting for the first
 * one as shmq_lease does. */
SHMQ_API int shmq_lease_batch(shmq_t *q, shmq_msg_t *msgs, size_t n,
                              int64_t timeout_ns);
/* Acknowledges n leased messages; returns how many were still held
 * (the others were stale). */
SHMQ_API int shmq_ack_batch(shmq_t *q, shmq_msg_t *msgs, size_t n);

/*
 * Send up to n messages (msgs[i].iov_base, msgs[i].iov_len); returns how
 * many were sent (>= 1), in order, waiting for room for the first one
 * only. Errors as shmq_send; -EMSGSIZE if msgs[0] is too long (a later
 * one that is too long ends the batch before it).
 */
SHMQ_API int shmq_send_batch(shmq_t *q, const struct iovec *msgs, size_t n,
                             int64_t timeout_ns);

/*
 * Receive up to n messages into bufs; lens[i] gets each length. Returns
 * how many (>= 1). Errors as shmq_recv; a message longer than its buffer
 * ends the batch and is given back (-EMSGSIZE if it is the first); so does
 * one whose lease was taken back before it was acked (-ESTALE if first).
 */
SHMQ_API int shmq_recv_batch(shmq_t *q, const struct iovec *bufs,
                             size_t *lens, size_t n, int64_t timeout_ns);

/* A reserved slot for zero-copy send: write up to cap bytes at data. */
typedef struct shmq_resv {
    void *data;
    size_t cap;       /* = the queue's msg_max */
    uint64_t priv[2]; /* library use */
} shmq_resv_t;

/*
 * Reserve a slot; write the message into r->data, then shmq_commit it, or
 * shmq_abort. A producer that dies before committing leaves a slot that the
 * supervisor's repair turns into a skip: consumers pass it, nothing after
 * it is lost.
 * Errors: -EAGAIN, -ETIMEDOUT, -EIDRM, -EBADMSG, -EINVAL.
 */
SHMQ_API int shmq_reserve(shmq_t *q, shmq_resv_t *r, int64_t timeout_ns);
/* Publish len bytes written at r->data. Errors: -EMSGSIZE, -ESTALE,
 * -EINVAL (not a reservation of this handle). */
SHMQ_API int shmq_commit(shmq_t *q, shmq_resv_t *r, size_t len);
/* Drop a reservation; consumers skip the slot. Errors: -ESTALE,
 * -EINVAL. */
SHMQ_API int shmq_abort(shmq_t *q, shmq_resv_t *r);

/* A snapshot of a queue's counters. Values are read without a lock and
 * are each exact at some moment during the call. */
struct shmq_stats {
    uint32_t size; /* sizeof(struct shmq_stats): set by the caller */
    uint32_t capacity;
    uint32_t msg_max;
    uint32_t max_deliveries;
    uint64_t depth;          /* messages ready or waiting for redelivery */
    uint64_t in_flight;      /* leased, not yet acked */
    uint64_t high_water;     /* highest depth seen (sampled, exact at full) */
    uint64_t enqueued;       /* messages committed */
    uint64_t dequeued;       /* messages acked */
    uint64_t redelivered;    /* deliveries after the first */
    uint64_t dead_lettered;  /* moved to the dead-letter ring */
    uint64_t skipped;        /* slots of aborted or dead producers passed */
    uint64_t repaired;       /* slots repaired after a death or timeout */
    uint64_t retry_pending;  /* messages waiting for redelivery */
    uint64_t dlq_depth;      /* messages in the dead-letter ring */
    uint32_t dlq_capacity;
    uint32_t producers_waiting; /* asleep on not-full */
    uint32_t consumers_waiting; /* asleep on not-empty */
    uint32_t mode;
    uint64_t lease_timeout_ns;
    uint64_t generation;
    uint64_t reserved[8];
};

/* Counters of an open queue. Errors: -EINVAL, -EIDRM. */
SHMQ_API int shmq_stats(shmq_t *q, struct shmq_stats *st);

/* Counters of a queue by name, read-only: the caller does not register
 * and takes no part in the ring. instance may be NULL (see opts).
 * Errors: -EINVAL, -ENOENT, -EACCES, -EBADMSG, -EPROTO. */
SHMQ_API int shmq_stats_by_name(const char *instance, const char *name,
                                struct shmq_stats *st);

/* The process token this handle acts under (index | incarnation << 16),
 * for supervisors and tools. Registers the process if it is not yet. */
SHMQ_API int shmq_token(shmq_t *q, uint32_t *token);

/* The queue's name and msg_max. */
SHMQ_API const char *shmq_name(const shmq_t *q);
SHMQ_API size_t shmq_msg_max(const shmq_t *q);

/* Checks a queue or instance name. Returns 0 or -EINVAL. */
SHMQ_API int shmq_name_check(const char *name);
SHMQ_API int shmq_instance_check(const char *instance);

/* The instance a NULL instance argument means: $SHMQ_INSTANCE when set,
 * else "default". */
SHMQ_API const char *shmq_default_instance(void);

/* A static string for a negative errno returned by shmq (or any errno). */
SHMQ_API const char *shmq_strerror(int err);

/* Run-time library version (SHMQ_VERSION_HEX) and string. */
SHMQ_API unsigned shmq_version(void);
SHMQ_API const char *shmq_version_string(void);

#ifdef __cplusplus
}
#endif
#endif
