/* SPDX-License-Identifier: MIT */
/* ctest-timeout: 180 */
/*
 * shmq-stats (tools/stats/), run as a real binary on a private instance:
 * the one-shot table, --json read back, --prometheus checked against the
 * exposition grammar, reading without registering, permissions, and
 * --watch in a pseudo-terminal: it draws, refreshes, and ends cleanly on
 * SIGINT and on a hangup.
 */
#include <criterion/criterion.h>
#include <poll.h>
#include <pty.h>
#include <shmq/admin.h>
#include <shmq/shmq.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "common.h"
#include "tools/tools_test.h"

static char inst[32];
static shmq_admin_t *adm;

static void setup(void)
{
    snprintf(inst, sizeof(inst), "%s", t_instance());
    adm = t_admin(inst);
    t_create(adm, "alpha", 8, 64);
    t_create(adm, "beta", 16, 64);
    shmq_t *q = t_open(inst, "alpha");
    for (int i = 0; i < 3; i++)
        cr_assert_eq(shmq_send(q, "m", 1, 0), 0);
    shmq_close(q);
}

static void teardown(void)
{
    t_instance_destroy(adm);
    adm = NULL;
}

TestSuite(stats, .init = setup, .fini = teardown, .timeout = 60);

static void stats_v(struct tproc *p, const struct topts *o, va_list ap)
{
    const char *argv[32];
    int n = 0;
    argv[n++] = SHMQ_STATS_BIN;
    argv[n++] = "-I";
    argv[n++] = inst;
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && n < 31)
        argv[n++] = a;
    argv[n] = NULL;
    tp_run(p, argv, NULL, 0, o);
}

static void stats_as(struct tproc *p, const struct topts *o, ...)
{
    va_list ap;
    va_start(ap, o);
    stats_v(p, o, ap);
    va_end(ap);
}

#define STATS(p, ...) stats_as(p, NULL, __VA_ARGS__, NULL)
#define STATS_EXPECT(code, ...)                                            \
    do {                                                                   \
        struct tproc p_;                                                   \
        STATS(&p_, __VA_ARGS__);                                           \
        tp_expect(&p_, code, "shmq-stats");                                \
        tp_free(&p_);                                                      \
    } while (0)

/* The whitespace-separated fields of the line of out that starts with
 * name followed by a blank. */
static int table_fields(const char *out, const char *name, char f[20][32])
{
    size_t n = strlen(name);
    for (const char *l = out; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : l) {
        if (strncmp(l, name, n) || l[n] != ' ')
            continue;
        int k = 0;
        const char *p = l;
        while (*p && *p != '\n' && k < 20) {
            while (*p == ' ')
                p++;
            const char *s = p;
            while (*p && *p != ' ' && *p != '\n')
                p++;
            if (p > s)
                snprintf(f[k++], 32, "%.*s", (int)(p - s), s);
        }
        return k;
    }
    return 0;
}

/* ---- one shot ----------------------------------------------------------- */

Test(stats, table)
{
    struct tproc p;
    char f[20][32];
    STATS(&p, "-i", "0");
    tp_expect(&p, XS_OK, "shmq-stats");
    cr_assert_eq(table_fields(p.out.p, "QUEUE", f), 16, "%s", p.out.p);
    static const char *const cols[] = {"QUEUE",   "DEPTH", "CAP",   "OCC%",
                                       "HWM",     "ENQ/s", "DEQ/s", "INFLIGHT",
                                       "REDELIV", "DEAD",  "DLQ",   "SKIP",
                                       "REPAIR",  "PWAIT", "CWAIT", "PROCS"};
    for (int i = 0; i < 16; i++)
        cr_assert_str_eq(f[i], cols[i]);
    cr_assert_eq(table_fields(p.out.p, "alpha", f), 16, "%s", p.out.p);
    cr_assert_str_eq(f[1], "3");
    cr_assert_str_eq(f[2], "8");
    cr_assert_str_eq(f[3], "37.5");
    cr_assert_str_eq(f[5], "-"); /* no rates from one sample */
    cr_assert_eq(table_fields(p.out.p, "beta", f), 16);
    cr_assert_str_eq(f[1], "0");
    cr_assert_str_eq(f[2], "16");
    tp_free(&p);

    /* Named queues only. */
    STATS(&p, "-i", "0", "beta");
    tp_expect(&p, XS_OK, "shmq-stats");
    cr_assert(!strstr(p.out.p, "alpha") && strstr(p.out.p, "beta"), "%s",
              p.out.p);
    tp_free(&p);
}

Test(stats, errors_and_usage)
{
    struct tproc p;
    STATS_EXPECT(XS_NOQUEUE, "-i", "0", "nope");
    STATS_EXPECT(XS_USAGE, "--json", "--prometheus");
    STATS_EXPECT(XS_USAGE, "--watch", "--prometheus");
    STATS_EXPECT(XS_USAGE, "-i", "5x");
    STATS_EXPECT(XS_USAGE, "--watch=1ns");
    STATS_EXPECT(XS_USAGE, "--prometheus=xml");
    STATS_EXPECT(XS_USAGE, "bad/name");
    STATS_EXPECT(XS_USAGE, "--frobnicate");
    const char *const none[] = {SHMQ_STATS_BIN, "-I", "tnonexistent0", NULL};
    tp_run(&p, none, NULL, 0, NULL);
    tp_expect(&p, XS_NOQUEUE, "shmq-stats");
    tp_free(&p);
    STATS(&p, "--help");
    tp_expect(&p, XS_OK, "shmq-stats");
    cr_assert(strstr(p.out.p, "Usage:") && strstr(p.out.p, "--prometheus"));
    tp_free(&p);
    STATS(&p, "--version");
    tp_expect(&p, XS_OK, "shmq-stats");
    cr_assert(strstr(p.out.p, shmq_version_string()), "%s", p.out.p);
    tp_free(&p);
}

static const char *const queue_keys[] = {
    "name",          "readable",          "error",
    "capacity",      "msg_max",           "depth",
    "occupancy_pct", "high_water",        "enqueue_rate",
    "dequeue_rate",  "enqueued",          "dequeued",
    "in_flight",     "retry_pending",     "redelivered",
    "dead_lettered", "dlq_depth",         "dlq_capacity",
    "skipped",       "repaired",          "producers_waiting",
    "consumers_waiting", "processes",     "generation",
    NULL};

static struct jv *queue_named(struct jv *top, const char *name)
{
    struct jv *qs = jv_get(top, "queues");
    for (size_t i = 0; i < qs->n; i++)
        if (!strcmp(jv_str(jv_get(jv_at(qs, i), "name")), name))
            return jv_at(qs, i);
    cr_assert_fail("queue %s not in the output", name);
    return NULL;
}

/* The counters, and the proof that shmq-stats reads without registering:
 * the only registered process it counts is this test's. */
Test(stats, json)
{
    struct tproc p;
    shmq_msg_t m;
    shmq_t *q = t_open(inst, "alpha");
    cr_assert_eq(shmq_lease(q, &m, 0), 0);

    STATS(&p, "--json", "-i", "0");
    tp_expect(&p, XS_OK, "shmq-stats");
    struct jv *j = json_must(p.out.p, p.out.len);
    jv_keys(j, (const char *const[]){"instance", "time_ns", "time",
                                     "interval_ns", "processes", "queues",
                                     NULL});
    cr_assert_str_eq(jv_str(jv_get(j, "instance")), inst);
    cr_assert(jv_is_null(jv_get(j, "interval_ns")));
    cr_assert_eq(jv_u64(jv_get(j, "processes")), 1);
    struct jv *a = queue_named(j, "alpha"), *b = queue_named(j, "beta");
    jv_keys(a, queue_keys);
    jv_keys(b, queue_keys);
    cr_assert(jv_get(a, "readable")->b && jv_is_null(jv_get(a, "error")));
    cr_assert_eq(jv_u64(jv_get(a, "capacity")), 8);
    cr_assert_eq(jv_u64(jv_get(a, "depth")), 2);
    cr_assert_eq(jv_u64(jv_get(a, "in_flight")), 1);
    cr_assert_eq(jv_u64(jv_get(a, "enqueued")), 3);
    /* Sampled by the library: at least the depth, at most the capacity. */
    cr_assert_geq(jv_u64(jv_get(a, "high_water")), 2);
    cr_assert_leq(jv_u64(jv_get(a, "high_water")), 8);
    cr_assert_float_eq(jv_num(jv_get(a, "occupancy_pct")), 25.0, 1e-9);
    cr_assert_eq(jv_u64(jv_get(a, "processes")), 1);
    cr_assert_eq(jv_u64(jv_get(b, "processes")), 0);
    cr_assert(jv_is_null(jv_get(a, "enqueue_rate")));
    jv_free(j);
    tp_free(&p);

    cr_assert_eq(shmq_ack(q, &m), 0);
    shmq_close(q);

    /* Two samples: rates are numbers. */
    STATS(&p, "--json", "-i", "100ms", "alpha");
    tp_expect(&p, XS_OK, "shmq-stats");
    j = json_must(p.out.p, p.out.len);
    cr_assert_eq(jv_u64(jv_get(j, "interval_ns")), 100000000);
    a = queue_named(j, "alpha");
    cr_assert_geq(jv_num(jv_get(a, "enqueue_rate")), 0.0);
    cr_assert_geq(jv_num(jv_get(a, "dequeue_rate")), 0.0);
    cr_assert_eq(jv_u64(jv_get(a, "dequeued")), 1);
    cr_assert_eq(jv_u64(jv_get(a, "processes")), 0);
    cr_assert_eq(jv_u64(jv_get(j, "processes")), 0);
    jv_free(j);
    tp_free(&p);
}

Test(stats, prometheus_openmetrics)
{
    struct tproc p;
    char s[160];
    int n;
    STATS(&p, "--prometheus");
    tp_expect(&p, XS_OK, "shmq-stats");
    const char *why = om_check(p.out.p, 1, &n);
    cr_assert_null(why, "%s\n%s", why, p.out.p);
    cr_assert_eq(n, 1 + 18 * 2, "%d samples", n);
    cr_assert(p.out.len > 6 && !strcmp(p.out.p + p.out.len - 6, "# EOF\n"));
    snprintf(s, sizeof(s), "shmq_queue_depth{instance=\"%s\",queue=\"alpha\"}",
             inst);
    cr_assert_float_eq(om_value(p.out.p, s), 3.0, 1e-9, "%s", p.out.p);
    snprintf(s, sizeof(s),
             "shmq_queue_enqueued_total{instance=\"%s\",queue=\"alpha\"}",
             inst);
    cr_assert_float_eq(om_value(p.out.p, s), 3.0, 1e-9);
    snprintf(s, sizeof(s),
             "shmq_queue_occupancy_ratio{instance=\"%s\",queue=\"alpha\"}",
             inst);
    cr_assert_float_eq(om_value(p.out.p, s), 0.375, 1e-9);
    snprintf(s, sizeof(s),
             "shmq_queue_capacity{instance=\"%s\",queue=\"beta\"}", inst);
    cr_assert_float_eq(om_value(p.out.p, s), 16.0, 1e-9);
    cr_assert(strstr(p.out.p, "# TYPE shmq_queue_enqueued counter\n"));
    cr_assert(strstr(p.out.p, "# TYPE shmq_queue_depth gauge\n"));
    /* The checker itself refuses what is wrong. */
    cr_assert_not_null(om_check("x 1\n# EOF\n", 1, &n));
    cr_assert_not_null(
        om_check("# HELP a b\n# TYPE a gauge\na{instance=\"i\"} 1\n", 1, &n));
    cr_assert_not_null(om_check(
        "# HELP a b\n# TYPE a counter\na{instance=\"i\"} 1\n# EOF\n", 1, &n));
    cr_assert_null(om_check(
        "# HELP a b\n# TYPE a counter\na_total{instance=\"i\"} 1\n# EOF\n", 1,
        &n));
    tp_free(&p);
}

Test(stats, prometheus_text)
{
    struct tproc p;
    char s[160];
    int n;
    STATS(&p, "--prometheus=text", "alpha");
    tp_expect(&p, XS_OK, "shmq-stats");
    const char *why = om_check(p.out.p, 0, &n);
    cr_assert_null(why, "%s\n%s", why, p.out.p);
    cr_assert_eq(n, 1 + 18, "%d samples", n);
    cr_assert(strstr(p.out.p, "# TYPE shmq_queue_enqueued_total counter\n"));
    cr_assert_null(strstr(p.out.p, "# EOF"));
    cr_assert_null(strstr(p.out.p, "beta"));
    snprintf(s, sizeof(s),
             "shmq_queue_enqueued_total{instance=\"%s\",queue=\"alpha\"}",
             inst);
    cr_assert_float_eq(om_value(p.out.p, s), 3.0, 1e-9);
    tp_free(&p);
}

/* A queue nobody may read: listed with its gaps, not an error, unless it
 * was asked for by name. */
Test(stats, permission)
{
    struct shmq_queue_config c;
    struct topts nobody = {.uid = NOBODY_UID, .gid = NOBODY_GID};
    struct tproc p;
    char f[20][32];
    shmq_queue_config_init(&c);
    c.mode = 0600;
    cr_assert_eq(shmq_admin_create(adm, "private", &c), 0);
    c.mode = 0666;
    cr_assert_eq(shmq_admin_create(adm, "public", &c), 0);

    stats_as(&p, &nobody, "-i", "0", NULL);
    tp_expect(&p, XS_OK, "shmq-stats");
    cr_assert_eq(table_fields(p.out.p, "private", f), 16, "%s", p.out.p);
    cr_assert_str_eq(f[1], "-");
    cr_assert_eq(table_fields(p.out.p, "public", f), 16, "%s", p.out.p);
    cr_assert_str_eq(f[2], "1024");
    tp_free(&p);

    stats_as(&p, &nobody, "-i", "0", "--json", NULL);
    tp_expect(&p, XS_OK, "shmq-stats");
    struct jv *j = json_must(p.out.p, p.out.len);
    struct jv *q = queue_named(j, "private");
    jv_keys(q, queue_keys);
    cr_assert(!jv_get(q, "readable")->b);
    cr_assert_str_eq(jv_str(jv_get(q, "error")), "permission denied");
    cr_assert(jv_is_null(jv_get(q, "depth")));
    jv_free(j);
    tp_free(&p);

    stats_as(&p, &nobody, "-i", "0", "private", NULL);
    tp_expect(&p, XS_PERM, "shmq-stats");
    tp_free(&p);

    int n;
    stats_as(&p, &nobody, "--prometheus", NULL);
    tp_expect(&p, XS_OK, "shmq-stats");
    cr_assert_null(om_check(p.out.p, 1, &n));
    cr_assert(strstr(p.out.p, "queue=\"public\"") &&
              !strstr(p.out.p, "queue=\"private\""));
    tp_free(&p);
}

/* ---- --watch ------------------------------------------------------------ */

struct pty_run {
    pid_t pid;
    int master;
    struct tbuf out;
};

static void watch_start(struct pty_run *r, int sighup_ignored,
                        const char *const *extra)
{
    struct winsize ws = {.ws_row = 40, .ws_col = 200};
    const char *argv[16];
    int n = 0;
    argv[n++] = SHMQ_STATS_BIN;
    argv[n++] = "-I";
    argv[n++] = inst;
    argv[n++] = "--watch";
    argv[n++] = "50ms";
    for (int i = 0; extra && extra[i] && n < 15; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    memset(r, 0, sizeof(*r));
    fflush(NULL);
    r->pid = forkpty(&r->master, NULL, NULL, &ws);
    cr_assert_geq(r->pid, 0, "forkpty");
    if (r->pid == 0) {
        setenv("LANG", "C.UTF-8", 1);
        setenv("LC_ALL", "C.UTF-8", 1);
        setenv("TERM", "xterm", 1);
        unsetenv("NO_COLOR");
        if (sighup_ignored)
            signal(SIGHUP, SIG_IGN);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    tbuf_add(&r->out, "", 0);
}

/* Read from the terminal until the output holds want at least times
 * times (bounded); returns whether it did. */
static int watch_until(struct pty_run *r, const char *want, int times,
                       unsigned timeout_ms)
{
    uint64_t end = t_mono_ns() + (uint64_t)timeout_ms * 1000000u;
    char buf[8192];
    for (;;) {
        int c = 0;
        for (const char *s = r->out.p; (s = strstr(s, want)) != NULL;
             s += strlen(want))
            c++;
        if (c >= times)
            return 1;
        uint64_t now = t_mono_ns();
        if (now >= end)
            return 0;
        struct pollfd pf = {.fd = r->master, .events = POLLIN};
        if (poll(&pf, 1, (int)((end - now) / 1000000u) + 1) <= 0)
            continue;
        ssize_t n = read(r->master, buf, sizeof(buf));
        if (n <= 0)
            return 0; /* EIO: the terminal's other side is gone */
        tbuf_add(&r->out, buf, (size_t)n);
    }
}

/* Drain what is left and wait for the exit (bounded). */
static int watch_end(struct pty_run *r)
{
    char buf[8192];
    uint64_t end = t_mono_ns() + 10000000000u;
    if (r->master >= 0) {
        while (t_mono_ns() < end) {
            struct pollfd pf = {.fd = r->master, .events = POLLIN};
            if (poll(&pf, 1, 100) <= 0) {
                if (waitpid(r->pid, NULL, WNOHANG) != 0)
                    break;
                continue;
            }
            ssize_t n = read(r->master, buf, sizeof(buf));
            if (n <= 0)
                break;
            tbuf_add(&r->out, buf, (size_t)n);
        }
        close(r->master);
        r->master = -1;
    }
    return t_wait(r->pid, 10000);
}

Test(stats, watch_draws_refreshes_and_stops_on_sigint)
{
    struct pty_run r;
    watch_start(&r, 0, NULL);
    cr_assert(watch_until(&r, "every 50ms", 2, 10000),
              "no two frames: %s", r.out.p);
    cr_assert(strstr(r.out.p, "alpha") && strstr(r.out.p, "beta"));
    cr_assert(strstr(r.out.p, "\u2588"), "no bar: %s", r.out.p);
    cr_assert(strstr(r.out.p, "\033[?1049h"), "no alternate screen");
    cr_assert(strstr(r.out.p, "37.5"));
    /* A change shows in a later frame. */
    shmq_t *q = t_open(inst, "alpha");
    cr_assert_eq(shmq_send(q, "m", 1, 0), 0);
    shmq_close(q);
    cr_assert(watch_until(&r, "50.0", 1, 10000), "no refresh: %s", r.out.p);
    kill(r.pid, SIGINT);
    int st = watch_end(&r);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
    cr_assert(strstr(r.out.p, "\033[?1049l"), "screen not restored");
    free(r.out.p);
}

Test(stats, watch_ascii)
{
    struct pty_run r;
    watch_start(&r, 0, (const char *const[]){"--ascii", "--no-color", NULL});
    cr_assert(watch_until(&r, "every 50ms", 2, 10000), "%s", r.out.p);
    cr_assert(strstr(r.out.p, "[########............]"), "%s", r.out.p);
    cr_assert_null(strstr(r.out.p, "\033[32m"), "colour with --no-color");
    kill(r.pid, SIGTERM);
    int st = watch_end(&r);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
    free(r.out.p);
}

/* The terminal goes away: SIGHUP ends it cleanly. */
Test(stats, watch_stops_on_hangup)
{
    struct pty_run r;
    watch_start(&r, 0, NULL);
    cr_assert(watch_until(&r, "every 50ms", 2, 10000), "%s", r.out.p);
    close(r.master);
    r.master = -1;
    int st = watch_end(&r);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
    free(r.out.p);
}

/* Under nohup (SIGHUP ignored) the failing write ends it cleanly. */
Test(stats, watch_stops_on_dead_terminal_without_sighup)
{
    struct pty_run r;
    watch_start(&r, 1, NULL);
    cr_assert(watch_until(&r, "every 50ms", 2, 10000), "%s", r.out.p);
    close(r.master);
    r.master = -1;
    int st = watch_end(&r);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
    free(r.out.p);
}

/* --watch --json: a JSON object a line; a reader that goes away ends it
 * cleanly (EPIPE). */
Test(stats, watch_json_lines_and_closed_pipe)
{
    int out[2];
    char buf[65536];
    struct tbuf got = {0};
    cr_assert_eq(pipe2(out, O_CLOEXEC), 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(out[1], STDOUT_FILENO);
        execl(SHMQ_STATS_BIN, SHMQ_STATS_BIN, "-I", inst, "--watch", "50ms",
              "--json", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    tbuf_add(&got, "", 0);
    uint64_t end = t_mono_ns() + 10000000000u;
    int lines = 0;
    while (lines < 3 && t_mono_ns() < end) {
        struct pollfd pf = {.fd = out[0], .events = POLLIN};
        if (poll(&pf, 1, 100) <= 0)
            continue;
        ssize_t n = read(out[0], buf, sizeof(buf));
        if (n <= 0)
            break;
        tbuf_add(&got, buf, (size_t)n);
        lines = 0;
        for (size_t i = 0; i < got.len; i++)
            lines += got.p[i] == '\n';
    }
    cr_assert_geq(lines, 3, "%s", got.p);
    close(out[0]);
    int st = t_wait(pid, 10000);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
    const char *l1 = got.p, *l2 = strchr(l1, '\n') + 1,
               *l3 = strchr(l2, '\n') + 1;
    struct jv *a = json_must(l1, (size_t)(l2 - l1));
    struct jv *b = json_must(l2, (size_t)(l3 - l2));
    cr_assert(jv_is_null(jv_get(a, "interval_ns")));
    cr_assert_eq(jv_u64(jv_get(b, "interval_ns")), 50000000);
    cr_assert_geq(jv_num(jv_get(queue_named(b, "alpha"), "enqueue_rate")), 0.0);
    cr_assert_eq(jv_u64(jv_get(queue_named(b, "alpha"), "depth")), 3);
    jv_free(a);
    jv_free(b);
    free(got.p);
}
