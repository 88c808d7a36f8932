/* SPDX-License-Identifier: MIT */
/*
 * Pipes: one pipe(2) per queue with the kernel's default buffer (64 KiB),
 * blocking read/write of fixed-size records. Writes up to PIPE_BUF bytes
 * are atomic, so several producers and consumers may share a pipe only
 * for records that small. Batches: one writev/readv of up to 32 records
 * (1 -> 1 only; a record split by the kernel is completed by the caller).
 */
#include "bench.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *check(const struct bt_case *c)
{
    if (c->size > PIPE_BUF && (c->producers > 1 || c->consumers > 1))
        return "records above PIPE_BUF are not atomic in a shared pipe";
    return NULL;
}

static int setup(struct bt_run *r, char *err, size_t errlen)
{
    return bt_fdpairs_setup(r, BT_FD_PIPE, err, errlen);
}

/* All of len bytes, across partial transfers. */
static int write_all(int fd, const unsigned char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int read_all(int fd, unsigned char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -EPIPE;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int send1(struct bt_end *e, const void *msg)
{
    return write_all(e->fd, msg, e->size);
}

static int recv1(struct bt_end *e, void *buf)
{
    int rc = read_all(e->fd, buf, e->size);
    return rc < 0 ? rc : (int)e->size;
}

static int send_batch(struct bt_end *e, const struct iovec *v, unsigned n)
{
    ssize_t b;
    while ((b = writev(e->fd, v, (int)n)) < 0)
        if (errno != EINTR)
            return -errno;
    size_t k = (size_t)b / e->size, rem = (size_t)b % e->size;
    if (rem) {
        int rc = write_all(e->fd, (const unsigned char *)v[k].iov_base + rem,
                           e->size - rem);
        if (rc < 0)
            return rc;
        k++;
    }
    return (int)k;
}

static int recv_batch(struct bt_end *e, const struct iovec *v, unsigned n)
{
    ssize_t b;
    while ((b = readv(e->fd, v, (int)n)) < 0)
        if (errno != EINTR)
            return -errno;
    if (b == 0)
        return -EPIPE;
    size_t k = (size_t)b / e->size, rem = (size_t)b % e->size;
    if (rem) {
        int rc = read_all(e->fd, (unsigned char *)v[k].iov_base + rem,
                          e->size - rem);
        if (rc < 0)
            return rc;
        k++;
    }
    return (int)k;
}

const struct bt_transport bt_pipe = {
    .name = "pipe",
    .about = "pipe(2), blocking read/write; batch = writev/readv",
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
