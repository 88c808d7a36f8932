/* SPDX-License-Identifier: MIT */
/*
 * Repair of a dead process token (DESIGN.md section 5), idempotent so a
 * restarted supervisor can run it again:
 *   1. under the registry's admin lock (an OFD lock: a repairer that dies
 *      releases it), check the entry still has the token's incarnation and
 *      that the process's liveness lock is free (it is dead);
 *   2. mark the entry DEAD, so it cannot be registered again meanwhile;
 *   3. for every queue the process opened (its bitmap), turn its WRITING
 *      slots into SKIP and its LEASED slots into RETRY (delivery count
 *      kept), and wake every waiter: the dead may have eaten a wakeup;
 *   4. clear its sleep records (a process killed asleep never cleared
 *      its own), then free the entry with the next incarnation.
 * The entry is freed only once every queue of the process was repaired
 * (or is gone): a slot left WRITING or LEASED under its index would pass
 * to the next process registered there, and nothing would return it. A
 * queue that cannot be opened now (no descriptor left, no permission for
 * this repairer) fails the repair and leaves the entry DEAD for a later
 * one.
 * A crash anywhere leaves the entry DEAD (or ALIVE with a free lock), so
 * the next repair does the rest; each slot step is a CAS from a word owned
 * by the dead, so it happens once.
 */
#include "repair.h"

#include <string.h>

#include "segment.h"

/* 0: repaired, or nothing there to repair; negative errno: the queue is
 * there but could not be opened now. */
static int repair_queue(struct shmq__reg *reg, uint32_t qi, unsigned owner,
                        struct shmq_repair_report *rep)
{
    struct shmq_reg_queue *d = &reg->dir[qi];
    char name[SHMQ_NAME_MAX + 1];

    if (atomic_load_explicit(&d->state, memory_order_acquire) !=
        SHMQ_DIR_ACTIVE)
        return 0;
    memcpy(name, d->name, sizeof(name) - 1);
    name[sizeof(name) - 1] = 0;
    struct shmq__qseg q;
    int rc = shmq__qseg_open(reg->instance, name, 1, &q);
    if (rc == -ENOENT || rc == -EINVAL || rc == -EBADMSG || rc == -EPROTO)
        return 0; /* gone, or a segment nobody can attach to */
    if (rc)
        return rc;
    uint64_t skipped = 0, returned = 0;
    shmq__ring_repair(&q.main, owner, &skipped, &returned);
    if (q.has_dlq)
        shmq__ring_repair(&q.dlq, owner, &skipped, &returned);
    shmq__qseg_close(&q);
    rep->queues++;
    rep->skipped += skipped;
    rep->redelivered += returned;
    return 0;
}

int shmq__repair(struct shmq__reg *reg, uint32_t token, int self,
                 struct shmq_repair_report *out)
{
    uint32_t idx = SHMQ_TOKEN_IDX(token), inc = SHMQ_TOKEN_INC(token);
    struct shmq_reg_proc *p = shmq__reg_proc(reg, idx);
    struct shmq_repair_report rep;
    int rc;

    memset(&rep, 0, sizeof(rep));
    rep.size = sizeof(rep);
    if (!p || inc == 0)
        return -EINVAL;
    if ((rc = shmq__lock(reg->fd, SHMQ_LOCK_ADMIN, 1)) != 0)
        return rc;
    uint64_t w = atomic_load_explicit(&p->word, memory_order_acquire);
    if ((SHMQ_PROC_INC(w) & 0xffffu) != inc ||
        SHMQ_PROC_STATE(w) == SHMQ_PROC_FREE)
        goto done; /* repaired already, or the entry moved on */
    if (!self) {
        rc = shmq__lock_held(reg->fd, SHMQ_LOCK_PROC_BASE + idx);
        if (rc != 0) {
            rc = rc > 0 ? -EBUSY : rc;
            goto done;
        }
    }
    if (SHMQ_PROC_STATE(w) == SHMQ_PROC_ALIVE)
        atomic_compare_exchange_strong_explicit(
            &p->word, &w, SHMQ_PROC_WORD(SHMQ_PROC_INC(w), SHMQ_PROC_DEAD),
            memory_order_seq_cst, memory_order_relaxed);
    int failed = 0;
    for (uint32_t k = 0; k < 16; k++) {
        uint64_t b = atomic_load_explicit(&p->queues[k], memory_order_acquire);
        while (b) {
            uint32_t qi = k * 64 + (uint32_t)__builtin_ctzll(b);
            b &= b - 1;
            int qrc = repair_queue(reg, qi, idx, &rep);
            if (qrc && !failed)
                failed = qrc;
        }
    }
    if (failed) {
        rc = failed; /* the entry stays DEAD: the next repair goes on */
        goto done;
    }
    uint32_t next = (inc + 1) & 0xffffu;
    atomic_store_explicit(&p->leases, 0, memory_order_relaxed);
    for (unsigned k = 0; k < SHMQ_PROC_SLEEPS; k++)
        atomic_store_explicit(&p->sleeps[k], 0, memory_order_relaxed);
    atomic_store_explicit(&p->word,
                          SHMQ_PROC_WORD(next ? next : 1, SHMQ_PROC_FREE),
                          memory_order_release);
    rc = 1;
done:
    shmq__unlock(reg->fd, SHMQ_LOCK_ADMIN);
    if (out && rc > 0) {
        out->queues += rep.queues;
        out->redelivered += rep.redelivered;
        out->skipped += rep.skipped;
    }
    return rc;
}

int shmq__reap(struct shmq__reg *reg, struct shmq_repair_report *rep)
{
    int n = 0;

    for (uint32_t i = 0; i < reg->max_procs; i++) {
        uint64_t w = atomic_load_explicit(&reg->procs[i].word,
                                          memory_order_acquire);
        if (SHMQ_PROC_STATE(w) == SHMQ_PROC_FREE)
            continue;
        if (shmq__lock_held(reg->fd, SHMQ_LOCK_PROC_BASE + i) != 0)
            continue;
        uint32_t tok = SHMQ_TOKEN(i, SHMQ_PROC_INC(w) & 0xffffu);
        if (shmq__repair(reg, tok, 0, rep) > 0)
            n++;
    }
    return n;
}
