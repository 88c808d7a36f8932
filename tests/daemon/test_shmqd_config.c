/* SPDX-License-Identifier: MIT */
/* shmqd -c FILE: queues declared at start, conflicts reported and left
 * alone, bad files refused before anything changes, SIGHUP re-reads. */
/* ctest-timeout: 120 */
#include <shmq/ctl.h>
#include <shmq/shmq.h>

#include "shmqd_test.h"

static struct tdaemon d;
static char conf[128];

static void setup(void)
{
    td_init(&d);
    snprintf(conf, sizeof(conf), "/tmp/shmqd-%s.conf", d.instance);
}

static void teardown(void)
{
    td_cleanup(&d);
    unlink(conf);
}

TestSuite(shmqd_config, .init = setup, .fini = teardown, .timeout = 60);

static void write_conf(const char *text)
{
    FILE *f = fopen(conf, "w");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
}

static void info(const char *name, struct shmq_queue_info *out)
{
    shmq_ctl_t *c = td_ctl(&d);
    int rc = shmq_ctl_info(c, name, out, NULL, 0);
    shmq_ctl_close(c);
    cr_assert_eq(rc, 0, "info %s: %s", name, shmq_strerror(rc));
}

Test(shmqd_config, declares_queues)
{
    struct shmq_queue_info q;
    write_conf("; queues of the test\n"
               "[jobs]\n"
               "capacity = 256\n"
               "msg_max = 1KiB\n"
               "lease_timeout = 2s\n"
               "\n"
               "[events]\n"
               "capacity = 64\n"
               "mode = 0640\n"
               "max_deliveries = 0\n"
               "dlq_capacity = 0\n"
               "timestamps = coarse\n");
    const char *args[] = {"--config", conf, NULL};
    td_start(&d, args);
    info("jobs", &q);
    cr_assert_eq(q.config.capacity, 256);
    cr_assert_eq(q.config.msg_max, 1024);
    cr_assert_eq(q.config.lease_timeout_ns, 2000000000);
    cr_assert_eq(q.config.max_deliveries, 5); /* the default */
    info("events", &q);
    cr_assert_eq(q.config.capacity, 64);
    cr_assert_eq(q.config.mode, 0640);
    cr_assert_eq(q.config.dlq_capacity, 0);
    cr_assert_eq(q.config.timestamps, SHMQ_TS_COARSE);
    cr_assert(td_log_has(&d, "queue jobs created (declared in"));

    /* Restarted with the same file: both exist, nothing to report. */
    td_stop(&d);
    td_start(&d, args);
    cr_assert(!td_log_has(&d, "left unchanged"));
    td_stop(&d);
}

Test(shmqd_config, conflict_is_reported_and_nothing_changes)
{
    struct shmq_queue_info q;
    shmq_admin_t *a = t_admin(d.instance);
    t_create(a, "jobs", 128, 64);
    shmq_t *h = t_open(d.instance, "jobs");
    cr_assert_eq(shmq_send(h, "keep me", 7, 0), 0);
    shmq_close(h);
    shmq_admin_close(a);

    write_conf("[jobs]\ncapacity = 64\nmsg_max = 64\n"
               "[other]\ncapacity = 32\n");
    const char *args[] = {"--config", conf, NULL};
    td_start(&d, args);
    cr_assert(td_log_has(&d, "queue jobs exists with other settings and is "
                             "left unchanged: capacity is 128 (config: 64)"));
    info("jobs", &q);
    cr_assert_eq(q.config.capacity, 128);
    cr_assert_eq(q.stats.depth, 1); /* its message is still there */
    info("other", &q); /* the rest of the file is declared */
    cr_assert_eq(q.config.capacity, 32);
    td_stop(&d);
}

Test(shmqd_config, bad_file_changes_nothing)
{
    shmq_admin_t *a;
    write_conf("[good]\ncapacity = 64\n"
               "[bad]\ncapacity = 100\ncolour = blue\n"
               "[empty]\n");
    const char *args[] = {"--config", conf, NULL};
    td_spawn(&d, args);
    int st = t_wait(d.pid, 10000);
    d.pid = 0;
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "status %#x", st);
    cr_assert(td_log_has(&d, ":5: [bad]: unknown key \"colour\""));
    cr_assert(td_log_has(&d, ":6: a section without settings"));
    cr_assert(td_log_has(&d, "capacity must be a power of two"));
    cr_assert(td_log_has(&d, "nothing declared"));
    /* Not even the registry was created. */
    cr_assert_eq(shmq_admin_open(d.instance, NULL, &a), -ENOENT);
}

Test(shmqd_config, sighup_declares_new_queues)
{
    struct shmq_queue_info q;
    write_conf("[first]\ncapacity = 16\n");
    const char *args[] = {"--config", conf, NULL};
    td_start(&d, args);
    info("first", &q);
    write_conf("[first]\ncapacity = 16\n[second]\ncapacity = 32\n");
    kill(d.pid, SIGHUP);
    cr_assert(td_log_wait(&d, "queue second created", 5000));
    info("second", &q);
    cr_assert_eq(q.config.capacity, 32);
    td_stop(&d);
}
