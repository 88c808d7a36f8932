/* SPDX-License-Identifier: MIT */
/* ctest-labels: crash */
/* ctest-timeout: 240 */
/*
 * Crash and repair (libshmq/src/repair.c, registry.c, process.c) with real
 * processes killed by SIGKILL at chosen points, through the public API
 * (shmq.h, admin.h). There is no supervisor here: the test plays it,
 * calling shmq_admin_repair and shmq_admin_reap itself.
 *   - a consumer dies holding a lease: the message comes back, same id,
 *     deliveries 2; repairing a live process is refused; repairing twice
 *     changes nothing;
 *   - a producer dies between reserve and commit: consumers pass the slot
 *     and get every later message;
 *   - a message that kills each consumer ends in the dead-letter ring after
 *     max_deliveries deliveries while the others flow;
 *   - SIGKILL at random and at chosen points of send and lease/ack loops,
 *     20 rounds, with single messages and with batches:
 *     nothing confirmed is lost, duplicates only after a death and marked
 *     as such, the queue drains;
 *   - fork: a child never acts under its parent's token, and outlives it;
 *   - reap finds the dead by itself;
 *   - a repair that cannot open a queue of the dead (no descriptor left)
 *     fails and keeps the entry, and a later repair finishes the job;
 *   - a registrant that saw an entry free, and takes its lock only after
 *     another process registered there and died, leaves that entry as
 *     the dead left it (white-box: registry.c, with fcntl interposed);
 *   - a process killed holding the admin lock releases it even if a child
 *     it forked earlier lives on (fcntl interposed to kill it there).
 * Children report to the test through pipes and MAP_SHARED memory; every
 * wait for them is bounded.
 */
#include <criterion/criterion.h>
#include <shmq/admin.h>
#include <shmq/shmq.h>

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "registry.h"

#define MS INT64_C(1000000)
#define SEC INT64_C(1000000000)
#define BOUND_MS 10000 /* every bounded wait of this file */

/* ---- children, fixture ------------------------------------------------- */

static void expect_exit0(pid_t pid, const char *what)
{
    t_reap_ok(pid, BOUND_MS, what);
}

static void kill_kid(pid_t pid)
{
    cr_assert_eq(kill(pid, SIGKILL), 0);
    int st = t_reap(pid, BOUND_MS);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
              "child %d ended before it was killed (status %#x)", (int)pid,
              st);
}

TestSuite(repair, .init = t_setup, .fini = t_teardown, .timeout = 120);

/* In a child: open a queue of the instance, default spin. */
static shmq_t *open_q(const char *name)
{
    return t_child_open(name, T_SPIN_DEFAULT);
}

static void create_q(const char *name, uint32_t capacity,
                     uint32_t max_deliveries)
{
    t_mkq(name, capacity, 64, max_deliveries, 4, 0);
}

static void pause_forever(void)
{
    for (;;)
        pause();
}

/* ---- reports from children through a pipe ------------------------------ */

struct hello {
    uint32_t role;
    uint32_t token;
    uint64_t id;
    uint32_t deliveries;
    int32_t pid;
    char data[16];
};

static void say(int fd, const struct hello *h)
{
    /* Less than PIPE_BUF: one atomic write. */
    CHILD_REQUIRE(write(fd, h, sizeof(*h)) == (ssize_t)sizeof(*h),
                  "pipe write");
}

static struct hello hear(int fd)
{
    struct hello h;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int rc = poll(&p, 1, BOUND_MS);
    cr_assert_eq(rc, 1, "no report from a child within %d ms", BOUND_MS);
    cr_assert_eq(read(fd, &h, sizeof(h)), (ssize_t)sizeof(h),
                 "short report (child died?)");
    return h;
}

static void make_pipe(int fds[2])
{
    cr_assert_eq(pipe2(fds, O_CLOEXEC), 0);
}

/* A child that leases one message, reports it with its token, and waits
 * to be killed (or exits at once, lease held, when arg->then_exit). */
struct leaser {
    const char *queue;
    int fd;
    uint32_t role;
    int then_exit;
};

static void leaser_main(const void *arg)
{
    const struct leaser *l = arg;
    shmq_t *q = open_q(l->queue);
    shmq_msg_t m;
    int rc = shmq_lease(q, &m, BOUND_MS * MS);
    CHILD_REQUIRE(rc == 0, "lease: %s", shmq_strerror(rc));
    struct hello h = {.role = l->role, .id = m.id,
                      .deliveries = m.deliveries, .pid = (int32_t)getpid()};
    CHILD_REQUIRE(shmq_token(q, &h.token) == 0, "token");
    memcpy(h.data, m.data, m.len < sizeof(h.data) ? m.len : sizeof(h.data));
    say(l->fd, &h);
    if (l->then_exit)
        _exit(0); /* dies holding the lease, without closing */
    pause_forever();
}

/* ---- (a) a consumer dies holding a lease ----------------------------------- */

static void same_counters(const struct shmq_stats *a,
                          const struct shmq_stats *b)
{
    cr_assert_eq(a->depth, b->depth);
    cr_assert_eq(a->in_flight, b->in_flight);
    cr_assert_eq(a->enqueued, b->enqueued);
    cr_assert_eq(a->dequeued, b->dequeued);
    cr_assert_eq(a->redelivered, b->redelivered);
    cr_assert_eq(a->retry_pending, b->retry_pending);
    cr_assert_eq(a->repaired, b->repaired);
    cr_assert_eq(a->skipped, b->skipped);
    cr_assert_eq(a->dead_lettered, b->dead_lettered);
}

Test(repair, dead_consumer_lease_is_delivered_again)
{
    create_q("q", 16, 5);
    shmq_t *q = t_open(t_inst, "q");
    cr_assert_eq(shmq_send(q, "hello-a", 8, 0), 0);
    int fds[2];
    make_pipe(fds);
    struct leaser l = {"q", fds[1], 0, 0};
    pid_t pid = t_spawn(leaser_main, &l);
    struct hello h = hear(fds[0]);
    cr_assert_eq(h.deliveries, 1);
    cr_assert_str_eq(h.data, "hello-a");

    /* Alive: repair refused, the message is not ours to take. */
    cr_assert_eq(shmq_admin_alive(t_adm, h.token), 1);
    struct shmq_repair_report rep = {.size = sizeof(rep)};
    cr_assert_eq(shmq_admin_repair(t_adm, h.token, &rep), -EBUSY);
    shmq_msg_t m;
    cr_assert_eq(shmq_lease(q, &m, 0), -EAGAIN);
    struct shmq_stats st = t_stats(q);
    cr_assert_eq(st.in_flight, 1);
    cr_assert_eq(st.depth, 0);

    kill_kid(pid);
    cr_assert_eq(shmq_admin_alive(t_adm, h.token), 0);
    /* Dead but not repaired: the lease still blocks the message. */
    cr_assert_eq(shmq_lease(q, &m, 0), -EAGAIN);

    cr_assert_eq(shmq_admin_repair(t_adm, h.token, &rep), 1);
    cr_assert_eq(rep.redelivered, 1);
    cr_assert_eq(rep.skipped, 0);
    struct shmq_stats s1 = t_stats(q);
    cr_assert_eq(s1.depth, 1);
    cr_assert_eq(s1.retry_pending, 1);
    cr_assert_eq(s1.in_flight, 0);
    cr_assert_eq(s1.repaired, 1);

    /* Again: harmless. */
    struct shmq_repair_report rep2 = {.size = sizeof(rep2)};
    cr_assert_eq(shmq_admin_repair(t_adm, h.token, &rep2), 0);
    cr_assert_eq(rep2.redelivered + rep2.skipped + rep2.dead_lettered, 0);
    cr_assert_eq(shmq_admin_reap(t_adm, NULL), 0);
    struct shmq_stats s2 = t_stats(q);
    same_counters(&s1, &s2);

    cr_assert_eq(shmq_lease(q, &m, 0), 0);
    cr_assert_eq(m.id, h.id, "id %llu, first delivered as %llu",
                 (unsigned long long)m.id, (unsigned long long)h.id);
    cr_assert_eq(m.deliveries, 2);
    cr_assert_eq(m.len, 8);
    cr_assert_str_eq((const char *)m.data, "hello-a");
    cr_assert_eq(shmq_ack(q, &m), 0);
    cr_assert_eq(shmq_lease(q, &m, 0), -EAGAIN);
    st = t_stats(q);
    cr_assert_eq(st.redelivered, 1);
    cr_assert_eq(st.dequeued, 1);
    cr_assert_eq(st.depth, 0);
    cr_assert_eq(st.in_flight, 0);
    close(fds[0]);
    close(fds[1]);
    shmq_close(q);
}

/* ---- (b) a producer dies between reserve and commit ------------------------ */

static void half_writer(const void *arg)
{
    int fd = *(const int *)arg;
    shmq_t *q = open_q("q");
    shmq_resv_t rv;
    int rc = shmq_reserve(q, &rv, BOUND_MS * MS);
    CHILD_REQUIRE(rc == 0, "reserve: %s", shmq_strerror(rc));
    memset(rv.data, 'h', rv.cap / 2);
    struct hello h = {.pid = (int32_t)getpid()};
    CHILD_REQUIRE(shmq_token(q, &h.token) == 0, "token");
    say(fd, &h);
    pause_forever();
}

static void ten_after(const void *arg)
{
    (void)arg;
    shmq_t *q = open_q("q");
    for (int i = 0; i < 10; i++) {
        char m[8];
        snprintf(m, sizeof(m), "a%d", i);
        int rc = shmq_send(q, m, sizeof(m), BOUND_MS * MS);
        CHILD_REQUIRE(rc == 0, "send: %s", shmq_strerror(rc));
    }
    shmq_close(q);
}

static void expect_msg(shmq_t *q, const char *want)
{
    char buf[64];
    ssize_t n = shmq_recv(q, buf, sizeof(buf), 0);
    cr_assert_eq(n, 8, "recv for %s: %zd (%s)", want, n,
                 n < 0 ? shmq_strerror((int)n) : "length");
    cr_assert_str_eq(buf, want);
}

Test(repair, dead_producer_slot_is_skipped)
{
    create_q("q", 16, 5);
    shmq_t *q = t_open(t_inst, "q");
    char m[8];
    for (int i = 0; i < 3; i++) {
        snprintf(m, sizeof(m), "b%d", i);
        cr_assert_eq(shmq_send(q, m, sizeof(m), 0), 0);
    }
    int fds[2];
    make_pipe(fds);
    pid_t writer = t_spawn(half_writer, &fds[1]);
    struct hello h = hear(fds[0]);
    expect_exit0(t_spawn(ten_after, NULL), "producer after the reserved slot");

    for (int i = 0; i < 3; i++) {
        snprintf(m, sizeof(m), "b%d", i);
        expect_msg(q, m);
    }
    /* The claimed slot holds the later ten back while its owner lives. */
    char buf[64];
    cr_assert_eq(shmq_recv(q, buf, sizeof(buf), 0), -EAGAIN);
    cr_assert_eq(t_stats(q).depth, 10);
    cr_assert_eq(shmq_admin_repair(t_adm, h.token, NULL), -EBUSY);

    kill_kid(writer);
    struct shmq_repair_report rep = {.size = sizeof(rep)};
    cr_assert_eq(shmq_admin_repair(t_adm, h.token, &rep), 1);
    cr_assert_eq(rep.skipped, 1);
    cr_assert_eq(rep.redelivered, 0);
    for (int i = 0; i < 10; i++) {
        snprintf(m, sizeof(m), "a%d", i);
        expect_msg(q, m);
    }
    cr_assert_eq(shmq_recv(q, buf, sizeof(buf), 0), -EAGAIN);
    struct shmq_stats st = t_stats(q);
    cr_assert_eq(st.skipped, 1);
    cr_assert_eq(st.enqueued, 13);
    cr_assert_eq(st.dequeued, 13);
    cr_assert_eq(st.depth, 0);
    cr_assert_eq(st.in_flight, 0);
    cr_assert_eq(shmq_admin_repair(t_adm, h.token, &rep), 0);
    cr_assert_eq(t_stats(q).skipped, 1);
    close(fds[0]);
    close(fds[1]);
    shmq_close(q);
}

/* ---- (c) a poison message ends in the dead-letter ring ---------------------- */

#define P_NORMAL 400u
#define P_AT 100u /* the poison goes after this many normal messages */
#define P_MAXDLV 3u

struct poison {
    _Atomic uint32_t stop;
    _Atomic uint32_t received;
    _Atomic uint32_t npoison;
    _Atomic uint64_t poison_id[8];
    _Atomic uint32_t poison_dlv[8];
    _Atomic uint32_t received_at_death[8];
    _Atomic uint32_t counts[P_NORMAL];
};

struct pmsg {
    char tag[8];
    uint32_t seq;
};

static void poison_producer(const void *arg)
{
    (void)arg;
    shmq_t *q = open_q("q");
    for (uint32_t i = 0; i <= P_NORMAL; i++) {
        struct pmsg m = {"normal", i < P_AT ? i : i - 1};
        if (i == P_AT)
            memcpy(m.tag, "poison", 7);
        int rc = shmq_send(q, &m, sizeof(m), 30 * SEC);
        CHILD_REQUIRE(rc == 0, "send %u: %s", i, shmq_strerror(rc));
    }
    shmq_close(q);
}

static void poison_consumer(const void *arg)
{
    struct poison *p = (struct poison *)arg;
    shmq_t *q = open_q("q");
    while (!atomic_load(&p->stop)) {
        shmq_msg_t m;
        int rc = shmq_lease(q, &m, 20 * MS);
        if (rc == -ETIMEDOUT)
            continue;
        CHILD_REQUIRE(rc == 0, "lease: %s", shmq_strerror(rc));
        CHILD_REQUIRE(m.len == sizeof(struct pmsg), "length %zu", m.len);
        struct pmsg pm;
        memcpy(&pm, m.data, sizeof(pm));
        if (strcmp(pm.tag, "poison") == 0) {
            uint32_t k = atomic_fetch_add(&p->npoison, 1);
            CHILD_REQUIRE(k < 8, "poison delivered %u times", k + 1);
            atomic_store(&p->poison_id[k], m.id);
            atomic_store(&p->poison_dlv[k], m.deliveries);
            atomic_store(&p->received_at_death[k],
                         atomic_load(&p->received));
            if (k % 2 == 1) {
                struct rlimit no_core = {0, 0};
                setrlimit(RLIMIT_CORE, &no_core);
                signal(SIGABRT, SIG_DFL);
                abort();
            }
            raise(SIGKILL);
        }
        CHILD_REQUIRE(strcmp(pm.tag, "normal") == 0 && pm.seq < P_NORMAL,
                      "bad message %.8s %u", pm.tag, pm.seq);
        CHILD_REQUIRE(m.deliveries == 1, "normal %u delivered %u times",
                      pm.seq, m.deliveries);
        atomic_fetch_add(&p->counts[pm.seq], 1);
        rc = shmq_ack(q, &m);
        CHILD_REQUIRE(rc == 0, "ack: %s", shmq_strerror(rc));
        atomic_fetch_add(&p->received, 1);
    }
    shmq_close(q);
}

Test(repair, poison_message_goes_to_dead_letters)
{
    create_q("q", 32, P_MAXDLV);
    /* The test registers only once the children are done, so that none
     * of them inherits a registration: every dead one reaped is a
     * consumer that died of the poison. */
    struct poison *p = t_shared_alloc(sizeof(*p));
    pid_t prod = t_spawn(poison_producer, NULL);
    pid_t cons[2] = {t_spawn(poison_consumer, p), t_spawn(poison_consumer, p)};
    unsigned deaths = 0;
    int reaped = 0;
    struct shmq_stats st;
    for (int waited = 0;; waited++) {
        cr_assert_lt(waited, 6 * BOUND_MS,
                     "stuck: %u of %u received, %u deaths",
                     atomic_load(&p->received), P_NORMAL, deaths);
        for (int c = 0; c < 2; c++) {
            int ws;
            if (waitpid(cons[c], &ws, WNOHANG) != cons[c])
                continue;
            t_untrack(cons[c]);
            cr_assert(WIFSIGNALED(ws) && (WTERMSIG(ws) == SIGKILL ||
                                          WTERMSIG(ws) == SIGABRT),
                      "consumer ended with status %#x", ws);
            deaths++;
            int n = shmq_admin_reap(t_adm, NULL);
            cr_assert_geq(n, 0, "reap: %s", shmq_strerror(n));
            reaped += n;
            cons[c] = t_spawn(poison_consumer, p);
        }
        st.size = sizeof(st);
        cr_assert_eq(shmq_stats_by_name(t_inst, "q", &st), 0);
        if (atomic_load(&p->received) == P_NORMAL && st.dlq_depth == 1)
            break;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    atomic_store(&p->stop, 1);
    expect_exit0(cons[0], "consumer");
    expect_exit0(cons[1], "consumer");
    expect_exit0(prod, "producer");

    /* Delivered exactly max_deliveries times, each delivery fatal. */
    cr_assert_eq(deaths, P_MAXDLV);
    cr_assert_eq(reaped, (int)P_MAXDLV);
    cr_assert_eq(atomic_load(&p->npoison), P_MAXDLV);
    for (unsigned k = 0; k < P_MAXDLV; k++) {
        cr_assert_eq(atomic_load(&p->poison_dlv[k]), k + 1);
        cr_assert_eq(atomic_load(&p->poison_id[k]),
                     atomic_load(&p->poison_id[0]));
    }
    for (unsigned i = 0; i < P_NORMAL; i++)
        cr_assert_eq(atomic_load(&p->counts[i]), 1, "normal %u: %u times", i,
                     atomic_load(&p->counts[i]));
    cr_assert_eq(shmq_admin_reap(t_adm, NULL), 0);
    shmq_t *q = t_open(t_inst, "q");

    st = t_stats(q);
    cr_assert_eq(st.dead_lettered, 1);
    cr_assert_eq(st.redelivered, P_MAXDLV - 1);
    cr_assert_eq(st.enqueued, P_NORMAL + 1);
    cr_assert_eq(st.dequeued, P_NORMAL);
    cr_assert_eq(st.depth, 0);
    cr_assert_eq(st.in_flight, 0);
    cr_assert_eq(st.dlq_depth, 1);

    shmq_t *d = t_child_open_ring("q", SHMQ_RING_DLQ, T_SPIN_DEFAULT);
    shmq_msg_t m;
    cr_assert_eq(shmq_lease(d, &m, 0), 0);
    struct pmsg pm;
    cr_assert_eq(m.len, sizeof(pm));
    memcpy(&pm, m.data, sizeof(pm));
    cr_assert_str_eq(pm.tag, "poison");
    cr_assert_eq(m.id, atomic_load(&p->poison_id[0]), "dead letter id");
    cr_assert_geq(m.deliveries, P_MAXDLV);
    cr_assert_eq(shmq_ack(d, &m), 0);
    cr_assert_eq(shmq_lease(d, &m, 0), -EAGAIN);
    cr_assert_eq(t_stats(q).dlq_depth, 0);
    fprintf(stderr,
            "poison: id %llu died with consumers at %u, %u, %u normal "
            "messages received; dead letter shows deliveries %u\n",
            (unsigned long long)m.id, atomic_load(&p->received_at_death[0]),
            atomic_load(&p->received_at_death[1]),
            atomic_load(&p->received_at_death[2]), m.deliveries);
    shmq_close(d);
    shmq_close(q);
    munmap(p, sizeof(*p));
}

/* ---- (d) SIGKILL at random and at chosen points ------------------------------ */

/*
 * Each round runs one producer (send loop, each success confirmed through
 * a pipe) and one consumer (lease, record, ack loop), then kills both with
 * SIGKILL and reaps. Where each dies is drawn per round:
 *   producer: at a random moment of its send loop, or holding a
 *             reservation it half wrote (a claimed, unpublished slot);
 *   consumer: at a random moment of its loop, or holding a lease it has
 *             already recorded (so the message must come back, marked).
 * The kills come in random order, a random moment apart.
 *
 * The batched variant sends with shmq_send_batch and leases with
 * shmq_lease_batch / shmq_ack_batch, batches of random sizes up to
 * K_BATCH: a producer killed inside a batch may leave several claimed
 * slots (skipped) and later ones of the batch published, and a consumer
 * killed between its lease and its ack holds a whole batch. A producer
 * that halts sends exactly its planned messages first; a consumer that
 * halts leases the message it halts on in a batch of its own, so that it
 * holds exactly one lease then, as in the single-message variant.
 */
/* TSan slows every atomic down: fewer kill rounds there (T_TSAN:
 * common.h). */
#ifdef T_TSAN
#define K_ITER 12u
#else
#define K_ITER 20u
#endif
#define K_MAXSEQ 4096u
#define K_MSG 48u
#define K_NOHALT UINT32_MAX
#define K_CAP 64u
#define K_BATCH 40u /* batched variant: batch sizes 1..K_BATCH */

struct kill_loop {
    _Atomic uint64_t consumed; /* records made by the current consumer */
    _Atomic uint32_t prod_halted, cons_halted;
    _Atomic uint32_t bad;
    _Atomic uint32_t rcv[K_ITER * K_MAXSEQ];      /* deliveries recorded */
    _Atomic uint32_t dlv_seen[K_ITER * K_MAXSEQ]; /* bit d: deliveries d */
};

struct kill_producer_arg {
    struct kill_loop *k;
    uint32_t iter;
    uint32_t halt_at; /* reserve this seq, write half, stop */
    int fd;
    uint32_t batch;   /* 0: shmq_send; else batches of 1..batch */
    uint64_t seed;    /* batch sizes */
};

struct kill_consumer_arg {
    struct kill_loop *k;
    uint32_t halt_at; /* stop holding the lease of this record */
    uint32_t batch;   /* 0: shmq_lease/shmq_ack; else batches of 1..batch */
    uint64_t seed;    /* batch sizes */
};

static uint64_t seed_of(void)
{
    const char *s = getenv("SHMQ_TEST_SEED");
    if (s && *s)
        return strtoull(s, NULL, 0);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
}

static uint32_t rnd(uint64_t *s)
{
    *s = *s * 6364136223846793005u + 1442695040888963407u;
    return (uint32_t)(*s >> 33);
}

static size_t k_make(uint8_t *buf, uint32_t iter, uint32_t seq)
{
    size_t len = 8 + (seq * 5u + iter) % (K_MSG - 8 + 1);
    memcpy(buf, &iter, 4);
    memcpy(buf + 4, &seq, 4);
    for (size_t i = 8; i < len; i++)
        buf[i] = (uint8_t)(iter * 7u + seq + i);
    return len;
}

/* Send messages seq.. of a batch of 1..a->batch, never past the seq the
 * producer halts at; returns how many were sent. */
static uint32_t k_send_batch(shmq_t *q, const struct kill_producer_arg *a,
                             uint64_t *s, uint32_t seq)
{
    uint8_t bufs[K_BATCH][K_MSG];
    struct iovec iov[K_BATCH];
    uint32_t end = a->halt_at < K_MAXSEQ ? a->halt_at : K_MAXSEQ;
    uint32_t n = 1 + rnd(s) % a->batch;
    if (n > end - seq)
        n = end - seq;
    for (uint32_t i = 0; i < n; i++)
        iov[i] = (struct iovec){bufs[i], k_make(bufs[i], a->iter, seq + i)};
    int rc = shmq_send_batch(q, iov, n, BOUND_MS * MS);
    CHILD_REQUIRE(rc >= 1 && (uint32_t)rc <= n, "send_batch of %u: %d (%s)",
                  n, rc, rc < 0 ? shmq_strerror(rc) : "count");
    return (uint32_t)rc;
}

static void kill_producer(const void *arg)
{
    const struct kill_producer_arg *a = arg;
    shmq_t *q = open_q("q");
    uint8_t buf[K_MSG];
    uint64_t s = a->seed;
    for (uint32_t seq = 0; seq < K_MAXSEQ;) {
        size_t len = k_make(buf, a->iter, seq);
        if (seq == a->halt_at) {
            shmq_resv_t rv;
            int rc = shmq_reserve(q, &rv, BOUND_MS * MS);
            CHILD_REQUIRE(rc == 0, "reserve: %s", shmq_strerror(rc));
            memcpy(rv.data, buf, len / 2);
            atomic_store(&a->k->prod_halted, 1);
            pause_forever();
        }
        uint32_t n = 1;
        if (a->batch) {
            n = k_send_batch(q, a, &s, seq);
        } else {
            int rc = shmq_send(q, buf, len, BOUND_MS * MS);
            CHILD_REQUIRE(rc == 0, "send: %s", shmq_strerror(rc));
        }
        /* Confirmed only after the send returned: one write (less than
         * PIPE_BUF) for the whole batch. */
        uint32_t seqs[K_BATCH];
        for (uint32_t i = 0; i < n; i++)
            seqs[i] = seq + i;
        CHILD_REQUIRE(write(a->fd, seqs, n * sizeof(seqs[0])) ==
                          (ssize_t)(n * sizeof(seqs[0])),
                      "confirm");
        seq += n;
    }
    pause_forever();
}

/* Record one delivery; 0 if it breaks a rule. */
static int k_record(struct kill_loop *k, const shmq_msg_t *m)
{
    uint32_t iter, seq;
    uint8_t want[K_MSG];
    if (m->len < 8 || m->deliveries == 0)
        return 0;
    memcpy(&iter, m->data, 4);
    memcpy(&seq, (const uint8_t *)m->data + 4, 4);
    if (iter >= K_ITER || seq >= K_MAXSEQ)
        return 0;
    size_t len = k_make(want, iter, seq);
    if (m->len != len || memcmp(m->data, want, len) != 0)
        return 0;
    uint32_t bit = 1u << (m->deliveries < 31 ? m->deliveries : 31);
    uint32_t key = iter * K_MAXSEQ + seq;
    atomic_fetch_add(&k->rcv[key], 1);
    /* Two deliveries of one message never carry the same count. */
    return (atomic_fetch_or(&k->dlv_seen[key], bit) & bit) == 0;
}

/* How many to lease next (batched): 1..a->batch, but the record the
 * consumer halts on comes alone in its batch. */
static uint32_t k_lease_size(const struct kill_consumer_arg *a, uint64_t *s,
                             uint32_t n)
{
    uint32_t want = 1 + rnd(s) % a->batch;
    if (a->halt_at == K_NOHALT)
        return want;
    if (n == a->halt_at)
        return 1;
    return want < a->halt_at - n ? want : a->halt_at - n;
}

static void kill_consumer(const void *arg)
{
    const struct kill_consumer_arg *a = arg;
    struct kill_loop *k = a->k;
    shmq_t *q = open_q("q");
    uint64_t s = a->seed;
    shmq_msg_t ms[K_BATCH];
    for (uint32_t n = 0;;) {
        uint32_t want = a->batch ? k_lease_size(a, &s, n) : 1;
        int got = a->batch ? shmq_lease_batch(q, ms, want, BOUND_MS * MS)
                           : shmq_lease(q, &ms[0], BOUND_MS * MS);
        if (got == -ETIMEDOUT)
            continue;
        CHILD_REQUIRE(got >= 0, "lease: %s", shmq_strerror(got));
        got = a->batch ? got : 1;
        CHILD_REQUIRE(got >= 1 && (uint32_t)got <= want,
                      "lease_batch of %u: %d", want, got);
        /* Every message is recorded before it is acked: a kill never
         * loses the record of an acked message. */
        for (int i = 0; i < got; i++)
            if (!k_record(k, &ms[i])) {
                atomic_store(&k->bad, 1);
                CHILD_REQUIRE(0, "bad delivery id %llu deliveries %u",
                              (unsigned long long)ms[i].id,
                              ms[i].deliveries);
            }
        if (n == a->halt_at) { /* got is 1 here */
            atomic_store(&k->cons_halted, 1);
            pause_forever();
        }
        n += (uint32_t)got;
        int rc = a->batch ? shmq_ack_batch(q, ms, (size_t)got)
                          : shmq_ack(q, &ms[0]);
        CHILD_REQUIRE(rc == (a->batch ? got : 0), "ack: %d (%s)", rc,
                      rc < 0 ? shmq_strerror(rc) : "count");
        atomic_fetch_add(&k->consumed, (uint64_t)got);
    }
}

/* Read what confirmations are there; returns 0 at end of file. */
static int k_drain(int fd, uint8_t *confirmed, uint32_t iter, uint32_t *n)
{
    uint32_t seqs[256];
    for (;;) {
        ssize_t r = read(fd, seqs, sizeof(seqs));
        if (r == 0)
            return 0;
        if (r < 0) {
            cr_assert_eq(errno, EAGAIN, "pipe read");
            return 1;
        }
        cr_assert_eq(r % 4, 0);
        for (ssize_t i = 0; i < r / 4; i++) {
            cr_assert_lt(seqs[i], K_MAXSEQ);
            confirmed[iter * K_MAXSEQ + seqs[i]] = 1;
            (*n)++;
        }
    }
}

/*
 * Targets both processes reach while both live. The consumer's target c
 * counts leases (when it halts on one) or acks; the producer's p counts
 * confirmed sends (when it halts, it then reserves seq p).
 *   - the consumer reaches c if left + p >= c, left being the messages
 *     waiting from earlier rounds;
 *   - when the consumer halts holding its c-th lease, c - 1 slots were
 *     freed and the queue is empty at the start of the round (see the
 *     caller), so the producer sends p <= K_CAP + c - 1 messages, or
 *     p <= K_CAP + c - 2 and still finds a slot to reserve.
 */
static void kill_targets(uint64_t *s, uint32_t left, int prod_halts,
                         int cons_halts, uint32_t *p, uint32_t *c)
{
    *c = 1 + rnd(s) % 400;
    uint32_t hi = !cons_halts ? 400 : prod_halts ? K_CAP + *c - 2
                                                 : K_CAP + *c - 1;
    uint32_t lo = prod_halts && *c > left ? *c - left : 0;
    *p = lo + rnd(s) % (hi - lo + 1);
}

/* At most how many leases or claims one process holds (batch 0: one). */
static uint32_t k_held_max(uint32_t batch)
{
    return batch ? batch : 1;
}

static uint64_t k_seed(uint64_t *s)
{
    uint64_t hi = rnd(s);
    return hi << 32 | rnd(s);
}

/* One round: run, kill, reap. */
static void kill_round(struct kill_loop *k, uint8_t *confirmed, uint32_t it,
                       uint64_t *s, int prod_halts, int cons_halts,
                       uint32_t left, uint32_t batch)
{
    uint32_t want_sent, want_used;
    kill_targets(s, left, prod_halts, cons_halts, &want_sent, &want_used);
    atomic_store(&k->consumed, 0);
    atomic_store(&k->prod_halted, 0);
    atomic_store(&k->cons_halted, 0);
    /* Seeds for the batch sizes only in the batched variant: a seed
     * replays the single-message variant as before. */
    uint64_t cseed = batch ? k_seed(s) : 0;
    uint64_t pseed = batch ? k_seed(s) : 0;
    struct kill_consumer_arg ca = {k, cons_halts ? want_used - 1 : K_NOHALT,
                                   batch, cseed};
    pid_t cons = t_spawn(kill_consumer, &ca);
    int fds[2];
    cr_assert_eq(pipe2(fds, O_CLOEXEC), 0);
    struct kill_producer_arg pa = {k, it, prod_halts ? want_sent : K_NOHALT,
                                   fds[1], batch, pseed};
    pid_t prod = t_spawn(kill_producer, &pa);
    close(fds[1]);
    cr_assert_eq(fcntl(fds[0], F_SETFL, O_NONBLOCK), 0);

    uint32_t sent = 0;
    for (int waited = 0;; waited++) {
        cr_assert_lt(waited, 100 * BOUND_MS,
                     "round %u: stuck at %u sent, %llu consumed", it, sent,
                     (unsigned long long)atomic_load(&k->consumed));
        cr_assert(k_drain(fds[0], confirmed, it, &sent),
                  "producer ended early");
        int p_ok = prod_halts ? atomic_load(&k->prod_halted) != 0
                              : sent >= want_sent;
        int c_ok = cons_halts ? atomic_load(&k->cons_halted) != 0
                              : atomic_load(&k->consumed) >= want_used;
        if (p_ok && c_ok)
            break;
        struct timespec ts = {0, 10000};
        nanosleep(&ts, NULL);
    }
    /* Kill both, in a random order, a random moment apart. */
    int pf = rnd(s) % 2;
    kill_kid(pf ? prod : cons);
    for (uint32_t spin = rnd(s) % 20000; spin; spin--)
        __asm__ __volatile__("" ::: "memory");
    kill_kid(pf ? cons : prod);
    while (k_drain(fds[0], confirmed, it, &sent))
        ;
    close(fds[0]);
    if (prod_halts)
        cr_assert_eq(sent, want_sent);

    struct shmq_repair_report rep = {.size = sizeof(rep)};
    int n = shmq_admin_reap(t_adm, &rep);
    cr_assert_eq(n, 2, "round %u: reap repaired %d processes", it, n);
    if (cons_halts)
        cr_assert_eq(rep.redelivered, 1, "round %u: the held lease", it);
    else
        cr_assert_leq(rep.redelivered, k_held_max(batch));
    if (prod_halts)
        cr_assert_eq(rep.skipped, 1, "round %u: the held reservation", it);
    else
        cr_assert_leq(rep.skipped, k_held_max(batch));
}

/* Take everything waiting, here (passing skipped slots too). */
static uint64_t k_drain_queue(shmq_t *q, struct kill_loop *k)
{
    shmq_msg_t m;
    int rc;
    uint64_t n = 0;
    while ((rc = shmq_lease(q, &m, 0)) == 0) {
        cr_assert(k_record(k, &m), "bad delivery id %llu deliveries %u",
                  (unsigned long long)m.id, m.deliveries);
        cr_assert_eq(shmq_ack(q, &m), 0);
        n++;
    }
    cr_assert_eq(rc, -EAGAIN, "drain: %s", shmq_strerror(rc));
    return n;
}

/* The whole test, single messages (batch 0) or batched. */
static void kill_test(uint32_t batch, const char *label)
{
    create_q("q", K_CAP, 0); /* no dead-lettering: nothing may leave */
    shmq_t *q = t_open(t_inst, "q");
    struct kill_loop *k = t_shared_alloc(sizeof(*k));
    uint8_t *confirmed = calloc(K_ITER * K_MAXSEQ, 1);
    uint8_t prod_halts[K_ITER], cons_halts[K_ITER];
    cr_assert_not_null(confirmed);
    uint64_t seed = seed_of();
    uint64_t s = seed;
    fprintf(stderr, "%s: SHMQ_TEST_SEED=%#llx\n", label,
            (unsigned long long)seed);
    unsigned n_ph = 0, n_ch = 0;
    uint64_t drained = 0;
    for (uint32_t it = 0; it < K_ITER; it++) {
        /* Every combination in the first four rounds, then at random. */
        uint32_t mode = it < 4 ? it : rnd(&s) % 4;
        prod_halts[it] = (uint8_t)(mode & 1u);
        cons_halts[it] = (uint8_t)(mode >> 1);
        n_ph += prod_halts[it];
        n_ch += cons_halts[it];
        /* A consumer that halts on a lease stops freeing slots: start
         * such a round from an empty queue so that the producer's target
         * stays reachable. Other rounds begin with what the last one
         * left (redeliveries, skipped slots). */
        if (cons_halts[it])
            drained += k_drain_queue(q, k);
        uint64_t left = t_stats(q).depth;
        cr_assert_leq(left, K_CAP);
        kill_round(k, confirmed, it, &s, prod_halts[it], cons_halts[it],
                   (uint32_t)left, batch);
    }

    drained += k_drain_queue(q, k);
    cr_assert_eq(atomic_load(&k->bad), 0);

    uint64_t conf = 0, got = 0, dups = 0, extra = 0;
    for (uint32_t it = 0; it < K_ITER; it++) {
        uint32_t next = 0; /* first seq not confirmed */
        for (uint32_t seq = 0; seq < K_MAXSEQ; seq++)
            if (confirmed[it * K_MAXSEQ + seq])
                next = seq + 1;
        for (uint32_t seq = 0; seq < K_MAXSEQ; seq++) {
            uint32_t key = it * K_MAXSEQ + seq;
            uint32_t r = atomic_load(&k->rcv[key]);
            if (confirmed[key]) {
                conf++;
                cr_assert_geq(r, 1, "round %u seq %u: confirmed, lost", it,
                              seq);
            } else if (r) {
                /* Sent, then killed before confirming: only the next
                 * one (of a batch: the next batch, perhaps not all of
                 * it), and never the half-written reservation. */
                cr_assert(seq >= next && seq - next < k_held_max(batch) &&
                              !prod_halts[it],
                          "round %u seq %u received, never sent", it, seq);
            }
            if (r) {
                /* The last delivery was acked, so it was recorded: the
                 * highest count seen is how often it was delivered (a
                 * consumer killed before recording hides one). */
                uint32_t seen = atomic_load(&k->dlv_seen[key]);
                uint32_t highest = 31u - (uint32_t)__builtin_clz(seen);
                got++;
                dups += r - 1;
                extra += highest - 1;
            }
        }
    }
    /* A redelivery only for a consumer killed holding a lease: at least
     * the held ones, at most one per round (a batch per round). */
    cr_assert_geq(dups, n_ch);
    cr_assert_leq(dups, extra);
    cr_assert_leq(extra, K_ITER * k_held_max(batch));
    struct shmq_stats st = t_stats(q);
    cr_assert_eq(st.redelivered, extra, "redelivered %llu, seen %llu",
                 (unsigned long long)st.redelivered,
                 (unsigned long long)extra);
    cr_assert_eq(st.depth, 0);
    cr_assert_eq(st.in_flight, 0);
    cr_assert_eq(st.retry_pending, 0);
    cr_assert_eq(st.enqueued, st.dequeued);
    cr_assert_eq(st.enqueued, got, "enqueued %llu, distinct received %llu",
                 (unsigned long long)st.enqueued, (unsigned long long)got);
    cr_assert_geq(st.skipped, n_ph);
    cr_assert_leq(st.skipped, K_ITER * k_held_max(batch));
    cr_assert_eq(shmq_admin_reap(t_adm, NULL), 0);
    struct shmq_proc_info pi[4];
    cr_assert_eq(shmq_admin_procs(t_adm, pi, 4), 1, "only the test left");
    fprintf(stderr,
            "%s: %u rounds (%u producers held a reservation, %u "
            "consumers a lease), %llu confirmed, %llu distinct received, "
            "%llu duplicates, %llu redelivered, %llu skipped, %llu drained "
            "by the test; waiting counts after: producers %u consumers %u\n",
            label, K_ITER, n_ph, n_ch, (unsigned long long)conf,
            (unsigned long long)got, (unsigned long long)dups,
            (unsigned long long)st.redelivered,
            (unsigned long long)st.skipped, (unsigned long long)drained,
            st.producers_waiting, st.consumers_waiting);
    free(confirmed);
    munmap(k, sizeof(*k));
    shmq_close(q);
}

Test(repair, kill_at_random_and_chosen_points, .timeout = 200)
{
    kill_test(0, "kill points");
}

Test(repair, kill_batches_at_random_and_chosen_points, .timeout = 200)
{
    kill_test(K_BATCH, "kill points, batches");
}

/* ---- (e) fork ---------------------------------------------------------------- */

struct fork_arg {
    shmq_t *q;
    shmq_msg_t m;       /* the parent's lease */
    uint32_t ptoken;    /* the parent's token */
};

static void forked_child(const void *arg)
{
    const struct fork_arg *a = arg;
    shmq_msg_t m = a->m;
    int rc = shmq_ack(a->q, &m);
    CHILD_REQUIRE(rc == -ESTALE, "ack of the parent's lease: %d", rc);
    rc = shmq_nack(a->q, &m);
    CHILD_REQUIRE(rc == -ESTALE, "nack of the parent's lease: %d", rc);
    uint32_t tok = 0;
    CHILD_REQUIRE(shmq_token(a->q, &tok) == 0, "token");
    CHILD_REQUIRE(tok != a->ptoken, "child acts under its parent's token %#x",
                  tok);
    /* The inherited handle works for the child as itself. */
    char buf[64];
    ssize_t n = shmq_recv(a->q, buf, sizeof(buf), 0);
    CHILD_REQUIRE(n == 2 && memcmp(buf, "x", 2) == 0, "recv: %zd", n);
    /* "m" is still the parent's: nothing to lease. */
    shmq_msg_t other;
    CHILD_REQUIRE(shmq_lease(a->q, &other, 0) == -EAGAIN,
                  "the parent's leased message was leased again");
    rc = shmq_send(a->q, "from-child", 11, 0);
    CHILD_REQUIRE(rc == 0, "send: %s", shmq_strerror(rc));
    /* Ends without closing: its registration dies with it. */
}

Test(repair, fork_child_never_uses_parent_token)
{
    create_q("q", 16, 5);
    shmq_t *q = t_open(t_inst, "q");
    struct fork_arg a = {.q = q};
    cr_assert_eq(shmq_send(q, "m", 2, 0), 0);
    cr_assert_eq(shmq_send(q, "x", 2, 0), 0);
    cr_assert_eq(shmq_lease(q, &a.m, 0), 0);
    cr_assert_str_eq((const char *)a.m.data, "m");
    cr_assert_eq(shmq_token(q, &a.ptoken), 0);

    expect_exit0(t_spawn(forked_child, &a), "forked child");
    uint32_t tok = 0;
    cr_assert_eq(shmq_token(q, &tok), 0);
    cr_assert_eq(tok, a.ptoken, "the parent's token changed");
    cr_assert_eq(shmq_ack(q, &a.m), 0, "the parent's lease was lost");
    char buf[64];
    cr_assert_eq(shmq_recv(q, buf, sizeof(buf), 0), 11);
    cr_assert_str_eq(buf, "from-child");
    cr_assert_eq(shmq_recv(q, buf, sizeof(buf), 0), -EAGAIN);
    /* The child ended without closing: a dead registration to reap. */
    cr_assert_eq(shmq_admin_reap(t_adm, NULL), 1);
    shmq_close(q);
}

/* A process that leases, forks, and dies: its child lives on as itself. */
enum { ROLE_PARENT = 1, ROLE_CHILD = 2, ROLE_DONE = 3 };

struct orphan_arg {
    int up, cmd_r, cmd_w;
};

static void orphaned_child(shmq_t *q, int up, int cmd)
{
    struct hello h = {.role = ROLE_CHILD, .pid = (int32_t)getpid()};
    CHILD_REQUIRE(shmq_token(q, &h.token) == 0, "token");
    say(up, &h);
    char c;
    CHILD_REQUIRE(read(cmd, &c, 1) == 1, "the test went away");
    /* The parent is dead and repaired by now. */
    char buf[64];
    int rc = shmq_send(q, "orphan", 7, 0);
    CHILD_REQUIRE(rc == 0, "send: %s", shmq_strerror(rc));
    ssize_t n = shmq_recv(q, buf, sizeof(buf), 0);
    CHILD_REQUIRE(n == 7 && strcmp(buf, "orphan") == 0, "recv: %zd", n);
    uint32_t tok = 0;
    CHILD_REQUIRE(shmq_token(q, &tok) == 0 && tok == h.token,
                  "token changed from %#x to %#x", h.token, tok);
    struct hello done = {.role = ROLE_DONE, .pid = (int32_t)getpid()};
    say(up, &done);
    shmq_close(q);
}

static void dying_parent(const void *arg)
{
    const struct orphan_arg *a = arg;
    close(a->cmd_w);
    shmq_t *q = open_q("q");
    shmq_msg_t m;
    int rc = shmq_lease(q, &m, BOUND_MS * MS);
    CHILD_REQUIRE(rc == 0, "lease: %s", shmq_strerror(rc));
    struct hello h = {.role = ROLE_PARENT, .id = m.id,
                      .deliveries = m.deliveries};
    CHILD_REQUIRE(shmq_token(q, &h.token) == 0, "token");
    pid_t c = fork();
    CHILD_REQUIRE(c >= 0, "fork");
    if (c == 0) {
        orphaned_child(q, a->up, a->cmd_r);
        _exit(0);
    }
    h.pid = (int32_t)c;
    say(a->up, &h);
    pause_forever();
}

Test(repair, fork_child_outlives_its_parent)
{
    /* The grandchild becomes ours when its parent dies. */
    cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    create_q("q", 16, 5);
    shmq_t *q = t_open(t_inst, "q");
    cr_assert_eq(shmq_send(q, "p-lease", 8, 0), 0);
    int up[2], cmd[2];
    make_pipe(up);
    make_pipe(cmd);
    struct orphan_arg a = {up[1], cmd[0], cmd[1]};
    pid_t parent = t_spawn(dying_parent, &a);
    close(cmd[0]);
    struct hello hp = {0}, hc = {0};
    for (int i = 0; i < 2; i++) {
        struct hello h = hear(up[0]);
        if (h.role == ROLE_PARENT)
            hp = h;
        else if (h.role == ROLE_CHILD)
            hc = h;
    }
    cr_assert(hp.role == ROLE_PARENT && hc.role == ROLE_CHILD);
    t_track(hc.pid);
    cr_assert_eq(hp.pid, hc.pid);
    cr_assert_neq(hp.token, hc.token, "child registered as its parent");
    cr_assert_eq(hp.deliveries, 1);
    cr_assert_eq(shmq_admin_alive(t_adm, hp.token), 1);
    cr_assert_eq(shmq_admin_alive(t_adm, hc.token), 1);

    kill_kid(parent);
    cr_assert_eq(shmq_admin_alive(t_adm, hp.token), 0);
    cr_assert_eq(shmq_admin_alive(t_adm, hc.token), 1,
                 "the child's registration died with its parent");
    cr_assert_eq(shmq_admin_repair(t_adm, hc.token, NULL), -EBUSY);
    struct shmq_repair_report rep = {.size = sizeof(rep)};
    cr_assert_eq(shmq_admin_reap(t_adm, &rep), 1);
    cr_assert_eq(rep.redelivered, 1);
    cr_assert_eq(shmq_admin_alive(t_adm, hc.token), 1);

    struct shmq_proc_info pi[8];
    int np = shmq_admin_procs(t_adm, pi, 8);
    cr_assert_eq(np, 2, "registered: %d (the test and the child)", np);
    int found = 0;
    for (int i = 0; i < np; i++) {
        cr_assert_neq(pi[i].token, hp.token, "dead parent still listed");
        if (pi[i].token == hc.token) {
            found = 1;
            cr_assert_eq(pi[i].state, SHMQ_PROC_ALIVE);
            cr_assert_eq(pi[i].alive, 1);
            cr_assert_eq(pi[i].pid, hc.pid);
        }
    }
    cr_assert(found, "child not listed");

    /* The parent's lease came back. */
    shmq_msg_t m;
    cr_assert_eq(shmq_lease(q, &m, 0), 0);
    cr_assert_eq(m.id, hp.id);
    cr_assert_eq(m.deliveries, 2);
    cr_assert_str_eq((const char *)m.data, "p-lease");
    cr_assert_eq(shmq_ack(q, &m), 0);

    /* The child goes on as itself. */
    cr_assert_eq(write(cmd[1], "g", 1), 1);
    struct hello d = hear(up[0]);
    cr_assert_eq(d.role, ROLE_DONE);
    expect_exit0(hc.pid, "orphaned child");
    /* It closed the handle it used, not the one it inherited from the
     * test through its parent: still registered when it ended. */
    cr_assert_eq(shmq_admin_reap(t_adm, NULL), 1);
    cr_assert_eq(shmq_admin_alive(t_adm, hc.token), 0);
    cr_assert_eq(t_stats(q).depth, 0);
    close(up[0]);
    close(up[1]);
    close(cmd[1]);
    shmq_close(q);
    prctl(PR_SET_CHILD_SUBREAPER, 0);
}

/* ---- (f) reap finds the dead by itself --------------------------------------- */

struct live_arg {
    int up, cmd;
};

static void live_main(const void *arg)
{
    const struct live_arg *a = arg;
    shmq_t *q = open_q("q");
    struct hello h = {.role = 9, .pid = (int32_t)getpid()};
    CHILD_REQUIRE(shmq_token(q, &h.token) == 0, "token");
    say(a->up, &h);
    char c;
    CHILD_REQUIRE(read(a->cmd, &c, 1) == 1, "the test went away");
    shmq_close(q);
}

Test(repair, reap_finds_dead_processes)
{
    create_q("q", 16, 5);
    shmq_t *q = t_open(t_inst, "q");
    for (int i = 0; i < 4; i++) {
        char m[8];
        snprintf(m, sizeof(m), "r%d", i);
        cr_assert_eq(shmq_send(q, m, sizeof(m), 0), 0);
    }
    int up[2], cmd[2];
    make_pipe(up);
    make_pipe(cmd);
    struct leaser ls[4];
    pid_t pids[4];
    for (uint32_t i = 0; i < 4; i++) {
        /* Three are killed; the fourth exits holding its lease. */
        ls[i] = (struct leaser){"q", up[1], i, i == 3};
        pids[i] = t_spawn(leaser_main, &ls[i]);
    }
    struct live_arg la = {up[1], cmd[0]};
    pid_t live = t_spawn(live_main, &la);
    uint64_t ids[4] = {0};
    uint32_t live_token = 0;
    for (int i = 0; i < 5; i++) {
        struct hello h = hear(up[0]);
        if (h.role == 9) {
            live_token = h.token;
            continue;
        }
        cr_assert_lt(h.role, 4);
        cr_assert_eq(h.deliveries, 1);
        ids[h.role] = h.id;
    }
    for (int i = 0; i < 3; i++)
        kill_kid(pids[i]);
    expect_exit0(pids[3], "leaser that exits");

    struct shmq_repair_report rep = {.size = sizeof(rep)};
    cr_assert_eq(shmq_admin_reap(t_adm, &rep), 4);
    cr_assert_eq(rep.redelivered, 4);
    cr_assert_eq(rep.skipped, 0);
    struct shmq_repair_report rep2 = {.size = sizeof(rep2)};
    cr_assert_eq(shmq_admin_reap(t_adm, &rep2), 0);
    cr_assert_eq(rep2.redelivered, 0);
    cr_assert_eq(shmq_admin_alive(t_adm, live_token), 1);
    cr_assert_eq(shmq_admin_procs(t_adm, NULL, 0), 2,
                 "the test and the live child");

    unsigned seen = 0;
    for (int i = 0; i < 4; i++) {
        shmq_msg_t m;
        cr_assert_eq(shmq_lease(q, &m, 0), 0);
        cr_assert_eq(m.deliveries, 2);
        int which = -1;
        for (int k = 0; k < 4; k++)
            if (ids[k] == m.id)
                which = k;
        cr_assert_geq(which, 0, "id %llu was not leased by the dead",
                      (unsigned long long)m.id);
        seen |= 1u << which;
        cr_assert_eq(shmq_ack(q, &m), 0);
    }
    cr_assert_eq(seen, 15u);
    shmq_msg_t m;
    cr_assert_eq(shmq_lease(q, &m, 0), -EAGAIN);
    struct shmq_stats st = t_stats(q);
    cr_assert_eq(st.repaired, 4);
    cr_assert_eq(st.redelivered, 4);
    cr_assert_eq(st.dequeued, 4);
    cr_assert_eq(write(cmd[1], "g", 1), 1);
    expect_exit0(live, "live child");
    /* It closed its own handle, not the one inherited from the test. */
    cr_assert_eq(shmq_admin_reap(t_adm, NULL), 1);
    cr_assert_eq(shmq_admin_reap(t_adm, NULL), 0);
    close(up[0]);
    close(up[1]);
    close(cmd[0]);
    close(cmd[1]);
    shmq_close(q);
}

/* ---- (g) a repair that cannot reach a queue ---------------------------------- */

/* Take every descriptor this process may still open: lower the soft limit
 * to just above the highest one in use and fill the holes below it. Every
 * open (shm_open of a queue segment included) then fails with EMFILE. */
struct fd_hog {
    struct rlimit old;
    int fds[256];
    unsigned n;
};

static void fds_take_all(struct fd_hog *h)
{
    int high = 0;
    DIR *d = opendir("/proc/self/fd");
    cr_assert_not_null(d, "/proc/self/fd");
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        int fd = atoi(e->d_name);
        high = fd > high ? fd : high;
    }
    closedir(d);
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &h->old), 0);
    struct rlimit low = h->old;
    low.rlim_cur = (rlim_t)high + 1;
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    h->n = 0;
    for (;;) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            cr_assert_eq(errno, EMFILE, "open: %s", strerror(errno));
            break;
        }
        cr_assert_lt(h->n, sizeof(h->fds) / sizeof(h->fds[0]));
        h->fds[h->n++] = fd;
    }
}

static void fds_give_back(struct fd_hog *h)
{
    for (unsigned i = 0; i < h->n; i++)
        close(h->fds[i]);
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &h->old), 0);
}

/* An entry freed while a slot still names its index would leave that
 * slot to whoever registers at the index next: the lease never comes
 * back, a claim would hold consumers back for good. */
Test(repair, repair_that_cannot_open_a_queue_keeps_the_entry)
{
    create_q("q", 16, 5);
    shmq_t *q = t_open(t_inst, "q");
    cr_assert_eq(shmq_send(q, "hello-g", 8, 0), 0);
    int fds[2];
    make_pipe(fds);
    struct leaser l = {"q", fds[1], 0, 0};
    pid_t pid = t_spawn(leaser_main, &l);
    struct hello h = hear(fds[0]);
    kill_kid(pid);

    struct fd_hog hog;
    struct shmq_repair_report rep = {.size = sizeof(rep)};
    fds_take_all(&hog);
    int rc = shmq_admin_repair(t_adm, h.token, &rep);
    int reaped = shmq_admin_reap(t_adm, NULL);
    fds_give_back(&hog);
    cr_assert_eq(rc, -EMFILE, "repair without a descriptor to open the "
                 "queue: %d (%s), expected -EMFILE", rc, shmq_strerror(rc));
    cr_assert_eq(reaped, 0);

    /* Still in the table, found dead; its lease still held. */
    struct shmq_proc_info pi[4];
    int n = shmq_admin_procs(t_adm, pi, 4);
    int found = 0;
    for (int i = 0; i < n && i < 4; i++)
        if (pi[i].token == h.token) {
            found = 1;
            cr_assert_eq(pi[i].state, SHMQ_PROC_DEAD);
            cr_assert_eq(pi[i].alive, 0);
        }
    cr_assert(found, "the entry of the dead was freed before its repair");
    cr_assert_eq(t_stats(q).in_flight, 1);

    /* With descriptors again, the periodic reap finishes the repair. */
    cr_assert_eq(shmq_admin_reap(t_adm, &rep), 1);
    cr_assert_eq(rep.redelivered, 1);
    shmq_msg_t m;
    cr_assert_eq(shmq_lease(q, &m, 0), 0);
    cr_assert_eq(m.id, h.id);
    cr_assert_eq(m.deliveries, 2);
    cr_assert_eq(shmq_ack(q, &m), 0);
    cr_assert_eq(shmq_admin_reap(t_adm, NULL), 0);
    close(fds[0]);
    close(fds[1]);
    shmq_close(q);
}

/* ---- (h) a registrant racing the death of another ----------------------------- */

/* fcntl, interposed for the whole file: the system call, except that
 *   - when g_lock_hook is set, the first attempt to take a liveness lock
 *     runs the hook first (once): the moment between a registrant's look
 *     at an entry and its taking of the entry's lock;
 *   - when g_admin_hook is set, the first admin lock taken runs it right
 *     after (once). */
static void (*g_lock_hook)(void);
static void (*g_admin_hook)(void);

int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    unsigned long arg = va_arg(ap, unsigned long);
    va_end(ap);
    const struct flock *fl = (const struct flock *)arg;
    if (g_lock_hook && cmd == F_OFD_SETLK && fl->l_type == F_WRLCK &&
        (uint64_t)fl->l_start >= SHMQ_LOCK_PROC_BASE) {
        void (*hook)(void) = g_lock_hook;
        g_lock_hook = NULL;
        hook();
    }
    int rc = (int)syscall(SYS_fcntl, fd, cmd, arg);
    if (rc == 0 && g_admin_hook && cmd == F_OFD_SETLKW &&
        fl->l_type == F_WRLCK &&
        (uint64_t)fl->l_start == SHMQ_LOCK_ADMIN) {
        void (*hook)(void) = g_admin_hook;
        g_admin_hook = NULL;
        hook();
    }
    return rc;
}

static struct {
    int fds[2];
    struct hello dead;
} g_race;

/* Meanwhile, another process registers at the entry the registrant looked
 * at (its lock is still free), leases a message and is killed. */
static void register_lease_and_die(void)
{
    struct leaser l = {"q", g_race.fds[1], 0, 0};
    pid_t pid = t_spawn(leaser_main, &l);
    g_race.dead = hear(g_race.fds[0]);
    kill_kid(pid);
}

Test(repair, registration_leaves_a_dead_entry_alone)
{
    create_q("q", 16, 5);
    shmq_t *q = t_open(t_inst, "q");
    cr_assert_eq(shmq_send(q, "hello-h", 8, 0), 0);
    make_pipe(g_race.fds);
    struct shmq__reg reg;
    cr_assert_eq(shmq__reg_open(t_inst, 1, NULL, &reg), 0);
    int lock_fd = -1;
    uint32_t tok = 0;
    g_lock_hook = register_lease_and_die;
    int rc = shmq__reg_register(&reg, &lock_fd, &tok);
    cr_assert_null(g_lock_hook, "the registrant took no liveness lock");
    cr_assert_eq(rc, 0, "register: %s", shmq_strerror(rc));
    uint32_t dead = g_race.dead.token;
    cr_assert_neq(SHMQ_TOKEN_IDX(tok), SHMQ_TOKEN_IDX(dead),
                  "registered over the entry of the dead");

    /* The entry still says which queues the dead had opened: its repair
     * finds the lease and gives the message back. */
    struct shmq_repair_report rep = {.size = sizeof(rep)};
    cr_assert_eq(shmq_admin_repair(t_adm, dead, &rep), 1);
    cr_assert_eq(rep.redelivered, 1,
                 "repair of the dead found %llu leases (its entry was "
                 "overwritten by the registrant)",
                 (unsigned long long)rep.redelivered);
    shmq_msg_t m;
    cr_assert_eq(shmq_lease(q, &m, 0), 0);
    cr_assert_eq(m.id, g_race.dead.id);
    cr_assert_eq(m.deliveries, 2);
    cr_assert_eq(shmq_ack(q, &m), 0);
    close(lock_fd);
    shmq__reg_close(&reg);
    close(g_race.fds[0]);
    close(g_race.fds[1]);
    shmq_close(q);
}

/* ---- (i) the admin lock of a dead process with a live fork child -------------- */

struct forker {
    int up;            /* reports to the test */
    int hold_r, hold_w; /* the grandchild lives until hold_w closes */
};

static void die_now(void)
{
    raise(SIGKILL);
}

/* Opens a queue, forks a child that never uses shmq again (it only keeps
 * what fork gave it), then closes its handle: the last one, so it repairs
 * itself under the admin lock, and it is killed holding that lock. */
static void forker_main(const void *arg)
{
    const struct forker *f = arg;
    shmq_t *q = open_q("q");
    int started[2];
    CHILD_REQUIRE(pipe(started) == 0, "pipe");
    pid_t c = fork();
    CHILD_REQUIRE(c >= 0, "fork");
    if (c == 0) {
        /* fork() has returned here, so the atfork handlers have run. */
        char b = 1;
        close(started[0]);
        while (write(started[1], &b, 1) < 0 && errno == EINTR)
            ;
        close(f->hold_w);
        while (read(f->hold_r, &b, 1) < 0 && errno == EINTR)
            ;
        _exit(0);
    }
    /* Wait for the child to be past fork(): until then it may still share
     * what the parent opened, whatever the library does. */
    char b;
    close(started[1]);
    while (read(started[0], &b, 1) < 0 && errno == EINTR)
        ;
    close(started[0]);
    struct hello h = {.pid = (int32_t)c};
    CHILD_REQUIRE(shmq_token(q, &h.token) == 0, "token");
    say(f->up, &h);
    g_admin_hook = die_now;
    shmq_close(q);
    CHILD_REQUIRE(0, "closed its handle without taking the admin lock");
}

Test(repair, fork_child_does_not_keep_a_dead_parents_admin_lock)
{
    create_q("q", 16, 5);
    int up[2], hold[2];
    make_pipe(up);
    make_pipe(hold);
    struct forker f = {up[1], hold[0], hold[1]};
    pid_t p = t_spawn(forker_main, &f);
    struct hello h = hear(up[0]);
    t_track((pid_t)h.pid); /* the grandchild: killed by teardown if need be */
    int st = t_reap(p, BOUND_MS);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
              "the forker was not killed holding the admin lock (%#x)", st);

    struct shmq__reg reg;
    cr_assert_eq(shmq__reg_open(t_inst, 0, NULL, &reg), 0);
    int held = shmq__lock_held(reg.fd, SHMQ_LOCK_ADMIN);
    shmq__reg_close(&reg);
    if (held != 0) {
        /* Let the test end: every admin call would wait for the lock. */
        kill((pid_t)h.pid, SIGKILL);
        t_untrack((pid_t)h.pid);
        cr_assert_fail("the admin lock of the dead process is still held "
                       "(%d): its fork child kept the description it was "
                       "taken through (a descriptor, or the mapping)",
                       held);
    }
    /* The dead is repaired as any other. */
    cr_assert_eq(shmq_admin_reap(t_adm, NULL), 1);
    cr_assert_eq(shmq_admin_alive(t_adm, h.token), 0);
    close(hold[1]);
    close(hold[0]);
    close(up[0]);
    close(up[1]);
}
