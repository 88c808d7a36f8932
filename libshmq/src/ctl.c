/* SPDX-License-Identifier: MIT */
/*
 * The client side of the shmqd control protocol (ctl.h): connect, one
 * call per request, and the registration hook process.c calls when a
 * process registers.
 *
 * A request is one SOCK_SEQPACKET message; the answer is one or more
 * frames, the last without SHMQ_PROTO_F_MORE, carrying the status and the
 * daemon's message. Every wait is bounded by the handle's timeout. After a
 * timeout or an I/O error the connection is dropped (late frames of the
 * old request must never be taken for the answer to a new one) and the
 * next request connects again.
 */
#include <shmq/ctl.h>

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "proto.h"
#include "registry.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

#define DEFAULT_TIMEOUT_NS INT64_C(10000000000)

struct shmq_ctl {
    pthread_mutex_t lock;
    int fd; /* -1: reconnect on the next request */
    uint32_t seq;
    int64_t timeout_ns;
    char path[SHMQ_CTL_PATH_MAX];
    uint8_t frame[SHMQ_PROTO_FRAME_MAX];
};

static void set_msg(char *msg, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_msg(char *msg, size_t cap, const char *fmt, ...)
{
    if (!msg || cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, cap, fmt, ap);
    va_end(ap);
}

/* ---- socket paths -------------------------------------------------------- */

int shmq_ctl_default_socket(const char *instance, char *buf, size_t cap)
{
    int n;

    if (!instance)
        instance = shmq_default_instance();
    if (shmq_instance_check(instance) || !buf)
        return -EINVAL;
    uid_t uid = geteuid();
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    if (uid == 0)
        n = snprintf(buf, cap, "/run/shmq/%s.sock", instance);
    else if (xdg && xdg[0] == '/')
        n = snprintf(buf, cap, "%s/shmq/%s.sock", xdg, instance);
    else
        n = snprintf(buf, cap, "/tmp/shmq-%u/%s.sock", (unsigned)uid,
                     instance);
    if (n < 0 || (size_t)n >= cap || (size_t)n >= SHMQ_CTL_PATH_MAX)
        return -ENAMETOOLONG;
    return n;
}

int32_t shmq__ctl_advertised(const struct shmq_reg_hdr *h, char *buf,
                             size_t cap)
{
    char tmp[sizeof(h->socket_path)];

    /* Acquire: pairs with the daemon's release store of daemon_pid after
     * it wrote socket_path. A path read between two equal non-zero loads
     * was not being rewritten (the daemon zeroes daemon_pid first). */
    int32_t pid = (int32_t)atomic_load_explicit(&h->daemon_pid,
                                                memory_order_acquire);
    if (pid <= 0)
        return 0;
    memcpy(tmp, h->socket_path, sizeof(tmp));
    atomic_thread_fence(memory_order_acquire);
    if ((int32_t)atomic_load_explicit(&h->daemon_pid,
                                      memory_order_relaxed) != pid)
        return 0;
    /* Untrusted: NUL-terminated, absolute, fits the caller's buffer. */
    size_t n = strnlen(tmp, sizeof(tmp));
    if (n == sizeof(tmp) || n == 0 || tmp[0] != '/' || n >= cap)
        return 0;
    memcpy(buf, tmp, n + 1);
    return pid;
}

int shmq_ctl_socket_path(const char *instance, char *buf, size_t cap)
{
    struct shmq__reg reg;

    if (!instance)
        instance = shmq_default_instance();
    if (shmq_instance_check(instance) || !buf)
        return -EINVAL;
    if (shmq__reg_open(instance, 0, NULL, &reg) == 0) {
        int32_t pid = shmq__ctl_advertised(reg.hdr, buf, cap);
        shmq__reg_close(&reg);
        if (pid > 0)
            return (int)strlen(buf);
    }
    return shmq_ctl_default_socket(instance, buf, cap);
}

/* ---- bounded socket I/O -------------------------------------------------- */

static uint64_t deadline_of(int64_t timeout_ns)
{
    return timeout_ns < 0 ? UINT64_MAX : shmq__deadline(timeout_ns);
}

/* Wait for events on fd until deadline; 0, -ETIMEDOUT or -errno. */
static int wait_fd(int fd, short events, uint64_t deadline)
{
    for (;;) {
        int ms = -1;
        if (deadline != UINT64_MAX) {
            uint64_t now = shmq__now_ns(CLOCK_MONOTONIC);
            if (now >= deadline)
                return -ETIMEDOUT;
            ms = (int)((deadline - now + 999999u) / 1000000u);
        }
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, ms);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -errno;
    }
}

static int connect_to(const char *path, uint64_t deadline, int *out)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, path, n + 1);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    int rc;
    for (;;) {
        rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
        if (rc != -EAGAIN && rc != -EINTR)
            break;
        /* The listen backlog is full (a Unix socket does not queue the
         * attempt): try again shortly, until the deadline. */
        if (shmq__now_ns(CLOCK_MONOTONIC) >= deadline) {
            rc = -ETIMEDOUT;
            break;
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    if (rc) {
        close(fd);
        return rc;
    }
    *out = fd;
    return 0;
}

/* Does the kernel give a daemon our pidfd through SO_PEERPIDFD? Probed
 * once per process on a connected socket: 1 yes, -1 no, 0 not known. */
static _Atomic int peerpidfd_support;

static int peer_sees_pidfd(int fd)
{
    int s = atomic_load_explicit(&peerpidfd_support, memory_order_relaxed);
    if (s)
        return s > 0;
    int pfd = -1;
    socklen_t len = sizeof(pfd);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pfd, &len) == 0) {
        close(pfd);
        s = 1;
    } else if (errno == ENOPROTOOPT || errno == EINVAL) {
        s = -1;
    } else {
        return 1; /* unknown: assume so, the daemon has its own fallback */
    }
    atomic_store_explicit(&peerpidfd_support, s, memory_order_relaxed);
    return s > 0;
}

/* Send one frame, with pass_fd (>= 0) attached as SCM_RIGHTS. */
static int send_frame(int fd, const void *buf, size_t len, int pass_fd,
                      uint64_t deadline)
{
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(int))];
    } cm;
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (pass_fd >= 0) {
        memset(&cm, 0, sizeof(cm));
        mh.msg_control = cm.b;
        mh.msg_controllen = sizeof(cm.b);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
    }
    for (;;) {
        ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n == (ssize_t)len)
            return 0;
        if (n >= 0)
            return -EMSGSIZE; /* seqpacket sends whole or not at all */
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return -errno;
        int rc = wait_fd(fd, POLLOUT, deadline);
        if (rc)
            return rc;
    }
}

/* Receive one frame into buf; returns its length. */
static int recv_frame(int fd, void *buf, size_t cap, uint64_t deadline)
{
    for (;;) {
        ssize_t n = recv(fd, buf, cap, MSG_DONTWAIT | MSG_TRUNC);
        if (n > (ssize_t)cap)
            return -EBADMSG; /* larger than any frame may be */
        if (n > 0)
            return (int)n;
        if (n == 0)
            return -ECONNRESET;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return -errno;
        int rc = wait_fd(fd, POLLIN, deadline);
        if (rc)
            return rc;
    }
}

static int pidfd_self(void)
{
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, getpid(), 0);
#else
    errno = ENOSYS;
    return -1;
#endif
}

/* ---- the registration hook ----------------------------------------------- */

void shmq__ctl_notify_register(struct shmq__reg *reg, uint32_t token)
{
    char path[SHMQ_CTL_PATH_MAX];
    uint8_t buf[64];
    struct shmq__pw w;
    int fd = -1, pidfd = -1;

    int32_t dpid = shmq__ctl_advertised(reg->hdr, path, sizeof(path));
    if (dpid <= 0 || dpid == (int32_t)getpid())
        return; /* no daemon, or we are the daemon */
    uint64_t deadline = deadline_of(SHMQ_NOTIFY_TIMEOUT_NS);
    if (connect_to(path, deadline, &fd) != 0)
        return;
    shmq__pw_init(&w, buf, sizeof(buf), SHMQ_OP_REGISTER, 1, 0, 0);
    shmq__pw_u32(&w, SHMQ_A_TOKEN, token);
    int len = shmq__pw_finish(&w);
    if (!peer_sees_pidfd(fd))
        pidfd = pidfd_self();
    if (len > 0 && send_frame(fd, buf, (size_t)len, pidfd, deadline) == 0)
        recv_frame(fd, buf, sizeof(buf), deadline); /* the answer: ignored */
    if (pidfd >= 0)
        close(pidfd);
    close(fd);
}

/* ---- handles ------------------------------------------------------------- */

int shmq_ctl_connect(const char *instance, const char *socket_path,
                     shmq_ctl_t **ret)
{
    char path[SHMQ_CTL_PATH_MAX];
    int rc;

    if (!ret)
        return -EINVAL;
    if (socket_path) {
        size_t n = strlen(socket_path);
        if (n == 0)
            return -EINVAL;
        if (n >= sizeof(path))
            return -ENAMETOOLONG;
        memcpy(path, socket_path, n + 1);
    } else if ((rc = shmq_ctl_socket_path(instance, path, sizeof(path))) < 0) {
        return rc;
    }
    shmq_ctl_t *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->timeout_ns = DEFAULT_TIMEOUT_NS;
    memcpy(c->path, path, sizeof(path));
    rc = connect_to(c->path, deadline_of(c->timeout_ns), &c->fd);
    if (rc) {
        free(c);
        return rc;
    }
    pthread_mutex_init(&c->lock, NULL);
    *ret = c;
    return 0;
}

void shmq_ctl_close(shmq_ctl_t *c)
{
    if (!c)
        return;
    if (c->fd >= 0)
        close(c->fd);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

const char *shmq_ctl_path(const shmq_ctl_t *c)
{
    return c ? c->path : NULL;
}

int shmq_ctl_set_timeout(shmq_ctl_t *c, int64_t timeout_ns)
{
    if (!c || (timeout_ns <= 0 && timeout_ns != SHMQ_FOREVER))
        return -EINVAL;
    pthread_mutex_lock(&c->lock);
    c->timeout_ns = timeout_ns;
    pthread_mutex_unlock(&c->lock);
    return 0;
}

/* Handles one record of an answer. */
typedef int (*item_fn)(const struct shmq__pattr *a, void *arg);

/* One answer frame: its records to fn, its message to msg. */
static int take_frame(shmq_ctl_t *c, size_t len, unsigned op, uint32_t seq,
                      item_fn fn, void *arg, char *msg, size_t msgcap,
                      struct shmq__resp *r)
{
    struct shmq__pr pr;
    struct shmq__pattr a;
    int rc = shmq__proto_parse_response(c->frame, len, r);
    if (rc)
        return rc;
    if (r->seq != seq || (r->op != op && r->op != 0))
        return -EBADMSG;
    shmq__pr_init(&pr, r->attrs, r->attrs_len);
    while ((rc = shmq__pr_next(&pr, &a)) > 0) {
        if (a.type == SHMQ_A_MESSAGE) {
            if (a.len == 0 || a.data[a.len - 1] != 0)
                return -EBADMSG;
            set_msg(msg, msgcap, "%s", (const char *)a.data);
        } else if (fn && r->status >= 0 && (rc = fn(&a, arg)) < 0) {
            return rc;
        }
    }
    return rc;
}

/* Send the request in w and collect the answer. */
static int transact(shmq_ctl_t *c, struct shmq__pw *w, unsigned op,
                    uint32_t seq, item_fn fn, void *arg, char *msg,
                    size_t msgcap)
{
    struct shmq__resp r;
    uint64_t deadline = deadline_of(c->timeout_ns);
    int rc, pidfd = -1;

    int len = shmq__pw_finish(w);
    if (len < 0)
        return len;
    if (c->fd < 0 && (rc = connect_to(c->path, deadline, &c->fd)) != 0) {
        set_msg(msg, msgcap, "shmqd is not answering at %s: %s", c->path,
                strerror(-rc));
        return rc;
    }
    if (op == SHMQ_OP_REGISTER && !peer_sees_pidfd(c->fd))
        pidfd = pidfd_self();
    rc = send_frame(c->fd, w->buf, (size_t)len, pidfd, deadline);
    if (pidfd >= 0)
        close(pidfd);
    if (msg && msgcap)
        msg[0] = 0;
    while (rc == 0) {
        int n = recv_frame(c->fd, c->frame, sizeof(c->frame), deadline);
        if (n < 0) {
            rc = n;
            break;
        }
        rc = take_frame(c, (size_t)n, op, seq, fn, arg, msg, msgcap, &r);
        if (rc == 0 && !(r.flags & SHMQ_PROTO_F_MORE)) {
            if (msg && msgcap && !msg[0] && r.status < 0)
                set_msg(msg, msgcap, "%s", shmq_strerror(r.status));
            return r.status;
        }
    }
    /* The connection is out of step now: drop it. */
    close(c->fd);
    c->fd = -1;
    set_msg(msg, msgcap, "no valid answer from shmqd at %s: %s", c->path,
            shmq_strerror(rc));
    return rc;
}

/* Build-and-send helpers for the requests below. */
struct req {
    struct shmq__pw w;
    uint8_t buf[SHMQ_PROTO_REQ_MAX];
    uint32_t seq;
    unsigned op;
};

static void req_init(shmq_ctl_t *c, struct req *q, unsigned op)
{
    q->seq = ++c->seq;
    q->op = op;
    shmq__pw_init(&q->w, q->buf, sizeof(q->buf), op, q->seq, 0, 0);
}

static int run(shmq_ctl_t *c, struct req *q, item_fn fn, void *arg,
               char *msg, size_t msgcap)
{
    return transact(c, &q->w, q->op, q->seq, fn, arg, msg, msgcap);
}

/* A request that names a queue and maybe a count or ring. */
static int simple(shmq_ctl_t *c, unsigned op, const char *name, int ring,
                  int64_t count, item_fn fn, void *arg, char *msg,
                  size_t msgcap)
{
    struct req q;
    if (!c || (name && shmq_name_check(name))) {
        set_msg(msg, msgcap, "invalid argument");
        return -EINVAL;
    }
    pthread_mutex_lock(&c->lock);
    req_init(c, &q, op);
    if (name)
        shmq__pw_str(&q.w, SHMQ_A_NAME, name);
    if (ring >= 0)
        shmq__pw_u32(&q.w, SHMQ_A_RING, (uint32_t)ring);
    if (count >= 0)
        shmq__pw_u32(&q.w, SHMQ_A_COUNT, (uint32_t)count);
    int rc = run(c, &q, fn, arg, msg, msgcap);
    pthread_mutex_unlock(&c->lock);
    return rc;
}

/* ---- requests ------------------------------------------------------------ */

static int daemon_item(const struct shmq__pattr *a, void *arg)
{
    return a->type == SHMQ_A_DAEMON ? shmq__pr_daemon(a, arg) : 0;
}

int shmq_ctl_ping(shmq_ctl_t *c, struct shmq_ctl_daemon *out, char *msg,
                  size_t msgcap)
{
    struct shmq_ctl_daemon d;
    memset(&d, 0, sizeof(d));
    int rc = simple(c, SHMQ_OP_PING, NULL, -1, -1, daemon_item, &d, msg,
                    msgcap);
    if (rc >= 0 && out)
        *out = d;
    return rc;
}

int shmq_ctl_create(shmq_ctl_t *c, const char *name,
                    const struct shmq_queue_config *cfg, char *msg,
                    size_t msgcap)
{
    struct req q;
    const char *why = NULL;
    if (!c || shmq_name_check(name) || shmq_queue_config_check(cfg, &why) ||
        cfg->gid < -1) {
        set_msg(msg, msgcap, "%s", why ? why : "invalid queue name");
        return -EINVAL;
    }
    pthread_mutex_lock(&c->lock);
    req_init(c, &q, SHMQ_OP_CREATE);
    shmq__pw_str(&q.w, SHMQ_A_NAME, name);
    shmq__pw_config(&q.w, cfg);
    int rc = run(c, &q, NULL, NULL, msg, msgcap);
    pthread_mutex_unlock(&c->lock);
    return rc;
}

int shmq_ctl_delete(shmq_ctl_t *c, const char *name, char *msg,
                    size_t msgcap)
{
    if (!name)
        return -EINVAL;
    return simple(c, SHMQ_OP_DELETE, name, -1, -1, NULL, NULL, msg, msgcap);
}

int shmq_ctl_purge(shmq_ctl_t *c, const char *name, int ring, char *msg,
                   size_t msgcap)
{
    if (!name || (ring != SHMQ_RING_MAIN && ring != SHMQ_RING_DLQ))
        return -EINVAL;
    return simple(c, SHMQ_OP_PURGE, name, ring, -1, NULL, NULL, msg, msgcap);
}

/* Collects records into a caller's array, counting all of them. */
struct collect {
    void *out;
    size_t n, size, count;
    unsigned type;
    int (*decode)(const struct shmq__pattr *a, void *rec);
};

static int collect_item(const struct shmq__pattr *a, void *arg)
{
    struct collect *k = arg;
    if (a->type != k->type)
        return 0;
    if (k->count < k->n) {
        int rc = k->decode(a, (uint8_t *)k->out + k->count * k->size);
        if (rc)
            return rc;
    }
    if (k->count < INT32_MAX)
        k->count++;
    return 0;
}

static int dec_queue(const struct shmq__pattr *a, void *rec)
{
    return shmq__pr_queue(a, rec);
}
static int dec_proc(const struct shmq__pattr *a, void *rec)
{
    return shmq__pr_proc(a, rec);
}
static int dec_dlq(const struct shmq__pattr *a, void *rec)
{
    return shmq__pr_dlq_msg(a, rec);
}

int shmq_ctl_list(shmq_ctl_t *c, struct shmq_queue_info *out, size_t n,
                  char *msg, size_t msgcap)
{
    struct collect k = {out, n, sizeof(*out), 0, SHMQ_A_QUEUE, dec_queue};
    if (!out && n)
        return -EINVAL;
    int rc = simple(c, SHMQ_OP_LIST, NULL, -1, -1, collect_item, &k, msg,
                    msgcap);
    return rc < 0 ? rc : (int)k.count;
}

int shmq_ctl_info(shmq_ctl_t *c, const char *name,
                  struct shmq_queue_info *out, char *msg, size_t msgcap)
{
    struct shmq_queue_info t;
    struct collect k = {&t, 1, sizeof(t), 0, SHMQ_A_QUEUE, dec_queue};
    if (!name || !out)
        return -EINVAL;
    int rc = simple(c, SHMQ_OP_INFO, name, -1, -1, collect_item, &k, msg,
                    msgcap);
    if (rc >= 0 && k.count != 1)
        rc = -EBADMSG;
    if (rc >= 0)
        *out = t;
    return rc;
}

static int stats_item(const struct shmq__pattr *a, void *arg)
{
    return a->type == SHMQ_A_STATS ? shmq__pr_stats(a, arg) : 0;
}

int shmq_ctl_stats(shmq_ctl_t *c, const char *name, struct shmq_stats *st,
                   char *msg, size_t msgcap)
{
    struct shmq_stats t;
    if (!name || !st || st->size < sizeof(t))
        return -EINVAL;
    memset(&t, 0, sizeof(t));
    int rc = simple(c, SHMQ_OP_STATS, name, -1, -1, stats_item, &t, msg,
                    msgcap);
    if (rc >= 0 && t.size != sizeof(t))
        rc = -EBADMSG; /* no counters in the answer */
    if (rc >= 0) {
        t.size = st->size;
        memcpy(st, &t, sizeof(t));
    }
    return rc;
}

int shmq_ctl_register(shmq_ctl_t *c, uint32_t token, char *msg,
                      size_t msgcap)
{
    struct req q;
    if (!c)
        return -EINVAL;
    pthread_mutex_lock(&c->lock);
    req_init(c, &q, SHMQ_OP_REGISTER);
    shmq__pw_u32(&q.w, SHMQ_A_TOKEN, token);
    int rc = run(c, &q, NULL, NULL, msg, msgcap);
    pthread_mutex_unlock(&c->lock);
    return rc;
}

int shmq_ctl_dlq_list(shmq_ctl_t *c, const char *name,
                      struct shmq_dlq_entry *out, size_t n, char *msg,
                      size_t msgcap)
{
    struct collect k = {out, n, sizeof(*out), 0, SHMQ_A_DLQ_MSG, dec_dlq};
    if (!name || (!out && n))
        return -EINVAL;
    int64_t want = n > UINT32_MAX ? UINT32_MAX : (int64_t)n;
    int rc = simple(c, SHMQ_OP_DLQ_LIST, name, -1, want, collect_item, &k,
                    msg, msgcap);
    if (rc < 0)
        return rc;
    return (int)(k.count < n ? k.count : n);
}

int shmq_ctl_dlq_requeue(shmq_ctl_t *c, const char *name, uint32_t max,
                         char *msg, size_t msgcap)
{
    if (!name)
        return -EINVAL;
    return simple(c, SHMQ_OP_DLQ_REQUEUE, name, -1, max, NULL, NULL, msg,
                  msgcap);
}

int shmq_ctl_dlq_drop(shmq_ctl_t *c, const char *name, uint32_t max,
                      char *msg, size_t msgcap)
{
    if (!name)
        return -EINVAL;
    return simple(c, SHMQ_OP_DLQ_DROP, name, -1, max, NULL, NULL, msg,
                  msgcap);
}

int shmq_ctl_procs(shmq_ctl_t *c, struct shmq_ctl_proc *out, size_t n,
                   char *msg, size_t msgcap)
{
    struct collect k = {out, n, sizeof(*out), 0, SHMQ_A_PROC, dec_proc};
    if (!out && n)
        return -EINVAL;
    int rc = simple(c, SHMQ_OP_PROCS, NULL, -1, -1, collect_item, &k, msg,
                    msgcap);
    return rc < 0 ? rc : (int)k.count;
}
