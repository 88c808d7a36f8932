/* SPDX-License-Identifier: MIT */
/*
 * The control protocol's framing and attributes (see proto.h and
 * docs/protocol.md). Everything read here comes from another process and
 * is untrusted: every length is checked against what is left before it is
 * used, and a request is accepted only if every attribute is one its op
 * allows, given once, with the exact size of its type.
 */
#include "proto.h"

#include <stddef.h>
#include <string.h>

/* ---- writing ------------------------------------------------------------- */

static inline size_t pad4(size_t n)
{
    return (n + 3u) & ~(size_t)3u;
}

static void put_hdr(uint8_t *p, unsigned op, uint32_t seq, int32_t status,
                    uint32_t flags)
{
    uint32_t magic = SHMQ_PROTO_MAGIC, zero = 0;
    uint16_t ver = SHMQ_PROTO_VERSION, op16 = (uint16_t)op;
    memcpy(p + 0, &magic, 4);
    memcpy(p + 4, &ver, 2);
    memcpy(p + 6, &op16, 2);
    memcpy(p + 8, &zero, 4);
    memcpy(p + 12, &seq, 4);
    memcpy(p + 16, &status, 4);
    memcpy(p + 20, &flags, 4);
}

void shmq__pw_init(struct shmq__pw *w, void *buf, size_t cap, unsigned op,
                   uint32_t seq, int32_t status, uint32_t flags)
{
    w->buf = buf;
    w->cap = cap;
    w->len = SHMQ_PROTO_HDR;
    w->nest = 0;
    w->err = cap < SHMQ_PROTO_HDR ? -EMSGSIZE : 0;
    if (!w->err)
        put_hdr(w->buf, op, seq, status, flags);
}

void shmq__pw_put(struct shmq__pw *w, unsigned type, const void *data,
                  size_t len)
{
    size_t total = 4 + len;
    if (w->err)
        return;
    if (total > 0xffffu || pad4(total) > w->cap - w->len) {
        w->err = -EMSGSIZE;
        return;
    }
    uint16_t l16 = (uint16_t)total, t16 = (uint16_t)type;
    uint8_t *p = w->buf + w->len;
    memcpy(p, &l16, 2);
    memcpy(p + 2, &t16, 2);
    if (len)
        memcpy(p + 4, data, len);
    memset(p + total, 0, pad4(total) - total);
    w->len += pad4(total);
}

void shmq__pw_u32(struct shmq__pw *w, unsigned type, uint32_t v)
{
    shmq__pw_put(w, type, &v, sizeof(v));
}

void shmq__pw_u64(struct shmq__pw *w, unsigned type, uint64_t v)
{
    shmq__pw_put(w, type, &v, sizeof(v));
}

void shmq__pw_str(struct shmq__pw *w, unsigned type, const char *s)
{
    shmq__pw_put(w, type, s, strlen(s) + 1);
}

void shmq__pw_nest_begin(struct shmq__pw *w, unsigned type)
{
    if (w->err)
        return;
    if (w->nest) { /* one level only */
        w->err = -EINVAL;
        return;
    }
    size_t at = w->len;
    shmq__pw_put(w, type, NULL, 0);
    if (!w->err)
        w->nest = at;
}

void shmq__pw_nest_end(struct shmq__pw *w)
{
    if (w->err || !w->nest)
        return;
    size_t total = w->len - w->nest;
    if (total > 0xffffu) {
        w->err = -EMSGSIZE;
        return;
    }
    uint16_t l16 = (uint16_t)total;
    memcpy(w->buf + w->nest, &l16, 2);
    w->nest = 0;
}

void shmq__pw_set_status(struct shmq__pw *w, int32_t status, uint32_t flags)
{
    if (w->cap >= SHMQ_PROTO_HDR) {
        memcpy(w->buf + 16, &status, 4);
        memcpy(w->buf + 20, &flags, 4);
    }
}

int shmq__pw_finish(struct shmq__pw *w)
{
    if (w->err)
        return w->err;
    if (w->nest)
        return -EINVAL;
    uint32_t len = (uint32_t)w->len;
    memcpy(w->buf + 8, &len, 4);
    return (int)len;
}

/* ---- reading ------------------------------------------------------------- */

void shmq__pr_init(struct shmq__pr *r, const void *buf, size_t len)
{
    r->p = buf;
    r->left = len;
}

int shmq__pr_next(struct shmq__pr *r, struct shmq__pattr *a)
{
    if (r->left == 0)
        return 0;
    if (r->left < 4)
        return -EBADMSG;
    uint16_t l16, t16;
    memcpy(&l16, r->p, 2);
    memcpy(&t16, r->p + 2, 2);
    if (l16 < 4 || l16 > r->left)
        return -EBADMSG;
    a->type = t16;
    a->data = r->p + 4;
    a->len = l16 - 4u;
    size_t step = pad4(l16);
    if (step > r->left)
        step = r->left; /* the last attribute may omit its padding */
    r->p += step;
    r->left -= step;
    return 1;
}

int shmq__pattr_u32(const struct shmq__pattr *a, uint32_t *v)
{
    if (a->len != sizeof(*v))
        return -EBADMSG;
    memcpy(v, a->data, sizeof(*v));
    return 0;
}

int shmq__pattr_str(const struct shmq__pattr *a, char *buf, size_t cap)
{
    /* exactly one NUL, at the end */
    if (a->len == 0 || a->len > cap || a->data[a->len - 1] != 0 ||
        memchr(a->data, 0, a->len) != a->data + a->len - 1)
        return -EBADMSG;
    memcpy(buf, a->data, a->len);
    return 0;
}

/* ---- field tables -------------------------------------------------------- */

struct field {
    uint16_t type;
    uint16_t width; /* 4 or 8 */
    uint16_t off;
};

#define F32(t, s, m) {t, 4, (uint16_t)offsetof(s, m)}
#define F64(t, s, m) {t, 8, (uint16_t)offsetof(s, m)}

static const struct field config_fields[] = {
    F32(SHMQ_A_CAPACITY, struct shmq_queue_config, capacity),
    F32(SHMQ_A_MSG_MAX, struct shmq_queue_config, msg_max),
    F32(SHMQ_A_MODE, struct shmq_queue_config, mode),
    F32(SHMQ_A_GID, struct shmq_queue_config, gid),
    F32(SHMQ_A_MAX_DELIVERIES, struct shmq_queue_config, max_deliveries),
    F32(SHMQ_A_DLQ_CAPACITY, struct shmq_queue_config, dlq_capacity),
    F64(SHMQ_A_LEASE_TIMEOUT, struct shmq_queue_config, lease_timeout_ns),
    F32(SHMQ_A_TIMESTAMPS, struct shmq_queue_config, timestamps),
};

static const struct field stats_fields[] = {
    F32(SHMQ_A_ST_CAPACITY, struct shmq_stats, capacity),
    F32(SHMQ_A_ST_MSG_MAX, struct shmq_stats, msg_max),
    F32(SHMQ_A_ST_MAX_DELIVERIES, struct shmq_stats, max_deliveries),
    F64(SHMQ_A_ST_DEPTH, struct shmq_stats, depth),
    F64(SHMQ_A_ST_IN_FLIGHT, struct shmq_stats, in_flight),
    F64(SHMQ_A_ST_HIGH_WATER, struct shmq_stats, high_water),
    F64(SHMQ_A_ST_ENQUEUED, struct shmq_stats, enqueued),
    F64(SHMQ_A_ST_DEQUEUED, struct shmq_stats, dequeued),
    F64(SHMQ_A_ST_REDELIVERED, struct shmq_stats, redelivered),
    F64(SHMQ_A_ST_DEAD_LETTERED, struct shmq_stats, dead_lettered),
    F64(SHMQ_A_ST_SKIPPED, struct shmq_stats, skipped),
    F64(SHMQ_A_ST_REPAIRED, struct shmq_stats, repaired),
    F64(SHMQ_A_ST_RETRY_PENDING, struct shmq_stats, retry_pending),
    F64(SHMQ_A_ST_DLQ_DEPTH, struct shmq_stats, dlq_depth),
    F32(SHMQ_A_ST_DLQ_CAPACITY, struct shmq_stats, dlq_capacity),
    F32(SHMQ_A_ST_PRODUCERS_WAITING, struct shmq_stats, producers_waiting),
    F32(SHMQ_A_ST_CONSUMERS_WAITING, struct shmq_stats, consumers_waiting),
    F32(SHMQ_A_ST_MODE, struct shmq_stats, mode),
    F64(SHMQ_A_ST_LEASE_TIMEOUT, struct shmq_stats, lease_timeout_ns),
    F64(SHMQ_A_ST_GENERATION, struct shmq_stats, generation),
};

static const struct field proc_fields[] = {
    F32(SHMQ_A_TOKEN, struct shmq_proc_info, token),
    F32(SHMQ_A_STATE, struct shmq_proc_info, state),
    F32(SHMQ_A_PID, struct shmq_proc_info, pid),
    F32(SHMQ_A_UID, struct shmq_proc_info, uid),
    F64(SHMQ_A_START_NS, struct shmq_proc_info, start_ns),
    F64(SHMQ_A_LEASES, struct shmq_proc_info, leases),
    F32(SHMQ_A_ALIVE, struct shmq_proc_info, alive),
    F32(SHMQ_A_NQUEUES, struct shmq_proc_info, nqueues),
};

static const struct field dlq_fields[] = {
    F64(SHMQ_A_ID, struct shmq_dlq_entry, id),
    F64(SHMQ_A_ENQUEUE_NS, struct shmq_dlq_entry, enqueue_ns),
    F32(SHMQ_A_DELIVERIES, struct shmq_dlq_entry, deliveries),
    F32(SHMQ_A_LEN, struct shmq_dlq_entry, len),
};

static const struct field daemon_fields[] = {
    F32(SHMQ_A_PID, struct shmq_ctl_daemon, pid),
    F32(SHMQ_A_UID, struct shmq_ctl_daemon, uid),
    F32(SHMQ_A_PROTO_VERSION, struct shmq_ctl_daemon, proto_version),
    F32(SHMQ_A_QUEUE_COUNT, struct shmq_ctl_daemon, queues),
    F32(SHMQ_A_WATCHED_COUNT, struct shmq_ctl_daemon, watched),
    F64(SHMQ_A_UPTIME_NS, struct shmq_ctl_daemon, uptime_ns),
};

#define NFIELDS(t) (sizeof(t) / sizeof((t)[0]))

static void put_fields(struct shmq__pw *w, const struct field *f, size_t n,
                       const void *base)
{
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = (const uint8_t *)base + f[i].off;
        shmq__pw_put(w, f[i].type, p, f[i].width);
    }
}

/* 1: a was one of the fields and was stored; 0: not a field; <0 error */
static int get_field(const struct shmq__pattr *a, const struct field *f,
                     size_t n, void *base)
{
    for (size_t i = 0; i < n; i++) {
        if (f[i].type != a->type)
            continue;
        if (a->len != f[i].width)
            return -EBADMSG;
        memcpy((uint8_t *)base + f[i].off, a->data, f[i].width);
        return 1;
    }
    return 0;
}

/* ---- records ------------------------------------------------------------- */

/* Begin a record; remembers where, so that a record that does not fit
 * can be taken back whole. */
static size_t rec_begin(struct shmq__pw *w, unsigned type)
{
    size_t at = w->len;
    shmq__pw_nest_begin(w, type);
    return at;
}

static int rec_end(struct shmq__pw *w, size_t at)
{
    if (!w->err) {
        shmq__pw_nest_end(w);
        if (!w->err)
            return 0;
    }
    /* Did not fit: forget it, leave the frame as it was. */
    w->err = 0;
    w->nest = 0;
    w->len = at;
    return -EMSGSIZE;
}

int shmq__pw_queue(struct shmq__pw *w, const struct shmq_queue_info *q)
{
    size_t at = rec_begin(w, SHMQ_A_QUEUE);
    shmq__pw_str(w, SHMQ_A_NAME, q->name);
    put_fields(w, config_fields, NFIELDS(config_fields), &q->config);
    put_fields(w, stats_fields, NFIELDS(stats_fields), &q->stats);
    return rec_end(w, at);
}

int shmq__pw_stats(struct shmq__pw *w, const struct shmq_stats *st)
{
    size_t at = rec_begin(w, SHMQ_A_STATS);
    put_fields(w, stats_fields, NFIELDS(stats_fields), st);
    return rec_end(w, at);
}

int shmq__pw_proc(struct shmq__pw *w, const struct shmq_ctl_proc *p)
{
    size_t at = rec_begin(w, SHMQ_A_PROC);
    put_fields(w, proc_fields, NFIELDS(proc_fields), &p->info);
    uint32_t n = p->info.nqueues < 16 ? p->info.nqueues : 16;
    for (uint32_t i = 0; i < n; i++)
        shmq__pw_u32(w, SHMQ_A_QUEUE_IDX, p->info.queues[i]);
    shmq__pw_u32(w, SHMQ_A_WATCHED, p->watched);
    return rec_end(w, at);
}

int shmq__pw_dlq_msg(struct shmq__pw *w, const struct shmq_dlq_entry *e)
{
    size_t at = rec_begin(w, SHMQ_A_DLQ_MSG);
    put_fields(w, dlq_fields, NFIELDS(dlq_fields), e);
    uint32_t n = e->data_len < SHMQ_CTL_PREVIEW_MAX ? e->data_len
                                                    : SHMQ_CTL_PREVIEW_MAX;
    shmq__pw_put(w, SHMQ_A_DATA, e->data, n);
    return rec_end(w, at);
}

int shmq__pw_daemon(struct shmq__pw *w, const struct shmq_ctl_daemon *d)
{
    size_t at = rec_begin(w, SHMQ_A_DAEMON);
    put_fields(w, daemon_fields, NFIELDS(daemon_fields), d);
    shmq__pw_str(w, SHMQ_A_VERSION, d->version);
    shmq__pw_str(w, SHMQ_A_INSTANCE, d->instance);
    shmq__pw_str(w, SHMQ_A_SOCKET, d->socket_path);
    return rec_end(w, at);
}

void shmq__pw_config(struct shmq__pw *w, const struct shmq_queue_config *c)
{
    put_fields(w, config_fields, NFIELDS(config_fields), c);
}

/* Iterate the attributes of a nested record, handing each to fn. */
static int each_nested(const struct shmq__pattr *a,
                       int (*fn)(const struct shmq__pattr *, void *),
                       void *arg)
{
    struct shmq__pr r;
    struct shmq__pattr in;
    int rc;
    shmq__pr_init(&r, a->data, a->len);
    while ((rc = shmq__pr_next(&r, &in)) > 0)
        if ((rc = fn(&in, arg)) < 0)
            return rc;
    return rc;
}

static int queue_attr(const struct shmq__pattr *a, void *arg)
{
    struct shmq_queue_info *q = arg;
    if (a->type == SHMQ_A_NAME)
        return shmq__pattr_str(a, q->name, sizeof(q->name));
    int rc = get_field(a, config_fields, NFIELDS(config_fields), &q->config);
    if (rc)
        return rc < 0 ? rc : 0;
    rc = get_field(a, stats_fields, NFIELDS(stats_fields), &q->stats);
    return rc < 0 ? rc : 0;
}

int shmq__pr_queue(const struct shmq__pattr *a, struct shmq_queue_info *q)
{
    struct shmq_queue_info t;
    memset(&t, 0, sizeof(t));
    shmq_queue_config_init(&t.config);
    t.stats.size = sizeof(t.stats);
    if (a->type != SHMQ_A_QUEUE)
        return -EBADMSG;
    int rc = each_nested(a, queue_attr, &t);
    if (rc)
        return rc;
    if (shmq_name_check(t.name))
        return -EBADMSG;
    *q = t;
    return 0;
}

static int stats_attr(const struct shmq__pattr *a, void *arg)
{
    int rc = get_field(a, stats_fields, NFIELDS(stats_fields), arg);
    return rc < 0 ? rc : 0;
}

int shmq__pr_stats(const struct shmq__pattr *a, struct shmq_stats *st)
{
    struct shmq_stats t;
    memset(&t, 0, sizeof(t));
    t.size = sizeof(t);
    if (a->type != SHMQ_A_STATS)
        return -EBADMSG;
    int rc = each_nested(a, stats_attr, &t);
    if (rc)
        return rc;
    *st = t;
    return 0;
}

struct proc_ctx {
    struct shmq_ctl_proc p;
    uint32_t nidx; /* queue indices seen */
};

static int proc_attr(const struct shmq__pattr *a, void *arg)
{
    struct proc_ctx *c = arg;
    if (a->type == SHMQ_A_WATCHED)
        return shmq__pattr_u32(a, &c->p.watched);
    if (a->type == SHMQ_A_QUEUE_IDX) {
        uint32_t v;
        if (shmq__pattr_u32(a, &v) || c->nidx >= 16)
            return -EBADMSG;
        c->p.info.queues[c->nidx++] = v;
        return 0;
    }
    int rc = get_field(a, proc_fields, NFIELDS(proc_fields), &c->p.info);
    return rc < 0 ? rc : 0;
}

int shmq__pr_proc(const struct shmq__pattr *a, struct shmq_ctl_proc *p)
{
    struct proc_ctx c;
    memset(&c, 0, sizeof(c));
    if (a->type != SHMQ_A_PROC)
        return -EBADMSG;
    int rc = each_nested(a, proc_attr, &c);
    if (rc)
        return rc;
    *p = c.p;
    return 0;
}

static int dlq_attr(const struct shmq__pattr *a, void *arg)
{
    struct shmq_dlq_entry *e = arg;
    if (a->type == SHMQ_A_DATA) {
        if (a->len > SHMQ_CTL_PREVIEW_MAX)
            return -EBADMSG;
        memcpy(e->data, a->data, a->len);
        e->data_len = (uint32_t)a->len;
        return 0;
    }
    int rc = get_field(a, dlq_fields, NFIELDS(dlq_fields), e);
    return rc < 0 ? rc : 0;
}

int shmq__pr_dlq_msg(const struct shmq__pattr *a, struct shmq_dlq_entry *e)
{
    struct shmq_dlq_entry t;
    memset(&t, 0, sizeof(t));
    if (a->type != SHMQ_A_DLQ_MSG)
        return -EBADMSG;
    int rc = each_nested(a, dlq_attr, &t);
    if (rc)
        return rc;
    if (t.data_len > t.len)
        return -EBADMSG;
    *e = t;
    return 0;
}

static int daemon_attr(const struct shmq__pattr *a, void *arg)
{
    struct shmq_ctl_daemon *d = arg;
    switch (a->type) {
    case SHMQ_A_VERSION:
        return shmq__pattr_str(a, d->version, sizeof(d->version));
    case SHMQ_A_INSTANCE:
        return shmq__pattr_str(a, d->instance, sizeof(d->instance));
    case SHMQ_A_SOCKET:
        return shmq__pattr_str(a, d->socket_path, sizeof(d->socket_path));
    default: {
        int rc = get_field(a, daemon_fields, NFIELDS(daemon_fields), d);
        return rc < 0 ? rc : 0;
    }
    }
}

int shmq__pr_daemon(const struct shmq__pattr *a, struct shmq_ctl_daemon *d)
{
    struct shmq_ctl_daemon t;
    memset(&t, 0, sizeof(t));
    if (a->type != SHMQ_A_DAEMON)
        return -EBADMSG;
    int rc = each_nested(a, daemon_attr, &t);
    if (rc)
        return rc;
    *d = t;
    return 0;
}

/* ---- requests ------------------------------------------------------------ */

#define BIT(t) (UINT64_C(1) << (t))
#define CONFIG_ATTRS                                                        \
    (BIT(SHMQ_A_CAPACITY) | BIT(SHMQ_A_MSG_MAX) | BIT(SHMQ_A_MODE) |        \
     BIT(SHMQ_A_GID) | BIT(SHMQ_A_MAX_DELIVERIES) |                         \
     BIT(SHMQ_A_DLQ_CAPACITY) | BIT(SHMQ_A_LEASE_TIMEOUT) |                 \
     BIT(SHMQ_A_TIMESTAMPS))

/* What each op accepts and needs (all request attributes are < 64). */
static const struct {
    const char *name;
    uint64_t allowed;
    uint64_t required;
} ops[SHMQ_OP_MAX + 1] = {
    [SHMQ_OP_PING] = {"ping", 0, 0},
    [SHMQ_OP_CREATE] = {"create", BIT(SHMQ_A_NAME) | CONFIG_ATTRS,
                        BIT(SHMQ_A_NAME)},
    [SHMQ_OP_DELETE] = {"delete", BIT(SHMQ_A_NAME), BIT(SHMQ_A_NAME)},
    [SHMQ_OP_PURGE] = {"purge", BIT(SHMQ_A_NAME) | BIT(SHMQ_A_RING),
                       BIT(SHMQ_A_NAME)},
    [SHMQ_OP_LIST] = {"list", 0, 0},
    [SHMQ_OP_INFO] = {"info", BIT(SHMQ_A_NAME), BIT(SHMQ_A_NAME)},
    [SHMQ_OP_REGISTER] = {"register", BIT(SHMQ_A_TOKEN), BIT(SHMQ_A_TOKEN)},
    [SHMQ_OP_DLQ_LIST] = {"dlq-list", BIT(SHMQ_A_NAME) | BIT(SHMQ_A_COUNT),
                          BIT(SHMQ_A_NAME)},
    [SHMQ_OP_DLQ_REQUEUE] = {"dlq-requeue",
                             BIT(SHMQ_A_NAME) | BIT(SHMQ_A_COUNT),
                             BIT(SHMQ_A_NAME)},
    [SHMQ_OP_DLQ_DROP] = {"dlq-drop", BIT(SHMQ_A_NAME) | BIT(SHMQ_A_COUNT),
                          BIT(SHMQ_A_NAME)},
    [SHMQ_OP_STATS] = {"stats", BIT(SHMQ_A_NAME), BIT(SHMQ_A_NAME)},
    [SHMQ_OP_PROCS] = {"procs", 0, 0},
};

const char *shmq__proto_op_name(unsigned op)
{
    return op >= 1 && op <= SHMQ_OP_MAX ? ops[op].name : "unknown";
}

/* Store one request attribute. */
static int req_attr(struct shmq__req *r, const struct shmq__pattr *a,
                    const char **why)
{
    int rc;
    switch (a->type) {
    case SHMQ_A_NAME:
        if (a->len > sizeof(r->name) ||
            shmq__pattr_str(a, r->name, sizeof(r->name)) ||
            shmq_name_check(r->name)) {
            *why = "invalid queue name: 1 to 63 of [A-Za-z0-9_.-], not "
                   "starting with '.', no \"..\"";
            return -EINVAL;
        }
        return 0;
    case SHMQ_A_TOKEN:
        rc = shmq__pattr_u32(a, &r->token);
        break;
    case SHMQ_A_RING:
        rc = shmq__pattr_u32(a, &r->ring);
        if (rc == 0 && r->ring != SHMQ_RING_MAIN && r->ring != SHMQ_RING_DLQ) {
            *why = "ring must be 0 (main) or 1 (dead-letter)";
            return -EINVAL;
        }
        break;
    case SHMQ_A_COUNT:
        rc = shmq__pattr_u32(a, &r->count);
        break;
    default:
        rc = get_field(a, config_fields, NFIELDS(config_fields), &r->cfg);
        if (rc == 0)
            rc = -EINVAL; /* cannot happen: the op's mask admitted it */
        else if (rc > 0)
            rc = 0;
        break;
    }
    if (rc) {
        *why = "attribute of the wrong size";
        return -EINVAL;
    }
    return 0;
}

static int parse_hdr(const uint8_t *p, size_t len, struct shmq__req *out,
                     const char **why)
{
    uint32_t magic, flen, seq, flags;
    int32_t status;

    if (len > SHMQ_PROTO_REQ_MAX) {
        *why = "request larger than the 4096-byte limit";
        return -EMSGSIZE;
    }
    if (len < SHMQ_PROTO_HDR) {
        *why = "truncated request: shorter than the 24-byte header";
        return -EBADMSG;
    }
    memcpy(&magic, p, 4);
    if (magic != SHMQ_PROTO_MAGIC) {
        *why = "not a shmq request (bad magic)";
        return -EBADMSG;
    }
    memcpy(&out->version, p + 4, 2);
    memcpy(&out->op, p + 6, 2);
    memcpy(&flen, p + 8, 4);
    memcpy(&seq, p + 12, 4);
    memcpy(&status, p + 16, 4);
    memcpy(&flags, p + 20, 4);
    out->seq = seq;
    if (out->version != SHMQ_PROTO_VERSION) {
        *why = "unsupported protocol version (this daemon speaks 1)";
        return -EPROTONOSUPPORT;
    }
    if (flen != len) {
        *why = flen > len ? "truncated request: shorter than its length field"
                          : "request longer than its length field";
        return -EBADMSG;
    }
    if (status != 0 || flags != 0) {
        *why = "status and flags of a request must be 0";
        return -EINVAL;
    }
    if (out->op < 1 || out->op > SHMQ_OP_MAX) {
        *why = "unknown operation";
        return -EOPNOTSUPP;
    }
    return 0;
}

int shmq__proto_parse_request(const void *buf, size_t len,
                              struct shmq__req *out, const char **why)
{
    const uint8_t *p = buf;
    const char *dummy;
    struct shmq__pr r;
    struct shmq__pattr a;
    int rc;

    if (!why)
        why = &dummy;
    *why = NULL;
    memset(out, 0, sizeof(*out));
    shmq_queue_config_init(&out->cfg);
    out->ring = SHMQ_RING_MAIN;
    if ((rc = parse_hdr(p, len, out, why)) != 0)
        return rc;
    uint64_t allowed = ops[out->op].allowed;
    shmq__pr_init(&r, p + SHMQ_PROTO_HDR, len - SHMQ_PROTO_HDR);
    while ((rc = shmq__pr_next(&r, &a)) > 0) {
        if (a.type >= 64 || !(allowed & BIT(a.type))) {
            *why = "attribute not allowed for this operation";
            return -EINVAL;
        }
        if (out->present[0] & BIT(a.type)) {
            *why = "attribute given twice";
            return -EINVAL;
        }
        out->present[0] |= BIT(a.type);
        if ((rc = req_attr(out, &a, why)) != 0)
            return rc;
    }
    if (rc < 0) {
        *why = "malformed attribute (length beyond the frame)";
        return rc;
    }
    if ((out->present[0] & ops[out->op].required) != ops[out->op].required) {
        *why = "a required attribute is missing";
        return -EINVAL;
    }
    if (out->op == SHMQ_OP_CREATE) {
        if (out->cfg.gid < -1) {
            *why = "gid must be -1 (default) or a group id";
            return -EINVAL;
        }
        if (shmq_queue_config_check(&out->cfg, why))
            return -EINVAL;
    }
    return 0;
}

/* ---- responses ----------------------------------------------------------- */

int shmq__proto_parse_response(const void *buf, size_t len,
                               struct shmq__resp *out)
{
    const uint8_t *p = buf;
    uint32_t magic, flen;
    uint16_t ver, op;

    if (len < SHMQ_PROTO_HDR || len > SHMQ_PROTO_FRAME_MAX)
        return -EBADMSG;
    memcpy(&magic, p, 4);
    memcpy(&ver, p + 4, 2);
    memcpy(&op, p + 6, 2);
    memcpy(&flen, p + 8, 4);
    if (magic != SHMQ_PROTO_MAGIC)
        return -EBADMSG;
    if (ver != SHMQ_PROTO_VERSION)
        return -EPROTONOSUPPORT;
    if (flen != len)
        return -EBADMSG;
    out->op = op;
    memcpy(&out->seq, p + 12, 4);
    memcpy(&out->status, p + 16, 4);
    memcpy(&out->flags, p + 20, 4);
    if (out->flags & ~SHMQ_PROTO_F_MORE)
        return -EBADMSG;
    out->attrs = p + SHMQ_PROTO_HDR;
    out->attrs_len = len - SHMQ_PROTO_HDR;
    return 0;
}
