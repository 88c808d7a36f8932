/* SPDX-License-Identifier: MIT */
/*
 * Unix domain sockets, SOCK_SEQPACKET: one socketpair(2) per queue with
 * the kernel's default buffers; producers write to one end and consumers
 * read the other, so message boundaries hold with any number of either.
 * Batches: sendmmsg(2) and recvmmsg(2) with MSG_WAITFORONE.
 */
#include "bench.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct socks {
    uint32_t n;
    int fd[][2];
};

static const char *check(const struct bt_case *c)
{
    (void)c;
    return NULL;
}

static void close_all(struct socks *s)
{
    for (uint32_t i = 0; i < s->n; i++) {
        close(s->fd[i][0]);
        close(s->fd[i][1]);
    }
    s->n = 0;
}

static int setup(struct bt_run *r, char *err, size_t errlen)
{
    const struct bt_case *c = r->c;
    uint32_t nq = c->wl == BT_RTT ? 2 : c->queues;
    struct socks *s = calloc(1, sizeof(*s) + nq * sizeof(s->fd[0]));
    if (!s)
        return -ENOMEM;
    for (uint32_t i = 0; i < nq; i++) {
        if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, s->fd[i]) < 0) {
            int rc = -errno;
            bt_errf(err, errlen, "socketpair: %s", strerror(errno));
            close_all(s);
            free(s);
            return rc;
        }
        s->n = i + 1;
    }
    r->priv = s;
    return 0;
}

static void teardown(struct bt_run *r, int killed)
{
    (void)killed;
    if (r->priv)
        close_all(r->priv);
    free(r->priv);
    r->priv = NULL;
}

static int open_end(const struct bt_run *r, uint32_t qi, int role,
                    struct bt_end *e)
{
    const struct socks *s = r->priv;
    e->fd = s->fd[qi][role == BT_SEND ? 0 : 1];
    return 0;
}

static void close_end(struct bt_end *e)
{
    e->fd = -1;
}

static int send1(struct bt_end *e, const void *msg)
{
    while (send(e->fd, msg, e->size, MSG_NOSIGNAL) < 0)
        if (errno != EINTR)
            return -errno;
    return 0;
}

static int recv1(struct bt_end *e, void *buf)
{
    ssize_t n;
    while ((n = recv(e->fd, buf, e->size, 0)) < 0)
        if (errno != EINTR)
            return -errno;
    if (n == 0)
        return -EPIPE;
    return (int)n;
}

static int send_batch(struct bt_end *e, const struct iovec *v, unsigned n)
{
    struct mmsghdr m[BT_MAX_BATCH];
    memset(m, 0, n * sizeof(m[0]));
    for (unsigned i = 0; i < n; i++) {
        m[i].msg_hdr.msg_iov = (struct iovec *)&v[i];
        m[i].msg_hdr.msg_iovlen = 1;
    }
    int k;
    while ((k = sendmmsg(e->fd, m, n, MSG_NOSIGNAL)) < 0)
        if (errno != EINTR)
            return -errno;
    return k;
}

static int recv_batch(struct bt_end *e, const struct iovec *v, unsigned n)
{
    struct mmsghdr m[BT_MAX_BATCH];
    memset(m, 0, n * sizeof(m[0]));
    for (unsigned i = 0; i < n; i++) {
        m[i].msg_hdr.msg_iov = (struct iovec *)&v[i];
        m[i].msg_hdr.msg_iovlen = 1;
    }
    int k;
    while ((k = recvmmsg(e->fd, m, n, MSG_WAITFORONE, NULL)) < 0)
        if (errno != EINTR)
            return -errno;
    for (int i = 0; i < k; i++)
        if (m[i].msg_len != e->size)
            return -EBADMSG;
    return k == 0 ? -EPIPE : k;
}

const struct bt_transport bt_unix = {
    .name = "unix",
    .about = "Unix SOCK_SEQPACKET socketpair; batch = sendmmsg/recvmmsg",
    .check = check,
    .setup = setup,
    .teardown = teardown,
    .open = open_end,
    .close = close_end,
    .send = send1,
    .recv = recv1,
    .send_batch = send_batch,
    .recv_batch = recv_batch,
};
