/* SPDX-License-Identifier: MIT */
/*
 * shmq through its public API only. The bench runs on a private instance
 * (created through admin.h unless it exists already; destroyed at exit
 * only when the bench created it). Each repetition creates its queues
 * with capacity and msg_max from the case and otherwise default settings,
 * and deletes them afterwards.
 *
 * Two variants: "shmq" waits as the library does by default (a bounded
 * spin, then a futex sleep); "shmq-sleep" opens its handles with
 * spin_ns = 0 and sleeps at once.
 */
#include "bench.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <shmq/admin.h>
#include <shmq/shmq.h>

static shmq_admin_t *admin;
static int created;
static char inst[SHMQ_INSTANCE_MAX + 1];

int bt_shmq_begin(const char *instance, char *err, size_t errlen)
{
    struct shmq_admin_opts o;
    int rc;

    if (admin)
        return 0;
    if (shmq_instance_check(instance)) {
        bt_errf(err, errlen, "bad instance name '%s'", instance);
        return -EINVAL;
    }
    snprintf(inst, sizeof(inst), "%s", instance);
    shmq_admin_opts_init(&o);
    rc = shmq_admin_open(inst, &o, &admin);
    if (rc == -ENOENT) {
        o.flags = SHMQ_ADMIN_CREATE;
        o.mode = 0600;
        rc = shmq_admin_open(inst, &o, &admin);
        created = rc == 0;
    }
    if (rc < 0) {
        bt_errf(err, errlen, "instance '%s': %s", inst, shmq_strerror(rc));
        admin = NULL;
        return rc;
    }
    return 0;
}

void bt_shmq_end(void)
{
    if (!admin)
        return;
    if (created)
        shmq_admin_destroy(admin);
    shmq_admin_close(admin);
    admin = NULL;
}

static void qname(char *buf, size_t len, unsigned serial, uint32_t qi)
{
    snprintf(buf, len, "bench-%u-%u", serial, qi);
}

static const char *check(const struct bt_case *c)
{
    (void)c;
    return admin ? NULL : "no shmq instance";
}

static void delete_queues(const struct bt_run *r, uint32_t n)
{
    char name[SHMQ_NAME_MAX + 1];
    for (uint32_t i = 0; i < n; i++) {
        qname(name, sizeof(name), r->serial, i);
        shmq_admin_delete(admin, name);
    }
}

static int setup(struct bt_run *r, char *err, size_t errlen)
{
    const struct bt_case *c = r->c;
    uint32_t nq = c->wl == BT_RTT ? 2 : c->queues;
    struct shmq_queue_config cfg;
    char name[SHMQ_NAME_MAX + 1];

    shmq_queue_config_init(&cfg);
    cfg.capacity = c->capacity;
    cfg.msg_max = c->size;
    cfg.mode = 0600;
    for (uint32_t i = 0; i < nq; i++) {
        qname(name, sizeof(name), r->serial, i);
        int rc = shmq_admin_create(admin, name, &cfg);
        if (rc < 0) {
            bt_errf(err, errlen, "create queue %s: %s", name,
                    shmq_strerror(rc));
            delete_queues(r, i);
            return rc;
        }
    }
    return 0;
}

static void teardown(struct bt_run *r, int killed)
{
    const struct bt_case *c = r->c;
    if (killed)
        shmq_admin_reap(admin, NULL);
    delete_queues(r, c->wl == BT_RTT ? 2 : c->queues);
}

static int open_spin(const struct bt_run *r, uint32_t qi, struct bt_end *e,
                     int64_t spin_ns)
{
    struct shmq_open_opts o;
    char name[SHMQ_NAME_MAX + 1];
    shmq_t *q;

    shmq_open_opts_init(&o);
    o.instance = inst;
    if (spin_ns >= 0)
        o.spin_ns = spin_ns;
    qname(name, sizeof(name), r->serial, qi);
    int rc = shmq_open(name, &o, &q);
    if (rc < 0)
        return rc;
    e->q = q;
    return 0;
}

static int open_default(const struct bt_run *r, uint32_t qi, int role,
                        struct bt_end *e)
{
    (void)role;
    return open_spin(r, qi, e, -1);
}

static int open_sleep(const struct bt_run *r, uint32_t qi, int role,
                      struct bt_end *e)
{
    (void)role;
    return open_spin(r, qi, e, 0);
}

static void close_end(struct bt_end *e)
{
    shmq_close(e->q);
    e->q = NULL;
}

static int send1(struct bt_end *e, const void *msg)
{
    return shmq_send(e->q, msg, e->size, SHMQ_FOREVER);
}

static int recv1(struct bt_end *e, void *buf)
{
    return (int)shmq_recv(e->q, buf, e->size, SHMQ_FOREVER);
}

static int send_batch(struct bt_end *e, const struct iovec *v, unsigned n)
{
    return shmq_send_batch(e->q, v, n, SHMQ_FOREVER);
}

static int recv_batch(struct bt_end *e, const struct iovec *v, unsigned n)
{
    size_t lens[BT_MAX_BATCH];
    int rc = shmq_recv_batch(e->q, v, lens, n, SHMQ_FOREVER);
    for (int i = 0; i < rc; i++)
        if (lens[i] != e->size)
            return -EBADMSG;
    return rc;
}

const struct bt_transport bt_shmq = {
    .name = "shmq",
    .about = "shmq, default wait: bounded spin, then futex sleep",
    .check = check,
    .setup = setup,
    .teardown = teardown,
    .open = open_default,
    .close = close_end,
    .send = send1,
    .recv = recv1,
    .send_batch = send_batch,
    .recv_batch = recv_batch,
};

const struct bt_transport bt_shmq_sleep = {
    .name = "shmq-sleep",
    .about = "shmq, sleep-only wait (spin_ns = 0)",
    .check = check,
    .setup = setup,
    .teardown = teardown,
    .open = open_sleep,
    .close = close_end,
    .send = send1,
    .recv = recv1,
    .send_batch = send_batch,
    .recv_batch = recv_batch,
    /* measured where waiting is the point */
    .workloads = (1u << BT_RTT) | (1u << BT_MPMC),
};
