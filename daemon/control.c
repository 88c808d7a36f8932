/* SPDX-License-Identifier: MIT */
/*
 * The control socket: a Unix SOCK_SEQPACKET socket, so every request and
 * every answer frame is one message and a malformed request can never
 * leave a connection out of step. The main thread serves it from one epoll
 * loop, non-blocking throughout: a client that does not read its answer
 * only stalls itself (its frames wait in its connection's buffer, and
 * nothing more is read from it until they are gone).
 *
 * Peer credentials (SO_PEERCRED, SO_PEERGROUPS) are read once, at accept;
 * requests.c decides with them what the peer may do. Limits: requests of
 * at most SHMQ_PROTO_REQ_MAX bytes, SHMQD_MAX_CONNS connections, a
 * connection idle for SHMQD_IDLE_MS is closed.
 *
 * Signals: SIGTERM, SIGINT and SIGHUP are blocked everywhere except in
 * epoll_pwait() here, so their handlers (which only set flags) run only
 * while the loop waits, and the loop sees the flags at once.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "shmqd.h"

struct conn {
    int fd;
    struct peer peer;
    uint8_t *out; /* answer frames not yet sent */
    size_t out_len, out_off;
    uint64_t last_ms;
    struct conn *prev, *next;
};

static int ctl_ep = -1;
static int listen_marker;
static struct conn *conns;
static unsigned nconns;

static uint64_t now_ms(void)
{
    return shmq__now_ns(CLOCK_MONOTONIC) / 1000000u;
}

/* ---- answers ------------------------------------------------------------- */

static int frame_open(struct reply *r)
{
    if (r->len + SHMQ_PROTO_FRAME_MAX > r->cap) {
        size_t nc = r->cap ? 2 * r->cap : SHMQ_PROTO_FRAME_MAX;
        while (nc < r->len + SHMQ_PROTO_FRAME_MAX)
            nc *= 2;
        if (nc > SHMQD_REPLY_MAX) {
            r->oom = 1;
            return -ENOMEM;
        }
        uint8_t *b = realloc(r->buf, nc);
        if (!b) {
            r->oom = 1;
            return -ENOMEM;
        }
        r->buf = b;
        r->cap = nc;
    }
    shmq__pw_init(&r->w, r->buf + r->len, SHMQ_PROTO_FRAME_MAX, r->op, r->seq,
                  0, 0);
    return 0;
}

static void frame_close(struct reply *r, int32_t status, uint32_t flags)
{
    shmq__pw_set_status(&r->w, status, flags);
    int n = shmq__pw_finish(&r->w);
    if (n > 0)
        r->len += (size_t)n;
}

static int reply_begin(struct reply *r, unsigned op, uint32_t seq)
{
    memset(r, 0, sizeof(*r));
    r->op = op;
    r->seq = seq;
    return frame_open(r);
}

int reply_add(struct reply *r, int (*put)(struct shmq__pw *, const void *),
              const void *rec)
{
    if (r->oom)
        return -ENOMEM;
    int rc = put(&r->w, rec);
    if (rc != -EMSGSIZE)
        return rc;
    if (r->w.len == SHMQ_PROTO_HDR)
        return rc; /* larger than a frame on its own */
    frame_close(r, 0, SHMQ_PROTO_F_MORE);
    if ((rc = frame_open(r)) != 0)
        return rc;
    return put(&r->w, rec);
}

void reply_msg(struct reply *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
    va_end(ap);
}

static int put_msg(struct shmq__pw *w, const void *s)
{
    size_t at = w->len;
    shmq__pw_str(w, SHMQ_A_MESSAGE, s);
    if (w->err) {
        w->err = 0;
        w->len = at;
        return -EMSGSIZE;
    }
    return 0;
}

/* Close the answer: the message and the status go in the last frame. */
static void reply_finish(struct reply *r)
{
    if (r->oom || !r->buf) {
        /* Start over with just the error (the first frame always fits). */
        size_t cap = r->cap;
        r->len = 0;
        r->oom = 0;
        if (!r->buf || cap < SHMQ_PROTO_FRAME_MAX) {
            free(r->buf);
            r->buf = malloc(SHMQ_PROTO_FRAME_MAX);
            r->cap = r->buf ? SHMQ_PROTO_FRAME_MAX : 0;
            if (!r->buf)
                return;
        }
        shmq__pw_init(&r->w, r->buf, SHMQ_PROTO_FRAME_MAX, r->op, r->seq, 0,
                      0);
        r->status = -ENOMEM;
        reply_msg(r, "the answer does not fit in %u bytes",
                  (unsigned)SHMQD_REPLY_MAX);
    }
    if (!r->msg[0])
        reply_msg(r, "%s", r->status < 0 ? shmq_strerror(r->status) : "ok");
    if (reply_add(r, put_msg, r->msg) != 0)
        return;
    frame_close(r, r->status, 0);
}

/* ---- connections --------------------------------------------------------- */

static void conn_close(struct conn *c)
{
    epoll_ctl(ctl_ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    nconns--;
    free(c->peer.groups);
    free(c->out);
    free(c);
}

static int read_peer(struct shmqd *d, int fd, struct peer *p)
{
    struct ucred uc;
    socklen_t len = sizeof(uc);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
        return -errno;
    p->pid = uc.pid;
    p->uid = uc.uid;
    p->gid = uc.gid;
    p->manager = uc.uid == 0 || uc.uid == d->euid;
    len = 64 * sizeof(gid_t);
    for (int tries = 0; tries < 2; tries++) {
        gid_t *g = malloc(len ? len : sizeof(gid_t));
        if (!g)
            return -ENOMEM;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) == 0) {
            p->groups = g;
            p->ngroups = (int)(len / sizeof(gid_t));
            return 0;
        }
        free(g);
        if (errno != ERANGE)
            break; /* no supplementary groups known: primary only */
    }
    return 0;
}

int peer_can_read(const struct peer *p, uid_t owner, gid_t gid,
                  uint32_t mode)
{
    if (p->manager)
        return 1;
    if (p->uid == owner)
        return (mode & 0400) != 0;
    int member = p->gid == gid;
    for (int i = 0; !member && i < p->ngroups; i++)
        member = p->groups[i] == gid;
    return (mode & (member ? 0040u : 0004u)) != 0;
}

static void set_events(struct conn *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(ctl_ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Send what is pending: 1 all sent, 0 the socket is full, <0 error. */
static int flush(struct conn *c)
{
    while (c->out_off < c->out_len) {
        uint32_t flen;
        memcpy(&flen, c->out + c->out_off + 8, 4);
        ssize_t n = send(c->fd, c->out + c->out_off, flen,
                         MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN ? 0 : -errno;
        }
        c->out_off += flen;
    }
    free(c->out);
    c->out = NULL;
    c->out_len = c->out_off = 0;
    return 1;
}

/* Take the fds that came with a message: keep the first, close the rest. */
static int take_fds(struct msghdr *mh)
{
    int keep = -1;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm;
         cm = CMSG_NXTHDR(mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
            if (keep < 0)
                keep = fd;
            else
                close(fd);
        }
    }
    return keep;
}

/* Answer one request of n bytes (n > sizeof(buf) if it was cut). */
static void serve(struct shmqd *d, struct conn *c, const uint8_t *buf,
                  size_t n, int passed_fd, struct reply *r)
{
    struct shmq__req rq;
    const char *why = NULL;
    int rc = shmq__proto_parse_request(buf, n, &rq, &why);
    if (reply_begin(r, rq.op, rq.seq) != 0) {
        if (passed_fd >= 0)
            close(passed_fd);
        return;
    }
    if (rc) {
        if (passed_fd >= 0)
            close(passed_fd);
        r->status = rc;
        if (rc == -EMSGSIZE)
            reply_msg(r, "bad request: %s (got %zu bytes)", why, n);
        else
            reply_msg(r, "bad request: %s", why);
        log_limited("bad request from pid %d uid %u (%zu bytes, op %u %s): "
                    "%s",
                    (int)c->peer.pid, (unsigned)c->peer.uid, n, rq.op,
                    shmq__proto_op_name(rq.op), why);
    } else {
        request_handle(d, c->fd, &c->peer, &rq, passed_fd, r);
    }
    reply_finish(r);
}

/* Read and answer requests until the socket is empty or an answer has to
 * wait for the client to read. Returns <0 to close the connection. */
static int on_readable(struct shmqd *d, struct conn *c)
{
    uint8_t buf[SHMQ_PROTO_REQ_MAX];
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(4 * sizeof(int))];
    } cm;

    for (int i = 0; i < 16; i++) { /* then let others have a turn */
        struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
        struct msghdr mh = {.msg_iov = &iov,
                            .msg_iovlen = 1,
                            .msg_control = cm.b,
                            .msg_controllen = sizeof(cm.b)};
        ssize_t n = recvmsg(c->fd, &mh,
                            MSG_DONTWAIT | MSG_TRUNC | MSG_CMSG_CLOEXEC);
        if (n < 0)
            return errno == EAGAIN || errno == EINTR ? 0 : -errno;
        int fd = take_fds(&mh);
        if (n == 0) {
            if (fd >= 0)
                close(fd);
            return -ECONNRESET;
        }
        c->last_ms = now_ms();
        struct reply r;
        serve(d, c, buf, (size_t)n, fd, &r);
        if (!r.buf)
            return -ENOMEM;
        c->out = r.buf;
        c->out_len = r.len;
        c->out_off = 0;
        int rc = flush(c);
        if (rc < 0)
            return rc;
        if (rc == 0) { /* wait until the client reads */
            set_events(c, EPOLLOUT);
            return 0;
        }
    }
    return 0;
}

static void on_accept(struct shmqd *d)
{
    for (;;) {
        int fd = accept4(d->listen_fd, NULL, NULL,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                log_warn("accept: %m");
            return;
        }
        struct conn *c = calloc(1, sizeof(*c));
        if (!c || read_peer(d, fd, &c->peer) != 0) {
            free(c ? c->peer.groups : NULL);
            free(c);
            close(fd);
            continue;
        }
        if (nconns >= SHMQD_MAX_CONNS) {
            struct reply r;
            if (reply_begin(&r, 0, 0) == 0) {
                r.status = -EBUSY;
                reply_msg(&r, "too many connections (%u); try again",
                          SHMQD_MAX_CONNS);
                reply_finish(&r);
                send(fd, r.buf, r.len, MSG_DONTWAIT | MSG_NOSIGNAL);
            }
            free(r.buf);
            log_limited("refused a connection from pid %d: %u connections "
                        "open",
                        (int)c->peer.pid, nconns);
            free(c->peer.groups);
            free(c);
            close(fd);
            continue;
        }
        c->fd = fd;
        c->last_ms = now_ms();
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(ctl_ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            free(c->peer.groups);
            free(c);
            close(fd);
            continue;
        }
        c->next = conns;
        if (conns)
            conns->prev = c;
        conns = c;
        nconns++;
    }
}

static void on_event(struct shmqd *d, struct conn *c, uint32_t events)
{
    int rc = 0;
    if (c->out) {
        rc = flush(c);
        if (rc > 0) {
            set_events(c, EPOLLIN);
            rc = on_readable(d, c);
        }
    } else if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        rc = on_readable(d, c);
    }
    if (rc < 0)
        conn_close(c);
}

static void sweep_idle(void)
{
    uint64_t now = now_ms();
    for (struct conn *c = conns, *next; c; c = next) {
        next = c->next;
        if (now - c->last_ms > SHMQD_IDLE_MS)
            conn_close(c);
    }
}

/* ---- the socket ---------------------------------------------------------- */

static int bind_to(int fd, const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, path, strlen(path) + 1);
    return bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
}

/* Is someone answering at path? */
static int in_use(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 1; /* cannot tell: do not take it over */
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    int err = errno;
    close(fd);
    return rc == 0 || err != ECONNREFUSED;
}

int control_open(struct shmqd *d)
{
    struct stat st;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    int rc = bind_to(fd, d->socket_path);
    if (rc == -EADDRINUSE) {
        /* Left by a daemon that was killed? Only if nobody answers. */
        if (in_use(d->socket_path)) {
            log_err("socket %s is in use by another process",
                    d->socket_path);
            close(fd);
            return -EADDRINUSE;
        }
        if (lstat(d->socket_path, &st) == 0 && S_ISSOCK(st.st_mode))
            unlink(d->socket_path);
        rc = bind_to(fd, d->socket_path);
    }
    if (rc) {
        log_err("cannot bind %s: %s", d->socket_path, strerror(-rc));
        close(fd);
        return rc;
    }
    if (chmod(d->socket_path, d->mode) < 0 ||
        (d->gid_set && chown(d->socket_path, (uid_t)-1, d->gid) < 0) ||
        stat(d->socket_path, &st) < 0) {
        rc = -errno;
        log_err("cannot set the mode or group of %s: %s", d->socket_path,
                strerror(-rc));
        unlink(d->socket_path);
        close(fd);
        return rc;
    }
    d->sock_dev = st.st_dev;
    d->sock_ino = st.st_ino;
    if (listen(fd, 128) < 0) {
        rc = -errno;
        unlink(d->socket_path);
        close(fd);
        return rc;
    }
    d->listen_fd = fd;
    ctl_ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &listen_marker};
    if (ctl_ep < 0 || epoll_ctl(ctl_ep, EPOLL_CTL_ADD, fd, &ev) < 0)
        return -errno;
    return 0;
}

int control_run(struct shmqd *d)
{
    struct epoll_event ev[32];
    sigset_t wait_mask;

    pthread_sigmask(SIG_SETMASK, NULL, &wait_mask);
    sigdelset(&wait_mask, SIGTERM);
    sigdelset(&wait_mask, SIGINT);
    sigdelset(&wait_mask, SIGHUP);
    uint64_t next_sweep = now_ms() + 1000;
    while (!shmqd_stop) {
        if (shmqd_reload) {
            shmqd_reload = 0;
            shmqd_reload_config(d);
        }
        int n = epoll_pwait(ctl_ep, ev, 32, 1000, &wait_mask);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            log_err("epoll_pwait: %m");
            return -1;
        }
        for (int i = 0; i < n; i++) {
            if (ev[i].data.ptr == &listen_marker)
                on_accept(d);
            else
                on_event(d, ev[i].data.ptr, ev[i].events);
        }
        if (now_ms() >= next_sweep) {
            sweep_idle();
            next_sweep = now_ms() + 1000;
        }
    }
    return 0;
}

void control_close(struct shmqd *d)
{
    struct stat st;
    while (conns)
        conn_close(conns);
    if (ctl_ep >= 0)
        close(ctl_ep);
    ctl_ep = -1;
    if (d->listen_fd >= 0)
        close(d->listen_fd);
    d->listen_fd = -1;
    /* Only our own socket: never one another daemon bound since. */
    if (lstat(d->socket_path, &st) == 0 && st.st_dev == d->sock_dev &&
        st.st_ino == d->sock_ino)
        unlink(d->socket_path);
}
