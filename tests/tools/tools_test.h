/* SPDX-License-Identifier: MIT */
/*
 * Helpers for the tests that run the real shmq-ctl and shmq-stats:
 * spawn a binary with pipes (optionally as another user, or with extra
 * environment), feed its standard input and collect its output and exit
 * status with a bounded wait; a strict JSON parser to read --json output
 * back; a checker of the OpenMetrics / Prometheus text exposition.
 * Header-only, so that each test file stays one executable
 * (tests/CMakeLists.txt).
 *
 * The JSON parser is written here rather than taken from a library
 * (libjansson would do) so that the tests need nothing beyond Criterion:
 * it is strict RFC 8259 (no trailing commas, no control characters in
 * strings, valid UTF-8 and \u escapes, no duplicate keys), which is what
 * the tools promise to print.
 */
#ifndef SHMQ_TOOLS_TEST_H
#define SHMQ_TOOLS_TEST_H

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define SHMQ_CTL_BIN SHMQ_BINARY_DIR "/tools/shmq-ctl"
#define SHMQ_STATS_BIN SHMQ_BINARY_DIR "/tools/shmq-stats"

/* Exit codes the tools document (tools/common/tools.h). */
enum {
    XS_OK = 0,
    XS_FAIL = 1,
    XS_USAGE = 2,
    XS_NOQUEUE = 3,
    XS_TIMEOUT = 4,
    XS_PERM = 5,
    XS_DAEMON = 6,
};

#define NOBODY_UID 65534
#define NOBODY_GID 65534

static inline void tt_sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- running a binary --------------------------------------------------- */

struct tbuf {
    char *p;
    size_t len, cap;
};

static inline void tbuf_add(struct tbuf *b, const void *data, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->p = realloc(b->p, cap);
        cr_assert_not_null(b->p, "out of memory");
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = 0;
}

struct topts {
    uid_t uid;               /* 0: stay root; else drop to uid/gid */
    gid_t gid;
    const char *const *env;  /* "NAME=value" to set, NULL-terminated */
    int stdout_closed;       /* stdout: a pipe whose reader is gone */
    int sighup_ignored;      /* exec with SIGHUP ignored (as nohup) */
};

struct tproc {
    pid_t pid;
    int in_fd, out_fd, err_fd; /* our ends, -1 when closed */
    const char *input;
    size_t input_len, input_off;
    struct tbuf out, err;
    int status;
    int done;
};

static inline void tp_child(const char *const argv[], const struct topts *o,
                            int in, int out, int err)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(in, STDIN_FILENO);
    dup2(out, STDOUT_FILENO);
    dup2(err, STDERR_FILENO);
    if (o && o->env)
        for (int i = 0; o->env[i]; i++)
            putenv((char *)o->env[i]);
    if (o && o->sighup_ignored)
        signal(SIGHUP, SIG_IGN);
    if (o && o->uid) {
        if (setgroups(0, NULL) < 0 || setgid(o->gid) < 0 ||
            setuid(o->uid) < 0)
            _exit(121);
    }
    execv(argv[0], (char *const *)argv);
    _exit(127);
}

/* Start argv[0] with pipes on its standard streams. input (may be NULL)
 * is fed to it by tp_pump, then its stdin is closed. */
static inline void tp_spawn(struct tproc *p, const char *const argv[],
                            const char *input, size_t input_len,
                            const struct topts *o)
{
    int in[2], out[2], err[2];

    memset(p, 0, sizeof(*p));
    cr_assert(pipe2(in, O_CLOEXEC) == 0 && pipe2(out, O_CLOEXEC) == 0 &&
              pipe2(err, O_CLOEXEC) == 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork");
    if (pid == 0)
        tp_child(argv, o, in[0], out[1], err[1]);
    close(in[0]);
    close(out[1]);
    close(err[1]);
    p->pid = pid;
    p->in_fd = in[1];
    p->out_fd = out[0];
    p->err_fd = err[0];
    if (o && o->stdout_closed) {
        close(p->out_fd);
        p->out_fd = -1;
    }
    p->input = input;
    p->input_len = input ? input_len : 0;
    fcntl(p->in_fd, F_SETFL, O_NONBLOCK);
    if (p->input_len == 0) {
        close(p->in_fd);
        p->in_fd = -1;
    }
}

/* Move data for n processes until all their outputs are closed and they
 * have exited, at most timeout_ms; then kill what is left (a test never
 * hangs) and fail. */
static inline void tp_pump(struct tproc **ps, int n, unsigned timeout_ms)
{
    uint64_t end = t_mono_ns() + (uint64_t)timeout_ms * 1000000u;
    char buf[65536];

    for (;;) {
        struct pollfd pf[3 * 8];
        struct tproc *who[3 * 8];
        int which[3 * 8], k = 0;
        for (int i = 0; i < n && i < 8; i++) {
            struct tproc *p = ps[i];
            int fds[3] = {p->in_fd, p->out_fd, p->err_fd};
            for (int j = 0; j < 3; j++)
                if (fds[j] >= 0) {
                    pf[k].fd = fds[j];
                    pf[k].events = j == 0 ? POLLOUT : POLLIN;
                    pf[k].revents = 0;
                    who[k] = p;
                    which[k++] = j;
                }
        }
        if (k == 0)
            break;
        uint64_t now = t_mono_ns();
        if (now >= end)
            break;
        int r = poll(pf, (nfds_t)k, (int)((end - now) / 1000000u) + 1);
        if (r < 0 && errno != EINTR)
            break;
        for (int i = 0; i < k && r > 0; i++) {
            struct tproc *p = who[i];
            if (!pf[i].revents)
                continue;
            if (which[i] == 0) {
                ssize_t w = write(p->in_fd, p->input + p->input_off,
                                  p->input_len - p->input_off);
                if (w > 0)
                    p->input_off += (size_t)w;
                if (w < 0 && errno != EAGAIN && errno != EINTR)
                    p->input_off = p->input_len; /* reader gone */
                if (p->input_off == p->input_len) {
                    close(p->in_fd);
                    p->in_fd = -1;
                }
                continue;
            }
            int *fd = which[i] == 1 ? &p->out_fd : &p->err_fd;
            ssize_t got = read(*fd, buf, sizeof(buf));
            if (got > 0)
                tbuf_add(which[i] == 1 ? &p->out : &p->err, buf, (size_t)got);
            else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
                close(*fd);
                *fd = -1;
            }
        }
    }
    int late = 0;
    for (int i = 0; i < n; i++) {
        struct tproc *p = ps[i];
        int fds[3] = {p->in_fd, p->out_fd, p->err_fd};
        for (int j = 0; j < 3; j++)
            if (fds[j] >= 0) {
                close(fds[j]);
                late = 1;
            }
        p->in_fd = p->out_fd = p->err_fd = -1;
        uint64_t now = t_mono_ns();
        unsigned left = now < end ? (unsigned)((end - now) / 1000000u) : 0;
        p->status = t_wait(p->pid, late ? 0 : (int)left + 1000);
        p->done = 1;
        if (!p->out.p)
            tbuf_add(&p->out, "", 0);
        if (!p->err.p)
            tbuf_add(&p->err, "", 0);
    }
    cr_assert(!late, "a tool did not finish within %u ms", timeout_ms);
}

static inline void tp_free(struct tproc *p)
{
    free(p->out.p);
    free(p->err.p);
    memset(&p->out, 0, sizeof(p->out));
    memset(&p->err, 0, sizeof(p->err));
}

/* Exit code, or 128 + signal. */
static inline int tp_code(const struct tproc *p)
{
    if (WIFEXITED(p->status))
        return WEXITSTATUS(p->status);
    if (WIFSIGNALED(p->status))
        return 128 + WTERMSIG(p->status);
    return -1;
}

/* Run to completion (at most 30 s). */
static inline void tp_run(struct tproc *p, const char *const argv[],
                          const char *input, size_t input_len,
                          const struct topts *o)
{
    tp_spawn(p, argv, input, input_len, o);
    struct tproc *ps[1] = {p};
    tp_pump(ps, 1, 30000);
}

/* Shorthands: run shmq-ctl / shmq-stats with these arguments. */
#define CTL_ARGV(...) ((const char *const[]){SHMQ_CTL_BIN, __VA_ARGS__, NULL})
#define STATS_ARGV(...)                                                    \
    ((const char *const[]){SHMQ_STATS_BIN, __VA_ARGS__, NULL})

/* Expect an exit code, and (for failures) exactly one line on stderr that
 * starts with the program's name. */
static inline void tp_expect(const struct tproc *p, int code, const char *prog)
{
    cr_assert_eq(tp_code(p), code,
                 "exit code %d, expected %d; stderr: %s; stdout: %.400s",
                 tp_code(p), code, p->err.p, p->out.p);
    if (code != XS_OK && code < 128) {
        size_t n = strlen(prog);
        cr_assert(p->err.len > n + 2 && strncmp(p->err.p, prog, n) == 0 &&
                      p->err.p[n] == ':',
                  "stderr does not start with \"%s:\": %s", prog, p->err.p);
        cr_assert(p->err.p[p->err.len - 1] == '\n' &&
                      memchr(p->err.p, '\n', p->err.len) ==
                          p->err.p + p->err.len - 1,
                  "stderr is not exactly one line: %s", p->err.p);
    }
}

/* ---- JSON --------------------------------------------------------------- */

enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

struct jv {
    enum jtype t;
    int b;
    double num;
    char raw[40];    /* the number as written */
    char *s;         /* J_STR: decoded, NUL-terminated */
    size_t slen;
    struct jv **v;   /* J_ARR, J_OBJ: items */
    char **k;        /* J_OBJ: keys */
    size_t n;
};

struct jp {
    const char *p, *end;
    int depth;
    const char *err;
};

static inline void jv_free(struct jv *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->n; i++) {
        jv_free(v->v[i]);
        if (v->k)
            free(v->k[i]);
    }
    free(v->v);
    free(v->k);
    free(v->s);
    free(v);
}

static inline void jp_ws(struct jp *j)
{
    while (j->p < j->end &&
           (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static struct jv *jp_value(struct jp *j);

static inline int jp_hex4(struct jp *j, unsigned *out)
{
    unsigned v = 0;
    if (j->end - j->p < 4)
        return -1;
    for (int i = 0; i < 4; i++) {
        char c = *j->p++;
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static inline void jp_put_utf8(struct tbuf *b, unsigned cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp, n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | cp >> 6), u[1] = (char)(0x80 | (cp & 63)), n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | cp >> 12), u[1] = (char)(0x80 | (cp >> 6 & 63));
        u[2] = (char)(0x80 | (cp & 63)), n = 3;
    } else {
        u[0] = (char)(0xf0 | cp >> 18), u[1] = (char)(0x80 | (cp >> 12 & 63));
        u[2] = (char)(0x80 | (cp >> 6 & 63)), u[3] = (char)(0x80 | (cp & 63));
        n = 4;
    }
    tbuf_add(b, u, n);
}

/* Length of the valid UTF-8 sequence at p (0: invalid). */
static inline size_t jp_utf8_len(const unsigned char *p,
                                 const unsigned char *end)
{
    unsigned cp, min;
    size_t n;
    if (*p < 0x80)
        return 1;
    if ((*p & 0xe0) == 0xc0)
        n = 2, cp = *p & 0x1fu, min = 0x80;
    else if ((*p & 0xf0) == 0xe0)
        n = 3, cp = *p & 0x0fu, min = 0x800;
    else if ((*p & 0xf8) == 0xf0)
        n = 4, cp = *p & 0x07u, min = 0x10000;
    else
        return 0;
    if ((size_t)(end - p) < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

static inline int jp_string(struct jp *j, char **out, size_t *outlen)
{
    struct tbuf b = {0};
    j->p++; /* opening quote */
    tbuf_add(&b, "", 0);
    for (;;) {
        if (j->p >= j->end)
            goto bad;
        unsigned char c = (unsigned char)*j->p;
        if (c == '"') {
            j->p++;
            break;
        }
        if (c < 0x20)
            goto bad;
        if (c != '\\') {
            size_t n = jp_utf8_len((const unsigned char *)j->p,
                                   (const unsigned char *)j->end);
            if (!n)
                goto bad;
            tbuf_add(&b, j->p, n);
            j->p += n;
            continue;
        }
        j->p++;
        if (j->p >= j->end)
            goto bad;
        char e = *j->p++;
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e && simple) {
            static const char map[] = "\"\\/\b\f\n\r\t";
            tbuf_add(&b, &map[simple - "\"\\/bfnrt"], 1);
            continue;
        }
        if (e != 'u')
            goto bad;
        unsigned cp, lo;
        if (jp_hex4(j, &cp))
            goto bad;
        if (cp >= 0xdc00 && cp <= 0xdfff)
            goto bad;
        if (cp >= 0xd800 && cp <= 0xdbff) {
            if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u')
                goto bad;
            j->p += 2;
            if (jp_hex4(j, &lo) || lo < 0xdc00 || lo > 0xdfff)
                goto bad;
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        }
        jp_put_utf8(&b, cp);
    }
    *out = b.p;
    *outlen = b.len;
    return 0;
bad:
    free(b.p);
    j->err = "bad string";
    return -1;
}

static inline int jp_number(struct jp *j, struct jv *v)
{
    const char *s = j->p;
    if (j->p < j->end && *j->p == '-')
        j->p++;
    if (j->p >= j->end)
        return -1;
    if (*j->p == '0') {
        j->p++;
    } else if (*j->p >= '1' && *j->p <= '9') {
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
            j->p++;
    } else {
        return -1;
    }
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (j->p >= j->end || *j->p < '0' || *j->p > '9')
            return -1;
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
            j->p++;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
            j->p++;
        if (j->p >= j->end || *j->p < '0' || *j->p > '9')
            return -1;
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
            j->p++;
    }
    size_t n = (size_t)(j->p - s);
    if (n >= sizeof(v->raw))
        return -1;
    memcpy(v->raw, s, n);
    v->raw[n] = 0;
    v->num = strtod(v->raw, NULL);
    return 0;
}

static inline int jp_lit(struct jp *j, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0)
        return -1;
    j->p += n;
    return 0;
}

static inline void jv_push(struct jv *v, struct jv *item, char *key)
{
    v->v = realloc(v->v, (v->n + 1) * sizeof(*v->v));
    cr_assert_not_null(v->v);
    if (v->t == J_OBJ) {
        v->k = realloc(v->k, (v->n + 1) * sizeof(*v->k));
        cr_assert_not_null(v->k);
        v->k[v->n] = key;
    }
    v->v[v->n++] = item;
}

static struct jv *jp_value(struct jp *j)
{
    struct jv *v = calloc(1, sizeof(*v));
    cr_assert_not_null(v);
    if (++j->depth > 64) {
        j->err = "too deep";
        goto bad;
    }
    jp_ws(j);
    if (j->p >= j->end) {
        j->err = "unexpected end";
        goto bad;
    }
    switch (*j->p) {
    case 'n':
        v->t = J_NULL;
        if (jp_lit(j, "null"))
            goto bad;
        break;
    case 't':
        v->t = J_BOOL, v->b = 1;
        if (jp_lit(j, "true"))
            goto bad;
        break;
    case 'f':
        v->t = J_BOOL, v->b = 0;
        if (jp_lit(j, "false"))
            goto bad;
        break;
    case '"':
        v->t = J_STR;
        if (jp_string(j, &v->s, &v->slen))
            goto bad;
        break;
    case '[':
        v->t = J_ARR;
        j->p++;
        jp_ws(j);
        if (j->p < j->end && *j->p == ']') {
            j->p++;
            break;
        }
        for (;;) {
            struct jv *item = jp_value(j);
            if (!item)
                goto bad;
            jv_push(v, item, NULL);
            jp_ws(j);
            if (j->p < j->end && *j->p == ',') {
                j->p++;
                continue;
            }
            if (j->p < j->end && *j->p == ']') {
                j->p++;
                break;
            }
            j->err = "expected , or ]";
            goto bad;
        }
        break;
    case '{':
        v->t = J_OBJ;
        j->p++;
        jp_ws(j);
        if (j->p < j->end && *j->p == '}') {
            j->p++;
            break;
        }
        for (;;) {
            char *key;
            size_t klen;
            jp_ws(j);
            if (j->p >= j->end || *j->p != '"' || jp_string(j, &key, &klen)) {
                j->err = "expected a key";
                goto bad;
            }
            for (size_t i = 0; i < v->n; i++)
                if (strcmp(v->k[i], key) == 0) {
                    free(key);
                    j->err = "duplicate key";
                    goto bad;
                }
            jp_ws(j);
            if (j->p >= j->end || *j->p != ':') {
                free(key);
                j->err = "expected :";
                goto bad;
            }
            j->p++;
            struct jv *item = jp_value(j);
            if (!item) {
                free(key);
                goto bad;
            }
            jv_push(v, item, key);
            jp_ws(j);
            if (j->p < j->end && *j->p == ',') {
                j->p++;
                continue;
            }
            if (j->p < j->end && *j->p == '}') {
                j->p++;
                break;
            }
            j->err = "expected , or }";
            goto bad;
        }
        break;
    default:
        v->t = J_NUM;
        if (jp_number(j, v)) {
            j->err = "bad value";
            goto bad;
        }
    }
    j->depth--;
    return v;
bad:
    if (!j->err)
        j->err = "bad literal";
    jv_free(v);
    return NULL;
}

/* Parse exactly one JSON text of len bytes (whitespace around it is
 * allowed); NULL and *err set if it is not valid. */
static inline struct jv *json_parse(const char *text, size_t len,
                                    const char **err)
{
    struct jp j = {text, text + len, 0, NULL};
    struct jv *v = jp_value(&j);
    if (v) {
        jp_ws(&j);
        if (j.p != j.end) {
            j.err = "trailing characters";
            jv_free(v);
            v = NULL;
        }
    }
    if (err)
        *err = j.err;
    return v;
}

/* Parse, asserting validity. */
static inline struct jv *json_must(const char *text, size_t len)
{
    const char *err = NULL;
    struct jv *v = json_parse(text, len, &err);
    cr_assert_not_null(v, "invalid JSON (%s): %.*s", err, (int)len, text);
    return v;
}

static inline struct jv *jv_get(const struct jv *o, const char *key)
{
    cr_assert(o && o->t == J_OBJ, "not an object (looking for \"%s\")", key);
    for (size_t i = 0; i < o->n; i++)
        if (strcmp(o->k[i], key) == 0)
            return o->v[i];
    cr_assert_fail("no key \"%s\"", key);
    return NULL;
}

static inline struct jv *jv_at(const struct jv *a, size_t i)
{
    cr_assert(a && a->t == J_ARR && i < a->n, "no item %zu", i);
    return a->v[i];
}

/* An unsigned integer, exactly (also above 2^53). */
static inline uint64_t jv_u64(const struct jv *v)
{
    cr_assert(v && v->t == J_NUM, "not a number");
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v->raw, &end, 10);
    cr_assert(errno == 0 && *end == 0 && v->raw[0] != '-',
              "not an unsigned integer: %s", v->raw);
    return n;
}

static inline double jv_num(const struct jv *v)
{
    cr_assert(v && v->t == J_NUM, "not a number");
    return v->num;
}

static inline const char *jv_str(const struct jv *v)
{
    cr_assert(v && v->t == J_STR, "not a string");
    return v->s;
}

static inline int jv_is_null(const struct jv *v)
{
    return v && v->t == J_NULL;
}

/* Check that an object has exactly these keys, in this order (stable
 * keys). keys: NULL-terminated. */
static inline void jv_keys(const struct jv *o, const char *const *keys)
{
    size_t n = 0;
    cr_assert(o && o->t == J_OBJ, "not an object");
    for (; keys[n]; n++) {
        cr_assert(n < o->n, "missing key \"%s\"", keys[n]);
        cr_assert_str_eq(o->k[n], keys[n], "key %zu is \"%s\", expected \"%s\"",
                         n, o->k[n], keys[n]);
    }
    cr_assert_eq(o->n, n, "%zu keys, expected %zu", o->n, n);
}

/* ---- OpenMetrics / Prometheus text -------------------------------------- */

static inline int om_name_ok(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 c == '_' || c == ':' || (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return 0;
    }
    return 1;
}

/* A sample value: a float as Go's ParseFloat takes it, or NaN, +Inf, -Inf. */
static inline int om_value_ok(const char *s)
{
    if (!strcmp(s, "NaN") || !strcmp(s, "+Inf") || !strcmp(s, "-Inf"))
        return 1;
    const char *p = s;
    if (*p == '-' || *p == '+')
        p++;
    int digits = 0;
    while (*p >= '0' && *p <= '9')
        p++, digits++;
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9')
            p++, digits++;
    }
    if (!digits)
        return 0;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (*p < '0' || *p > '9')
            return 0;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return *p == 0;
}

/* Parse "{a="x",b="y"}" at *p; the label names go into names (comma
 * separated). 0 or -1. */
static inline int om_labels(const char **p, char *names, size_t cap)
{
    const char *s = *p;
    names[0] = 0;
    if (*s != '{')
        return 0;
    s++;
    if (*s == '}') {
        *p = s + 1;
        return 0;
    }
    for (;;) {
        const char *n = s;
        while (*s && *s != '=')
            s++;
        if (*s != '=' || !om_name_ok(n, (size_t)(s - n)))
            return -1;
        if (names[0])
            strncat(names, ",", cap - strlen(names) - 1);
        strncat(names, n, (size_t)(s - n) < cap - strlen(names) - 1
                              ? (size_t)(s - n)
                              : cap - strlen(names) - 1);
        s++;
        if (*s++ != '"')
            return -1;
        while (*s && *s != '"') {
            if (*s == '\\') {
                s++;
                if (*s != '\\' && *s != '"' && *s != 'n')
                    return -1;
            } else if (*s == '\n') {
                return -1;
            }
            s++;
        }
        if (*s++ != '"')
            return -1;
        if (*s == ',') {
            s++;
            continue;
        }
        if (*s == '}') {
            *p = s + 1;
            return 0;
        }
        return -1;
    }
}

/*
 * Check an exposition: every line is HELP, TYPE, UNIT, a sample or (last,
 * OpenMetrics only) "# EOF"; every family has HELP and TYPE before its
 * samples and its samples are contiguous; a counter's samples are named
 * family + "_total" (OpenMetrics) or carry the family's name (text);
 * every sample has the labels want_labels (e.g. "instance,queue") or
 * "instance" for instance-wide ones. Returns NULL or what is wrong.
 */
static inline const char *om_check(const char *text, int openmetrics,
                                   int *nsamples)
{
    static char why[256];
    char fam[128] = "", type[32] = "", seen[64][128];
    int nseen = 0, has_help = 0, has_type = 0, line = 0, eof = 0;
    const char *p = text;

    *nsamples = 0;
    while (*p) {
        const char *nl = strchr(p, '\n');
        if (!nl) {
            snprintf(why, sizeof(why), "line %d: no newline at the end",
                     line + 1);
            return why;
        }
        char l[1024];
        size_t n = (size_t)(nl - p);
        if (n >= sizeof(l)) {
            snprintf(why, sizeof(why), "line %d: too long", line + 1);
            return why;
        }
        memcpy(l, p, n);
        l[n] = 0;
        p = nl + 1;
        line++;
        if (eof) {
            snprintf(why, sizeof(why), "line %d: after # EOF", line);
            return why;
        }
        if (!strcmp(l, "# EOF")) {
            if (!openmetrics) {
                snprintf(why, sizeof(why), "line %d: # EOF in text format",
                         line);
                return why;
            }
            eof = 1;
            continue;
        }
        if (!strncmp(l, "# HELP ", 7) || !strncmp(l, "# TYPE ", 7) ||
            !strncmp(l, "# UNIT ", 7)) {
            char *name = l + 7, *sp = strchr(name, ' ');
            if (!sp || !om_name_ok(name, (size_t)(sp - name)) || !sp[1]) {
                snprintf(why, sizeof(why), "line %d: bad metadata: %.100s",
                         line, l);
                return why;
            }
            *sp = 0;
            if (strcmp(name, fam) != 0) {
                for (int i = 0; i < nseen; i++)
                    if (!strcmp(seen[i], name)) {
                        snprintf(why, sizeof(why),
                                 "line %d: family %.100s not contiguous", line,
                                 name);
                        return why;
                    }
                if (fam[0] && nseen < 64)
                    snprintf(seen[nseen++], sizeof(seen[0]), "%s", fam);
                snprintf(fam, sizeof(fam), "%.127s", name);
                has_help = has_type = 0;
                type[0] = 0;
            }
            if (l[2] == 'H')
                has_help = 1;
            else if (l[2] == 'T') {
                const char *t = sp + 1;
                if (strcmp(t, "counter") && strcmp(t, "gauge") &&
                    strcmp(t, "untyped") && strcmp(t, "unknown") &&
                    strcmp(t, "histogram") && strcmp(t, "summary") &&
                    strcmp(t, "info") && strcmp(t, "stateset") &&
                    strcmp(t, "gaugehistogram")) {
                    snprintf(why, sizeof(why), "line %d: bad type %.100s", line,
                             t);
                    return why;
                }
                snprintf(type, sizeof(type), "%.31s", t);
                has_type = 1;
            } else {
                size_t fl = strlen(fam), ul = strlen(sp + 1);
                if (!openmetrics || fl <= ul ||
                    strcmp(fam + fl - ul, sp + 1) != 0) {
                    snprintf(why, sizeof(why), "line %d: bad UNIT", line);
                    return why;
                }
            }
            continue;
        }
        if (l[0] == '#' || l[0] == 0) {
            snprintf(why, sizeof(why), "line %d: not a sample: '%.100s'", line,
                     l);
            return why;
        }
        /* A sample: name[{labels}] value */
        const char *s = l;
        while (*s && *s != '{' && *s != ' ')
            s++;
        char name[128];
        snprintf(name, sizeof(name), "%.*s", (int)(s - l), l);
        if (!om_name_ok(name, strlen(name))) {
            snprintf(why, sizeof(why), "line %d: bad metric name", line);
            return why;
        }
        char want[160];
        snprintf(want, sizeof(want), "%s%s", fam,
                 openmetrics && !strcmp(type, "counter") ? "_total" : "");
        if (!fam[0] || strcmp(name, want) != 0) {
            snprintf(why, sizeof(why),
                     "line %d: sample %s outside its family (%s)", line, name,
                     fam);
            return why;
        }
        if (!has_help || !has_type) {
            snprintf(why, sizeof(why), "line %d: %s without HELP and TYPE",
                     line, fam);
            return why;
        }
        char labels[128];
        if (om_labels(&s, labels, sizeof(labels)) < 0) {
            snprintf(why, sizeof(why), "line %d: bad labels", line);
            return why;
        }
        if (strcmp(labels, "instance,queue") && strcmp(labels, "instance")) {
            snprintf(why, sizeof(why), "line %d: labels %s", line, labels);
            return why;
        }
        if (*s != ' ' || !om_value_ok(s + 1)) {
            snprintf(why, sizeof(why), "line %d: bad value", line);
            return why;
        }
        (*nsamples)++;
    }
    if (openmetrics && !eof)
        return "no # EOF at the end";
    return NULL;
}

/* The value of the sample "name{labels}" in an exposition, or -1. */
static inline double om_value(const char *text, const char *sample)
{
    size_t n = strlen(sample);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p)
        if (!strncmp(p, sample, n) && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return -1;
}

#endif
