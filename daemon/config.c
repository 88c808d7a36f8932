/* SPDX-License-Identifier: MIT */
/*
 * The config file: queues to declare at start (and on SIGHUP), parsed
 * with libinih. One section per queue, named after it:
 *
 *   [jobs]
 *   capacity = 1024          ; slots, a power of two
 *   msg_max = 4KiB           ; bytes (suffixes K, KiB, M, MiB)
 *   mode = 0660              ; octal
 *   group = shmq             ; name or number
 *   max_deliveries = 5       ; 0: no limit
 *   dlq_capacity = 64
 *   lease_timeout = 30s      ; 0: none; units ms, s, m, h (bare: s)
 *   timestamps = precise     ; precise, coarse or none
 *
 * A queue that does not exist is created with the keys given and the
 * library's defaults for the rest. A queue that exists is compared on the
 * keys given only; a difference is reported and the queue left alone:
 * the daemon never deletes or recreates a queue to make it match.
 *
 * The whole file is read and checked before anything is created: an
 * unknown key, a bad value or a section without any key (inih would skip
 * it silently) is an error, reported with its line, and then nothing is
 * declared at all.
 */
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include "shmqd.h"

enum {
    K_CAPACITY = 1 << 0,
    K_MSG_MAX = 1 << 1,
    K_MODE = 1 << 2,
    K_GROUP = 1 << 3,
    K_MAX_DELIVERIES = 1 << 4,
    K_DLQ_CAPACITY = 1 << 5,
    K_LEASE_TIMEOUT = 1 << 6,
    K_TIMESTAMPS = 1 << 7,
};

struct qdecl {
    char name[SHMQ_NAME_MAX + 1];
    struct shmq_queue_config cfg;
    unsigned set;  /* K_* given */
    unsigned line; /* of the section header */
};

struct config {
    const char *path;
    struct qdecl *q;
    size_t n, cap;
    int errors;
    int oom;
    /* reading state */
    FILE *f;
    unsigned line;         /* line being parsed */
    unsigned pending_line; /* a section header with no key yet, or 0 */
    char last_section[256];
};

static void cerr(struct config *c, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void cerr(struct config *c, unsigned line, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    log_err("config %s:%u: %s", c->path, line, buf);
    c->errors++;
}

/* ---- values -------------------------------------------------------------- */

static int parse_u64(const char *s, uint64_t *v, const char **rest)
{
    char *end;
    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno)
        return -1;
    *v = x;
    *rest = end;
    return 0;
}

static int parse_u32(const char *s, uint32_t *v)
{
    uint64_t x;
    const char *rest;
    if (parse_u64(s, &x, &rest) || *rest || x > UINT32_MAX)
        return -1;
    *v = (uint32_t)x;
    return 0;
}

static int parse_size(const char *s, uint32_t *v)
{
    uint64_t x, mul = 1;
    const char *u;
    if (parse_u64(s, &x, &u))
        return -1;
    if (!strcmp(u, "K") || !strcmp(u, "k") || !strcmp(u, "KiB"))
        mul = 1024;
    else if (!strcmp(u, "M") || !strcmp(u, "MiB"))
        mul = 1024 * 1024;
    else if (*u)
        return -1;
    if (x > UINT32_MAX / mul)
        return -1;
    *v = (uint32_t)(x * mul);
    return 0;
}

static int parse_duration_ns(const char *s, uint64_t *v)
{
    uint64_t x, mul = 1000000000; /* bare: seconds, as in shmq-ctl */
    const char *u;
    if (parse_u64(s, &x, &u))
        return -1;
    if (!strcmp(u, "ms"))
        mul = 1000000;
    else if (!strcmp(u, "s") || !*u)
        mul = 1000000000;
    else if (!strcmp(u, "m"))
        mul = UINT64_C(60000000000);
    else if (!strcmp(u, "h"))
        mul = UINT64_C(3600000000000);
    else
        return -1;
    if (x > UINT64_MAX / mul)
        return -1;
    *v = x * mul;
    return 0;
}

/* ---- reading ------------------------------------------------------------- */

static struct qdecl *decl_for(struct config *c, const char *section,
                              unsigned line)
{
    for (size_t i = 0; i < c->n; i++)
        if (!strcmp(c->q[i].name, section))
            return &c->q[i];
    if (c->n == c->cap) {
        size_t nc = c->cap ? 2 * c->cap : 8;
        struct qdecl *t = realloc(c->q, nc * sizeof(*t));
        if (!t)
            return NULL;
        c->q = t;
        c->cap = nc;
    }
    struct qdecl *q = &c->q[c->n++];
    memset(q, 0, sizeof(*q));
    snprintf(q->name, sizeof(q->name), "%s", section);
    shmq_queue_config_init(&q->cfg);
    q->line = line;
    return q;
}

static int set_key(struct config *c, struct qdecl *q, const char *key,
                   const char *val)
{
    static const char *const keys[] = {
        "capacity", "msg_max", "mode", "group", "max_deliveries",
        "dlq_capacity", "lease_timeout", "timestamps"};
    unsigned bit = 0;
    int bad = 0;

    for (unsigned i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (!strcmp(key, keys[i]))
            bit = 1u << i;
    if (!bit) {
        cerr(c, c->line, "[%s]: unknown key \"%s\" (known: capacity, msg_max, "
                         "mode, group, max_deliveries, dlq_capacity, "
                         "lease_timeout, timestamps)",
             q->name, key);
        return 1;
    }
    if (q->set & bit) {
        cerr(c, c->line, "[%s]: %s given twice", q->name, key);
        return 1;
    }
    q->set |= bit;
    gid_t g;
    switch (bit) {
    case K_CAPACITY: bad = parse_u32(val, &q->cfg.capacity); break;
    case K_MSG_MAX: bad = parse_size(val, &q->cfg.msg_max); break;
    case K_MODE: bad = parse_mode(val, &q->cfg.mode); break;
    case K_GROUP:
        bad = parse_group(val, &g);
        q->cfg.gid = (int32_t)g;
        break;
    case K_MAX_DELIVERIES: bad = parse_u32(val, &q->cfg.max_deliveries); break;
    case K_DLQ_CAPACITY: bad = parse_u32(val, &q->cfg.dlq_capacity); break;
    case K_LEASE_TIMEOUT:
        bad = parse_duration_ns(val, &q->cfg.lease_timeout_ns);
        break;
    case K_TIMESTAMPS:
        if (!strcmp(val, "precise"))
            q->cfg.timestamps = SHMQ_TS_PRECISE;
        else if (!strcmp(val, "coarse"))
            q->cfg.timestamps = SHMQ_TS_COARSE;
        else if (!strcmp(val, "none"))
            q->cfg.timestamps = SHMQ_TS_NONE;
        else
            bad = -1;
        break;
    }
    if (bad)
        cerr(c, c->line, "[%s]: bad value for %s: \"%s\"", q->name, key, val);
    return 1;
}

static int on_pair(void *user, const char *section, const char *key,
                   const char *val)
{
    struct config *c = user;
    unsigned hdr = c->pending_line ? c->pending_line : c->line;

    c->pending_line = 0;
    if (!section[0]) {
        cerr(c, c->line, "\"%s\" outside of any [queue] section", key);
        return 1;
    }
    if (shmq_name_check(section)) {
        if (strcmp(section, c->last_section))
            cerr(c, c->line, "[%s]: not a valid queue name", section);
        snprintf(c->last_section, sizeof(c->last_section), "%s", section);
        return 1;
    }
    snprintf(c->last_section, sizeof(c->last_section), "%s", section);
    struct qdecl *q = decl_for(c, section, hdr);
    if (!q) {
        cerr(c, c->line, "out of memory");
        c->oom = 1;
        return 0;
    }
    return set_key(c, q, key, val);
}

/* Reads a line for inih, counting lines and noticing section headers that
 * get no key before the next one (inih reports keys only). */
static char *reader(char *buf, int size, void *stream)
{
    struct config *c = stream;
    char *s = fgets(buf, size, c->f);
    const char *p = s;
    while (p && (*p == ' ' || *p == '\t'))
        p++;
    if (c->pending_line && (!s || *p == '['))
        cerr(c, c->pending_line, "a section without settings declares "
                                 "nothing; give at least one key, e.g. "
                                 "capacity = 1024");
    if (!s)
        return NULL;
    c->line++;
    if (*p == '[')
        c->pending_line = c->line;
    return s;
}

int config_load(const char *path, struct config **out)
{
    struct config *c = calloc(1, sizeof(*c));
    if (!c)
        return -1;
    c->path = path;
    c->f = fopen(path, "re");
    if (!c->f) {
        log_err("config %s: %m", path);
        free(c);
        return -1;
    }
    int rc = ini_parse_stream(reader, c, on_pair, c);
    fclose(c->f);
    c->f = NULL;
    /* on_pair() fails only for lack of memory (and said so): any other
     * line inih returns is the first syntax error. */
    if (rc > 0 && !c->oom)
        cerr(c, (unsigned)rc, "syntax error (expected [queue] or key = value, "
                              "lines of at most 200 characters)");
    for (size_t i = 0; i < c->n && rc >= 0; i++) {
        const char *why = NULL;
        if (shmq_queue_config_check(&c->q[i].cfg, &why))
            cerr(c, c->q[i].line, "[%s]: %s", c->q[i].name, why);
    }
    if (rc < 0 || c->errors) {
        log_err("config %s: %d error%s; nothing declared", path,
                c->errors ? c->errors : 1, c->errors == 1 ? "" : "s");
        config_free(c);
        return -1;
    }
    *out = c;
    return 0;
}

void config_free(struct config *c)
{
    if (!c)
        return;
    free(c->q);
    free(c);
}

/* ---- applying ------------------------------------------------------------ */

static gid_t segment_gid(struct shmqd *d, const char *name)
{
    char path[128];
    struct stat st;
    if (shmq__shm_name(path, sizeof(path), d->instance, name))
        return (gid_t)-1;
    int fd = shm_open(path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return (gid_t)-1;
    int rc = fstat(fd, &st);
    close(fd);
    return rc == 0 ? st.st_gid : (gid_t)-1;
}

#define DIFF(bit, field, fmt, cast)                                          \
    do {                                                                     \
        if ((q->set & (bit)) && have->field != q->cfg.field)                 \
            n += snprintf(buf + n, n < cap ? cap - n : 0,                    \
                          "%s" #field " is " fmt " (config: " fmt ")",       \
                          n ? ", " : "", cast have->field,                   \
                          cast q->cfg.field);                                \
    } while (0)

/* The differences between a declaration and an existing queue. */
static size_t differences(const struct qdecl *q,
                          const struct shmq_queue_config *have, gid_t gid,
                          char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = 0;
    DIFF(K_CAPACITY, capacity, "%u", (unsigned));
    DIFF(K_MSG_MAX, msg_max, "%u", (unsigned));
    DIFF(K_MODE, mode, "0%o", (unsigned));
    DIFF(K_MAX_DELIVERIES, max_deliveries, "%u", (unsigned));
    DIFF(K_DLQ_CAPACITY, dlq_capacity, "%u", (unsigned));
    DIFF(K_LEASE_TIMEOUT, lease_timeout_ns, "%llu ns", (unsigned long long));
    DIFF(K_TIMESTAMPS, timestamps, "%u", (unsigned));
    if ((q->set & K_GROUP) && gid != (gid_t)q->cfg.gid)
        n += snprintf(buf + n, n < cap ? cap - n : 0,
                      "%sgroup is %u (config: %u)", n ? ", " : "",
                      (unsigned)gid, (unsigned)q->cfg.gid);
    return n;
}

int config_apply(struct shmqd *d, const struct config *c)
{
    struct shmq_queue_info info;
    char who[PATH_MAX + 32], msg[SHMQ_CTL_MSG_MAX], diff[512];
    int conflicts = 0;

    snprintf(who, sizeof(who), "declared in %s", c->path);
    for (size_t i = 0; i < c->n; i++) {
        const struct qdecl *q = &c->q[i];
        int rc = shmq_admin_info(d->admin, q->name, &info);
        if (rc == -ENOENT) {
            rc = shmqd_create_queue(d, q->name, &q->cfg, who, msg,
                                    sizeof(msg));
            if (rc)
                log_err("config %s:%u: %s", c->path, q->line, msg);
            continue;
        }
        if (rc) {
            log_err("config %s:%u: cannot read queue %s: %s", c->path,
                    q->line, q->name, shmq_strerror(rc));
            continue;
        }
        if (differences(q, &info.config, segment_gid(d, q->name), diff,
                        sizeof(diff))) {
            log_err("config %s:%u: queue %s exists with other settings and "
                    "is left unchanged: %s",
                    c->path, q->line, q->name, diff);
            conflicts++;
        }
    }
    return conflicts;
}
