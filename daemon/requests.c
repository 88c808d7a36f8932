/* SPDX-License-Identifier: MIT */
/*
 * One handler per protocol op, and the permission rules
 * (docs/protocol.md, "Permissions"):
 *
 *   - the daemon's owner (its effective uid) and root are managers: they
 *     may do everything;
 *   - anyone who can connect (the socket's mode decides who can) may
 *     ping, register its own process, list the processes, and list, get
 *     info and stats of the queues whose mode lets them read the queue
 *     (owner, group or other read bit, as for a file), and list their
 *     dead letters;
 *   - create, delete, purge, dlq requeue and dlq drop are for managers
 *     only: -EPERM for anyone else.
 */
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shmqd.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

static int need_manager(const struct peer *p, const struct shmqd *d,
                        struct reply *r, const char *what)
{
    if (p->manager)
        return 0;
    struct passwd *pw = getpwuid(d->euid);
    r->status = -EPERM;
    reply_msg(r, "permission denied: only %s (the owner of shmqd) and root "
                 "may %s",
              pw ? pw->pw_name : "the daemon's user", what);
    return -EPERM;
}

/* The queue called name, copied, if the peer may read it. */
static int readable_queue(const struct peer *p, const char *name,
                          struct dq *out, struct reply *r)
{
    rcu_read_lock();
    struct dq *q = tables_queue_find(name);
    if (q) {
        memcpy(out->name, q->name, sizeof(out->name));
        out->generation = q->generation;
        out->cfg = q->cfg;
        out->owner = q->owner;
    }
    rcu_read_unlock();
    if (!q) {
        r->status = -ENOENT;
        reply_msg(r, "no queue called %s", name);
        return -ENOENT;
    }
    if (!peer_can_read(p, out->owner, (gid_t)out->cfg.gid, out->cfg.mode)) {
        r->status = -EACCES;
        reply_msg(r, "permission denied: the mode of queue %s (0%o) does not "
                     "let uid %u read it",
                  name, out->cfg.mode, (unsigned)p->uid);
        return -EACCES;
    }
    return 0;
}

/* The queue table first; the registry may have a queue made behind the
 * daemon's back since the last scan. */
static void refresh(struct shmqd *d, const char *name)
{
    rcu_read_lock();
    int known = name && tables_queue_find(name) != NULL;
    rcu_read_unlock();
    if (!known)
        tables_sync_queues(d, d->admin);
}

static int put_queue(struct shmq__pw *w, const void *rec)
{
    return shmq__pw_queue(w, rec);
}
static int put_stats(struct shmq__pw *w, const void *rec)
{
    return shmq__pw_stats(w, rec);
}
static int put_proc(struct shmq__pw *w, const void *rec)
{
    return shmq__pw_proc(w, rec);
}
static int put_daemon(struct shmq__pw *w, const void *rec)
{
    return shmq__pw_daemon(w, rec);
}

/* Configuration and fresh counters of a known queue. */
static int queue_info(struct shmqd *d, const struct dq *q,
                      struct shmq_queue_info *info)
{
    memset(info, 0, sizeof(*info));
    memcpy(info->name, q->name, sizeof(info->name));
    info->config = q->cfg;
    info->stats.size = sizeof(info->stats);
    int rc = shmq_stats_by_name(d->instance, q->name, &info->stats);
    if (rc == 0 && info->stats.generation != q->generation) {
        /* Deleted and made again behind our back: learn the new one. */
        if (tables_queue_load(d, d->admin, q->name) == 0) {
            rcu_read_lock();
            struct dq *now = tables_queue_find(q->name);
            if (now)
                info->config = now->cfg;
            rcu_read_unlock();
        }
    }
    return rc;
}

static void describe(char *buf, size_t cap, const struct shmq_queue_config *c)
{
    struct group *g = c->gid >= 0 ? getgrgid((gid_t)c->gid) : NULL;
    char gname[64];
    if (g)
        snprintf(gname, sizeof(gname), "%s", g->gr_name);
    else
        snprintf(gname, sizeof(gname), "%d", (int)c->gid);
    int n = snprintf(buf, cap,
                     "capacity %u, msg_max %u, mode 0%o, group %s, "
                     "max_deliveries %u, dlq_capacity %u",
                     c->capacity, c->msg_max, c->mode, gname,
                     c->max_deliveries, c->dlq_capacity);
    if (c->lease_timeout_ns && n > 0 && (size_t)n < cap)
        snprintf(buf + n, cap - (size_t)n, ", lease_timeout %llu ms",
                 (unsigned long long)(c->lease_timeout_ns / 1000000u));
}

/* ---- ops ----------------------------------------------------------------- */

static void op_ping(struct shmqd *d, struct reply *r)
{
    struct shmq_ctl_daemon info;
    memset(&info, 0, sizeof(info));
    info.pid = (int32_t)getpid();
    info.uid = (uint32_t)d->euid;
    info.proto_version = SHMQ_PROTO_VERSION;
    info.queues = tables_queue_count();
    info.watched = tables_proc_count();
    info.uptime_ns = shmq__now_ns(CLOCK_MONOTONIC) - d->start_ns;
    snprintf(info.version, sizeof(info.version), "%s", shmq_version_string());
    snprintf(info.instance, sizeof(info.instance), "%s", d->instance);
    snprintf(info.socket_path, sizeof(info.socket_path), "%s",
             d->socket_path);
    reply_add(r, put_daemon, &info);
    reply_msg(r, "shmqd %s, pid %d, instance %s: %u queue%s, %u process%s "
                 "watched",
              info.version, (int)info.pid, info.instance, info.queues,
              info.queues == 1 ? "" : "s", info.watched,
              info.watched == 1 ? "" : "es");
}

int shmqd_create_queue(struct shmqd *d, const char *name,
                       const struct shmq_queue_config *cfg, const char *who,
                       char *msg, size_t cap)
{
    struct shmq_queue_config c = *cfg;
    char desc[256];

    if (c.gid < 0 && d->gid_set)
        c.gid = (int32_t)d->gid;
    int rc = shmq_admin_create(d->admin, name, &c);
    if (rc == 0) {
        tables_queue_load(d, d->admin, name);
        rcu_read_lock();
        struct dq *q = tables_queue_find(name);
        if (q)
            c = q->cfg; /* as made: with the segment's group */
        rcu_read_unlock();
        if (c.lease_timeout_ns)
            watch_poke(); /* start its lease expiry now */
        describe(desc, sizeof(desc), &c);
        log_info("queue %s created (%s): %s", name, who, desc);
        snprintf(msg, cap, "created queue %s: %s", name, desc);
    } else if (rc == -EEXIST) {
        snprintf(msg, cap, "queue %s already exists", name);
    } else {
        const char *why = NULL;
        shmq_queue_config_check(&c, &why);
        snprintf(msg, cap, "cannot create queue %s: %s", name,
                 why ? why : shmq_strerror(rc));
    }
    return rc;
}

static void op_create(struct shmqd *d, const struct peer *p,
                      const struct shmq__req *rq, struct reply *r)
{
    char who[64];
    if (need_manager(p, d, r, "create queues"))
        return;
    snprintf(who, sizeof(who), "by pid %d uid %u", (int)p->pid,
             (unsigned)p->uid);
    r->status = shmqd_create_queue(d, rq->name, &rq->cfg, who, r->msg,
                                   sizeof(r->msg));
}

static void op_delete(struct shmqd *d, const struct peer *p,
                      const struct shmq__req *rq, struct reply *r)
{
    if (need_manager(p, d, r, "delete queues"))
        return;
    r->status = shmq_admin_delete(d->admin, rq->name);
    if (r->status == 0) {
        tables_queue_forget(rq->name);
        log_info("queue %s deleted (by pid %d uid %u)", rq->name, (int)p->pid,
                 (unsigned)p->uid);
        reply_msg(r, "deleted queue %s", rq->name);
    } else if (r->status == -ENOENT) {
        reply_msg(r, "no queue called %s", rq->name);
    } else {
        reply_msg(r, "cannot delete queue %s: %s", rq->name,
                  shmq_strerror(r->status));
    }
}

static void op_purge(struct shmqd *d, const struct peer *p,
                     const struct shmq__req *rq, struct reply *r)
{
    const char *ring = rq->ring == SHMQ_RING_DLQ ? "dead-letter" : "main";
    if (need_manager(p, d, r, "purge queues"))
        return;
    r->status = shmq_admin_purge(d->admin, rq->name, (int)rq->ring);
    if (r->status >= 0) {
        log_info("queue %s: %d message%s dropped from the %s ring by purge "
                 "(pid %d uid %u)",
                 rq->name, r->status, r->status == 1 ? "" : "s", ring,
                 (int)p->pid, (unsigned)p->uid);
        reply_msg(r, "purged %d message%s from the %s ring of %s", r->status,
                  r->status == 1 ? "" : "s", ring, rq->name);
    } else if (r->status == -ENOENT) {
        reply_msg(r, rq->ring == SHMQ_RING_DLQ
                         ? "no queue called %s with a dead-letter ring"
                         : "no queue called %s",
                  rq->name);
    } else {
        reply_msg(r, "cannot purge %s: %s", rq->name,
                  shmq_strerror(r->status));
    }
}

static void op_list(struct shmqd *d, const struct peer *p, struct reply *r)
{
    struct dq *qs;
    struct shmq_queue_info info;
    int shown = 0;

    tables_sync_queues(d, d->admin);
    int n = tables_queue_snapshot(&qs);
    if (n < 0) {
        r->status = n;
        return;
    }
    for (int i = 0; i < n; i++) {
        if (!peer_can_read(p, qs[i].owner, (gid_t)qs[i].cfg.gid,
                           qs[i].cfg.mode))
            continue;
        if (queue_info(d, &qs[i], &info) != 0)
            continue; /* deleted meanwhile */
        if (reply_add(r, put_queue, &info) != 0)
            break;
        shown++;
    }
    free(qs);
    r->status = shown;
    if (shown < n && !p->manager)
        reply_msg(r, "%d queue%s (%d more not readable by uid %u)", shown,
                  shown == 1 ? "" : "s", n - shown, (unsigned)p->uid);
    else
        reply_msg(r, "%d queue%s", shown, shown == 1 ? "" : "s");
}

static void op_info(struct shmqd *d, const struct peer *p,
                    const struct shmq__req *rq, struct reply *r, int stats)
{
    struct dq q;
    struct shmq_queue_info info;

    refresh(d, rq->name);
    if (readable_queue(p, rq->name, &q, r))
        return;
    int rc = queue_info(d, &q, &info);
    if (rc) {
        r->status = rc;
        reply_msg(r, "cannot read queue %s: %s", rq->name, shmq_strerror(rc));
        return;
    }
    r->status = stats ? reply_add(r, put_stats, &info.stats)
                      : reply_add(r, put_queue, &info);
    if (r->status == 0)
        reply_msg(r, "queue %s: %llu of %u slots used, %llu in flight",
                  rq->name, (unsigned long long)info.stats.depth,
                  info.stats.capacity,
                  (unsigned long long)info.stats.in_flight);
}

/* ---- register ------------------------------------------------------------ */

/* The pid behind a pidfd, from /proc/self/fdinfo ("Pid:\t<pid>"). */
static pid_t pidfd_pid(int pidfd)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", pidfd);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    const char *s = strstr(buf, "\nPid:");
    long pid;
    if (!s || sscanf(s + 5, "%ld", &pid) != 1 || pid <= 0)
        return -1;
    return (pid_t)pid;
}

/* A pidfd for the peer: SO_PEERPIDFD; else the one it sent, if it names
 * the peer; else pidfd_open of the peer's pid (checked by the caller
 * against the liveness lock). *how says which. */
static int peer_pidfd(int sock, const struct peer *p, int passed_fd,
                      const char **how)
{
    int fd = -1;
    socklen_t len = sizeof(fd);
    if (getsockopt(sock, SOL_SOCKET, SO_PEERPIDFD, &fd, &len) == 0 &&
        fd >= 0) {
        *how = "SO_PEERPIDFD";
        if (passed_fd >= 0)
            close(passed_fd);
        return fd;
    }
    if (passed_fd >= 0) {
        if (pidfd_pid(passed_fd) == p->pid) {
            *how = "a pidfd sent with SCM_RIGHTS";
            return passed_fd;
        }
        close(passed_fd);
    }
#ifdef SYS_pidfd_open
    *how = "pidfd_open";
    fd = (int)syscall(SYS_pidfd_open, p->pid, 0);
    return fd < 0 ? -errno : fd;
#else
    return -ENOSYS;
#endif
}

static void op_register(struct shmqd *d, int sock, const struct peer *p,
                        const struct shmq__req *rq, int passed_fd,
                        struct reply *r)
{
    uint32_t token = rq->token;
    struct shmq_reg_proc *e = shmq__reg_proc(&d->reg, SHMQ_TOKEN_IDX(token));
    uint64_t w = e ? atomic_load_explicit(&e->word, memory_order_acquire) : 0;
    const char *how = NULL;

    if (!e || (SHMQ_PROC_INC(w) & 0xffffu) != SHMQ_TOKEN_INC(token) ||
        SHMQ_PROC_STATE(w) != SHMQ_PROC_ALIVE) {
        r->status = -ENOENT;
        reply_msg(r, "token %#x is not registered", token);
        goto out;
    }
    /* Untrusted: anyone can write an entry; it must name the caller. */
    pid_t epid = atomic_load_explicit(&e->pid, memory_order_relaxed);
    uid_t euid = atomic_load_explicit(&e->uid, memory_order_relaxed);
    if (epid != p->pid || euid != p->uid) {
        r->status = -ESRCH;
        reply_msg(r, "token %#x belongs to pid %d uid %u, not to the caller "
                     "(pid %d uid %u)",
                  token, (int)epid, (unsigned)euid, (int)p->pid,
                  (unsigned)p->uid);
        goto out;
    }
    rcu_read_lock();
    int known = tables_proc_find(token) != NULL;
    rcu_read_unlock();
    if (known) {
        reply_msg(r, "pid %d is watched already", (int)p->pid);
        goto out;
    }
    int fd = peer_pidfd(sock, p, passed_fd, &how);
    passed_fd = -1;
    if (fd < 0) {
        r->status = fd;
        reply_msg(r, "cannot get a pidfd for pid %d: %s", (int)p->pid,
                  strerror(-fd));
        goto out;
    }
    if (shmq_admin_alive(d->admin, token) != 1) {
        close(fd);
        r->status = -ESRCH;
        reply_msg(r, "token %#x does not hold its liveness lock", token);
        goto out;
    }
    int rc = watch_add(d, token, p->pid, p->uid, fd);
    if (rc == -EEXIST) {
        reply_msg(r, "pid %d is watched already", (int)p->pid);
    } else if (rc < 0) {
        r->status = rc;
        reply_msg(r, "cannot watch pid %d: %s", (int)p->pid, strerror(-rc));
    } else {
        log_info("process registered: pid %d uid %u token %#x, watched "
                 "through %s",
                 (int)p->pid, (unsigned)p->uid, token, how);
        reply_msg(r, "watching pid %d (token %#x)", (int)p->pid, token);
    }
out:
    if (passed_fd >= 0)
        close(passed_fd);
}

/* ---- procs --------------------------------------------------------------- */

static void op_procs(struct shmqd *d, struct reply *r)
{
    struct shmq_proc_info *pi = calloc(d->reg.max_procs, sizeof(*pi));
    struct shmq_ctl_proc cp;
    if (!pi) {
        r->status = -ENOMEM;
        return;
    }
    int n = shmq_admin_procs(d->admin, pi, d->reg.max_procs);
    if (n > (int)d->reg.max_procs)
        n = (int)d->reg.max_procs;
    unsigned watched = 0;
    for (int i = 0; n > 0 && i < n; i++) {
        memset(&cp, 0, sizeof(cp));
        cp.info = pi[i];
        rcu_read_lock();
        cp.watched = tables_proc_find(pi[i].token) != NULL;
        rcu_read_unlock();
        watched += cp.watched;
        if (reply_add(r, put_proc, &cp) != 0)
            break;
    }
    free(pi);
    r->status = n;
    if (n >= 0)
        reply_msg(r, "%d registered process%s, %u watched with a pidfd", n,
                  n == 1 ? "" : "es", watched);
}

/* ---- dispatch ------------------------------------------------------------ */

void request_handle(struct shmqd *d, int sock, const struct peer *p,
                    const struct shmq__req *rq, int passed_fd,
                    struct reply *r)
{
    struct dq q;

    if (rq->op != SHMQ_OP_REGISTER && passed_fd >= 0) {
        close(passed_fd);
        passed_fd = -1;
    }
    switch (rq->op) {
    case SHMQ_OP_PING:
        op_ping(d, r);
        break;
    case SHMQ_OP_CREATE:
        op_create(d, p, rq, r);
        break;
    case SHMQ_OP_DELETE:
        op_delete(d, p, rq, r);
        break;
    case SHMQ_OP_PURGE:
        op_purge(d, p, rq, r);
        break;
    case SHMQ_OP_LIST:
        op_list(d, p, r);
        break;
    case SHMQ_OP_INFO:
        op_info(d, p, rq, r, 0);
        break;
    case SHMQ_OP_STATS:
        op_info(d, p, rq, r, 1);
        break;
    case SHMQ_OP_REGISTER:
        op_register(d, sock, p, rq, passed_fd, r);
        break;
    case SHMQ_OP_DLQ_LIST:
        refresh(d, rq->name);
        if (readable_queue(p, rq->name, &q, r) == 0)
            r->status = dlq_list(d, rq->name, rq->count, r);
        break;
    case SHMQ_OP_DLQ_REQUEUE:
    case SHMQ_OP_DLQ_DROP:
        if (need_manager(p, d, r,
                         rq->op == SHMQ_OP_DLQ_DROP ? "drop dead letters"
                                                    : "requeue dead letters"))
            break;
        r->status = dlq_move(d, rq->name, rq->count,
                             rq->op == SHMQ_OP_DLQ_REQUEUE, r);
        if (r->status > 0)
            log_info("queue %s: %d dead letter%s %s (by pid %d uid %u)",
                     rq->name, r->status, r->status == 1 ? "" : "s",
                     rq->op == SHMQ_OP_DLQ_REQUEUE ? "requeued" : "dropped",
                     (int)p->pid, (unsigned)p->uid);
        break;
    case SHMQ_OP_PROCS:
        op_procs(d, r);
        break;
    default: /* the parser admits no other op */
        r->status = -EOPNOTSUPP;
        break;
    }
}
