/* SPDX-License-Identifier: MIT */
/*
 * DPDK rte_ring in its default multi-producer/multi-consumer mode, placed
 * in a POSIX shared-memory mapping: the parent shm_open()s one segment
 * holding every ring of the run and rte_ring_init()s each ring there (no
 * rte_eal_init: the ring needs no EAL to work); children map the segment
 * by name. Messages travel in the ring slots (rte_ring_*_elem with the
 * element size = message size), its fastest form. rte_ring has no
 * blocking: both sides poll (bt_backoff). Batches: the burst calls.
 * A ring of 2^k slots holds 2^k - 1 messages.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <rte_ring.h>
#include <rte_ring_elem.h>

struct rings {
    size_t stride, total;
    uint32_t n;
    int unlinked;
    char name[64];
};

/* This process's mapping of the run's segment, shared by its ends. */
static unsigned char *map_base;
static size_t map_len;
static unsigned map_refs;

static const char *check(const struct bt_case *c)
{
    if (c->size % 4)
        return "rte_ring elements are multiples of 4 bytes";
    return NULL;
}

static int setup(struct bt_run *r, char *err, size_t errlen)
{
    const struct bt_case *c = r->c;
    uint32_t nq = c->wl == BT_RTT ? 2 : c->queues;
    ssize_t ms = rte_ring_get_memsize_elem(c->size, c->capacity);
    int rc;

    if (ms < 0) {
        bt_errf(err, errlen, "rte_ring_get_memsize_elem: %s",
                strerror((int)-ms));
        return (int)ms;
    }
    struct rings *g = calloc(1, sizeof(*g));
    if (!g)
        return -ENOMEM;
    g->stride = ((size_t)ms + 127u) & ~(size_t)127u;
    g->total = g->stride * nq;
    g->n = nq;
    snprintf(g->name, sizeof(g->name), "/shmq-bench.%d.rte.%u",
             (int)getpid(), r->serial);
    int fd = shm_open(g->name, O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0) {
        rc = -errno;
        bt_errf(err, errlen, "shm_open %s: %s", g->name, strerror(errno));
        free(g);
        return rc;
    }
    unsigned char *base = MAP_FAILED;
    if (ftruncate(fd, (off_t)g->total) < 0 ||
        (base = mmap(NULL, g->total, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                     0)) == MAP_FAILED) {
        rc = -errno;
        bt_errf(err, errlen, "%s: %s", g->name, strerror(errno));
        goto fail;
    }
    for (uint32_t i = 0; i < nq; i++) {
        char rn[RTE_RING_NAMESIZE];
        snprintf(rn, sizeof(rn), "b%u.%u", r->serial, i);
        /* flags 0: multi-producer, multi-consumer */
        if ((rc = rte_ring_init((struct rte_ring *)(base + i * g->stride), rn,
                                c->capacity, 0)) < 0) {
            bt_errf(err, errlen, "rte_ring_init: %s", strerror(-rc));
            munmap(base, g->total);
            goto fail;
        }
    }
    munmap(base, g->total);
    close(fd);
    r->priv = g;
    return 0;
fail:
    close(fd);
    shm_unlink(g->name);
    free(g);
    return rc;
}

static void drop_name(struct bt_run *r)
{
    struct rings *g = r->priv;
    if (g && !g->unlinked) {
        shm_unlink(g->name);
        g->unlinked = 1;
    }
}

static void teardown(struct bt_run *r, int killed)
{
    (void)killed;
    drop_name(r);
    free(r->priv);
    r->priv = NULL;
}

static int open_end(const struct bt_run *r, uint32_t qi, int role,
                    struct bt_end *e)
{
    const struct rings *g = r->priv;
    (void)role;
    if (!map_refs) {
        int fd = shm_open(g->name, O_RDWR, 0);
        if (fd < 0)
            return -errno;
        void *p = mmap(NULL, g->total, PROT_READ | PROT_WRITE, MAP_SHARED,
                       fd, 0);
        int rc = -errno;
        close(fd);
        if (p == MAP_FAILED)
            return rc;
        map_base = p;
        map_len = g->total;
    }
    map_refs++;
    e->q = map_base + qi * g->stride;
    return 0;
}

static void close_end(struct bt_end *e)
{
    e->q = NULL;
    if (map_refs && --map_refs == 0) {
        munmap(map_base, map_len);
        map_base = NULL;
    }
}

static int send1(struct bt_end *e, const void *msg)
{
    unsigned spins = 0;
    while (rte_ring_mp_enqueue_elem(e->q, (void *)msg, e->size) != 0)
        bt_backoff(&spins);
    return 0;
}

static int recv1(struct bt_end *e, void *buf)
{
    unsigned spins = 0;
    while (rte_ring_mc_dequeue_elem(e->q, buf, e->size) != 0)
        bt_backoff(&spins);
    return (int)e->size;
}

static int send_batch(struct bt_end *e, const struct iovec *v, unsigned n)
{
    unsigned spins = 0, k;
    while ((k = rte_ring_mp_enqueue_burst_elem(e->q, v[0].iov_base, e->size,
                                               n, NULL)) == 0)
        bt_backoff(&spins);
    return (int)k;
}

static int recv_batch(struct bt_end *e, const struct iovec *v, unsigned n)
{
    unsigned spins = 0, k;
    while ((k = rte_ring_mc_dequeue_burst_elem(e->q, v[0].iov_base, e->size,
                                               n, NULL)) == 0)
        bt_backoff(&spins);
    return (int)k;
}

const struct bt_transport bt_dpdk = {
    .name = "dpdk",
    .about = "DPDK rte_ring MP/MC in shm_open memory, polling; batch = burst",
    .check = check,
    .setup = setup,
    .attached = drop_name,
    .teardown = teardown,
    .open = open_end,
    .close = close_end,
    .send = send1,
    .recv = recv1,
    .send_batch = send_batch,
    .recv_batch = recv_batch,
    .spins = 1,
};
