/* SPDX-License-Identifier: MIT */
/*
 * Helpers for the tests that run the real shmqd: start it on a private
 * instance and socket, wait until it answers (bounded), stop or kill it
 * by pid, read its log. Header-only so each test file stays one
 * executable (tests/CMakeLists.txt).
 */
#ifndef SHMQD_TEST_H
#define SHMQD_TEST_H

#include <criterion/criterion.h>
#include <fcntl.h>
#include <shmq/ctl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define SHMQD_BIN SHMQ_BINARY_DIR "/daemon/shmqd"

struct tdaemon {
    pid_t pid;
    char instance[32];
    char sock[108];
    char log[128];
};

static inline void td_sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Pick a private instance, socket and log file (nothing started). */
static inline void td_init(struct tdaemon *d)
{
    memset(d, 0, sizeof(*d));
    snprintf(d->instance, sizeof(d->instance), "%s", t_instance());
    snprintf(d->sock, sizeof(d->sock), "/tmp/shmqd-%s.sock", d->instance);
    snprintf(d->log, sizeof(d->log), "/tmp/shmqd-%s.log", d->instance);
    unlink(d->log);
}

/* Start shmqd with extra arguments (NULL-terminated, may be NULL) and do
 * not wait. */
static inline void td_spawn(struct tdaemon *d, const char *const *extra)
{
    const char *argv[32];
    int n = 0;
    argv[n++] = SHMQD_BIN;
    argv[n++] = "--instance";
    argv[n++] = d->instance;
    argv[n++] = "--socket";
    argv[n++] = d->sock;
    for (int i = 0; extra && extra[i] && n < 30; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork");
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd >= 0)
            dup2(fd, STDERR_FILENO);
        execv(SHMQD_BIN, (char *const *)argv);
        _exit(127);
    }
    d->pid = pid;
}

/* Wait until the daemon answers a ping (bounded); 0 or the reason. */
static inline int td_wait_ready(struct tdaemon *d, unsigned timeout_ms)
{
    uint64_t end = t_mono_ns() + (uint64_t)timeout_ms * 1000000u;
    int rc = -ETIMEDOUT;
    while (t_mono_ns() < end) {
        int st;
        if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
            d->pid = 0;
            return -ECHILD; /* it exited */
        }
        shmq_ctl_t *c;
        rc = shmq_ctl_connect(d->instance, d->sock, &c);
        if (rc == 0) {
            shmq_ctl_set_timeout(c, 1000000000);
            rc = shmq_ctl_ping(c, NULL, NULL, 0);
            shmq_ctl_close(c);
            if (rc >= 0)
                return 0;
        }
        td_sleep_ms(2);
    }
    return rc;
}

static inline void td_start(struct tdaemon *d, const char *const *extra)
{
    td_spawn(d, extra);
    int rc = td_wait_ready(d, 10000);
    cr_assert_eq(rc, 0, "shmqd did not become ready: %s", shmq_strerror(rc));
}

/* SIGTERM, and the exit status must be 0. */
static inline void td_stop(struct tdaemon *d)
{
    if (d->pid <= 0)
        return;
    kill(d->pid, SIGTERM);
    int st = t_wait(d->pid, 10000);
    d->pid = 0;
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "shmqd did not exit cleanly (status %#x)", st);
}

static inline void td_kill(struct tdaemon *d)
{
    if (d->pid <= 0)
        return;
    kill(d->pid, SIGKILL);
    t_wait(d->pid, 10000);
    d->pid = 0;
}

/* Remove the instance and the files (whatever state the test left). */
static inline void td_cleanup(struct tdaemon *d)
{
    shmq_admin_t *a;
    td_kill(d);
    if (shmq_admin_open(d->instance, NULL, &a) == 0) {
        shmq_admin_destroy(a);
        shmq_admin_close(a);
    }
    unlink(d->sock);
    unlink(d->log);
}

/* Whether the daemon's log contains s. */
static inline int td_log_has(const struct tdaemon *d, const char *s)
{
    char buf[1 << 16];
    int fd = open(d->log, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    return strstr(buf, s) != NULL;
}

/* Wait (bounded) until the log contains s. */
static inline int td_log_wait(const struct tdaemon *d, const char *s,
                              unsigned timeout_ms)
{
    uint64_t end = t_mono_ns() + (uint64_t)timeout_ms * 1000000u;
    while (t_mono_ns() < end) {
        if (td_log_has(d, s))
            return 1;
        td_sleep_ms(2);
    }
    return td_log_has(d, s);
}

static inline shmq_ctl_t *td_ctl(const struct tdaemon *d)
{
    shmq_ctl_t *c = NULL;
    int rc = shmq_ctl_connect(d->instance, d->sock, &c);
    cr_assert_eq(rc, 0, "connect %s: %s", d->sock, shmq_strerror(rc));
    return c;
}

/* Create a queue through the daemon; asserts success. */
static inline void td_create(const struct tdaemon *d, const char *name,
                             uint32_t capacity, uint32_t msg_max)
{
    struct shmq_queue_config cfg;
    char msg[SHMQ_CTL_MSG_MAX];
    shmq_queue_config_init(&cfg);
    cfg.capacity = capacity;
    cfg.msg_max = msg_max;
    shmq_ctl_t *c = td_ctl(d);
    int rc = shmq_ctl_create(c, name, &cfg, msg, sizeof(msg));
    shmq_ctl_close(c);
    cr_assert_eq(rc, 0, "create %s: %s (%s)", name, shmq_strerror(rc), msg);
}

/* Whether the daemon watches the process with this pid (bounded wait). */
static inline int td_watched(const struct tdaemon *d, pid_t pid,
                             unsigned timeout_ms)
{
    static struct shmq_ctl_proc procs[256];
    uint64_t end = t_mono_ns() + (uint64_t)timeout_ms * 1000000u;
    shmq_ctl_t *c = td_ctl(d);
    int found = 0;
    do {
        int n = shmq_ctl_procs(c, procs, 256, NULL, 0);
        for (int i = 0; i < n && i < 256; i++)
            if (procs[i].info.pid == pid && procs[i].watched)
                found = 1;
        if (!found)
            td_sleep_ms(2);
    } while (!found && t_mono_ns() < end);
    shmq_ctl_close(c);
    return found;
}

/* A pipe to hear "ready" from a child. */
static inline void td_signal(int fd)
{
    char b = 1;
    if (write(fd, &b, 1) != 1)
        _exit(90);
}

static inline int td_await(int fd, unsigned timeout_ms)
{
    char b;
    uint64_t end = t_mono_ns() + (uint64_t)timeout_ms * 1000000u;
    fcntl(fd, F_SETFL, O_NONBLOCK);
    while (t_mono_ns() < end) {
        if (read(fd, &b, 1) == 1)
            return 1;
        td_sleep_ms(1);
    }
    return 0;
}

#endif
