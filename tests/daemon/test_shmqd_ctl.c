/* SPDX-License-Identifier: MIT */
/* shmqd's control socket, through the client API (ctl.h), against the
 * real daemon: queue lifecycle, ping, procs, dead letters, restart. */
/* ctest-timeout: 120 */
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

TestSuite(shmqd_ctl, .init = setup, .fini = teardown, .timeout = 60);

Test(shmqd_ctl, create_list_info_delete)
{
    struct shmq_queue_config cfg;
    struct shmq_queue_info qs[8], info;
    char msg[SHMQ_CTL_MSG_MAX];

    td_start(&d, NULL);
    shmq_ctl_t *c = td_ctl(&d);
    shmq_queue_config_init(&cfg);
    cfg.capacity = 64;
    cfg.msg_max = 128;
    cfg.lease_timeout_ns = 2000000000;
    cr_assert_eq(shmq_ctl_create(c, "alpha", &cfg, msg, sizeof(msg)), 0,
                 "%s", msg);
    cr_assert(strstr(msg, "created queue alpha"), "message: %s", msg);
    cfg.capacity = 16;
    cr_assert_eq(shmq_ctl_create(c, "beta", &cfg, msg, sizeof(msg)), 0);

    int n = shmq_ctl_list(c, qs, 8, msg, sizeof(msg));
    cr_assert_eq(n, 2, "list: %d (%s)", n, msg);
    cr_assert_str_eq(qs[0].name, "alpha"); /* sorted by name */
    cr_assert_str_eq(qs[1].name, "beta");
    cr_assert_eq(qs[0].config.capacity, 64);
    cr_assert_eq(qs[1].config.capacity, 16);
    cr_assert_eq(qs[0].stats.capacity, 64);

    /* Counters are live: send through the library, see them in info. */
    shmq_t *q = t_open(d.instance, "alpha");
    cr_assert_eq(shmq_send(q, "x", 1, 0), 0);
    cr_assert_eq(shmq_send(q, "y", 1, 0), 0);
    cr_assert_eq(shmq_ctl_info(c, "alpha", &info, msg, sizeof(msg)), 0);
    cr_assert_str_eq(info.name, "alpha");
    cr_assert_eq(info.config.msg_max, 128);
    cr_assert_eq(info.config.lease_timeout_ns, 2000000000);
    cr_assert_eq(info.stats.depth, 2);
    cr_assert_eq(info.stats.enqueued, 2);
    struct shmq_stats st = {.size = sizeof(st)};
    cr_assert_eq(shmq_ctl_stats(c, "alpha", &st, msg, sizeof(msg)), 0);
    cr_assert_eq(st.depth, 2);

    /* purge drops both */
    cr_assert_eq(shmq_ctl_purge(c, "alpha", SHMQ_RING_MAIN, msg, sizeof(msg)),
                 2, "%s", msg);
    cr_assert_eq(shmq_ctl_stats(c, "alpha", &st, NULL, 0), 0);
    cr_assert_eq(st.depth, 0);

    /* delete: open handles see -EIDRM, the queue is gone */
    cr_assert_eq(shmq_ctl_delete(c, "alpha", msg, sizeof(msg)), 0, "%s", msg);
    cr_assert_eq(shmq_send(q, "z", 1, 0), -EIDRM);
    shmq_close(q);
    cr_assert_eq(shmq_ctl_info(c, "alpha", &info, msg, sizeof(msg)), -ENOENT);
    cr_assert(strstr(msg, "no queue called alpha"), "message: %s", msg);
    cr_assert_eq(shmq_ctl_delete(c, "alpha", msg, sizeof(msg)), -ENOENT);
    cr_assert_eq(shmq_ctl_list(c, qs, 8, NULL, 0), 1);
    shmq_ctl_close(c);

    cr_assert(td_log_has(&d, "queue alpha created"));
    cr_assert(td_log_has(&d, "queue alpha deleted"));
    td_stop(&d);
}

Test(shmqd_ctl, ping_and_procs)
{
    struct shmq_ctl_daemon info;
    struct shmq_ctl_proc procs[16];
    char msg[SHMQ_CTL_MSG_MAX];

    td_start(&d, NULL);
    td_create(&d, "q", 16, 64);
    shmq_ctl_t *c = td_ctl(&d);
    cr_assert_eq(shmq_ctl_ping(c, &info, msg, sizeof(msg)), 0);
    cr_assert_eq(info.pid, d.pid);
    cr_assert_str_eq(info.instance, d.instance);
    cr_assert_str_eq(info.socket_path, d.sock);
    cr_assert_eq(info.proto_version, SHMQ_CTL_PROTO_VERSION);
    cr_assert_eq(info.queues, 1);

    /* Opening a queue registers us; the library tells the daemon, which
     * watches us with a pidfd before shmq_open returns. */
    shmq_t *q = t_open(d.instance, "q");
    int n = shmq_ctl_procs(c, procs, 16, msg, sizeof(msg));
    cr_assert_eq(n, 1, "procs: %d (%s)", n, msg);
    cr_assert_eq(procs[0].info.pid, getpid());
    cr_assert_eq(procs[0].watched, 1);
    cr_assert_eq(procs[0].info.alive, 1);
    cr_assert_eq(procs[0].info.nqueues, 1);
    cr_assert(td_log_has(&d, "process registered"));

    /* The socket path is advertised in the registry. */
    char path[SHMQ_CTL_PATH_MAX];
    cr_assert_gt(shmq_ctl_socket_path(d.instance, path, sizeof(path)), 0);
    cr_assert_str_eq(path, d.sock);

    /* Closing the last handle unregisters; the scan forgets us. */
    shmq_close(q);
    uint64_t end = t_mono_ns() + 5000000000u;
    do {
        n = shmq_ctl_procs(c, procs, 16, NULL, 0);
        if (n != 0)
            td_sleep_ms(5);
    } while (n != 0 && t_mono_ns() < end);
    cr_assert_eq(n, 0);
    shmq_ctl_close(c);
    td_stop(&d);
    /* A clean stop takes the advertisement back. */
    cr_assert_eq(access(d.sock, F_OK), -1);
}

Test(shmqd_ctl, bad_arguments_and_errors)
{
    struct shmq_queue_config cfg;
    char msg[SHMQ_CTL_MSG_MAX];

    td_start(&d, NULL);
    shmq_ctl_t *c = td_ctl(&d);
    shmq_queue_config_init(&cfg);
    cr_assert_eq(shmq_ctl_create(c, "dup", &cfg, msg, sizeof(msg)), 0);
    cr_assert_eq(shmq_ctl_create(c, "dup", &cfg, msg, sizeof(msg)), -EEXIST);
    cr_assert(strstr(msg, "already exists"), "message: %s", msg);
    cr_assert_eq(shmq_ctl_create(c, "../x", &cfg, msg, sizeof(msg)), -EINVAL);
    cfg.capacity = 1000; /* not a power of two */
    cr_assert_eq(shmq_ctl_create(c, "odd", &cfg, msg, sizeof(msg)), -EINVAL);
    cr_assert(strstr(msg, "power of two"), "message: %s", msg);
    cr_assert_eq(shmq_ctl_purge(c, "nope", SHMQ_RING_MAIN, NULL, 0), -ENOENT);
    /* The daemon refuses a register for a token that is not the caller's. */
    cr_assert_eq(shmq_ctl_register(c, 0x10005, msg, sizeof(msg)), -ENOENT);
    shmq_ctl_close(c);

    /* No daemon at a path: connect says so. */
    shmq_ctl_t *x;
    cr_assert_eq(shmq_ctl_connect(d.instance, "/tmp/shmqd-nowhere.sock", &x),
                 -ENOENT);
    td_stop(&d);
}

Test(shmqd_ctl, dead_letters)
{
    struct shmq_queue_config cfg;
    struct shmq_dlq_entry e[8];
    char msg[SHMQ_CTL_MSG_MAX];
    shmq_msg_t m;

    td_start(&d, NULL);
    shmq_ctl_t *c = td_ctl(&d);
    shmq_queue_config_init(&cfg);
    cfg.capacity = 16;
    cfg.msg_max = 64;
    cfg.max_deliveries = 1;
    cfg.dlq_capacity = 8;
    cr_assert_eq(shmq_ctl_create(c, "dl", &cfg, msg, sizeof(msg)), 0, "%s",
                 msg);
    shmq_t *q = t_open(d.instance, "dl");
    const char *body[3] = {"one", "two", "three"};
    for (int i = 0; i < 3; i++)
        cr_assert_eq(shmq_send(q, body[i], strlen(body[i]), 0), 0);
    /* Delivered once, given back: past max_deliveries they go to the
     * dead-letter ring when next leased. */
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(shmq_lease(q, &m, 0), 0);
        cr_assert_eq(shmq_nack(q, &m), 0);
    }
    cr_assert_eq(shmq_lease(q, &m, 0), -EAGAIN);

    int n = shmq_ctl_dlq_list(c, "dl", e, 8, msg, sizeof(msg));
    cr_assert_eq(n, 3, "dlq list: %d (%s)", n, msg);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(e[i].len, strlen(body[i]));
        cr_assert_eq(e[i].data_len, e[i].len);
        cr_assert_eq(memcmp(e[i].data, body[i], e[i].len), 0);
        cr_assert_eq(e[i].deliveries, 1);
    }
    /* Listing takes nothing. */
    cr_assert_eq(shmq_ctl_dlq_list(c, "dl", e, 8, NULL, 0), 3);

    cr_assert_eq(shmq_ctl_dlq_requeue(c, "dl", 1, msg, sizeof(msg)), 1, "%s",
                 msg);
    cr_assert_eq(shmq_lease(q, &m, 0), 0);
    cr_assert_eq(m.len, 3);
    cr_assert_eq(memcmp(m.data, "one", 3), 0);
    cr_assert_eq(m.deliveries, 1); /* a new message */
    cr_assert_eq(shmq_ack(q, &m), 0);

    cr_assert_eq(shmq_ctl_dlq_drop(c, "dl", 0, msg, sizeof(msg)), 2, "%s",
                 msg);
    cr_assert_eq(shmq_ctl_dlq_list(c, "dl", e, 8, NULL, 0), 0);
    shmq_close(q);

    /* A queue without a dead-letter ring says so. */
    cfg.max_deliveries = 0;
    cfg.dlq_capacity = 0;
    cr_assert_eq(shmq_ctl_create(c, "nodl", &cfg, NULL, 0), 0);
    cr_assert_eq(shmq_ctl_dlq_list(c, "nodl", e, 8, msg, sizeof(msg)),
                 -ENOENT);
    shmq_ctl_close(c);
    td_stop(&d);
}

Test(shmqd_ctl, lease_timeout_takes_back)
{
    struct shmq_queue_config cfg;
    shmq_msg_t m1, m2;

    td_start(&d, NULL);
    shmq_ctl_t *c = td_ctl(&d);
    shmq_queue_config_init(&cfg);
    cfg.capacity = 16;
    cfg.msg_max = 64;
    cfg.lease_timeout_ns = 100000000; /* 100 ms */
    cr_assert_eq(shmq_ctl_create(c, "lt", &cfg, NULL, 0), 0);
    shmq_ctl_close(c);
    shmq_t *q = t_open(d.instance, "lt");
    cr_assert_eq(shmq_send(q, "slow", 4, 0), 0);
    cr_assert_eq(shmq_lease(q, &m1, 0), 0);
    /* Held past the timeout by a live consumer: the daemon takes it
     * back and it is delivered again (bounded wait). */
    cr_assert_eq(shmq_lease(q, &m2, 5000000000), 0);
    cr_assert_eq(m2.id, m1.id);
    cr_assert_eq(m2.deliveries, 2);
    cr_assert_eq(shmq_ack(q, &m1), -ESTALE);
    cr_assert_eq(shmq_ack(q, &m2), 0);
    shmq_close(q);
    cr_assert(td_log_wait(&d, "taken back", 2000));
    td_stop(&d);
}

Test(shmqd_ctl, restart_keeps_queues)
{
    struct shmq_queue_info info;

    td_start(&d, NULL);
    td_create(&d, "keep", 32, 64);
    shmq_t *q = t_open(d.instance, "keep");
    cr_assert_eq(shmq_send(q, "msg", 3, 0), 0);
    td_stop(&d);
    /* While it is down the queue works. */
    cr_assert_eq(shmq_send(q, "msg", 3, 0), 0);
    td_start(&d, NULL);
    cr_assert(td_log_has(&d, "attached to the registry"));
    shmq_ctl_t *c = td_ctl(&d);
    cr_assert_eq(shmq_ctl_info(c, "keep", &info, NULL, 0), 0);
    cr_assert_eq(info.stats.depth, 2);
    shmq_ctl_close(c);
    /* SIGKILL too leaves everything in place. */
    td_kill(&d);
    td_start(&d, NULL);
    c = td_ctl(&d);
    cr_assert_eq(shmq_ctl_info(c, "keep", &info, NULL, 0), 0);
    cr_assert_eq(info.stats.depth, 2);
    shmq_ctl_close(c);
    shmq_close(q);
    td_stop(&d);
}

Test(shmqd_ctl, one_daemon_per_instance)
{
    struct tdaemon second;

    td_start(&d, NULL);
    second = d;
    snprintf(second.sock, sizeof(second.sock), "/tmp/shmqd-%s-2.sock",
             d.instance);
    snprintf(second.log, sizeof(second.log), "/tmp/shmqd-%s-2.log",
             d.instance);
    td_spawn(&second, NULL);
    int st = t_wait(second.pid, 10000);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "status %#x", st);
    cr_assert(td_log_has(&second, "another shmqd serves instance"));
    unlink(second.log);
    /* The first one is unharmed. */
    shmq_ctl_t *c = td_ctl(&d);
    cr_assert_eq(shmq_ctl_ping(c, NULL, NULL, 0), 0);
    shmq_ctl_close(c);
    td_stop(&d);
}
