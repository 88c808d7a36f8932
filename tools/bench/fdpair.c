/* SPDX-License-Identifier: MIT */
/*
 * Descriptor-pair transports (pipe, unix): one pair per queue, made by
 * the parent before fork; producers use one end and consumers the other.
 */
#include "bench.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct fdpairs {
    int kind;
    uint32_t n;
    int fd[][2];
};

static void close_all(struct fdpairs *p)
{
    for (uint32_t i = 0; i < p->n; i++) {
        close(p->fd[i][0]);
        close(p->fd[i][1]);
    }
    p->n = 0;
}

int bt_fdpairs_setup(struct bt_run *r, int kind, char *err, size_t errlen)
{
    const struct bt_case *c = r->c;
    uint32_t nq = c->wl == BT_RTT ? 2 : c->queues;
    struct fdpairs *p = calloc(1, sizeof(*p) + nq * sizeof(p->fd[0]));
    if (!p)
        return -ENOMEM;
    p->kind = kind;
    for (uint32_t i = 0; i < nq; i++) {
        int bad = kind == BT_FD_PIPE
                      ? pipe(p->fd[i])
                      : socketpair(AF_UNIX, SOCK_SEQPACKET, 0, p->fd[i]);
        if (bad < 0) {
            int rc = -errno;
            bt_errf(err, errlen, "%s: %s",
                    kind == BT_FD_PIPE ? "pipe" : "socketpair",
                    strerror(errno));
            close_all(p);
            free(p);
            return rc;
        }
        p->n = i + 1;
    }
    r->priv = p;
    return 0;
}

void bt_fdpairs_teardown(struct bt_run *r, int killed)
{
    (void)killed;
    if (r->priv)
        close_all(r->priv);
    free(r->priv);
    r->priv = NULL;
}

int bt_fdpairs_open(const struct bt_run *r, uint32_t qi, int role,
                    struct bt_end *e)
{
    const struct fdpairs *p = r->priv;
    /* A pipe writes at [1]; a socket pair either way, [0] sends here. */
    int send_end = p->kind == BT_FD_PIPE ? 1 : 0;
    e->fd = p->fd[qi][role == BT_SEND ? send_end : 1 - send_end];
    return 0;
}

void bt_fdpairs_close(struct bt_end *e)
{
    e->fd = -1;
}
