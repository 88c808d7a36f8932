/* SPDX-License-Identifier: MIT */
/*
 * The supervisor API (admin.h): instance and queue lifecycle, process
 * table, repair. Creation, deletion and repair of queues are serialised
 * across processes by the registry's admin OFD lock.
 */
#include <shmq/admin.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "process.h"
#include "repair.h"
#include "segment.h"

struct shmq_admin {
    struct shmq__reg reg;
    int readonly;
    /* References to this process's instance context that
     * shmq_admin_register took through this handle (and only those are
     * shmq_admin_unregister's to drop). */
    struct shmq__inst *inst;
    unsigned registered;
};

void shmq_admin_opts_init(struct shmq_admin_opts *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof(*o));
    o->size = sizeof(*o);
    o->mode = 0666;
    o->gid = -1;
    o->max_procs = SHMQ_DEFAULT_PROCS;
}

void shmq_queue_config_init(struct shmq_queue_config *c)
{
    if (!c)
        return;
    memset(c, 0, sizeof(*c));
    c->size = sizeof(*c);
    c->capacity = 1024;
    c->msg_max = 4096;
    c->mode = 0660;
    c->gid = -1;
    c->max_deliveries = 5;
    c->dlq_capacity = 64;
    c->timestamps = SHMQ_TS_COARSE;
}

static int pow2_in(uint32_t v, uint32_t lo, uint32_t hi)
{
    return v >= lo && v <= hi && !(v & (v - 1));
}

int shmq_queue_config_check(const struct shmq_queue_config *c,
                            const char **why)
{
    const char *w = NULL;

    if (!c || c->size != sizeof(*c))
        w = "configuration not initialised with shmq_queue_config_init";
    else if (!pow2_in(c->capacity, SHMQ_MIN_CAPACITY, SHMQ_MAX_CAPACITY))
        w = "capacity must be a power of two from 2 to 16777216";
    else if (c->msg_max < 1 || c->msg_max > SHMQ_MAX_MSG)
        w = "msg_max must be from 1 byte to 16 MiB";
    else if (c->mode & ~07777u)
        w = "mode must be an octal permission mode (at most 07777)";
    else if (c->max_deliveries > SHMQ_MAX_DELIVERIES)
        w = "max_deliveries must be at most 254 (0: no limit)";
    else if (c->dlq_capacity &&
             !pow2_in(c->dlq_capacity, SHMQ_MIN_CAPACITY, SHMQ_MAX_CAPACITY))
        w = "dlq_capacity must be 0 or a power of two from 2 to 16777216";
    else if (c->max_deliveries && !c->dlq_capacity)
        w = "max_deliveries needs a dead-letter ring (dlq_capacity > 0)";
    else if (c->lease_timeout_ns &&
             (c->lease_timeout_ns < 1000000u ||
              c->lease_timeout_ns > UINT64_C(2000000000000000)))
        w = "lease_timeout must be 0 or from 1 ms to about 23 days";
    else if (c->timestamps > SHMQ_TS_NONE)
        w = "timestamps must be SHMQ_TS_PRECISE, SHMQ_TS_COARSE or SHMQ_TS_NONE";
    else if (shmq__qseg_size(c) > SHMQ_SEG_MAX_SIZE)
        w = "capacity times msg_max is too large (segment over 1 TiB)";
    if (why)
        *why = w;
    return w ? -EINVAL : 0;
}

int shmq_admin_open(const char *instance, const struct shmq_admin_opts *opts,
                    shmq_admin_t **ret)
{
    struct shmq_admin_opts o;

    if (!ret)
        return -EINVAL;
    if (!instance)
        instance = shmq_default_instance();
    if (shmq_instance_check(instance))
        return -EINVAL;
    shmq_admin_opts_init(&o);
    if (opts) {
        if (opts->size != sizeof(o))
            return -EINVAL;
        o = *opts;
    }
    if (o.max_procs > SHMQ_MAX_PROCS || (o.mode & ~07777u) ||
        (o.flags & ~(uint32_t)(SHMQ_ADMIN_CREATE | SHMQ_ADMIN_READONLY)) ||
        ((o.flags & SHMQ_ADMIN_CREATE) && (o.flags & SHMQ_ADMIN_READONLY)))
        return -EINVAL;
    shmq_admin_t *a = calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    a->readonly = (o.flags & SHMQ_ADMIN_READONLY) != 0;
    int rc = shmq__reg_open(instance, !a->readonly,
                            (o.flags & SHMQ_ADMIN_CREATE) ? &o : NULL,
                            &a->reg);
    if (rc) {
        free(a);
        return rc;
    }
    *ret = a;
    return 0;
}

void shmq_admin_close(shmq_admin_t *a)
{
    if (!a)
        return;
    shmq__reg_close(&a->reg);
    free(a);
}

const char *shmq_admin_instance(const shmq_admin_t *a)
{
    return a ? a->reg.instance : NULL;
}

static int admin_lock(shmq_admin_t *a)
{
    return shmq__lock(a->reg.fd, SHMQ_LOCK_ADMIN, 1);
}

static void admin_unlock(shmq_admin_t *a)
{
    shmq__unlock(a->reg.fd, SHMQ_LOCK_ADMIN);
}

int shmq_admin_create(shmq_admin_t *a, const char *name,
                      const struct shmq_queue_config *cfg)
{
    int rc;

    if (!a || shmq_name_check(name) || shmq_queue_config_check(cfg, NULL))
        return -EINVAL;
    if (a->readonly)
        return -EPERM;
    if ((rc = admin_lock(a)) != 0)
        return rc;
    if (shmq__reg_find(&a->reg, name) >= 0) {
        rc = -EEXIST;
        goto out;
    }
    int slot = -1;
    for (uint32_t i = 0; i < SHMQ_MAX_QUEUES && slot < 0; i++)
        if (atomic_load_explicit(&a->reg.dir[i].state,
                                 memory_order_acquire) == SHMQ_DIR_FREE)
            slot = (int)i;
    if (slot < 0) {
        rc = -ENOSPC;
        goto out;
    }
    uint64_t gen = atomic_fetch_add_explicit(&a->reg.hdr->queue_gen, 1,
                                             memory_order_relaxed) + 1;
    rc = shmq__qseg_create(a->reg.instance, name, cfg, gen);
    if (rc)
        goto out;
    struct shmq_reg_queue *d = &a->reg.dir[slot];
    memset(d->name, 0, sizeof(d->name));
    memcpy(d->name, name, strlen(name));
    d->generation = gen;
    d->created_ns = shmq__now_ns(CLOCK_REALTIME);
    /* Release: readers that see ACTIVE see the fields above. */
    atomic_store_explicit(&d->state, SHMQ_DIR_ACTIVE, memory_order_release);
out:
    admin_unlock(a);
    return rc;
}

/* With the admin lock held. */
static int delete_locked(shmq_admin_t *a, int di)
{
    struct shmq_reg_queue *d = &a->reg.dir[di];
    char name[SHMQ_NAME_MAX + 1], path[128];
    struct shmq__qseg q;

    memcpy(name, d->name, sizeof(name) - 1);
    name[sizeof(name) - 1] = 0;
    if (shmq__qseg_open(a->reg.instance, name, 1, &q) == 0) {
        /* Release: a handle that sees deleted sees nothing newer. */
        atomic_store_explicit(&q.hdr->deleted, 1, memory_order_release);
        shmq__ring_wake_all(&q.main);
        if (q.has_dlq)
            shmq__ring_wake_all(&q.dlq);
        shmq__qseg_close(&q);
    }
    if (shmq__shm_name(path, sizeof(path), a->reg.instance, name) == 0)
        shm_unlink(path);
    atomic_store_explicit(&d->state, SHMQ_DIR_FREE, memory_order_release);
    return 0;
}

int shmq_admin_delete(shmq_admin_t *a, const char *name)
{
    int rc;
    if (!a || shmq_name_check(name))
        return -EINVAL;
    if (a->readonly)
        return -EPERM;
    if ((rc = admin_lock(a)) != 0)
        return rc;
    int di = shmq__reg_find(&a->reg, name);
    rc = di < 0 ? di : delete_locked(a, di);
    admin_unlock(a);
    return rc;
}

int shmq_admin_purge(shmq_admin_t *a, const char *name, int ring)
{
    struct shmq__inst *in;
    struct shmq__qseg q;
    int rc;

    if (!a || shmq_name_check(name) ||
        (ring != SHMQ_RING_MAIN && ring != SHMQ_RING_DLQ))
        return -EINVAL;
    if (a->readonly)
        return -EPERM;
    int di = shmq__reg_find(&a->reg, name);
    if (di < 0)
        return di;
    if ((rc = shmq__inst_get(a->reg.instance, &in)) != 0)
        return rc;
    if ((rc = shmq__qseg_open(a->reg.instance, name, 1, &q)) != 0)
        goto out_put;
    if (ring == SHMQ_RING_DLQ && !q.has_dlq) {
        rc = -ENOENT;
        goto out_close;
    }
    /* A private view without the dead-letter limit, so that purging drops
     * messages instead of moving them. */
    struct shmq__ring r = ring == SHMQ_RING_DLQ ? q.dlq : q.main;
    r.max_deliveries = 0;
    r.dlq = NULL;
    unsigned owner = SHMQ_TOKEN_IDX(in->token);
    struct shmq_reg_proc *p = shmq__reg_proc(&in->reg, owner);
    atomic_fetch_or_explicit(&p->queues[(unsigned)di >> 6],
                             UINT64_C(1) << ((unsigned)di & 63u),
                             memory_order_seq_cst);
    struct shmq__lease l;
    int n = 0;
    /* At most a ring's worth: the ring holds no more than that at the
     * start, and against producers sending on, a purge must end. */
    while ((uint32_t)n < r.cap &&
           shmq__ring_lease(&r, owner, SIZE_MAX, &l) == 0) {
        shmq__ring_ack(&r, &l, 1);
        n++;
    }
    rc = n;
out_close:
    shmq__qseg_close(&q);
out_put:
    shmq__inst_put(in);
    return rc;
}

/* di: the queue's directory index (for its waiter counts). */
static void fill_info(shmq_admin_t *a, const char *name, int di,
                      struct shmq_queue_info *out)
{
    struct shmq__qseg q;

    memset(out, 0, sizeof(*out));
    snprintf(out->name, sizeof(out->name), "%s", name);
    out->stats.size = sizeof(out->stats);
    out->config.size = sizeof(out->config);
    if (shmq__qseg_open(a->reg.instance, name, 0, &q) == 0) {
        out->config = q.cfg;
        shmq__qseg_stats(&q, &a->reg, di, &out->stats);
        shmq__qseg_close(&q);
    }
}

/* The name of directory entry i into name, if it is an active entry whose
 * name is valid (a corrupt entry names nothing we can open). */
static int dir_name(shmq_admin_t *a, uint32_t i, char *name)
{
    struct shmq_reg_queue *d = &a->reg.dir[i];
    if (atomic_load_explicit(&d->state, memory_order_acquire) !=
        SHMQ_DIR_ACTIVE)
        return 0;
    memcpy(name, d->name, SHMQ_NAME_MAX);
    name[SHMQ_NAME_MAX] = 0;
    return shmq_name_check(name) == 0;
}

int shmq_admin_list(shmq_admin_t *a, struct shmq_queue_info *out, size_t n)
{
    if (!a || (!out && n))
        return -EINVAL;
    int count = 0;
    for (uint32_t i = 0; i < SHMQ_MAX_QUEUES; i++) {
        char name[SHMQ_NAME_MAX + 1];
        if (!dir_name(a, i, name))
            continue;
        if ((size_t)count < n)
            fill_info(a, name, (int)i, &out[count]);
        count++;
    }
    return count;
}

int shmq_admin_info(shmq_admin_t *a, const char *name,
                    struct shmq_queue_info *out)
{
    struct shmq__qseg q;
    if (!a || shmq_name_check(name) || !out)
        return -EINVAL;
    int di = shmq__reg_find(&a->reg, name);
    if (di < 0)
        return -ENOENT;
    int rc = shmq__qseg_open(a->reg.instance, name, 0, &q);
    if (rc)
        return rc;
    shmq__qseg_close(&q);
    fill_info(a, name, di, out);
    return 0;
}

/* Leases held per process-table index, counted from the slot words of
 * every queue we can open: whoever ended a lease (ack, nack, expiry,
 * repair), the slot word says so, and a count kept beside it would not
 * know. NULL when out of memory. */
static uint64_t *lease_counts(shmq_admin_t *a)
{
    uint64_t *per = calloc(a->reg.max_procs, sizeof(*per));
    if (!per)
        return NULL;
    for (uint32_t i = 0; i < SHMQ_MAX_QUEUES; i++) {
        char name[SHMQ_NAME_MAX + 1];
        struct shmq__qseg q;
        if (!dir_name(a, i, name) ||
            shmq__qseg_open(a->reg.instance, name, 0, &q) != 0)
            continue;
        shmq__ring_count_leases(&q.main, per, a->reg.max_procs);
        if (q.has_dlq)
            shmq__ring_count_leases(&q.dlq, per, a->reg.max_procs);
        shmq__qseg_close(&q);
    }
    return per;
}

int shmq_admin_procs(shmq_admin_t *a, struct shmq_proc_info *out, size_t n)
{
    if (!a || (!out && n))
        return -EINVAL;
    uint64_t *per = n ? lease_counts(a) : NULL;
    if (n && !per)
        return -ENOMEM;
    int count = 0;
    for (uint32_t i = 0; i < a->reg.max_procs; i++) {
        struct shmq_reg_proc *p = &a->reg.procs[i];
        uint64_t w = atomic_load_explicit(&p->word, memory_order_acquire);
        uint32_t st = SHMQ_PROC_STATE(w);
        if (st == SHMQ_PROC_FREE)
            continue;
        if ((size_t)count < n) {
            struct shmq_proc_info *o = &out[count];
            memset(o, 0, sizeof(*o));
            o->token = SHMQ_TOKEN(i, SHMQ_PROC_INC(w) & 0xffffu);
            o->state = st;
            o->pid = atomic_load_explicit(&p->pid, memory_order_relaxed);
            o->uid = atomic_load_explicit(&p->uid, memory_order_relaxed);
            o->start_ns = atomic_load_explicit(&p->start_ns,
                                               memory_order_relaxed);
            o->leases = per[i];
            o->alive = shmq__lock_held(a->reg.fd, SHMQ_LOCK_PROC_BASE + i) > 0;
            for (uint32_t k = 0; k < 16; k++) {
                uint64_t b = atomic_load_explicit(&p->queues[k],
                                                  memory_order_relaxed);
                while (b) {
                    uint32_t qi = k * 64 + (uint32_t)__builtin_ctzll(b);
                    b &= b - 1;
                    if (o->nqueues < 16)
                        o->queues[o->nqueues] = qi;
                    o->nqueues++;
                }
            }
        }
        count++;
    }
    free(per);
    return count;
}

int shmq_admin_queue_name(shmq_admin_t *a, uint32_t index, char *buf,
                          size_t cap)
{
    char name[SHMQ_NAME_MAX + 1];

    if (!a || !buf || index >= SHMQ_MAX_QUEUES)
        return -EINVAL;
    struct shmq_reg_queue *d = &a->reg.dir[index];
    /* Acquire: pairs with the release store of ACTIVE in
     * shmq_admin_create, after the name was written. */
    if (atomic_load_explicit(&d->state, memory_order_acquire) !=
        SHMQ_DIR_ACTIVE)
        return -ENOENT;
    memcpy(name, d->name, sizeof(name) - 1);
    name[sizeof(name) - 1] = 0;
    /* A name read while the entry was being freed and reused may be torn:
     * only a valid name of an entry still active is an answer. */
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&d->state, memory_order_relaxed) !=
            SHMQ_DIR_ACTIVE ||
        shmq_name_check(name))
        return -ENOENT;
    size_t n = strlen(name);
    if (n >= cap)
        return -ENAMETOOLONG;
    memcpy(buf, name, n + 1);
    return (int)n;
}

int shmq_admin_register(shmq_admin_t *a, uint32_t *token)
{
    struct shmq__inst *in;
    if (!a || !token)
        return -EINVAL;
    if (a->readonly)
        return -EPERM;
    int rc = shmq__inst_get(a->reg.instance, &in);
    if (rc)
        return rc;
    a->inst = in;
    a->registered++;
    *token = in->token;
    return 0;
}

int shmq_admin_unregister(shmq_admin_t *a, uint32_t token)
{
    if (!a)
        return -EINVAL;
    if (a->readonly)
        return -EPERM;
    /* Only a registration this handle took: dropping a reference that an
     * open queue handle holds would free what that handle still uses. */
    if (!a->registered || a->inst->token != token)
        return -EINVAL;
    struct shmq__inst *in = a->inst;
    if (--a->registered == 0)
        a->inst = NULL;
    shmq__inst_put(in);
    return 0;
}

int shmq_admin_alive(shmq_admin_t *a, uint32_t token)
{
    if (!a)
        return -EINVAL;
    struct shmq_reg_proc *p = shmq__reg_proc(&a->reg, SHMQ_TOKEN_IDX(token));
    if (!p)
        return -EINVAL;
    uint64_t w = atomic_load_explicit(&p->word, memory_order_acquire);
    if ((SHMQ_PROC_INC(w) & 0xffffu) != SHMQ_TOKEN_INC(token) ||
        SHMQ_PROC_STATE(w) != SHMQ_PROC_ALIVE)
        return 0;
    int held = shmq__lock_held(a->reg.fd,
                               SHMQ_LOCK_PROC_BASE + SHMQ_TOKEN_IDX(token));
    return held < 0 ? held : held;
}

int shmq_admin_repair(shmq_admin_t *a, uint32_t token,
                      struct shmq_repair_report *rep)
{
    if (!a || (rep && rep->size != sizeof(*rep)))
        return -EINVAL;
    if (a->readonly)
        return -EPERM;
    return shmq__repair(&a->reg, token, 0, rep);
}

int shmq_admin_reap(shmq_admin_t *a, struct shmq_repair_report *rep)
{
    if (!a || (rep && rep->size != sizeof(*rep)))
        return -EINVAL;
    if (a->readonly)
        return -EPERM;
    return shmq__reap(&a->reg, rep);
}

int shmq_admin_expire_leases(shmq_admin_t *a, const char *name,
                             uint64_t now_ns)
{
    struct shmq__qseg q;
    if (!a || shmq_name_check(name))
        return -EINVAL;
    if (a->readonly)
        return -EPERM;
    if (shmq__reg_find(&a->reg, name) < 0)
        return -ENOENT;
    int rc = shmq__qseg_open(a->reg.instance, name, 1, &q);
    if (rc)
        return rc;
    uint32_t now_ms = now_ns ? (uint32_t)(now_ns / 1000000u)
                             : shmq__now_ms32();
    uint64_t n = shmq__ring_expire(&q.main, now_ms);
    if (q.has_dlq)
        n += shmq__ring_expire(&q.dlq, now_ms);
    shmq__qseg_close(&q);
    return n > INT32_MAX ? INT32_MAX : (int)n;
}

int shmq_admin_destroy(shmq_admin_t *a)
{
    char path[64];
    int rc;
    if (!a)
        return -EINVAL;
    if (a->readonly)
        return -EPERM;
    if ((rc = admin_lock(a)) != 0)
        return rc;
    for (uint32_t i = 0; i < SHMQ_MAX_QUEUES; i++)
        if (atomic_load_explicit(&a->reg.dir[i].state,
                                 memory_order_acquire) == SHMQ_DIR_ACTIVE)
            delete_locked(a, (int)i);
    rc = shmq__shm_name(path, sizeof(path), a->reg.instance, NULL);
    if (rc == 0 && shm_unlink(path) < 0)
        rc = -errno;
    admin_unlock(a);
    return rc;
}
