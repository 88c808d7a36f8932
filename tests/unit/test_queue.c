/* SPDX-License-Identifier: MIT */
/* ctest-timeout: 120 */
/*
 * The queue API of shmq.h (libshmq/src/queue.c), single process, through
 * the public headers only: every call and every documented error.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <shmq/admin.h>
#include <shmq/shmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"

TestSuite(queue, .init = t_setup, .fini = t_teardown, .timeout = 30);

/* ---- helpers ------------------------------------------------------------ */

/* A queue without a lease timeout. */
static void mkq(const char *name, uint32_t cap, uint32_t msg_max,
                uint32_t max_deliveries, uint32_t dlq_capacity)
{
    t_mkq(name, cap, msg_max, max_deliveries, dlq_capacity, 0);
}

static shmq_t *open_ring(const char *name, uint32_t ring)
{
    struct shmq_open_opts o;
    shmq_t *q = NULL;
    shmq_open_opts_init(&o);
    o.instance = t_inst;
    o.ring = ring;
    int rc = shmq_open(name, &o, &q);
    cr_assert_eq(rc, 0, "open %s ring %u: %s", name, ring, shmq_strerror(rc));
    cr_assert_not_null(q);
    return q;
}

/* Open with these options (instance filled in unless set). */
static int open_opts(const char *name, struct shmq_open_opts *o, shmq_t **q)
{
    if (!o->instance)
        o->instance = t_inst;
    return shmq_open(name, o, q);
}

static void recv_str(shmq_t *q, const char *want)
{
    char buf[256];
    ssize_t n = shmq_recv(q, buf, sizeof(buf), 0);
    cr_assert_eq(n, (ssize_t)strlen(want), "recv: got %zd (%s), want \"%s\"",
                 n, n < 0 ? shmq_strerror((int)n) : "length", want);
    cr_assert_eq(memcmp(buf, want, (size_t)n), 0, "recv: wrong payload");
}

/* This file's seed of t_rnd. */
static uint64_t rnd_state = 0x9e3779b97f4a7c15u;

#define SENTINEL ((shmq_t *)(uintptr_t)0x5a5a5a5au)

/* ---- open --------------------------------------------------------------- */

Test(queue, open_bad_names)
{
    char longname[80];
    memset(longname, 'n', 64);
    longname[64] = 0;
    const char *bad[] = {"", longname, "a/b", "/a", "a/", "..", "a..b",
                         ".a", ".", "sp ace", "caf\xc3\xa9"};
    mkq("good", 4, 16, 0, 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct shmq_open_opts o;
        shmq_t *q = SENTINEL;
        shmq_open_opts_init(&o);
        cr_expect_eq(open_opts(bad[i], &o, &q), -EINVAL, "name \"%s\"",
                     bad[i]);
        cr_expect_eq(q, SENTINEL, "out-parameter touched for \"%s\"", bad[i]);
    }
    /* 63 characters is fine (and absent here). */
    longname[63] = 0;
    struct shmq_open_opts o;
    shmq_t *q = SENTINEL;
    shmq_open_opts_init(&o);
    cr_assert_eq(open_opts(longname, &o, &q), -ENOENT);
    cr_assert_eq(q, SENTINEL);
}

Test(queue, open_null_args)
{
    struct shmq_open_opts o;
    shmq_t *q = SENTINEL;
    mkq("q", 4, 16, 0, 0);
    shmq_open_opts_init(&o);
    o.instance = t_inst;
    cr_assert_eq(shmq_open("q", &o, NULL), -EINVAL);
    cr_assert_eq(shmq_open(NULL, &o, &q), -EINVAL);
    cr_assert_eq(q, SENTINEL);
    cr_assert_eq(shmq_open(NULL, NULL, NULL), -EINVAL);
    /* opts_init and close accept NULL. */
    shmq_open_opts_init(NULL);
    shmq_close(NULL);
    /* And the queue is still there to open. */
    cr_assert_eq(shmq_open("q", &o, &q), 0);
    shmq_close(q);
}

Test(queue, open_bad_instance)
{
    char longinst[40];
    memset(longinst, 'i', 32);
    longinst[32] = 0;
    const char *bad[] = {"", "a.b", "x/y", "/x", "..", ".x", longinst,
                         "sp ace"};
    mkq("q", 4, 16, 0, 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct shmq_open_opts o;
        shmq_t *q = SENTINEL;
        shmq_open_opts_init(&o);
        o.instance = bad[i];
        cr_expect_eq(shmq_open("q", &o, &q), -EINVAL, "instance \"%s\"",
                     bad[i]);
        cr_expect_eq(q, SENTINEL);
    }
}

Test(queue, open_missing)
{
    struct shmq_open_opts o;
    shmq_t *q = SENTINEL;
    char missing_inst[32];

    mkq("present", 4, 16, 0, 0);
    shmq_open_opts_init(&o);
    cr_assert_eq(open_opts("absent", &o, &q), -ENOENT);
    cr_assert_eq(q, SENTINEL);

    /* An instance nobody created. */
    snprintf(missing_inst, sizeof(missing_inst), "%s", t_instance());
    shmq_open_opts_init(&o);
    o.instance = missing_inst;
    cr_assert_eq(shmq_open("present", &o, &q), -ENOENT);
    cr_assert_eq(q, SENTINEL);

    /* A deleted queue is missing too. */
    cr_assert_eq(shmq_admin_delete(t_adm, "present"), 0);
    shmq_open_opts_init(&o);
    cr_assert_eq(open_opts("present", &o, &q), -ENOENT);
}

Test(queue, open_bad_opts)
{
    struct shmq_open_opts o;
    shmq_t *q = SENTINEL;
    mkq("q", 4, 16, 0, 0);

    uint32_t bad_sizes[] = {0, 1, 8,
                            (uint32_t)offsetof(struct shmq_open_opts,
                                               reserved) - 1,
                            (uint32_t)sizeof(o) + 8, UINT32_MAX};
    for (size_t i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++) {
        shmq_open_opts_init(&o);
        o.size = bad_sizes[i];
        cr_expect_eq(open_opts("q", &o, &q), -EINVAL, "size %u",
                     bad_sizes[i]);
    }
    uint32_t bad_rings[] = {2, 3, 0x80000000u, UINT32_MAX};
    for (size_t i = 0; i < sizeof(bad_rings) / sizeof(bad_rings[0]); i++) {
        shmq_open_opts_init(&o);
        o.ring = bad_rings[i];
        cr_expect_eq(open_opts("q", &o, &q), -EINVAL, "ring %u",
                     bad_rings[i]);
    }
    int64_t bad_spins[] = {-1, INT64_MIN, 10000001, INT64_MAX};
    for (size_t i = 0; i < sizeof(bad_spins) / sizeof(bad_spins[0]); i++) {
        shmq_open_opts_init(&o);
        o.spin_ns = bad_spins[i];
        cr_expect_eq(open_opts("q", &o, &q), -EINVAL, "spin_ns %lld",
                     (long long)bad_spins[i]);
    }
    cr_assert_eq(q, SENTINEL);

    /* The edges that are allowed. */
    int64_t good_spins[] = {0, 1, 20000, 10000000};
    for (size_t i = 0; i < sizeof(good_spins) / sizeof(good_spins[0]); i++) {
        shmq_open_opts_init(&o);
        o.spin_ns = good_spins[i];
        q = NULL;
        cr_expect_eq(open_opts("q", &o, &q), 0, "spin_ns %lld",
                     (long long)good_spins[i]);
        shmq_close(q);
    }
    /* A caller built against an options struct without the reserved
     * tail. */
    shmq_open_opts_init(&o);
    o.size = (uint32_t)offsetof(struct shmq_open_opts, reserved);
    q = NULL;
    cr_assert_eq(open_opts("q", &o, &q), 0);
    shmq_close(q);
}

Test(queue, open_defaults)
{
    struct shmq_open_opts o;
    memset(&o, 0xff, sizeof(o));
    shmq_open_opts_init(&o);
    cr_assert_eq(o.size, sizeof(o));
    cr_assert_eq(o.ring, SHMQ_RING_MAIN);
    cr_assert_null(o.instance);
    cr_assert_eq(o.spin_ns, 20000);
    for (size_t i = 0; i < sizeof(o.reserved) / sizeof(o.reserved[0]); i++)
        cr_assert_eq(o.reserved[i], 0);
}

Test(queue, open_dlq_ring)
{
    struct shmq_open_opts o;
    shmq_t *q = SENTINEL;
    mkq("nodlq", 4, 16, 0, 0);
    mkq("withdlq", 4, 16, 3, 8);

    shmq_open_opts_init(&o);
    o.ring = SHMQ_RING_DLQ;
    cr_assert_eq(open_opts("nodlq", &o, &q), -ENOENT);
    cr_assert_eq(q, SENTINEL);

    shmq_t *d = open_ring("withdlq", SHMQ_RING_DLQ);
    cr_assert_str_eq(shmq_name(d), "withdlq");
    cr_assert_eq(shmq_msg_max(d), 16);
    /* The dead-letter ring starts empty and is a ring of its own. */
    char buf[16];
    cr_assert_eq(shmq_recv(d, buf, sizeof(buf), 0), -EAGAIN);
    shmq_t *m = open_ring("withdlq", SHMQ_RING_MAIN);
    t_send_str(m, "main");
    cr_assert_eq(shmq_recv(d, buf, sizeof(buf), 0), -EAGAIN);
    recv_str(m, "main");
    shmq_close(m);
    shmq_close(d);
}

Test(queue, name_msg_max_token)
{
    mkq("orders.v2", 4, 100, 0, 0);
    shmq_t *q = t_open(t_inst, "orders.v2");
    shmq_t *q2 = t_open(t_inst, "orders.v2");
    cr_assert_str_eq(shmq_name(q), "orders.v2");
    cr_assert_eq(shmq_msg_max(q), 100);
    cr_assert_null(shmq_name(NULL));
    cr_assert_eq(shmq_msg_max(NULL), 0);

    uint32_t t1 = 0, t2 = 0;
    cr_assert_eq(shmq_token(q, &t1), 0);
    cr_assert_eq(shmq_token(q2, &t2), 0);
    cr_assert_neq(t1, 0);
    cr_assert_eq(t1, t2, "one process, one token per instance");
    cr_assert_eq(shmq_token(q, NULL), -EINVAL);
    cr_assert_eq(shmq_token(NULL, &t1), -EINVAL);

    struct shmq_proc_info pi[4];
    cr_assert_eq(shmq_admin_procs(t_adm, pi, 4), 1);
    cr_assert_eq(pi[0].token, t1);
    shmq_close(q2);
    shmq_close(q);
    cr_assert_eq(t_procs_count(), 0, "the last close unregisters");
}

/* ---- send / recv -------------------------------------------------------- */

Test(queue, send_recv_round_trip)
{
    mkq("q", 8, 1000, 0, 0);
    shmq_t *q = t_open(t_inst, "q");
    uint8_t out[1000], in[1200];
    size_t sizes[] = {0, 1, 7, 64, 999, 1000};

    for (size_t i = 0; i < sizeof(out); i++)
        out[i] = (uint8_t)(i * 31 + 7);
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        out[0] = (uint8_t)k;
        cr_assert_eq(shmq_send(q, out, sizes[k], 0), 0, "size %zu",
                     sizes[k]);
        memset(in, 0xee, sizeof(in));
        ssize_t n = shmq_recv(q, in, sizeof(in), 0);
        cr_assert_eq(n, (ssize_t)sizes[k], "size %zu: got %zd", sizes[k], n);
        cr_assert_eq(memcmp(in, out, sizes[k]), 0);
        cr_assert_eq(in[sizes[k]], 0xee, "wrote past the message");
    }
    /* Empty messages: NULL is fine when there is nothing to copy. */
    cr_assert_eq(shmq_send(q, NULL, 0, 0), 0);
    cr_assert_eq(shmq_send(q, "", 0, 0), 0);
    cr_assert_eq(shmq_recv(q, NULL, 0, 0), 0);
    cr_assert_eq(shmq_recv(q, in, sizeof(in), 0), 0);
    cr_assert_eq(shmq_recv(q, in, sizeof(in), 0), -EAGAIN);
    /* An empty message via lease. */
    cr_assert_eq(shmq_send(q, NULL, 0, 0), 0);
    shmq_msg_t m;
    cr_assert_eq(shmq_lease(q, &m, 0), 0);
    cr_assert_eq(m.len, 0);
    cr_assert_eq(m.deliveries, 1);
    cr_assert_eq(shmq_ack(q, &m), 0);
    shmq_close(q);
}

Test(queue, send_recv_bad_args)
{
    mkq("q", 4, 16, 0, 0);
    shmq_t *q = t_open(t_inst, "q");
    char buf[16];
    cr_assert_eq(shmq_send(NULL, "x", 1, 0), -EINVAL);
    cr_assert_eq(shmq_send(q, NULL, 1, 0), -EINVAL);
    cr_assert_eq(shmq_recv(NULL, buf, sizeof(buf), 0), -EINVAL);
    t_send_str(q, "x");
    cr_assert_eq(shmq_recv(q, NULL, 16, 0), -EINVAL);
    recv_str(q, "x");
    shmq_close(q);
}

Test(queue, send_too_long)
{
    mkq("q", 4, 32, 0, 0);
    shmq_t *q = t_open(t_inst, "q");
    char big[64] = {0};
    cr_assert_eq(shmq_send(q, big, 33, 0), -EMSGSIZE);
    cr_assert_eq(shmq_send(q, big, 64, SHMQ_FOREVER), -EMSGSIZE);
    cr_assert_eq(shmq_send(q, big, SIZE_MAX, 0), -EMSGSIZE);
    struct shmq_stats st = t_stats(q);
    cr_assert_eq(st.depth, 0, "a refused message must not be queued");
    cr_assert_eq(st.enqueued, 0);
    cr_assert_eq(shmq_send(q, big, 32, 0), 0);
    cr_assert_eq(shmq_recv(q, big, sizeof(big), 0), 32);
    shmq_close(q);
}

Test(queue, recv_small_buffer_keeps_message)
{
    mkq("q", 4, 200, 0, 0);
    shmq_t *q = t_open(t_inst, "q");
    char msg[100], buf[200];
    for (size_t i = 0; i < sizeof(msg); i++)
        msg[i] = (char)('a' + i % 26);
    cr_assert_eq(shmq_send(q, msg, sizeof(msg), 0), 0);
    t_send_str(q, "second");

    cr_assert_eq(shmq_recv(q, buf, 99, 0), -EMSGSIZE);
    /* With a timeout too: the message is there, it is just too long. */
    cr_assert_eq(shmq_recv(q, buf, 10, 1000000000), -EMSGSIZE);
    cr_assert_eq(shmq_recv(q, NULL, 0, 0), -EMSGSIZE);
    struct shmq_stats st = t_stats(q);
    cr_assert_eq(st.depth, 2);
    cr_assert_eq(st.dequeued, 0);
    cr_assert_eq(st.in_flight, 0);

    /* Not lost, and still first. */
    cr_assert_eq(shmq_recv(q, buf, 100, 0), 100);
    cr_assert_eq(memcmp(buf, msg, 100), 0);
    recv_str(q, "second");
    shmq_close(q);
}

Test(queue, full_and_empty_eagain)
{
    mkq("q", 4, 16, 0, 0);
    shmq_t *q = t_open(t_inst, "q");
    char buf[16];
    shmq_msg_t m;
    shmq_resv_t r;
    struct iovec iov = {buf, sizeof(buf)};
    size_t len;

    cr_assert_eq(shmq_recv(q, buf, sizeof(buf), 0), -EAGAIN);
    cr_assert_eq(shmq_lease(q, &m, 0), -EAGAIN);
    cr_assert_eq(shmq_lease_batch(q, &m, 1, 0), -EAGAIN);
    cr_assert_eq(shmq_recv_batch(q, &iov, &len, 1, 0), -EAGAIN);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(shmq_send(q, "abc", 3, 0), 0);
    cr_assert_eq(shmq_send(q, "abc", 3, 0), -EAGAIN);
    cr_assert_eq(shmq_reserve(q, &r, 0), -EAGAIN);
    struct iovec one = {"abc", 3};
    cr_assert_eq(shmq_send_batch(q, &one, 1, 0), -EAGAIN);
    struct shmq_stats st = t_stats(q);
    cr_assert_eq(st.depth, 4);
    cr_assert_eq(st.enqueued, 4);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(shmq_recv(q, buf, sizeof(buf), 0), 3);
    cr_assert_eq(shmq_recv(q, buf, sizeof(buf), 0), -EAGAIN);
    shmq_close(q);
}

/* Each blocking call with a small timeout returns -ETIMEDOUT, and not
 * before the timeout has passed. */
static void check_timeouts(shmq_t *q, int64_t tmo)
{
    char buf[16];
    shmq_msg_t m[2];
    shmq_resv_t r;
    struct iovec iov[2] = {{buf, sizeof(buf)}, {buf, sizeof(buf)}};
    size_t lens[2];
    uint64_t t0;
    int64_t rc;

#define TIMED(call)                                                        \
    do {                                                                   \
        t0 = t_mono_ns();                                                    \
        rc = (call);                                                       \
        uint64_t el = t_mono_ns() - t0;                                      \
        cr_assert_eq(rc, -ETIMEDOUT, "%s: %lld", #call, (long long)rc);    \
        cr_assert_geq(el, (uint64_t)tmo, "%s returned after %llu ns",      \
                      #call, (unsigned long long)el);                      \
    } while (0)

    /* Empty. */
    TIMED(shmq_recv(q, buf, sizeof(buf), tmo));
    TIMED(shmq_lease(q, &m[0], tmo));
    TIMED(shmq_lease_batch(q, m, 2, tmo));
    TIMED(shmq_recv_batch(q, iov, lens, 2, tmo));
    /* Full. */
    while (shmq_send(q, "x", 1, 0) == 0)
        ;
    TIMED(shmq_send(q, "x", 1, tmo));
    TIMED(shmq_reserve(q, &r, tmo));
    struct iovec one = {"x", 1};
    TIMED(shmq_send_batch(q, &one, 1, tmo));
#undef TIMED
}

Test(queue, timeouts)
{
    mkq("q", 2, 16, 0, 0);
    shmq_t *q = t_open(t_inst, "q");
    check_timeouts(q, 20 * 1000 * 1000);
    shmq_close(q);
}

Test(queue, timeouts_without_spin)
{
    struct shmq_open_opts o;
    shmq_t *q = NULL;
    mkq("q", 2, 16, 0, 0);
    shmq_open_opts_init(&o);
    o.spin_ns = 0;
    cr_assert_eq(open_opts("q", &o, &q), 0);
    check_timeouts(q, 15 * 1000 * 1000);
    /* A timeout shorter than the default spin. */
    shmq_close(q);
    q = t_open(t_inst, "q");
    char buf[4];
    while (shmq_recv(q, buf, sizeof(buf), 0) >= 0)
        ;
    uint64_t t0 = t_mono_ns();
    cr_assert_eq(shmq_recv(q, buf, sizeof(buf), 1000), -ETIMEDOUT);
    cr_assert_geq(t_mono_ns() - t0, 1000);
    shmq_close(q);
}

Test(queue, fifo_single_producer)
{
    mkq("q", 8, 16, 0, 0);
    shmq_t *q = t_open(t_inst, "q");
    uint32_t next_send = 0, next_recv = 0;
    uint64_t last_id = 0;
    int have_id = 0;

    /* Many laps round the ring, with the fill level varying. */
    for (int round = 0; round < 300; round++) {
        int k = round % 9; /* 0 .. 8 messages, 8 fills it */
        for (int i = 0; i < k; i++) {
            cr_assert_eq(shmq_send(q, &next_send, sizeof(next_send), 0), 0);
            next_send++;
        }
        for (int i = 0; i < k; i++) {
            uint32_t v = UINT32_MAX;
            if ((round + i) % 2) {
                cr_assert_eq(shmq_recv(q, &v, sizeof(v), 0), sizeof(v));
            } else {
                shmq_msg_t m;
                cr_assert_eq(shmq_lease(q, &m, 0), 0);
                cr_assert_eq(m.len, sizeof(v));
                cr_assert_eq(m.deliveries, 1);
                if (have_id)
                    cr_assert_gt(m.id, last_id, "ids grow in send order");
                last_id = m.id;
                have_id = 1;
                memcpy(&v, m.data, sizeof(v));
                cr_assert_eq(shmq_ack(q, &m), 0);
            }
            cr_assert_eq(v, next_recv, "round %d: got %u, want %u", round,
                         v, next_recv);
            next_recv++;
        }
        cr_assert_eq(shmq_recv(q, &last_id, 0, 0), -EAGAIN);
    }
    cr_assert_eq(next_recv, next_send);
    struct shmq_stats st = t_stats(q);
    cr_assert_eq(st.enqueued, next_send);
    cr_assert_eq(st.dequeued, next_send);
    shmq_close(q);
}

/* ---- blocking and waking ------------------------------------------------ */

struct waiter {
    shmq_t *q;
    int op; /* 0: recv, 1: send */
    ssize_t rc;
    char buf[32];
};

static void *waiter_main(void *arg)
{
    struct waiter *w = arg;
    if (w->op == 0)
        w->rc = shmq_recv(w->q, w->buf, sizeof(w->buf), SHMQ_FOREVER);
    else
        w->rc = shmq_send(w->q, "late", 4, SHMQ_FOREVER);
    return NULL;
}

/* Poll (bounded) until someone sleeps in the queue. */
static void wait_sleeper(shmq_t *q, int consumers)
{
    for (int i = 0; i < 5000; i++) {
        struct shmq_stats st = t_stats(q);
        if ((consumers ? st.consumers_waiting : st.producers_waiting) > 0)
            return;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    cr_assert_fail("no %s went to sleep within 5 s",
                   consumers ? "consumer" : "producer");
}

static void join_within(pthread_t t, int seconds)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += seconds;
    int rc = pthread_timedjoin_np(t, NULL, &ts);
    cr_assert_eq(rc, 0, "waiter did not return within %d s", seconds);
}

Test(queue, blocked_consumer_woken_by_send)
{
    mkq("q", 2, 32, 0, 0);
    shmq_t *q = t_open(t_inst, "q");
    struct waiter w = {.q = q, .op = 0, .rc = -1};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, waiter_main, &w), 0);
    wait_sleeper(q, 1);
    t_send_str(q, "wake up");
    join_within(t, 5);
    cr_assert_eq(w.rc, 7);
    cr_assert_eq(memcmp(w.buf, "wake up", 7), 0);
    shmq_close(q);
}

Test(queue, blocked_producer_woken_by_recv)
{
    mkq("q", 2, 32, 0, 0);
    shmq_t *q = t_open(t_inst, "q");
    t_send_str(q, "one");
    t_send_str(q, "two");
    struct waiter w = {.q = q, .op = 1, .rc = -1};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, waiter_main, &w), 0);
    wait_sleeper(q, 0);
    recv_str(q, "one");
    join_within(t, 5);
    cr_assert_eq(w.rc, 0);
    recv_str(q, "two");
    recv_str(q, "late");
    shmq_close(q);
}

/* ---- leases ------------------------------------------------------------- */

Test(queue, lease_ack_nack)
{
    mkq("q", 4, 32, 0, 0); /* no delivery limit */
    shmq_t *q = t_open(t_inst, "q");
    shmq_msg_t m, m2;
    t_send_str(q, "payload");
    t_send_str(q, "next");

    cr_assert_eq(shmq_lease(q, &m, 0), 0);
    cr_assert_eq(m.len, 7);
    cr_assert_eq(memcmp(m.data, "payload", 7), 0);
    cr_assert_eq(m.deliveries, 1);
    cr_assert_neq(m.enqueue_ns, 0);
    uint64_t id = m.id;

    /* Give it back over and over: same id, count grows, and it comes
     * before the newer message. */
    for (uint32_t d = 2; d <= 10; d++) {
        cr_assert_eq(shmq_nack(q, &m), 0);
        cr_assert_eq(shmq_lease(q, &m, 0), 0);
        cr_assert_eq(m.id, id);
        cr_assert_eq(m.deliveries, d);
        cr_assert_eq(m.len, 7);
        cr_assert_eq(memcmp(m.data, "payload", 7), 0);
    }
    cr_assert_eq(shmq_lease(q, &m2, 0), 0);
    cr_assert_eq(m2.len, 4);
    cr_assert_neq(m2.id, id);
    cr_assert_eq(m2.deliveries, 1);
    cr_assert_eq(shmq_ack(q, &m2), 0);
    cr_assert_eq(shmq_ack(q, &m), 0);
    cr_assert_eq(shmq_lease(q, &m, 0), -EAGAIN);

    struct shmq_stats st = t_stats(q);
    cr_assert_eq(st.redelivered, 9);
    cr_assert_eq(st.dequeued, 2);
    cr_assert_eq(st.depth, 0);
    cr_assert_eq(st.in_flight, 0);
    cr_assert_eq(st.dead_lettered, 0);
    shmq_close(q);
}

Test(queue, lease_stale)
{
    mkq("q", 4, 32, 0, 0);
    shmq_t *q = t_open(t_inst, "q");
    shmq_msg_t m, old;
    t_send_str(q, "a");

    /* ack twice */
    cr_assert_eq(shmq_lease(q, &m, 0), 0);
    cr_assert_eq(shmq_ack(q, &m), 0);
    cr_assert_eq(shmq_ack(q, &m), -ESTALE);
    /* nack after ack */
    cr_assert_eq(shmq_nack(q, &m), -ESTALE);

    /* nack twice; ack after nack */
    t_send_str(q, "b");
    cr_assert_eq(shmq_lease(q, &m, 0), 0);
    cr_assert_eq(shmq_nack(q, &m), 0);
    cr_assert_eq(shmq_nack(q, &m), -ESTALE);
    cr_assert_eq(shmq_ack(q, &m), -ESTALE);

    /* The old lease of a redelivered message stays stale even though the
     * same process holds the new one. */
    old = m;
    cr_assert_eq(shmq_lease(q, &m, 0), 0);
    cr_assert_eq(m.id, old.id);
    cr_assert_eq(shmq_ack(q, &old), -ESTALE);
    cr_assert_eq(shmq_nack(q, &old), -ESTALE);
    cr_assert_eq(shmq_ack(q, &m), 0);

    /* A lease from a later lap at the same slot is not the old one. */
    for (int i = 0; i < 8; i++) {
        t_send_str(q, "c");
        recv_str(q, "c");
    }
    cr_assert_eq(shmq_ack(q, &m), -ESTALE);

    struct shmq_stats st = t_stats(q);
    cr_assert_eq(st.depth, 0);
    cr_assert_eq(st.in_flight, 0);
    cr_assert_eq(st.dequeued, 10);
    shmq_close(q);
}

/* Bytes from one slot to the next (layout.h: a 32-byte header and the
 * payload, rounded up to a cache line). */
static size_t q_stride(shmq_t *q)
{
    return (32 + shmq_msg_max(q) + 63) / 64 * 64;
}

Test(queue, lease_of_other_queue_is_refused)
{
    mkq("q1", 4, 32, 0, 0);
    mkq("q2", 4, 32, 0, 0);
    shmq_t *q1 = t_open(t_inst, "q1");
    shmq_t *q2 = t_open(t_inst, "q2");
    shmq_msg_t m, m2;
    t_send_str(q1, "one");
    t_send_str(q2, "two");
    cr_assert_eq(shmq_lease(q1, &m, 0), 0);
    /* q2's slot at the same index holds a READY message, not this
     * lease. */
    cr_assert_eq(shmq_ack(q2, &m), -EINVAL);
    cr_assert_eq(shmq_nack(q2, &m), -EINVAL);
    /* Now q2's slot holds our lease too, with the same slot word (same
     * index, lap, deliveries and owner): still not q2's message. */
    cr_assert_eq(shmq_lease(q2, &m2, 0), 0);
    cr_assert_eq(m2.priv[0], m.priv[0]);
    cr_assert_eq(m2.priv[1], m.priv[1], "the words differ: the test no "
                                        "longer shows the hazard");
    cr_assert_eq(shmq_ack(q2, &m), -EINVAL);
    cr_assert_eq(shmq_nack(q1, &m2), -EINVAL);
    struct shmq_stats s1 = t_stats(q1), s2 = t_stats(q2);
    cr_assert_eq(s1.in_flight, 1);
    cr_assert_eq(s2.in_flight, 1);
    cr_assert_str_eq((const char *)m2.data, "two");
    cr_assert_eq(shmq_ack(q2, &m2), 0);
    cr_assert_eq(shmq_ack(q1, &m), 0);
    /* A second handle of the same queue refuses it as well. */
    shmq_t *q1b = t_open(t_inst, "q1");
    t_send_str(q1, "three");
    cr_assert_eq(shmq_lease(q1, &m, 0), 0);
    cr_assert_eq(shmq_ack(q1b, &m), -EINVAL);
    cr_assert_eq(shmq_ack(q1, &m), 0);
    shmq_close(q1b);
    shmq_close(q2);
    shmq_close(q1);
}

Test(queue, garbage_msg)
{
    mkq("q", 8, 32, 0, 0);
    shmq_t *q = t_open(t_inst, "q");
    shmq_msg_t m, g;
    t_send_str(q, "held");
    t_send_str(q, "waiting");
    cr_assert_eq(shmq_lease(q, &m, 0), 0);

    cr_assert_eq(shmq_ack(q, NULL), -EINVAL);
    cr_assert_eq(shmq_nack(q, NULL), -EINVAL);
    cr_assert_eq(shmq_ack(NULL, &m), -EINVAL);
    cr_assert_eq(shmq_nack(NULL, &m), -EINVAL);

    memset(&g, 0, sizeof(g));
    int rc = shmq_ack(q, &g);
    cr_assert(rc == -EINVAL || rc == -ESTALE, "zeroed msg: %d", rc);
    rc = shmq_nack(q, &g);
    cr_assert(rc == -EINVAL || rc == -ESTALE, "zeroed msg: %d", rc);
    memset(&g, 0xff, sizeof(g));
    cr_assert(shmq_ack(q, &g) == -EINVAL || shmq_ack(q, &g) == -ESTALE);

    /* The held message with its private fields bent. */
    g = m;
    g.priv[0] ^= 1;
    cr_assert_eq(shmq_ack(q, &g), -EINVAL, "another slot");
    g = m;
    g.priv[1] ^= 1;
    cr_assert_eq(shmq_ack(q, &g), -ESTALE, "another owner");
    g = m;
    g.priv[1] += UINT64_C(1) << 24;
    cr_assert_eq(shmq_ack(q, &g), -ESTALE, "another lap");
    g = m;
    g.priv[0] += 8;
    rc = shmq_ack(q, &g);
    cr_assert(rc == -EINVAL || rc == -ESTALE, "index past capacity: %d", rc);

    rnd_state = 0x1234567u;
    for (int i = 0; i < 5000; i++) {
        uint64_t *w = (uint64_t *)&g;
        for (size_t k = 0; k < sizeof(g) / sizeof(uint64_t); k++)
            w[k] = t_rnd(&rnd_state);
        if (i % 2)
            g.priv[0] %= 8; /* an index in range, a random word */
        rc = (i % 3) ? shmq_ack(q, &g) : shmq_nack(q, &g);
        cr_assert(rc == -EINVAL || rc == -ESTALE, "iteration %d: %d", i, rc);
    }

    /* Nothing was disturbed: the lease still holds, the queue works. */
    cr_assert_eq(shmq_ack(q, &m), 0);
    recv_str(q, "waiting");
    struct shmq_stats st = t_stats(q);
    cr_assert_eq(st.depth, 0);
    cr_assert_eq(st.in_flight, 0);
    cr_assert_eq(st.dequeued, 2);
    cr_assert_eq(st.redelivered, 0);
    shmq_close(q);
}

/* ---- reserve / commit / abort ------------------------------------------- */

Test(queue, reserve_commit)
{
    mkq("q", 4, 48, 0, 0);
    shmq_t *q = t_open(t_inst, "q");
    shmq_resv_t r;
    cr_assert_eq(shmq_reserve(q, NULL, 0), -EINVAL);
    cr_assert_eq(shmq_reserve(NULL, &r, 0), -EINVAL);
    cr_assert_eq(shmq_reserve(q, &r, 0), 0);
    cr_assert_not_null(r.data);
    cr_assert_eq(r.cap, 48);
    memset(r.data, 'z', r.cap); /* the whole capacity is writable */
    memcpy(r.data, "zero-copy", 9);
    cr_assert_eq(shmq_commit(q, &r, 9), 0);
    recv_str(q, "zero-copy");
    /* Full-size and empty commits. */
    cr_assert_eq(shmq_reserve(q, &r, 0), 0);
    memset(r.data, 'y', 48);
    cr_assert_eq(shmq_commit(q, &r, 48), 0);
    cr_assert_eq(shmq_reserve(q, &r, 0), 0);
    cr_assert_eq(shmq_commit(q, &r, 0), 0);
    char buf[64];
    cr_assert_eq(shmq_recv(q, buf, sizeof(buf), 0), 48);
    cr_assert_eq(buf[47], 'y');
    cr_assert_eq(shmq_recv(q, buf, sizeof(buf), 0), 0);
    cr_assert_eq(shmq_commit(q, NULL, 1), -EINVAL);
    cr_assert_eq(shmq_abort(q, NULL), -EINVAL);
    shmq_close(q);
}

Test(queue, reserve_abort_is_skipped)
{
    mkq("q", 4, 32, 0, 0);
    shmq_t *q = t_open(t_inst, "q");
    shmq_resv_t r;
    t_send_str(q, "before");
    cr_assert_eq(shmq_reserve(q, &r, 0), 0);
    t_send_str(q, "after");
    recv_str(q, "before");
    /* An open reservation holds back what follows it. */
    char buf[32];
    cr_assert_eq(shmq_recv(q, buf, sizeof(buf), 0), -EAGAIN);
    cr_assert_eq(shmq_abort(q, &r), 0);
    recv_str(q, "after");
    cr_assert_eq(shmq_recv(q, buf, sizeof(buf), 0), -EAGAIN);
    struct shmq_stats st = t_stats(q);
    cr_assert_eq(st.skipped, 1);
    cr_assert_eq(st.enqueued, 2);
    cr_assert_eq(st.dequeued, 2);
    cr_assert_eq(st.depth, 0);
    /* The skipped slot is usable again: fill the ring. */
    for (int i = 0; i < 4; i++)
        t_send_str(q, "fill");
    cr_assert_eq(shmq_send(q, "x", 1, 0), -EAGAIN);
    for (int i = 0; i < 4; i++)
        recv_str(q, "fill");
    shmq_close(q);
}

Test(queue, commit_too_long)
{
    mkq("q", 4, 32, 0, 0);
    shmq_t *q = t_open(t_inst, "q");
    shmq_resv_t r;
    cr_assert_eq(shmq_reserve(q, &r, 0), 0);
    memcpy(r.data, "fits", 4);
    cr_assert_eq(shmq_commit(q, &r, 33), -EMSGSIZE);
    cr_assert_eq(shmq_commit(q, &r, SIZE_MAX), -EMSGSIZE);
    char buf[64];
    cr_assert_eq(shmq_recv(q, buf, sizeof(buf), 0), -EAGAIN);
    /* The reservation is still ours. */
    cr_assert_eq(shmq_commit(q, &r, 4), 0);
    recv_str(q, "fits");
    shmq_close(q);
}

Test(queue, commit_abort_stale)
{
    mkq("q", 4, 32, 0, 0);
    shmq_t *q = t_open(t_inst, "q");
    shmq_resv_t r, r2;

    cr_assert_eq(shmq_reserve(q, &r, 0), 0);
    memcpy(r.data, "hello", 5);
    cr_assert_eq(shmq_commit(q, &r, 5), 0);
    /* A second commit (or abort) of the same reservation is refused and
     * leaves the published message as it was. */
    cr_assert_eq(shmq_commit(q, &r, 30), -ESTALE);
    cr_assert_eq(shmq_abort(q, &r), -ESTALE);
    recv_str(q, "hello");

    cr_assert_eq(shmq_reserve(q, &r, 0), 0);
    cr_assert_eq(shmq_abort(q, &r), 0);
    cr_assert_eq(shmq_abort(q, &r), -ESTALE);
    cr_assert_eq(shmq_commit(q, &r, 1), -ESTALE);

    /* A reservation pointed at another slot (that holds a published
     * message) must not touch it. */
    t_send_str(q, "keep");
    cr_assert_eq(shmq_reserve(q, &r, 0), 0);
    r2 = r;
    r2.priv[0] -= 1;
    cr_assert_eq(shmq_commit(q, &r2, 20), -EINVAL);
    cr_assert_eq(shmq_abort(q, &r2), -EINVAL);
    r2.data = (char *)r.data - q_stride(q);
    cr_assert_eq(shmq_commit(q, &r2, 20), -ESTALE);
    cr_assert_eq(shmq_abort(q, &r2), -ESTALE);
    memcpy(r.data, "mine", 4);
    cr_assert_eq(shmq_commit(q, &r, 4), 0);
    recv_str(q, "keep");
    recv_str(q, "mine");
    shmq_close(q);
}

Test(queue, garbage_resv)
{
    mkq("q", 8, 32, 0, 0);
    shmq_t *q = t_open(t_inst, "q");
    shmq_resv_t r, g;
    t_send_str(q, "first");
    cr_assert_eq(shmq_reserve(q, &r, 0), 0);

    memset(&g, 0, sizeof(g));
    cr_assert_eq(shmq_commit(q, &g, 1), -EINVAL);
    cr_assert_eq(shmq_abort(q, &g), -EINVAL);
    /* The right slot's address, a word that is not ours. */
    g = r;
    g.priv[1] ^= 1;
    cr_assert_eq(shmq_commit(q, &g, 1), -ESTALE);
    cr_assert_eq(shmq_abort(q, &g), -ESTALE);
    rnd_state = 0xabcdefu;
    for (int i = 0; i < 5000; i++) {
        uint64_t *w = (uint64_t *)&g;
        for (size_t k = 0; k < sizeof(g) / sizeof(uint64_t); k++)
            w[k] = t_rnd(&rnd_state);
        int rc = (i % 2) ? shmq_commit(q, &g, (size_t)(t_rnd(&rnd_state) % 40))
                         : shmq_abort(q, &g);
        cr_assert(rc == -EINVAL || rc == -ESTALE || rc == -EMSGSIZE,
                  "iteration %d: %d", i, rc);
    }
    memcpy(r.data, "second", 6);
    cr_assert_eq(shmq_commit(q, &r, 6), 0);
    recv_str(q, "first");
    recv_str(q, "second");
    char buf[32];
    cr_assert_eq(shmq_recv(q, buf, sizeof(buf), 0), -EAGAIN);
    shmq_close(q);
}

/* ---- batches ------------------------------------------------------------ */

Test(queue, batch_send_recv)
{
    mkq("q", 4, 16, 0, 0);
    shmq_t *q = t_open(t_inst, "q");
    const char *words[6] = {"a", "bb", "ccc", "dddd", "eeeee", ""};
    struct iovec out[6];
    for (int i = 0; i < 6; i++)
        out[i] = (struct iovec){(void *)words[i], strlen(words[i])};

    /* Room for 4 of 6: a partial batch. */
    cr_assert_eq(shmq_send_batch(q, out, 6, 0), 4);
    cr_assert_eq(shmq_send_batch(q, out + 4, 2, 0), -EAGAIN);

    char bufs[8][16];
    struct iovec in[8];
    size_t lens[8];
    for (int i = 0; i < 8; i++)
        in[i] = (struct iovec){bufs[i], sizeof(bufs[i])};
    /* 4 waiting, 8 asked: a partial batch. */
    cr_assert_eq(shmq_recv_batch(q, in, lens, 8, 0), 4);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(lens[i], strlen(words[i]));
        cr_assert_eq(memcmp(bufs[i], words[i], lens[i]), 0);
    }
    cr_assert_eq(shmq_recv_batch(q, in, lens, 8, 0), -EAGAIN);

    cr_assert_eq(shmq_send_batch(q, out + 4, 2, 0), 2);
    cr_assert_eq(shmq_recv_batch(q, in, lens, 1, 0), 1);
    cr_assert_eq(lens[0], 5);
    cr_assert_eq(shmq_recv_batch(q, in, lens, 1, 0), 1);
    cr_assert_eq(lens[0], 0);

    struct shmq_stats st = t_stats(q);
    cr_assert_eq(st.enqueued, 6);
    cr_assert_eq(st.dequeued, 6);
    cr_assert_eq(st.depth, 0);
    shmq_close(q);
}

Test(queue, batch_emsgsize)
{
    mkq("q", 8, 16, 0, 0);
    shmq_t *q = t_open(t_inst, "q");
    char big[17] = "0123456789abcdef";
    struct iovec out[4] = {
        {"one", 3}, {"two", 3}, {big, 17}, {"four", 4},
    };
    /* A message that is too long ends the batch before it. */
    cr_assert_eq(shmq_send_batch(q, out, 4, 0), 2);
    cr_assert_eq(shmq_send_batch(q, out + 2, 2, 0), -EMSGSIZE);
    cr_assert_eq(shmq_send_batch(q, out + 3, 1, 0), 1);
    cr_assert_eq(t_stats(q).depth, 3);

    /* A buffer too small ends the receive batch; the message stays. */
    char b0[16], b1[16], b2[2];
    struct iovec in[3] = {{b0, 16}, {b1, 16}, {b2, 2}};
    size_t lens[3];
    cr_assert_eq(shmq_recv_batch(q, in, lens, 3, 0), 2);
    cr_assert_eq(lens[0], 3);
    cr_assert_eq(lens[1], 3);
    cr_assert_eq(memcmp(b1, "two", 3), 0);
    cr_assert_eq(shmq_recv_batch(q, in + 2, lens, 1, 0), -EMSGSIZE);
    cr_assert_eq(shmq_recv_batch(q, in + 2, lens, 1, 1000000), -EMSGSIZE);
    recv_str(q, "four");

    /* A NULL buffer with room is an error; an empty one is not. */
    t_send_str(q, "");
    struct iovec bad[1] = {{NULL, 4}};
    cr_assert_eq(shmq_recv_batch(q, bad, lens, 1, 0), -EINVAL);
    struct iovec empty[1] = {{NULL, 0}};
    cr_assert_eq(shmq_recv_batch(q, empty, lens, 1, 0), 1);
    cr_assert_eq(lens[0], 0);
    struct iovec nullmsg[2] = {{"ok", 2}, {NULL, 3}};
    cr_assert_eq(shmq_send_batch(q, nullmsg, 2, 0), 1);
    cr_assert_eq(shmq_send_batch(q, nullmsg + 1, 1, 0), -EINVAL);
    recv_str(q, "ok");
    shmq_close(q);
}

Test(queue, batch_bad_args)
{
    mkq("q", 4, 16, 0, 0);
    shmq_t *q = t_open(t_inst, "q");
    struct iovec iov = {"x", 1};
    size_t len;
    shmq_msg_t m;
    cr_assert_eq(shmq_send_batch(q, &iov, 0, 0), -EINVAL);
    cr_assert_eq(shmq_send_batch(q, NULL, 1, 0), -EINVAL);
    cr_assert_eq(shmq_send_batch(NULL, &iov, 1, 0), -EINVAL);
    cr_assert_eq(shmq_send_batch(q, &iov, (size_t)INT32_MAX + 1, 0),
                 -EINVAL);
    cr_assert_eq(shmq_recv_batch(q, &iov, &len, 0, 0), -EINVAL);
    cr_assert_eq(shmq_recv_batch(q, NULL, &len, 1, 0), -EINVAL);
    cr_assert_eq(shmq_recv_batch(q, &iov, NULL, 1, 0), -EINVAL);
    cr_assert_eq(shmq_recv_batch(NULL, &iov, &len, 1, 0), -EINVAL);
    cr_assert_eq(shmq_lease_batch(q, &m, 0, 0), -EINVAL);
    cr_assert_eq(shmq_lease_batch(q, NULL, 1, 0), -EINVAL);
    cr_assert_eq(shmq_lease_batch(NULL, &m, 1, 0), -EINVAL);
    cr_assert_eq(shmq_ack_batch(q, NULL, 1), -EINVAL);
    cr_assert_eq(shmq_ack_batch(NULL, &m, 1), -EINVAL);
    cr_assert_eq(shmq_ack_batch(q, &m, 0), 0);
    cr_assert_eq(t_stats(q).enqueued, 0);
    shmq_close(q);
}

Test(queue, lease_batch_ack_batch)
{
    mkq("q", 8, 16, 0, 0);
    shmq_t *q = t_open(t_inst, "q");
    shmq_msg_t m[8];
    for (uint32_t i = 0; i < 5; i++)
        cr_assert_eq(shmq_send(q, &i, sizeof(i), 0), 0);

    /* 5 waiting, 8 asked. */
    cr_assert_eq(shmq_lease_batch(q, m, 8, 0), 5);
    for (uint32_t i = 0; i < 5; i++) {
        uint32_t v;
        cr_assert_eq(m[i].len, sizeof(v));
        memcpy(&v, m[i].data, sizeof(v));
        cr_assert_eq(v, i, "batch order");
        cr_assert_eq(m[i].deliveries, 1);
        if (i)
            cr_assert_gt(m[i].id, m[i - 1].id);
    }
    cr_assert_eq(shmq_lease_batch(q, m + 5, 3, 0), -EAGAIN);
    struct shmq_stats st = t_stats(q);
    cr_assert_eq(st.in_flight, 5);
    cr_assert_eq(st.depth, 0);

    /* One acked alone and one given back: the batch ack counts the
     * three still held. */
    cr_assert_eq(shmq_ack(q, &m[1]), 0);
    cr_assert_eq(shmq_nack(q, &m[3]), 0);
    cr_assert_eq(shmq_ack_batch(q, m, 5), 3);
    cr_assert_eq(shmq_ack_batch(q, m, 5), 0, "all stale now");

    /* The nacked one comes back first, then the new ones in order. */
    for (uint32_t i = 5; i < 8; i++)
        cr_assert_eq(shmq_send(q, &i, sizeof(i), 0), 0);
    cr_assert_eq(shmq_lease_batch(q, m, 8, 0), 4);
    uint32_t v;
    memcpy(&v, m[0].data, sizeof(v));
    cr_assert_eq(v, 3);
    cr_assert_eq(m[0].deliveries, 2);
    for (uint32_t i = 1; i < 4; i++) {
        memcpy(&v, m[i].data, sizeof(v));
        cr_assert_eq(v, 4 + i);
        cr_assert_eq(m[i].deliveries, 1);
    }
    cr_assert_eq(shmq_ack_batch(q, m, 4), 4);

    /* Runs that wrap round the ring, leased and received in batches. */
    for (uint32_t round = 0; round < 20; round++) {
        uint32_t k = 3 + round % 6;
        for (uint32_t i = 0; i < k; i++) {
            uint32_t x = round * 100 + i;
            cr_assert_eq(shmq_send(q, &x, sizeof(x), 0), 0);
        }
        cr_assert_eq(shmq_lease_batch(q, m, 2, 0), 2);
        cr_assert_eq(shmq_ack_batch(q, m, 2), 2);
        uint32_t got[8];
        struct iovec in[8];
        size_t lens[8];
        for (int i = 0; i < 8; i++)
            in[i] = (struct iovec){&got[i], sizeof(got[i])};
        cr_assert_eq(shmq_recv_batch(q, in, lens, 8, 0), (int)k - 2);
        for (uint32_t i = 0; i < k - 2; i++)
            cr_assert_eq(got[i], round * 100 + i + 2, "round %u", round);
    }

    st = t_stats(q);
    cr_assert_eq(st.in_flight, 0);
    cr_assert_eq(st.depth, 0);
    cr_assert_eq(st.redelivered, 1);
    shmq_close(q);
}

/* Message i of the cap tests: i in its first bytes, then a letter, to a
 * length that varies with i. */
static size_t cap_msg(char *buf, uint32_t i)
{
    size_t len = 4 + i % 13;
    memset(buf, 'a' + (char)(i % 26), len);
    memcpy(buf, &i, sizeof(i));
    return len;
}

static void cap_check(const void *data, size_t len, uint32_t i)
{
    char want[32];
    size_t wlen = cap_msg(want, i);
    cr_assert_eq(len, wlen, "message %u: length %zu, sent %zu", i, len,
                 wlen);
    cr_assert_eq(memcmp(data, want, wlen), 0, "message %u: payload", i);
}

/* Sends messages [from, from + 100) in two calls: SHMQ_BATCH_MAX, then
 * the rest. */
static void cap_send(shmq_t *q, uint32_t from)
{
    char bufs[100][32];
    struct iovec out[100];
    for (uint32_t i = 0; i < 100; i++)
        out[i] = (struct iovec){bufs[i], cap_msg(bufs[i], from + i)};
    cr_assert_eq(SHMQ_BATCH_MAX, 64);
    cr_assert_eq(shmq_send_batch(q, out, 100, 0), SHMQ_BATCH_MAX,
                 "one call sends at most SHMQ_BATCH_MAX");
    cr_assert_eq(t_stats(q).depth, SHMQ_BATCH_MAX);
    cr_assert_eq(shmq_send_batch(q, out + SHMQ_BATCH_MAX,
                                 100 - SHMQ_BATCH_MAX, 0),
                 100 - SHMQ_BATCH_MAX);
    cr_assert_eq(t_stats(q).depth, 100);
}

/* Everything sent was received and acked (redelivered times a second
 * time), nothing skipped, and every one of the cap slots is free again:
 * the queue takes a full load. */
static void expect_all_free(shmq_t *q, uint64_t sent, uint64_t redelivered,
                            uint32_t cap)
{
    struct shmq_stats st = t_stats(q);
    cr_assert_eq(st.enqueued, sent);
    cr_assert_eq(st.dequeued, sent);
    cr_assert_eq(st.depth, 0);
    cr_assert_eq(st.in_flight, 0);
    cr_assert_eq(st.retry_pending, 0);
    cr_assert_eq(st.redelivered, redelivered);
    cr_assert_eq(st.skipped, 0);
    for (uint32_t i = 0; i < cap; i++)
        cr_assert_eq(shmq_send(q, &i, sizeof(i), 0), 0, "slot %u", i);
    cr_assert_eq(shmq_send(q, "x", 1, 0), -EAGAIN);
}

/* A call asked for more than SHMQ_BATCH_MAX moves SHMQ_BATCH_MAX, the
 * next the rest, in order; on 128 slots the second round wraps. */
Test(queue, batch_cap_at_batch_max)
{
    mkq("q", 128, 32, 0, 0);
    shmq_t *q = t_open(t_inst, "q");
    char bufs[100][32];
    struct iovec in[100];
    size_t lens[100];
    for (int i = 0; i < 100; i++)
        in[i] = (struct iovec){bufs[i], sizeof(bufs[i])};

    /* Positions 0..99: received. */
    cap_send(q, 0);
    memset(lens, 0xa5, sizeof(lens));
    cr_assert_eq(shmq_recv_batch(q, in, lens, 100, 0), SHMQ_BATCH_MAX);
    for (uint32_t i = 0; i < SHMQ_BATCH_MAX; i++)
        cap_check(bufs[i], lens[i], i);
    cr_assert_eq(lens[SHMQ_BATCH_MAX], (size_t)0xa5a5a5a5a5a5a5a5u,
                 "a length past the batch was written");
    struct shmq_stats st = t_stats(q);
    cr_assert_eq(st.depth, 100 - SHMQ_BATCH_MAX);
    cr_assert_eq(st.dequeued, SHMQ_BATCH_MAX);
    cr_assert_eq(shmq_recv_batch(q, in, lens, 100, 0), 100 - SHMQ_BATCH_MAX);
    for (uint32_t i = 0; i < 100 - SHMQ_BATCH_MAX; i++)
        cap_check(bufs[i], lens[i], SHMQ_BATCH_MAX + i);
    cr_assert_eq(shmq_recv_batch(q, in, lens, 100, 0), -EAGAIN);

    /* Positions 100..199 (slots 100..127, 0..71): leased, then acked. */
    cap_send(q, 100);
    shmq_msg_t m[100];
    cr_assert_eq(shmq_lease_batch(q, m, 100, 0), SHMQ_BATCH_MAX);
    st = t_stats(q);
    cr_assert_eq(st.in_flight, SHMQ_BATCH_MAX);
    cr_assert_eq(st.depth, 100 - SHMQ_BATCH_MAX);
    cr_assert_eq(shmq_lease_batch(q, m + SHMQ_BATCH_MAX, 100, 0),
                 100 - SHMQ_BATCH_MAX);
    cr_assert_eq(shmq_lease_batch(q, m, 1, 0), -EAGAIN);
    for (uint32_t i = 0; i < 100; i++) {
        cap_check(m[i].data, m[i].len, 100 + i);
        cr_assert_eq(m[i].deliveries, 1);
        if (i)
            cr_assert_gt(m[i].id, m[i - 1].id, "message %u", 100 + i);
    }
    st = t_stats(q);
    cr_assert_eq(st.in_flight, 100);
    cr_assert_eq(st.depth, 0);
    cr_assert_eq(shmq_ack_batch(q, m, SHMQ_BATCH_MAX), SHMQ_BATCH_MAX);
    cr_assert_eq(t_stats(q).in_flight, 100 - SHMQ_BATCH_MAX);
    cr_assert_eq(shmq_ack_batch(q, m + SHMQ_BATCH_MAX, 100 - SHMQ_BATCH_MAX),
                 100 - SHMQ_BATCH_MAX);
    cr_assert_eq(shmq_ack_batch(q, m, SHMQ_BATCH_MAX), 0, "all stale now");

    expect_all_free(q, 200, 0, 128);
    shmq_close(q);
}

/* On a queue with a lease timeout recv_batch acks each lease with a CAS
 * (a lease may have been taken back): batches of every size still end
 * acked, and the slots are free for the producer again. */
Test(queue, recv_batch_with_lease_timeout)
{
    struct shmq_queue_config c;
    shmq_queue_config_init(&c);
    c.capacity = 128;
    c.msg_max = 32;
    c.lease_timeout_ns = UINT64_C(60000000000); /* nothing expires here */
    cr_assert_eq(shmq_admin_create(t_adm, "q", &c), 0);
    shmq_t *q = t_open(t_inst, "q");
    cr_assert_eq(t_stats(q).lease_timeout_ns, c.lease_timeout_ns);
    char bufs[100][32];
    struct iovec in[100];
    size_t lens[100];
    for (int i = 0; i < 100; i++)
        in[i] = (struct iovec){bufs[i], sizeof(bufs[i])};

    cap_send(q, 0);
    cr_assert_eq(shmq_recv_batch(q, in, lens, 100, 0), SHMQ_BATCH_MAX);
    for (uint32_t i = 0; i < SHMQ_BATCH_MAX; i++)
        cap_check(bufs[i], lens[i], i);
    cr_assert_eq(shmq_recv_batch(q, in, lens, 100, 0), 100 - SHMQ_BATCH_MAX);
    for (uint32_t i = 0; i < 100 - SHMQ_BATCH_MAX; i++)
        cap_check(bufs[i], lens[i], SHMQ_BATCH_MAX + i);
    cr_assert_eq(shmq_recv_batch(q, in, lens, 100, 0), -EAGAIN);
    struct shmq_stats st = t_stats(q);
    cr_assert_eq(st.dequeued, 100);
    cr_assert_eq(st.depth, 0);
    cr_assert_eq(st.in_flight, 0);
    cr_assert_eq(st.retry_pending, 0);
    cr_assert_eq(st.redelivered, 0);

    /* Batches of 1..13 round the ring, a lease and a nack among them:
     * the redelivery comes first in the next batch, then the rest in
     * order. */
    uint32_t next = 100, want = 100;
    for (uint32_t round = 0; round < 40; round++) {
        uint32_t k = 1 + round % 13;
        for (uint32_t i = 0; i < k; i++) {
            char b[32];
            size_t len = cap_msg(b, next++);
            cr_assert_eq(shmq_send(q, b, len, 0), 0);
        }
        if (round % 5 == 4) {
            shmq_msg_t m;
            cr_assert_eq(shmq_lease(q, &m, 0), 0);
            cap_check(m.data, m.len, want);
            cr_assert_eq(shmq_nack(q, &m), 0);
            cr_assert_eq(shmq_recv_batch(q, in, lens, k, 0), (int)k);
            for (uint32_t i = 0; i < k; i++)
                cap_check(bufs[i], lens[i], want + i);
        } else {
            cr_assert_eq(shmq_recv_batch(q, in, lens, 100, 0), (int)k);
            for (uint32_t i = 0; i < k; i++)
                cap_check(bufs[i], lens[i], want + i);
        }
        want += k;
    }
    expect_all_free(q, next, 8, 128);
    shmq_close(q);
}

static uint64_t clock_ns(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* enqueue_ns of one message sent on a queue with timestamp mode ts, with
 * the clock read just before and after the send. */
static uint64_t stamped(const char *name, uint32_t ts, clockid_t clk,
                        uint64_t *before, uint64_t *after)
{
    struct shmq_queue_config c;
    shmq_queue_config_init(&c);
    c.capacity = 4;
    c.msg_max = 16;
    c.timestamps = ts;
    cr_assert_eq(shmq_admin_create(t_adm, name, &c), 0);
    shmq_t *q = t_open(t_inst, name);
    shmq_msg_t m;
    *before = clock_ns(clk);
    t_send_str(q, "t");
    *after = clock_ns(clk);
    cr_assert_eq(shmq_lease(q, &m, 0), 0);
    uint64_t at = m.enqueue_ns;
    /* A redelivery keeps the producer's stamp. */
    cr_assert_eq(shmq_nack(q, &m), 0);
    cr_assert_eq(shmq_lease(q, &m, 0), 0);
    cr_assert_eq(m.enqueue_ns, at);
    cr_assert_eq(shmq_ack(q, &m), 0);
    shmq_close(q);
    return at;
}

Test(queue, enqueue_timestamps)
{
    uint64_t lo, hi, at;
    struct shmq_queue_config c;
    shmq_queue_config_init(&c);
    cr_assert_eq(c.timestamps, SHMQ_TS_COARSE, "default mode");

    at = stamped("precise", SHMQ_TS_PRECISE, CLOCK_REALTIME, &lo, &hi);
    cr_assert(at >= lo && at <= hi, "precise: %llu not in [%llu, %llu]",
              (unsigned long long)at, (unsigned long long)lo,
              (unsigned long long)hi);
    /* The coarse clock never runs ahead of the precise one. */
    at = stamped("coarse", SHMQ_TS_COARSE, CLOCK_REALTIME_COARSE, &lo, &hi);
    cr_assert(at >= lo && at <= clock_ns(CLOCK_REALTIME),
              "coarse: %llu, coarse clock before %llu",
              (unsigned long long)at, (unsigned long long)lo);
    at = stamped("none", SHMQ_TS_NONE, CLOCK_REALTIME, &lo, &hi);
    cr_assert_eq(at, 0, "no timestamps: enqueue_ns is 0");

    /* Reserve/commit and batches stamp too. */
    shmq_t *q = t_open(t_inst, "precise");
    shmq_resv_t r;
    shmq_msg_t m[2];
    struct iovec iov[2] = {{"a", 1}, {"b", 1}};
    lo = clock_ns(CLOCK_REALTIME);
    cr_assert_eq(shmq_reserve(q, &r, 0), 0);
    cr_assert_eq(shmq_commit(q, &r, 0), 0);
    cr_assert_eq(shmq_send_batch(q, iov, 2, 0), 2);
    hi = clock_ns(CLOCK_REALTIME);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(shmq_lease_batch(q, m, 1, 0), 1);
        cr_assert(m[0].enqueue_ns >= lo && m[0].enqueue_ns <= hi,
                  "message %d", i);
        cr_assert_eq(shmq_ack(q, m), 0);
    }
    shmq_close(q);
}

/* ---- stats -------------------------------------------------------------- */

Test(queue, stats_known_sequence)
{
    mkq("q", 8, 64, 2, 4);
    shmq_t *q = t_open(t_inst, "q");
    shmq_msg_t a, b, c;
    struct shmq_stats st = t_stats(q);

    cr_assert_eq(st.size, sizeof(st));
    cr_assert_eq(st.capacity, 8);
    cr_assert_eq(st.msg_max, 64);
    cr_assert_eq(st.max_deliveries, 2);
    cr_assert_eq(st.dlq_capacity, 4);
    cr_assert_eq(st.mode, 0660);
    cr_assert_eq(st.lease_timeout_ns, 0);
    cr_assert_gt(st.generation, 0);
    cr_assert_eq(st.depth, 0);
    cr_assert_eq(st.in_flight, 0);
    cr_assert_eq(st.high_water, 0);
    cr_assert_eq(st.enqueued, 0);
    cr_assert_eq(st.dequeued, 0);
    cr_assert_eq(st.redelivered, 0);
    cr_assert_eq(st.dead_lettered, 0);
    cr_assert_eq(st.skipped, 0);
    cr_assert_eq(st.repaired, 0);
    cr_assert_eq(st.retry_pending, 0);
    cr_assert_eq(st.dlq_depth, 0);
    cr_assert_eq(st.producers_waiting, 0);
    cr_assert_eq(st.consumers_waiting, 0);

    const char *msgs[5] = {"a", "b", "c", "d", "e"};
    for (int i = 0; i < 5; i++)
        t_send_str(q, msgs[i]);
    st = t_stats(q);
    cr_assert_eq(st.depth, 5);
    cr_assert_eq(st.enqueued, 5);
    cr_assert_geq(st.high_water, 5);
    cr_assert_leq(st.high_water, 8);

    cr_assert_eq(shmq_lease(q, &a, 0), 0);
    cr_assert_eq(shmq_lease(q, &b, 0), 0);
    st = t_stats(q);
    cr_assert_eq(st.depth, 3);
    cr_assert_eq(st.in_flight, 2);

    cr_assert_eq(shmq_nack(q, &a), 0);
    st = t_stats(q);
    cr_assert_eq(st.depth, 4);
    cr_assert_eq(st.in_flight, 1);
    cr_assert_eq(st.retry_pending, 1);

    cr_assert_eq(shmq_ack(q, &b), 0);
    st = t_stats(q);
    cr_assert_eq(st.dequeued, 1);
    cr_assert_eq(st.in_flight, 0);
    cr_assert_eq(st.depth, 4);

    /* Redelivery of a: the second and last allowed delivery. */
    cr_assert_eq(shmq_lease(q, &a, 0), 0);
    cr_assert_eq(a.deliveries, 2);
    cr_assert_eq(memcmp(a.data, "a", 1), 0);
    st = t_stats(q);
    cr_assert_eq(st.redelivered, 1);
    cr_assert_eq(st.in_flight, 1);
    cr_assert_eq(st.depth, 3);
    cr_assert_eq(st.retry_pending, 0);

    /* Given back once more, it goes to the dead-letter ring instead of
     * a third delivery; the next lease gets c. */
    cr_assert_eq(shmq_nack(q, &a), 0);
    cr_assert_eq(shmq_lease(q, &c, 0), 0);
    cr_assert_eq(memcmp(c.data, "c", 1), 0);
    cr_assert_eq(c.deliveries, 1);
    st = t_stats(q);
    cr_assert_eq(st.dead_lettered, 1);
    cr_assert_eq(st.dlq_depth, 1);
    cr_assert_eq(st.depth, 2);
    cr_assert_eq(st.in_flight, 1);
    cr_assert_eq(st.retry_pending, 0);
    cr_assert_eq(st.redelivered, 1);
    cr_assert_eq(shmq_ack(q, &c), 0);

    /* An aborted reservation is skipped once passed. */
    shmq_resv_t r;
    cr_assert_eq(shmq_reserve(q, &r, 0), 0);
    cr_assert_eq(shmq_abort(q, &r), 0);
    recv_str(q, "d");
    recv_str(q, "e");
    char buf[64];
    cr_assert_eq(shmq_recv(q, buf, sizeof(buf), 0), -EAGAIN);
    st = t_stats(q);
    cr_assert_eq(st.skipped, 1);
    cr_assert_eq(st.depth, 0);
    cr_assert_eq(st.in_flight, 0);
    cr_assert_eq(st.enqueued, 5);
    cr_assert_eq(st.dequeued, 4);

    /* Full: the high-water mark is exact, and stays after draining. */
    int n = 0;
    while (shmq_send(q, "f", 1, 0) == 0)
        n++;
    cr_assert_eq(n, 8);
    st = t_stats(q);
    cr_assert_eq(st.depth, 8);
    cr_assert_eq(st.high_water, 8);
    while (shmq_recv(q, buf, sizeof(buf), 0) >= 0)
        ;
    st = t_stats(q);
    cr_assert_eq(st.depth, 0);
    cr_assert_eq(st.high_water, 8);
    cr_assert_eq(st.enqueued, 13);
    cr_assert_eq(st.dequeued, 12);
    cr_assert_eq(st.dead_lettered, 1);
    cr_assert_eq(st.repaired, 0);

    /* Draining the dead-letter ring empties it. */
    shmq_t *d = open_ring("q", SHMQ_RING_DLQ);
    recv_str(d, "a");
    st = t_stats(q);
    cr_assert_eq(st.dlq_depth, 0);
    cr_assert_eq(st.dead_lettered, 1);
    shmq_close(d);
    shmq_close(q);
}

Test(queue, stats_bad_args)
{
    mkq("q", 4, 16, 0, 0);
    shmq_t *q = t_open(t_inst, "q");
    struct shmq_stats st;
    memset(&st, 0, sizeof(st));
    cr_assert_eq(shmq_stats(q, NULL), -EINVAL);
    cr_assert_eq(shmq_stats(NULL, &st), -EINVAL);
    st.size = 0;
    cr_assert_eq(shmq_stats(q, &st), -EINVAL);
    st.size = sizeof(st) - 8;
    cr_assert_eq(shmq_stats(q, &st), -EINVAL);
    st.size = sizeof(st);
    cr_assert_eq(shmq_stats(q, &st), 0);
    cr_assert_eq(st.capacity, 4);
    shmq_close(q);
}

Test(queue, stats_by_name)
{
    mkq("q", 8, 16, 0, 0);
    struct shmq_stats st;

    cr_assert_eq(t_procs_count(), 0);
    shmq_t *q = t_open(t_inst, "q");
    cr_assert_eq(t_procs_count(), 1);
    t_send_str(q, "x");
    t_send_str(q, "y");
    t_send_str(q, "z");
    recv_str(q, "x");
    shmq_close(q);
    cr_assert_eq(t_procs_count(), 0);

    /* Read-only: no registration. */
    memset(&st, 0, sizeof(st));
    st.size = sizeof(st);
    cr_assert_eq(shmq_stats_by_name(t_inst, "q", &st), 0);
    cr_assert_eq(t_procs_count(), 0, "stats_by_name registered the caller");
    cr_assert_eq(st.size, sizeof(st));
    cr_assert_eq(st.capacity, 8);
    cr_assert_eq(st.msg_max, 16);
    cr_assert_eq(st.depth, 2);
    cr_assert_eq(st.enqueued, 3);
    cr_assert_eq(st.dequeued, 1);

    /* With a handle open the count stays one. */
    q = t_open(t_inst, "q");
    cr_assert_eq(t_procs_count(), 1);
    cr_assert_eq(shmq_stats_by_name(t_inst, "q", &st), 0);
    cr_assert_eq(t_procs_count(), 1);
    struct shmq_stats hs = t_stats(q);
    cr_assert_eq(hs.depth, st.depth);
    cr_assert_eq(hs.enqueued, st.enqueued);
    cr_assert_eq(hs.generation, st.generation);
    shmq_close(q);

    /* The instance from the environment. */
    cr_assert_eq(setenv("SHMQ_INSTANCE", t_inst, 1), 0);
    cr_assert_eq(shmq_stats_by_name(NULL, "q", &st), 0);
    cr_assert_eq(st.depth, 2);
    cr_assert_eq(unsetenv("SHMQ_INSTANCE"), 0);

    /* Errors. */
    char missing[32];
    snprintf(missing, sizeof(missing), "%s", t_instance());
    cr_assert_eq(shmq_stats_by_name(t_inst, "absent", &st), -ENOENT);
    cr_assert_eq(shmq_stats_by_name(missing, "q", &st), -ENOENT);
    cr_assert_eq(shmq_stats_by_name(t_inst, "a/b", &st), -EINVAL);
    cr_assert_eq(shmq_stats_by_name(t_inst, NULL, &st), -EINVAL);
    cr_assert_eq(shmq_stats_by_name("bad.inst", "q", &st), -EINVAL);
    cr_assert_eq(shmq_stats_by_name(t_inst, "q", NULL), -EINVAL);
    st.size = 4;
    cr_assert_eq(shmq_stats_by_name(t_inst, "q", &st), -EINVAL);
    cr_assert_eq(t_procs_count(), 0);
}

/* ---- dead letters ------------------------------------------------------- */

Test(queue, max_deliveries_dead_letter)
{
    const uint32_t maxd = 3;
    mkq("q", 4, 32, maxd, 4);
    shmq_t *q = t_open(t_inst, "q");
    shmq_msg_t m;
    t_send_str(q, "poison");
    t_send_str(q, "good");

    cr_assert_eq(shmq_lease(q, &m, 0), 0);
    uint64_t id = m.id;
    for (uint32_t d = 1; d <= maxd; d++) {
        cr_assert_eq(m.id, id);
        cr_assert_eq(m.deliveries, d);
        cr_assert_eq(memcmp(m.data, "poison", 6), 0);
        cr_assert_eq(shmq_nack(q, &m), 0);
        if (d < maxd)
            cr_assert_eq(shmq_lease(q, &m, 0), 0);
    }
    /* Not delivered a fourth time: the next consumer gets "good". */
    cr_assert_eq(shmq_lease(q, &m, 0), 0);
    cr_assert_eq(m.len, 4);
    cr_assert_eq(memcmp(m.data, "good", 4), 0);
    cr_assert_eq(shmq_ack(q, &m), 0);
    cr_assert_eq(shmq_lease(q, &m, 0), -EAGAIN);

    struct shmq_stats st = t_stats(q);
    cr_assert_eq(st.dead_lettered, 1);
    cr_assert_eq(st.dlq_depth, 1);
    cr_assert_eq(st.depth, 0);
    cr_assert_eq(st.in_flight, 0);

    /* The dead-letter ring has it, same id and payload. */
    shmq_t *d = open_ring("q", SHMQ_RING_DLQ);
    shmq_msg_t dm;
    cr_assert_eq(shmq_lease(d, &dm, 0), 0);
    cr_assert_eq(dm.id, id);
    cr_assert_eq(dm.len, 6);
    cr_assert_eq(memcmp(dm.data, "poison", 6), 0);
    cr_assert_geq(dm.deliveries, maxd);
    /* Dead letters are not limited again: nack and lease at will. */
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(shmq_nack(d, &dm), 0);
        cr_assert_eq(shmq_lease(d, &dm, 0), 0);
        cr_assert_eq(dm.id, id);
    }
    cr_assert_eq(shmq_ack(d, &dm), 0);
    cr_assert_eq(shmq_lease(d, &dm, 0), -EAGAIN);
    st = t_stats(q);
    cr_assert_eq(st.dlq_depth, 0);
    shmq_close(d);
    shmq_close(q);
}

Test(queue, dead_letter_ring_full_keeps_message)
{
    mkq("q", 8, 32, 1, 2);
    shmq_t *q = t_open(t_inst, "q");
    shmq_msg_t m;
    char buf[32];
    /* Three poison messages, room for two dead letters. */
    for (int i = 0; i < 3; i++) {
        t_send_str(q, "p");
        cr_assert_eq(shmq_lease(q, &m, 0), 0);
        cr_assert_eq(shmq_nack(q, &m), 0);
    }
    cr_assert_eq(shmq_lease(q, &m, 0), -EAGAIN);
    struct shmq_stats st = t_stats(q);
    cr_assert_eq(st.dead_lettered, 2);
    cr_assert_eq(st.dlq_depth, 2);
    /* The third is neither lost nor delivered: it waits. */
    cr_assert_eq(st.depth, 1);
    cr_assert_eq(st.retry_pending, 1);
    shmq_t *d = open_ring("q", SHMQ_RING_DLQ);
    cr_assert_eq(shmq_recv(d, buf, sizeof(buf), 0), 1);
    /* With room again, the next attempt moves it. */
    cr_assert_eq(shmq_lease(q, &m, 0), -EAGAIN);
    st = t_stats(q);
    cr_assert_eq(st.dead_lettered, 3);
    cr_assert_eq(st.dlq_depth, 2);
    cr_assert_eq(st.depth, 0);
    cr_assert_eq(shmq_recv(d, buf, sizeof(buf), 0), 1);
    cr_assert_eq(shmq_recv(d, buf, sizeof(buf), 0), 1);
    cr_assert_eq(shmq_recv(d, buf, sizeof(buf), 0), -EAGAIN);
    shmq_close(d);
    shmq_close(q);
}

/* ---- deletion ----------------------------------------------------------- */

Test(queue, deleted_queue_eidrm)
{
    mkq("q", 4, 16, 2, 2);
    shmq_t *q = t_open(t_inst, "q");
    shmq_t *d = open_ring("q", SHMQ_RING_DLQ);
    shmq_msg_t m;
    shmq_resv_t r;
    t_send_str(q, "a");
    t_send_str(q, "b");
    cr_assert_eq(shmq_lease(q, &m, 0), 0);
    cr_assert_eq(shmq_reserve(q, &r, 0), 0);

    cr_assert_eq(shmq_admin_delete(t_adm, "q"), 0);

    char buf[16];
    struct iovec iov = {buf, sizeof(buf)};
    size_t len;
    struct shmq_stats st;
    st.size = sizeof(st);
    uint32_t tok;
    shmq_msg_t mb[2];
    cr_assert_eq(shmq_send(q, "x", 1, 0), -EIDRM);
    cr_assert_eq(shmq_send(q, "x", 1, SHMQ_FOREVER), -EIDRM);
    cr_assert_eq(shmq_send_batch(q, &iov, 1, 0), -EIDRM);
    cr_assert_eq(shmq_recv(q, buf, sizeof(buf), 0), -EIDRM);
    cr_assert_eq(shmq_recv(q, buf, sizeof(buf), SHMQ_FOREVER), -EIDRM);
    cr_assert_eq(shmq_recv_batch(q, &iov, &len, 1, 0), -EIDRM);
    cr_assert_eq(shmq_lease(q, mb, 0), -EIDRM);
    cr_assert_eq(shmq_lease_batch(q, mb, 2, 0), -EIDRM);
    cr_assert_eq(shmq_ack(q, &m), -EIDRM);
    cr_assert_eq(shmq_nack(q, &m), -EIDRM);
    cr_assert_eq(shmq_ack_batch(q, &m, 1), -EIDRM);
    cr_assert_eq(shmq_reserve(q, &r, 0), -EIDRM);
    cr_assert_eq(shmq_commit(q, &r, 1), -EIDRM);
    cr_assert_eq(shmq_abort(q, &r), -EIDRM);
    cr_assert_eq(shmq_stats(q, &st), -EIDRM);
    cr_assert_eq(shmq_token(q, &tok), -EIDRM);
    /* The dead-letter handle too. */
    cr_assert_eq(shmq_recv(d, buf, sizeof(buf), 0), -EIDRM);
    cr_assert_eq(shmq_stats(d, &st), -EIDRM);
    /* What needs no shared memory still answers. */
    cr_assert_str_eq(shmq_name(q), "q");
    cr_assert_eq(shmq_msg_max(q), 16);
    shmq_close(d);
    shmq_close(q);

    /* A queue made again under the name is a new queue. */
    mkq("q", 4, 16, 0, 0);
    q = t_open(t_inst, "q");
    cr_assert_eq(shmq_recv(q, buf, sizeof(buf), 0), -EAGAIN);
    shmq_close(q);
}

Test(queue, delete_wakes_waiter)
{
    mkq("q", 2, 32, 0, 0);
    shmq_t *q = t_open(t_inst, "q");
    struct waiter w = {.q = q, .op = 0, .rc = 1};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, waiter_main, &w), 0);
    wait_sleeper(q, 1);
    cr_assert_eq(shmq_admin_delete(t_adm, "q"), 0);
    join_within(t, 5);
    cr_assert_eq(w.rc, -EIDRM);
    shmq_close(q);
}

/* ---- instance selection ------------------------------------------------- */

Test(queue, instance_from_env)
{
    char missing[32];
    struct shmq_open_opts o;
    shmq_t *q = NULL;

    mkq("envq", 4, 16, 0, 0);
    cr_assert_eq(setenv("SHMQ_INSTANCE", t_inst, 1), 0);
    cr_assert_eq(shmq_open("envq", NULL, &q), 0);
    t_send_str(q, "via env");
    shmq_close(q);

    shmq_open_opts_init(&o); /* instance NULL */
    q = NULL;
    cr_assert_eq(shmq_open("envq", &o, &q), 0);
    recv_str(q, "via env");
    shmq_close(q);

    /* The variable names an instance that does not exist. */
    snprintf(missing, sizeof(missing), "%s", t_instance());
    cr_assert_eq(setenv("SHMQ_INSTANCE", missing, 1), 0);
    q = SENTINEL;
    cr_assert_eq(shmq_open("envq", NULL, &q), -ENOENT);
    cr_assert_eq(q, SENTINEL);
    /* An explicit instance wins over the variable. */
    o.instance = t_inst;
    q = NULL;
    cr_assert_eq(shmq_open("envq", &o, &q), 0);
    shmq_close(q);
    /* A bad name in the variable is a bad argument. */
    cr_assert_eq(setenv("SHMQ_INSTANCE", "no/slash", 1), 0);
    q = SENTINEL;
    cr_assert_eq(shmq_open("envq", NULL, &q), -EINVAL);
    cr_assert_eq(unsetenv("SHMQ_INSTANCE"), 0);
}

/* ---- strerror and version ----------------------------------------------- */

Test(queue, strerror_documented)
{
    const int errs[] = {EINVAL,   ENOENT, EIDRM,  EBADMSG, EPROTO,
                        EACCES,   ENOSPC, EAGAIN, ETIMEDOUT, EMSGSIZE,
                        ESTALE,   EEXIST, EPERM,  EBUSY,   ENOMEM};
    const size_t n = sizeof(errs) / sizeof(errs[0]);
    for (size_t i = 0; i < n; i++) {
        const char *s = shmq_strerror(-errs[i]);
        cr_assert_not_null(s);
        cr_assert_gt(strlen(s), 3, "errno %d", errs[i]);
        cr_assert_null(strstr(s, "Unknown"), "errno %d: \"%s\"", errs[i], s);
        cr_assert_null(strstr(s, "unknown"), "errno %d: \"%s\"", errs[i], s);
        /* Either sign. */
        cr_assert_str_eq(shmq_strerror(errs[i]), s);
        /* Each its own sentence. */
        for (size_t k = 0; k < i; k++)
            cr_assert_str_neq(shmq_strerror(-errs[k]), s, "%d and %d",
                              errs[k], errs[i]);
    }
    cr_assert_not_null(shmq_strerror(0));
    cr_assert_not_null(shmq_strerror(-EXDEV));
    cr_assert_not_null(shmq_strerror(-99999));
    cr_assert_not_null(shmq_strerror(INT32_MIN + 1));
}

Test(queue, version)
{
    char want[32];
    cr_assert_eq(shmq_version(), (unsigned)SHMQ_VERSION_HEX);
    cr_assert_eq(shmq_version() >> 16, SHMQ_VERSION_MAJOR);
    cr_assert_eq((shmq_version() >> 8) & 0xffu, SHMQ_VERSION_MINOR);
    cr_assert_eq(shmq_version() & 0xffu, SHMQ_VERSION_PATCH);
    cr_assert_str_eq(shmq_version_string(), SHMQ_VERSION_STRING);
    snprintf(want, sizeof(want), "%d.%d.%d", SHMQ_VERSION_MAJOR,
             SHMQ_VERSION_MINOR, SHMQ_VERSION_PATCH);
    cr_assert_str_eq(shmq_version_string(), want);
}
