/* SPDX-License-Identifier: MIT */
/*
 * shmqd killed with SIGKILL in the middle of a 4-producer/4-consumer run
 * of 1,000,000 messages, and restarted: clients keep working while it is
 * down, a consumer killed meanwhile is repaired when it comes back, every
 * message is delivered, none is lost, and a message is delivered more
 * than once only with deliveries > 1.
 */
/* ctest-timeout: 600 */
/* ctest-labels: stress crash */
#include <shmq/ctl.h>
#include <shmq/shmq.h>
#include <stdatomic.h>
#include <sys/mman.h>

#include "shmqd_test.h"

#define N_MSGS 1000000u
#define N_PROD 4
#define N_CONS 4
#define PER_PROD (N_MSGS / N_PROD)

struct shared {
    _Atomic uint64_t unique;      /* messages delivered at least once */
    _Atomic uint64_t deliveries;  /* all deliveries */
    _Atomic uint64_t redelivered; /* deliveries with deliveries > 1 */
    _Atomic int gate;   /* producers may send up to gate quarters */
    _Atomic int freeze; /* consumer 0: stop after a batch; others pause */
    _Atomic int frozen; /* ... consumer 0 holds this many leases */
    _Atomic uint8_t seen[N_MSGS];   /* deliveries of each message */
    _Atomic uint8_t firsts[N_MSGS]; /* ... of them with deliveries == 1 */
};

static struct tdaemon d;
static struct shared *sh;

static void setup(void)
{
    td_init(&d);
    sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(sh, MAP_FAILED);
}

static void teardown(void)
{
    td_cleanup(&d);
    munmap(sh, sizeof(*sh));
}

TestSuite(shmqd_restart, .init = setup, .fini = teardown, .timeout = 540);

static shmq_t *child_open(void)
{
    shmq_t *q;
    struct shmq_open_opts o;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    shmq_open_opts_init(&o);
    o.instance = d.instance;
    if (shmq_open("run", &o, &q))
        _exit(20);
    return q;
}

static void producer(int k)
{
    shmq_t *q = child_open();
    for (uint32_t i = 0; i < PER_PROD; i++) {
        uint32_t id = (uint32_t)k * PER_PROD + i;
        /* The test opens the gates quarter by quarter (bounded wait). */
        for (int w = 0; (int)(i / (PER_PROD / 4)) >= atomic_load(&sh->gate);
             w++) {
            if (w > 120000)
                _exit(26);
            td_sleep_ms(1);
        }
        if (shmq_send(q, &id, sizeof(id), 30000000000) != 0)
            _exit(21);
    }
    shmq_close(q);
    _exit(0);
}

static void consumer(int victim)
{
    shmq_t *q = child_open();
    shmq_msg_t m[16];
    while (atomic_load(&sh->unique) < N_MSGS) {
        if (!victim && atomic_load(&sh->freeze) && !atomic_load(&sh->frozen)) {
            td_sleep_ms(1); /* let consumer 0 take the next batch */
            continue;
        }
        int n = shmq_lease_batch(q, m, 16, 100000000);
        if (n == -ETIMEDOUT)
            continue;
        if (n < 0)
            _exit(22);
        for (int i = 0; i < n; i++) {
            uint32_t id;
            if (m[i].len != sizeof(id))
                _exit(23);
            memcpy(&id, m[i].data, sizeof(id));
            if (id >= N_MSGS)
                _exit(24);
            atomic_fetch_add(&sh->deliveries, 1);
            if (m[i].deliveries == 1)
                atomic_fetch_add(&sh->firsts[id], 1);
            else
                atomic_fetch_add(&sh->redelivered, 1);
            if (atomic_fetch_add(&sh->seen[id], 1) == 0)
                atomic_fetch_add(&sh->unique, 1);
        }
        if (victim && atomic_load(&sh->freeze)) {
            /* Hold the leases until the test kills us. */
            atomic_store(&sh->frozen, n);
            for (;;)
                pause();
        }
        if (shmq_ack_batch(q, m, (size_t)n) != n)
            _exit(25);
    }
    shmq_close(q);
    _exit(0);
}

static pid_t spawn(void (*fn)(int), int k)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0)
        fn(k);
    return pid;
}

static void run_producer(int k)
{
    producer(k);
}

static void run_consumer(int k)
{
    consumer(k == 0);
}

/* Wait (bounded) until this many messages were seen; on a timeout, say
 * what the queue looks like. */
static void wait_unique(uint64_t n)
{
    struct shmq_stats st = {.size = sizeof(st)};
    uint64_t end = t_mono_ns() + 120000000000u;
    while (atomic_load(&sh->unique) < n && t_mono_ns() < end)
        td_sleep_ms(1);
    if (atomic_load(&sh->unique) >= n)
        return;
    shmq_stats_by_name(d.instance, "run", &st);
    cr_assert_fail("stuck at %llu of %llu: depth %llu, in flight %llu, "
                   "retry pending %llu, enqueued %llu, dequeued %llu, "
                   "skipped %llu, repaired %llu, producers waiting %u, "
                   "consumers waiting %u",
                   (unsigned long long)atomic_load(&sh->unique),
                   (unsigned long long)n, (unsigned long long)st.depth,
                   (unsigned long long)st.in_flight,
                   (unsigned long long)st.retry_pending,
                   (unsigned long long)st.enqueued,
                   (unsigned long long)st.dequeued,
                   (unsigned long long)st.skipped,
                   (unsigned long long)st.repaired, st.producers_waiting,
                   st.consumers_waiting);
}

Test(shmqd_restart, daemon_killed_mid_run_loses_nothing)
{
    struct shmq_queue_config cfg;
    pid_t prod[N_PROD], cons[N_CONS + 1];

    td_start(&d, NULL);
    shmq_ctl_t *c = td_ctl(&d);
    shmq_queue_config_init(&cfg);
    cfg.capacity = 4096;
    cfg.msg_max = 16;
    cr_assert_eq(shmq_ctl_create(c, "run", &cfg, NULL, 0), 0);
    shmq_ctl_close(c);

    /* The producers send the first half freely, the third quarter once
     * the daemon is dead, the last one once consumer 0 was told to die
     * holding a batch: so each step surely happens mid-run. */
    uint64_t t0 = t_mono_ns();
    atomic_store(&sh->gate, 2);
    for (int i = 0; i < N_CONS; i++)
        cons[i] = spawn(run_consumer, i);
    for (int i = 0; i < N_PROD; i++)
        prod[i] = spawn(run_producer, i);

    wait_unique(N_MSGS / 4);
    uint64_t t_down = t_mono_ns();
    td_kill(&d);
    /* While it is down the run goes on; then a consumer dies holding
     * leases and a new one takes its place. (Its slots stay leased until
     * the daemon is back: producers stop when they come round to them,
     * one lap later.) */
    uint64_t at_kill = atomic_load(&sh->unique);
    atomic_store(&sh->gate, 3);
    wait_unique(N_MSGS / 4 * 3);
    uint64_t during = atomic_load(&sh->unique) - at_kill;
    atomic_store(&sh->freeze, 1);
    atomic_store(&sh->gate, 4);
    uint64_t end = t_mono_ns() + 60000000000u;
    while (!atomic_load(&sh->frozen) && t_mono_ns() < end)
        td_sleep_ms(1);
    int held = atomic_load(&sh->frozen);
    cr_assert_gt(held, 0, "consumer 0 never held a batch");
    kill(cons[0], SIGKILL);
    t_wait(cons[0], 5000);
    cons[N_CONS] = spawn(run_consumer, N_CONS);
    td_start(&d, NULL);
    uint64_t t_up = t_mono_ns();

    for (int i = 0; i < N_PROD; i++) {
        int st = t_wait(prod[i], 240000);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "producer %d: status %#x", i, st);
    }
    for (int i = 1; i <= N_CONS; i++) {
        int st = t_wait(cons[i], 240000);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "consumer %d: status %#x", i, st);
    }
    uint64_t t1 = t_mono_ns();

    uint64_t dups = 0, lost = 0, bad = 0;
    for (uint32_t i = 0; i < N_MSGS; i++) {
        unsigned s = atomic_load(&sh->seen[i]);
        unsigned f = atomic_load(&sh->firsts[i]);
        lost += s == 0;
        dups += s > 1 ? s - 1 : 0;
        bad += f > 1; /* a repeat must say deliveries > 1 */
    }
    printf("1M run, 4 producers / 4 consumers, shmqd SIGKILLed and "
           "restarted: %.2f s in all, daemon down %.0f ms (%llu messages "
           "delivered meanwhile, then a consumer killed holding %d "
           "lease%s), %llu duplicate deliver%s, all with deliveries > 1\n",
           (double)(t1 - t0) / 1e9, (double)(t_up - t_down) / 1e6,
           (unsigned long long)during, held, held == 1 ? "" : "s",
           (unsigned long long)dups, dups == 1 ? "y" : "ies");
    fflush(stdout);
    cr_assert_eq(lost, 0, "%llu messages lost", (unsigned long long)lost);
    cr_assert_eq(bad, 0, "%llu repeats with deliveries == 1",
                 (unsigned long long)bad);
    cr_assert_eq(atomic_load(&sh->unique), N_MSGS);
    cr_assert_eq(atomic_load(&sh->redelivered), dups);
    /* What the dead consumer held came back, once each. */
    cr_assert_eq(dups, (uint64_t)held);
    /* The killed consumer was repaired by the restarted daemon. */
    cr_assert(td_log_has(&d, "1 dead process repaired"));

    struct shmq_stats st = {.size = sizeof(st)};
    cr_assert_eq(shmq_stats_by_name(d.instance, "run", &st), 0);
    cr_assert_eq(st.depth, 0);
    cr_assert_eq(st.in_flight, 0);
    cr_assert_eq(st.enqueued, N_MSGS);
    td_stop(&d);
}
