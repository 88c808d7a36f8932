/* SPDX-License-Identifier: MIT */
/* ctest-timeout: 240 */
/*
 * Blocking (libshmq/src/wait.c and the wait loop of queue.c), through the
 * public API only, with real processes:
 *   - consumers asleep on an empty queue wake for each message, and
 *     producers asleep on a full queue wake for each free slot;
 *   - timeouts return -ETIMEDOUT no earlier than asked (the overshoot is
 *     printed) and within a generous bound;
 *   - no lost wakeup over 100,000 sleep/wake round trips;
 *   - signals (no SA_RESTART, every millisecond) neither end a wait early
 *     nor stretch its deadline;
 *   - deleting a queue wakes every sleeper with -EIDRM;
 *   - waiter counts die with the waiter: a consumer killed in its sleep is
 *     counted while it sleeps and no longer once it is dead; threads of
 *     one process beyond its 16 sleep records sleep and wake uncounted.
 * Waiting for a child to be asleep is a bounded poll of the sleeper
 * counts in shmq_stats, never a sleep for luck.
 */
#include <criterion/criterion.h>
#include <shmq/admin.h>
#include <shmq/shmq.h>

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

/* Smaller counts under sanitizers (T_TSAN, T_ASAN: common.h). */
#if defined(T_TSAN)
#define T_SCALE 4u
#elif defined(T_ASAN)
#define T_SCALE 1u
#else
#define T_SCALE 1u
#endif

#define MS INT64_C(1000000)
#define SEC INT64_C(1000000000)
#define CHILD_LOST 4 /* a wait that should have ended did not */
#define MAX_KIDS 16
#define BOUND_MS 10000 /* every bounded wait of this file */

/* ---- children, fixture ------------------------------------------------- */

/* Fork a child (t_spawn); returns its slot in t_kids. */
static unsigned spawn(void (*fn)(const void *), const void *arg)
{
    cr_assert_lt(t_nkids, MAX_KIDS);
    return t_slot(t_spawn(fn, arg));
}

static const char *status_str(int st, char *buf, size_t n)
{
    if (WIFSIGNALED(st))
        snprintf(buf, n, "killed by signal %d (did not wake)", WTERMSIG(st));
    else if (WIFEXITED(st))
        snprintf(buf, n, "exit status %d", WEXITSTATUS(st));
    else
        snprintf(buf, n, "status %#x", st);
    return buf;
}

static void reap_kid(unsigned i, const char *what)
{
    char b[64];
    int st = t_reap(t_kids[i], BOUND_MS);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s (child %u): %s",
              what, i, status_str(st, b, sizeof(b)));
}

/* Wait (bounded) for any one of our children to end; asserts it ended
 * well. Returns its index. */
static unsigned reap_any(const char *what)
{
    for (int waited = 0; waited < BOUND_MS; waited++) {
        for (unsigned i = 0; i < t_nkids; i++) {
            int st;
            if (t_kids[i] <= 0 || waitpid(t_kids[i], &st, WNOHANG) == 0)
                continue;
            char b[64];
            t_kids[i] = 0;
            cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                      "%s (child %u): %s", what, i,
                      status_str(st, b, sizeof(b)));
            return i;
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    cr_assert_fail("%s: no child ended within %d ms (lost wakeup)", what,
             BOUND_MS);
    return 0;
}

static void teardown(void)
{
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    t_teardown();
}

TestSuite(wait, .init = t_setup, .fini = teardown, .timeout = 120);

static void create_q(const char *name, uint32_t capacity)
{
    t_create(t_adm, name, capacity, 64);
}

/* Bounded poll until the sleeper count of q reaches n. */
static void await_sleepers(shmq_t *q, int consumers, uint32_t n)
{
    uint32_t seen = 0;
    for (int waited = 0; waited < BOUND_MS; waited++) {
        struct shmq_stats st = t_stats(q);
        seen = consumers ? st.consumers_waiting : st.producers_waiting;
        if (seen == n)
            return;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    cr_assert_fail("%s asleep: %u, expected %u within %d ms",
             consumers ? "consumers" : "producers", seen, n, BOUND_MS);
}

/* ---- (1) sleeping consumers wake for each message ----------------------- */

#define NSLEEP 4u

struct wake_shared {
    _Atomic int32_t got[MAX_KIDS]; /* message each consumer received */
};

struct sleeper {
    struct wake_shared *sh;
    unsigned index;
};

static void sleeping_consumer(const void *arg)
{
    const struct sleeper *me = arg;
    shmq_t *q = t_child_open("q", 0);
    int32_t v = -1;
    ssize_t n = shmq_recv(q, &v, sizeof(v), SHMQ_FOREVER);
    CHILD_REQUIRE(n == (ssize_t)sizeof(v), "recv: %s",
                  n < 0 ? shmq_strerror((int)n) : "bad length");
    atomic_store(&me->sh->got[me->index], v);
    shmq_close(q);
}

Test(wait, sleeping_consumers_wake_for_each_message)
{
    create_q("q", 16);
    shmq_t *q = t_open(shmq_admin_instance(t_adm), "q");
    struct wake_shared *sh = t_shared_alloc(sizeof(*sh));
    struct sleeper who[NSLEEP];
    for (unsigned i = 0; i < NSLEEP; i++) {
        atomic_store(&sh->got[i], -1);
        who[i] = (struct sleeper){sh, i};
        spawn(sleeping_consumer, &who[i]);
    }
    unsigned mask = 0;
    /* One message at a time: the ones that did not get it must go back
     * to sleep, and the next message must wake them again. */
    for (uint32_t k = 0; k < NSLEEP; k++) {
        await_sleepers(q, 1, NSLEEP - k);
        int32_t v = (int32_t)(100 + k);
        cr_assert_eq(shmq_send(q, &v, sizeof(v), 0), 0);
        unsigned i = reap_any("sleeping consumer");
        cr_assert_eq(atomic_load(&sh->got[i]), v,
                     "consumer %u got %d, sent %d", i,
                     atomic_load(&sh->got[i]), v);
        mask |= 1u << i;
    }
    cr_assert_eq(mask, (1u << NSLEEP) - 1);
    struct shmq_stats st = t_stats(q);
    cr_assert_eq(st.depth, 0);
    cr_assert_eq(st.consumers_waiting, 0);
    cr_assert_eq(st.dequeued, NSLEEP);
    shmq_close(q);
    munmap(sh, sizeof(*sh));
}

/* Several messages at once to several sleepers: each gets exactly one. */
Test(wait, sleeping_consumers_burst)
{
    create_q("q", 16);
    shmq_t *q = t_open(shmq_admin_instance(t_adm), "q");
    struct wake_shared *sh = t_shared_alloc(sizeof(*sh));
    struct sleeper who[NSLEEP];
    for (unsigned i = 0; i < NSLEEP; i++) {
        atomic_store(&sh->got[i], -1);
        who[i] = (struct sleeper){sh, i};
        spawn(sleeping_consumer, &who[i]);
    }
    await_sleepers(q, 1, NSLEEP);
    for (int32_t k = 0; k < (int32_t)NSLEEP; k++)
        cr_assert_eq(shmq_send(q, &k, sizeof(k), 0), 0);
    unsigned seen = 0;
    for (unsigned i = 0; i < NSLEEP; i++) {
        reap_kid(i, "sleeping consumer");
        int32_t v = atomic_load(&sh->got[i]);
        cr_assert(v >= 0 && v < (int32_t)NSLEEP, "consumer %u got %d", i, v);
        cr_assert_eq(seen & (1u << v), 0, "message %d received twice", v);
        seen |= 1u << v;
    }
    cr_assert_eq(t_stats(q).depth, 0);
    shmq_close(q);
    munmap(sh, sizeof(*sh));
}

/* ---- (2) sleeping producers wake when space frees ------------------------ */

#define FULLCAP 4u

static void sleeping_producer(const void *arg)
{
    int32_t v = (int32_t)(intptr_t)arg;
    shmq_t *q = t_child_open("q", 0);
    int rc = shmq_send(q, &v, sizeof(v), SHMQ_FOREVER);
    CHILD_REQUIRE(rc == 0, "send: %s", shmq_strerror(rc));
    shmq_close(q);
}

Test(wait, sleeping_producers_wake_when_space_frees)
{
    create_q("q", FULLCAP);
    shmq_t *q = t_open(shmq_admin_instance(t_adm), "q");
    for (int32_t k = 0; k < (int32_t)FULLCAP; k++)
        cr_assert_eq(shmq_send(q, &k, sizeof(k), 0), 0);
    int32_t v = -1;
    cr_assert_eq(shmq_send(q, &v, sizeof(v), 0), -EAGAIN, "not full");
    const unsigned np = 3;
    for (unsigned i = 0; i < np; i++)
        spawn(sleeping_producer, (const void *)(intptr_t)(1000 + i));
    unsigned got_prod = 0;
    int32_t expect = 0;
    for (unsigned k = 0; k < np; k++) {
        await_sleepers(q, 0, np - k);
        /* One free slot: exactly one producer can finish. */
        cr_assert_eq(shmq_recv(q, &v, sizeof(v), 0), (ssize_t)sizeof(v));
        cr_assert_eq(v, expect++, "FIFO: got %d", v);
        reap_any("sleeping producer");
    }
    /* What is left: the last FULLCAP - np originals, then the three
     * producers' messages in some order. */
    for (unsigned k = 0; k < FULLCAP; k++) {
        cr_assert_eq(shmq_recv(q, &v, sizeof(v), 0), (ssize_t)sizeof(v));
        if (k < FULLCAP - np) {
            cr_assert_eq(v, expect++);
        } else {
            cr_assert(v >= 1000 && v < 1000 + (int32_t)np, "got %d", v);
            got_prod |= 1u << (v - 1000);
        }
    }
    cr_assert_eq(got_prod, (1u << np) - 1);
    cr_assert_eq(shmq_recv(q, &v, sizeof(v), 0), -EAGAIN);
    cr_assert_eq(t_stats(q).producers_waiting, 0);
    shmq_close(q);
}

/* ---- (3) timeouts ----------------------------------------------------------- */

enum op { OP_RECV, OP_LEASE, OP_SEND, OP_RESERVE };
static const char *const op_name[] = {"recv", "lease", "send", "reserve"};

/* Runs op (which must time out) and returns the elapsed nanoseconds. */
static uint64_t timed_op(shmq_t *q, enum op op, int64_t timeout_ns, int *rc)
{
    char buf[64] = {0};
    shmq_msg_t m;
    shmq_resv_t rv;
    uint64_t t0 = t_mono_ns();
    switch (op) {
    case OP_RECV:
        *rc = (int)shmq_recv(q, buf, sizeof(buf), timeout_ns);
        break;
    case OP_LEASE:
        *rc = shmq_lease(q, &m, timeout_ns);
        break;
    case OP_SEND:
        *rc = shmq_send(q, buf, 8, timeout_ns);
        break;
    case OP_RESERVE:
        *rc = shmq_reserve(q, &rv, timeout_ns);
        break;
    }
    return t_mono_ns() - t0;
}

static void check_timeout(shmq_t *q, enum op op, int64_t timeout_ns,
                          const char *what)
{
    int rc;
    uint64_t el = timed_op(q, op, timeout_ns, &rc);
    cr_assert_eq(rc, -ETIMEDOUT, "%s %s: %s", what, op_name[op],
                 shmq_strerror(rc));
    cr_assert_geq(el, (uint64_t)timeout_ns,
                  "%s %s: timed out after %llu ns, before its %lld ns",
                  what, op_name[op], (unsigned long long)el,
                  (long long)timeout_ns);
    cr_assert_lt(el, (uint64_t)(timeout_ns + 2 * SEC),
                 "%s %s: %llu ns for a %lld ns timeout", what, op_name[op],
                 (unsigned long long)el, (long long)timeout_ns);
    fprintf(stderr, "timeout %s %-7s %9lld ns: overshoot %8llu ns\n", what,
            op_name[op], (long long)timeout_ns,
            (unsigned long long)(el - (uint64_t)timeout_ns));
}

Test(wait, timeouts_not_before_the_deadline)
{
    static const int64_t tmo[] = {1000, 5000, 1 * MS, 20 * MS, 200 * MS};
    static const int64_t spins[] = {0, 20000};
    create_q("empty", 4);
    create_q("full", 2);
    for (unsigned s = 0; s < 2; s++) {
        shmq_t *e = t_child_open("empty", spins[s]);
        shmq_t *f = t_child_open("full", spins[s]);
        char m[8] = "x";
        while (shmq_send(f, m, 1, 0) == 0)
            ;
        char what[16];
        snprintf(what, sizeof(what), "spin %lld", (long long)spins[s]);
        for (unsigned i = 0; i < sizeof(tmo) / sizeof(tmo[0]); i++) {
            check_timeout(e, OP_RECV, tmo[i], what);
            check_timeout(e, OP_LEASE, tmo[i], what);
            check_timeout(f, OP_SEND, tmo[i], what);
            check_timeout(f, OP_RESERVE, tmo[i], what);
        }
        /* 0 tries once. */
        int rc;
        timed_op(e, OP_RECV, 0, &rc);
        cr_assert_eq(rc, -EAGAIN);
        timed_op(f, OP_SEND, 0, &rc);
        cr_assert_eq(rc, -EAGAIN);
        shmq_close(e);
        shmq_close(f);
    }
}

/* ---- (4) no lost wakeup -------------------------------------------------------- */

struct pingpong {
    uint32_t rounds;
    int64_t spin_ns;
    _Atomic int64_t child_lost; /* round the child stopped at, or -1 */
    _Atomic uint64_t child_nvcsw;
};

static void pong_main(const void *arg)
{
    struct pingpong *pp = (struct pingpong *)arg;
    shmq_t *in = t_child_open("ping", pp->spin_ns);
    shmq_t *out = t_child_open("pong", pp->spin_ns);
    for (uint32_t i = 0; i < pp->rounds; i++) {
        uint32_t v = UINT32_MAX;
        ssize_t n = shmq_recv(in, &v, sizeof(v), BOUND_MS * MS);
        if (n == -ETIMEDOUT) {
            atomic_store(&pp->child_lost, (int64_t)i);
            fprintf(stderr, "lost wakeup at round %u (ponger asleep)\n", i);
            _exit(CHILD_LOST);
        }
        CHILD_REQUIRE(n == (ssize_t)sizeof(v) && v == i,
                      "round %u: recv %zd value %u", i, n, v);
        int rc = shmq_send(out, &v, sizeof(v), BOUND_MS * MS);
        CHILD_REQUIRE(rc == 0, "round %u: send %s", i, shmq_strerror(rc));
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    atomic_store(&pp->child_nvcsw, (uint64_t)ru.ru_nvcsw);
    shmq_close(in);
    shmq_close(out);
}

static void ping_pong(int64_t spin_ns, uint32_t rounds)
{
    create_q("ping", 2);
    create_q("pong", 2);
    struct pingpong *pp = t_shared_alloc(sizeof(*pp));
    pp->rounds = rounds;
    pp->spin_ns = spin_ns;
    atomic_store(&pp->child_lost, -1);
    shmq_t *out = t_child_open("ping", spin_ns);
    shmq_t *in = t_child_open("pong", spin_ns);
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    uint64_t t0 = t_mono_ns();
    unsigned kid = spawn(pong_main, pp);
    for (uint32_t i = 0; i < rounds; i++) {
        int rc = shmq_send(out, &i, sizeof(i), BOUND_MS * MS);
        cr_assert_eq(rc, 0, "round %u: send %s", i, shmq_strerror(rc));
        uint32_t v = UINT32_MAX;
        ssize_t n = shmq_recv(in, &v, sizeof(v), BOUND_MS * MS);
        if (n == -ETIMEDOUT) {
            int64_t cl = atomic_load(&pp->child_lost);
            cr_assert_fail("lost wakeup at round %u (%s asleep)", i,
                     cl >= 0 ? "ponger" : "pinger");
        }
        cr_assert_eq(n, (ssize_t)sizeof(v), "round %u: recv %s", i,
                     n < 0 ? shmq_strerror((int)n) : "short");
        cr_assert_eq(v, i, "round %u: got %u", i, v);
    }
    uint64_t el = t_mono_ns() - t0;
    getrusage(RUSAGE_SELF, &r1);
    reap_kid(kid, "ponger");
    fprintf(stderr,
            "ping-pong spin %lld: %u round trips in %.3f s (%.2f us each); "
            "voluntary switches: pinger %ld, ponger %llu\n",
            (long long)spin_ns, rounds, (double)el * 1e-9,
            (double)el / rounds / 1000.0, r1.ru_nvcsw - r0.ru_nvcsw,
            (unsigned long long)atomic_load(&pp->child_nvcsw));
    shmq_close(out);
    shmq_close(in);
    munmap(pp, sizeof(*pp));
}

Test(wait, no_lost_wakeup_sleep_only, .timeout = 200)
{
    ping_pong(0, 100000u / T_SCALE);
}

Test(wait, no_lost_wakeup_default_spin, .timeout = 200)
{
    ping_pong(20000, 100000u / T_SCALE);
}

/* ---- (5) signals ------------------------------------------------------------- */

static volatile sig_atomic_t g_alarms;

static void on_alarm(int sig)
{
    (void)sig;
    g_alarms = g_alarms + 1;
}

/* SIGALRM every millisecond, without SA_RESTART: every sleep is cut. */
static void alarm_storm(int on)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on ? on_alarm : SIG_IGN;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, on ? 1000 : 0}, {0, on ? 1000 : 0}};
    setitimer(ITIMER_REAL, &it, NULL);
}

Test(wait, signals_neither_end_nor_stretch_a_timed_wait)
{
    static const int64_t spins[] = {0, 20000};
    create_q("empty", 4);
    create_q("full", 2);
    for (unsigned s = 0; s < 2; s++) {
        shmq_t *e = t_child_open("empty", spins[s]);
        shmq_t *f = t_child_open("full", spins[s]);
        while (shmq_send(f, "x", 1, 0) == 0)
            ;
        char what[32];
        snprintf(what, sizeof(what), "signals, spin %lld",
                 (long long)spins[s]);
        for (enum op op = OP_RECV; op <= OP_RESERVE; op++) {
            g_alarms = 0;
            alarm_storm(1);
            check_timeout(op <= OP_LEASE ? e : f, op, 300 * MS, what);
            alarm_storm(0);
            cr_assert_gt(g_alarms, 0, "no signal arrived during the wait");
            fprintf(stderr, "  %d signals during the wait\n", (int)g_alarms);
        }
        shmq_close(e);
        shmq_close(f);
    }
}

struct sigwait_shared {
    _Atomic int32_t alarms;
    _Atomic int32_t got;
};

static struct sigwait_shared *g_sigsh;

static void on_alarm_shared(int sig)
{
    (void)sig;
    atomic_fetch_add_explicit(&g_sigsh->alarms, 1, memory_order_relaxed);
}

static void forever_under_signals(const void *arg)
{
    g_sigsh = (struct sigwait_shared *)arg;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_alarm_shared;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 1000}, {0, 1000}};
    setitimer(ITIMER_REAL, &it, NULL);
    shmq_t *q = t_child_open("q", 0);
    int32_t v = -1;
    ssize_t n = shmq_recv(q, &v, sizeof(v), SHMQ_FOREVER);
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    CHILD_REQUIRE(n == (ssize_t)sizeof(v),
                  "a wait without limit returned %zd (%s) under signals", n,
                  n < 0 ? shmq_strerror((int)n) : "short");
    atomic_store(&g_sigsh->got, v);
    shmq_close(q);
}

Test(wait, signals_do_not_end_a_wait_without_limit)
{
    create_q("q", 4);
    shmq_t *q = t_open(shmq_admin_instance(t_adm), "q");
    struct sigwait_shared *sh = t_shared_alloc(sizeof(*sh));
    atomic_store(&sh->got, -1);
    unsigned kid = spawn(forever_under_signals, sh);
    /* Asleep, and interrupted many times while asleep. */
    int waited = 0;
    while (atomic_load(&sh->alarms) < 100 && waited++ < BOUND_MS) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    cr_assert_geq(atomic_load(&sh->alarms), 100);
    await_sleepers(q, 1, 1);
    int32_t v = 42;
    cr_assert_eq(shmq_send(q, &v, sizeof(v), 0), 0);
    reap_kid(kid, "consumer under signals");
    cr_assert_eq(atomic_load(&sh->got), 42);
    fprintf(stderr, "wait without limit survived %d signals\n",
            (int)atomic_load(&sh->alarms));
    shmq_close(q);
    munmap(sh, sizeof(*sh));
}

/* ---- (6) delete wakes every sleeper -------------------------------------------- */

enum del_role { DEL_RECV, DEL_LEASE, DEL_TIMED_RECV, DEL_SEND, DEL_RESERVE };

static void deleted_waiter(const void *arg)
{
    enum del_role role = (enum del_role)(intptr_t)arg;
    int full = role == DEL_SEND || role == DEL_RESERVE;
    shmq_t *q = t_child_open(full ? "full" : "empty", 0);
    char buf[64] = "y";
    shmq_msg_t m;
    shmq_resv_t rv;
    int rc = 0;
    switch (role) {
    case DEL_RECV:
        rc = (int)shmq_recv(q, buf, sizeof(buf), SHMQ_FOREVER);
        break;
    case DEL_LEASE:
        rc = shmq_lease(q, &m, SHMQ_FOREVER);
        break;
    case DEL_TIMED_RECV:
        rc = (int)shmq_recv(q, buf, sizeof(buf), 60 * SEC);
        break;
    case DEL_SEND:
        rc = shmq_send(q, buf, 1, SHMQ_FOREVER);
        break;
    case DEL_RESERVE:
        rc = shmq_reserve(q, &rv, SHMQ_FOREVER);
        break;
    }
    CHILD_REQUIRE(rc == -EIDRM, "waiter %d: %d (%s), expected -EIDRM",
                  (int)role, rc, shmq_strerror(rc));
    CHILD_REQUIRE(shmq_send(q, buf, 1, 0) == -EIDRM &&
                      shmq_recv(q, buf, sizeof(buf), 0) == -EIDRM,
                  "handle still works after delete");
    shmq_close(q);
}

Test(wait, delete_wakes_sleepers_with_eidrm)
{
    create_q("empty", 4);
    create_q("full", 2);
    shmq_t *e = t_open(shmq_admin_instance(t_adm), "empty");
    shmq_t *f = t_open(shmq_admin_instance(t_adm), "full");
    while (shmq_send(f, "x", 1, 0) == 0)
        ;
    const enum del_role empties[] = {DEL_RECV, DEL_RECV, DEL_LEASE,
                                     DEL_TIMED_RECV};
    const enum del_role fulls[] = {DEL_SEND, DEL_SEND, DEL_RESERVE};
    for (unsigned i = 0; i < 4; i++)
        spawn(deleted_waiter, (const void *)(intptr_t)empties[i]);
    for (unsigned i = 0; i < 3; i++)
        spawn(deleted_waiter, (const void *)(intptr_t)fulls[i]);
    await_sleepers(e, 1, 4);
    await_sleepers(f, 0, 3);
    cr_assert_eq(shmq_admin_delete(t_adm, "empty"), 0);
    cr_assert_eq(shmq_admin_delete(t_adm, "full"), 0);
    for (unsigned i = 0; i < t_nkids; i++)
        reap_kid(i, "waiter on a deleted queue");
    struct shmq_stats st = {.size = sizeof(st)};
    cr_assert_eq(shmq_stats(e, &st), -EIDRM);
    cr_assert_eq(shmq_send(f, "x", 1, 0), -EIDRM);
    shmq_close(e);
    shmq_close(f);
}

/* ---- (7) waiter counts die with the waiter --------------------------------- */

/* The three ways to read a queue's counters: the handle, the name (read
 * only) and the admin API (info, list). Asserts they agree on the waiter
 * counts. */
static void check_waiting(shmq_t *q, uint32_t producers, uint32_t consumers,
                          const char *when)
{
    struct shmq_stats st = t_stats(q);
    cr_assert(st.producers_waiting == producers &&
                  st.consumers_waiting == consumers,
              "%s: shmq_stats says %u producers, %u consumers waiting; "
              "expected %u, %u",
              when, st.producers_waiting, st.consumers_waiting, producers,
              consumers);
    struct shmq_stats bn = {.size = sizeof(bn)};
    int rc = shmq_stats_by_name(shmq_admin_instance(t_adm), shmq_name(q),
                                &bn);
    cr_assert_eq(rc, 0, "stats_by_name: %s", shmq_strerror(rc));
    cr_assert(bn.producers_waiting == producers &&
                  bn.consumers_waiting == consumers,
              "%s: shmq_stats_by_name says %u, %u; expected %u, %u", when,
              bn.producers_waiting, bn.consumers_waiting, producers,
              consumers);
    struct shmq_queue_info info;
    rc = shmq_admin_info(t_adm, shmq_name(q), &info);
    cr_assert_eq(rc, 0, "admin_info: %s", shmq_strerror(rc));
    cr_assert(info.stats.producers_waiting == producers &&
                  info.stats.consumers_waiting == consumers,
              "%s: shmq_admin_info says %u, %u; expected %u, %u", when,
              info.stats.producers_waiting, info.stats.consumers_waiting,
              producers, consumers);
    struct shmq_queue_info list[4];
    int n = shmq_admin_list(t_adm, list, 4);
    cr_assert_eq(n, 1, "admin_list: %d", n);
    cr_assert(list[0].stats.producers_waiting == producers &&
                  list[0].stats.consumers_waiting == consumers,
              "%s: shmq_admin_list says %u, %u; expected %u, %u", when,
              list[0].stats.producers_waiting,
              list[0].stats.consumers_waiting, producers, consumers);
}

static void recv_until_killed(const void *arg)
{
    (void)arg;
    shmq_t *q = t_child_open("q", 0);
    char buf[64];
    ssize_t n = shmq_recv(q, buf, sizeof(buf), SHMQ_FOREVER);
    CHILD_REQUIRE(0, "recv returned %zd; it should have slept until killed",
                  n);
}

Test(wait, a_sleeper_killed_is_no_longer_counted)
{
    create_q("q", 4);
    shmq_t *q = t_open(shmq_admin_instance(t_adm), "q");
    unsigned kid = spawn(recv_until_killed, NULL);
    await_sleepers(q, 1, 1);
    check_waiting(q, 0, 1, "asleep");
    cr_assert_eq(kill(t_kids[kid], SIGKILL), 0);
    int st = t_reap(t_kids[kid], BOUND_MS);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
              "the sleeper ended by itself (status %#x)", st);
    /* Killed, not yet repaired: its sleep record is still in the table
     * but names a dead process. */
    check_waiting(q, 0, 0, "killed, before repair");
    cr_assert_eq(shmq_admin_reap(t_adm, NULL), 1);
    check_waiting(q, 0, 0, "after reap");
    /* The queue goes on: a new sleeper is counted and woken. */
    struct wake_shared *sh = t_shared_alloc(sizeof(*sh));
    atomic_store(&sh->got[0], -1);
    struct sleeper who = {sh, 0};
    kid = spawn(sleeping_consumer, &who);
    await_sleepers(q, 1, 1);
    int32_t v = 7;
    cr_assert_eq(shmq_send(q, &v, sizeof(v), 0), 0);
    reap_kid(kid, "sleeping consumer after the reap");
    cr_assert_eq(atomic_load(&sh->got[0]), v);
    check_waiting(q, 0, 0, "woken");
    shmq_close(q);
    munmap(sh, sizeof(*sh));
}

/* More threads of one process asleep than it has sleep records (16). The
 * threads are the test's own (TSan cannot start threads in a child forked
 * from a process with threads). */
#define NTHREADS 18u

struct thread_arg {
    shmq_t *q;
    pid_t tid;
    _Atomic int ready; /* tid is set, the receive begins */
    int32_t got;
    ssize_t rc;
};

static void *thread_recv(void *arg)
{
    struct thread_arg *a = arg;
    a->tid = gettid();
    atomic_store(&a->ready, 1);
    /* Bounded, so that a lost wakeup fails the test instead of hanging
     * it, and longer than every wait of the test for the sleepers; the
     * wait takes the same path as one without limit. */
    a->rc = shmq_recv(a->q, &a->got, sizeof(a->got), 3 * BOUND_MS * MS);
    return NULL;
}

/* 1 if thread tid of this process is asleep (state S) in the kernel. */
static int task_sleeping(pid_t tid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    /* "tid (comm) S ...": the state follows the last ')'. */
    const char *p = strrchr(buf, ')');
    return p && p[1] == ' ' && p[2] == 'S';
}

Test(wait, threads_beyond_the_sleep_records_sleep_and_wake_uncounted)
{
    create_q("q", 32);
    shmq_t *q = t_open(shmq_admin_instance(t_adm), "q");
    shmq_t *rq = t_child_open("q", 0); /* spin 0: straight to sleep */
    static struct thread_arg ta[NTHREADS];
    pthread_t th[NTHREADS];
    for (unsigned i = 0; i < NTHREADS; i++) {
        ta[i].q = rq;
        ta[i].got = -1;
        atomic_store(&ta[i].ready, 0);
        cr_assert_eq(pthread_create(&th[i], NULL, thread_recv, &ta[i]), 0);
    }
    /* Every thread has begun its receive (after which nothing but the
     * futex puts it to sleep), and every one sleeps. */
    unsigned asleep = 0;
    for (int waited = 0; waited < BOUND_MS && asleep < NTHREADS; waited++) {
        asleep = 0;
        for (unsigned i = 0; i < NTHREADS; i++)
            if (atomic_load(&ta[i].ready))
                asleep += (unsigned)task_sleeping(ta[i].tid);
        if (asleep < NTHREADS) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    cr_assert_eq(asleep, NTHREADS, "%u of %u threads asleep", asleep,
                 NTHREADS);
    /* 16 records: two of the threads sleep uncounted. */
    await_sleepers(q, 1, 16);
    check_waiting(q, 0, 16, "18 threads asleep");
    for (int32_t k = 0; k < (int32_t)NTHREADS; k++)
        cr_assert_eq(shmq_send(q, &k, sizeof(k), 0), 0);
    uint32_t seen = 0;
    for (unsigned i = 0; i < NTHREADS; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(ta[i].rc, (ssize_t)sizeof(int32_t),
                     "thread %u: %zd (%s)", i, ta[i].rc,
                     ta[i].rc < 0 ? shmq_strerror((int)ta[i].rc) : "short");
        int32_t v = ta[i].got;
        cr_assert(v >= 0 && v < (int32_t)NTHREADS, "thread %u got %d", i, v);
        cr_assert_eq(seen & (1u << v), 0, "message %d received twice", v);
        seen |= 1u << v;
    }
    check_waiting(q, 0, 0, "all woken");
    shmq_close(rq);
    shmq_close(q);
}
