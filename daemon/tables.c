/* SPDX-License-Identifier: MIT */
/*
 * The daemon's in-memory tables, two RCU lock-free hash tables
 * (liburcu's cds_lfht):
 *
 *   queues     name -> struct dq   written by the control thread (create,
 *                                  delete) and the watch thread's sync;
 *                                  read by list/info/stats and expiry
 *   processes  token -> struct dp  written by the control thread
 *                                  (register) and the watch thread (death,
 *                                  scan); read by procs and ping
 *
 * Readers never block writers and writers never block each other: every
 * lookup and iteration runs inside rcu_read_lock(), a removed node is
 * freed by call_rcu() once no reader can still see it. Two writers racing
 * on one key are settled by the table: cds_lfht_add_unique() lets one
 * insert win, cds_lfht_del() lets one removal win, and only the winner
 * frees.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shmqd.h"

static struct cds_lfht *queues, *procs;

#ifdef SHMQD_TSAN
/* A node is freed by liburcu's call_rcu thread after a grace period, an
 * ordering ThreadSanitizer cannot see; nor can it see inside liburcu. */
const char *__tsan_default_suppressions(void);
const char *__tsan_default_suppressions(void)
{
    return "race:free_dq\nrace:free_dp\nrace:liburcu-cds.so\n"
           "race:liburcu.so\n";
}
#endif

static unsigned long hash_name(const char *s)
{
    uint64_t h = UINT64_C(14695981039346656037); /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * UINT64_C(1099511628211);
    return (unsigned long)h;
}

static unsigned long hash_token(uint32_t t)
{
    return (unsigned long)(t * UINT64_C(0x9e3779b97f4a7c15));
}

static int match_name(struct cds_lfht_node *n, const void *key)
{
    struct dq *q = caa_container_of(n, struct dq, node);
    tsan_acquire(q);
    return strcmp(q->name, key) == 0;
}

static int match_token(struct cds_lfht_node *n, const void *key)
{
    struct dp *p = caa_container_of(n, struct dp, node);
    tsan_acquire(p);
    return p->token == *(const uint32_t *)key;
}

int tables_init(void)
{
    queues = cds_lfht_new(64, 64, 0, CDS_LFHT_AUTO_RESIZE, NULL);
    procs = cds_lfht_new(256, 256, 0, CDS_LFHT_AUTO_RESIZE, NULL);
    return queues && procs ? 0 : -ENOMEM;
}

static void free_dq(struct rcu_head *h)
{
    free(caa_container_of(h, struct dq, rcu));
}

static void free_dp(struct rcu_head *h)
{
    free(caa_container_of(h, struct dp, rcu));
}

void tables_fini(void)
{
    struct cds_lfht_iter it;
    struct dq *q;
    struct dp *p;

    rcu_read_lock();
    cds_lfht_for_each_entry(queues, &it, q, node)
        if (cds_lfht_del(queues, &q->node) == 0)
            call_rcu(&q->rcu, free_dq);
    cds_lfht_for_each_entry(procs, &it, p, node) {
        tsan_acquire(p);
        if (cds_lfht_del(procs, &p->node) == 0) {
            close(p->pidfd);
            call_rcu(&p->rcu, free_dp);
        }
    }
    rcu_read_unlock();
    rcu_barrier(); /* every free above has run */
    cds_lfht_destroy(queues, NULL);
    cds_lfht_destroy(procs, NULL);
}

/* ---- queues -------------------------------------------------------------- */

struct cds_lfht *tables_queues(void)
{
    return queues;
}

struct dq *tables_queue_find(const char *name)
{
    struct cds_lfht_iter it;
    cds_lfht_lookup(queues, hash_name(name), match_name, name, &it);
    struct cds_lfht_node *n = cds_lfht_iter_get_node(&it);
    struct dq *q = n ? caa_container_of(n, struct dq, node) : NULL;
    if (q)
        tsan_acquire(q);
    return q;
}

/* Insert q, replacing a node of the same name; frees q if another writer
 * got there first with the same generation. */
static void queue_put(struct dq *q)
{
    unsigned long h = hash_name(q->name);

    tsan_release(q); /* published below */
    rcu_read_lock();
    for (;;) {
        struct cds_lfht_iter it;
        cds_lfht_lookup(queues, h, match_name, q->name, &it);
        struct cds_lfht_node *n = cds_lfht_iter_get_node(&it);
        if (!n) {
            struct cds_lfht_node *got =
                cds_lfht_add_unique(queues, h, match_name, q->name, &q->node);
            if (got == &q->node)
                break;
            continue; /* someone inserted meanwhile: look again */
        }
        struct dq *old = caa_container_of(n, struct dq, node);
        tsan_acquire(old);
        if (old->generation == q->generation) {
            free(q); /* nothing new */
            break;
        }
        if (cds_lfht_replace(queues, &it, h, match_name, q->name,
                             &q->node) == 0) {
            call_rcu(&old->rcu, free_dq);
            break;
        }
        /* old was removed meanwhile: look again */
    }
    rcu_read_unlock();
}

/* Build a node for a queue from its segment. */
static int queue_node(struct shmqd *d, shmq_admin_t *a, const char *name,
                      struct dq **out)
{
    struct shmq_queue_info info;
    char path[128];
    struct stat st;

    int rc = shmq_admin_info(a, name, &info);
    if (rc)
        return rc;
    if (shmq__shm_name(path, sizeof(path), d->instance, name) != 0)
        return -EINVAL;
    int fd = shm_open(path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    rc = fstat(fd, &st) < 0 ? -errno : 0;
    close(fd);
    if (rc)
        return rc;
    struct dq *q = calloc(1, sizeof(*q));
    if (!q)
        return -ENOMEM;
    memcpy(q->name, info.name, sizeof(q->name));
    q->generation = info.stats.generation;
    q->cfg = info.config;
    q->cfg.gid = (int32_t)st.st_gid;
    q->owner = st.st_uid;
    *out = q;
    return 0;
}

int tables_queue_load(struct shmqd *d, shmq_admin_t *a, const char *name)
{
    struct dq *q;
    int rc = queue_node(d, a, name, &q);
    if (rc == 0)
        queue_put(q);
    return rc;
}

void tables_queue_forget(const char *name)
{
    rcu_read_lock();
    struct dq *q = tables_queue_find(name);
    if (q && cds_lfht_del(queues, &q->node) == 0)
        call_rcu(&q->rcu, free_dq);
    rcu_read_unlock();
}

/* A directory entry as read from the registry. */
struct dir_snap {
    char name[SHMQ_NAME_MAX + 1];
    uint64_t generation;
};

static int cmp_snap(const void *a, const void *b)
{
    return strcmp(((const struct dir_snap *)a)->name,
                  ((const struct dir_snap *)b)->name);
}

/* Read the active entries of the registry directory (untrusted: names
 * are NUL-terminated and checked before use). */
static size_t read_directory(struct shmqd *d, struct dir_snap *out)
{
    size_t n = 0;
    for (uint32_t i = 0; i < SHMQ_MAX_QUEUES; i++) {
        struct shmq_reg_queue *e = &d->reg.dir[i];
        if (atomic_load_explicit(&e->state, memory_order_acquire) !=
            SHMQ_DIR_ACTIVE)
            continue;
        memcpy(out[n].name, e->name, SHMQ_NAME_MAX);
        out[n].name[SHMQ_NAME_MAX] = 0;
        out[n].generation = e->generation;
        if (shmq_name_check(out[n].name) == 0)
            n++;
    }
    return n;
}

void tables_sync_queues(struct shmqd *d, shmq_admin_t *a)
{
    struct cds_lfht_iter it;
    struct dq *q;
    struct dir_snap *dir = calloc(SHMQ_MAX_QUEUES, sizeof(*dir));
    if (!dir)
        return; /* the next sync tries again */
    size_t n = read_directory(d, dir);
    qsort(dir, n, sizeof(*dir), cmp_snap);

    /* Forget what the directory no longer has (or has anew). */
    rcu_read_lock();
    cds_lfht_for_each_entry(queues, &it, q, node) {
        struct dir_snap key;
        tsan_acquire(q);
        memcpy(key.name, q->name, sizeof(key.name));
        struct dir_snap *e = bsearch(&key, dir, n, sizeof(*dir), cmp_snap);
        if ((!e || e->generation != q->generation) &&
            cds_lfht_del(queues, &q->node) == 0)
            call_rcu(&q->rcu, free_dq);
    }
    rcu_read_unlock();

    /* Learn what is new. */
    for (size_t i = 0; i < n; i++) {
        rcu_read_lock();
        q = tables_queue_find(dir[i].name);
        int known = q && q->generation == dir[i].generation;
        rcu_read_unlock();
        if (!known)
            tables_queue_load(d, a, dir[i].name);
    }
    free(dir);
}

static int cmp_dq(const void *a, const void *b)
{
    return strcmp(((const struct dq *)a)->name, ((const struct dq *)b)->name);
}

int tables_queue_snapshot(struct dq **out)
{
    struct cds_lfht_iter it;
    struct dq *q;
    size_t n = 0, cap = 16;
    struct dq *arr = malloc(cap * sizeof(*arr));
    if (!arr)
        return -ENOMEM;
    rcu_read_lock();
    cds_lfht_for_each_entry(queues, &it, q, node) {
        tsan_acquire(q);
        if (n == cap) {
            struct dq *t = realloc(arr, 2 * cap * sizeof(*arr));
            if (!t) {
                rcu_read_unlock();
                free(arr);
                return -ENOMEM;
            }
            arr = t;
            cap *= 2;
        }
        /* Field by field: next_expire_ms belongs to the watch thread. */
        memset(&arr[n], 0, sizeof(arr[n]));
        memcpy(arr[n].name, q->name, sizeof(q->name));
        arr[n].generation = q->generation;
        arr[n].cfg = q->cfg;
        arr[n].owner = q->owner;
        n++;
    }
    rcu_read_unlock();
    qsort(arr, n, sizeof(*arr), cmp_dq);
    *out = arr;
    return (int)n;
}

unsigned tables_queue_count(void)
{
    struct cds_lfht_iter it;
    struct dq *q;
    unsigned n = 0;
    rcu_read_lock();
    cds_lfht_for_each_entry(queues, &it, q, node)
        n++;
    rcu_read_unlock();
    return n;
}

/* ---- processes ----------------------------------------------------------- */

int tables_proc_add(struct dp *p)
{
    tsan_release(p); /* published below */
    rcu_read_lock();
    struct cds_lfht_node *got = cds_lfht_add_unique(
        procs, hash_token(p->token), match_token, &p->token, &p->node);
    rcu_read_unlock();
    return got == &p->node ? 0 : -EEXIST;
}

struct dp *tables_proc_find(uint32_t token)
{
    struct cds_lfht_iter it;
    cds_lfht_lookup(procs, hash_token(token), match_token, &token, &it);
    struct cds_lfht_node *n = cds_lfht_iter_get_node(&it);
    struct dp *p = n ? caa_container_of(n, struct dp, node) : NULL;
    if (p)
        tsan_acquire(p);
    return p;
}

void tables_proc_del(struct dp *p)
{
    rcu_read_lock();
    int rc = cds_lfht_del(procs, &p->node);
    rcu_read_unlock();
    if (rc == 0) {
        close(p->pidfd);
        call_rcu(&p->rcu, free_dp);
    }
}

void tables_proc_each(void (*fn)(struct dp *p, void *arg), void *arg)
{
    struct cds_lfht_iter it;
    struct dp *p;
    rcu_read_lock();
    cds_lfht_for_each_entry(procs, &it, p, node) {
        tsan_acquire(p);
        fn(p, arg);
    }
    rcu_read_unlock();
}

static void count_one(struct dp *p, void *arg)
{
    (void)p;
    (*(unsigned *)arg)++;
}

unsigned tables_proc_count(void)
{
    unsigned n = 0;
    tables_proc_each(count_one, &n);
    return n;
}
