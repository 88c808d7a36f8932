/* SPDX-License-Identifier: MIT */
/*
 * The death watch. Every watched process has a pidfd in one epoll set; a
 * pidfd becomes readable when its process exits, and the watch thread
 * then calls the library's repair for the process's token at once. No
 * heartbeat and no timeout is ever taken as proof of death: the repair
 * itself checks the token's liveness lock (an OFD lock the kernel drops
 * when the process dies) and refuses with -EBUSY while it is held.
 *
 * -EBUSY after a pidfd fired means another process still holds the lock's
 * open file description: a child forked a moment before the death, which
 * closes its inherited copy as soon as its atfork handler runs. The repair
 * is retried with a short backoff (1 ms doubling to 100 ms) and given up
 * after SHMQD_BUSY_GIVEUP_MS, leaving the token to the periodic scan.
 *
 * Which pid? A pidfd names a process, not a pid, so it cannot be fooled by
 * pid reuse once obtained. It comes from the control socket (SO_PEERPIDFD,
 * see requests.c) or from pidfd_open(pid) on the pid a process-table entry
 * names, and in that case it is trusted only if the token's liveness lock
 * is held *after* the pidfd was opened: the process that wrote the pid
 * into the entry was then still alive, so the pid was not yet reused and
 * the pidfd is that process.
 *
 * Every SHMQD_SCAN_MS the watch thread also scans, as a safety net: it
 * syncs the queue table with the registry, watches registered processes
 * nobody told it about (they registered while the daemon was down, or
 * their notification timed out), repairs entries whose lock is free, and
 * forgets processes whose token was given up (shmq_close) or repaired by
 * someone else.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "shmqd.h"

static pthread_t watch_thread;
static int stop_marker; /* epoll data for the stop eventfd */
static int wake_marker; /* ... and for the wake eventfd */
static int wake_fd = -1;
static struct dp *retries; /* exited, repair refused with -EBUSY */
static struct shmq_proc_info *proc_buf;

static uint64_t now_ms(void)
{
    return shmq__now_ns(CLOCK_MONOTONIC) / 1000000u;
}

void format_repair(char *buf, size_t cap, const struct shmq_repair_report *rep)
{
    snprintf(buf, cap,
             "%u queue%s scanned, %llu lease%s redelivered, %llu write%s "
             "skipped",
             rep->queues, rep->queues == 1 ? "" : "s",
             (unsigned long long)rep->redelivered,
             rep->redelivered == 1 ? "" : "s",
             (unsigned long long)rep->skipped, rep->skipped == 1 ? "" : "s");
}

int watch_init(struct shmqd *d)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &stop_marker};

    d->watch_ep = epoll_create1(EPOLL_CLOEXEC);
    d->watch_stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (d->watch_ep < 0 || d->watch_stop_fd < 0)
        return -errno;
    if (epoll_ctl(d->watch_ep, EPOLL_CTL_ADD, d->watch_stop_fd, &ev) < 0)
        return -errno;
    wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    ev.data.ptr = &wake_marker;
    if (wake_fd < 0 || epoll_ctl(d->watch_ep, EPOLL_CTL_ADD, wake_fd, &ev) < 0)
        return -errno;
    proc_buf = calloc(d->reg.max_procs, sizeof(*proc_buf));
    return proc_buf ? 0 : -ENOMEM;
}

static int pidfd_open_(pid_t pid)
{
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

int watch_pidfd_checked(shmq_admin_t *a, uint32_t token, pid_t pid)
{
    if (pid <= 0)
        return -ESRCH;
    int fd = pidfd_open_(pid);
    if (fd < 0)
        return -errno;
    /* After the pidfd: see the comment at the top. */
    int alive = shmq_admin_alive(a, token);
    if (alive == 1)
        return fd;
    close(fd);
    return alive < 0 ? alive : 0;
}

int watch_add(struct shmqd *d, uint32_t token, pid_t pid, uid_t uid,
              int pidfd)
{
    struct dp *p = calloc(1, sizeof(*p));
    if (!p) {
        close(pidfd);
        return -ENOMEM;
    }
    p->token = token;
    p->pid = pid;
    p->uid = uid;
    p->pidfd = pidfd;
    p->since_ns = shmq__now_ns(CLOCK_REALTIME);
    if (tables_proc_add(p) != 0) {
        close(pidfd);
        free(p);
        return -EEXIST;
    }
    /* The node is in the table but not yet armed: the watch thread's
     * prune skips it until the epoll registration below is done. */
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = p};
    if (epoll_ctl(d->watch_ep, EPOLL_CTL_ADD, pidfd, &ev) < 0) {
        int rc = -errno;
        tables_proc_del(p);
        return rc;
    }
    /* Release: pairs with the acquire in prune_one(). */
    atomic_store_explicit(&p->armed, 1, memory_order_release);
    return 0;
}

/* Repair a token whose process is gone; logs what was done. Returns the
 * library's answer. */
static int repair_token(struct shmqd *d, uint32_t token, pid_t pid,
                        const char *how)
{
    struct shmq_repair_report rep = {.size = sizeof(rep)};
    char what[160];
    int rc = shmq_admin_repair(d->admin_watch, token, &rep);
    if (rc > 0) {
        format_repair(what, sizeof(what), &rep);
        log_info("process died: pid %d token %#x (%s); repaired: %s",
                 (int)pid, token, how, what);
    } else if (rc < 0 && rc != -EBUSY) {
        log_warn("repair of pid %d token %#x failed: %s", (int)pid, token,
                 shmq_strerror(rc));
    }
    return rc;
}

/* Finish with a watched process after its repair (or its giving up). */
static void done_with(struct dp *p)
{
    p->busy_since_ms = 0;
    tables_proc_del(p); /* freed after a grace period */
}

/* A watched process exited: its pidfd fired. */
static void on_exit_(struct shmqd *d, struct dp *p, uint64_t now)
{
    epoll_ctl(d->watch_ep, EPOLL_CTL_DEL, p->pidfd, NULL);
    if (repair_token(d, p->token, p->pid, "pidfd") != -EBUSY) {
        done_with(p);
        return;
    }
    p->busy_since_ms = now;
    p->backoff_ms = 1;
    p->retry_at_ms = now + p->backoff_ms;
    p->next_retry = retries;
    retries = p;
}

/* Retry a repair refused with -EBUSY; 1 if it must be retried again. */
static int retry(struct shmqd *d, struct dp *p, uint64_t now)
{
    if (repair_token(d, p->token, p->pid, "pidfd, after a retry") !=
        -EBUSY) {
        done_with(p);
        return 0;
    }
    if (now - p->busy_since_ms > SHMQD_BUSY_GIVEUP_MS) {
        log_warn("pid %d (token %#x) exited but its liveness lock is still "
                 "held (by a child it forked?); the periodic scan will "
                 "repair it when the lock is released",
                 (int)p->pid, p->token);
        done_with(p);
        return 0;
    }
    if (p->backoff_ms < 100)
        p->backoff_ms *= 2;
    p->retry_at_ms = now + p->backoff_ms;
    return 1;
}

/* Run the retries that are due; returns when the next one is. */
static uint64_t run_retries(struct shmqd *d, uint64_t now)
{
    struct dp *list = retries, *keep = NULL;
    uint64_t next = UINT64_MAX;

    retries = NULL;
    while (list) {
        struct dp *p = list;
        list = p->next_retry; /* before retry(): p may be freed there */
        if (p->retry_at_ms <= now && !retry(d, p, now))
            continue;
        if (p->retry_at_ms < next)
            next = p->retry_at_ms;
        p->next_retry = keep;
        keep = p;
    }
    retries = keep;
    return next;
}

/* Forget a watched process whose token is no longer registered. */
static void prune_one(struct dp *p, void *arg)
{
    struct shmqd *d = arg;
    if (!atomic_load_explicit(&p->armed, memory_order_acquire) ||
        p->busy_since_ms)
        return;
    struct shmq_reg_proc *e =
        shmq__reg_proc(&d->reg, SHMQ_TOKEN_IDX(p->token));
    uint64_t w = e ? atomic_load_explicit(&e->word, memory_order_acquire) : 0;
    if (e && (SHMQ_PROC_INC(w) & 0xffffu) == SHMQ_TOKEN_INC(p->token) &&
        SHMQ_PROC_STATE(w) != SHMQ_PROC_FREE)
        return;
    epoll_ctl(d->watch_ep, EPOLL_CTL_DEL, p->pidfd, NULL);
    tables_proc_del(p);
}

/* What one scan of the process table found. */
struct scan_counts {
    unsigned watched, repaired, unwatchable;
    struct shmq_repair_report rep;
};

static void scan_procs(struct shmqd *d, const char *how,
                       struct scan_counts *sc)
{
    shmq_admin_t *a = d->admin_watch;
    int n = shmq_admin_procs(a, proc_buf, d->reg.max_procs);
    if (n > (int)d->reg.max_procs)
        n = (int)d->reg.max_procs;
    for (int i = 0; i < n; i++) {
        struct shmq_proc_info *pi = &proc_buf[i];
        if (pi->pid == (int32_t)getpid())
            continue; /* ourselves (purge, requeue) */
        rcu_read_lock();
        int known = tables_proc_find(pi->token) != NULL;
        rcu_read_unlock();
        if (known)
            continue;
        int fd = 0;
        if (pi->state == SHMQ_PROC_ALIVE && pi->alive)
            fd = watch_pidfd_checked(a, pi->token, pi->pid);
        if (fd > 0) {
            if (watch_add(d, pi->token, pi->pid, pi->uid, fd) == 0)
                sc->watched++;
        } else if (fd == 0) {
            struct shmq_repair_report rep = {.size = sizeof(rep)};
            char what[160];
            int rc = shmq_admin_repair(a, pi->token, &rep);
            if (rc > 0) {
                sc->repaired++;
                sc->rep.queues += rep.queues;
                sc->rep.redelivered += rep.redelivered;
                sc->rep.skipped += rep.skipped;
                format_repair(what, sizeof(what), &rep);
                log_info("process died: pid %d token %#x (%s); repaired: %s",
                         (int)pi->pid, pi->token, how, what);
            }
        } else {
            sc->unwatchable++; /* its pid is gone but the lock is held */
        }
    }
}

void watch_attach(struct shmqd *d)
{
    struct scan_counts sc;
    memset(&sc, 0, sizeof(sc));
    tables_sync_queues(d, d->admin_watch);
    scan_procs(d, "found dead at start", &sc);
    log_info("instance %s: %u queue%s, %u live process%s watched, %u dead "
             "process%s repaired (%llu leases redelivered, %llu writes "
             "skipped)%s",
             d->instance, tables_queue_count(),
             tables_queue_count() == 1 ? "" : "s", sc.watched,
             sc.watched == 1 ? "" : "es", sc.repaired,
             sc.repaired == 1 ? "" : "es",
             (unsigned long long)sc.rep.redelivered,
             (unsigned long long)sc.rep.skipped,
             sc.unwatchable ? "; some entries hold their lock without a "
                              "live pid (left to the scan)"
                            : "");
}

static void tick(struct shmqd *d)
{
    struct scan_counts sc;
    memset(&sc, 0, sizeof(sc));
    tables_sync_queues(d, d->admin_watch);
    tables_proc_each(prune_one, d);
    scan_procs(d, "found dead by the scan", &sc);
    if (sc.watched)
        log_info("scan: now watching %u more process%s that registered "
                 "without telling shmqd",
                 sc.watched, sc.watched == 1 ? "" : "es");
}

static void *watch_main(void *arg)
{
    struct shmqd *d = arg;
    struct epoll_event ev[32];

    rcu_register_thread();
    uint64_t now = now_ms();
    uint64_t next_tick = now + SHMQD_SCAN_MS;
    uint64_t next_expire = expire_run(d, d->admin_watch, now);
    for (;;) {
        now = now_ms();
        if (now >= next_tick) {
            tick(d);
            next_tick = now + SHMQD_SCAN_MS;
        }
        if (now >= next_expire)
            next_expire = expire_run(d, d->admin_watch, now);
        uint64_t next = run_retries(d, now);
        if (next_tick < next)
            next = next_tick;
        if (next_expire < next)
            next = next_expire;
        now = now_ms();
        int timeout = next <= now ? 0 : (int)(next - now);
        int n = epoll_wait(d->watch_ep, ev, 32, timeout);
        if (n < 0 && errno != EINTR) {
            log_err("epoll_wait: %m");
            break;
        }
        now = now_ms();
        for (int i = 0; i < n; i++) {
            if (ev[i].data.ptr == &stop_marker)
                goto out;
            if (ev[i].data.ptr == &wake_marker) {
                uint64_t v;
                if (read(wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
                    log_warn("watch: reading the wake eventfd: %m");
                next_expire = now; /* a new queue may have a timeout */
                continue;
            }
            on_exit_(d, ev[i].data.ptr, now);
        }
    }
out:
    rcu_unregister_thread();
    return NULL;
}

void watch_poke(void)
{
    uint64_t one = 1;
    if (wake_fd >= 0 && write(wake_fd, &one, sizeof(one)) < 0 &&
        errno != EAGAIN)
        log_warn("cannot wake the watch thread: %m");
}

int watch_start(struct shmqd *d)
{
    int rc = pthread_create(&watch_thread, NULL, watch_main, d);
    return -rc;
}

void watch_stop(struct shmqd *d)
{
    uint64_t one = 1;
    if (write(d->watch_stop_fd, &one, sizeof(one)) != sizeof(one))
        log_err("cannot stop the watch thread: %m");
    pthread_join(watch_thread, NULL);
    close(d->watch_stop_fd);
    close(wake_fd);
    wake_fd = -1;
    close(d->watch_ep);
    free(proc_buf);
    proc_buf = NULL;
}
