/* SPDX-License-Identifier: MIT */
/* Samples of an instance's queues and the rates between two samples. */
#include "stats.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int by_name(const void *a, const void *b)
{
    const struct qrow *x = a, *y = b;
    return strcmp(x->info.name, y->info.name);
}

/* A queue listed but not readable (its mode keeps us out): ask again by
 * name to learn why. */
static void fill_unreadable(struct qrow *r)
{
    struct shmq_stats st;

    memset(&st, 0, sizeof(st));
    st.size = sizeof(st);
    int rc = shmq_stats_by_name(arg_instance, r->info.name, &st);
    if (rc < 0) {
        r->err = rc;
        return;
    }
    /* Readable now (its mode changed, or it was being created). */
    r->info.stats = st;
    r->info.config.capacity = st.capacity;
    r->info.config.msg_max = st.msg_max;
    r->info.config.max_deliveries = st.max_deliveries;
    r->info.config.dlq_capacity = st.dlq_capacity;
    r->info.config.mode = st.mode;
    r->info.config.lease_timeout_ns = st.lease_timeout_ns;
}

static int take_all(shmq_admin_t *a, struct sample *s)
{
    struct shmq_queue_info *v = NULL;
    int n = 0;

    for (;;) {
        int have = shmq_admin_list(a, v, (size_t)n);
        if (have < 0) {
            free(v);
            return have;
        }
        if (have <= n) {
            n = have;
            break;
        }
        struct shmq_queue_info *w = realloc(v, (size_t)have * sizeof(*v));
        if (!w) {
            free(v);
            return -ENOMEM;
        }
        v = w;
        n = have;
    }
    s->rows = calloc(n ? (size_t)n : 1, sizeof(*s->rows));
    if (!s->rows) {
        free(v);
        return -ENOMEM;
    }
    for (int i = 0; i < n; i++) {
        s->rows[i].info = v[i];
        if (v[i].config.capacity == 0)
            fill_unreadable(&s->rows[i]);
    }
    s->n = (size_t)n;
    free(v);
    qsort(s->rows, s->n, sizeof(*s->rows), by_name);
    return 0;
}

static int take_named(shmq_admin_t *a, struct sample *s)
{
    s->rows = calloc((size_t)arg_nnames, sizeof(*s->rows));
    if (!s->rows)
        return -ENOMEM;
    for (int i = 0; i < arg_nnames; i++) {
        struct qrow *r = &s->rows[i];
        snprintf(r->info.name, sizeof(r->info.name), "%s", arg_names[i]);
        int rc = shmq_admin_info(a, arg_names[i], &r->info);
        if (rc < 0)
            r->err = rc;
    }
    s->n = (size_t)arg_nnames;
    return 0;
}

/* Count, for each queue, the registered processes that opened it. The
 * process table names at most 16 queues per process. */
static int count_procs(shmq_admin_t *a, struct sample *s)
{
    struct shmq_proc_info *p = NULL;
    uint32_t per_index[1024] = {0};
    int n = 0;

    for (;;) {
        int have = shmq_admin_procs(a, p, (size_t)n);
        if (have < 0) {
            free(p);
            return have;
        }
        if (have <= n) {
            n = have;
            break;
        }
        struct shmq_proc_info *w = realloc(p, (size_t)have * sizeof(*p));
        if (!w) {
            free(p);
            return -ENOMEM;
        }
        p = w;
        n = have;
    }
    s->nprocs = (uint32_t)n;
    for (int i = 0; i < n; i++) {
        uint32_t k = p[i].nqueues < 16 ? p[i].nqueues : 16;
        for (uint32_t j = 0; j < k; j++)
            if (p[i].queues[j] < 1024)
                per_index[p[i].queues[j]]++;
    }
    free(p);
    for (uint32_t idx = 0; idx < 1024; idx++) {
        char name[SHMQ_NAME_MAX + 1];
        if (!per_index[idx] ||
            shmq_admin_queue_name(a, idx, name, sizeof(name)) < 0)
            continue;
        for (size_t i = 0; i < s->n; i++)
            if (strcmp(s->rows[i].info.name, name) == 0)
                s->rows[i].procs += per_index[idx];
    }
    return 0;
}

int sample_take(shmq_admin_t *a, struct sample *s)
{
    memset(s, 0, sizeof(*s));
    s->mono_ns = clock_ns(CLOCK_MONOTONIC);
    s->real_ns = clock_ns(CLOCK_REALTIME);
    int rc = arg_names ? take_named(a, s) : take_all(a, s);
    if (rc == 0)
        rc = count_procs(a, s);
    if (rc < 0)
        sample_free(s);
    return rc;
}

static double per_second(uint64_t now, uint64_t before, double secs)
{
    return now > before ? (double)(now - before) / secs : 0.0;
}

void sample_rates(struct sample *now, const struct sample *before)
{
    if (now->mono_ns <= before->mono_ns)
        return;
    double secs = (double)(now->mono_ns - before->mono_ns) / 1e9;
    for (size_t i = 0; i < now->n; i++) {
        struct qrow *r = &now->rows[i];
        if (r->err)
            continue;
        for (size_t j = 0; j < before->n; j++) {
            const struct qrow *b = &before->rows[j];
            if (b->err || strcmp(b->info.name, r->info.name) != 0 ||
                b->info.stats.generation != r->info.stats.generation)
                continue;
            r->enq_rate = per_second(r->info.stats.enqueued,
                                     b->info.stats.enqueued, secs);
            r->deq_rate = per_second(r->info.stats.dequeued,
                                     b->info.stats.dequeued, secs);
            r->has_rate = 1;
            break;
        }
    }
}

void sample_free(struct sample *s)
{
    free(s->rows);
    s->rows = NULL;
    s->n = 0;
}

double row_occupancy(const struct qrow *r)
{
    uint32_t cap = r->info.config.capacity;
    return cap ? 100.0 * (double)r->info.stats.depth / cap : 0.0;
}
