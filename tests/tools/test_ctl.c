/* SPDX-License-Identifier: MIT */
/* ctest-timeout: 300 */
/*
 * shmq-ctl (tools/ctl/), run as a real binary against a real shmqd on a
 * private instance and socket: every verb, every error and its exit code,
 * --json read back, send and recv as pipeline elements, signals.
 */
#include <criterion/criterion.h>
#include <shmq/admin.h>
#include <shmq/ctl.h>
#include <shmq/shmq.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "daemon/shmqd_test.h"
#include "tools/tools_test.h"

static struct tdaemon D;

static void setup(void)
{
    td_init(&D);
    td_start(&D, NULL);
}

static void teardown(void)
{
    td_cleanup(&D);
}

TestSuite(ctl, .init = setup, .fini = teardown, .timeout = 60);

/* Run shmq-ctl -I <instance> ARGS... (NULL-terminated) with input. */
static void ctl_v(struct tproc *p, const char *in, size_t inlen,
                  const struct topts *o, va_list ap)
{
    const char *argv[32];
    int n = 0;
    argv[n++] = SHMQ_CTL_BIN;
    argv[n++] = "-I";
    argv[n++] = D.instance;
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && n < 31)
        argv[n++] = a;
    argv[n] = NULL;
    tp_run(p, argv, in, inlen, o);
}

static void ctl_in(struct tproc *p, const char *in, size_t inlen, ...)
{
    va_list ap;
    va_start(ap, inlen);
    ctl_v(p, in, inlen, NULL, ap);
    va_end(ap);
}

static void ctl_as(struct tproc *p, const struct topts *o, ...)
{
    va_list ap;
    va_start(ap, o);
    ctl_v(p, NULL, 0, o, ap);
    va_end(ap);
}

#define CTL(p, ...) ctl_in(p, NULL, 0, __VA_ARGS__, NULL)
#define CTL_IN(p, in, ...) ctl_in(p, in, strlen(in), __VA_ARGS__, NULL)

/* Run and expect an exit code (one stderr line on failure). */
#define CTL_EXPECT(code, ...)                                              \
    do {                                                                   \
        struct tproc p_;                                                   \
        CTL(&p_, __VA_ARGS__);                                             \
        tp_expect(&p_, code, "shmq-ctl");                                  \
        tp_free(&p_);                                                      \
    } while (0)

static struct shmq_queue_info info_of(const char *name)
{
    struct shmq_admin_opts o;
    struct shmq_queue_info qi;
    shmq_admin_t *a;
    shmq_admin_opts_init(&o);
    o.flags = SHMQ_ADMIN_READONLY;
    cr_assert_eq(shmq_admin_open(D.instance, &o, &a), 0);
    int rc = shmq_admin_info(a, name, &qi);
    shmq_admin_close(a);
    cr_assert_eq(rc, 0, "info %s: %s", name, shmq_strerror(rc));
    return qi;
}

/* ---- help, version, usage ----------------------------------------------- */

Test(ctl, help_and_version)
{
    static const char *const verbs[] = {"create", "delete", "purge", "list",
                                        "info",   "send",   "recv",  "dlq",
                                        "ps"};
    struct tproc p;

    CTL(&p, "--help");
    tp_expect(&p, XS_OK, "shmq-ctl");
    cr_assert(strstr(p.out.p, "Usage:") && strstr(p.out.p, "Exit status"));
    cr_assert_eq(p.err.len, 0);
    tp_free(&p);
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        CTL(&p, verbs[i], "--help");
        tp_expect(&p, XS_OK, "shmq-ctl");
        cr_assert(strstr(p.out.p, verbs[i]), "help of %s: %s", verbs[i],
                  p.out.p);
        tp_free(&p);
    }
    CTL(&p, "--version");
    tp_expect(&p, XS_OK, "shmq-ctl");
    char want[64];
    snprintf(want, sizeof(want), "library %s, shared-memory layout %d.%d",
             shmq_version_string(), SHMQ_LAYOUT_MAJOR, SHMQ_LAYOUT_MINOR);
    cr_assert(strstr(p.out.p, want), "version: %s", p.out.p);
    tp_free(&p);
}

Test(ctl, usage_errors)
{
    struct tproc p;
    const char *const none[] = {SHMQ_CTL_BIN, NULL};

    tp_run(&p, none, NULL, 0, NULL);
    tp_expect(&p, XS_USAGE, "shmq-ctl");
    tp_free(&p);
    CTL_EXPECT(XS_USAGE, "frobnicate");
    CTL_EXPECT(XS_USAGE, "list", "--capacity", "8");  /* not list's option */
    CTL_EXPECT(XS_USAGE, "create", "q", "--json");   /* create prints no data */
    CTL_EXPECT(XS_USAGE, "info");                    /* missing NAME */
    CTL_EXPECT(XS_USAGE, "info", "a", "b");          /* one too many */
    CTL_EXPECT(XS_USAGE, "info", "bad/name");
    CTL_EXPECT(XS_USAGE, "info", "..x");
    CTL_EXPECT(XS_USAGE, "recv", "q", "-n", "-3");
    CTL_EXPECT(XS_USAGE, "recv", "q", "-n", "12x");
    CTL_EXPECT(XS_USAGE, "recv", "q", "-n", "99999999999999999999999");
    CTL_EXPECT(XS_USAGE, "dlq", "q", "explode");
    CTL_EXPECT(XS_USAGE, "--instance", "no.dots", "list");
    CTL_EXPECT(XS_USAGE, "send", "q", "--whole", "message");
}

Test(ctl, bad_size)
{
    CTL_EXPECT(XS_USAGE, "create", "q", "--msg-max", "4Q");
    CTL_EXPECT(XS_USAGE, "create", "q", "--msg-max", "KiB");
    CTL_EXPECT(XS_USAGE, "create", "q", "--msg-max", "-1");
    CTL_EXPECT(XS_USAGE, "create", "q", "--msg-max", "99999999999GiB");
    CTL_EXPECT(XS_USAGE, "create", "q", "--msg-max", "32MiB"); /* > 16 MiB */
    CTL_EXPECT(XS_USAGE, "create", "q", "--capacity", "1000"); /* not 2^k */
    CTL_EXPECT(XS_USAGE, "create", "q", "--mode", "0999");
    CTL_EXPECT(XS_USAGE, "create", "q", "--group", "no-such-group-here");
    CTL_EXPECT(XS_USAGE, "create", "q", "--timestamps", "sometimes");
    /* None of them reached the daemon: nothing was created. */
    struct tproc p;
    CTL(&p, "list", "-q");
    tp_expect(&p, XS_OK, "shmq-ctl");
    cr_assert_eq(p.out.len, 0, "queues: %s", p.out.p);
    tp_free(&p);
}

Test(ctl, bad_duration)
{
    CTL_EXPECT(XS_USAGE, "recv", "q", "--timeout", "5parsecs");
    CTL_EXPECT(XS_USAGE, "recv", "q", "--timeout", "");
    CTL_EXPECT(XS_USAGE, "recv", "q", "--timeout", "1.s");
    CTL_EXPECT(XS_USAGE, "recv", "q", "--timeout", "10s5"); /* unit missing */
    CTL_EXPECT(XS_USAGE, "send", "q", "--timeout", "-1s", "x");
    CTL_EXPECT(XS_USAGE, "create", "q", "--lease-timeout", "99999999999999d");
    CTL_EXPECT(XS_USAGE, "create", "q", "--lease-timeout", "1us"); /* < 1 ms */
}

/* ---- create, info, list, delete, purge ---------------------------------- */

Test(ctl, create_with_options)
{
    struct tproc p;

    CTL(&p, "create", "jobs", "--capacity", "16", "--msg-max", "1KiB",
        "--mode", "0640", "--max-deliveries", "3", "--dlq-capacity", "8",
        "--lease-timeout", "1.5s", "--timestamps", "coarse");
    tp_expect(&p, XS_OK, "shmq-ctl");
    cr_assert(strstr(p.out.p, "jobs"), "%s", p.out.p);
    tp_free(&p);

    /* What the library sees. */
    struct shmq_queue_info qi = info_of("jobs");
    cr_assert_eq(qi.config.capacity, 16);
    cr_assert_eq(qi.config.msg_max, 1024);
    cr_assert_eq(qi.config.mode, 0640);
    cr_assert_eq(qi.config.max_deliveries, 3);
    cr_assert_eq(qi.config.dlq_capacity, 8);
    cr_assert_eq(qi.config.lease_timeout_ns, UINT64_C(1500000000));
    cr_assert_eq(qi.config.timestamps, SHMQ_TS_COARSE);

    /* What info --json says, keys in their stable order. */
    CTL(&p, "info", "jobs", "--json");
    tp_expect(&p, XS_OK, "shmq-ctl");
    struct jv *j = json_must(p.out.p, p.out.len);
    jv_keys(j, (const char *const[]){"name", "readable", "capacity",
                                     "msg_max", "mode", "gid",
                                     "max_deliveries", "dlq_capacity",
                                     "lease_timeout_ns", "timestamps",
                                     "generation", "stats", NULL});
    cr_assert_str_eq(jv_str(jv_get(j, "name")), "jobs");
    cr_assert(jv_get(j, "readable")->b);
    cr_assert_eq(jv_u64(jv_get(j, "capacity")), 16);
    cr_assert_eq(jv_u64(jv_get(j, "msg_max")), 1024);
    cr_assert_str_eq(jv_str(jv_get(j, "mode")), "0640");
    cr_assert_eq(jv_u64(jv_get(j, "max_deliveries")), 3);
    cr_assert_eq(jv_u64(jv_get(j, "dlq_capacity")), 8);
    cr_assert_eq(jv_u64(jv_get(j, "lease_timeout_ns")), 1500000000);
    cr_assert_str_eq(jv_str(jv_get(j, "timestamps")), "coarse");
    cr_assert_eq(jv_u64(jv_get(j, "generation")), qi.stats.generation);
    jv_keys(jv_get(j, "stats"),
            (const char *const[]){"depth", "in_flight", "retry_pending",
                                  "high_water", "enqueued", "dequeued",
                                  "redelivered", "dead_lettered", "dlq_depth",
                                  "skipped", "repaired", "producers_waiting",
                                  "consumers_waiting", NULL});
    jv_free(j);
    tp_free(&p);

    /* The human form. */
    CTL(&p, "info", "jobs");
    tp_expect(&p, XS_OK, "shmq-ctl");
    cr_assert(strstr(p.out.p, "capacity") && strstr(p.out.p, "16 slots") &&
                  strstr(p.out.p, "1s500ms") && strstr(p.out.p, "0640"),
              "%s", p.out.p);
    tp_free(&p);
}

Test(ctl, create_defaults_and_exists)
{
    struct tproc p;
    CTL(&p, "create", "plain", "-q");
    tp_expect(&p, XS_OK, "shmq-ctl");
    cr_assert_eq(p.out.len, 0, "--quiet printed: %s", p.out.p);
    tp_free(&p);
    struct shmq_queue_info qi = info_of("plain");
    cr_assert_eq(qi.config.capacity, 1024);
    cr_assert_eq(qi.config.msg_max, 4096);
    CTL(&p, "create", "plain");
    tp_expect(&p, XS_FAIL, "shmq-ctl");
    cr_assert(strstr(p.err.p, "exists"), "%s", p.err.p);
    tp_free(&p);
}

Test(ctl, list_json_and_names)
{
    struct tproc p;
    td_create(&D, "b-queue", 8, 64);
    td_create(&D, "a-queue", 16, 128);
    CTL_IN(&p, "one\ntwo\n", "send", "a-queue");
    tp_expect(&p, XS_OK, "shmq-ctl");
    tp_free(&p);

    CTL(&p, "list", "--json");
    tp_expect(&p, XS_OK, "shmq-ctl");
    struct jv *j = json_must(p.out.p, p.out.len);
    jv_keys(j, (const char *const[]){"instance", "queues", NULL});
    cr_assert_str_eq(jv_str(jv_get(j, "instance")), D.instance);
    struct jv *qs = jv_get(j, "queues");
    cr_assert_eq(qs->n, 2);
    int seen = 0;
    for (size_t i = 0; i < qs->n; i++) {
        const char *name = jv_str(jv_get(jv_at(qs, i), "name"));
        struct jv *st = jv_get(jv_at(qs, i), "stats");
        if (!strcmp(name, "a-queue")) {
            seen |= 1;
            cr_assert_eq(jv_u64(jv_get(st, "depth")), 2);
            cr_assert_eq(jv_u64(jv_get(jv_at(qs, i), "capacity")), 16);
        } else if (!strcmp(name, "b-queue")) {
            seen |= 2;
            cr_assert_eq(jv_u64(jv_get(st, "depth")), 0);
        }
    }
    cr_assert_eq(seen, 3);
    jv_free(j);
    tp_free(&p);

    CTL(&p, "list", "-q");
    tp_expect(&p, XS_OK, "shmq-ctl");
    cr_assert(strstr(p.out.p, "a-queue\n") && strstr(p.out.p, "b-queue\n"),
              "%s", p.out.p);
    tp_free(&p);
    CTL(&p, "list");
    tp_expect(&p, XS_OK, "shmq-ctl");
    cr_assert(strstr(p.out.p, "NAME") && strstr(p.out.p, "a-queue"), "%s",
              p.out.p);
    tp_free(&p);
}

Test(ctl, delete_and_no_such_queue)
{
    struct tproc p;
    td_create(&D, "doomed", 8, 64);
    CTL(&p, "delete", "doomed");
    tp_expect(&p, XS_OK, "shmq-ctl");
    tp_free(&p);
    CTL_EXPECT(XS_NOQUEUE, "delete", "doomed");
    CTL_EXPECT(XS_NOQUEUE, "info", "doomed");
    CTL_EXPECT(XS_NOQUEUE, "purge", "doomed");
    CTL_EXPECT(XS_NOQUEUE, "send", "doomed", "x");
    CTL_EXPECT(XS_NOQUEUE, "recv", "doomed", "--timeout", "0");
    CTL_EXPECT(XS_NOQUEUE, "dlq", "doomed", "list");
    CTL_EXPECT(XS_NOQUEUE, "dlq", "doomed", "drop");
    /* An instance that does not exist at all. */
    struct tproc q;
    const char *const argv[] = {SHMQ_CTL_BIN, "-I", "tnonexistent0", "list",
                                NULL};
    tp_run(&q, argv, NULL, 0, NULL);
    tp_expect(&q, XS_NOQUEUE, "shmq-ctl");
    tp_free(&q);
}

Test(ctl, purge)
{
    struct tproc p;
    td_create(&D, "full", 8, 64);
    CTL(&p, "send", "full", "1", "2", "3", "4", "5");
    tp_expect(&p, XS_OK, "shmq-ctl");
    tp_free(&p);
    CTL(&p, "purge", "full", "--json");
    tp_expect(&p, XS_OK, "shmq-ctl");
    struct jv *j = json_must(p.out.p, p.out.len);
    jv_keys(j, (const char *const[]){"queue", "purged", NULL});
    cr_assert_eq(jv_u64(jv_get(j, "purged")), 5);
    jv_free(j);
    tp_free(&p);
    cr_assert_eq(info_of("full").stats.depth, 0);
    CTL_EXPECT(XS_TIMEOUT, "recv", "full", "--timeout", "0");
}

/* ---- send, recv --------------------------------------------------------- */

Test(ctl, send_args_stdin_whole)
{
    struct tproc p;
    td_create(&D, "q", 64, 256);
    CTL(&p, "send", "q", "first", "", "third");
    tp_expect(&p, XS_OK, "shmq-ctl");
    tp_free(&p);
    /* Lines, an empty one, and a last line without a newline. */
    CTL_IN(&p, "l1\n\nl3", "send", "q");
    tp_expect(&p, XS_OK, "shmq-ctl");
    tp_free(&p);
    CTL_IN(&p, "w1\nw2\n\n", "send", "q", "--whole");
    tp_expect(&p, XS_OK, "shmq-ctl");
    tp_free(&p);
    cr_assert_eq(info_of("q").stats.depth, 7);

    CTL(&p, "recv", "q", "-n", "6");
    tp_expect(&p, XS_OK, "shmq-ctl");
    cr_assert_str_eq(p.out.p, "first\n\nthird\nl1\n\nl3\n");
    tp_free(&p);
    CTL(&p, "recv", "q", "--json");
    tp_expect(&p, XS_OK, "shmq-ctl");
    struct jv *j = json_must(p.out.p, p.out.len);
    cr_assert_str_eq(jv_str(jv_get(j, "data")), "w1\nw2\n\n");
    cr_assert_eq(jv_u64(jv_get(j, "len")), 7);
    jv_free(j);
    tp_free(&p);
}

Test(ctl, recv_json_fields)
{
    struct tproc p;
    td_create(&D, "q", 16, 64);
    shmq_t *q = t_open(D.instance, "q");
    static const char bin[] = {'\xff', '\0', '\x01'};
    static const char text[] = "h\xc3\xa9llo\t\"q\"\\";
    cr_assert_eq(shmq_send(q, text, strlen(text), 0), 0);
    cr_assert_eq(shmq_send(q, bin, sizeof(bin), 0), 0);
    shmq_close(q);

    CTL(&p, "recv", "q", "-n", "2", "--json");
    tp_expect(&p, XS_OK, "shmq-ctl");
    char *nl = strchr(p.out.p, '\n');
    cr_assert(nl && nl[1] && p.out.p[p.out.len - 1] == '\n',
              "two lines: %s", p.out.p);
    struct jv *a = json_must(p.out.p, (size_t)(nl - p.out.p));
    struct jv *b = json_must(nl + 1, p.out.len - (size_t)(nl + 1 - p.out.p));
    static const char *const keys[] = {"id",  "deliveries", "enqueue_ns",
                                       "enqueue_time", "len", "encoding",
                                       "data", NULL};
    jv_keys(a, keys);
    jv_keys(b, keys);
    cr_assert_str_eq(jv_str(jv_get(a, "encoding")), "utf-8");
    cr_assert_str_eq(jv_str(jv_get(a, "data")), text);
    cr_assert_eq(jv_u64(jv_get(a, "deliveries")), 1);
    cr_assert_gt(jv_u64(jv_get(b, "id")), jv_u64(jv_get(a, "id")));
    cr_assert_gt(jv_u64(jv_get(a, "enqueue_ns")),
                 UINT64_C(1600000000) * 1000000000u);
    cr_assert_eq(strlen(jv_str(jv_get(a, "enqueue_time"))), 27);
    cr_assert_str_eq(jv_str(jv_get(b, "encoding")), "base64");
    cr_assert_str_eq(jv_str(jv_get(b, "data")), "/wAB");
    cr_assert_eq(jv_u64(jv_get(b, "len")), 3);
    jv_free(a);
    jv_free(b);
    tp_free(&p);
}

Test(ctl, recv_timeout_and_empty)
{
    struct tproc p;
    td_create(&D, "q", 8, 64);
    CTL_EXPECT(XS_TIMEOUT, "recv", "q", "--timeout", "0");
    CTL_EXPECT(XS_TIMEOUT, "recv", "q", "--timeout", "50ms");
    CTL(&p, "send", "q", "only");
    tp_expect(&p, XS_OK, "shmq-ctl");
    tp_free(&p);
    /* Fewer than asked for: what came is printed, and the code says so. */
    CTL(&p, "recv", "q", "-n", "3", "--timeout", "50ms");
    tp_expect(&p, XS_TIMEOUT, "shmq-ctl");
    cr_assert_str_eq(p.out.p, "only\n");
    tp_free(&p);
    /* -n 0 takes what there is and ends at the timeout. */
    CTL(&p, "send", "q", "x", "y");
    tp_expect(&p, XS_OK, "shmq-ctl");
    tp_free(&p);
    CTL(&p, "recv", "q", "-n", "0", "--timeout", "0");
    tp_expect(&p, XS_OK, "shmq-ctl");
    cr_assert_str_eq(p.out.p, "x\ny\n");
    tp_free(&p);
}

Test(ctl, send_full_and_too_long)
{
    struct tproc p;
    td_create(&D, "tiny", 2, 16);
    CTL(&p, "send", "tiny", "a", "b", "c", "--timeout", "50ms");
    tp_expect(&p, XS_TIMEOUT, "shmq-ctl");
    cr_assert(strstr(p.err.p, "full"), "%s", p.err.p);
    tp_free(&p);
    cr_assert_eq(info_of("tiny").stats.depth, 2);
    CTL(&p, "purge", "tiny", "-q");
    tp_expect(&p, XS_OK, "shmq-ctl");
    tp_free(&p);
    CTL_IN(&p, "ok\nfine\n12345678901234567\nnever\n", "send", "tiny");
    tp_expect(&p, XS_FAIL, "shmq-ctl");
    cr_assert(strstr(p.err.p, "line 3") && strstr(p.err.p, "17 bytes"), "%s",
              p.err.p);
    tp_free(&p);
    cr_assert_eq(info_of("tiny").stats.depth, 2);
    CTL_IN(&p, "12345678901234567", "send", "tiny", "--whole");
    tp_expect(&p, XS_FAIL, "shmq-ctl");
    tp_free(&p);
}

/* 10,000 lines, empty and long ones among them, through send and recv
 * running side by side on a small queue, arrive byte for byte. */
Test(ctl, pipeline_preserves_every_line, .timeout = 120)
{
    struct tbuf in = {0};
    char line[4200];
    td_create(&D, "pipe", 64, 4096);
    for (int i = 0; i < 10000; i++) {
        size_t n;
        if (i % 97 == 0)
            n = 0;
        else if (i % 501 == 0)
            n = 4000;
        else
            n = (size_t)snprintf(line, sizeof(line), "line %d: \t\"x\" \\ %d",
                                 i, i * 7);
        if (i % 501 == 0 && i % 97 != 0)
            for (size_t k = 0; k < n; k++)
                line[k] = (char)('a' + (i + (int)k) % 26);
        tbuf_add(&in, line, n);
        tbuf_add(&in, "\n", 1);
    }
    const char *const rargv[] = {SHMQ_CTL_BIN, "-I", D.instance, "recv", "pipe",
                                 "-n", "10000", "--timeout", "30s", NULL};
    const char *const sargv[] = {SHMQ_CTL_BIN, "-I", D.instance, "send", "pipe",
                                 NULL};
    struct tproc r, s;
    tp_spawn(&r, rargv, NULL, 0, NULL);
    tp_spawn(&s, sargv, in.p, in.len, NULL);
    struct tproc *ps[2] = {&r, &s};
    tp_pump(ps, 2, 100000);
    tp_expect(&s, XS_OK, "shmq-ctl");
    tp_expect(&r, XS_OK, "shmq-ctl");
    cr_assert_eq(r.out.len, in.len, "%zu bytes out, %zu in", r.out.len, in.len);
    cr_assert(memcmp(r.out.p, in.p, in.len) == 0, "output differs from input");
    tp_free(&r);
    tp_free(&s);
    free(in.p);
}

/* The same as shell pipelines, with --lease on the receiving side. */
Test(ctl, shell_pipeline_with_lease, .timeout = 60)
{
    char cmd[512];
    struct tproc s, r;
    td_create(&D, "jobs", 32, 64);
    snprintf(cmd, sizeof(cmd), "seq 1 3000 | %s -I %s send jobs",
             SHMQ_CTL_BIN, D.instance);
    const char *const sargv[] = {"/bin/sh", "-c", cmd, NULL};
    char cmd2[512];
    snprintf(cmd2, sizeof(cmd2),
             "%s -I %s recv jobs -n 3000 --lease --timeout 30s | sort -n | "
             "uniq | wc -l",
             SHMQ_CTL_BIN, D.instance);
    const char *const rargv[] = {"/bin/sh", "-c", cmd2, NULL};
    tp_spawn(&r, rargv, NULL, 0, NULL);
    tp_spawn(&s, sargv, NULL, 0, NULL);
    struct tproc *ps[2] = {&r, &s};
    tp_pump(ps, 2, 50000);
    cr_assert_eq(tp_code(&s), 0, "%s", s.err.p);
    cr_assert_eq(tp_code(&r), 0, "%s", r.err.p);
    cr_assert_eq(atoi(r.out.p), 3000, "distinct lines: %s", r.out.p);
    tp_free(&r);
    tp_free(&s);
}

/* --lease: a message whose line could not be written is given back, not
 * lost; it comes again with deliveries 2. */
Test(ctl, lease_gives_back_on_write_error)
{
    struct tproc p;
    struct topts o = {.stdout_closed = 1};
    td_create(&D, "q", 8, 64);
    CTL(&p, "send", "q", "precious");
    tp_expect(&p, XS_OK, "shmq-ctl");
    tp_free(&p);
    ctl_as(&p, &o, "recv", "q", "--lease", NULL);
    tp_expect(&p, XS_FAIL, "shmq-ctl");
    cr_assert(strstr(p.err.p, "Broken pipe"), "%s", p.err.p);
    tp_free(&p);
    cr_assert_eq(info_of("q").stats.depth, 1);
    CTL(&p, "recv", "q", "--json");
    tp_expect(&p, XS_OK, "shmq-ctl");
    struct jv *j = json_must(p.out.p, p.out.len);
    cr_assert_str_eq(jv_str(jv_get(j, "data")), "precious");
    cr_assert_eq(jv_u64(jv_get(j, "deliveries")), 2);
    jv_free(j);
    tp_free(&p);
}

/* Ctrl-C ends a recv that waits, by the signal, at once. */
Test(ctl, sigint_ends_a_waiting_recv)
{
    struct tproc r;
    struct shmq_stats st;
    td_create(&D, "idle", 8, 64);
    const char *const argv[] = {SHMQ_CTL_BIN, "-I", D.instance, "recv", "idle",
                                NULL};
    tp_spawn(&r, argv, NULL, 0, NULL);
    int asleep = 0;
    for (int i = 0; i < 10000 && !asleep; i++) {
        memset(&st, 0, sizeof(st));
        st.size = sizeof(st);
        if (shmq_stats_by_name(D.instance, "idle", &st) == 0 &&
            st.consumers_waiting > 0)
            asleep = 1;
        else
            tt_sleep_ms(1);
    }
    cr_assert(asleep, "recv never waited");
    kill(r.pid, SIGINT);
    struct tproc *ps[1] = {&r};
    tp_pump(ps, 1, 10000);
    cr_assert_eq(tp_code(&r), 128 + SIGINT, "status %#x: %s", r.status,
                 r.err.p);
    tp_free(&r);
}

/* ---- dlq, ps ------------------------------------------------------------ */

Test(ctl, dlq_list_requeue_drop)
{
    struct tproc p;
    CTL(&p, "create", "dq", "--capacity", "8", "--max-deliveries", "1",
        "--dlq-capacity", "8", "-q");
    tp_expect(&p, XS_OK, "shmq-ctl");
    tp_free(&p);
    CTL(&p, "send", "dq", "m1", "m2", "m3");
    tp_expect(&p, XS_OK, "shmq-ctl");
    tp_free(&p);
    /* Refuse each message until it is dead-lettered. */
    shmq_t *q = t_open(D.instance, "dq");
    shmq_msg_t m;
    for (int i = 0; i < 100 && shmq_lease(q, &m, 0) == 0; i++)
        cr_assert_eq(shmq_nack(q, &m), 0);
    shmq_close(q);
    cr_assert_eq(info_of("dq").stats.dlq_depth, 3);

    CTL(&p, "dlq", "dq", "list", "--json");
    tp_expect(&p, XS_OK, "shmq-ctl");
    struct jv *j = json_must(p.out.p, p.out.len);
    jv_keys(j, (const char *const[]){"queue", "dead_letters", NULL});
    struct jv *dl = jv_get(j, "dead_letters");
    cr_assert_eq(dl->n, 3);
    for (size_t i = 0; i < 3; i++) {
        char want[8];
        snprintf(want, sizeof(want), "m%zu", i + 1);
        jv_keys(jv_at(dl, i),
                (const char *const[]){"id", "deliveries", "enqueue_ns",
                                      "enqueue_time", "len", "truncated",
                                      "encoding", "data", NULL});
        cr_assert_str_eq(jv_str(jv_get(jv_at(dl, i), "data")), want);
        cr_assert_geq(jv_u64(jv_get(jv_at(dl, i), "deliveries")), 1);
    }
    jv_free(j);
    tp_free(&p);
    CTL(&p, "dlq", "dq", "list");
    tp_expect(&p, XS_OK, "shmq-ctl");
    cr_assert(strstr(p.out.p, "m2") && strstr(p.out.p, "DELIVERIES"), "%s",
              p.out.p);
    tp_free(&p);

    CTL(&p, "dlq", "dq", "requeue", "-n", "1", "--json");
    tp_expect(&p, XS_OK, "shmq-ctl");
    j = json_must(p.out.p, p.out.len);
    jv_keys(j, (const char *const[]){"queue", "requeued", NULL});
    cr_assert_eq(jv_u64(jv_get(j, "requeued")), 1);
    jv_free(j);
    tp_free(&p);
    CTL(&p, "recv", "dq", "--json", "--timeout", "5s");
    tp_expect(&p, XS_OK, "shmq-ctl");
    j = json_must(p.out.p, p.out.len);
    cr_assert_str_eq(jv_str(jv_get(j, "data")), "m1");
    cr_assert_eq(jv_u64(jv_get(j, "deliveries")), 1);
    jv_free(j);
    tp_free(&p);

    CTL(&p, "dlq", "dq", "drop");
    tp_expect(&p, XS_OK, "shmq-ctl");
    cr_assert(strstr(p.out.p, "dropped 2"), "%s", p.out.p);
    tp_free(&p);
    CTL(&p, "dlq", "dq", "list", "--json");
    tp_expect(&p, XS_OK, "shmq-ctl");
    j = json_must(p.out.p, p.out.len);
    cr_assert_eq(jv_get(j, "dead_letters")->n, 0);
    jv_free(j);
    tp_free(&p);
}

Test(ctl, ps_shows_processes_queues_leases)
{
    int ready[2], go[2];
    struct tproc p;
    td_create(&D, "jobs", 8, 64);
    td_create(&D, "other", 8, 64);
    CTL(&p, "send", "jobs", "work");
    tp_expect(&p, XS_OK, "shmq-ctl");
    tp_free(&p);
    cr_assert_eq(pipe(ready), 0);
    cr_assert_eq(pipe(go), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        struct shmq_open_opts o;
        shmq_t *q;
        shmq_msg_t m;
        char b;
        shmq_open_opts_init(&o);
        o.instance = D.instance;
        if (shmq_open("jobs", &o, &q) || shmq_lease(q, &m, 0))
            _exit(3);
        td_signal(ready[1]);
        if (read(go[0], &b, 1) < 0)
            _exit(4);
        _exit(shmq_ack(q, &m) == 0 ? 0 : 5);
    }
    cr_assert(td_await(ready[0], 10000), "child did not lease");
    cr_assert(td_watched(&D, pid, 10000), "daemon does not watch the child");

    CTL(&p, "ps", "--json");
    tp_expect(&p, XS_OK, "shmq-ctl");
    struct jv *j = json_must(p.out.p, p.out.len);
    jv_keys(j, (const char *const[]){"instance", "processes", NULL});
    struct jv *ps = jv_get(j, "processes"), *me = NULL;
    for (size_t i = 0; i < ps->n; i++)
        if ((pid_t)jv_num(jv_get(jv_at(ps, i), "pid")) == pid)
            me = jv_at(ps, i);
    cr_assert_not_null(me, "pid %d not listed: %s", (int)pid, p.out.p);
    jv_keys(me, (const char *const[]){"pid", "uid", "token", "state", "alive",
                                      "watched", "leases", "start_ns",
                                      "start_time", "nqueues", "queues", NULL});
    cr_assert_eq(jv_u64(jv_get(me, "leases")), 1);
    cr_assert(jv_get(me, "watched")->b && jv_get(me, "alive")->b);
    cr_assert_str_eq(jv_str(jv_get(me, "state")), "alive");
    struct jv *qs = jv_get(me, "queues");
    cr_assert_eq(qs->n, 1);
    cr_assert_str_eq(jv_str(jv_at(qs, 0)), "jobs");
    jv_free(j);
    tp_free(&p);

    CTL(&p, "ps");
    tp_expect(&p, XS_OK, "shmq-ctl");
    char pidstr[16];
    snprintf(pidstr, sizeof(pidstr), " %d ", (int)pid);
    cr_assert(strstr(p.out.p, pidstr) && strstr(p.out.p, "jobs"), "%s",
              p.out.p);
    tp_free(&p);

    cr_assert_eq(write(go[1], "x", 1), 1);
    int st = t_wait(pid, 10000);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
    close(ready[0]), close(ready[1]), close(go[0]), close(go[1]);
}

/* ---- the daemon down, permissions --------------------------------------- */

Test(ctl, daemon_down)
{
    struct tproc p;
    td_create(&D, "q", 8, 64);
    td_stop(&D);
    CTL_EXPECT(XS_DAEMON, "create", "new");
    CTL_EXPECT(XS_DAEMON, "delete", "q");
    CTL_EXPECT(XS_DAEMON, "purge", "q");
    CTL_EXPECT(XS_DAEMON, "dlq", "q", "list");
    CTL_EXPECT(XS_DAEMON, "dlq", "q", "requeue");
    CTL_EXPECT(XS_DAEMON, "ps");
    CTL(&p, "ps");
    cr_assert(strstr(p.err.p, "shmqd"), "%s", p.err.p);
    tp_free(&p);
    /* Clients keep working without it. */
    CTL(&p, "send", "q", "still", "here");
    tp_expect(&p, XS_OK, "shmq-ctl");
    tp_free(&p);
    CTL(&p, "recv", "q", "-n", "2");
    tp_expect(&p, XS_OK, "shmq-ctl");
    cr_assert_str_eq(p.out.p, "still\nhere\n");
    tp_free(&p);
    CTL(&p, "list", "-q");
    tp_expect(&p, XS_OK, "shmq-ctl");
    cr_assert_str_eq(p.out.p, "q\n");
    tp_free(&p);
    CTL_EXPECT(XS_OK, "info", "q");
}

Test(ctl, wrong_socket_is_daemon_unreachable)
{
    CTL_EXPECT(XS_DAEMON, "--socket", "/tmp/shmq-no-such-daemon.sock", "ps");
    CTL_EXPECT(XS_DAEMON, "--socket", "/tmp/shmq-no-such-daemon.sock", "create",
               "x");
}

static const struct topts as_nobody = {.uid = NOBODY_UID, .gid = NOBODY_GID};

#define CTL_NOBODY(code, ...)                                              \
    do {                                                                   \
        struct tproc p_;                                                   \
        ctl_as(&p_, &as_nobody, __VA_ARGS__, NULL);                        \
        tp_expect(&p_, code, "shmq-ctl");                                  \
        tp_free(&p_);                                                      \
    } while (0)

/* The daemon's registry and socket are 0660 root: nobody gets nowhere. */
Test(ctl, permission_denied_instance)
{
    td_create(&D, "secret", 8, 64);
    CTL_NOBODY(XS_PERM, "send", "secret", "x");
    CTL_NOBODY(XS_PERM, "recv", "secret", "--timeout", "0");
    CTL_NOBODY(XS_PERM, "info", "secret");
    CTL_NOBODY(XS_PERM, "list");
    CTL_NOBODY(XS_PERM, "create", "mine");
    CTL_NOBODY(XS_PERM, "ps");
}

/* A registry anyone may read, a queue of mode 0660: nobody may look at
 * the instance but not into the queue, and may not manage queues. */
Test(ctl, permission_denied_queue)
{
    td_stop(&D);
    td_start(&D, (const char *const[]){"--mode", "0666", NULL});
    td_create(&D, "secret", 8, 64);
    CTL_NOBODY(XS_PERM, "send", "secret", "x");
    CTL_NOBODY(XS_PERM, "recv", "secret", "--timeout", "0");
    CTL_NOBODY(XS_PERM, "info", "secret");
    CTL_NOBODY(XS_PERM, "create", "mine");
    CTL_NOBODY(XS_PERM, "delete", "secret");
    CTL_NOBODY(XS_PERM, "purge", "secret");
    struct tproc p;
    ctl_as(&p, &as_nobody, "list", "-q", NULL);
    tp_expect(&p, XS_OK, "shmq-ctl");
    cr_assert_str_eq(p.out.p, "secret\n");
    tp_free(&p);
    cr_assert_eq(info_of("secret").stats.depth, 0);
}

/* The JSON parser the tests read output with refuses what is not JSON, so
 * that "parsed back" means something. */
Test(ctl, json_checker_refuses_invalid)
{
    static const char *const bad[] = {
        "{\"a\":1,}",       "{\"a\":1,\"a\":2}", "[1 2]",       "01",
        "\"\x01\"",         "\"\\x41\"",         "\"\\ud800\"", "\"\xff\"",
        "{\"a\":1} x",      "nul",               "1.",          "-",
        "{\"a\" 1}",        "[",                 "",            "'a'",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *err = NULL;
        struct jv *v = json_parse(bad[i], strlen(bad[i]), &err);
        cr_assert_null(v, "accepted: %s", bad[i]);
        cr_assert_not_null(err);
    }
    const char ok[] = " {\"a\":[1,-2.5e3,true,null,\"\\u00e9\\ud83d\\ude00\"]} ";
    struct jv *v = json_must(ok, strlen(ok));
    struct jv *a = jv_get(v, "a");
    cr_assert_eq(a->n, 5);
    cr_assert_float_eq(jv_num(jv_at(a, 1)), -2500.0, 1e-9);
    cr_assert_str_eq(jv_str(jv_at(a, 4)), "\xc3\xa9\xf0\x9f\x98\x80");
    jv_free(v);
}
