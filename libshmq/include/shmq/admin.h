/* SPDX-License-Identifier: MIT */
/*
 * shmq supervisor API: the lifecycle of an instance and its queues, and the
 * repair of what dead processes leave behind. shmqd is the usual caller;
 * tests and tools may call it directly. Same conventions as shmq.h.
 *
 * An admin handle maps the instance's registry. Creation and deletion of
 * queues and repairs are serialised between processes by an advisory
 * open-file-description lock on the registry (released by the kernel if
 * the holder dies), so several supervisors cannot corrupt each other.
 */
#ifndef SHMQ_ADMIN_H
#define SHMQ_ADMIN_H

#include <shmq/shmq.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct shmq_admin shmq_admin_t;

/* shmq_admin_open flags */
enum {
    SHMQ_ADMIN_CREATE = 1 << 0,   /* create the registry if it is absent */
    SHMQ_ADMIN_READONLY = 1 << 1, /* map read-only: list, info, procs and
                                     alive work; everything that writes
                                     returns -EPERM */
};

struct shmq_admin_opts {
    uint32_t size;        /* sizeof(struct shmq_admin_opts), set by init */
    uint32_t flags;       /* SHMQ_ADMIN_* */
    uint32_t mode;        /* registry mode when created (default 0666) */
    int32_t gid;          /* registry group when created; -1: caller's */
    uint32_t max_procs;   /* process table size when created (default
                             1024, at most 4094) */
    uint32_t reserved0;
    uint64_t reserved[6];
};

SHMQ_API void shmq_admin_opts_init(struct shmq_admin_opts *o);

/*
 * Open (and with SHMQ_ADMIN_CREATE create) the registry of an instance.
 *   instance  NULL: shmq_default_instance()
 * Errors: -EINVAL, -ENOENT (absent and not asked to create), -EACCES,
 * -EBADMSG, -EPROTO, -ENOMEM.
 */
SHMQ_API int shmq_admin_open(const char *instance,
                             const struct shmq_admin_opts *opts,
                             shmq_admin_t **ret);
SHMQ_API void shmq_admin_close(shmq_admin_t *a);
SHMQ_API const char *shmq_admin_instance(const shmq_admin_t *a);

/* Queue configuration. Initialise with shmq_queue_config_init. */
struct shmq_queue_config {
    uint32_t size;           /* sizeof(struct shmq_queue_config) */
    uint32_t capacity;       /* slots, a power of two, 2 .. 2^24;
                                default 1024 */
    uint32_t msg_max;        /* largest message in bytes, 1 .. 16 MiB;
                                default 4096 */
    uint32_t mode;           /* segment mode, default 0660 */
    int32_t gid;             /* segment group, -1: the creator's */
    uint32_t max_deliveries; /* deliveries before dead-lettering; 0: no
                                limit; default 5 */
    uint32_t dlq_capacity;   /* dead-letter slots, power of two, >= 2 when
                                max_deliveries > 0; default 64 */
    uint32_t timestamps;     /* SHMQ_TS_*: how producers stamp enqueue_ns */
    uint64_t lease_timeout_ns; /* 0: leases of live consumers never expire */
    uint64_t reserved[6];
};

/* Enqueue timestamps. Reading CLOCK_REALTIME costs 20-40 ns per message
 * on common virtual machines, a large part of a message's cost. */
enum {
    SHMQ_TS_PRECISE = 0, /* CLOCK_REALTIME at commit */
    SHMQ_TS_COARSE = 1,  /* CLOCK_REALTIME_COARSE, a few ms resolution
                            (the default of shmq_queue_config_init) */
    SHMQ_TS_NONE = 2,    /* enqueue_ns is 0 */
};

SHMQ_API void shmq_queue_config_init(struct shmq_queue_config *c);

/* Checks a configuration. Returns 0 or -EINVAL; *why (if not NULL) gets a
 * static sentence saying what is wrong. */
SHMQ_API int shmq_queue_config_check(const struct shmq_queue_config *c,
                                     const char **why);

/*
 * Create a queue. Errors: -EINVAL (name or config), -EEXIST, -ENOSPC
 * (directory full), -EACCES, -EPERM (chown to gid refused), -ENOMEM.
 */
SHMQ_API int shmq_admin_create(shmq_admin_t *a, const char *name,
                               const struct shmq_queue_config *cfg);

/*
 * Delete a queue: open handles get -EIDRM from then on, every waiter is
 * woken, the segment is unlinked. Messages in it are gone.
 * Errors: -EINVAL, -ENOENT.
 */
SHMQ_API int shmq_admin_delete(shmq_admin_t *a, const char *name);

/* Drop every message waiting in the queue (ready or waiting for
 * redelivery); leases in flight are left alone. Messages sent or given
 * back while it runs may be dropped too; it drops at most the ring's
 * capacity, so it ends however fast producers send. ring: SHMQ_RING_MAIN
 * or SHMQ_RING_DLQ. Returns how many were dropped. */
SHMQ_API int shmq_admin_purge(shmq_admin_t *a, const char *name, int ring);

/* What list and info report of a queue. */
struct shmq_queue_info {
    char name[SHMQ_NAME_MAX + 1];
    struct shmq_queue_config config;
    struct shmq_stats stats;
};

/* Fill up to n entries; returns the number of queues (which may be more
 * than n). */
SHMQ_API int shmq_admin_list(shmq_admin_t *a, struct shmq_queue_info *out,
                             size_t n);
/* One queue. Errors: -EINVAL, -ENOENT, -EBADMSG. */
SHMQ_API int shmq_admin_info(shmq_admin_t *a, const char *name,
                             struct shmq_queue_info *out);

/* Process table entry states */
enum {
    SHMQ_PROC_FREE = 0,
    SHMQ_PROC_ALIVE = 1,
    SHMQ_PROC_DEAD = 2, /* found dead, repair started */
};

struct shmq_proc_info {
    uint32_t token;
    uint32_t state;
    int32_t pid;
    uint32_t uid;
    uint64_t start_ns;  /* CLOCK_REALTIME at registration */
    uint64_t leases;    /* leases held now, in the queues the caller can
                           read (counted from their slots) */
    uint32_t alive;     /* 1: its liveness lock is held */
    uint32_t nqueues;
    uint32_t queues[16]; /* directory indices of queues it opened (first 16) */
};

/* List registered processes (state != FREE); returns their number. */
SHMQ_API int shmq_admin_procs(shmq_admin_t *a, struct shmq_proc_info *out,
                              size_t n);

/*
 * The name of the queue at a directory index, as struct shmq_proc_info's
 * queues[] gives them (tools use it to name the queues of a process).
 * Writes it NUL-terminated to buf and returns its length. A queue deleted
 * and another created in its place reuse an index: the answer is the queue
 * there now. Errors: -EINVAL, -ENOENT (no queue at that index),
 * -ENAMETOOLONG (cap too small; SHMQ_NAME_MAX + 1 always fits).
 */
SHMQ_API int shmq_admin_queue_name(shmq_admin_t *a, uint32_t index,
                                   char *buf, size_t cap);

/*
 * Register the calling process (what shmq_open does on first use).
 * Errors: -ENOSPC, -EBADMSG.
 */
SHMQ_API int shmq_admin_register(shmq_admin_t *a, uint32_t *token);
/* Undo one shmq_admin_register made through this handle. When nothing
 * else (no open queue handle) keeps the process registered, it leaves the
 * process table and its leases go back for redelivery.
 * Errors: -EINVAL (token not registered through this handle), -EPERM
 * (read-only handle). */
SHMQ_API int shmq_admin_unregister(shmq_admin_t *a, uint32_t token);

/* Whether the process behind a token lives: 1 yes, 0 no (or the token is
 * stale), negative errno on error. Based on the liveness lock every
 * registered process holds, not on pids. */
SHMQ_API int shmq_admin_alive(shmq_admin_t *a, uint32_t token);

/* What a repair did. */
struct shmq_repair_report {
    uint32_t size;
    uint32_t queues;      /* queues scanned */
    uint64_t redelivered; /* leases turned back into messages */
    uint64_t skipped;     /* claimed-but-unpublished slots turned to skips */
    uint64_t dead_lettered;
    uint64_t reserved[4];
};

/*
 * Repair a dead token: every slot it was writing becomes a skip, every
 * slot it had leased goes back for redelivery (delivery count kept), all
 * waiters are woken, and the table entry is freed with a new incarnation.
 * Idempotent: repairing a token that was already repaired (or whose entry
 * moved on) does nothing and returns 0.
 * Errors: -EBUSY (the process is alive), -EINVAL, -EBADMSG; or the error
 * that kept one of its queues from being opened (-EACCES, -EMFILE, ...):
 * what could be repaired was, the entry stays in the table (state DEAD)
 * and a later repair or reap finishes.
 * rep may be NULL.
 */
SHMQ_API int shmq_admin_repair(shmq_admin_t *a, uint32_t token,
                               struct shmq_repair_report *rep);

/* Repair every registered process that is dead. Returns how many tokens
 * were repaired; rep (may be NULL) gets the sums. */
SHMQ_API int shmq_admin_reap(shmq_admin_t *a, struct shmq_repair_report *rep);

/* Take back leases older than the queue's lease timeout from live
 * consumers (their late acks get -ESTALE). now_ns: CLOCK_MONOTONIC, 0 for
 * now. Returns how many leases were taken back. */
SHMQ_API int shmq_admin_expire_leases(shmq_admin_t *a, const char *name,
                                      uint64_t now_ns);

/* Remove the registry and every queue of the instance (for tests and
 * uninstall). */
SHMQ_API int shmq_admin_destroy(shmq_admin_t *a);

#ifdef __cplusplus
}
#endif
#endif
