/* SPDX-License-Identifier: MIT */
/*
 * The shmqd control protocol: framing, attributes, request parsing and
 * response encoding/decoding, shared by the daemon and the client side of
 * the library (ctl.c). docs/protocol.md is the reference; this file and
 * proto.c are its implementation.
 *
 * A frame is one SOCK_SEQPACKET message, in host byte order (the socket
 * never leaves the host):
 *
 *   0   u32 magic    SHMQ_PROTO_MAGIC
 *   4   u16 version  SHMQ_PROTO_VERSION
 *   6   u16 op       SHMQ_OP_*
 *   8   u32 length   of the whole frame, header included
 *   12  u32 seq      chosen by the client, echoed in every response frame
 *   16  i32 status   responses: >= 0 result, < 0 negative errno; requests: 0
 *   20  u32 flags    responses: SHMQ_PROTO_F_MORE; requests: 0
 *   24  attributes
 *
 * An attribute: u16 len (4 + payload, unpadded), u16 type, payload, then
 * zero padding to a multiple of 4. Nested attributes (one level only)
 * carry attributes as their payload.
 */
#ifndef SHMQ_PROTO_H
#define SHMQ_PROTO_H

#include <shmq/admin.h>
#include <shmq/ctl.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define SHMQ_PROTO_MAGIC UINT32_C(0x51434d53) /* "SMCQ" little-endian */
#define SHMQ_PROTO_VERSION 1u
#define SHMQ_PROTO_HDR 24u
#define SHMQ_PROTO_REQ_MAX 4096u    /* largest request frame */
#define SHMQ_PROTO_FRAME_MAX 65536u /* largest response frame */
#define SHMQ_PROTO_F_MORE 1u        /* more response frames follow */

/* Operations. */
enum {
    SHMQ_OP_PING = 1,
    SHMQ_OP_CREATE = 2,
    SHMQ_OP_DELETE = 3,
    SHMQ_OP_PURGE = 4,
    SHMQ_OP_LIST = 5,
    SHMQ_OP_INFO = 6,
    SHMQ_OP_REGISTER = 7,
    SHMQ_OP_DLQ_LIST = 8,
    SHMQ_OP_DLQ_REQUEUE = 9,
    SHMQ_OP_DLQ_DROP = 10,
    SHMQ_OP_STATS = 11,
    SHMQ_OP_PROCS = 12,
    SHMQ_OP_MAX = 12,
};

/* Attribute types (one namespace for requests and responses). */
enum {
    SHMQ_A_NAME = 1,            /* string */
    SHMQ_A_CAPACITY = 2,        /* u32 */
    SHMQ_A_MSG_MAX = 3,         /* u32 */
    SHMQ_A_MODE = 4,            /* u32 */
    SHMQ_A_GID = 5,             /* i32, -1: default */
    SHMQ_A_MAX_DELIVERIES = 6,  /* u32 */
    SHMQ_A_DLQ_CAPACITY = 7,    /* u32 */
    SHMQ_A_LEASE_TIMEOUT = 8,   /* u64 ns */
    SHMQ_A_TIMESTAMPS = 9,      /* u32 SHMQ_TS_* */
    SHMQ_A_TOKEN = 10,          /* u32 */
    SHMQ_A_RING = 11,           /* u32 SHMQ_RING_* */
    SHMQ_A_COUNT = 12,          /* u32 */
    SHMQ_A_MESSAGE = 13,        /* string: the human-readable message */
    SHMQ_A_QUEUE = 14,          /* nested: one queue (LIST, INFO) */
    SHMQ_A_PROC = 15,           /* nested: one process (PROCS) */
    SHMQ_A_DLQ_MSG = 16,        /* nested: one dead letter (DLQ_LIST) */
    SHMQ_A_STATS = 17,          /* nested: counters (STATS) */
    SHMQ_A_DAEMON = 18,         /* nested: daemon facts (PING) */
    SHMQ_A_UID = 19,            /* u32 */
    SHMQ_A_PID = 20,            /* i32 */
    SHMQ_A_STATE = 21,          /* u32 */
    SHMQ_A_START_NS = 22,       /* u64 */
    SHMQ_A_LEASES = 23,         /* u64 */
    SHMQ_A_ALIVE = 24,          /* u32 */
    SHMQ_A_WATCHED = 25,        /* u32 */
    SHMQ_A_QUEUE_IDX = 26,      /* u32, repeated */
    SHMQ_A_NQUEUES = 27,        /* u32 */
    SHMQ_A_ID = 28,             /* u64 */
    SHMQ_A_DELIVERIES = 29,     /* u32 */
    SHMQ_A_LEN = 30,            /* u32 */
    SHMQ_A_ENQUEUE_NS = 31,     /* u64 */
    SHMQ_A_DATA = 32,           /* bytes */
    SHMQ_A_VERSION = 33,        /* string */
    SHMQ_A_INSTANCE = 34,       /* string */
    SHMQ_A_SOCKET = 35,         /* string */
    SHMQ_A_UPTIME_NS = 36,      /* u64 */
    SHMQ_A_PROTO_VERSION = 37,  /* u32 */
    SHMQ_A_WATCHED_COUNT = 38,  /* u32 */
    SHMQ_A_QUEUE_COUNT = 39,    /* u32 */
    /* 64 ..: the fields of struct shmq_stats */
    SHMQ_A_ST_CAPACITY = 64,       /* u32 */
    SHMQ_A_ST_MSG_MAX = 65,        /* u32 */
    SHMQ_A_ST_MAX_DELIVERIES = 66, /* u32 */
    SHMQ_A_ST_DEPTH = 67,          /* u64 */
    SHMQ_A_ST_IN_FLIGHT = 68,      /* u64 */
    SHMQ_A_ST_HIGH_WATER = 69,     /* u64 */
    SHMQ_A_ST_ENQUEUED = 70,       /* u64 */
    SHMQ_A_ST_DEQUEUED = 71,       /* u64 */
    SHMQ_A_ST_REDELIVERED = 72,    /* u64 */
    SHMQ_A_ST_DEAD_LETTERED = 73,  /* u64 */
    SHMQ_A_ST_SKIPPED = 74,        /* u64 */
    SHMQ_A_ST_REPAIRED = 75,       /* u64 */
    SHMQ_A_ST_RETRY_PENDING = 76,  /* u64 */
    SHMQ_A_ST_DLQ_DEPTH = 77,      /* u64 */
    SHMQ_A_ST_DLQ_CAPACITY = 78,   /* u32 */
    SHMQ_A_ST_PRODUCERS_WAITING = 79, /* u32 */
    SHMQ_A_ST_CONSUMERS_WAITING = 80, /* u32 */
    SHMQ_A_ST_MODE = 81,           /* u32 */
    SHMQ_A_ST_LEASE_TIMEOUT = 82,  /* u64 */
    SHMQ_A_ST_GENERATION = 83,     /* u64 */
    SHMQ_A_MAX = 127,
};

/* A parsed request. Fields whose attribute was absent keep defaults:
 * cfg from shmq_queue_config_init (gid -1), count 0, ring MAIN. */
struct shmq__req {
    uint16_t version;
    uint16_t op;
    uint32_t seq;
    uint64_t present[2]; /* bit t: attribute type t was given */
    char name[SHMQ_NAME_MAX + 1];
    struct shmq_queue_config cfg;
    uint32_t token;
    uint32_t ring;
    uint32_t count;
};

static inline int shmq__req_has(const struct shmq__req *r, unsigned type)
{
    return type < 128 && ((r->present[type >> 6] >> (type & 63u)) & 1u);
}

/*
 * Parse a request frame of len bytes (len may exceed SHMQ_PROTO_REQ_MAX
 * when the caller saw a truncated oversized message: it is refused).
 * Returns 0, or a negative errno with *why a static sentence:
 *   -EMSGSIZE         larger than SHMQ_PROTO_REQ_MAX
 *   -EBADMSG          truncated, bad magic, bad length, malformed attribute
 *   -EPROTONOSUPPORT  unknown version (out->version says which)
 *   -EOPNOTSUPP       unknown op
 *   -EINVAL           unknown, duplicate, missing or invalid attribute
 * out->op, out->seq and out->version are filled as far as the header could
 * be read, so an error reply can echo them.
 */
SHMQ_INTERNAL int shmq__proto_parse_request(const void *buf, size_t len,
                                            struct shmq__req *out,
                                            const char **why);

/* Name of an op for logs ("create"), or "unknown". */
SHMQ_INTERNAL const char *shmq__proto_op_name(unsigned op);

/* ---- writing frames ------------------------------------------------------ */

struct shmq__pw {
    uint8_t *buf;
    size_t cap;
    size_t len;
    size_t nest; /* offset of the open nested attribute, 0: none */
    int err;     /* sticky: -EMSGSIZE once something did not fit */
};

/* Start a frame in buf[0..cap) (cap >= SHMQ_PROTO_HDR). */
SHMQ_INTERNAL void shmq__pw_init(struct shmq__pw *w, void *buf, size_t cap,
                                 unsigned op, uint32_t seq, int32_t status,
                                 uint32_t flags);
SHMQ_INTERNAL void shmq__pw_put(struct shmq__pw *w, unsigned type,
                                const void *data, size_t len);
SHMQ_INTERNAL void shmq__pw_u32(struct shmq__pw *w, unsigned type,
                                uint32_t v);
SHMQ_INTERNAL void shmq__pw_u64(struct shmq__pw *w, unsigned type,
                                uint64_t v);
SHMQ_INTERNAL void shmq__pw_str(struct shmq__pw *w, unsigned type,
                                const char *s);
SHMQ_INTERNAL void shmq__pw_nest_begin(struct shmq__pw *w, unsigned type);
SHMQ_INTERNAL void shmq__pw_nest_end(struct shmq__pw *w);
/* Patch the length (and status/flags) into the header; returns the frame
 * length, or w->err. */
SHMQ_INTERNAL int shmq__pw_finish(struct shmq__pw *w);
SHMQ_INTERNAL void shmq__pw_set_status(struct shmq__pw *w, int32_t status,
                                       uint32_t flags);

/* Request builders (client side). */
SHMQ_INTERNAL void shmq__pw_config(struct shmq__pw *w,
                                   const struct shmq_queue_config *c);

/* Nested records (daemon side). Return 0 or -EMSGSIZE (nothing written). */
SHMQ_INTERNAL int shmq__pw_queue(struct shmq__pw *w,
                                 const struct shmq_queue_info *q);
SHMQ_INTERNAL int shmq__pw_stats(struct shmq__pw *w,
                                 const struct shmq_stats *st);
SHMQ_INTERNAL int shmq__pw_proc(struct shmq__pw *w,
                                const struct shmq_ctl_proc *p);
SHMQ_INTERNAL int shmq__pw_dlq_msg(struct shmq__pw *w,
                                   const struct shmq_dlq_entry *e);
SHMQ_INTERNAL int shmq__pw_daemon(struct shmq__pw *w,
                                  const struct shmq_ctl_daemon *d);

/* ---- reading frames ------------------------------------------------------ */

struct shmq__pattr {
    unsigned type;
    const uint8_t *data;
    size_t len;
};

struct shmq__pr {
    const uint8_t *p;
    size_t left;
};

/* Iterate attributes in [buf, buf + len): 1 and *a filled, 0 at the end,
 * -EBADMSG if malformed. */
SHMQ_INTERNAL void shmq__pr_init(struct shmq__pr *r, const void *buf,
                                 size_t len);
SHMQ_INTERNAL int shmq__pr_next(struct shmq__pr *r, struct shmq__pattr *a);
SHMQ_INTERNAL int shmq__pattr_u32(const struct shmq__pattr *a, uint32_t *v);
/* A NUL-terminated string of at most cap - 1 characters, copied. */
SHMQ_INTERNAL int shmq__pattr_str(const struct shmq__pattr *a, char *buf,
                                  size_t cap);

/* A response frame header, checked. */
struct shmq__resp {
    unsigned op;
    uint32_t seq;
    int32_t status;
    uint32_t flags;
    const uint8_t *attrs;
    size_t attrs_len;
};

/* Check a response frame (magic, version, length); -EBADMSG or
 * -EPROTONOSUPPORT. */
SHMQ_INTERNAL int shmq__proto_parse_response(const void *buf, size_t len,
                                             struct shmq__resp *out);

/* Decode nested records; -EBADMSG on malformed input. Unknown attributes
 * inside a record are skipped (a newer daemon may add fields). */
SHMQ_INTERNAL int shmq__pr_queue(const struct shmq__pattr *a,
                                 struct shmq_queue_info *q);
SHMQ_INTERNAL int shmq__pr_stats(const struct shmq__pattr *a,
                                 struct shmq_stats *st);
SHMQ_INTERNAL int shmq__pr_proc(const struct shmq__pattr *a,
                                struct shmq_ctl_proc *p);
SHMQ_INTERNAL int shmq__pr_dlq_msg(const struct shmq__pattr *a,
                                   struct shmq_dlq_entry *e);
SHMQ_INTERNAL int shmq__pr_daemon(const struct shmq__pattr *a,
                                  struct shmq_ctl_daemon *d);

/* ---- the registration hook (ctl.c) --------------------------------------- */

struct shmq__reg;

/*
 * Tell the instance's daemon, if one advertises itself in the registry,
 * that this process registered under token, so that it watches it with a
 * pidfd (see process.c). Best effort: a bounded wait of at most
 * SHMQ_NOTIFY_TIMEOUT_NS in all, every error ignored, nothing printed.
 */
#define SHMQ_NOTIFY_TIMEOUT_NS 100000000 /* 100 ms */
SHMQ_INTERNAL void shmq__ctl_notify_register(struct shmq__reg *reg,
                                             uint32_t token);

/* The path a daemon advertises in a registry header (validated: NUL-
 * terminated, absolute, read between two equal loads of daemon_pid).
 * Returns the daemon's pid (> 0) with buf filled, or 0 if none. */
struct shmq_reg_hdr;
SHMQ_INTERNAL int32_t shmq__ctl_advertised(const struct shmq_reg_hdr *h,
                                           char *buf, size_t cap);

#endif
