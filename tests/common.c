/* SPDX-License-Identifier: MIT */
#include "common.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *t_instance(void)
{
    static char buf[32];
    static unsigned n;
    snprintf(buf, sizeof(buf), "t%dx%u", (int)getpid(), n++);
    return buf;
}

shmq_admin_t *t_admin(const char *instance)
{
    struct shmq_admin_opts o;
    shmq_admin_t *a = NULL;
    shmq_admin_opts_init(&o);
    o.flags = SHMQ_ADMIN_CREATE;
    int rc = shmq_admin_open(instance, &o, &a);
    cr_assert_eq(rc, 0, "shmq_admin_open(%s): %s", instance, shmq_strerror(rc));
    return a;
}

void t_instance_destroy(shmq_admin_t *a)
{
    if (!a)
        return;
    shmq_admin_destroy(a);
    shmq_admin_close(a);
}

void t_create(shmq_admin_t *a, const char *name, uint32_t capacity,
              uint32_t msg_max)
{
    struct shmq_queue_config c;
    shmq_queue_config_init(&c);
    c.capacity = capacity;
    c.msg_max = msg_max;
    int rc = shmq_admin_create(a, name, &c);
    cr_assert_eq(rc, 0, "create %s: %s", name, shmq_strerror(rc));
}

shmq_t *t_open(const char *instance, const char *name)
{
    struct shmq_open_opts o;
    shmq_t *q = NULL;
    shmq_open_opts_init(&o);
    o.instance = instance;
    int rc = shmq_open(name, &o, &q);
    cr_assert_eq(rc, 0, "open %s: %s", name, shmq_strerror(rc));
    return q;
}

int t_wait(pid_t pid, int timeout_ms)
{
    int st = 0;
    for (int waited = 0;; waited++) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return st;
        if (r < 0)
            return -1;
        if (waited >= timeout_ms) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return st;
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}
