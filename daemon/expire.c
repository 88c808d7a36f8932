/* SPDX-License-Identifier: MIT */
/*
 * Lease timeouts. A queue created with a lease timeout T gets its leases
 * checked every T/4, clamped to [10 ms, 1 s], so a lease is taken back
 * between T and T + max(T/4, 10 ms) (at most T + 1 s) after it was taken.
 * The library does the work (shmq_admin_expire_leases: LEASED -> RETRY
 * for leases stamped more than T ago; the late ack of the consumer that
 * held it gets -ESTALE); this file only decides when.
 */
#include <stdlib.h>
#include <string.h>

#include "shmqd.h"

uint64_t expire_interval_ms(uint64_t lease_timeout_ns)
{
    uint64_t ms = lease_timeout_ns / 4000000u;
    if (ms < 10)
        ms = 10;
    if (ms > 1000)
        ms = 1000;
    return ms;
}

struct due {
    char name[SHMQ_NAME_MAX + 1];
    uint64_t timeout_ns;
};

uint64_t expire_run(struct shmqd *d, shmq_admin_t *a, uint64_t now_ms)
{
    struct cds_lfht_iter it;
    struct dq *q;
    struct due *due = NULL;
    size_t n = 0, cap = 0;
    uint64_t next = now_ms + SHMQD_SCAN_MS;

    (void)d;
    /* Pick the queues that are due under the read lock; expire them
     * after, so the read-side section stays short. next_expire_ms is
     * touched by this (watch) thread only. */
    rcu_read_lock();
    cds_lfht_for_each_entry(tables_queues(), &it, q, node) {
        tsan_acquire(q);
        if (!q->cfg.lease_timeout_ns)
            continue;
        if (q->next_expire_ms <= now_ms) {
            if (n == cap) {
                size_t nc = cap ? 2 * cap : 8;
                struct due *t = realloc(due, nc * sizeof(*t));
                if (!t)
                    break; /* the rest waits for the next round */
                due = t;
                cap = nc;
            }
            memcpy(due[n].name, q->name, sizeof(due[n].name));
            due[n].timeout_ns = q->cfg.lease_timeout_ns;
            n++;
            q->next_expire_ms =
                now_ms + expire_interval_ms(q->cfg.lease_timeout_ns);
        }
        if (q->next_expire_ms < next)
            next = q->next_expire_ms;
    }
    rcu_read_unlock();

    for (size_t i = 0; i < n; i++) {
        int rc = shmq_admin_expire_leases(a, due[i].name, 0);
        if (rc > 0)
            log_info("queue %s: %d lease%s held longer than %llu ms taken "
                     "back for redelivery",
                     due[i].name, rc, rc == 1 ? "" : "s",
                     (unsigned long long)(due[i].timeout_ns / 1000000u));
        else if (rc < 0 && rc != -ENOENT)
            log_warn("queue %s: lease expiry failed: %s", due[i].name,
                     shmq_strerror(rc));
    }
    free(due);
    return next;
}
