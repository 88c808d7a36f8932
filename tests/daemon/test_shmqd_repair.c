/* SPDX-License-Identifier: MIT */
/* shmqd's death watch against real processes killed with SIGKILL: a
 * consumer holding leases, a producer between reserve and commit, and a
 * consumer that dies while the daemon itself is down. */
/* ctest-timeout: 120 */
/* ctest-labels: crash */
#include <shmq/ctl.h>
#include <shmq/shmq.h>

#include "shmqd_test.h"

static struct tdaemon d;

static void setup(void)
{
    td_init(&d);
}

static void teardown(void)
{
    td_cleanup(&d);
}

TestSuite(shmqd_repair, .init = setup, .fini = teardown, .timeout = 60);

/* A child that leases n messages, says so on fd, and waits to be killed. */
static pid_t lease_and_hang(const char *queue, int n, int fd_ready)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid)
        return pid;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    shmq_t *q;
    shmq_msg_t m;
    struct shmq_open_opts o;
    shmq_open_opts_init(&o);
    o.instance = d.instance;
    if (shmq_open(queue, &o, &q))
        _exit(10);
    for (int i = 0; i < n; i++)
        if (shmq_lease(q, &m, 5000000000))
            _exit(11);
    td_signal(fd_ready);
    for (;;)
        pause();
}

Test(shmqd_repair, dead_consumer_leases_redelivered)
{
    int pfd[2];
    shmq_msg_t m;

    td_start(&d, NULL);
    td_create(&d, "work", 64, 64);
    shmq_t *q = t_open(d.instance, "work");
    for (int i = 0; i < 10; i++) {
        char b[16];
        int len = snprintf(b, sizeof(b), "job-%d", i);
        cr_assert_eq(shmq_send(q, b, (size_t)len, 0), 0);
    }
    cr_assert_eq(pipe(pfd), 0);
    pid_t child = lease_and_hang("work", 10, pfd[1]);
    cr_assert(td_await(pfd[0], 10000), "consumer did not lease its 10");
    cr_assert(td_watched(&d, child, 2000), "the daemon does not watch it");
    cr_assert_eq(shmq_lease(q, &m, 0), -EAGAIN); /* all 10 are leased */

    uint64_t t0 = t_mono_ns();
    kill(child, SIGKILL);
    uint64_t first = 0;
    unsigned seen = 0;
    for (int i = 0; i < 10; i++) {
        /* Blocks until the repair wakes us (bounded). */
        cr_assert_eq(shmq_lease(q, &m, 5000000000), 0, "redelivery %d", i);
        if (i == 0)
            first = t_mono_ns();
        cr_assert_eq(m.deliveries, 2);
        int k;
        cr_assert_eq(sscanf((const char *)m.data, "job-%d", &k), 1);
        cr_assert(k >= 0 && k < 10 && !(seen & (1u << k)), "job %d", k);
        seen |= 1u << k;
        cr_assert_eq(shmq_ack(q, &m), 0);
    }
    uint64_t all = t_mono_ns();
    cr_assert_eq(seen, 0x3ffu);
    cr_assert_eq(shmq_lease(q, &m, 0), -EAGAIN);
    printf("kill-to-redelivery: first message %.2f ms, all 10 %.2f ms\n",
           (double)(first - t0) / 1e6, (double)(all - t0) / 1e6);
    fflush(stdout);

    struct shmq_stats st = {.size = sizeof(st)};
    cr_assert_eq(shmq_stats(q, &st), 0);
    cr_assert_eq(st.redelivered, 10);
    cr_assert_eq(st.depth, 0);
    cr_assert_eq(st.in_flight, 0);
    t_wait(child, 5000);
    shmq_close(q);
    cr_assert(td_log_wait(&d, "10 leases redelivered", 2000));
    td_stop(&d);
}

Test(shmqd_repair, dead_producer_between_reserve_and_commit)
{
    int pfd[2];
    char buf[64];

    td_start(&d, NULL);
    td_create(&d, "feed", 16, 64);
    shmq_t *q = t_open(d.instance, "feed");
    for (int i = 0; i < 5; i++) {
        int len = snprintf(buf, sizeof(buf), "m%d", i);
        cr_assert_eq(shmq_send(q, buf, (size_t)len, 0), 0);
    }
    cr_assert_eq(pipe(pfd), 0);
    pid_t child = fork();
    cr_assert_geq(child, 0);
    if (child == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        shmq_t *p;
        shmq_resv_t r;
        struct shmq_open_opts o;
        shmq_open_opts_init(&o);
        o.instance = d.instance;
        if (shmq_open("feed", &o, &p) || shmq_reserve(p, &r, 0))
            _exit(10);
        memcpy(r.data, "never", 5); /* written, never committed */
        td_signal(pfd[1]);
        for (;;)
            pause();
    }
    cr_assert(td_await(pfd[0], 10000));
    cr_assert(td_watched(&d, child, 2000));
    /* Messages after the dead producer's slot. */
    for (int i = 5; i < 10; i++) {
        int len = snprintf(buf, sizeof(buf), "m%d", i);
        cr_assert_eq(shmq_send(q, buf, (size_t)len, 0), 0);
    }
    for (int i = 0; i < 5; i++) {
        ssize_t n = shmq_recv(q, buf, sizeof(buf), 0);
        cr_assert_gt(n, 0);
    }
    /* The claimed slot holds the consumers up until the producer dies. */
    cr_assert_eq(shmq_recv(q, buf, sizeof(buf), 0), -EAGAIN);
    uint64_t t0 = t_mono_ns();
    kill(child, SIGKILL);
    for (int i = 5; i < 10; i++) {
        char want[16];
        ssize_t n = shmq_recv(q, buf, sizeof(buf), 5000000000);
        cr_assert_gt(n, 0, "message %d: %s", i, shmq_strerror((int)n));
        int wl = snprintf(want, sizeof(want), "m%d", i);
        cr_assert_eq(n, wl);
        cr_assert_eq(memcmp(buf, want, (size_t)wl), 0);
    }
    printf("kill-to-skip: consumers moved past the dead producer's slot "
           "after %.2f ms\n",
           (double)(t_mono_ns() - t0) / 1e6);
    fflush(stdout);
    cr_assert_eq(shmq_recv(q, buf, sizeof(buf), 0), -EAGAIN);
    struct shmq_stats st = {.size = sizeof(st)};
    cr_assert_eq(shmq_stats(q, &st), 0);
    cr_assert_eq(st.skipped, 1);
    cr_assert_eq(st.dequeued, 10);
    t_wait(child, 5000);
    shmq_close(q);
    cr_assert(td_log_wait(&d, "1 write skipped", 2000));
    td_stop(&d);
}

Test(shmqd_repair, consumer_dies_while_daemon_is_down)
{
    int pfd[2];
    shmq_msg_t m;

    td_start(&d, NULL);
    td_create(&d, "work", 64, 64);
    shmq_t *q = t_open(d.instance, "work");
    for (int i = 0; i < 10; i++)
        cr_assert_eq(shmq_send(q, "job", 3, 0), 0);
    cr_assert_eq(pipe(pfd), 0);
    pid_t child = lease_and_hang("work", 10, pfd[1]);
    cr_assert(td_await(pfd[0], 10000));

    td_kill(&d);
    kill(child, SIGKILL);
    t_wait(child, 5000);
    /* Nobody repairs while the daemon is down: nothing comes back. */
    cr_assert_eq(shmq_lease(q, &m, 0), -EAGAIN);
    struct shmq_stats st = {.size = sizeof(st)};
    cr_assert_eq(shmq_stats(q, &st), 0);
    cr_assert_eq(st.in_flight, 10);

    /* The restarted daemon finds the dead entry and repairs it. */
    td_start(&d, NULL);
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(shmq_lease(q, &m, 5000000000), 0, "redelivery %d", i);
        cr_assert_eq(m.deliveries, 2);
        cr_assert_eq(shmq_ack(q, &m), 0);
    }
    cr_assert_eq(shmq_lease(q, &m, 0), -EAGAIN);
    cr_assert(td_log_has(&d, "1 dead process repaired (10 leases redelivered"));
    shmq_close(q);
    td_stop(&d);
}

Test(shmqd_repair, living_process_rewatched_after_restart)
{
    int pfd[2];
    shmq_msg_t m;

    td_start(&d, NULL);
    td_create(&d, "work", 64, 64);
    shmq_t *q = t_open(d.instance, "work");
    for (int i = 0; i < 3; i++)
        cr_assert_eq(shmq_send(q, "job", 3, 0), 0);
    cr_assert_eq(pipe(pfd), 0);
    pid_t child = lease_and_hang("work", 3, pfd[1]);
    cr_assert(td_await(pfd[0], 10000));
    td_kill(&d);
    td_start(&d, NULL);
    /* Attached: the living child is watched again, without its help. */
    cr_assert(td_watched(&d, child, 2000));
    kill(child, SIGKILL);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(shmq_lease(q, &m, 5000000000), 0);
        cr_assert_eq(m.deliveries, 2);
        cr_assert_eq(shmq_ack(q, &m), 0);
    }
    t_wait(child, 5000);
    shmq_close(q);
    td_stop(&d);
}
