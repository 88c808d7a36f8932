/* SPDX-License-Identifier: MIT */
/*
 * shmq control client: requests to shmqd over its control socket (the
 * protocol is docs/protocol.md). The tools (shmq-ctl, shmq-stats) and any
 * program that manages queues through the supervisor use this; programs
 * that only send and receive need nothing from it.
 *
 * Same conventions as shmq.h: >= 0 success, negative errno failure,
 * out-parameters untouched on failure, the library never prints.
 *
 * Every request call takes (msg, msgcap): when msg is not NULL it receives
 * a NUL-terminated human-readable sentence, the daemon's message for the
 * request (e.g. "created queue jobs: capacity 1024, msg_max 4096"), or,
 * when the daemon could not be asked, one saying why (e.g. "shmqd is not
 * answering at /run/shmq/default.sock: Connection refused"). The daemon's
 * messages are at most SHMQ_CTL_MSG_MAX bytes with the NUL.
 *
 * Errors of every request call, besides those listed with it:
 *   -EINVAL      bad argument (checked before anything is sent)
 *   -EPERM       the daemon refused: only its owner and root manage queues
 *   -EACCES      the queue's mode does not let the caller read it
 *   -ECONNRESET, -EPIPE  the daemon closed the connection
 *   -ETIMEDOUT   no answer within the handle's timeout
 *   -EBADMSG     the answer was malformed
 *   -EPROTONOSUPPORT  the daemon speaks another protocol version
 * Anything the daemon's library call returned (-ENOENT, -EEXIST, -ENOSPC,
 * ...) comes back unchanged.
 *
 * Threads: a handle carries one request at a time; calls on one handle
 * from several threads are serialised by the handle. A child made by
 * fork() must not use its parent's handle.
 */
#ifndef SHMQ_CTL_H
#define SHMQ_CTL_H

#include <shmq/admin.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct shmq_ctl shmq_ctl_t;

/* Longest daemon message, with its NUL. */
#define SHMQ_CTL_MSG_MAX 512
/* Bytes of a dead letter's payload shown by shmq_ctl_dlq_list. */
#define SHMQ_CTL_PREVIEW_MAX 1024
/* Longest Unix socket path, with its NUL (sun_path). */
#define SHMQ_CTL_PATH_MAX 108
/* Protocol version this library speaks. */
#define SHMQ_CTL_PROTO_VERSION 1

/*
 * The socket path shmqd uses for an instance when not told otherwise:
 * root: /run/shmq/<instance>.sock; others: $XDG_RUNTIME_DIR/shmq/
 * <instance>.sock when XDG_RUNTIME_DIR is an absolute path, else
 * /tmp/shmq-<uid>/<instance>.sock.
 *   instance  NULL: shmq_default_instance()
 * Returns the length written. Errors: -EINVAL, -ENAMETOOLONG.
 */
SHMQ_API int shmq_ctl_default_socket(const char *instance, char *buf,
                                     size_t cap);

/*
 * The socket path clients use for an instance: the one the running daemon
 * advertises in the instance's registry (when the registry is readable
 * and names an absolute path), else shmq_ctl_default_socket.
 * Errors: -EINVAL, -ENAMETOOLONG.
 */
SHMQ_API int shmq_ctl_socket_path(const char *instance, char *buf,
                                  size_t cap);

/*
 * Connect to the daemon of an instance.
 *   instance     NULL: shmq_default_instance()
 *   socket_path  NULL: shmq_ctl_socket_path(instance)
 * Errors: -EINVAL, -ENAMETOOLONG, -ENOMEM, and connect(2)'s: -ENOENT (no
 * socket: the daemon is not running), -ECONNREFUSED (a stale socket),
 * -EACCES (the socket's mode keeps the caller out).
 */
SHMQ_API int shmq_ctl_connect(const char *instance, const char *socket_path,
                              shmq_ctl_t **ret);
/* Close a handle; NULL is accepted. */
SHMQ_API void shmq_ctl_close(shmq_ctl_t *c);
/* The socket path a handle is connected to. */
SHMQ_API const char *shmq_ctl_path(const shmq_ctl_t *c);

/* How long one request may take, in nanoseconds (> 0; default 10 s;
 * SHMQ_FOREVER: no limit). Errors: -EINVAL. */
SHMQ_API int shmq_ctl_set_timeout(shmq_ctl_t *c, int64_t timeout_ns);

/* What shmq_ctl_ping reports about the daemon. */
struct shmq_ctl_daemon {
    int32_t pid;
    uint32_t uid;           /* the daemon's effective uid: the owner */
    uint32_t proto_version; /* protocol version it speaks */
    uint32_t queues;        /* queues it knows */
    uint32_t watched;       /* processes it watches with a pidfd */
    uint32_t reserved0;
    uint64_t uptime_ns;
    char version[32];       /* library version of the daemon */
    char instance[SHMQ_INSTANCE_MAX + 1];
    char socket_path[SHMQ_CTL_PATH_MAX];
};

/* Ask the daemon who it is. Anyone who can connect may ask. */
SHMQ_API int shmq_ctl_ping(shmq_ctl_t *c, struct shmq_ctl_daemon *out,
                           char *msg, size_t msgcap);

/*
 * Create a queue (owner or root only). cfg as for shmq_admin_create;
 * a gid of -1 gets the daemon's default group (its --group), if any.
 * Errors: -EEXIST, -ENOSPC, -EPERM, and shmq_admin_create's.
 */
SHMQ_API int shmq_ctl_create(shmq_ctl_t *c, const char *name,
                             const struct shmq_queue_config *cfg, char *msg,
                             size_t msgcap);

/* Delete a queue (owner or root only). Errors: -ENOENT, -EPERM. */
SHMQ_API int shmq_ctl_delete(shmq_ctl_t *c, const char *name, char *msg,
                             size_t msgcap);

/* Drop every waiting message of a ring (SHMQ_RING_MAIN or SHMQ_RING_DLQ)
 * of a queue (owner or root only). Returns how many were dropped.
 * Errors: -ENOENT, -EPERM. */
SHMQ_API int shmq_ctl_purge(shmq_ctl_t *c, const char *name, int ring,
                            char *msg, size_t msgcap);

/*
 * List queues with their configuration and counters: fills up to n
 * entries and returns how many queues there are (which may be more than
 * n). A caller who is neither the owner nor root sees only the queues
 * whose mode lets it read them. config.gid is the queue's group.
 */
SHMQ_API int shmq_ctl_list(shmq_ctl_t *c, struct shmq_queue_info *out,
                           size_t n, char *msg, size_t msgcap);

/* One queue's configuration and counters. Errors: -ENOENT, -EACCES. */
SHMQ_API int shmq_ctl_info(shmq_ctl_t *c, const char *name,
                           struct shmq_queue_info *out, char *msg,
                           size_t msgcap);

/* One queue's counters (st->size set by the caller, as shmq_stats).
 * Errors: -ENOENT, -EACCES. */
SHMQ_API int shmq_ctl_stats(shmq_ctl_t *c, const char *name,
                            struct shmq_stats *st, char *msg, size_t msgcap);

/*
 * Ask the daemon to watch the calling process under token (the library
 * does this by itself when a process registers; see shmq_open). The
 * daemon checks that the token's process-table entry names the caller's
 * pid and uid, then holds a pidfd for it and repairs the token the moment
 * the process dies. Errors: -ESRCH (the entry is not the caller's),
 * -ENOENT (no such token).
 */
SHMQ_API int shmq_ctl_register(shmq_ctl_t *c, uint32_t token, char *msg,
                               size_t msgcap);

/* A dead letter, as shmq_ctl_dlq_list shows it. */
struct shmq_dlq_entry {
    uint64_t id;          /* the message id, as in the main ring */
    uint64_t enqueue_ns;
    uint32_t deliveries;  /* deliveries it had when dead-lettered */
    uint32_t len;         /* full length of the message */
    uint32_t data_len;    /* bytes in data: min(len, SHMQ_CTL_PREVIEW_MAX) */
    uint32_t reserved0;
    uint8_t data[SHMQ_CTL_PREVIEW_MAX];
};

/* List up to n dead letters of a queue, oldest first; returns how many
 * were listed. Needs read permission on the queue.
 * Errors: -ENOENT (no such queue, or it has no dead-letter ring),
 * -EACCES. */
SHMQ_API int shmq_ctl_dlq_list(shmq_ctl_t *c, const char *name,
                               struct shmq_dlq_entry *out, size_t n,
                               char *msg, size_t msgcap);

/*
 * Move up to max dead letters (0: all there are now) back into the
 * queue's main ring, oldest first, as new messages (new id, deliveries
 * starting again at 1). Stops early when the main ring is full. Returns
 * how many were moved (owner or root only). A daemon that dies in the
 * middle may move one message twice, never lose one.
 */
SHMQ_API int shmq_ctl_dlq_requeue(shmq_ctl_t *c, const char *name,
                                  uint32_t max, char *msg, size_t msgcap);

/* Drop up to max dead letters (0: all), oldest first; returns how many
 * (owner or root only). */
SHMQ_API int shmq_ctl_dlq_drop(shmq_ctl_t *c, const char *name,
                               uint32_t max, char *msg, size_t msgcap);

/* A registered process, as shmq_ctl_procs shows it. */
struct shmq_ctl_proc {
    struct shmq_proc_info info;
    uint32_t watched; /* 1: the daemon holds a pidfd for it */
    uint32_t reserved0;
};

/* List registered processes: fills up to n and returns how many there
 * are. */
SHMQ_API int shmq_ctl_procs(shmq_ctl_t *c, struct shmq_ctl_proc *out,
                            size_t n, char *msg, size_t msgcap);

#ifdef __cplusplus
}
#endif
#endif
