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

static const char *check(const struct bt_case *c)
{
    (void)c;
    return NULL;
}

static int setup(struct bt_run *r, char *err, size_t errlen)
{
    return bt_fdpairs_setup(r, BT_FD_SEQPACKET, err, errlen);
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
    .teardown = bt_fdpairs_teardown,
    .open = bt_fdpairs_open,
    .close = bt_fdpairs_close,
    .send = send1,
    .recv = recv1,
    .send_batch = send_batch,
    .recv_batch = recv_batch,
};
